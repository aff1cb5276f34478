"""`ckpt scan` end to end, through the installed command in a subprocess."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import RunCkpt, assert_one_line_error


def test_help_and_version_explain_themselves(run_ckpt: RunCkpt) -> None:
    top = run_ckpt("--help")
    assert top.code == 0 and "scan" in top.out and "Exit codes" in top.out
    sub = run_ckpt("scan", "--help")
    assert sub.code == 0 and "TARGET" in sub.out and "--suggest" in sub.out and "--format" in sub.out
    version = run_ckpt("--version")
    assert version.code == 0 and version.out.startswith("ckpt ")


def test_service_sample_reports_each_finding(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.service:build")
    assert result.code == 1, result
    for path in ("model.requests", "model._stats_lock", "model.pool", "model.handler", "model.worker"):
        assert path in result.out
    assert "6 findings" in result.out and "\x1b[" not in result.out  # plain text when piped


def test_clean_model_exits_zero(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.nested:clean")
    assert result.code == 0 and "clean" in result.out, result


def test_json_schema(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.nested:shared_lock", "--format", "json")
    assert result.code == 1, result
    doc = result.json()
    assert doc["target"] == "sample_models.nested:shared_lock"
    assert isinstance(doc["objects"], int) and doc["objects"] > 0
    lock = next(f for f in doc["findings"] if f["kind"] == "lock")
    assert lock == {
        "path": "model['first'].lock",
        "type": "_thread.lock",
        "kind": "lock",
        "action": "rewrap",
        "lost": lock["lost"],
        "advice": lock["advice"],
        "note": "",
        "also_at": ["model['second'].lock"],
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pkg = tmp_path / "badpkg"
    pkg.mkdir()
    (pkg / "__init__.py").touch()
    (pkg / "model.py").write_text(
        textwrap.dedent(
            """
            import threading
            def build():
                return {"lock": threading.Lock()}
            def needs(size):
                return size
            def raises():
                raise KeyError("weights.bin")
            """
        )
    )
    (pkg / "broken.py").write_text("import not_installed_dep_abc\n")
    return tmp_path


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("nocolon", ["malformed target"]),
        ("missingpkg_zz.model:build", ["no module named 'missingpkg_zz'"]),
        ("badpkg.broken:build", ["needs module 'not_installed_dep_abc'"]),
        ("badpkg.model:biuld", ["no attribute 'biuld'", "did you mean 'build'"]),
        ("badpkg.model:needs", ["needs arguments (size)"]),
        ("badpkg.model:raises", ["raised KeyError", "--traceback"]),
        ("badpkg/missing.py:build", ["no such file"]),
    ],
)
def test_target_errors_are_one_line_with_exit_2(run_ckpt: RunCkpt, project: Path, target: str, fragments) -> None:
    assert_one_line_error(run_ckpt("scan", target, cwd=project), 2, *fragments)


def test_traceback_flag_shows_the_users_traceback(run_ckpt: RunCkpt, project: Path) -> None:
    result = run_ckpt("scan", "badpkg.model:raises", "--traceback", cwd=project)
    assert result.code == 2
    assert "Traceback" in result.err and "model.py" in result.err and "KeyError" in result.err


def test_file_target_and_cwd_module_target_agree(run_ckpt: RunCkpt, project: Path) -> None:
    by_module = run_ckpt("scan", "badpkg.model:build", "--format", "json", cwd=project).json()
    by_file = run_ckpt("scan", "badpkg/model.py:build", "--format", "json", cwd=project).json()
    assert [f["path"] for f in by_module["findings"]] == [f["path"] for f in by_file["findings"]] == ["model['lock']"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["scan", "sample_models.service:build", "--format", "yaml"], ["'yaml' is not one of", "ckpt scan --help"]),
        (["scan"], ["Missing argument 'TARGET'", "ckpt scan --help"]),
        (["bogus"], ["No such command 'bogus'", "ckpt --help"]),
        (["save", "sample_models.service:build"], ["Missing option '-o'"]),
    ],
)
def test_usage_errors_are_one_line(run_ckpt: RunCkpt, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_ckpt(*args), 2, *fragments)


def fixed_by_suggestion(run_ckpt: RunCkpt, target: str, base: type, imports: str) -> type:
    """`base` with the `--suggest` methods for `target` pasted in, as a user
    would, at module level here so that plain pickle can name it."""
    result = run_ckpt("scan", target, "--suggest", "--format", "json")
    [suggestion] = result.json()["suggestions"]
    assert suggestion["class"] == f"{base.__module__}.{base.__qualname__}"
    namespace: dict = {}
    exec(f"import {imports}\n" + suggestion["code"], namespace)
    fixed = type(f"Fixed{base.__name__}", (base,), {"__getstate__": namespace["__getstate__"],
                                                     "__setstate__": namespace["__setstate__"]})
    fixed.__module__ = __name__
    globals()[fixed.__qualname__] = fixed
    return fixed


def test_suggested_code_fixes_the_class(run_ckpt: RunCkpt) -> None:
    """Paste the generated methods into the class: plain pickle then works,
    and the round trip gives working primitives and the queue's items."""
    from sample_models import service

    fixed = fixed_by_suggestion(run_ckpt, "sample_models.service:build", service.InferenceService,
                                "threading, queue, logging, concurrent.futures")
    original = fixed()
    original.requests.put("pending")
    restored = pickle.loads(pickle.dumps(original))
    assert restored.requests.get_nowait() == "pending"
    assert restored._stats_lock.acquire(blocking=False)
    assert isinstance(restored.ready, type(threading.Event()))
    assert restored.pool.submit(sum, [1, 2]).result(5) == 3
    restored.pool.shutdown()
    original.pool.shutdown()


def test_suggested_code_keeps_a_shared_lock_shared_between_real_threads(run_ckpt: RunCkpt) -> None:
    """`self.updated = Condition(self.lock)`, `self.guard = self.lock`: after the
    suggested round trip, holding `lock` still excludes `updated`'s users, and
    a thread waiting on `updated` is woken by one that holds `lock`."""
    from sample_models import nested

    fixed = fixed_by_suggestion(run_ckpt, "sample_models.nested:store", nested.Store, "threading")
    restored = pickle.loads(pickle.dumps(fixed()))
    assert restored.guard is restored.lock
    tried: list[bool] = []
    with restored.lock:
        other = threading.Thread(target=lambda: tried.append(restored.updated.acquire(timeout=0.2)))
        other.start()
        other.join()
    assert tried == [False]  # the Condition's lock is the held one
    woken: list[bool] = []

    def waiter() -> None:
        with restored.updated:
            woken.append(bool(restored.updated.wait_for(lambda: restored.data, timeout=10)))

    thread = threading.Thread(target=waiter)
    thread.start()
    while not restored.updated._waiters:  # the waiter is waiting (and has released the lock)
        time.sleep(0.01)
    with restored.guard:
        restored.data.append(1)
        restored.updated.notify_all()  # RuntimeError unless guard is the Condition's lock
    thread.join(10)
    assert woken == [True]


def test_suggest_says_when_a_rebuilt_lock_was_shared_with_another_object(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.nested:shared_lock", "--suggest")
    assert "self.lock = threading.Lock()  # shared with model['second'].lock: rebuilt here, it no longer is" in result.out


def test_suggest_text_is_plain_python(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.nested:cycle", "--suggest")
    assert result.code == 1
    assert "def __getstate__(self):" in result.out and "def __setstate__(self, state):" in result.out
    assert "threading.Semaphore(state[\"limit\"])" in result.out


def test_scan_does_not_import_what_the_model_does_not_use(tmp_path: Path) -> None:
    """Recognising sqlite3 connections or multiprocessing locks must not import them."""
    code = (
        "import sys, threading\n"
        "from ckpt import scan\n"
        "report = scan({'lock': threading.Lock()})\n"
        "assert [f.kind for f in report.findings] == ['lock'], report\n"
        "print(sorted({'sqlite3', 'multiprocessing.synchronize'} & set(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
