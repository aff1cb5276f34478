"""Load a checkpoint: open and check the archive, see who signed it, then
build it whole or as data only.

Every member's hash is checked first. A file signed by the user's own key
or a key they trust loads whole, with plain pickle (`load_whole`); anything
else goes through the data-only loader (`trust.data_only`): its stream
judged, then built by an unpickler that runs nothing the file names.
"""

from __future__ import annotations

import functools
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ckpt.errors import Argument, CheckpointError, one_line
from ckpt.format.archive import DATA, Archive
from ckpt.format.files import (
    File,
    Progress,
    Readable,
    StorageOptions,
    display_name,
    opened,
)
from ckpt.format.manifest import Manifest
from ckpt.format.modules import require_modules, version_warnings
from ckpt.objects import stack
from ckpt.objects.collector import collector_paused
from ckpt.trust import data_only
from ckpt.trust.keys import TrustedKey
from ckpt.trust.keys import trusted_keys as known_keys
from ckpt.trust.policy import Trust, require_installed
from ckpt.trust.provenance import Provenance, provenance


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
    else loads as data only (`trust.data_only`), admitting beyond ckpt's reviewed
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
    keys = known_keys(trusted_keys)
    what = display_name(path)
    # The collector is off for the whole load: the manifest's entries, the
    # members and what data.pkl builds are new and reachable, and
    # collections would find nothing (with 100,000 members they were a
    # third of the load, and made it grow faster than the member count).
    with collector_paused(), opened(path, storage_options, progress, mmap=mmap) as archive:
        require_modules(archive.manifest, what)
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
            plan = data_only.audit(data, given, origin, what)  # refused before any array is read
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
    return pickle.loads(data, buffers=buffers)  # reads the bytes in place (a BytesIO would copy a bytearray)



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
