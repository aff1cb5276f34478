"""The Python API behaves like the tools it replaces (torch.save, joblib.dump,
pickle.dump): it overwrites, takes open files and io.BytesIO, resolves a
target string, raises errors a caller can catch by their usual names, and
its messages name keyword arguments, not the command line's flags."""

from __future__ import annotations

import errno
import importlib
import io
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCkpt

import ckpt
from ckpt.cli import flags
from ckpt.errors import CkptError
from sample_models import kinds, service

TRUST = ["sample_models"]


# --- overwrite ----------------------------------------------------------------


def test_save_replaces_an_existing_file_by_default(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    assert not ckpt.save({"v": 1}, path).replaced
    report = ckpt.save({"v": 2}, path)
    assert report.replaced and ckpt.load(path) == {"v": 2}


def test_a_failed_save_leaves_the_existing_file_intact(tmp_path: Path) -> None:
    """Replacing is atomic: pickling fails halfway through the new archive
    (an open file is met after the lock), and the old file is as it was."""
    path = tmp_path / "model.ckpt"
    ckpt.save({"v": 1}, path)
    before = path.read_bytes()
    with pytest.raises(ckpt.SaveError, match="nothing was written"):
        ckpt.save({"lock": threading.Lock(), "file": kinds.open_file()}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]  # no temporary left behind


def test_overwrite_false_refuses_naming_the_keyword(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    ckpt.save({"v": 1}, path)
    before = path.read_bytes()
    with pytest.raises(ckpt.WriteError, match=r"already exists \(pass overwrite=True to replace it"):
        ckpt.save({"v": 2}, path, overwrite=False)
    assert path.read_bytes() == before


# --- file objects -------------------------------------------------------------


def test_save_and_load_through_bytesio() -> None:
    buffer = io.BytesIO()
    report = ckpt.save(service.build(), buffer)
    assert report.path == "<BytesIO>" and report.size == len(buffer.getvalue()) and not report.replaced
    buffer.seek(0)
    loaded = ckpt.load_checkpoint(buffer, trust=TRUST)
    assert loaded.path == "<BytesIO>" and loaded.obj.requests.qsize() == 2
    assert loaded.obj._stats_lock.acquire(blocking=False)


def test_open_files_are_written_and_read_from_their_current_position(tmp_path: Path) -> None:
    """As with pickle.dump into a file that already holds a header: the
    archive goes after it, and load reads from where the reader stands."""
    path = tmp_path / "model.bin"
    with open(path, "wb") as file:
        file.write(b"HEADER")
        report = ckpt.save({"lock": threading.Lock(), "n": 1}, file)
    assert report.path == str(path) and path.stat().st_size == len(b"HEADER") + report.size
    with open(path, "rb") as file:
        assert file.read(6) == b"HEADER"
        assert ckpt.load(file)["n"] == 1


def test_non_seekable_streams_both_ways() -> None:
    """A pipe cannot seek: save writes the finished archive in order, and load
    reads the whole stream before it looks at anything."""
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as reader, open(write_fd, "wb") as writer:
        assert not reader.seekable() and not writer.seekable()
        received: list[Any] = []
        consumer = threading.Thread(target=lambda: received.append(ckpt.load(reader, trust=TRUST)))
        consumer.start()
        ckpt.save(service.build(), writer)
        writer.close()
        consumer.join(timeout=60)
    assert received[0].requests.qsize() == 2


def test_a_refused_save_writes_nothing_to_the_stream() -> None:
    buffer = io.BytesIO()
    with pytest.raises(ckpt.SaveError):
        ckpt.save({"lock": threading.Lock(), "file": kinds.open_file()}, buffer)
    assert buffer.getvalue() == b""


class FullDevice(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_stream_that_cannot_be_written_is_a_write_error() -> None:
    with pytest.raises(ckpt.WriteError, match=r"^cannot write <FullDevice>: No space left on device; part of"):
        ckpt.save({"n": 1}, FullDevice())


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ckpt.save({}, io.StringIO()), "text stream: open it in binary mode ('wb')"),
    (lambda: ckpt.load(io.StringIO("x")), "text stream: open it in binary mode ('rb')"),
    (lambda: ckpt.save({}, 3), "expected a path or a binary file object with .write(), not int"),
    (lambda: ckpt.load(b"PK.."), "expected a path or a binary file object with .read(), not bytes"),
])
def test_what_is_neither_a_path_nor_a_binary_file_is_a_clear_type_error(call: Any, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        call()


def test_inspect_reads_a_stream_and_verify_asks_for_a_path() -> None:
    buffer = io.BytesIO()
    ckpt.save(service.build(), buffer)
    buffer.seek(0)
    info = ckpt.inspect(buffer)
    assert info.path == "<BytesIO>" and info.provenance.origin is ckpt.Origin.OWN
    assert "sample_models.service:InferenceService" in info.untrusted  # as data, it would need that trust
    with pytest.raises(TypeError, match="verify takes the path or URL of a checkpoint, not BytesIO"):
        ckpt.verify(buffer)


def test_a_damaged_stream_is_refused_naming_it() -> None:
    with pytest.raises(ckpt.CheckpointError, match=r"^<BytesIO>: not a ckpt checkpoint"):
        ckpt.load(io.BytesIO(b"not a checkpoint"))


# --- scan of a target string ----------------------------------------------------


def test_scan_resolves_a_target_string_as_the_command_line_does() -> None:
    report = ckpt.scan("sample_models.service:build")
    assert report.target == "sample_models.service:build"
    assert report.root_type == "sample_models.service.InferenceService"
    assert [f.path for f in report.findings] == [f.path for f in ckpt.scan(service.build()).findings]


@pytest.mark.parametrize("text", ["sample_models.service:no_such_factory", "not a target"])
def test_scan_of_a_string_that_is_no_target_raises(text: str) -> None:
    with pytest.raises(ckpt.TargetError):
        ckpt.scan(text)


def test_a_string_inside_a_checkpoint_stays_data(tmp_path: Path) -> None:
    """Only the argument of scan is a target: a saved (or resolved) string
    that looks like one is verified as the string it is, never imported."""
    path = tmp_path / "s.ckpt"
    ckpt.save("no_such_module:build", path)
    assert ckpt.load(path) == "no_such_module:build"
    assert ckpt.verify(path).ok


def test_a_target_naming_a_string_scans_the_string(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "names.py").write_text('NAME = "no_such_module:build"\n')
    result = run_ckpt("scan", f"{tmp_path / 'names.py'}:NAME")
    assert result.code == 0 and "(str)" in result.out, result


# --- exceptions -----------------------------------------------------------------


def test_a_missing_checkpoint_is_also_a_file_not_found_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.ckpt"
    for call in (ckpt.load, ckpt.inspect):
        with pytest.raises(FileNotFoundError) as info:
            call(missing)
        assert isinstance(info.value, ckpt.MissingFileError) and isinstance(info.value, CkptError)
        assert info.value.errno == errno.ENOENT and info.value.filename == str(missing)
        assert str(info.value) == f"no such checkpoint: {str(missing)!r}"


def every_error_class() -> set[type]:
    """Every CkptError subclass defined anywhere in ckpt."""
    for module in pkgutil.walk_packages(ckpt.__path__, "ckpt."):
        # dask_plugin imports distributed, an optional extra, and defines no error; __main__ runs the command line
        if module.name.rpartition(".")[2] not in ("dask_plugin", "__main__"):
            importlib.import_module(module.name)
    found, todo = set(), [CkptError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    return {cls for cls in found if cls.__module__.startswith("ckpt.")}


def test_every_error_class_is_exported() -> None:
    """Except ckpt.checking's own (raised by `ckpt check`'s engine, which
    ckpt does not export)."""
    errors = {cls for cls in every_error_class() if cls.__module__ != "ckpt.checking"}
    assert len(errors) >= 9
    for cls in errors:
        assert getattr(ckpt, cls.__name__) is cls and cls.__name__ in ckpt.__all__


@pytest.fixture
def refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
             ) -> dict[str, CkptError]:
    """One error of each kind that tells the caller what to pass (the service
    built with pytest's capture off: its log handler on the real stderr)."""
    saved = tmp_path / "service.ckpt"
    with capsys.disabled():
        ckpt.save(service.build(), saved)
    calls = {
        "overwrite=True": lambda: ckpt.save({}, saved, overwrite=False),
        "strip=['model.nope']": lambda: ckpt.save(kinds.open_file(), tmp_path / "m.ckpt", strip=["model.nope"]),
        "strip=['model.value']": lambda: ckpt.save(kinds.open_file(), tmp_path / "m.ckpt"),
        "trust=['sample_models.service:InferenceService']": lambda: ckpt.load(saved),
    }
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))  # the suite signed it; someone else loads it
    errors = {}
    for spelled, call in calls.items():
        with pytest.raises(CkptError) as info:
            call()
        errors[spelled] = info.value
    return errors


def test_messages_name_keyword_arguments_not_flags(refusals: dict[str, CkptError]) -> None:
    """(A command to run, `ckpt scan --suggest`, may still be named.)"""
    for spelled, exc in refusals.items():
        assert spelled in str(exc), (spelled, str(exc))
        assert not [flag for flag in flags.FLAGS.values() if flag in str(exc)], str(exc)
        assert [str(a) for a in exc.arguments] == [spelled]


def test_the_command_line_respells_each_as_its_flag(refusals: dict[str, CkptError]) -> None:
    expected = {
        "overwrite=True": "pass --force to replace it",
        "strip=['model.nope']": "--strip model.nope: no finding at that path",
        "strip=['model.value']": "pass --strip model.value to save each as None",
        "trust=['sample_models.service:InferenceService']": "trust just these names: --trust "
                                                             "sample_models.service:InferenceService",
    }
    for spelled, exc in refusals.items():
        line = flags.message(exc)
        assert expected[spelled] in line and spelled not in line, line


# --- import ckpt --------------------------------------------------------------


def test_import_ckpt_is_the_api_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """What torch and joblib users type: the top level is the API, one list
    of it (`__all__`), the errors too; `ckpt.core`, where it was before the
    src/ layout, is the same objects."""
    code = textwrap.dedent(
        """
        import threading
        import ckpt
        import ckpt.core

        assert ckpt.core.__all__ == ckpt.__all__ and len(ckpt.__all__) > 30
        assert all(getattr(ckpt, name) is getattr(ckpt.core, name) for name in ckpt.__all__)
        assert issubclass(ckpt.UnsafeCheckpointError, ckpt.CkptError) and ckpt.__version__
        ckpt.save({"lock": threading.Lock(), "n": 1}, "m.ckpt")
        assert ckpt.load("m.ckpt")["n"] == 1 and ckpt.verify("m.ckpt").ok and ckpt.diff("m.ckpt", "m.ckpt").equal
        assert [f.kind for f in ckpt.scan({"lock": threading.Lock()}).findings] == ["lock"]
        with ckpt.registered():
            pass
        try:
            ckpt.load("absent.ckpt")
        except ckpt.MissingFileError:
            print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def test_a_trust_entry_naming_nothing_installed_is_refused_before_anything_is_imported(tmp_path: Path) -> None:
    ckpt.save({"n": 1}, tmp_path / "m.ckpt")
    code = textwrap.dedent(
        f"""
        import sys
        import ckpt

        try:
            ckpt.load({str(tmp_path / "m.ckpt")!r}, trust=["sklaern"])
        except ckpt.ConfigError as exc:
            print(exc)
        print("sklearn" in sys.modules)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "trust entry 'sklaern': no module or package 'sklaern' is installed here; did you mean 'sklearn'?", "False"]
