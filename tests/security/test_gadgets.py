"""Gadgets in numpy, scipy, scikit-learn, pandas, torch and the stdlib: ckpt runs none.

Every row of `gadgets.GADGETS` is planted in three copies of a valid
checkpoint (manifest recomputed to match), one per way of running it:

- the installed `ckpt`, under harness.MEMORY_LIMIT, at no trust and at
  `--trust` of all five libraries: `load` and `load --verify` exit 1 with
  exactly one `ckpt: ` line and no traceback; `inspect` shows or refuses it
  (the rows of gadgets.CLI_SAMPLE by default, every row with
  CKPT_GADGETS_CLI=all: a `ckpt` process costs half a second);
- the library (`ckpt.core.load` and `loads`) at every level of
  `gadgets.TRUST_LEVELS`, in a child process (gadget_child.py) that forks
  once per payload, audits the load with sys.addaudithook and compares the
  process before and after: every load raises a CkptError, no audited event
  happens, nothing in the process changes (also at interpreter exit);
- plain `pickle.loads` in the same kind of child: the payload's effect does
  happen, so the checks above would have seen it.

After each, nothing under the workspace changed (no sentinel, victim intact,
no attacker text, no new file or directory) and the loopback listener the
payload targets was never reached.

Modules named by a payload are imported in the child before the snapshot
(a loader resolving `module:qualname` imports the module); any other import
during the load counts as a change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Result, assert_one_line_error
from gadgets import CLI_SAMPLE, CLI_TRUST_LEVELS, GADGETS, PRECIOUS, TRUST_LEVELS, Gadget, Work, named_modules
from harness import installed_ckpt

CHILD = Path(__file__).with_name("gadget_child.py")
CHILD_MEMORY = 4 << 30
"""Address space of a library child: it imports all five libraries."""
CLI_MEMORY = 2 << 30
WORKERS = 2
LIB_BATCHES = 2

NAMES = [g.name for g in GADGETS]
CLI_ALL = os.environ.get("CKPT_GADGETS_CLI") == "all"
CLI_GADGETS = [g for g in GADGETS if CLI_ALL or g.name in CLI_SAMPLE]


# --- the loopback listener ----------------------------------------------------------


class Listeners:
    """One listening socket per workspace, each counting who connected."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self.accepted: dict[int, int] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def open(self) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.setblocking(False)
        port = server.getsockname()[1]
        self.accepted[port] = 0
        self._sockets.append(server)
        self._selector.register(server, selectors.EVENT_READ, port)
        return port

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.2):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                self.accepted[key.data] += 1
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for server in self._sockets:
            server.close()


# --- planting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    gadget: Gadget
    path: Path
    work: Work
    data: bytes
    tree: dict[str, str]


def tree(root: Path) -> dict[str, str]:
    """Everything under root: a directory, or a file's sha256."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def plant(gadget: Gadget, base: Path, root: Path, port: int) -> Planted:
    directory = root / re.sub(r"\W+", "_", gadget.name)
    (directory / "victim").mkdir(parents=True)
    (directory / "victim" / "keep.txt").write_text(PRECIOUS)
    path = directory / "model.ckpt"
    shutil.copy(base, path)
    work = Work(directory, port)
    data = gadget.plant(path, work)
    return Planted(gadget, path, work, data, tree(directory))


def what_happened(planted: Planted, listeners: Listeners) -> list[str]:
    """Effects visible from outside: the workspace and the listener."""
    effects = []
    now = tree(planted.work.root)
    for rel in sorted(set(now) | set(planted.tree)):
        if now.get(rel) != planted.tree.get(rel):
            change = "created" if rel not in planted.tree else "deleted" if rel not in now else "changed"
            effects.append(f"{rel} {change}")
    victim = Path(planted.work.keep)
    if not victim.exists() or victim.read_text() != PRECIOUS:
        effects.append("the victim file was damaged")
    if listeners.accepted.get(planted.work.port):
        effects.append(f"{listeners.accepted[planted.work.port]} connection(s) to the listener")
    return effects


# --- running things -------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def _limit(size: int) -> Any:
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (size, size))


def run_cli(args: Sequence[str]) -> Result:
    """The installed `ckpt` under the memory limit, as harness.run_limited runs it."""
    proc = subprocess.run([installed_ckpt(), *args], cwd=REPO, capture_output=True, text=True, env=_env(),
                          timeout=120, preexec_fn=_limit(CLI_MEMORY))
    return Result(proc)


def run_child(mode: str, planted: Sequence[Planted], trusts: Sequence[Sequence[str]], warm_up: Path | None) -> list[Any]:
    jobs = [{"name": p.gadget.name, "path": str(p.path), "work": str(p.work.root), "modules": named_modules(p.data),
             "trusts": [list(t) for t in trusts], "loads_trusts": [list(t) for t in CLI_TRUST_LEVELS]}
            for p in planted]
    spec = {"mode": mode, "jobs": jobs, "timeout": 20, "warm_up": str(warm_up) if warm_up else None}
    proc = subprocess.run([sys.executable, str(CHILD)], input=json.dumps(spec), capture_output=True, text=True,
                          cwd=REPO, env=_env(), timeout=600, preexec_fn=_limit(CHILD_MEMORY))
    assert proc.returncode == 0, f"the {mode} child failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def cli_commands(path: Path) -> list[list[str]]:
    commands = []
    for trust in CLI_TRUST_LEVELS:
        flags = [arg for module in trust for arg in ("--trust", module)]
        commands.append(["load", str(path), "--verify", *flags])  # a load, then every check: both must refuse
    return commands + [["inspect", str(path)]]


# --- fixtures --------------------------------------------------------------------------


@dataclass
class Runs:
    planted: dict[str, dict[str, Planted]]
    """kind ("cli", "lib", "real") -> gadget name -> its workspace."""
    cli: dict[str, list[Result]]
    lib: dict[str, Any]
    real: dict[str, Any]
    listeners: Listeners
    available: dict[str, bool]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    import ckpt.core as ckpt

    base = tmp_path_factory.mktemp("gadget-base") / "model.ckpt"
    ckpt.save({"weights": list(range(100)), "name": "model"}, base)
    listeners = Listeners()
    planted = {kind: {g.name: plant(g, base, tmp_path_factory.mktemp(f"gadgets-{kind}"), listeners.open())
                      for g in GADGETS} for kind in ("cli", "lib", "real")}
    listeners.start()
    # Before any thread forks: find_spec imports packages, and an import in one
    # thread while another forks (subprocess with preexec_fn) can deadlock.
    available = {g.name: _available(g) for g in GADGETS}
    lib_batches = [list(planted["lib"].values())[i::LIB_BATCHES] for i in range(LIB_BATCHES)]
    with ThreadPoolExecutor(WORKERS + 1) as pool:
        # The slow children first: they overlap the many short CLI runs.
        lib_futures = [pool.submit(run_child, "ckpt", batch, TRUST_LEVELS, base) for batch in lib_batches]
        real_future = pool.submit(run_child, "plain", [p for p in planted["real"].values() if available[p.gadget.name]],
                                  [], None)
        cli_futures: dict[str, list[Future[Result]]] = {
            g.name: [pool.submit(run_cli, cmd) for cmd in cli_commands(planted["cli"][g.name].path)]
            for g in CLI_GADGETS}
        cli = {name: [f.result() for f in futures] for name, futures in cli_futures.items()}
        lib = {report["name"]: report for f in lib_futures for report in f.result()}
        real = {report["name"]: report for report in real_future.result()}
    yield Runs(planted, cli, lib, real, listeners, available)
    listeners.close()


def _available(gadget: Gadget) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lib2to3 and distutils are deprecated
            return all(importlib.util.find_spec(module) is not None for module in gadget.requires)
    except (ImportError, ValueError):
        return False


# --- the tests -----------------------------------------------------------------------


def test_the_corpus_is_large_and_varied() -> None:
    assert len(GADGETS) >= 40
    assert len(set(NAMES)) == len(NAMES)
    for library in ("numpy", "scipy", "sklearn", "pandas", "torch"):
        assert sum(library in g.requires for g in GADGETS) >= 5, library
    assert all(g.shows and set(g.shows) <= {"files", "connect", "state", "audit"} for g in GADGETS)
    assert CLI_SAMPLE <= set(NAMES)


@pytest.mark.parametrize("gadget", CLI_GADGETS, ids=[g.name for g in CLI_GADGETS])
def test_cli_refuses_in_one_line_and_nothing_happens(gadget: Gadget, runs: Runs) -> None:
    *loads, inspect = runs.cli[gadget.name]
    commands = cli_commands(runs.planted["cli"][gadget.name].path)
    for command, result in zip(commands, loads):
        try:
            assert_one_line_error(result, 1)
        except AssertionError as exc:
            raise AssertionError(f"ckpt {' '.join(command)}: {exc}") from None
    assert inspect.code in (0, 1), inspect
    assert "Traceback" not in inspect.out + inspect.err, inspect
    if inspect.err:
        assert_one_line_error(inspect, 1)
    assert what_happened(runs.planted["cli"][gadget.name], runs.listeners) == []


@pytest.mark.parametrize("gadget", GADGETS, ids=NAMES)
def test_library_refuses_at_every_trust_level_and_nothing_changes(gadget: Gadget, runs: Runs) -> None:
    report = runs.lib[gadget.name]
    assert "crashed" not in report, report
    problems = []
    for attempt in report["attempts"]:
        where = f"{attempt['how']}(trust={attempt['trust']})"
        if "returned" in attempt:
            problems.append(f"{where} returned a {attempt['returned']}")
        elif not attempt["ckpt_error"]:
            problems.append(f"{where} raised {attempt['raised']}: {attempt['message']}")
        if attempt["events"]:
            problems.append(f"{where} caused {attempt['events']}")
        if attempt["diff"]:
            problems.append(f"{where} changed {json.dumps(attempt['diff'], default=repr)[:800]}")
    if report["at_exit"]:
        problems.append(f"at exit: {report['at_exit']}")
    problems += what_happened(runs.planted["lib"][gadget.name], runs.listeners)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("gadget", GADGETS, ids=NAMES)
def test_each_gadget_is_real(gadget: Gadget, runs: Runs) -> None:
    """Plain pickle.loads of the payload has the effect the row claims: the checks above can see it."""
    if not runs.available[gadget.name]:
        pytest.skip(f"needs {', '.join(gadget.requires)}")
    report = runs.real[gadget.name]
    assert "crashed" not in report, report
    attempt = report["attempts"][0]
    seen = {
        "files": bool(what_happened(runs.planted["real"][gadget.name], _NoListener())),
        "connect": bool(runs.listeners.accepted.get(runs.planted["real"][gadget.name].work.port)),
        "state": bool(attempt["diff"]),
        "audit": bool(attempt["events"] or report["at_exit"]),
    }
    missing = [kind for kind in gadget.shows if not seen[kind]]
    assert not missing, f"plain pickle.loads showed no {missing}: {json.dumps(attempt, default=repr)[:2000]}"


class _NoListener(Listeners):
    def __init__(self) -> None:
        self.accepted = {}
