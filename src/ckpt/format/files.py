"""Where a checkpoint is written and read: a path, a URL or a file object.

Save builds the archive where it can make it appear whole or not at all
(`writing`); load, inspect, verify and diff read an archive from any of
the three (`opened`). A URL's filesystem comes from fsspec (`remote`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

from ckpt.errors import Argument, CkptError, WriteError
from ckpt.format import remote
from ckpt.format.archive import Archive, open_archive, read_archive
from ckpt.format.atomic import atomic_write, exists_error

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): bytes done of total (total 0 when unknown)."""


File = str | os.PathLike[str] | BinaryIO
"""Where save writes and load reads: a path, an fsspec URL (`s3://bucket/key`),
or an open binary file object."""


StorageOptions = dict[str, Any] | None
"""Options for the fsspec filesystem of a URL (`endpoint_url`, `anon`, ...),
over fsspec's configuration and the backend's environment variables."""


def is_path(file: object) -> TypeGuard[str | os.PathLike[str]]:
    """A path (str or os.PathLike), as opposed to a file object."""
    return isinstance(file, (str, os.PathLike))


def local_only(path: object, storage_options: StorageOptions) -> None:
    """storage_options are for a URL's filesystem: given for anything else, they would be silently ignored."""
    if storage_options:
        raise TypeError(f"storage_options apply to URLs (s3://, gs://, ...), not to {display_name(path)}")


def display_name(file: object) -> str:
    """How reports and messages name a path or a file object: its `name`
    when it has a path for one (open() gives it), else its type."""
    if is_path(file):
        return str(file)
    if isinstance(file, Archive):
        return str(file.path)
    name = getattr(file, "name", None)
    return name if isinstance(name, str) else f"<{type(file).__name__}>"


def binary_file(file: Any, method: str) -> BinaryIO:
    """`file`, if it is a binary file object with `method` ("read" or
    "write"); a TypeError naming what it is otherwise."""
    if not callable(getattr(file, method, None)):
        raise TypeError(f"expected a path or a binary file object with .{method}(), not {type(file).__name__}")
    if isinstance(file, io.TextIOBase):
        mode = "rb" if method == "read" else "wb"
        raise TypeError(f"{display_name(file)} is a text stream: open it in binary mode ({mode!r})")
    return file


@contextlib.contextmanager
def writing(path: File, overwrite: bool, storage_options: StorageOptions,
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
        local_only(path, storage_options)
        local = Path(remote.local_path(path))
        replaced = local.exists()
        with atomic_write(local, overwrite=overwrite) as file:
            yield file, replaced
        return
    else:
        local_only(path, storage_options)
        deliver, replaced = functools.partial(_copy_into, binary_file(path, "write"), display_name(path)), False
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
    local_only(path, storage_options)
    if is_path(path):
        with open_archive(remote.local_path(path)) as archive:
            yield archive
        return
    source = binary_file(path, "read")
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(source, spool)
        with read_archive(spool, display_name(path)) as archive:
            yield archive
