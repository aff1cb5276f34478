"""The file format refuses every kind of damage before anything is unpickled,
and writes are atomic."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

import ckpt.core as ckpt
from ckpt.core.atomic import atomic_write, remove_stale_temporaries
from ckpt.core.errors import CheckpointError, CkptError, WriteError
from conftest import rewrite_member

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
    with ckpt.container.open_archive(saved) as archive:
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
    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"posix:system \(called\) is not trusted"):
        ckpt.load(saved, trust=["os", "posix"])  # trusting a package never admits its functions
    assert not sentinel.exists()
    inspection = ckpt.inspect(saved)
    assert inspection.exit_code == 1 and any("system" in p for p in inspection.problems)
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
