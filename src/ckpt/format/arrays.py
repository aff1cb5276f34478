"""The arrays and tensors save writes out of band, listed by path.

The manifest's `arrays` describe each one the way a safetensors header
does (dtype, shape, where its bytes are), so `inspect` and `diff` show and
compare them without unpickling anything. Where each sits comes from the
scan's own walk (`scan.locate`), asking the stream save has just written
which objects hold an out-of-band buffer (`scanning.replay.StreamOracle` with
`buffers`): only the branches that hold arrays are walked, at memo-GET
cost, and the walk stops at each numpy array or torch tensor it meets. A
tensor is listed with its own dtype, shape, strides and offset into its
storage's member, so views of one storage share a member. A buffer the walk
does not reach is listed as its exporter describes it, without a path.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any

from ckpt.format.archive import buffer_name
from ckpt.format.manifest import Array
from ckpt.kinds.pickler import RewrapPickler
from ckpt.kinds.tensors import tensor_types
from ckpt.scanning.replay import Disagreement, StreamOracle
from ckpt.scanning.walk import locate, qualified_name


def listed(obj: Any, pickler: RewrapPickler, data: bytes | bytearray, notices: list[str]) -> tuple[Array, ...]:
    """The arrays and tensors over the out-of-band buffers `pickler` wrote,
    each at its path in `obj` (`data`: all it wrote); the save's `notices`
    say how many could not be placed."""
    if not pickler.buffers:
        return ()
    members = {id(buffer): buffer_name(i) for i, buffer in enumerate(pickler.buffers)}
    exporters = [memoryview(buffer).obj for buffer in pickler.buffers]
    numpy = sys.modules.get("numpy")
    by_address = {_address(exporter): member for exporter, member in zip(exporters, members.values())
                  if numpy is not None and isinstance(exporter, numpy.ndarray)}
    storages = pickler.tensor_storages()
    tensors = tensor_types()

    def member_of(candidate: Any) -> str | None:
        if isinstance(candidate, tensors):
            raw = pickler.tensor_bytes(candidate)
            return by_address.get(_address(raw)) if raw is not None else None
        if numpy is not None and isinstance(candidate, numpy.ndarray) and not candidate.dtype.hasobject:
            return by_address.get(_address(candidate))
        return None

    placed: dict[str, list[Array]] = {}
    try:
        found = locate(obj, StreamOracle(pickler, data, [], buffers=True), lambda o: member_of(o) is not None)
    except (Disagreement, RuntimeError):  # the stream cannot be followed, or another thread resized a dict
        found = []
    for candidate, path, also in found:
        member = member_of(candidate)
        placed.setdefault(member, []).append(_describe(candidate, member, path, also, storages))  # type: ignore[arg-type]
    unplaced = [_describe(exporter, member, "", (), storages) for exporter, member in zip(exporters, members.values())
                if member not in placed]
    if unplaced:
        notices.append(f"{len(unplaced)} out-of-band buffer(s) could not be placed in the model: the manifest "
                       "lists them without a path")
    arrays = [*(array for group in placed.values() for array in group), *unplaced]
    return tuple(sorted(arrays, key=lambda a: int(a.member.rpartition("/")[2])))


def _address(array: Any) -> tuple[int, int]:
    """Where a numpy array's bytes are: its transposed view, which numpy hands over for a Fortran-ordered one, agrees."""
    return array.__array_interface__["data"][0], array.nbytes


def _describe(exporter: Any, member: str, path: str, also: tuple[str, ...], storages: dict[int, Any]) -> Array:
    """One entry: a tensor's own view of its storage, a numpy array, a
    storage's bytes (which the walk did not reach), or the raw bytes of anything else."""
    kind = qualified_name(type(exporter))
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exporter, torch.Tensor):
        size = exporter.element_size()
        return Array(path, kind, str(exporter.dtype).removeprefix("torch."), tuple(exporter.shape), member,
                     exporter.storage_offset() * size, tuple(n * size for n in exporter.stride()),
                     exporter.numel() * size, also)
    numpy = sys.modules.get("numpy")
    dtype = storages.get(_address(exporter)[0]) if numpy is not None and isinstance(exporter, numpy.ndarray) else None
    if dtype is not None:
        size = dtype.itemsize
        return Array(path, "torch.UntypedStorage", str(dtype).removeprefix("torch."), (exporter.nbytes // size,),
                     member, 0, (size,), exporter.nbytes, also)
    if numpy is not None and isinstance(exporter, numpy.ndarray):
        return Array(path, kind, _numpy_dtype(numpy, exporter.dtype), tuple(exporter.shape), member, 0,
                     tuple(exporter.strides), exporter.nbytes, also)
    raw = pickle.PickleBuffer(exporter).raw()
    return Array(path, kind, "uint8", (raw.nbytes,), member, 0, (1,), raw.nbytes, also)


def _numpy_dtype(numpy: Any, dtype: Any) -> str:
    """numpy's name for it where that name gives it back (float32, datetime64[ns]), else its
    type string (>f4: another byte order), or its fields for a structured dtype."""
    if dtype.names is not None:
        return str(dtype.descr)
    try:
        return dtype.name if numpy.dtype(dtype.name) == dtype else dtype.str  # type: ignore[no-any-return]
    except TypeError:  # a name numpy does not read back (str96 for <U3)
        return dtype.str  # type: ignore[no-any-return]

