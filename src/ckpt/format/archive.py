"""The checkpoint file: a stored zip archive, written atomically, read verified.

Layout (see docs/FORMAT.md):

    data.pkl        pickle protocol 5 of the rewrapped object
    buffers/N       large contiguous buffers (arrays) out of band, 64-byte aligned
    manifest.json   written last: versions, target, sha256 and size of every
                    member, substitutions, globals, module versions, signature

Reading checks the structure (zip magic, member names, stored not deflated,
declared sizes within the file, manifest schema and version, members equal
to the manifest's) before any member is handed on, and every member's bytes
are hashed as they are read: nothing reaches the unpickler unverified.

The manifest's schema is `manifest`; the atomic write of the file is
`atomic`.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import mmap
import os
import queue
import re
import struct
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from ckpt.errors import CheckpointError, CkptError, MissingFileError
from ckpt.format.manifest import Manifest, Member, parse_manifest

DATA = "data.pkl"
MANIFEST = "manifest.json"
ALIGN = 64
_BUFFER_NAME = re.compile(r"^buffers/(0|[1-9][0-9]{0,8})$")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_PADDING_ID = 0xCC64  # a private zip extra field id used only to align member data
_CHUNK = 1 << 20
_MAX_MANIFEST = 1 << 28


# --- hashing alongside I/O ------------------------------------------------------


class _Worker:
    """One thread that runs what it is given, in order: a ThreadPoolExecutor
    of one, except that it takes work while the interpreter exits (an
    executor refuses new work then, and a background save still has its
    members to hash and fsync)."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)


class _BackgroundHash:
    """sha256 of one member, computed in a thread of its own while the caller
    goes on reading or writing: hashlib releases the GIL on large buffers, so
    on two cores hashing costs little wall time. The chunks (views the caller
    keeps alive) are hashed in the order they were fed. With `crc`, the zip
    format's CRC-32 too, in a second thread (zlib releases the GIL as well).
    A member smaller than `_INLINE` is hashed on the caller's thread: handing
    it over (a thread started per member) would cost more than the hash."""

    def __init__(self, name: str, size: int, *, crc: bool = False) -> None:
        self.name = name
        self.size = size
        self.digest = hashlib.sha256()
        self.crc = 0
        self._crc = crc
        self._pools: list[_Worker] = []
        self._last: list[Future[None]] = []

    def feed(self, chunk: memoryview) -> None:
        if self.size < _INLINE:
            self.digest.update(chunk)
            if self._crc:
                self._crc32(chunk)
            return
        if not self._pools:
            self._pools = [_Worker("ckpt-hash") for _ in range(2 if self._crc else 1)]
        self._last = [self._pools[0].submit(self.digest.update, chunk)]
        if self._crc:
            self._last.append(self._pools[1].submit(self._crc32, chunk))

    def _crc32(self, chunk: memoryview) -> None:
        self.crc = zlib.crc32(chunk, self.crc)

    def hexdigest(self) -> str:
        for last in self._last:
            last.result()
        for pool in self._pools:
            pool.shutdown()
        return self.digest.hexdigest()


_INLINE = 1 << 20
"""Members smaller than this are hashed on the caller's thread."""


class _Hashing:
    """Members whose hashes are still being computed: at most two at a time,
    so hashing member k overlaps the I/O of member k+1."""

    def __init__(self, done: Callable[[_BackgroundHash], None]) -> None:
        self._done = done
        self._pending: collections.deque[_BackgroundHash] = collections.deque()

    def add(self, hasher: _BackgroundHash) -> None:
        self._pending.append(hasher)
        while len(self._pending) > 2:
            self._done(self._pending.popleft())

    def settle(self) -> None:
        while self._pending:
            self._done(self._pending.popleft())


_EARLY_SYNC_BYTES = 32 << 20


class _EarlySync:
    """fsyncs of a file while it is still being written, one at a time, on a
    thread of their own: the disk writes the arrays back while the CPU hashes
    the next ones, and the caller's final fsync has little left. Without a
    file (not `durable`), nothing. The thread starts with the first early
    fsync: a small checkpoint never needs one, nor pays for starting it."""

    def __init__(self, file: BinaryIO | None) -> None:
        self._file = file
        self._pool: _Worker | None = None
        self._running: Future[None] | None = None
        self._unsynced = 0

    def start(self, written: int) -> None:
        """Flush and start an fsync of everything written so far, once
        `_EARLY_SYNC_BYTES` are unsynced and no fsync is still running (many
        small members do not make as many fsyncs)."""
        self._unsynced += written
        if self._file is None or self._unsynced < _EARLY_SYNC_BYTES \
                or (self._running is not None and not self._running.done()):
            return
        self._unsynced = 0
        if self._running is not None:
            self._running.result()  # raises what the last one met (EIO, ENOSPC)
        self._file.flush()
        self._pool = self._pool or _Worker("ckpt-fsync")
        self._running = self._pool.submit(os.fsync, self._file.fileno())

    def wait(self) -> None:
        if self._running is not None:
            self._running.result()
        if self._pool is not None:
            self._pool.shutdown()


# --- writing ------------------------------------------------------------------


class _HashingWriter:
    """A write-only file that hashes and counts what passes through."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self._target.write(data)
        n = memoryview(data).nbytes
        self.size += n
        return n


class ArchiveWriter:
    """Writes members in order; `finish` writes the manifest last. Used as a
    context manager: on an error the half-written archive is abandoned (the
    atomic write removes the file), never finalized."""

    def __init__(self, file: BinaryIO, *, durable: bool = False) -> None:
        self._zip = zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._file = file
        self._members: dict[str, Member] = {}
        self._crc_later: dict[str, zipfile.ZipInfo] = {}
        self._sync = _EarlySync(file if durable else None)
        self._hashing = _Hashing(self._hashed)

    @property
    def members(self) -> dict[str, Member]:
        """Every member written so far, with its sha256 (waiting for the last
        ones, and for a `durable` file's early fsyncs: the caller's final
        fsync then has only the manifest left; with writing, hashing and fsync
        in turn, a save of 500 MB of arrays took 1.5-1.9x plain pickle)."""
        self._hashing.settle()
        self._sync.wait()
        return self._members

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        if kind is not None:
            self._zip.fp = None  # nothing more is written, not even by ZipFile.__del__

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[_HashingWriter]:
        """A member of unknown size, written as it is produced (data.pkl)."""
        with self._zip.open(_info(name), "w", force_zip64=True) as raw:
            writer = _HashingWriter(raw)
            yield writer
        self._members[name] = Member(writer.sha256.hexdigest(), writer.size)

    def buffer(self, name: str, data: memoryview) -> None:
        """A member of known size whose data starts on a 64-byte boundary.

        Written here rather than through zipfile's member writer, which
        computes the CRC-32 on the writing thread (0.26 s of 500 MB):
        the same local header (zipfile's own `FileHeader`), the data, and the
        CRC, computed beside the sha256, put in the header once known
        (`_hashed`); zipfile writes the central directory from the same
        ZipInfo, zip64 fields included."""
        info = _info(name)
        info.file_size = info.compress_size = data.nbytes
        info.CRC = 0  # until the hashing thread has it
        zip64 = data.nbytes * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule for a member of known size
        header = 30 + len(name.encode()) + (20 if zip64 else 0)
        fp = self._file  # the zip's own file: seekable (an atomic temporary file, or a spool)
        info.header_offset = fp.tell()
        pad = (-(info.header_offset + header + 4)) % ALIGN
        info.extra = struct.pack("<HH", _PADDING_ID, pad) + b"\0" * pad
        if name in self._zip.NameToInfo:
            raise ValueError(f"duplicate member {name!r}")
        hasher = _BackgroundHash(name, data.nbytes, crc=True)
        fp.write(info.FileHeader(zip64))
        for start in range(0, data.nbytes, 8 * _CHUNK):
            chunk = data[start : start + 8 * _CHUNK]
            hasher.feed(chunk)
            fp.write(chunk)
        self._zip.start_dir = fp.tell()
        self._zip.filelist.append(info)
        self._zip.NameToInfo[name] = info
        self._crc_later[name] = info
        self._sync.start(data.nbytes)
        self._hashing.add(hasher)

    def _hashed(self, hasher: _BackgroundHash) -> None:
        """A member's hashes are done: its sha256 for the manifest, and for a
        buffer its CRC-32 in the local header (at offset 14) and the ZipInfo."""
        self._members[hasher.name] = Member(hasher.hexdigest(), hasher.size)
        info = self._crc_later.pop(hasher.name, None)
        if info is not None:
            info.CRC = hasher.crc
            fp = self._file
            end = fp.tell()
            fp.seek(info.header_offset + 14)
            fp.write(struct.pack("<L", info.CRC))
            fp.seek(end)

    def finish(self, manifest: Manifest) -> None:
        # One line: json's C encoder does not indent, and its Python one took
        # 37 ms for the 1,000 substitutions of the object-heavy benchmark.
        self._zip.writestr(_info(MANIFEST), json.dumps(manifest.to_dict()) + "\n")
        self._zip.close()


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def buffer_name(index: int) -> str:
    return f"buffers/{index}"


# --- reading ------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    offset: int
    size: int


class Archive:
    """An opened checkpoint whose structure has been checked. Members are
    read (and hashed) or mapped on demand."""

    def __init__(self, path: Path | str, file: io.BufferedReader, manifest: Manifest, spans: dict[str, _Span],
                 size: int) -> None:
        self.path = path
        self.manifest = manifest
        self.size = size
        self._file = file
        self._spans = spans
        self._map: mmap.mmap | None = None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def buffer_names(self) -> list[str]:
        return sorted((n for n in self._spans if n.startswith("buffers/")), key=lambda n: int(n.split("/")[1]))

    def read(self, name: str) -> Any:
        """The member's bytes in writable memory of their own, refused unless
        their sha256 matches the manifest."""
        return self.read_all([name])[0]

    def read_all(self, names: list[str]) -> list[Any]:
        """Each member's bytes, read in turn while earlier ones are hashed;
        refused (CheckpointError) unless every sha256 matches the manifest."""
        hashing = _Hashing(lambda h: self._check(h.name, h.hexdigest()))
        try:
            out = []
            for name in names:
                data, hasher = self._read_hashing(name)
                out.append(data)
                hashing.add(hasher)
        finally:
            hashing.settle()
        return out

    def _read_hashing(self, name: str) -> tuple[Any, _BackgroundHash]:
        span = self._spans[name]
        data = _writable_memory(span.size)
        self._file.seek(span.offset)
        view = memoryview(data)
        hasher = _BackgroundHash(name, span.size)
        got = 0
        while got < span.size:
            n = self._file.readinto(view[got : got + 8 * _CHUNK])
            if not n:
                hasher.hexdigest()
                raise CheckpointError(f"{self.path}: {name} is truncated ({got} of {span.size} bytes)")
            hasher.feed(view[got : got + n])
            got += n
        return data, hasher

    def offset(self, name: str) -> int:
        """Where the member's data starts in the file (buffers: a multiple of 64)."""
        return self._spans[name].offset

    def mapped(self, name: str) -> memoryview:
        """A view of the member in a copy-on-write memory map; not hashed (see
        `hash_failures`). Writable, so arrays and tensors on it behave normally,
        but writes stay in this process: the file never changes."""
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_COPY)
        span = self._spans[name]
        return memoryview(self._map)[span.offset : span.offset + span.size]

    def hash_failures(self) -> list[str]:
        """Hash every member straight from the file; why each that fails does."""
        failures = []
        for name in self.manifest.members:
            try:
                self._check_file(name)
            except CheckpointError as exc:
                failures.append(str(exc))
        return failures

    def _check_file(self, name: str) -> None:
        """Hash the member straight from the file, in chunks."""
        span = self._spans[name]
        digest = hashlib.sha256()
        self._file.seek(span.offset)
        left = span.size
        while left:
            chunk = self._file.read(min(left, 8 * _CHUNK))
            if not chunk:
                raise CheckpointError(f"{self.path}: {name} is truncated")
            digest.update(chunk)
            left -= len(chunk)
        self._check(name, digest.hexdigest())

    def _check(self, name: str, digest: str) -> None:
        if digest != self.manifest.members[name].sha256:
            raise CheckpointError(
                f"{self.path}: {name} does not match its sha256 in the manifest (the file is damaged or was edited)"
            )


def _writable_memory(size: int) -> Any:
    """A buffer to read a member into. A bytearray is zero-filled before it is
    overwritten; an anonymous map takes a page fault per page and is never
    reused. When numpy is loaded (the arrays in the file need it anyway),
    `numpy.empty` gives uninitialised memory from the reusing allocator,
    without numpy's transparent-huge-page hint: with it, filling 384 MiB took
    0.09 s or 0.9 s depending on how fragmented memory was (the kernel
    compacts memory for a hinted region on its first touch), 0.23 s steadily
    without it."""
    numpy = sys.modules.get("numpy")
    if numpy is None or size < _CHUNK:
        return bytearray(size)
    with _no_huge_page_hint(numpy):
        return numpy.empty(size, dtype=numpy.uint8)


_hint_lock = threading.Lock()


@contextlib.contextmanager
def _no_huge_page_hint(numpy: Any) -> Iterator[None]:
    """numpy's huge-page hint off for this allocation (back as it was after;
    numpy versions without the switch allocate as they do)."""
    switch = getattr(getattr(numpy, "_core", numpy.core).multiarray, "_set_madvise_hugepage", None)
    if switch is None:
        yield
        return
    with _hint_lock:
        before = switch(False)
        try:
            yield
        finally:
            switch(before)


def aligned_copy(view: memoryview) -> Any:
    """A copy of `view`'s bytes in memory of its own (as a member is read into)."""
    copy = _writable_memory(view.nbytes)
    memoryview(copy).cast("B")[:] = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    return copy


def open_archive(path: str | os.PathLike[str]) -> Archive:
    """Open a checkpoint and check its structure; raises CheckpointError
    (or a usage error for a missing file) with a one-line reason."""
    path = Path(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 - the Archive owns it
    except FileNotFoundError:
        raise MissingFileError(f"no such checkpoint: {str(path)!r}", str(path)) from None
    except IsADirectoryError:
        raise _usage(f"{str(path)!r} is a directory, not a checkpoint") from None
    except OSError as exc:
        raise _usage(f"cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        return _open(path, file)
    except BaseException:
        file.close()
        raise


def read_archive(file: BinaryIO, name: str) -> Archive:
    """Check the structure of the checkpoint in `file` (seekable, with a
    file descriptor: a temporary copy of a stream or of a URL's object,
    which `name` names); the Archive owns it."""
    file.seek(0)
    return _open(name, file)  # type: ignore[arg-type]


def _usage(message: str) -> CkptError:
    return CkptError(message)  # exit 2: the input is unreadable, not a failed check


def _open(path: Path | str, file: io.BufferedReader) -> Archive:
    size = os.fstat(file.fileno()).st_size
    if file.read(4) != b"PK\x03\x04":
        raise CheckpointError(f"{path}: not a ckpt checkpoint (not a zip archive)")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        # NotImplementedError: a damaged "version needed" field reads as a zip feature nobody implements
        raise CheckpointError(f"{path}: damaged or truncated archive ({exc})") from None
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise CheckpointError(f"{path}: an archive member name appears twice")
    spans = {}
    for info in infos:
        _check_name(path, info.filename)
        spans[info.filename] = _span(path, file, info, size)
    _check_disjoint(path, infos, spans, archive.start_dir)
    if MANIFEST not in spans:
        raise CheckpointError(f"{path}: no manifest.json (not a ckpt checkpoint, or truncated)")
    if names[-1] != MANIFEST:
        raise CheckpointError(f"{path}: manifest.json is not the last member (the archive was re-zipped or edited)")
    manifest_span = spans.pop(MANIFEST)
    if manifest_span.size > _MAX_MANIFEST:
        raise CheckpointError(f"{path}: manifest.json is implausibly large ({manifest_span.size} bytes)")
    file.seek(manifest_span.offset)
    manifest = parse_manifest(file.read(manifest_span.size))
    _check_members(path, manifest, spans)
    return Archive(path, file, manifest, spans, size)


def _check_name(path: Path | str, name: str) -> None:
    if name not in (DATA, MANIFEST) and not _BUFFER_NAME.match(name):
        raise CheckpointError(f"{path}: unexpected archive member {name!r} (refusing a file ckpt did not write)")


def _span(path: Path | str, file: BinaryIO, info: zipfile.ZipInfo, size: int) -> _Span:
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise CheckpointError(
            f"{path}: member {info.filename!r} is compressed; ckpt stores members uncompressed (was it re-zipped?)"
        )
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{path}: member {info.filename!r} is encrypted")
    if not 0 <= info.header_offset < size:  # zipfile adds the archive's shift, which damage can make negative
        raise CheckpointError(f"{path}: damaged archive (member {info.filename!r} starts outside the file)")
    file.seek(info.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{path}: damaged archive (bad local header for {info.filename!r})")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
    if file.read(name_length) != info.filename.encode():
        raise CheckpointError(f"{path}: damaged archive (local and central names differ for {info.filename!r})")
    offset = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if offset + info.file_size > size:
        raise CheckpointError(
            f"{path}: member {info.filename!r} claims {info.file_size} bytes beyond the end of the file "
            "(truncated, or a zip bomb)"
        )
    return _Span(offset, info.file_size)


def _check_disjoint(path: Path | str, infos: list[zipfile.ZipInfo], spans: dict[str, _Span], directory: int) -> None:
    """Members may not share bytes (nor with the central directory): overlapping
    entries are how a small zip declares a huge total size (a zip bomb)."""
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise CheckpointError(f"{path}: archive members overlap (a zip bomb, or a damaged file)")
        end = spans[info.filename].offset + spans[info.filename].size
    if end > directory:
        raise CheckpointError(f"{path}: archive members overlap the central directory (a zip bomb, or a damaged file)")


def _check_members(path: Path | str, manifest: Manifest, spans: dict[str, _Span]) -> None:
    missing = sorted(repr(name) for name in manifest.members.keys() - spans.keys())
    extra = sorted(spans.keys() - manifest.members.keys())
    if missing:
        raise CheckpointError(f"{path}: member(s) {', '.join(missing)} listed in the manifest are missing")
    if extra:
        raise CheckpointError(f"{path}: member(s) {', '.join(extra)} are not listed in the manifest")
    if DATA not in spans:
        raise CheckpointError(f"{path}: no data.pkl")
    for name, span in spans.items():
        if span.size != manifest.members[name].size:
            raise CheckpointError(
                f"{path}: {name} is {span.size} bytes but the manifest says {manifest.members[name].size}"
            )
