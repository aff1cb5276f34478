"""The fast paths: numpy arrays and torch tensors out of band, zero-copy,
mapped loads, and damaged buffers refused. Every dtype and layout must come
back equal; none of this may trade correctness for speed."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

import ckpt
from ckpt.errors import CheckpointError
from ckpt.format.archive import open_archive

np = pytest.importorskip("numpy")

N = 20_000  # elements: large enough to go out of band for every dtype of 4+ bytes

NUMPY_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16",
                "float32", "float64", "complex64", "complex128", "datetime64[ns]", "timedelta64[s]", "U3", "S4",
                [("x", "<i4"), ("y", "<f8")]]


def sample(dtype: Any, n: int = N) -> Any:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 100, size=n)
    return raw.astype(dtype)


def save_and_load(model: Any, tmp_path: Path, **load: Any) -> tuple[Any, Path]:
    path = tmp_path / "m.ckpt"
    ckpt.save(model, path, overwrite=True)
    return ckpt.load(path, **load), path


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=str)
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_numpy_dtypes_round_trip(dtype: Any, mmap: bool, tmp_path: Path) -> None:
    array = sample(dtype)
    loaded, _ = save_and_load({"a": array, "lock": threading.Lock()}, tmp_path, mmap=mmap)
    assert loaded["a"].dtype == array.dtype and np.array_equal(loaded["a"], array)


@pytest.mark.parametrize("layout", ["fortran", "sliced", "empty", "zero-dim", "small", "transposed"])
def test_numpy_layouts_round_trip(layout: str, tmp_path: Path) -> None:
    base = np.arange(300 * 400, dtype=np.float64).reshape(300, 400)
    array = {
        "fortran": np.asfortranarray(base),
        "sliced": base[::3, 5:200],
        "empty": np.empty((0, 7)),
        "zero-dim": np.array(3.5),
        "small": np.ones(3),
        "transposed": base.T,
    }[layout]
    loaded, _ = save_and_load([array], tmp_path)
    assert loaded[0].shape == array.shape and np.array_equal(loaded[0], array)
    assert loaded[0].flags.f_contiguous == array.flags.f_contiguous or not array.flags.c_contiguous


def test_object_arrays_stay_in_band_and_are_scanned(tmp_path: Path) -> None:
    objects = np.array([{"k": 1}, [2], "three"] * 10_000, dtype=object)
    path = tmp_path / "m.ckpt"
    report = ckpt.save({"o": objects}, path)
    assert list(report.manifest.members) == ["data.pkl"]  # no buffer member for object arrays
    assert list(ckpt.load(path)["o"]) == list(objects)
    holding_lock = np.array([1, threading.Lock()], dtype=object)
    assert [f.kind for f in ckpt.scan({"o": holding_lock}).findings] == ["lock"]


def test_large_arrays_go_out_of_band_aligned_and_small_ones_stay_in(tmp_path: Path) -> None:
    model = {"big": np.zeros(50_000), "small": np.zeros(10)}
    path = tmp_path / "m.ckpt"
    report = ckpt.save(model, path)
    assert sorted(report.manifest.members) == ["buffers/0", "data.pkl"]
    assert report.manifest.members["buffers/0"].size == 50_000 * 8
    with open_archive(path) as archive:
        assert archive.offset("buffers/0") % 64 == 0


def test_a_shared_array_is_written_once(tmp_path: Path) -> None:
    shared = np.arange(100_000.0)
    loaded, path = save_and_load({"a": shared, "b": shared}, tmp_path)
    assert loaded["a"] is loaded["b"]
    assert ckpt.inspect(path).manifest.members.keys() == {"data.pkl", "buffers/0"}


def test_corrupted_buffer_is_refused_and_mmap_defers_the_check_to_verify(tmp_path: Path) -> None:
    model = {"w": np.arange(100_000.0)}
    path = tmp_path / "m.ckpt"
    ckpt.save(model, path)
    with open_archive(path) as archive:
        position = archive.offset("buffers/0") + 1000
    data = bytearray(path.read_bytes())
    data[position] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="buffers/0 does not match its sha256"):
        ckpt.load(path)
    mapped = ckpt.load(path, mmap=True)  # documented: mapped buffers are not hashed at load
    assert not np.array_equal(mapped["w"], model["w"])
    result = ckpt.verify(path)
    assert "hashes" in [c.name for c in result.failures] and not result.ok


def test_mmap_and_read_loads_are_equal(tmp_path: Path) -> None:
    model = {f"w{i}": sample("float32", 50_000 + i) for i in range(5)} | {"lock": threading.RLock()}
    path = tmp_path / "m.ckpt"
    ckpt.save(model, path)
    read, mapped = ckpt.load(path), ckpt.load(path, mmap=True)
    assert ckpt.verify(path, against=model).ok
    for key in model:
        if key != "lock":
            assert np.array_equal(read[key], mapped[key]) and np.array_equal(read[key], model[key])


# --- torch ------------------------------------------------------------------

TORCH_DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool",
                "complex64"]


@pytest.fixture
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("mmap", [False, True], ids=["read", "mmap"])
def test_torch_dtypes_round_trip(torch: Any, dtype: str, mmap: bool, tmp_path: Path) -> None:
    tensor = (torch.arange(40_000) % 7).to(getattr(torch, dtype)).reshape(200, 200)
    loaded, _ = save_and_load({"t": tensor}, tmp_path, mmap=mmap)
    assert loaded["t"].dtype == tensor.dtype and torch.equal(loaded["t"], tensor)


def test_torch_views_sharing_storage_stay_shared(torch: Any, tmp_path: Path) -> None:
    base = torch.arange(100_000, dtype=torch.float32)
    model = {"base": base, "view": base[10:5000:3], "grid": base.view(250, 400).t()}
    loaded, path = save_and_load(model, tmp_path)
    for key in model:
        assert torch.equal(loaded[key], model[key]) and loaded[key].stride() == model[key].stride()
    loaded["base"][10] = -1.0
    assert loaded["view"][0] == -1.0  # still a view of the same storage
    assert sorted(ckpt.inspect(path).manifest.members) == ["buffers/0", "data.pkl"]  # one storage, one buffer


def test_torch_module_in_a_serving_class_predicts_the_same(torch: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    module.register_buffer("scale", torch.full((4,), 2.0))
    model = {"net": module, "lock": threading.Lock()}
    loaded, path = save_and_load(model, tmp_path)
    x = torch.randn(8, 64)
    assert torch.equal(loaded["net"](x), module(x))
    assert all(p.requires_grad for p in loaded["net"].parameters())
    assert isinstance(next(loaded["net"].parameters()), torch.nn.Parameter)
    assert not any("_load_from_bytes" in g.name for g in ckpt.inspect(path).globals)


def test_torch_tensor_state_and_grad(torch: Any, tmp_path: Path) -> None:
    tagged = torch.ones(3)
    tagged.note = "calibrated"
    leaf = torch.zeros(2, requires_grad=True)
    conj = torch.tensor([1 + 2j, 3 - 1j]).conj()
    loaded, _ = save_and_load({"tagged": tagged, "leaf": leaf, "conj": conj, "empty": torch.empty(0, 3)}, tmp_path)
    assert loaded["tagged"].note == "calibrated"
    assert loaded["leaf"].requires_grad and loaded["leaf"].is_leaf
    assert torch.equal(loaded["conj"], conj.resolve_conj())
    assert loaded["empty"].shape == (0, 3)


def test_torch_results_of_autograd_and_tensors_torch_writes_itself_round_trip(torch: Any, tmp_path: Path) -> None:
    """A loss kept on the model (not a leaf: autograd made it) comes back
    as a leaf that requires grad, as from torch.save; sparse and quantized
    tensors go through torch's own reduction."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    loss = layer(torch.randn(4, 3)).pow(2).mean()
    sparse = torch.eye(3).to_sparse()
    quantized = torch.quantize_per_tensor(torch.tensor([0.5, -1.0]), 0.1, 0, torch.qint8)
    loaded, _ = save_and_load({"loss": loss, "sparse": sparse, "quantized": quantized}, tmp_path)
    assert loaded["loss"].item() == loss.item() and loaded["loss"].is_leaf and loaded["loss"].requires_grad
    loaded["loss"].backward()
    assert loaded["loss"].grad == 1.0
    assert loaded["sparse"].is_sparse and torch.equal(loaded["sparse"].to_dense(), torch.eye(3))
    assert torch.equal(loaded["quantized"].dequantize(), quantized.dequantize())


def test_torch_tensors_are_not_copied_into_data_pkl(torch: Any, tmp_path: Path) -> None:
    model = {"w": torch.zeros(1_000_000)}
    path = tmp_path / "m.ckpt"
    report = ckpt.save(model, path)
    assert report.manifest.members["data.pkl"].size < 2_000
    assert report.manifest.members["buffers/0"].size == 4_000_000
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("buffers/0").compress_type == zipfile.ZIP_STORED
