"""The real-world corpus: a user's own checkpoints load whole,
with no flags, and work.

Every case is built and saved in a child process, signed with the key of
the user who owns the corpus (a ckpt home of its own), and built again
there to prove its exercise on an original; then a fresh process of the
same user loads the file with no flags, checks that it loaded whole,
verifies it and exercises the copy (`run_cases.py`). Cases run in batches,
one child per batch and step (one batch per heavy library, the light
libraries' cases several to a batch), two batches at a time. A case ckpt
cannot yet handle says at which step it fails and why (`corpus.Gap`): its
tests are strict xfails on that failure.

Another user (another CKPT_HOME) gets copies of a few files: refused, as
data only, until they trust the first user's exported public key, by
`ckpt key trust`, `--trusted-key` or `trusted-keys` in [tool.ckpt].
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import corpus
import pytest
from conftest import RunCkpt, assert_one_line_error, rewrite_member
from run_cases import MARK

import ckpt

HERE = Path(__file__).resolve().parent
CHILD_TIMEOUT = 180

HEAVY = {"torch": "torch", "pytorch_lightning": "torch", "xgboost": "xgboost", "lightgbm": "lightgbm",
         "sklearn": "sklearn", "scipy": "scipy", "boto3": "boto3", "optuna": "optuna", "pandas": "pandas",
         "sympy": "sympy", "langchain_core": "langchain_core", "fastapi": "fastapi"}
"""Libraries that take a second or more to import: a batch of their own
each (Lightning with torch, which it imports), slowest first, so that the
two workers finish together."""

LIGHT_BATCH = 10
"""Cases of light libraries per batch: a child costs ~0.4 s before it loads anything."""

pytestmark = pytest.mark.xdist_group("realworld")
"""One xdist worker for the module (see `runs`)."""


def available(case: corpus.Case) -> bool:
    """Whether what the case imports is installed (asked without importing it)."""
    try:
        return all(importlib.util.find_spec(module) is not None for module in (case.library, *case.needs))
    except ImportError:
        return False


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a fresh process: `services` and `corpus` importable."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "NO_COLOR": "1", **extra}


@dataclass
class Result:
    """What a child said about one case (or why it said nothing)."""

    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.facts.get("failed")

    def why(self) -> str:
        return f"{self.facts.get('failed')} failed: {self.facts.get('error')}\n{self.facts.get('traceback', '')}"


def run_child(step: str, folder: Path, names: list[str], *options: str, **env: str) -> dict[str, Result]:
    """Run `step` for `names` in one fresh process: each case's result line,
    or, for a case it did not report, how the child ended. The cases' own
    files (databases, logs, caches) go under `folder`, where every child
    finds them."""
    command = [sys.executable, str(HERE / "run_cases.py"), step, *options, str(folder), *names]
    env = {corpus.WORKDIR_VARIABLE: str(folder / "files"), **env}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=HERE, env=child_env(**env),
                              timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        ended = {"failed": step, "error": f"the child for {names} timed out after {CHILD_TIMEOUT}s",
                 "traceback": str(exc.stderr)}
        return {name: Result(ended) for name in names}
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            facts = json.loads(line[len(MARK):])
            results[facts.pop("case")] = Result(facts)
    for name in names:
        if name not in results or proc.returncode:  # it died, or crashed on its way out
            results[name] = Result({"failed": step, "error": f"the child exited {proc.returncode}"
                                    + ("" if name in results else f" before reporting {name}"),
                                    "traceback": proc.stderr[-4000:]})
    return results


@dataclass
class Corpus:
    folder: Path
    """The checkpoints, the cases' files, and the home of the user who saved them."""
    saved: dict[str, Result]
    loaded: dict[str, Result]

    @property
    def owner(self) -> dict[str, str]:
        """The environment of the user who saved the corpus (their ckpt home, their key)."""
        return {"CKPT_HOME": str(self.folder / "home")}

    def write(self, path: Path) -> None:
        steps = {"saved": self.saved, "loaded": self.loaded}
        path.write_text(json.dumps({step: {n: r.facts for n, r in results.items()} for step, results in steps.items()}))

    @classmethod
    def read(cls, path: Path) -> Corpus:
        steps = json.loads(path.read_text())
        saved, loaded = ({n: Result(facts) for n, facts in steps[step].items()} for step in ("saved", "loaded"))
        return cls(path.parent, saved, loaded)


def batches(names: list[str]) -> list[list[str]]:
    """One batch per heavy library (slowest first), then the light
    libraries' cases packed a few per batch."""
    groups = list(dict.fromkeys(HEAVY.values()))
    heavy: dict[str, list[str]] = {}
    light = []
    for name in names:
        group = HEAVY.get(corpus.CASES[name].library)
        if group:
            heavy.setdefault(group, []).append(name)
        else:
            light.append(name)
    slowest_first = [heavy[group] for group in sorted(heavy, key=groups.index)]
    return [*slowest_first, *(light[i : i + LIGHT_BATCH] for i in range(0, len(light), LIGHT_BATCH))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Every available case saved in one child per batch, then loaded in a
    fresh one; two batches at a time; saved and loaded by a user of their
    own (`Corpus.owner`). Once per test run: under xdist the first worker
    to get here runs the corpus, in a folder every worker of the run
    shares, and the others read its results (the xdist_group mark should
    keep the module on one worker, but pytest-xdist 3.8 groups by setting
    `item._nodeid`, which pytest 9 no longer reads)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    folder = tmp_path_factory.getbasetemp().parent / "realworld" if worker else tmp_path_factory.mktemp("realworld")
    (folder / "files").mkdir(parents=True, exist_ok=True)
    done = folder / "results.json"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return Corpus.read(done)
        result = run_corpus(folder)
        result.write(done)
        return result


def run_corpus(folder: Path) -> Corpus:
    names = [name for name, case in corpus.CASES.items() if available(case)]
    result = Corpus(folder, {}, {})

    def save_then_load(batch: list[str]) -> tuple[dict[str, Result], dict[str, Result]]:
        saved = run_child("save", folder, batch, **result.owner)
        to_load = [name for name in batch if "failed" not in saved[name].facts and "skip" not in saved[name].facts]
        return saved, run_child("load", folder, to_load, **result.owner) if to_load else {}

    with ThreadPoolExecutor(2) as pool:
        for saved, loaded in pool.map(save_then_load, batches(names)):
            result.saved.update(saved)
            result.loaded.update(loaded)
    return result


def require(name: str, runs: Corpus | None = None) -> corpus.Case:
    """The case, or skip it: its library is not installed, or (said by the
    save child) this environment cannot test ckpt with it."""
    case = corpus.CASES[name]
    if not available(case):
        pytest.skip(f"needs {', '.join((case.library, *case.needs))}: not all installed")
    if runs is not None and runs.saved[name].facts.get("skip"):
        pytest.skip(runs.saved[name].facts["skip"])
    return case


class KnownGap(Exception):
    """The failure a case's `corpus.Gap` describes: its tests expect this
    one (strict xfail), and fail on any other."""


def params(step: str) -> list[Any]:
    """Every case; a strict xfail, on its known gap only, where the gap is at `step` or before."""
    steps = ("save", "load")
    marked: list[Any] = []
    for name, case in corpus.CASES.items():
        gap = case.gap
        if gap is not None and steps.index(gap.step) <= steps.index(step):
            marked.append(pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=KnownGap, reason=gap.reason)))
        else:
            marked.append(name)
    return marked


def check(name: str, result: Result) -> None:
    """A step's result passed, or failed as the case's gap says it does (KnownGap)."""
    gap = corpus.CASES[name].gap
    if not result.ok and gap is not None and gap.shows in result.facts["error"]:
        raise KnownGap(result.facts["error"])
    assert result.ok, result.why()


# --- the corpus itself ----------------------------------------------------------------

def test_the_corpus_is_broad_enough() -> None:
    third_party = {c.library for c in corpus.CASES.values()} - set(sys.stdlib_module_names) - {"concurrent.futures"}
    assert len(corpus.CASES) >= 60
    assert len(third_party) >= 38, sorted(third_party)


@pytest.mark.parametrize("name", list(corpus.CASES))
def test_exercise_works_on_the_original(runs: Corpus, name: str) -> None:
    """The corpus is proven: each exercise passes on a freshly built object."""
    require(name, runs)
    facts = runs.saved[name].facts
    assert facts.get("failed") != "build", runs.saved[name].why()
    assert "original" not in facts, f"{facts['original']}\n{facts['original_traceback']}"


@pytest.mark.parametrize("name", params("save"))
def test_saves_with_the_lock_rewrapped(runs: Corpus, name: str) -> None:
    require(name, runs)
    result = runs.saved[name]
    check(name, result)
    assert result.facts["plain_pickle_error"], "plain pickle handles this object: the case proves nothing"
    assert result.facts["lock_rewrapped"], "the service's lock is not among the manifest's rewraps"
    assert (runs.folder / f"{name}.ckpt").stat().st_size > 0


@pytest.mark.parametrize("name", params("load"))
def test_loads_whole_verifies_and_works_in_a_fresh_process(runs: Corpus, name: str) -> None:
    require(name, runs)
    check(name, runs.saved[name])
    result = runs.loaded[name]
    check(name, result)
    assert result.facts["origin"] == "own"


# --- the command line, for a few cases ---------------------------------------------------

CLI_CASES = ["requests_session", "numpy_random", "private_bound_methods"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_loads_whole_and_verifies_with_no_flags(run_ckpt: RunCkpt, runs: Corpus, name: str) -> None:
    require(name, runs)
    loaded = run_ckpt("load", str(runs.folder / f"{name}.ckpt"), "--verify", "--format", "json", cwd=HERE,
                      env={"PYTHONPATH": child_env()["PYTHONPATH"], **runs.owner})
    assert loaded.code == 0, loaded
    assert loaded.json()["provenance"]["origin"] == "own", loaded


# --- another user ----------------------------------------------------------------------

REFUSED_AS_DATA = {
    "requests_session": "services:Service (instantiated) is not trusted",
    "pydantic_models": "services:Customer (instantiated) is not trusted",
    "typing_generics": "services:T (stored as a value) is not trusted",
    "private_bound_methods": "takes private attribute '_on_item' with getattr",
    "thread_local_subclass": "services:RequestContext (called) is not trusted",
}
"""Light cases whose files another user gets copies of (one child each
step), and what the data-only tier refuses in each: the user's own classes
and values, or a private method of one."""
OTHER_USER = list(REFUSED_AS_DATA)


@pytest.fixture(scope="module")
def exported_key(ckpt_exe: str, runs: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The public key of the user who saved the corpus, as `ckpt key export` prints it."""
    exported = subprocess.run([ckpt_exe, "key", "export"], capture_output=True, text=True,
                              env=child_env(**runs.owner), timeout=60)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path_factory.mktemp("keys") / "first-user.pub"
    path.write_text(exported.stdout)
    return path


@pytest.fixture
def inbox(runs: Corpus, tmp_path: Path) -> Path:
    """Copies of the other-user cases' files, as another user receives them."""
    names = [require(name, runs).name for name in OTHER_USER]
    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in names:
        shutil.copy(runs.folder / f"{name}.ckpt", folder)
    return folder


def assert_works(results: dict[str, Result], origin: str) -> None:
    for name, result in results.items():
        assert result.ok, f"{name}: {result.why()}"
        assert result.facts["origin"] == origin, name


def assert_nothing_secret(home: Path) -> None:
    """The other user loaded whole with public keys only: no signing key was made or used."""
    assert not (home / "signing-key").exists(), sorted(p.name for p in home.rglob("*"))
    assert "CKPT_SIGNING_KEY" not in os.environ


def test_another_user_refuses_the_files_until_they_trust_the_exported_key(
        run_ckpt: RunCkpt, inbox: Path, exported_key: Path, tmp_path: Path) -> None:
    other = {"CKPT_HOME": str(tmp_path / "other-home"), "PYTHONPATH": child_env()["PYTHONPATH"]}
    refused = run_ckpt("load", str(inbox / "requests_session.ckpt"), cwd=HERE, env=other)
    assert_one_line_error(refused, 1, "a key you do not trust", "ckpt key trust", "services:Service")
    for name, result in run_child("refused", inbox, OTHER_USER, **other).items():
        assert result.ok, f"{name}: {result.why()}"
        for fragment in ("a key you do not trust", "ckpt key trust", REFUSED_AS_DATA[name]):
            assert fragment in result.facts["refusal"], f"{name}: {result.facts['refusal']}"

    trusted = run_ckpt("key", "trust", str(exported_key), env=other)
    assert trusted.code == 0, trusted
    assert_works(run_child("load", inbox, OTHER_USER, **other), "trusted")
    assert_nothing_secret(tmp_path / "other-home")


def test_another_user_loads_whole_with_the_key_given_by_trusted_key(
        run_ckpt: RunCkpt, inbox: Path, exported_key: Path, tmp_path: Path) -> None:
    other = {"CKPT_HOME": str(tmp_path / "other-home"), "PYTHONPATH": child_env()["PYTHONPATH"]}
    loaded = run_ckpt("load", str(inbox / "private_bound_methods.ckpt"), "--trusted-key", str(exported_key),
                      "--verify", "--format", "json", cwd=HERE, env=other)
    assert loaded.code == 0, loaded
    assert loaded.json()["provenance"]["origin"] == "trusted", loaded
    assert_works(run_child("load", inbox, OTHER_USER, "--trusted-key", str(exported_key), **other), "trusted")
    assert_nothing_secret(tmp_path / "other-home")


def test_another_user_loads_whole_with_the_key_in_pyproject(
        run_ckpt: RunCkpt, inbox: Path, exported_key: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "keys").mkdir(parents=True)
    shutil.copy(exported_key, project / "keys" / "first-user.pub")
    (project / "pyproject.toml").write_text('[tool.ckpt]\ntrusted-keys = ["keys/first-user.pub"]\n')
    other = {"CKPT_HOME": str(tmp_path / "other-home"), "PYTHONPATH": child_env()["PYTHONPATH"]}
    for name in ("requests_session", "typing_generics"):
        loaded = run_ckpt("load", str(inbox / f"{name}.ckpt"), "--verify", "--format", "json", cwd=project, env=other)
        assert loaded.code == 0, loaded
        assert loaded.json()["provenance"]["origin"] == "trusted", loaded
    assert_nothing_secret(tmp_path / "other-home")


# --- the data-only tier, on a file whose signature no longer holds -------------------------------

def test_code_a_file_carries_is_never_compiled_at_load(tmp_path: Path) -> None:
    """A scipy distribution written into a signed checkpoint after signing
    (data.pkl replaced, the manifest's hashes fixed): the signature no longer
    matches, so it loads as data only, and even under --trust scipy the
    source text in its state is never compiled."""
    pytest.importorskip("scipy")
    from scipy import stats

    ckpt.save({"n": 1}, tmp_path / "m.ckpt")
    rewrite_member(tmp_path / "m.ckpt", "data.pkl", pickle.dumps(stats.norm(1, 2), protocol=5))
    with pytest.raises(ckpt.CheckpointError, match="code from the file itself was compiled"):
        ckpt.load(tmp_path / "m.ckpt", trust=["scipy", "numpy"])
