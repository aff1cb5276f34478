"""Clients and workers a service holds come back working.

Each case (`restored_clients.CASES`) is built here against servers on
127.0.0.1, after a request (so a keep-alive connection sits in its pool),
saved with `ckpt.save`, then loaded in a fresh process with no flags (the
file is signed with the suite's own key), verified, and exercised: a request
answered, a query run, a log line on disk, a task run in a worker process.

The same objects go through dill and cloudpickle too, loaded and exercised
the same way: `OTHERS` is the table of what each carries working, checked
on every run. The standard library's QueueListener is among the cases: a
queue served by a worker thread, like loguru's enqueued sink.

Fresh-process loads are batched: ckpt's cases in two children, dill's and
cloudpickle's in one each, two children at a time. Each child prints one
result line per case; a hang in an exercise (loguru's `complete()` with no
worker) is a failure after `EXERCISE_TIMEOUT`, not a stuck child.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import restored_clients as cases
from conftest import RunCkpt

import ckpt

pytestmark = pytest.mark.xdist_group("restored")  # one worker: the servers and files are shared

HERE = Path(__file__).resolve().parent
MARK = "@@ckpt-restored "
CHILD_TIMEOUT = 180
EXERCISE_TIMEOUT = 10
TOOLS = ("ckpt", "dill", "cloudpickle")

CHILD = r"""
import json, os, sys, threading, traceback

import restored_clients as cases

MARK = "@@ckpt-restored "
tool, env, timeout = sys.argv[1], cases.Env(**json.loads(sys.argv[2])), float(sys.argv[3])


def load(path):
    if tool == "ckpt":
        import ckpt

        report = ckpt.load_checkpoint(path)
        verified = ckpt.verify(path, loaded=report)
        if not verified.ok:
            raise AssertionError("verify: " + "; ".join(f"{c.name}: {c.detail}" for c in verified.failures))
        return report.obj
    with open(path, "rb") as file:
        return __import__(tool).load(file)


def within(seconds, run):
    box = {}

    def target():
        try:
            run()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"still waiting after {seconds:.0f} s")
    if "error" in box:
        raise box["error"]


for path, name in zip(sys.argv[4::2], sys.argv[5::2]):
    case = cases.CASES[name]
    try:
        within(timeout, lambda: case.exercise(load(path), env))
    except BaseException as exc:
        result = {"case": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:500],
                  "traceback": traceback.format_exc()}
    else:
        result = {"case": name, "ok": True}
    print(MARK + json.dumps(result), flush=True)
if tool != "ckpt":
    os._exit(0)  # what dill or cloudpickle restored may hang the interpreter's exit; ckpt's must not
"""

_SSL, _SOCKET = "TypeError: cannot pickle 'SSLContext' object", "TypeError: cannot pickle 'socket' object"
_RLOCK, _LOCK = "TypeError: cannot pickle '_thread.RLock' object", "TypeError: cannot pickle '_thread.lock' object"
_INHERITED = "RuntimeError: SimpleQueue objects should only be shared between processes through inheritance"
OTHERS: dict[str, dict[str, str]] = {
    "openai": {"dill": _SSL, "cloudpickle": _RLOCK},
    "anthropic": {"dill": _SSL, "cloudpickle": _RLOCK},
    "httpx": {"dill": _SSL, "cloudpickle": _RLOCK},
    "httpx-async": {"dill": _SSL, "cloudpickle": _RLOCK},
    "requests": {"dill": "works", "cloudpickle": "works"},  # its adapters drop their pools themselves
    "urllib3": {"dill": _SOCKET, "cloudpickle": _SOCKET},
    "redis-pools": {"dill": _SOCKET, "cloudpickle": _LOCK},
    "redis": {"dill": _SOCKET, "cloudpickle": _LOCK},
    "duckdb": {"dill": "TypeError: cannot pickle 'DuckDBPyConnection' object",
               "cloudpickle": "TypeError: cannot pickle 'DuckDBPyConnection' object"},
    "loguru": {"dill": _INHERITED, "cloudpickle": _INHERITED},
    "queue-listener": {"dill": "hangs", "cloudpickle": _RLOCK},  # dill: stop() waits on a thread never started
    "process-pool": {"dill": "TypeError: Pickling an AuthenticationString object is disallowed",
                     "cloudpickle": _LOCK},
    "read-files": {"dill": "failed",  # reopened at the start: readline() gives the first line again
                   "cloudpickle": "TypeError: cannot pickle '_io.BufferedReader' object"},
    "temp-file": {"dill": "KeyError: 'file'", "cloudpickle": "KeyError: 'file'"},  # at load; ckpt's strip: None
}
"""What dill and cloudpickle do with each case (without ckpt's strip):
"works" (it comes back and its exercise passes), "failed" (it comes back but
the exercise fails), "hangs" (the exercise never returns), or the start of
the error their dump or load raises. Every case works with ckpt but the
redis client, which holds lambdas (see CODE_BY_VALUE)."""


@dataclass
class Saved:
    """One case saved by each tool: its file, or why there is none."""

    files: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    report: ckpt.SaveReport | None = None


@dataclass
class Loaded:
    ok: bool
    error: str = ""
    detail: str = ""


def available(case: cases.Case) -> bool:
    return importlib.util.find_spec(case.library) is not None


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cases.Env]:
    """The loopback HTTP and RESP servers, answering for the whole module, and a folder for files."""
    with cases.serving(cases.http_server()) as http_port, cases.serving(cases.resp_server()) as redis_port:
        yield cases.Env(f"http://127.0.0.1:{http_port}", redis_port, str(tmp_path_factory.mktemp("restored")))


def _dump(tool: str, obj: Any, path: Path) -> None:
    module = __import__(tool)
    with open(path, "wb") as file:
        module.dump(obj, file)


@pytest.fixture(scope="module")
def saved(env: cases.Env, request: pytest.FixtureRequest) -> dict[str, Saved]:
    """Every available case built once, saved by ckpt and dumped by dill and
    cloudpickle; built with pytest's capture off, so that a thread the case
    makes holds the process's own stderr, as in any program (not pytest's
    capturing stand-in, which dill would refuse)."""
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        return _saved(env)


def _saved(env: cases.Env) -> dict[str, Saved]:
    folder = Path(env.folder)
    results: dict[str, Saved] = {}
    for name, case in cases.CASES.items():
        if not available(case):
            continue
        result = results[name] = Saved()
        obj = case.build(env)
        try:
            result.report = ckpt.save(obj, folder / f"{name}.ckpt", strip=case.strip)
            result.files["ckpt"] = Path(result.report.path)
        except ckpt.CkptError as exc:
            result.errors["ckpt"] = str(exc)
        for tool in TOOLS[1:]:
            path = folder / f"{name}.{tool}"
            try:
                _dump(tool, obj, path)
                result.files[tool] = path
            except Exception as exc:  # whatever dill or cloudpickle raise is the result
                result.errors[tool] = f"{type(exc).__name__}: {exc}"
        case.release(obj)
    return results


def run_child(tool: str, batch: list[tuple[str, Path]], env: cases.Env) -> dict[str, Loaded]:
    """Load and exercise `batch` with `tool` in one fresh process."""
    args = [tool, json.dumps(asdict(env)), str(EXERCISE_TIMEOUT), *[a for name, p in batch for a in (str(p), name)]]
    names = [name for name, _ in batch]
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=HERE,
                              env={**os.environ, "PYTHONPATH": path}, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return {name: Loaded(False, f"the {tool} child timed out after {CHILD_TIMEOUT}s", str(exc.stderr)) for name in names}
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            got = json.loads(line[len(MARK):])
            results[got["case"]] = Loaded(got["ok"], got.get("error", ""), got.get("traceback", ""))
    for name in names:
        if name not in results:
            results[name] = Loaded(False, f"the {tool} child exited {proc.returncode} before reporting {name}",
                                   proc.stderr[-4000:])
        elif tool == "ckpt" and (proc.returncode != 0 or "Traceback" in proc.stderr):
            # every case reported, yet what ckpt restored made the exit fail or complain
            results[name] = Loaded(False, f"the ckpt child exited {proc.returncode}", proc.stderr[-4000:])
    return results


@pytest.fixture(scope="module")
def loads(saved: dict[str, Saved], env: cases.Env) -> dict[str, dict[str, Loaded]]:
    """Every saved file loaded and exercised in a fresh process: by tool, by case."""
    jobs = []
    for tool in TOOLS:
        batch = [(name, s.files[tool]) for name, s in saved.items() if tool in s.files]
        halves = [batch[: len(batch) // 2], batch[len(batch) // 2 :]] if tool == "ckpt" else [batch]
        jobs += [(tool, half) for half in halves if half]
    results: dict[str, dict[str, Loaded]] = {tool: {} for tool in TOOLS}
    with ThreadPoolExecutor(2) as pool:
        for (tool, _), got in zip(jobs, pool.map(lambda job: run_child(*job, env), jobs)):
            results[tool].update(got)
    return results


def require(name: str) -> cases.Case:
    case = cases.CASES[name]
    pytest.importorskip(case.library)
    return case


@pytest.mark.parametrize("name", list(cases.CASES))
def test_restored_in_a_fresh_process_it_works(name: str, saved: dict[str, Saved],
                                              loads: dict[str, dict[str, Loaded]]) -> None:
    require(name)
    assert "ckpt" in saved[name].files, saved[name].errors["ckpt"]
    result = loads["ckpt"][name]
    assert result.ok, f"{result.error}\n{result.detail}"


def _notes(saved: Saved) -> dict[str, tuple[str, str]]:
    assert saved.report is not None, saved.errors
    return {s.path: (s.kind, s.note) for s in saved.report.manifest.substitutions}


def test_the_save_report_says_what_was_dropped(saved: dict[str, Saved]) -> None:
    for name in ("openai", "httpx-async", "urllib3", "redis-pools", "loguru", "duckdb"):
        require(name)
    dropped = ("connection-pool", "1 open connection(s) dropped: the client connects again on first use")
    assert _notes(saved["openai"])["model.llm._client._transport._pool"] == dropped
    assert _notes(saved["httpx-async"])["model.http._transport._pool"] == dropped
    assert _notes(saved["urllib3"])["list(model.http.pools._container.values())[0]"] == dropped
    assert _notes(saved["redis-pools"])["model.blocking"] == dropped
    kind, note = _notes(saved["process-pool"])["model.workers"]
    assert kind == "process-pool" and note.startswith("2 worker process(es) not carried")
    log = _notes(saved["loguru"])
    assert [kind for kind, _ in log.values()] == ["queued-log-sink", "log-file-sink"]
    assert _notes(saved["duckdb"])["model.db"][1].endswith("features.duckdb reopened lazily, on first use")
    assert _notes(saved["read-files"])["model.lines"][1].endswith("lines.txt reopened lazily at position 6, on first use")
    assert _notes(saved["temp-file"]) == {"model.scratch": ("open-file", "")}


def test_nothing_is_opened_at_load(saved: dict[str, Saved]) -> None:
    """A database file and files read from open on first use, not at load."""
    require("duckdb")
    for name, attributes in (("duckdb", ("db",)), ("read-files", ("lines", "blob"))):
        loaded = ckpt.load(saved[name].files["ckpt"])
        assert not any(getattr(loaded, attribute).opened for attribute in attributes), name


def test_a_process_pool_verifies_on_the_command_line(saved: dict[str, Saved], run_ckpt: RunCkpt) -> None:
    """No raw traceback: the pool's pipe ends are not saved, so nothing closes another file's descriptor."""
    result = run_ckpt("load", str(saved["process-pool"].files["ckpt"]), "--verify", env={"PYTHONPATH": str(HERE)})
    assert result.code == 0 and "Traceback" not in result.err and "Errno" not in result.err, result


def test_someone_else_s_file_names_each_constructor_it_needs(saved: dict[str, Saved], run_ckpt: RunCkpt,
                                                              tmp_path: Path) -> None:
    """As data only, a rebuilt worker or lazily reopened file is no data: the refusal names it."""
    require("loguru")
    require("duckdb")
    another = {"CKPT_HOME": str(tmp_path / "another-user")}
    expected = {"process-pool": "concurrent.futures.process:ProcessPoolExecutor", "loguru": "loguru._handler:Handler",
                "duckdb": "ckpt.kinds.lazy:LazyConnection", "read-files": "ckpt.kinds.lazy:LazyFile"}
    for name, needed in expected.items():
        refused = run_ckpt("load", str(saved[name].files["ckpt"]), "--trust", "restored_clients",
                           env={**another, "PYTHONPATH": str(HERE)})
        assert refused.code == 1 and needed in refused.err, (name, refused)


def _outcome(tool: str, saved: Saved, loaded: Loaded | None) -> str:
    if tool in saved.errors:
        return saved.errors[tool]
    assert loaded is not None
    if loaded.ok:
        return "works"
    if loaded.error.startswith("TimeoutError"):
        return "hangs"
    return "failed" if loaded.error.startswith("AssertionError") else loaded.error


@pytest.mark.skipif(not all(importlib.util.find_spec(tool) for tool in TOOLS[1:]), reason="dill or cloudpickle absent")
def test_dill_and_cloudpickle_carry_what_the_table_says(saved: dict[str, Saved],
                                                        loads: dict[str, dict[str, Loaded]]) -> None:
    observed = {name: {tool: _outcome(tool, s, loads[tool].get(name)) for tool in TOOLS[1:]} for name, s in saved.items()}
    wrong = {name: (observed[name], OTHERS[name]) for name in observed
             if any(not observed[name][tool].startswith(OTHERS[name][tool]) for tool in TOOLS[1:])}
    assert not wrong, json.dumps(wrong, indent=1)

