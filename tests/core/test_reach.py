"""Save's replay of the stream it wrote (src/ckpt/scanning/replay.py, src/ckpt/scanning/_replay.c): the
two twins agree on every stream, real, mutated, hostile or random (looking
for targets, and for out-of-band buffers), and never crash; the replay marks exactly the values that lead to a substituted
object; and the manifest save builds from it is the one the plain scan
gives, on every sample and benchmark model, compiled and in pure Python."""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opcodes import streams
from test_stream import mutated, samples

import ckpt
import sample_models
from ckpt.kinds.pickler import RewrapPickler
from ckpt.scanning import replay as reach
from ckpt.scanning.replay import Replay, ReplayError, StreamOracle
from ckpt.scanning.walk import scan_object

compiled = pytest.mark.skipif(reach.replay([]).__class__ is Replay, reason="src/ckpt/scanning/_replay.c is not built here")


def outcome(replay: Any, chunks: list[bytes]) -> list[Any]:
    """What a replay says about `chunks` fed in turn: each result or error, then every memo entry's bit."""
    said: list[Any] = []
    for chunk in chunks:
        try:
            said.append(replay.feed(chunk))
        except ReplayError:
            said.append("error")
            break
    return [*said, replay.memo_size, [replay.leads(i) for i in range(-1, replay.memo_size + 1)]]


def agree(chunks: list[bytes], targets: list[int]) -> list[Any]:
    """Both twins, looking for targets and (the arrays' replay) for out-of-band buffers."""
    fast = outcome(reach.replay(targets), chunks)
    assert fast == outcome(Replay(targets), chunks)
    assert outcome(reach.replay(targets, buffers=True), chunks) == outcome(Replay(targets, reach.BUFFER_EFFECTS), chunks)
    return fast


@compiled
@pytest.mark.parametrize("index", range(10))
def test_the_twins_agree_on_real_pickles(index: int) -> None:
    data = list(samples())[index]
    for targets in ([], [0], [3, 5], list(range(0, 200, 7))):
        assert agree([data], targets)[0] != "error"


@compiled
@settings(max_examples=150, deadline=None)
@given(mutated(), st.lists(st.integers(0, 60), max_size=5))
def test_they_agree_on_mutated_and_truncated_pickles(data: bytes, targets: list[int]) -> None:
    agree([data], targets)


@compiled
@settings(max_examples=200, deadline=None)
@given(streams(), st.lists(st.integers(0, 40), max_size=6), st.binary(max_size=64))
def test_they_agree_on_structured_hostile_and_random_streams(stream: bytes, targets: list[int], noise: bytes) -> None:
    """The loader fuzzer's streams (every opcode family, unbalanced stacks,
    bad memo indexes), then random bytes fed after them to the same replay."""
    agree([stream, noise], targets)


@compiled
def test_huge_memo_indexes_and_lengths_are_errors_not_allocations() -> None:
    for raw in (b"\x80\x05N\x94r\xff\xff\xff\x7f.", b"\x80\x05Np9999999999\n.", b"\x80\x05\x8e" + b"\xff" * 8 + b".",
                b"\x80\x05j\xff\xff\xff\xff.", b"\x80\x05(N\x94" + b"h\x00" * 10 + b"0" * 20 + b"."):
        assert agree([raw], [0])[0] == "error"


def test_exactly_the_values_that_lead_to_a_substituted_object_are_marked() -> None:
    lock = threading.Lock()
    model = {"near": [lock], "far": {"path": [("x", lock)]}, "clean": [{"a": 1}, (2, 3)], "again": lock}
    oracle = oracle_for(model)
    assert [type(o) for o in oracle.targets] == [type(lock)]
    assert oracle(model)[0] is not None and oracle(model["near"])[0] is not None
    assert oracle(model["far"]["path"][0])[0] is not None
    assert oracle(model["clean"])[0] is None and oracle(model["clean"][0])[0] is None
    fresh = ({"new": lock}, [])  # written now for the first time: its new opcodes continue the memo
    assert oracle(fresh)[0] is not None and oracle(fresh[1])[0] is None
    assert [v is not None for v in oracle.verdicts([model["clean"], lock, model["far"], fresh[1]])] == [
        False, True, True, False]


def oracle_for(model: Any) -> StreamOracle:
    out = io.BytesIO()
    pickler = RewrapPickler(out)
    pickler.dump(model)
    return StreamOracle(pickler, out.getvalue(), list(pickler.substituted))


def models() -> list[tuple[str, Any]]:
    """Every sample model's factory, and the benchmark's (a) and (b), smaller."""
    from bench.models import array_heavy, object_heavy

    found = [("bench:object_heavy", lambda: object_heavy(20_000, 200)), ("bench:array_heavy", lambda: array_heavy(8))]
    for module in pkgutil.iter_modules(sample_models.__path__):
        loaded = importlib.import_module(f"sample_models.{module.name}")
        for name, factory in vars(loaded).items():
            if inspect.isfunction(factory) and factory.__module__ == loaded.__name__ and not name.startswith("_") \
                    and not inspect.signature(factory).parameters:
                found.append((f"{module.name}:{name}", factory))
    return found


BUILT_AT_EACH_CALL = {"nested:hidden"}
"""Models whose custom __getstate__ builds a new lock at each call: the lock
the stream holds is not the one the walk meets, so the plain scan decides
(and the save's notice says so)."""


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "pure-python"])
def test_manifests_are_the_plain_scans_on_every_sample_and_bench_model(pure: bool, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if pure:
        monkeypatch.setenv("CKPT_PURE_PYTHON", "1")
    compared = 0
    for name, factory in models():
        try:
            model = factory()
        except Exception:  # a sample that needs an optional library absent here
            continue
        expected = scan_object(model).findings
        try:
            report = ckpt.save(model, tmp_path / "m.ckpt")
        except ckpt.SaveError:
            assert any(f.action.value == "error" for f in expected), name
            continue
        got = [(s.path, s.kind, s.action, s.also_at) for s in report.manifest.substitutions]
        assert got == [(f.path, f.kind, f.action.value, f.also_at) for f in expected], name
        if name not in BUILT_AT_EACH_CALL:
            assert not any("second scan" in n for n in report.notices), (name, report.notices)
        compared += bool(got)
    assert compared >= 25


class FreshLock:
    """Its reduction makes a new lock every time: the stream's lock is not the one a second look finds."""

    def __reduce__(self) -> Any:
        return (FreshLock.rebuild, (threading.Lock(),))

    @staticmethod
    def rebuild(lock: Any) -> FreshLock:
        return FreshLock()


def test_when_the_stream_and_the_walk_disagree_the_plain_scan_decides_and_the_report_says_so(tmp_path: Path) -> None:
    model = {"x": FreshLock(), "lock": threading.Lock()}
    report = ckpt.save(model, tmp_path / "m.ckpt")
    assert any("second scan of the model" in n for n in report.notices), report.notices
    assert [s.path for s in report.manifest.substitutions] == [f.path for f in scan_object(model).findings]
    assert "model['lock']" in [s.path for s in report.manifest.substitutions]


class SecondTimeFails:
    """Pickles once, then raises: the walk's second look cannot be answered from the stream."""

    calls = 0

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __reduce__(self) -> Any:
        SecondTimeFails.calls += 1
        if SecondTimeFails.calls > 1:
            raise RuntimeError("not twice")
        return (SecondTimeFails, (), {"lock": self.lock})


def test_an_object_that_reduces_differently_the_second_time_falls_back_to_the_scan(tmp_path: Path) -> None:
    """The stream leads into it (its lock was rewrapped), but taking it apart again fails: the scan decides."""
    model = {"odd": [SecondTimeFails()], "lock": threading.Lock()}
    report = ckpt.save(model, tmp_path / "m.ckpt")
    assert any("second scan of the model (the stream leads to model['odd'][0]" in n for n in report.notices), \
        report.notices
    assert [s.path for s in report.manifest.substitutions] == ["model['odd'][0]", "model['lock']"]
