"""Compare two checkpoints without running either: what `ckpt diff A B` reports.

Everything comes from what each file says about itself and from raw bytes:
the manifests (root type, versions, modules, signer, substitutions), each
member's sha256 (every member is hashed first: a damaged file is refused),
and the arrays the manifests list by path (`arrays`), whose elements are
read straight from their buffer members with numpy, never through the
pickle. So files from anyone can be compared. What cannot be compared so is
said, not guessed: the objects inside data.pkl are compared by its hash only
(telling them apart would mean unpickling), and the buffers of a file whose
manifest lists no arrays (saved by an older ckpt) member by member.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ckpt.errors import CheckpointError, CkptError
from ckpt.format.archive import DATA, Archive
from ckpt.format.files import Readable, StorageOptions, opened
from ckpt.format.manifest import Array, Manifest, Substitution
from ckpt.trust.keys import fingerprint


@dataclass(frozen=True)
class Change:
    """A manifest field whose value differs: `a` in the first file, `b` in the second."""

    field: str
    a: str
    b: str


@dataclass(frozen=True)
class ArrayDiff:
    """One array or tensor, by path (or by member, where a file gives no path)."""

    key: str
    a: Array | None
    b: Array | None
    same: bool
    elements: int | None = None
    """How many elements differ, where the values could be read."""
    largest: float | None = None
    """The largest absolute difference between two elements, where they are numbers."""
    note: str = ""
    """Why the values were not compared (shapes differ, a dtype numpy cannot read, ...)."""

    @property
    def status(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "same" if self.same else "changed"


@dataclass(frozen=True)
class SubstitutionDiff:
    path: str
    a: Substitution | None
    b: Substitution | None


@dataclass(frozen=True)
class Diff:
    a: str
    b: str
    manifest: tuple[Change, ...]
    """Root type, target, versions, modules and signer, where they differ."""
    data_same: bool
    """data.pkl's bytes are the same (its sha256): the objects outside the listed arrays are."""
    arrays: tuple[ArrayDiff, ...]
    substitutions: tuple[SubstitutionDiff, ...]
    """Those that differ."""
    notes: tuple[str, ...] = ()
    """What could not be compared, and why."""

    @property
    def equal(self) -> bool:
        """Same content: data.pkl, every array, the substitutions and the root
        type. Versions, target and signer are reported, not counted."""
        return (self.data_same and all(a.same for a in self.arrays) and not self.substitutions
                and not any(c.field == "root type" for c in self.manifest))

    @property
    def exit_code(self) -> int:
        return 0 if self.equal else 1


def diff(a: Readable, b: Readable, *, storage_options: StorageOptions = None) -> Diff:
    """Compare the checkpoints `a` and `b` (paths, URLs or binary file
    objects) without unpickling either. A damaged file is a CkptError."""
    with contextlib.ExitStack() as stack:
        try:
            first, second = (stack.enter_context(opened(path, storage_options)) for path in (a, b))
            damage = [*first.hash_failures(), *second.hash_failures()]
        except CheckpointError as exc:
            damage = [str(exc)]
        if damage:  # bad input for a comparison (exit 2), where load would say the file failed (exit 1)
            raise CkptError(f"cannot compare: {damage[0]}", hint="only intact checkpoints are compared")
        notes: list[str] = []
        arrays = _arrays(first, second, notes)
        return Diff(str(first.path), str(second.path), _changes(first.manifest, second.manifest),
                    first.manifest.members[DATA].sha256 == second.manifest.members[DATA].sha256, arrays,
                    _substitutions(first.manifest, second.manifest), tuple(notes))


def _changes(a: Manifest, b: Manifest) -> tuple[Change, ...]:
    fields = [("root type", a.root_type, b.root_type), ("target", a.target, b.target),
              ("ckpt", a.ckpt_version, b.ckpt_version), ("python", a.python, b.python),
              ("signer", _signer(a), _signer(b))]
    fields += [(f"module {name}", a.modules.get(name, "(none)"), b.modules.get(name, "(none)"))
               for name in sorted(a.modules.keys() | b.modules.keys())]
    return tuple(Change(name, x, y) for name, x, y in fields if x != y)


def _signer(manifest: Manifest) -> str:
    signature = manifest.signature
    if signature is None or not signature.public_key:
        return "unsigned"
    return fingerprint(signature.public_key)


def _substitutions(a: Manifest, b: Manifest) -> tuple[SubstitutionDiff, ...]:
    left = {s.path: s for s in a.substitutions}
    right = {s.path: s for s in b.substitutions}
    return tuple(SubstitutionDiff(path, left.get(path), right.get(path)) for path in {**left, **right}
                 if left.get(path) != right.get(path))


def _arrays(first: Archive, second: Archive, notes: list[str]) -> tuple[ArrayDiff, ...]:
    """Each array of either file, paired by path."""
    left, right = _listed(first, notes), _listed(second, notes)
    numpy = _numpy(notes) if left or right else None
    out = []
    for key in {**left, **right}:
        x, y = left.get(key), right.get(key)
        if x is None or y is None:
            out.append(ArrayDiff(key, x, y, False))
        else:
            out.append(_compare(key, x, y, first, second, numpy))
    return tuple(out)


def _listed(archive: Archive, notes: list[str]) -> dict[str, Array]:
    """The file's arrays by path (by member where it has none); for a file
    whose manifest lists none, its buffer members, as bytes."""
    manifest = archive.manifest
    if manifest.arrays or not archive.buffer_names:
        return {a.path or a.member: a for a in manifest.arrays}
    notes.append(f"{archive.path} lists no arrays (saved by an older ckpt): its buffers are compared as bytes, "
                 "member by member")
    return {name: Array("", "bytes", "uint8", (manifest.members[name].size,), name, 0, (1,),
                        manifest.members[name].size) for name in archive.buffer_names}


def _numpy(notes: list[str]) -> Any:
    try:
        import numpy
    except ImportError:
        notes.append("numpy is not installed here: arrays are compared by their bytes' sha256 only")
        return None
    return numpy


def _compare(key: str, x: Array, y: Array, first: Archive, second: Archive, numpy: Any) -> ArrayDiff:
    if (x.dtype, x.shape) != (y.dtype, y.shape):
        what = [f"dtype {x.dtype} -> {y.dtype}"] if x.dtype != y.dtype else []
        what += [f"shape {list(x.shape)} -> {list(y.shape)}"] if x.shape != y.shape else []
        return ArrayDiff(key, x, y, False, note="; ".join(what))
    if _layout(x, first) == _layout(y, second):
        return ArrayDiff(key, x, y, True)  # the same bytes, read the same way
    if numpy is None:
        return ArrayDiff(key, x, y, False, note="its bytes differ (numpy is needed to compare the values)")
    try:
        left, right = _view(numpy, x, first), _view(numpy, y, second)
    except _Unreadable as exc:
        return ArrayDiff(key, x, y, False, note=str(exc))
    elements, largest = _differences(numpy, left, right)
    return ArrayDiff(key, x, y, elements == 0, elements, largest)


def _layout(array: Array, archive: Archive) -> tuple[Any, ...]:
    return archive.manifest.members[array.member].sha256, array.offset, array.strides


class _Unreadable(Exception):
    """The values cannot be read as numbers (say why)."""


_TORCH_AS_NUMPY = {name: name for name in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                           "uint64", "float16", "float32", "float64", "complex64", "complex128")}
"""torch dtypes numpy reads under the same name; bfloat16 is read through float32 (`_bfloat16`)."""


def _view(numpy: Any, array: Array, archive: Archive) -> Any:
    """The array's elements over its member, as numpy reads them; bounds checked by numpy itself."""
    torch_made = array.type.startswith("torch.")
    name = "uint16" if torch_made and array.dtype == "bfloat16" else (
        _TORCH_AS_NUMPY.get(array.dtype) if torch_made else array.dtype)
    try:
        dtype = numpy.dtype(name)
    except (TypeError, ValueError):
        raise _Unreadable(f"numpy does not read dtype {array.dtype}: compared by bytes only") from None
    if math.prod(array.shape) * dtype.itemsize > 16 * archive.manifest.members[array.member].size + (1 << 20):
        raise _Unreadable("a view far larger than its bytes: compared by bytes only")
    try:
        view = numpy.ndarray(array.shape, dtype, buffer=archive.mapped(array.member), offset=array.offset,
                             strides=array.strides)
    except (TypeError, ValueError) as exc:
        raise _Unreadable(f"its layout does not fit its member ({exc})") from None
    return _bfloat16(numpy, view) if name == "uint16" and array.dtype == "bfloat16" else view


def _bfloat16(numpy: Any, bits: Any) -> Any:
    """bfloat16 values as float32: their bits are a float32's upper half."""
    return (bits.astype(numpy.uint32) << 16).view(numpy.float32)


_CHUNK = 1 << 22
"""Elements compared at a time: bounded memory for arrays of any size."""


def _differences(numpy: Any, left: Any, right: Any) -> tuple[int, float | None]:
    """How many elements differ, and the largest absolute difference (None
    for values that are not numbers); NaN equals NaN, a NaN against a number is inf."""
    measure = _measure(numpy, left.dtype)
    elements, largest = 0, 0.0
    for x, y in zip(_chunks(left), _chunks(right)):
        count, most = measure(x, y)
        elements += count
        if most is not None:
            largest = max(largest, most)
    return elements, (largest if measure is not _equality else None)


def _chunks(array: Any) -> Iterator[Any]:
    if array.ndim == 0 or array.size == 0:
        yield array
        return
    step = max(1, _CHUNK // max(1, array.size // array.shape[0]))
    for start in range(0, array.shape[0], step):
        yield array[start : start + step]


def _measure(numpy: Any, dtype: Any) -> Callable[[Any, Any], tuple[int, float | None]]:
    if dtype.kind in "fc":
        return lambda x, y: _numbers(numpy, x.astype(numpy.complex128 if dtype.kind == "c" else numpy.float64),
                                     y.astype(numpy.complex128 if dtype.kind == "c" else numpy.float64))
    if dtype.kind in "iub":
        return lambda x, y: _numbers(numpy, x.astype(numpy.float64), y.astype(numpy.float64))
    return _equality


def _numbers(numpy: Any, x: Any, y: Any) -> tuple[int, float]:
    with numpy.errstate(invalid="ignore", over="ignore"):
        same = (x == y) | (numpy.isnan(x) & numpy.isnan(y))
        gaps = numpy.abs(x - y)
    gaps[same] = 0
    gaps[numpy.isnan(gaps)] = numpy.inf
    return int(numpy.count_nonzero(~same)), float(gaps.max()) if gaps.size else 0.0


def _equality(x: Any, y: Any) -> tuple[int, None]:
    """Values that are not numbers (strings, dates, records): how many differ."""
    return int((x != y).sum()), None
