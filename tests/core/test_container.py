"""The file format refuses every kind of damage before anything is unpickled,
and writes are atomic."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
from conftest import rewrite_member

import ckpt
from ckpt.errors import CheckpointError, CkptError, WriteError
from ckpt.format.archive import open_archive
from ckpt.format.atomic import atomic_write, remove_stale_temporaries

SENTINEL_CODE = "open({path!r}, 'w').write('pwned')"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.ckpt"
    ckpt.save({"weights": list(range(100)), "name": "m"}, path)
    return path


def refused(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        ckpt.load(path)
    assert not ckpt.verify(path).ok


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    path.write_bytes(b"\x80\x04definitely a pickle")
    refused(path, "not a zip archive")


def test_truncated(saved: Path) -> None:
    data = saved.read_bytes()
    for cut in (len(data) // 3, len(data) - 30, len(data) - 1):
        saved.write_bytes(data[:cut])
        refused(saved, "damaged or truncated|claims|truncated")


def test_bit_flip_in_data(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    with open_archive(saved) as archive:
        position = archive.offset("data.pkl") + 20
    data[position] ^= 0x01
    saved.write_bytes(bytes(data))
    refused(saved, "does not match its sha256")


def test_size_mismatch(saved: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        data = archive.read("data.pkl")
    rewrite_member(saved, "data.pkl", data + b".", fix_manifest=False)
    refused(saved, "data.pkl is .* bytes but the manifest says")


def test_unknown_format_version(saved: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["format_version"] = 99
    rewrite_member(saved, "manifest.json", json.dumps(manifest).encode())
    refused(saved, "format_version 99 is not supported")


def test_extra_and_missing_members(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["members"]["buffers/0"] = {"sha256": "0" * 64, "size": 1}
    rewrite_member(saved, "manifest.json", json.dumps(manifest).encode())
    refused(saved, "listed in the manifest are missing")


def test_unsafe_member_name(saved: Path) -> None:
    with zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("../../evil", b"x")
    refused(saved, "unexpected archive member '../../evil'")


def test_compressed_member_is_refused(saved: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(saved) as archive:
        members = [(i.filename, archive.read(i.filename)) for i in archive.infolist()]
    with zipfile.ZipFile(saved, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    refused(saved, "compressed")


def test_tampered_pickle_with_recomputed_manifest_runs_nothing(saved: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    rewrite_member(saved, "data.pkl", pickle.dumps(Payload(), protocol=5))
    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"altered after it was signed.*posix:system \(called\) "
                                                         r"is not trusted"):
        ckpt.load(saved, trust=["os", "posix"])  # trusting a package never admits its functions
    assert not sentinel.exists()
    inspection = ckpt.inspect(saved)
    assert inspection.exit_code == 1 and any("altered" in p for p in inspection.problems)
    assert [v.trust for v in inspection.globals if v.name == "posix:system"] == ["posix:system"]
    assert not sentinel.exists()


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CkptError, match="no such checkpoint") as info:
        ckpt.load(tmp_path / "absent.ckpt")
    assert info.value.exit_code == 2


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, overwrite=True) as file:
            file.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_unwritable_directory(unwritable_directory: Path) -> None:
    with pytest.raises(WriteError, match="permission denied; nothing was written"):
        ckpt.save({"a": 1}, unwritable_directory / "m.ckpt")
    assert list(unwritable_directory.iterdir()) == []


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="does not exist"):
        ckpt.save({"a": 1}, tmp_path / "nope" / "m.ckpt")


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".m.ckpt.999999999.abcd.ckpt-tmp"
    mine = tmp_path / f".m.ckpt.{os.getpid()}.abcd.ckpt-tmp"
    other = tmp_path / ".other.ckpt.999999999.abcd.ckpt-tmp"
    for p in (dead, mine, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, "m.ckpt") == [dead]
    assert mine.exists() and other.exists()


def test_temporaries_of_other_checkpoints_are_left_alone(tmp_path: Path) -> None:
    """`m.ckpt.7.x` is another checkpoint, and its live writer's temporary
    starts like one of m.ckpt's with a dead pid; nor is a number no pid can
    be taken for one (os.kill would overflow)."""
    others = [tmp_path / f".m.ckpt.999999999.x.{os.getpid()}.abcd1234.ckpt-tmp",
              tmp_path / ".m.ckpt.99999999999999999999.abcd1234.ckpt-tmp"]
    for p in others:
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, "m.ckpt") == []
    ckpt.save({"a": 1}, tmp_path / "m.ckpt")
    assert all(p.exists() for p in others)


def test_interrupt_during_pickling_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    ckpt.save({"v": 1}, path)
    before = path.read_bytes()

    class Interrupts:
        """Ctrl-C arrives while the file is being written (save pickles before anything else)."""

        def __reduce__(self):
            raise KeyboardInterrupt

    model = {"v": 2, "lock": __import__("threading").Lock(), "x": Interrupts()}
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(model, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


def _through_zipfile(path: Path, members: list[tuple[str, bytes]]) -> None:
    """The same members written by zipfile's own member writer (how earlier versions of ckpt wrote them)."""
    import struct

    from ckpt.format.archive import _PADDING_ID, ALIGN, _info

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, data in members:
            info = _info(name)
            info.file_size = len(data)
            zip64 = len(data) * 1.05 > zipfile.ZIP64_LIMIT
            pad = (-(archive.start_dir + 30 + len(name) + (20 if zip64 else 0) + 4)) % ALIGN
            info.extra = struct.pack("<HH", _PADDING_ID, pad) + b"\0" * pad
            with archive.open(info, "w") as raw:
                raw.write(data)


@pytest.mark.parametrize("zip64_limit", [zipfile.ZIP64_LIMIT, 1 << 20], ids=["plain", "zip64"])
def test_buffer_members_are_the_bytes_zipfile_writes_zip64_included(tmp_path: Path, zip64_limit: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """ckpt writes buffer members itself (their CRC-32 computed beside the
    sha256): byte for byte what zipfile writes, and, past the zip64 limit
    (lowered here: members over 4 GiB take the same branch), still a zip
    that zipfile reads and checks, and ckpt loads."""
    from ckpt.format.archive import ArchiveWriter

    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", zip64_limit)
    members = [(f"buffers/{i}", os.urandom(size)) for i, size in enumerate((3 << 20, 100_003, 2 << 20))]
    ours, theirs = tmp_path / "ours.zip", tmp_path / "theirs.zip"
    with open(ours, "wb") as file:
        writer = ArchiveWriter(file)
        for name, data in members:
            writer.buffer(name, memoryview(data))
        assert set(writer.members) == {name for name, _ in members}
        writer._zip.close()
    _through_zipfile(theirs, members)
    assert ours.read_bytes() == theirs.read_bytes()
    monkeypatch.undo()
    with zipfile.ZipFile(ours) as archive:
        assert archive.testzip() is None  # every CRC-32 right
        zip64 = [info.extract_version >= 45 for info in archive.infolist()]
        assert all(zip64) == (zip64_limit < 1 << 30) and [archive.read(n) for n, _ in members] == [d for _, d in members]


def test_a_checkpoint_past_the_zip64_limit_loads_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1 << 20)
    weights = np.arange(1 << 19, dtype=np.float64)  # 4 MiB: a zip64 member at this limit
    ckpt.save({"w": weights}, tmp_path / "m.ckpt")
    monkeypatch.undo()
    with zipfile.ZipFile(tmp_path / "m.ckpt") as archive:
        assert archive.testzip() is None and archive.getinfo("buffers/0").extract_version >= 45
    assert (ckpt.load(tmp_path / "m.ckpt")["w"] == weights).all()
    assert ckpt.verify(tmp_path / "m.ckpt").ok
