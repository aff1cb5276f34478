"""Damaged checkpoints: refused with a clean error, or (only where the damage
hit bytes that carry no data) loaded equal to what was saved. Never a
traceback, never different data loaded silently.

Hypothesis flips, truncates, inserts and deletes bytes anywhere in two real
checkpoints (a small one, and one with numpy arrays out of band); most
examples go through the library for speed, a sample through the CLI.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import run_many
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.errors import CkptError
from ckpt.format.archive import open_archive

Damage = Callable[[bytes], bytes]


def small_model() -> dict[str, Any]:
    q: queue.Queue[str] = queue.Queue()
    q.put("item")
    return {"weights": [0.5 * i for i in range(50)], "name": "small", "lock": threading.Lock(), "queue": q}


def array_model() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    return {"big": rng.standard_normal(20_000), "small": np.arange(12, dtype=np.int16).reshape(3, 4),
            "meta": {"epoch": 3}}


def same(a: Any, b: Any) -> bool:
    """Equal data: arrays by dtype, shape and values; primitives by type; queues by their items."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, queue.Queue):
        return type(b) is type(a) and list(a.queue) == list(b.queue)
    if type(a).__module__ == "_thread":
        return type(b) is type(a)
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Saved:
    raw: bytes
    model: dict[str, Any]

    def __repr__(self) -> str:  # hypothesis prints the fixtures of a failing example
        return f"Saved({len(self.raw)} bytes)"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    root = tmp_path_factory.mktemp("intact")
    checkpoints = {}
    for name, build in (("small", small_model), ("arrays", array_model)):
        model = build()
        ckpt.save(model, root / f"{name}.ckpt")
        checkpoints[name] = Saved((root / f"{name}.ckpt").read_bytes(), model)
    with open_archive(root / "arrays.ckpt") as archive:
        assert archive.buffer_names == ["buffers/0"]  # the big array really is out of band
    return checkpoints


def flip(position: int, mask: int) -> Damage:
    def damage(raw: bytes) -> bytes:
        at = position % len(raw)
        return raw[:at] + bytes([raw[at] ^ mask]) + raw[at + 1 :]

    return damage


def truncate(position: int) -> Damage:
    return lambda raw: raw[: position % len(raw)]


def insert(position: int, extra: bytes) -> Damage:
    return lambda raw: raw[: position % len(raw)] + extra + raw[position % len(raw) :]


def delete(position: int, count: int) -> Damage:
    return lambda raw: raw[: position % len(raw)] + raw[position % len(raw) + count :]


POSITIONS = st.integers(min_value=0, max_value=2**31)
DAMAGE = st.one_of(
    st.builds(flip, POSITIONS, st.integers(1, 255)),
    st.builds(truncate, POSITIONS),
    st.builds(insert, POSITIONS, st.binary(min_size=1, max_size=8)),
    st.builds(delete, POSITIONS, st.integers(1, 8)),
)


def outcome(path: Path, original: dict[str, Any]) -> str:
    """"refused" (a CkptError) or "equal"; anything else fails the test."""
    try:
        loaded = ckpt.load(path)
    except CkptError as exc:
        assert "\n" not in str(exc), exc
        return "refused"
    assert same(original, loaded), "damaged bytes loaded as different data"
    return "equal"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["small", "arrays"]), damages=st.lists(DAMAGE, min_size=1, max_size=3))
@example(name="small", damages=[delete(4, 1)])  # found by this test: a negative member offset reached seek()
def test_damage_is_refused_or_harmless(saved: dict[str, Saved], tmp_path: Path, name: str,
                                       damages: list[Damage]) -> None:
    raw = saved[name].raw
    for damage in damages:
        raw = damage(raw) or b"\0"
    path = tmp_path / "damaged.ckpt"
    path.write_bytes(raw)
    outcome(path, saved[name].model)


def test_a_damaged_zip_version_field_is_refused(saved: dict[str, Saved], tmp_path: Path) -> None:
    """Found by the test above: a "version needed" of 10.9 in the central
    directory made zipfile raise NotImplementedError."""
    raw = saved["small"].raw
    version_needed = raw.rindex(b"PK\x01\x02") + 6
    path = tmp_path / "damaged.ckpt"
    path.write_bytes(flip(version_needed, 64)(raw))
    assert outcome(path, saved["small"].model) == "refused"


def test_any_change_to_data_or_arrays_is_refused(saved: dict[str, Saved], tmp_path: Path) -> None:
    """Within a member's data no byte is spare: every flip there is caught by its sha256."""
    source = tmp_path / "intact.ckpt"
    source.write_bytes(saved["arrays"].raw)
    with open_archive(source) as archive:
        spans = [(archive.offset(n), archive.manifest.members[n].size) for n in ("data.pkl", "buffers/0")]
    rng = random.Random(11)
    for offset, size in spans:
        for position in rng.sample(range(offset, offset + size), 25):
            (tmp_path / "damaged.ckpt").write_bytes(flip(position, 1 << rng.randrange(8))(saved["arrays"].raw))
            assert outcome(tmp_path / "damaged.ckpt", saved["arrays"].model) == "refused"


def test_the_cli_agrees_with_the_library_on_damaged_files(saved: dict[str, Saved], tmp_path: Path) -> None:
    """A sample of damaged files through the installed ckpt: exit 0 exactly
    when the library loads them equal, else one line and exit 1 or 2."""
    rng = random.Random(5)
    cases = []
    for i in range(8):
        name = ("small", "arrays")[i % 2]
        damage = rng.choice([flip(rng.randrange(2**31), rng.randrange(1, 256)), truncate(rng.randrange(2**31)),
                             insert(rng.randrange(2**31), b"\0\xff"), delete(rng.randrange(2**31), 3)])
        path = tmp_path / f"damaged{i}.ckpt"
        path.write_bytes(damage(saved[name].raw))
        cases.append((path, outcome(path, saved[name].model)))
    results = run_many([["load", str(path)] for path, _ in cases])
    for (path, expected), result in zip(cases, results):
        assert "Traceback" not in result.err, result
        if expected == "equal":
            assert result.code == 0, result
        else:
            assert result.code in (1, 2) and len(result.err.strip().splitlines()) == 1, result


def test_mapped_arrays_are_checked_by_verify_not_by_load(saved: dict[str, Saved], tmp_path: Path) -> None:
    """The documented exception: --mmap does not hash the arrays it maps, so
    a flipped byte in one loads (as a different value); verify catches it."""
    path = tmp_path / "arrays.ckpt"
    path.write_bytes(saved["arrays"].raw)
    with open_archive(path) as archive:
        position = archive.offset("buffers/0") + 100
    path.write_bytes(flip(position, 0x40)(saved["arrays"].raw))
    with pytest.raises(CkptError, match="does not match its sha256"):
        ckpt.load(path)
    mapped = ckpt.load(path, mmap=True)
    assert not np.array_equal(mapped["big"], saved["arrays"].model["big"])
    report = ckpt.verify(path)
    assert "hashes" in [c.name for c in report.failures]
