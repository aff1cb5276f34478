"""Gadgets in numpy, scipy, scikit-learn, pandas, torch and the stdlib: ckpt runs none.

Every row of `gadgets.GADGETS` is planted in three copies of a valid
checkpoint (manifest recomputed to match), one per way of running it:

- the installed `ckpt`, under harness.MEMORY_LIMIT, at no trust and at
  `--trust` of all five libraries: `load` and `load --verify` exit 1 with
  exactly one `ckpt: ` line and no traceback; `inspect` shows or refuses it
  (the rows of gadgets.CLI_SAMPLE by default, every row with
  CKPT_GADGETS_CLI=all: a `ckpt` process costs half a second);
- the library (`ckpt.load` and `loads`) at every level of
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

import importlib.util
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, assert_one_line_error
from gadgets import CLI_SAMPLE, CLI_TRUST_LEVELS, GADGETS, TRUST_LEVELS, Gadget
from workspace import (
    Listeners,
    NoListener,
    Planted,
    plant,
    run_child,
    run_cli,
    what_happened,
)

pytestmark = pytest.mark.xdist_group("gadgets")  # one worker builds the module's shared runs once

WORKERS = 2
LIB_BATCHES = 2

NAMES = [g.name for g in GADGETS]
CLI_ALL = os.environ.get("CKPT_GADGETS_CLI") == "all"
CLI_GADGETS = [g for g in GADGETS if CLI_ALL or g.name in CLI_SAMPLE]


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
    import ckpt

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
        lib_futures = [pool.submit(run_child, "ckpt", batch, TRUST_LEVELS, base, loads_trusts=CLI_TRUST_LEVELS)
                       for batch in lib_batches]
        real_future = pool.submit(run_child, "plain", [p for p in planted["real"].values() if available[p.row.name]],
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
        "files": bool(what_happened(runs.planted["real"][gadget.name], NoListener())),
        "connect": bool(runs.listeners.accepted.get(runs.planted["real"][gadget.name].work.port)),
        "state": bool(attempt["diff"]),
        "audit": bool(attempt["events"] or report["at_exit"]),
    }
    missing = [kind for kind in gadget.shows if not seen[kind]]
    assert not missing, f"plain pickle.loads showed no {missing}: {json.dumps(attempt, default=repr)[:2000]}"


