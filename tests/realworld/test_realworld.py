"""The real-world corpus (issue 11): every case saves with `ckpt.save`, loads
and verifies in a fresh process with only the trust its manifest asks for,
and the loaded object still works (`exercise`).

Fresh-process loads are batched to keep the module fast: one child process
per heavy library (torch, pandas, ...), the light libraries' cases a few to
a child, two children at a time. Each child prints one result line per case
and each case's test reads its own; a child that dies fails the cases it
had not reported, with its stderr.
"""

from __future__ import annotations

import importlib.util
import json
import re
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import ckpt.core as ckpt
import corpus
from conftest import RunCkpt

HERE = Path(__file__).resolve().parent
NAMES = list(corpus.CASES)
MARK = "@@ckpt-realworld "
CHILD_TIMEOUT = 120

CHILD = r"""
import json, sys, traceback

import ckpt.core
import corpus

MARK = "@@ckpt-realworld "
failed = 0
args = sys.argv[1:]
for path, trust, name in zip(args[0::3], args[1::3], args[2::3]):
    trust = json.loads(trust)
    try:
        loaded = ckpt.core.load(path, trust=trust)
        report = ckpt.core.verify(path, trust=trust)
        if not report.ok:
            problems = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if c.ok is False)
            raise AssertionError(f"verify failed: {problems}")
        corpus.CASES[name].exercise(loaded)
    except BaseException as exc:
        failed += 1
        result = {"case": name, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    else:
        result = {"case": name, "ok": True}
    print(MARK + json.dumps(result), flush=True)
if not failed:
    print("ok")
sys.exit(1 if failed else 0)
"""


def available(case: corpus.Case) -> bool:
    try:
        return importlib.util.find_spec(case.library) is not None
    except ImportError:
        return False


def require(name: str) -> corpus.Case:
    """The case, or skip it when its library is not installed."""
    case = corpus.CASES[name]
    pytest.importorskip(case.library)
    return case


def child_env() -> dict[str, str]:
    """The environment for a fresh process: `services` and `corpus` importable."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "NO_COLOR": "1"}


@dataclass
class Saved:
    path: Path | None = None
    trust: tuple[str, ...] = ()
    trust_from_manifest: bool = False
    lock_rewrapped: bool = False
    plain_pickle_error: str = ""
    error: str = ""

    def __repr__(self) -> str:  # short: pytest prints the whole `saved` dict on a failure
        return f"Saved({self.path.name if self.path else self.error[:60]!r})"


@dataclass
class Loaded:
    ok: bool
    error: str = ""
    detail: str = ""


def trust_for(case: corpus.Case, report: ckpt.SaveReport) -> tuple[tuple[str, ...], bool]:
    """What the file needs trusted: the manifest says (report.manifest.trust),
    else, until the manifest carries it, the service module and the library."""
    trust = getattr(report.manifest, "trust", None)
    if trust is not None:
        return tuple(trust), True
    return ("services", case.library.split(".")[0], *case.trust), False


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    """Every available case built once and saved with the API."""
    folder = tmp_path_factory.mktemp("realworld")
    results: dict[str, Saved] = {}
    for name, case in corpus.CASES.items():
        if not available(case):
            continue
        result = results[name] = Saved()
        try:
            obj = case.build()
        except Exception as exc:
            result.error = f"build raised {type(exc).__name__}: {exc}"
            continue
        try:
            pickle.dumps(obj, protocol=5)
        except Exception as exc:
            result.plain_pickle_error = f"{type(exc).__name__}: {exc}"
        try:
            report = ckpt.save(obj, folder / f"{name}.ckpt")
        except Exception as exc:
            result.error = f"save raised {type(exc).__name__}: {exc}"
            continue
        result.path = Path(report.path)
        result.trust, result.trust_from_manifest = trust_for(case, report)
        result.lock_rewrapped = any(s.kind == "lock" and s.action == "rewrap" for s in report.manifest.substitutions)
    return results


def run_child(batch: list[tuple[str, Saved]]) -> dict[str, Loaded]:
    """Load, verify and exercise `batch` in one fresh process."""
    args = [arg for name, s in batch for arg in (str(s.path), json.dumps(list(s.trust)), name)]
    names = [name for name, _ in batch]
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                              cwd=HERE, env=child_env(), timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return {name: Loaded(False, f"the child for {names} timed out after {CHILD_TIMEOUT}s", str(exc.stderr))
                for name in names}
    results: dict[str, Loaded] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            got = json.loads(line[len(MARK):])
            results[got["case"]] = Loaded(got["ok"], got.get("error", ""), got.get("traceback", ""))
    all_ok = len(results) == len(names) and all(r.ok for r in results.values())
    clean_exit = proc.returncode == 0 and "ok" in proc.stdout.splitlines()
    for name in names:
        if name not in results:
            results[name] = Loaded(False, f"the child exited {proc.returncode} before reporting {name}",
                                   proc.stderr[-4000:])
        elif all_ok and not clean_exit or proc.returncode not in (0, 1):
            # every case passed yet the child did not exit 0 and print "ok", or it crashed
            results[name] = Loaded(False, f"the child exited {proc.returncode}", proc.stderr[-4000:])
    return results


@pytest.fixture(scope="module")
def fresh_loads(saved: dict[str, Saved]) -> dict[str, Loaded]:
    """Every saved case loaded in a fresh process, two processes at a time."""
    results: dict[str, Loaded] = {}
    with ThreadPoolExecutor(2) as pool:
        for batch_results in pool.map(run_child, batches(saved)):
            results.update(batch_results)
    return results


HEAVY = {"torch", "sklearn", "lightgbm", "xgboost", "langchain_core", "pandas", "scipy", "sympy"}
"""Libraries that take a second or more to import: a child of their own each."""

LIGHT_BATCH = 6
"""Cases of light libraries per child: a child costs ~0.4 s before it loads anything."""


def batches(saved: dict[str, Saved]) -> list[list[tuple[str, Saved]]]:
    """One child per heavy library (slowest first, so the two workers finish
    together), then the light libraries' cases packed a few per child."""
    by_library: dict[str, list[tuple[str, Saved]]] = {}
    for name, result in saved.items():
        if result.path is not None:
            by_library.setdefault(corpus.CASES[name].library, []).append((name, result))
    heavy = [cases for library, cases in by_library.items() if library in HEAVY]
    light = [case for library, cases in by_library.items() if library not in HEAVY for case in cases]
    return heavy + [light[i : i + LIGHT_BATCH] for i in range(0, len(light), LIGHT_BATCH)]


# --- the corpus itself ----------------------------------------------------------------

def test_the_corpus_is_broad_enough() -> None:
    third_party = {c.library for c in corpus.CASES.values()} - set(sys.stdlib_module_names) - {"concurrent.futures"}
    assert len(corpus.CASES) >= 32
    assert len(third_party) >= 16, sorted(third_party)


@pytest.mark.parametrize("name", NAMES)
def test_exercise_works_on_the_original(name: str) -> None:
    """The corpus is proven: each exercise passes on a freshly built object."""
    case = require(name)
    case.exercise(case.build())


@pytest.mark.parametrize("name", NAMES)
def test_saves_with_the_lock_rewrapped(saved: dict[str, Saved], name: str) -> None:
    require(name)
    result = saved[name]
    assert not result.error, result.error
    assert result.plain_pickle_error, "plain pickle handles this service: the case proves nothing"
    assert result.lock_rewrapped, "the service's lock is not among the manifest's rewraps"
    assert result.path is not None and result.path.stat().st_size > 0


@pytest.mark.parametrize("name", NAMES)
def test_loads_verifies_and_works_in_a_fresh_process(saved: dict[str, Saved], fresh_loads: dict[str, Loaded],
                                                     name: str) -> None:
    require(name)
    assert not saved[name].error, saved[name].error
    result = fresh_loads[name]
    assert result.ok, f"{result.error}\n(trust {list(saved[name].trust)})\n{result.detail}"


# --- the command line, for a few cases ---------------------------------------------------

CLI_CASES = ["requests_session", "cachetools_ttl", "numpy_random", "prometheus_registry"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_load_verify(run_ckpt: RunCkpt, saved: dict[str, Saved], name: str) -> None:
    require(name)
    result = saved[name]
    assert result.path is not None, result.error
    flags = [arg for t in result.trust for arg in ("--trust", t)]
    loaded = run_ckpt("load", str(result.path), "--verify", *flags, cwd=HERE,
                      env={"PYTHONPATH": child_env()["PYTHONPATH"]})
    assert loaded.code == 0, loaded



@pytest.mark.parametrize("name", sorted(corpus.REFUSED_AT_SAVE))
def test_an_object_no_trust_could_load_is_refused_at_save_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    library, build, reason = corpus.REFUSED_AT_SAVE[name]
    pytest.importorskip(library)
    with pytest.raises(ckpt.SaveError, match=re.escape(reason)):
        ckpt.save(build(), tmp_path / "m.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_code_a_file_carries_is_never_compiled_at_load(tmp_path: Path) -> None:
    """A scipy distribution written without save's check (plain pickle inside a
    checkpoint): loading it under --trust scipy compiles no text from the file."""
    pytest.importorskip("scipy")
    from conftest import rewrite_member
    from scipy import stats

    ckpt.save({"n": 1}, tmp_path / "m.ckpt")
    rewrite_member(tmp_path / "m.ckpt", "data.pkl", pickle.dumps(stats.norm(1, 2), protocol=5))
    with pytest.raises(ckpt.CheckpointError, match="code from the file itself was compiled"):
        ckpt.load(tmp_path / "m.ckpt", trust=["scipy", "numpy"])
