"""Checkpoints at fsspec URLs: s3://, gs://, az://, memory://, ...

An object store has no rename, so the local atomic write (`atomic`) cannot
be used. Save builds the archive in a local temporary file exactly as for a
file object (zipfile seeks back to patch headers: streaming it to a store
would change the format), then uploads that file with commit deferred: on
S3 a multipart upload that `commit()` completes once every part is up, and
that `discard()` aborts on any error or interrupt, Ctrl-C included. The
object appears whole or not at all. Load downloads the object into a
temporary file and checks it as a local one (the archive's directory is at
its end, and members are hashed as they are read from there).

fsspec and its backends are optional extras, imported only when a URL is
used; a missing one is one line naming the extra to install. `file://` URLs
are local paths (`local_path`), written atomically by rename.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeGuard

from ckpt.errors import CkptError, MissingFileError, WriteError, one_line
from ckpt.format.atomic import exists_error

Progress = Callable[[str, int, int], None]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure",
          "adl": "azure"}
"""URL scheme -> the ckpt extra that installs fsspec and its backend."""

_BACKENDS = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}

_CHUNK = 8 << 20
"""Bytes copied at a time between the temporary file and the store."""


def is_url(path: object) -> TypeGuard[str]:
    """A URL that fsspec opens (`s3://...`); `file://` URLs are local paths."""
    return isinstance(path, str) and _URL.match(path) is not None and not path.startswith("file://")


def local_path(path: Any) -> Any:
    """A `file://` URL as the local path it names; anything else unchanged."""
    if isinstance(path, str) and path.startswith("file://"):
        # Imported here: urllib.request brings http.client and ssl, not needed at every start of ckpt.
        from urllib.request import url2pathname

        return url2pathname(urllib.parse.urlsplit(path).path)
    return path


def protocol(url: str) -> str:
    return url.split("://", 1)[0].lower()


class Remote:
    """One checkpoint URL and the fsspec filesystem that reaches it."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None, *, private: bool = False) -> None:
        self.url = url
        self.fs, self.path = _filesystem(url, storage_options or {}, private)

    def exists(self) -> bool:
        """Whether the object exists (asked before writing it)."""
        return bool(self._call("write", lambda: self.fs.exists(self.path)))

    def upload(self, spool: BinaryIO, *, overwrite: bool, progress: Progress | None = None) -> None:
        """Write the complete archive in `spool` as the object, visible only
        once all of it is stored. The filesystem must be `private`: its
        transaction flag (which defers every file it opens to `commit()`,
        memory:// included) concerns no one else. With `overwrite=False`
        the store refuses an object created meanwhile where it can (S3's
        If-None-Match, GCS's generation 0)."""
        total = spool.seek(0, 2)
        spool.seek(0)
        self.fs.start_transaction()
        file = self._call("write", lambda: self.fs.open(self.path, "wb" if overwrite else "xb"))
        try:
            self._call("write", lambda: _copy(spool, file, total, "uploading", progress))
            self._call("write", file.close)  # the last part is stored; nothing is visible yet
            self._call("write", file.commit)  # the multipart upload completes: the object appears whole
        except BaseException:
            _abandon(file)
            raise

    @contextlib.contextmanager
    def download(self, progress: Progress | None = None) -> Iterator[BinaryIO]:
        """The object, copied into a temporary file (which has a descriptor
        and seeks, as the archive reader needs)."""
        with tempfile.TemporaryFile() as spool:
            def fetch() -> None:
                self.fs.invalidate_cache(self.path)  # a listing cached before a save would name the old object
                with self.fs.open(self.path, "rb") as source:
                    _copy(source, spool, source.size or 0, "downloading", progress)

            self._call("read", fetch)
            spool.seek(0)
            yield spool

    def _call(self, action: str, work: Callable[[], Any]) -> Any:
        """`work`, with the store's errors as one line each."""
        try:
            return work()
        except CkptError:
            raise
        except FileExistsError:
            raise exists_error(self.url, "object") from None
        except FileNotFoundError as exc:
            if action == "read":
                raise MissingFileError(f"no such checkpoint: {self.url!r}", self.url) from None
            raise WriteError(f"cannot write {self.url!r}: no such bucket or container ({_reason(exc)})") from None
        except PermissionError as exc:
            raise _error(action, f"{self.url!r}: access denied ({_reason(exc)}); check the credentials the "
                                 f"{protocol(self.url)} backend finds (environment, config files, storage options)") from None
        except Exception as exc:  # the backend's own (botocore's NoCredentialsError, connection errors, ...)
            raise _error(action, f"{self.url!r}: {type(exc).__name__}: {_reason(exc)}") from None


def _error(action: str, message: str) -> CkptError:
    if action == "write":
        return WriteError(f"cannot write {message}; no new object was made and any previous one is intact")
    return CkptError(f"cannot read {message}")


def _reason(exc: BaseException) -> str:
    return one_line(str(exc)) or type(exc).__name__


def _copy(source: Any, destination: Any, total: int, stage: str, progress: Progress | None) -> None:
    done = 0
    while chunk := source.read(_CHUNK):
        destination.write(chunk)
        done += len(chunk)
        if progress:
            progress(stage, done, total)


def _abandon(file: Any) -> None:
    """Throw an upload away: `discard()` aborts S3's multipart upload
    (gcsfs cancels its resumable one). Never `close()` it: closing uploads
    what is buffered, and for adlfs commits the blocks staged so far. The
    file is marked closed so that its finalizer does not close it either.
    An abort that fails (the network is gone) leaves an unfinished upload,
    which no reader sees."""
    with contextlib.suppress(Exception):
        file.discard()
    with contextlib.suppress(AttributeError):
        file.closed = True


def _filesystem(url: str, options: dict[str, Any], private: bool) -> tuple[Any, str]:
    """fsspec's filesystem for `url` (fsspec's config and the backend's own
    environment variables apply beneath `options`), or one line saying
    which extra to install."""
    try:
        import fsspec.core
    except ImportError:
        raise _missing(url, "fsspec is not installed", fsspec_missing=True) from None
    try:
        return fsspec.core.url_to_fs(url, skip_instance_cache=private, **options)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise _missing(url, one_line(str(exc))) from None
    except ValueError as exc:
        raise CkptError(f"cannot open {url!r}: {one_line(str(exc))}",
                        hint="ckpt reads and writes the URLs fsspec knows: s3://, gs://, az://, memory://, ...") from None
    except TypeError as exc:
        raise CkptError(f"cannot open {url!r}: a storage option is not valid for {protocol(url)}:// URLs "
                        f"({one_line(str(exc))})") from None


def _missing(url: str, detail: str, *, fsspec_missing: bool = False) -> CkptError:
    """A backend (or fsspec itself) that is not installed: the extra that
    installs it, where ckpt has one."""
    extra = EXTRAS.get(protocol(url))
    if extra is None:
        return CkptError(f"cannot open {url!r}: {detail}", hint="install fsspec and the backend for this scheme")
    missing = f"fsspec and {_BACKENDS[extra]}, which are" if fsspec_missing else f"{_BACKENDS[extra]}, which is"
    return CkptError(f"cannot open {url!r}: {protocol(url)}:// URLs need {missing} not installed",
                     hint=f"pip install 'ckpt[{extra}]'")
