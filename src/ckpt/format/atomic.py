"""Write a file so that it is either the old one or the complete new one.

A temporary file in the destination directory, flushed and fsynced, then
`os.replace`d over the destination, and the directory fsynced: an existing
file is never half-overwritten, not by an error, Ctrl-C, a full disk or
`kill -9`. Temporary names carry the writer's pid, so a later write can
remove the leftovers of a writer that was killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ckpt.errors import Argument, WriteError

_TEMP_SUFFIX = ".ckpt-tmp"


@contextlib.contextmanager
def atomic_write(path: Path, *, overwrite: bool) -> Iterator[BinaryIO]:
    """Yield a file in `path`'s directory that becomes `path` only if the
    block completes; on any error or interrupt it is removed and `path` is
    untouched."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    _check_destination(path, directory, overwrite)
    remove_stale_temporaries(directory, path.name)
    temp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
        _fsync_directory(directory)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from None
        raise


def _check_destination(path: Path, directory: Path, overwrite: bool) -> None:
    if not directory.is_dir():
        raise WriteError(f"cannot write {str(path)!r}: directory {str(directory)!r} does not exist")
    if path.is_dir():
        raise WriteError(f"cannot write {str(path)!r}: it is a directory", hint="give a file name")
    if path.exists() and not overwrite:
        raise exists_error(str(path), "file")


def exists_error(name: str, what: str) -> WriteError:
    """An existing destination, which save replaces only with overwrite=True."""
    replace = Argument("overwrite", True)
    return WriteError(
        f"{name!r} already exists",
        hint=f"pass {replace} to replace it; the old {what} stays intact until the new one is complete",
        arguments=[replace],
    )


DEVICE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})
"""Errors of the destination's device while a file is written (not of the object being saved)."""


def _write_error(exc: OSError, path: Path) -> WriteError:
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "read-only file system",
        errno.EFBIG: "the file is too large for the device",
        errno.EIO: "input/output error on the device",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return WriteError(f"cannot write {str(path)!r}: {reason}; nothing was written and any previous file is intact")


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path, name: str) -> list[Path]:
    """Remove temporary files for `name` whose writing process is gone."""
    removed = []
    ours = re.compile(rf"\.{re.escape(name)}\.([0-9]{{1,10}})\.[0-9a-f]+{re.escape(_TEMP_SUFFIX)}")
    for temp in directory.glob(f".{glob_escape(name)}.*{_TEMP_SUFFIX}"):
        # exactly .NAME.PID.HEX.ckpt-tmp: a longer name (NAME.1.x) is another checkpoint's
        match = ours.fullmatch(temp.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OverflowError:  # not a pid this system can have: not ours to remove
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
