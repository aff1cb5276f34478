"""Save, load and inspect checkpoint files: the pieces put together.

save:    rewrap-pickle streamed into an atomic, hashed archive (a scan only
         to resolve strips, list rewraps or name what pickle refused; a walk
         of the branches that hold arrays, to list them by path) ->
         manifest last, signed with the user's own key.
load:    open and check the archive -> who signed it (`provenance`) ->
         read and hash each member once -> a signer the user trusts: plain
         pickle of those bytes; anyone else: the data-only unpickler.
inspect: open and check the archive -> the stream analysis; nothing runs.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.util
import io
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

from . import catalog, registry, remote, safeload, stack
from .arrays import listed as listed_arrays
from .atomic import DEVICE_ERRORS, atomic_write, exists_error
from .catalog import Action
from .container import DATA, Archive, ArchiveWriter, buffer_name, open_archive, read_archive
from .errors import Argument, CheckpointError, CkptError, SaveError, WriteError, one_line
from .groups import Group, group
from .keys import PublicKey, TrustedKeys, signing_key, trusted_keys
from .manifest import Array, Manifest, Substitution
from .notices import logger_notices
from .paths import follow
from .pickler import RewrapPickler, memo_size
from .policy import Judgement, Trust, judge, require_installed
from .provenance import Origin, Provenance, provenance
from .reach import Disagreement, StreamOracle
from .registry import Removal
from .scan import Finding, Oracle, ScanReport, qualified_name, scan_object
from .stream import StreamFacts, analyse, collector_paused

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): bytes done of total (total 0 when unknown)."""

File = str | os.PathLike[str] | BinaryIO
"""Where save writes and load reads: a path, an fsspec URL (`s3://bucket/key`),
or an open binary file object."""

StorageOptions = dict[str, Any] | None
"""Options for the fsspec filesystem of a URL (`endpoint_url`, `anon`, ...),
over fsspec's configuration and the backend's environment variables."""


TrustedKey = str | os.PathLike[str] | PublicKey
"""A public key a load trusts: the path of its file, its OpenSSH line, or a PublicKey."""


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


def save(
    obj: Any,
    path: File,
    *,
    strip: Iterable[str] = (),
    target: str = "",
    overwrite: bool = True,
    progress: Progress | None = None,
    storage_options: StorageOptions = None,
) -> SaveReport:
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
    (see `_writing`).
    """
    started = time.perf_counter()
    strip = tuple(strip)
    # The scan walks the failing parts of the graph: run it only when its
    # answer is needed (strips to resolve, rewraps to list, a failure to
    # explain). A model plain pickle handles is pickled once.
    report = _scan(obj, target) if strip else None
    stripped = _resolve_strips(report, strip) if report else {}
    if report:
        _refuse_unsaveable(report, stripped)
    write = functools.partial(_write, obj, path, report, stripped, target=target, overwrite=overwrite,
                              progress=progress, storage_options=storage_options, started=started)
    by_value = type(obj) in _HELD_CODE or (report is not None and any(f.action is Action.BY_VALUE
                                                                       for f in report.findings))
    deep = False
    while True:  # at most three writes: each retry turns one of the two on
        try:
            return stack.run(functools.partial(write, by_value=by_value)) if deep else write(by_value=by_value)
        except _RetryByValue:
            by_value = True
            if type(obj) not in (dict, list, tuple):
                _HELD_CODE.add(type(obj))
        except _TooDeep:
            deep = True


_HELD_CODE: weakref.WeakSet[type] = weakref.WeakSet()
"""Types of models a save of which needed code by value: the next save of
one (each epoch of a training loop) writes it that way at once, instead of
pickling it twice."""


class _RetryByValue(Exception):
    """The first pickle, without code by value, failed or named something of
    `__main__`: save writes the file again, with code by value."""


class _TooDeep(Exception):
    """Pickling ran out of recursion: save writes the file again on a deep stack (`stack`)."""


def _write(obj: Any, path: File, report: ScanReport | None, stripped: dict[int, Finding], *, by_value: bool,
           target: str, overwrite: bool, progress: Progress | None, storage_options: StorageOptions,
           started: float) -> SaveReport:
    notices: list[str] = []
    durable = is_path(path) and not remote.is_url(path)  # a local file, fsynced once complete
    signing = signing_key()
    with (_writing(path, overwrite, storage_options, progress) as (file, replaced),
          ArchiveWriter(file, durable=durable) as writer, collector_paused()):
        removals = _removals(obj, stripped)
        pickler, data = _pickle_into(writer, obj, stripped, removals, progress, target, by_value)
        objects = memo_size(pickler, pickler.tap, data)  # before the walks pickle more; data takes what it wrote
        modules = pickler.modules()
        if report is None and pickler.rewrapped:
            report = _locate(obj, target, pickler, data, notices)
        arrays = listed_arrays(obj, pickler, data, notices)
        del data
        pickler.clear_memo()
        total = sum(b.raw().nbytes for b in pickler.buffers)
        done = 0
        for index, buffer in enumerate(pickler.buffers):
            writer.buffer(buffer_name(index), buffer.raw())
            done += buffer.raw().nbytes
            if progress:
                progress("writing arrays", done, total)
        findings = report.findings if report else ()
        manifest = _manifest(obj, target, writer, findings, stripped, removals, pickler, modules, objects,
                             arrays).signed(signing)
        writer.finish(manifest)
        size = file.tell()
    return SaveReport(_name(path), manifest, size, time.perf_counter() - started, replaced,
                      (*logger_notices(pickler.loggers.values()), *notices))


def is_path(file: object) -> TypeGuard[str | os.PathLike[str]]:
    """A path (str or os.PathLike), as opposed to a file object."""
    return isinstance(file, (str, os.PathLike))


def _local_only(path: object, storage_options: StorageOptions) -> None:
    """storage_options are for a URL's filesystem: given for anything else, they would be silently ignored."""
    if storage_options:
        raise TypeError(f"storage_options apply to URLs (s3://, gs://, ...), not to {_name(path)}")


def _name(file: object) -> str:
    """How reports and messages name a path or a file object: its `name`
    when it has a path for one (open() gives it), else its type."""
    if is_path(file):
        return str(file)
    if isinstance(file, Archive):
        return str(file.path)
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else f"<{type(file).__name__}>"


def _binary_file(file: Any, method: str) -> BinaryIO:
    """`file`, if it is a binary file object with `method` ("read" or
    "write"); a TypeError naming what it is otherwise."""
    if not callable(getattr(file, method, None)):
        raise TypeError(f"expected a path or a binary file object with .{method}(), not {type(file).__name__}")
    if isinstance(file, io.TextIOBase):
        mode = "rb" if method == "read" else "wb"
        raise TypeError(f"{_name(file)} is a text stream: open it in binary mode ({mode!r})")
    return file


@contextlib.contextmanager
def _writing(path: File, overwrite: bool, storage_options: StorageOptions,
             progress: Progress | None) -> Iterator[tuple[BinaryIO, bool]]:
    """Where save builds the archive, and whether it replaces a checkpoint.
    A path: an atomic write. A URL or a file object (seekable or not, at its
    current position): a temporary file, uploaded or copied only once the
    archive is complete, so a refused or failed save writes nothing there.
    A URL's object appears whole or not at all (`remote.Remote.upload`); for
    a file object `overwrite` does not apply."""
    if remote.is_url(path):
        destination = remote.Remote(path, storage_options, private=True)
        replaced = destination.exists()
        if replaced and not overwrite:
            raise exists_error(path, "object")  # before the work; the store checks again as the upload completes
        deliver = functools.partial(destination.upload, overwrite=overwrite, progress=progress)
    elif is_path(path):
        _local_only(path, storage_options)
        local = Path(remote.local_path(path))
        replaced = local.exists()
        with atomic_write(local, overwrite=overwrite) as file:
            yield file, replaced
        return
    else:
        _local_only(path, storage_options)
        deliver, replaced = functools.partial(_copy_into, _binary_file(path, "write"), _name(path)), False
    with tempfile.TemporaryFile() as spool:
        yield spool, replaced
        spool.seek(0)
        deliver(spool)


def _copy_into(destination: BinaryIO, name: str, spool: BinaryIO) -> None:
    try:
        shutil.copyfileobj(spool, destination)
    except OSError as exc:
        raise WriteError(f"cannot write {name}: {exc.strerror or exc}; part of the checkpoint may "
                         "have been written to it") from None


Readable = File | Archive
"""What load, inspect and verify read: a File, or an archive `opened` already
(so that a load and a verify of one URL download it once)."""


@contextlib.contextmanager
def opened(path: Readable, storage_options: StorageOptions = None, progress: Progress | None = None, *,
           mmap: bool = False) -> Iterator[Archive]:
    """The opened archive at a path or URL, or in a readable binary file
    object: read from its current position to its end into a temporary file
    first, since the archive is read out of order and a pipe cannot seek. A
    URL's object is downloaded into one (`remote.Remote.download`), unless
    the caller means to `mmap` it, which needs a local file. An Archive is
    handed back as it is (its opener closes it)."""
    if isinstance(path, Archive):
        yield path
        return
    if remote.is_url(path):
        if mmap:
            local = Argument("mmap", True)
            raise CkptError(f"{local} maps a local file, and {path} is remote (load it without {local}, or "
                            "download it and map the local copy)", arguments=[local])
        with remote.Remote(path, storage_options).download(progress) as spool, read_archive(spool, path) as archive:
            yield archive
        return
    _local_only(path, storage_options)
    if is_path(path):
        with open_archive(remote.local_path(path)) as archive:
            yield archive
        return
    source = _binary_file(path, "read")
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(source, spool)
        with read_archive(spool, _name(path)) as archive:
            yield archive


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


class _Tee:
    """data.pkl on its way into the archive, kept for the replay that locates substitutions."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.kept = bytearray()

    def write(self, data: Any) -> int:
        self.kept += data
        return self.out.write(data)  # type: ignore[no-any-return]


def _removals(obj: Any, stripped: dict[int, Finding]) -> dict[int, Removal]:
    """The stripped callables that leave their registries instead of staying as None, by object id."""
    planned = {oid: registry.plan(f.obj, f.holders, obj, registry.default_reduce) for oid, f in stripped.items()}
    return {oid: r for oid, r in planned.items() if r is not None and catalog.kind_for(r.anchor) is None}


def _pickle_into(
    writer: ArchiveWriter, obj: Any, stripped: dict[int, Finding], removals: dict[int, Removal],
    progress: Progress | None, target: str, by_value: bool,
) -> tuple[RewrapPickler, bytearray]:
    with writer.stream(DATA) as stream:
        out = _Tee(stream)
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
    stream just written which objects lead to one (`reach.StreamOracle`)
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
    writer: ArchiveWriter,
    findings: tuple[Finding, ...],
    stripped: dict[int, Finding],
    removals: dict[int, Removal],
    pickler: RewrapPickler,
    modules: set[str],
    objects: int,
    arrays: tuple[Array, ...],
) -> Manifest:
    from . import __version__

    return Manifest(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        ckpt_version=__version__,
        python=platform.python_version(),
        target=target,
        root_type=qualified_name(type(obj)),
        members=dict(writer.members),
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


def module_versions(modules: Iterable[str]) -> dict[str, str]:
    """Version of each top-level package of `modules` (not the standard library)."""
    versions = {}
    for top in sorted({name.split(".")[0] for name in modules}):
        if top in sys.stdlib_module_names or top.startswith("_"):
            continue
        version = installed_version(top)
        if version:
            versions[top] = version
    return versions


def installed_version(module: str) -> str | None:
    loaded = sys.modules.get(module)
    with warnings.catch_warnings():  # some packages deprecate __version__ (markupsafe, itsdangerous)
        warnings.simplefilter("ignore")
        version = getattr(loaded, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import PackageNotFoundError, version as dist_version

        return dist_version(module)
    except (PackageNotFoundError, ValueError):
        return None


# --- load ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    path: str
    manifest: Manifest
    size: int
    seconds: float
    mapped: bool
    provenance: Provenance
    """Who signed the file: it loaded whole if its signer is trusted, as data only otherwise."""
    warnings: tuple[str, ...] = ()
    obj: Any = field(default=None, compare=False, repr=False)


def load_checkpoint(
    path: Readable,
    *,
    trust: Iterable[str] = (),
    trusted_keys: Iterable[TrustedKey] = (),
    mmap: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
    storage_options: StorageOptions = None,
) -> LoadReport:
    """Load a checkpoint, with what a caller should know.

    Who signed it decides how (`provenance`): your own key, or a public key
    you trust (`ckpt key trust`, or `trusted_keys`: paths of public-key
    files or OpenSSH lines), loads it whole, as plain pickle would; anything
    else loads as data only (`safeload`), admitting beyond ckpt's reviewed
    table only what `trust` names: packages (their public classes) or exact
    `module:qualname` names. Every member's hash is checked first, either way.
    With `mmap`, array buffers are mapped copy-on-write from the file instead
    of read, and their hashes are checked only by `verify` (data.pkl is always hashed).
    `path` may be a URL (with its fsspec `storage_options`), a readable
    binary file object, or an archive `opened` already; `mmap` needs a
    local file.
    """
    started = time.perf_counter()
    given = Trust.parse(trust)
    keys = load_trusted_keys(trusted_keys)
    what = _name(path)
    with opened(path, storage_options, progress, mmap=mmap) as archive:
        _require_modules(archive.manifest, what)
        require_installed(given)  # after: a trusted package the file needs is named with its saved version
        origin = provenance(archive.manifest, keys)
        data = archive.read(DATA)
        warnings = version_warnings(archive.manifest)
        if strict and warnings:
            refuse = Argument("strict", True)
            raise CheckpointError(f"{what}: {warnings[0]} ({refuse})", arguments=[refuse])
        if origin.whole:
            obj = load_whole(data, _buffers(archive, mmap, progress), what, archive.manifest.stack)
        else:
            plan = safeload.audit(data, given, origin, what)  # refused before any array is read
            loaded = plan.construct(_buffers(archive, mmap, progress))
            obj, warnings = loaded.obj, [*warnings, *loaded.warnings]
        return LoadReport(what, archive.manifest, archive.size, time.perf_counter() - started, mmap,
                          origin, tuple(warnings), obj)


def load(path: File, *, trust: Iterable[str] = (), trusted_keys: Iterable[TrustedKey] = (), mmap: bool = False,
         storage_options: StorageOptions = None) -> Any:
    """Load a checkpoint and return the object (see `load_checkpoint`)."""
    return load_checkpoint(path, trust=trust, trusted_keys=trusted_keys, mmap=mmap,
                           storage_options=storage_options).obj


def load_whole(data: Any, buffers: list[Any], what: str, levels: int = 0) -> Any:
    """Plain pickle of a file whose signer is trusted: what it wrote, it gets
    back. On a stack as deep as the one the file was written with (`levels`,
    from its manifest), or a deep one if the load runs out of recursion."""
    load = functools.partial(_unpickled, data, buffers)
    try:
        if levels:
            return stack.run(load, min(levels, stack.DEEPEST))
        try:
            return load()
        except RecursionError:
            return stack.run(load)
    except (KeyboardInterrupt, MemoryError):
        raise
    except RecursionError:
        raise CheckpointError(f"cannot load {what}: its unpickling ran out of recursion even on a stack of "
                              f"{stack.DEEPEST:,} levels", hint="nested deeper than that, or the code of a class "
                              "in it (a __getattr__, a __setstate__) recurses without end; run with --traceback") from None
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {one_line(str(exc))}",
                              hint="the file is signed by a key you trust, so this is the saved objects' own "
                              "unpickling failing here (a missing or changed class?); run with --traceback") from None


def _unpickled(data: Any, buffers: list[Any]) -> Any:
    with collector_paused():  # what a load builds is new and reachable: collections would find nothing
        return pickle.Unpickler(io.BytesIO(data), buffers=buffers).load()


def load_trusted_keys(given: Iterable[TrustedKey]) -> TrustedKeys:
    """Your own key, the keys `ckpt key trust` stored, and the `given` ones."""
    return trusted_keys(given)


def _require_modules(manifest: Manifest, what: str) -> None:
    """Refuse up front, naming the version it was saved with, a checkpoint
    that needs a package this environment does not have."""
    for module, version in sorted(manifest.modules.items()):
        if module not in sys.modules and importlib.util.find_spec(module) is None:
            raise CheckpointError(
                f"cannot load {what}: it needs {module} (saved with version {version}), which is not installed here",
                hint=f"pip install '{module}=={version}'",
            )


def _buffers(archive: Archive, mmap: bool, progress: Progress | None) -> list[Any]:
    """The out-of-band buffers, mapped, or read (and hashed, two at a time)."""
    names = archive.buffer_names
    if mmap:
        return [archive.mapped(name) for name in names]
    total = sum(archive.manifest.members[n].size for n in names)
    buffers: list[Any] = []
    for batch in range(0, len(names), _READ_BATCH):
        buffers += archive.read_all(names[batch : batch + _READ_BATCH])
        if progress:
            progress("reading arrays", sum(archive.manifest.members[n].size for n in names[: len(buffers)]), total)
    return buffers


_READ_BATCH = 8
"""Members read between progress reports (hashing overlaps within a batch)."""


def version_warnings(manifest: Manifest) -> list[str]:
    """Modules whose installed version differs from the one the checkpoint was saved with."""
    warnings = []
    for module, saved in sorted(manifest.modules.items()):
        here = installed_version(module)
        if here != saved:
            warnings.append(f"{module} was {saved} when saved and is {here or 'not installed'} here")
    return warnings


# --- inspect ------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalVerdict:
    """What the loader would do with one global of data.pkl."""

    name: str
    uses: tuple[str, ...]
    admitted: bool
    why: str
    """The reviewed reason or trust entry that admits it, or why it is refused."""
    trust: str | None = None
    """For a refused global: the narrowest --trust that admits it."""


@dataclass(frozen=True)
class Inspection:
    path: str
    size: int
    manifest: Manifest
    provenance: Provenance
    globals: tuple[GlobalVerdict, ...]
    """What data.pkl names, each judged as the data-only unpickler would (a
    file from a trusted signer loads whole, and its verdicts are only advice)."""
    problems: tuple[str, ...]
    """Integrity problems; for a file that would load as data only, also what
    no pickle of ordinary objects does and globals ckpt would never load."""
    untrusted: tuple[str, ...]
    """Globals that need --trust to load as data."""
    analysis_failed: str | None = None
    """Why data.pkl could not be read opcode by opcode (then nothing about it is known for sure)."""

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def inspect(path: Readable, *, trust: Iterable[str] = (), trusted_keys: Iterable[TrustedKey] = (),
            storage_options: StorageOptions = None) -> Inspection:
    """Describe a checkpoint (at a path or URL, or in a file object, as
    `load` reads one): who signed it, so how it would load, and what
    loading it as data under `trust` would admit, without running anything
    in it: the data-only loader's own analysis; nothing from the file is
    built or imported."""
    given = Trust.parse(trust)
    require_installed(given)
    with opened(path, storage_options) as archive:
        problems = archive.hash_failures()
        origin = provenance(archive.manifest, load_trusted_keys(trusted_keys))
        if origin.origin is Origin.ALTERED:
            problems.append(f"it was {origin.describe()}")
        data = bytes(archive.mapped(DATA))  # as stored: inspect shows damaged files too
        facts = analyse(data)
        verdicts = _verdicts(facts, judge(facts, given, imports=False))
        if facts.malformed:
            problems.append(f"data.pkl {facts.malformed}")
        elif not origin.whole:
            problems += [f"data.pkl {p}" for p in facts.problems]
            problems += [f"{v.name} {v.why}, and ckpt never loads it as data" for v in verdicts
                         if not v.admitted and not v.trust]
        untrusted = tuple(v.name for v in verdicts if v.trust)
        return Inspection(_name(path), archive.size, archive.manifest, origin, verdicts, tuple(problems), untrusted,
                          facts.malformed)


def _verdicts(facts: StreamFacts, judgement: Judgement) -> tuple[GlobalVerdict, ...]:
    refused = {r.name: r for r in judgement.refusals}
    verdicts = []
    for name in facts.globals:
        uses = tuple(facts.uses(name))
        if name in judgement.admissions:
            verdicts.append(GlobalVerdict(name, uses, True, judgement.admissions[name].source))
        else:
            verdicts.append(GlobalVerdict(name, uses, False, refused[name].why, refused[name].trust))
    return tuple(verdicts)
