"""Hostile checkpoints: ckpt refuses each in one line, and nothing in it runs.

Every row of `hostile.ATTACKS` is planted in its own copy of a valid
checkpoint (manifest recomputed to match), then:
- through the installed `ckpt`, under a 2 GiB address-space limit:
  `load` and `load --verify` exit 1 with one line naming the problem,
  `inspect` shows it or refuses it, and none prints a traceback;
- through the library: `load`, `loads`, `verify` and `inspect`;
and afterwards the sentinel the payload would create does not exist, the
victim file it would delete or truncate is intact, and the running process
(loggers, logging classes, functions the pickle was handed) is unchanged.
"""

from __future__ import annotations

import copyreg
import json
import logging
import pathlib
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, assert_one_line_error, rewrite_member
from harness import run_many
from hostile import (
    ATTACKS,
    EXTENSIONS,
    Attack,
    call,
    glob,
    marked_tuples,
    number,
    pkl,
    text,
    tuple_key,
    tuples_through_calls,
)

import ckpt
from ckpt.errors import CkptError
from ckpt.trust.analysis import analyse

pytestmark = pytest.mark.xdist_group("hostile")  # one worker builds the module's shared runs once

PRECIOUS = "precious"


@dataclass(frozen=True)
class Planted:
    path: Path
    work: Path
    data: bytes | None


def plant(attack: Attack, base: Path, root: Path) -> Planted:
    work = root / re.sub(r"\W+", "_", attack.name)
    (work / "victim").mkdir(parents=True)
    (work / "victim" / "keep.txt").write_text(PRECIOUS)
    path = work / "model.ckpt"
    shutil.copy(base, path)
    return Planted(path, work, attack.plant(path, work))


def assert_nothing_ran(work: Path) -> None:
    assert not (work / "sentinel").exists(), "the payload ran: it created its sentinel"
    assert (work / "victim" / "keep.txt").read_text() == PRECIOUS, "the payload deleted or truncated a file"


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "model.ckpt"
    ckpt.save({"weights": list(range(100)), "name": "model"}, path)
    return path


@pytest.fixture(scope="module")
def planted(base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Planted]:
    root = tmp_path_factory.mktemp("hostile")
    return {attack.name: plant(attack, base_checkpoint, root) for attack in ATTACKS}


def _commands(attack: Attack, path: Path) -> list[list[str]]:
    """load --verify (a load, then every check) for every attack; inspect for every third one (the library's
    inspect runs on all of them below)."""
    trust = [arg for module in attack.trust for arg in ("--trust", module)]
    inspect = [["inspect", str(path)]] if ATTACKS.index(attack) % 3 == 0 else []
    return [["load", str(path), "--verify", *trust], *inspect]


@pytest.fixture(scope="module")
def cli_runs(planted: dict[str, Planted]) -> dict[str, list[Result]]:
    """Every command on every attack, three processes at a time."""
    per_attack = {attack.name: _commands(attack, planted[attack.name].path) for attack in ATTACKS}
    results = iter(run_many([cmd for commands in per_attack.values() for cmd in commands]))
    return {name: [next(results) for _ in commands] for name, commands in per_attack.items()}


@pytest.fixture
def extensions_registered() -> Iterator[None]:
    """The extension codes point at process runners, as a library could
    register them: EXT opcodes then reach find_class like any global."""
    for code, module, name in EXTENSIONS.values():
        copyreg.add_extension(module, name, code)
    yield
    for code, module, name in EXTENSIONS.values():
        copyreg.remove_extension(module, name, code)


def process_state() -> list[Any]:
    """What a payload applying state to handed-out objects would change."""
    watched = [logging.Handler, logging.FileHandler, logging.Logger, logging.RootLogger, logging.root,
               pathlib.PurePosixPath, threading.RLock]
    state = [{k: id(v) for k, v in vars(obj).items()} for obj in watched]
    return state + [threading.RLock.__defaults__, logging.root.disabled, sorted(copyreg._extension_registry)]


NAMES = [attack.name for attack in ATTACKS]


def test_the_corpus_is_large_and_varied() -> None:
    assert len(ATTACKS) >= 30
    assert len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("attack", ATTACKS, ids=NAMES)
def test_cli_refuses_in_one_line_and_runs_nothing(attack: Attack, planted: dict[str, Planted],
                                                  cli_runs: dict[str, list[Result]]) -> None:
    verify, *inspected = cli_runs[attack.name]
    assert_one_line_error(verify, 1, attack.expect)
    for inspect in inspected:
        assert inspect.code in (0, 1), inspect
        assert "Traceback" not in inspect.out + inspect.err, inspect
        if inspect.err:
            assert_one_line_error(inspect, 1)
    assert_nothing_ran(planted[attack.name].work)


@pytest.mark.parametrize("attack", ATTACKS, ids=NAMES)
def test_library_refuses_and_runs_nothing(attack: Attack, planted: dict[str, Planted],
                                          cli_runs: dict[str, list[Result]], extensions_registered: None) -> None:
    # Only after the limited CLI process refused it: a regression must not
    # get to allocate or run in the test process itself.
    assert cli_runs[attack.name][0].code == 1, cli_runs[attack.name][0]
    target, before = planted[attack.name], process_state()
    with pytest.raises(CkptError, match=re.escape(attack.expect) if attack.expect else None):
        ckpt.load(target.path, trust=attack.trust)
    assert not ckpt.verify(target.path, trust=attack.trust).ok
    try:
        ckpt.inspect(target.path)
    except CkptError:
        pass  # a damaged archive: refused before anything is read
    if target.data is not None:
        with pytest.raises(CkptError):
            ckpt.loads(target.data, trust=attack.trust)
    assert_nothing_ran(target.work)
    assert process_state() == before


# --- data that looks like a bomb but is only data ----------------------------------


def billion_laughs() -> bytes:
    """40 lists, each holding the one before ten times: 10**40 leaves if
    expanded, 41 objects as pickled. Nothing in load, verify or inspect expands it."""
    ops = text("lol") + b"q\x00"
    for level in range(40):
        ops += b"(" + (b"h" + bytes([level])) * 10 + b"l" + b"q" + bytes([level + 1])
    return pkl(ops)


def deep_lists() -> bytes:
    """Lists nested 100,000 deep: pickle cannot write them, but they are data (and
    nothing about a list recurses without a limit)."""
    return pkl(b"(" * 100_000 + b"l" * 100_000)


def debug_pattern() -> bytes:
    """re.DEBUG makes compiling a pattern print its parse tree to stdout."""
    return pkl(call(glob("re", "compile"), text("a|b"), number(int(re.DEBUG))))


def list_globals(path: Path) -> None:
    """Make the manifest name the globals data.pkl uses, as a careful forger would."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        manifest["globals"] = list(analyse(archive.read("data.pkl")).globals)
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())


HARMLESS = {"billion laughs": billion_laughs, "lists nested 100,000 deep": deep_lists,
            "a pattern compiled with re.DEBUG": debug_pattern}


@pytest.mark.parametrize("name", sorted(HARMLESS))
def test_data_that_only_looks_like_a_bomb_loads_quietly_in_bounded_memory(
        name: str, base_checkpoint: Path, tmp_path: Path) -> None:
    """Planted by hand, the file is no longer its signer's: it loads as data
    only, verify's one failure is the signature, never the data, and inspect
    reports the alteration (exit 1) without building anything."""
    attack = Attack(name, payload=lambda work: HARMLESS[name]())
    target = plant(attack, base_checkpoint, tmp_path)
    list_globals(target.path)
    path = str(target.path)
    load, verify, inspect = run_many([["load", path, "--format", "json"], ["load", path, "--verify"],
                                      ["inspect", path]])
    assert load.code == 0 and not load.err, load
    assert json.loads(load.out)["root_type"]  # stdout holds the report and nothing else
    assert inspect.code == 1 and not inspect.err and "altered after it was signed" in inspect.out, inspect
    assert verify.code == 1 and not verify.err and "1 check(s) failed" in verify.out, verify
    assert [c.name for c in ckpt.verify(target.path).failures] == ["signature"]
    assert ckpt.loads(target.data) is not None
    assert_nothing_ran(target.work)


DEEP_TUPLES = {"tuples nested 200,000 deep as a dict key": tuple_key, "tuples nested 50,000 deep with MARK": marked_tuples,
               "tuples nested 225,000 deep through tuple() calls": tuples_through_calls}


@pytest.mark.parametrize("name", sorted(DEEP_TUPLES))
def test_deeply_nested_tuples_are_refused_at_load_without_crashing(name: str, base_checkpoint: Path,
                                                                   tmp_path: Path) -> None:
    """Hashing a tuple recurses in C without a limit: 200,000 levels crash
    CPython. The data-only loader refuses any tuple it handles nested deeper
    than 10,000 levels, whether its opcodes or a call (`tuple([t])`) built
    it: load and verify refuse in one line; inspect, which builds nothing,
    reports the file altered and does not crash either."""
    attack = Attack(name, payload=DEEP_TUPLES[name])
    target = plant(attack, base_checkpoint, tmp_path)
    list_globals(target.path)
    path = str(target.path)
    load, verify, inspect = run_many([["load", path, "--format", "json"], ["load", path, "--verify"],
                                      ["inspect", path]])
    assert_one_line_error(load, 1, "nests tuples more than 10,000 levels deep")
    assert_one_line_error(verify, 1, "nests tuples more than 10,000 levels deep")
    assert inspect.code == 1 and not inspect.err and "altered after it was signed" in inspect.out, inspect
    with pytest.raises(CkptError, match="nests tuples"):
        ckpt.loads(target.data)
    assert "load" in [c.name for c in ckpt.verify(target.path).failures]


def test_a_loaded_pattern_keeps_its_flags_but_not_debug() -> None:
    pattern = ckpt.loads(pkl(call(glob("re", "compile"), text("a|b"), number(int(re.DEBUG | re.IGNORECASE)))))
    assert pattern.flags & re.IGNORECASE and not pattern.flags & re.DEBUG
