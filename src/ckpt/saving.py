"""Save a checkpoint: the object pickled with its thread kinds rewrapped,
streamed into an atomic, hashed archive, the manifest last, signed with the
user's own key.

A scan runs only when its answer is needed (strips to resolve, rewraps to
list by path, a failure to explain); the branches that hold arrays are
walked to list them by path. `background=True` captures the object on the
caller's thread and writes the archive on another (`pending`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import os
import platform
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, TypeVar, overload

from ckpt import pending
from ckpt.errors import Argument, CkptError, SaveError
from ckpt.format import remote
from ckpt.format.archive import DATA, ArchiveWriter, aligned_copy, buffer_name
from ckpt.format.arrays import listed as listed_arrays
from ckpt.format.atomic import DEVICE_ERRORS
from ckpt.format.files import (
    File,
    Progress,
    StorageOptions,
    display_name,
    is_path,
    writing,
)
from ckpt.format.manifest import Array, Manifest, Substitution
from ckpt.format.modules import module_versions
from ckpt.kinds import catalog, registry
from ckpt.kinds.catalog import Action
from ckpt.kinds.pickler import RewrapPickler, memo_size
from ckpt.kinds.registry import Removal
from ckpt.objects import stack
from ckpt.objects.collector import collector_paused
from ckpt.objects.paths import follow
from ckpt.pending import PendingSave
from ckpt.scanning.groups import Group, group
from ckpt.scanning.notices import logger_notices
from ckpt.scanning.replay import Disagreement, StreamOracle
from ckpt.scanning.walk import Finding, Oracle, ScanReport, qualified_name, scan_object
from ckpt.trust.analysis import analyse
from ckpt.trust.keys import signing_key

T = TypeVar("T")







@dataclass(frozen=True)
class SaveReport:
    path: str
    manifest: Manifest
    size: int
    seconds: float
    replaced: bool
    notices: tuple[str, ...] = ()
    """What was saved by name and left behind (a logger's handlers), and
    anything unusual about how the save went."""


@overload
def save(obj: Any, path: File, *, strip: Iterable[str] = ..., target: str = ..., overwrite: bool = ...,
         progress: Progress | None = ..., storage_options: StorageOptions = ...,
         background: Literal[False] = ...) -> SaveReport: ...


@overload
def save(obj: Any, path: File, *, strip: Iterable[str] = ..., target: str = ..., overwrite: bool = ...,
         progress: Progress | None = ..., storage_options: StorageOptions = ...,
         background: Literal[True]) -> PendingSave: ...


def save(
    obj: Any,
    path: File,
    *,
    strip: Iterable[str] = (),
    target: str = "",
    overwrite: bool = True,
    progress: Progress | None = None,
    storage_options: StorageOptions = None,
    background: bool = False,
) -> SaveReport | PendingSave:
    """Write `obj` as a checkpoint; thread kinds rewrapped, `strip` paths saved as None.

    Refuses (SaveError, nothing written) if anything else is unpicklable.
    The manifest is signed with the user's own key (`keys.own_key`: made on
    the first save), so the file loads whole for them and for whoever
    trusts their public key.
    An existing `path` is replaced atomically, as torch.save and joblib.dump
    replace it, but never half-overwritten; `overwrite=False` refuses it
    (WriteError) instead. A binary file object receives the archive once it
    is complete, and so does a URL (`s3://bucket/key`, with its fsspec
    `storage_options`), as one object that appears whole or not at all
    (see `format.files.writing`).

    With `background=True` the call returns once the object is captured (its
    pickle made and its arrays copied: change the model at will afterwards)
    with a `PendingSave`; hashing, writing, fsync and the rename go on in a
    thread of their own. Its `wait()` gives the SaveReport, or raises what
    the save raised. A later save to the same path, in the background or
    not, writes only once this one is done; the interpreter waits for
    pending saves before it exits.
    """
    started = time.perf_counter()
    if background and not (is_path(path) or remote.is_url(path)):
        raise TypeError("a background save takes a path or URL, not a file object (the caller may close it before "
                        "the save is done)")
    strip = tuple(strip)
    # The scan walks the failing parts of the graph: run it only when its
    # answer is needed (strips to resolve, rewraps to list, a failure to
    # explain). A model plain pickle handles is pickled once.
    report = _scan(obj, target) if strip else None
    stripped = _resolve_strips(report, strip) if report else {}
    if report:
        _refuse_unsaveable(report, stripped)
    key = _pending_key(path)
    if background:
        captured = _retrying(obj, report, functools.partial(_capture, obj, report, stripped, target=target,
                                                            progress=progress, copy=True, out=None))
        return pending.start(key, functools.partial(_archive, captured, path, overwrite=overwrite, progress=progress,
                                                    storage_options=storage_options, started=started))
    write = functools.partial(_write, obj, path, report, stripped, target=target, overwrite=overwrite,
                              progress=progress, storage_options=storage_options, started=started)
    return pending.after(key, functools.partial(_retrying, obj, report, write))


def _retrying(obj: Any, report: ScanReport | None, work: Callable[..., T]) -> T:
    """`work(by_value=...)`, done again with code by value or on a deep stack
    if the first pickle needs either (at most three times: each retry turns
    one of the two on)."""
    by_value = type(obj) in _HELD_CODE or (report is not None and any(f.action is Action.BY_VALUE
                                                                       for f in report.findings))
    deep = False
    while True:
        try:
            return stack.run(functools.partial(work, by_value=by_value)) if deep else work(by_value=by_value)
        except _RetryByValue:
            by_value = True
            if type(obj) not in (dict, list, tuple):
                _HELD_CODE.add(type(obj))
        except _TooDeep:
            deep = True


def _pending_key(path: File) -> str:
    """Which saves must wait for each other: those to one file or URL."""
    if remote.is_url(path):
        return str(path)
    return os.path.abspath(remote.local_path(path)) if is_path(path) else f"<file object {id(path)}>"


_HELD_CODE: weakref.WeakSet[type] = weakref.WeakSet()
"""Types of models a save of which needed code by value: the next save of
one (each epoch of a training loop) writes it that way at once, instead of
pickling it twice."""


class _RetryByValue(Exception):
    """The first pickle, without code by value, failed or named something of
    `__main__`: save writes the file again, with code by value."""


class _TooDeep(Exception):
    """Pickling ran out of recursion: save writes the file again on a deep stack (`stack`)."""


@dataclass(frozen=True)
class _Captured:
    """A save's object, taken: its pickle, its arrays, and the manifest but
    for the members' hashes and the signature."""

    manifest: Manifest
    data: bytearray
    buffers: list[memoryview]
    notices: tuple[str, ...]


def _write(obj: Any, path: File, report: ScanReport | None, stripped: dict[int, Finding], *, by_value: bool,
           target: str, overwrite: bool, progress: Progress | None, storage_options: StorageOptions,
           started: float) -> SaveReport:
    """A save done at once: data.pkl goes into the archive as the pickler makes it."""
    with _archive_at(path, overwrite, storage_options, progress) as (writer, file, replaced):
        with writer.stream(DATA) as stream:
            captured = _capture(obj, report, stripped, by_value=by_value, target=target, progress=progress,
                                copy=False, out=stream)
        return _finish(writer, file, replaced, captured, path, progress, started)


def _archive(captured: _Captured, path: File, *, overwrite: bool, progress: Progress | None,
             storage_options: StorageOptions, started: float) -> SaveReport:
    """A background save's second half: the captured object written, hashed,
    signed and made durable."""
    with _archive_at(path, overwrite, storage_options, progress) as (writer, file, replaced):
        with writer.stream(DATA) as stream:
            stream.write(captured.data)
        return _finish(writer, file, replaced, captured, path, progress, started)


@contextlib.contextmanager
def _archive_at(path: File, overwrite: bool, storage_options: StorageOptions,
                progress: Progress | None) -> Iterator[tuple[ArchiveWriter, BinaryIO, bool]]:
    """The archive being written for `path` (see `format.files.writing`), and whether it replaces a checkpoint."""
    durable = is_path(path) and not remote.is_url(path)  # a local file, fsynced once complete
    with (writing(path, overwrite, storage_options, progress) as (file, replaced),
          ArchiveWriter(file, durable=durable) as writer):
        yield writer, file, replaced


def _finish(writer: ArchiveWriter, file: BinaryIO, replaced: bool, captured: _Captured, path: File,
            progress: Progress | None, started: float) -> SaveReport:
    """The arrays, then the manifest, signed with the user's key: the archive complete."""
    signing = signing_key()
    total = sum(b.nbytes for b in captured.buffers)
    done = 0
    for index, buffer in enumerate(captured.buffers):
        writer.buffer(buffer_name(index), buffer)
        done += buffer.nbytes
        if progress:
            progress("writing arrays", done, total)
    manifest = dataclasses.replace(captured.manifest, members=dict(writer.members)).signed(signing)
    writer.finish(manifest)
    return SaveReport(display_name(path), manifest, file.tell(), time.perf_counter() - started, replaced, captured.notices)


def _capture(obj: Any, report: ScanReport | None, stripped: dict[int, Finding], *, by_value: bool, target: str,
             progress: Progress | None, copy: bool, out: Any) -> _Captured:
    """The pickling pass and what the manifest says of it: everything that
    reads the model, on the caller's thread. data.pkl goes to `out` as it is
    made (the archive) and is kept; with `copy`, the arrays are copied too,
    so the model may change as soon as this returns."""
    notices: list[str] = []
    with collector_paused():
        removals = _removals(obj, stripped)
        pickler, data = _pickle(obj, stripped, removals, progress, target, by_value, out)
        objects = memo_size(pickler, pickler.tap, data)  # before the walks pickle more; data takes what it wrote
        modules = pickler.modules()
        if report is None and pickler.rewrapped:
            report = _locate(obj, target, pickler, data, notices)
        arrays = listed_arrays(obj, pickler, data, notices)
        pickler.clear_memo()
        buffers = [_owned(b.raw()) if copy else b.raw() for b in pickler.buffers]
        findings = report.findings if report else ()
        manifest = _manifest(obj, target, findings, stripped, removals, pickler, modules, objects, arrays)
    return _Captured(manifest, data if copy else bytearray(), buffers,
                     (*logger_notices(pickler.loggers.values()), *notices))


def _owned(view: memoryview) -> memoryview:
    """A copy of an array's bytes the model cannot change (a background save's)."""
    return memoryview(aligned_copy(view)).cast("B")


















def _scan(obj: Any, target: str, oracle: Oracle | None = None) -> ScanReport:
    """`scan`, for save: a dict another thread resizes while it is walked
    stops the walk, as it stops pickle; that is the object's doing, said so."""
    try:
        return scan_object(obj, target=target, oracle=oracle)
    except RuntimeError as exc:
        raise SaveError(
            f"the object changed while it was saved ({exc}); nothing was written",
            hint="stop the threads that modify it, or hold the lock that guards it while saving",
        ) from None


def _resolve_strips(report: ScanReport, strip: tuple[str, ...]) -> dict[int, Finding]:
    """Map each `strip` path (or pattern with `[*]`) to the findings there (by object id)."""
    found = {p: report.at(p) for p in strip}
    unknown = [p for p, at in found.items() if not at]
    if unknown:
        known = ", ".join(sorted(p for f in report.findings for p in f.paths)) or "none"
        given = Argument("strip", [unknown[0]])
        raise CkptError(
            f"{given}: no finding at that path",
            hint=f"strip takes a path exactly as ckpt scan prints it; findings: {known}",
            arguments=[given],
        )
    return {f.object_id: f for at in found.values() for f in at}


def _refuse_unsaveable(report: ScanReport, stripped: dict[int, Finding]) -> None:
    """Every blocking finding in one message, like ones as one group (as the
    scan's table shows them), and one strip that covers them all."""
    blocking = [f for f in report.findings if f.action is Action.ERROR and f.object_id not in stripped]
    if not blocking:
        return
    groups = group(blocking, lambda f: (f.type, f.kind))
    strip = Argument("strip", [g.pattern for g in groups])
    raise SaveError(
        f"cannot save: {len(blocking)} object(s) ckpt cannot rewrap: {'; '.join(map(_blocking, groups))}; "
        "nothing was written",
        hint=f"fix them (ckpt scan --suggest), or pass {strip} to save each as None",
        arguments=[strip],
    )


def _blocking(g: Group[Finding]) -> str:
    count = f", {len(g.members):,} objects" if g.grouped else ""
    note = g.common(lambda f: f.note)
    return f"{g.pattern} ({g.first.kind}{count}{': ' + note if note else ''})"


class _Kept:
    """data.pkl on its way into the archive (`out`, if any), kept whole for
    the replay that locates substitutions (and, for a background save, for
    the archive written later)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.kept = bytearray()

    def write(self, data: Any) -> int:
        self.kept += data
        return self.out.write(data) if self.out is not None else len(data)  # type: ignore[no-any-return]


def _removals(obj: Any, stripped: dict[int, Finding]) -> dict[int, Removal]:
    """The stripped callables that leave their registries instead of staying as None, by object id."""
    planned = {oid: registry.plan(f.obj, f.holders, obj, registry.default_reduce) for oid, f in stripped.items()}
    return {oid: r for oid, r in planned.items() if r is not None and catalog.kind_for(r.anchor) is None}


def _pickle(obj: Any, stripped: dict[int, Finding], removals: dict[int, Removal], progress: Progress | None,
            target: str, by_value: bool, into: Any) -> tuple[RewrapPickler, bytearray]:
    out = _Kept(into)
    report = (lambda written: progress("pickling", written, 0)) if progress else None
    pickler = RewrapPickler(out, strip_ids=stripped.keys(), removals=removals.values(),  # type: ignore[arg-type]
                            by_value=by_value, progress=report)
    try:
        pickler.dump(obj)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in DEVICE_ERRORS:
            raise  # the disk failed, not the object: atomic_write says so and removes the file
        if isinstance(exc, RecursionError) and not stack.levels():
            raise _TooDeep from None
        if not by_value:
            raise _RetryByValue from None
        _refuse_unsaveable(_scan(obj, target), stripped)  # names every path, if it can
        raise SaveError(
            f"pickling failed: {type(exc).__name__}: {exc}; nothing was written",
            hint="a reducer raised, or the object changed while it was saved; run ckpt scan",
        ) from None
    if not by_value and pickler.tap.names_main and _names_main(out.kept):
        raise _RetryByValue
    return pickler, out.kept


def _names_main(data: bytearray) -> bool:
    """Whether the pickle names a global of `__main__` (the script's own
    functions and classes, which are written by value)."""
    return any(name.startswith("__main__:") for name in analyse(data).globals)


def _locate(obj: Any, target: str, pickler: RewrapPickler, data: bytearray, notices: list[str]) -> ScanReport:
    """Where each object the pickler substituted sits, for the manifest: the
    scan's own walk (so the same paths, in the same order), asking the
    stream just written which objects lead to one (`replay.StreamOracle`)
    instead of pickling halves of the model again. Checked against what the
    pickler recorded; where the two disagree, the plain scan decides, and
    the report says so."""
    try:
        oracle = StreamOracle(pickler, data, list(pickler.substituted))
        report = _scan(obj, target, oracle)
        disagreement = _disagreement(obj, report, oracle.targets, pickler.by_value)
    except Disagreement as exc:
        disagreement = str(exc)
    if disagreement is None:
        return report
    notices.append(f"the paths of the substituted objects came from a second scan of the model ({disagreement})")
    return _scan(obj, target)


def _disagreement(obj: Any, report: ScanReport, substituted: list[Any], by_value: bool) -> str | None:
    """Why the walk's findings are not the objects the pickler substituted,
    each at its path, or None. The pickler also substitutes what a found
    object's own reduction holds (a Condition's lock), which the scan does
    not list: those must be what pickling the found objects substitutes."""
    unexplained = [f.path for f in report.findings if f.kind == catalog.UNPICKLABLE.name]
    if unexplained:
        return f"the stream leads to {unexplained[0]} but nothing there was substituted"
    found = {id(f.obj) for f in report.findings}
    recorded = {id(o) for o in substituted}
    if not found <= recorded:
        return f"the walk found {len(found - recorded)} object(s) the pickler did not substitute"
    inner = RewrapPickler(None, by_value=by_value)  # writes nowhere
    inner.dump(tuple(f.obj for f in report.findings))
    missed = recorded - found - {id(o) for o in inner.substituted}
    if missed:
        return f"the walk missed {len(missed)} substituted object(s)"
    for finding in report.findings:
        for where in finding.paths:
            try:
                if follow(obj, where) is not finding.obj:
                    return f"{where} is not the object found there"
            except LookupError:
                continue  # a path `follow` cannot evaluate without running code (list(...)[i], __getstate__())
    return None


def _manifest(
    obj: Any,
    target: str,
    findings: tuple[Finding, ...],
    stripped: dict[int, Finding],
    removals: dict[int, Removal],
    pickler: RewrapPickler,
    modules: set[str],
    objects: int,
    arrays: tuple[Array, ...],
) -> Manifest:
    from ckpt import __version__

    return Manifest(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ckpt_version=__version__,
        python=platform.python_version(),
        target=target,
        root_type=qualified_name(type(obj)),
        members={},  # hashed as the archive is written
        substitutions=tuple(_substitution(f, f.object_id in stripped, f.object_id in removals,
                                          pickler.notes.get(f.object_id)) for f in findings),
        modules=module_versions({*modules, type(obj).__module__}),
        objects=objects,
        arrays=arrays,
        stack=stack.levels(),
    )


def _substitution(finding: Finding, user_stripped: bool, removed: bool, saved_note: str | None) -> Substitution:
    """A finding as the manifest records it; `saved_note` is what the pickler
    knew and the scan could not (what a weak container kept)."""
    if removed:
        return Substitution(finding.path, finding.kind, Action.REMOVE.value,
                            f"the entry (--strip: removed from {finding.registry}, whose owner calls every entry, "
                            "instead of restored as None)", finding.note, finding.also_at, finding.registry)
    if user_stripped:
        return Substitution(finding.path, finding.kind, Action.STRIP.value, "the object (restored as None: --strip)",
                            finding.note, finding.also_at)
    return Substitution(finding.path, finding.kind, finding.action.value, finding.lost, saved_note or finding.note,
                        finding.also_at)






# --- load ---------------------------------------------------------------------






















# --- inspect ------------------------------------------------------------------








