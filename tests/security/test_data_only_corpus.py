"""The data-only tier against its hostile corpus (corpus.py): nothing happens.

Every case of `corpus.CASES` is planted in its own copy of a valid
checkpoint (data.pkl replaced, manifest recomputed: an altered file, so it
loads as data only), then loaded in a child process (gadget_child.py, one
fork per case) with `ckpt.load` at each of
the case's trust levels and `ckpt.loads` at none, the harm oracle's
audit hook recording from every thread (harm.py). Each load is refused with
a CkptError, or, where the case says it loads, returns inert data; and:

- no audit event (no file opened for writing, deleted, renamed or
  re-moded, no connection, no process, no code compiled from text, no
  module imported), from any thread;
- the process unchanged (threads, loggers, sys.modules, os.environ,
  multiprocessing's settings, sys.path, copyreg, warnings filters, cwd...);
- nothing at what interpreter exit then does (the threads it joins, exit
  hooks, logging's flush, the finalizers of what loaded);
- nothing under the workspace changed, and the loopback listener never
  reached.

A sample of each family also goes through the installed `ckpt load`: one
line on stderr and exit 1, or a load. Hostile pickles from a public
collection run too when CKPT_PUBLIC_PICKLES names a directory of them (for
instance picklescan's tests/data and tests/data2): they are not shipped here.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, assert_one_line_error
from families import CASES, FAMILIES, NO_TRUST, TRUSTS, Case
from gadgets import Work
from workspace import Listeners, Planted, plant, run_child, run_cli, what_happened

pytestmark = pytest.mark.xdist_group("data-only-corpus")  # one worker builds the module's shared runs once

NAMES = [case.name for case in CASES]
CHILDREN = 1
"""Children loading the corpus (each imports five libraries first: one keeps the suite's CPU down)."""
CLI_SAMPLE = [next(case for case in CASES if case.family == family) for family in FAMILIES] + [
    next(case for case in CASES if case.loads_at and case.loads_at != TRUSTS)]
"""The first case of each family, and one that loads at one trust only, through the command line."""


@dataclass
class Runs:
    planted: dict[str, Planted]
    reports: dict[str, Any]
    cli: dict[str, list[Result]]
    listeners: Listeners


def cli_trust(case: Case) -> tuple[str, ...]:
    """One trust level per case on the command line (each `ckpt` costs a second):
    where it loads, if anywhere; else the widest it is refused at."""
    return case.loads_at[-1] if case.loads_at else case.trusts[-1]


def _cli_commands(case: Case, path: Path) -> list[list[str]]:
    return [["load", str(path), *(arg for name in cli_trust(case) for arg in ("--trust", name))]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    import ckpt

    base = tmp_path_factory.mktemp("corpus-base") / "model.ckpt"
    ckpt.save({"weights": list(range(10)), "name": "model"}, base)
    listeners = Listeners()
    root = tmp_path_factory.mktemp("corpus")
    planted = {case.name: plant(case, base, root, listeners.open()) for case in CASES}
    listeners.start()
    batches = [list(planted.values())[i::CHILDREN] for i in range(CHILDREN)]
    with ThreadPoolExecutor(CHILDREN + 1) as pool:
        futures = [pool.submit(run_child, "ckpt", batch, TRUSTS, base, loads_trusts=[NO_TRUST]) for batch in batches]
        cli_futures = {case.name: [pool.submit(run_cli, command)
                                   for command in _cli_commands(case, planted[case.name].path)]
                       for case in CLI_SAMPLE}
        reports = {report["name"]: report for future in futures for report in future.result()}
        cli = {name: [future.result() for future in commands] for name, commands in cli_futures.items()}
    yield Runs(planted, reports, cli, listeners)
    listeners.close()


def test_the_corpus_covers_every_family_at_every_trust() -> None:
    assert len(set(NAMES)) == len(NAMES)
    assert len(FAMILIES) == 7
    for family in FAMILIES:
        assert sum(case.family == family for case in CASES) >= 6, family
    assert all(set(case.loads_at) <= set(case.trusts) for case in CASES)
    assert sum(("torch",) in case.trusts and ("sklearn",) in case.trusts and ("pandas",) in case.trusts
               for case in CASES) >= 40


def problems_of(report: dict[str, Any], loads_at: tuple[tuple[str, ...], ...] | None, *,
                registers: bool = False) -> list[str]:
    """Everything the report shows that a data-only load must not do, and
    each outcome that is not the expected one (`loads_at`: where it loads;
    refused elsewhere; None: either). A handler registered with logging is
    a change only a name trusted exactly may make (`registers`)."""
    if "crashed" in report:
        return [f"the child crashed: {report['crashed']}"]
    problems = []
    for attempt in report["attempts"]:
        trust = tuple(attempt["trust"])
        where = f"{attempt['how']}(trust={list(trust)})"
        if "raised" in attempt and not attempt["ckpt_error"]:
            problems.append(f"{where} raised {attempt['raised']}: {attempt['message']}")
        elif loads_at is not None and trust in loads_at and "returned" not in attempt:
            problems.append(f"{where} should load as inert data, but raised {attempt['raised']}: {attempt['message']}")
        elif loads_at is not None and trust not in loads_at and "returned" in attempt:
            problems.append(f"{where} returned a {attempt['returned']} instead of refusing")
        if attempt["events"]:
            problems.append(f"{where} caused {attempt['events']}")
        diff = dict(attempt["diff"])
        if registers:
            diff.pop("logging live handlers", None)
        if attempt["how"] == "verify" and _executor_workers(diff.get("threads")):
            diff.pop("threads")
            diff.pop("native threads", None)
        if diff:
            problems.append(f"{where} changed {json.dumps(diff, default=repr)[:800]}")
    if report["at_exit"]:
        problems.append(f"at exit: {report['at_exit']}")
    return problems


def _executor_workers(change: Any) -> bool:
    """verify's probe of a restored executor submits a job: its worker thread
    (watched and jailed, as the probe ran in the sandbox) idles until the
    executor is collected. ckpt's doing, not the file's."""
    return bool(change) and not change["removed"] and all(t.startswith("ThreadPoolExecutor-")
                                                          for t in change["added"])


@pytest.mark.parametrize("case", CASES, ids=NAMES)
def test_each_case_is_refused_or_loads_inert_data_and_nothing_happens(case: Case, runs: Runs) -> None:
    problems = problems_of(runs.reports[case.name], case.loads_at, registers=case.registers)
    problems += what_happened(runs.planted[case.name], runs.listeners)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", CLI_SAMPLE, ids=[case.name for case in CLI_SAMPLE])
def test_the_command_line_refuses_in_one_line_or_loads(case: Case, runs: Runs) -> None:
    for trust, result in zip([cli_trust(case)], runs.cli[case.name]):
        if trust in case.loads_at:
            assert result.code == 0 and "Traceback" not in result.err, result
        else:
            assert_one_line_error(result, 1)
    assert what_happened(runs.planted[case.name], runs.listeners) == []


# --- hostile pickles from a public collection, when there is a copy ------------------------

PUBLIC = os.environ.get("CKPT_PUBLIC_PICKLES")


@dataclass(frozen=True)
class PublicFile:
    """A pickle of a public collection, as a row: data.pkl is its bytes (a
    torch zip's own data.pkl), so it loads as data only through a checkpoint."""

    name: str
    data: bytes
    trusts: tuple[tuple[str, ...], ...] = TRUSTS
    preimport: bool = False
    """Nothing it names is imported first: an import the loader makes is seen."""

    def plant(self, path: Path, work: Work) -> bytes:
        from conftest import rewrite_member

        rewrite_member(path, "data.pkl", self.data)
        return self.data


def _public_files(root: Path) -> list[PublicFile]:
    found = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = file.read_bytes()
        if raw[:2] == b"PK":
            try:
                with zipfile.ZipFile(file) as archive:
                    found += [PublicFile(f"{file.relative_to(root)}:{n}", archive.read(n))
                              for n in archive.namelist() if n.endswith(".pkl")]
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError):
                continue
        else:
            found.append(PublicFile(str(file.relative_to(root)), raw))
    return found


@pytest.mark.skipif(not PUBLIC, reason="CKPT_PUBLIC_PICKLES names no directory of public hostile pickles")
def test_public_hostile_pickles_do_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    import ckpt

    files = _public_files(Path(PUBLIC or "."))
    assert files, f"no pickles under {PUBLIC}"
    base = tmp_path_factory.mktemp("public-base") / "model.ckpt"
    ckpt.save({"weights": [1]}, base)
    listeners = Listeners()
    root = tmp_path_factory.mktemp("public")
    planted = [plant(row, base, root, listeners.open()) for row in files]
    listeners.start()
    try:
        reports = run_child("ckpt", planted, TRUSTS, base, loads_trusts=[NO_TRUST])
        problems = []
        for report, target in zip(reports, planted):
            found = problems_of(report, None) + what_happened(target, listeners)
            problems += [f"{target.row.name}: {p}" for p in found]
        assert not problems, "\n".join(problems)
    finally:
        listeners.close()
