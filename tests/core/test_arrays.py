"""The arrays a manifest lists (src/ckpt/format/arrays.py): every array and tensor save
writes out of band, at the path scan would print, described so that its
member's bytes read back as the array itself (what inspect and diff rely
on, with nothing unpickled); the same from the compiled replay and its
pure-Python twin; and the field optional, so older files still read."""

from __future__ import annotations

import json
import pickle
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import rewrite_member

import ckpt
from ckpt.format.archive import open_archive
from ckpt.format.manifest import Array, parse_manifest

np = pytest.importorskip("numpy")


def model() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((64, 300)).astype(np.float32)
    return {
        "weights": {"fc1": weights, "fc2": np.asfortranarray(rng.standard_normal((200, 50)))},
        "tied": weights,
        "big_endian": np.arange(20_000, dtype=">i4"),
        "small": np.zeros(10),                    # in band: not listed
        "lock": threading.Lock(),
        "queue_of_arrays": [np.ones(20_000)],
    }


def saved(tmp_path: Path, obj: Any, name: str = "m.ckpt") -> tuple[Path, tuple[Array, ...]]:
    path = tmp_path / name
    report = ckpt.save(obj, path)
    return path, report.manifest.arrays


def members_read_back(path: Path, arrays: tuple[Array, ...], as_numpy: dict[str, str] | None = None) -> list[Any]:
    """Each listed array rebuilt from its member's bytes by its dtype, shape, offset and strides alone."""
    out = []
    with open_archive(path) as archive:
        for a in arrays:
            dtype = np.dtype((as_numpy or {}).get(a.dtype, a.dtype))
            out.append(np.ndarray(a.shape, dtype, buffer=archive.read(a.member), offset=a.offset, strides=a.strides))
    return out


def test_numpy_arrays_are_listed_at_their_paths_and_read_back_from_their_members(tmp_path: Path) -> None:
    obj = model()
    path, arrays = saved(tmp_path, obj)
    by_path = {a.path: a for a in arrays}
    assert list(by_path) == ["model['weights']['fc1']", "model['weights']['fc2']", "model['big_endian']",
                             "model['queue_of_arrays'][0]"]
    fc1 = by_path["model['weights']['fc1']"]
    assert (fc1.type, fc1.dtype, fc1.shape, fc1.also_at, fc1.member) == (
        "numpy.ndarray", "float32", (64, 300), ("model['tied']",), "buffers/0")
    assert by_path["model['big_endian']"].dtype == ">i4"
    assert by_path["model['weights']['fc2']"].strides == (8, 1600)  # Fortran order, as its bytes lie
    expected = [obj["weights"]["fc1"], obj["weights"]["fc2"], obj["big_endian"], obj["queue_of_arrays"][0]]
    for got, want in zip(members_read_back(path, arrays), expected):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_tensors_views_and_parameters_share_their_storages_member(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    base = torch.arange(40_000, dtype=torch.float32).reshape(200, 200)
    net = torch.nn.Linear(300, 100)
    obj = {"base": base, "rows": base[10:20], "cols": base[:, 5], "net": net,
           "half": torch.ones(300, 300, dtype=torch.bfloat16)}
    path, arrays = saved(tmp_path, obj)
    by_path = {a.path: a for a in arrays}
    assert set(by_path) == {"model['base']", "model['rows']", "model['cols']", "model['net']._parameters['weight']",
                            "model['half']"}
    rows, cols = by_path["model['rows']"], by_path["model['cols']"]
    assert rows.member == cols.member == by_path["model['base']"].member
    assert (rows.offset, rows.shape, rows.strides) == (10 * 200 * 4, (10, 200), (800, 4))
    assert (cols.offset, cols.shape, cols.strides) == (5 * 4, (200,), (800,))
    weight = by_path["model['net']._parameters['weight']"]
    assert weight.type == "torch.nn.parameter.Parameter" and weight.shape == (100, 300)
    half = by_path["model['half']"]
    assert half.dtype == "bfloat16" and half.nbytes == 300 * 300 * 2
    listed = [a for a in arrays if a.dtype == "float32"]
    for a, got in zip(listed, members_read_back(path, tuple(listed))):
        want = {"model['base']": base, "model['rows']": base[10:20], "model['cols']": base[:, 5]}.get(a.path, net.weight)
        assert np.array_equal(got, want.detach().numpy())


def test_the_pure_python_replay_lists_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    obj = model()
    _, compiled = saved(tmp_path, obj, "compiled.ckpt")
    monkeypatch.setenv("CKPT_PURE_PYTHON", "1")
    _, pure = saved(tmp_path, obj, "pure.ckpt")
    assert pure == compiled and len(pure) == 4


class RawBytes:
    """Hands its bytes out of band as a bytearray's: nothing the walk stops at."""

    def __init__(self) -> None:
        self.data = bytearray(100_000)

    def __reduce_ex__(self, protocol: int) -> Any:
        return bytearray, (pickle.PickleBuffer(self.data),)


def test_a_buffer_the_walk_cannot_place_is_listed_without_a_path_and_said_so(tmp_path: Path) -> None:
    report = ckpt.save({"raw": RawBytes(), "w": np.ones(20_000)}, tmp_path / "m.ckpt")
    raw, weights = report.manifest.arrays
    assert (raw.path, raw.type, raw.dtype, raw.shape) == ("", "bytearray", "uint8", (100_000,))
    assert weights.path == "model['w']"
    assert any("1 out-of-band buffer(s) could not be placed" in n for n in report.notices), report.notices
    assert ckpt.inspect(tmp_path / "m.ckpt").manifest.arrays == report.manifest.arrays


def test_the_field_is_optional_and_absent_when_empty(tmp_path: Path) -> None:
    """A model without large arrays writes no `arrays` key, so the signed bytes
    are those of every file before the field existed; a file without it
    still reads and verifies."""
    path, arrays = saved(tmp_path, {"n": 1, "lock": threading.Lock()})
    with zipfile.ZipFile(path) as archive:
        assert "arrays" not in json.loads(archive.read("manifest.json"))
    assert arrays == () and ckpt.verify(path).ok


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.update(member="buffers/9"), "is not one of the file's members"),
    (lambda a: a.update(strides=[4]), "strides and shape differ in length"),
    (lambda a: a.update(shape=[-1, 3]), "non-negative integers"),
    (lambda a: a.pop("dtype"), "dtype"),
])
def test_a_malformed_entry_is_refused_in_one_line(tmp_path: Path, change: Any, message: str) -> None:
    path, _ = saved(tmp_path, model())
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    change(manifest["arrays"][0])
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    with pytest.raises(ckpt.CheckpointError, match=message):
        parse_manifest(json.dumps(manifest).encode())
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.inspect(path)


def test_a_field_this_ckpt_does_not_know_is_signed_and_ignored(tmp_path: Path) -> None:
    """A newer writer's field: the signature covers the manifest as the file
    holds it, so the file verifies signed, and is altered if the field is
    added after signing."""
    import base64

    from ckpt.trust.keys import signing_key

    path, _ = saved(tmp_path, model())
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["from_the_future"] = {"x": [1, 2]}
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    assert ckpt.inspect(path).provenance.origin is ckpt.Origin.ALTERED
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    payload = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    manifest["signature"]["value"] = base64.b64encode(signing_key().sign(payload)).decode()
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    assert ckpt.inspect(path).provenance.origin is ckpt.Origin.OWN and ckpt.load(path)["small"].shape == (10,)
