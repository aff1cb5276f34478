"""register(): objects holding thread primitives travel to worker processes
through the real pools and arrive with fresh, working primitives."""

from __future__ import annotations

import concurrent.futures
import copyreg
import logging
import multiprocessing
import pickle
import sys
import threading
from pathlib import Path

import pytest

import ckpt
from sample_models import service
from sample_models.parallel import serve_one

FEATURES = [1.0] * 8


PREDICTION = service.build().predict(FEATURES)


def check(results: list[dict], model: service.InferenceService) -> None:
    assert len(results) == 2
    for result in results:
        result.pop("thread")
        assert result == {"prediction": PREDICTION, "pending": 3, "ready": True, "pid_lock_fresh": True}


@pytest.fixture
def model() -> service.InferenceService:
    built = service.build()
    built.ready.set()
    with built._stats_lock:  # held here: the copies must still come with a free lock
        yield built


def test_plain_pickle_fails_without_register(model) -> None:
    with pytest.raises(TypeError, match="cannot pickle"):
        pickle.dumps(model)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_pool(model, method: str) -> None:
    with ckpt.registered(), multiprocessing.get_context(method).Pool(2) as pool:
        results = pool.starmap(serve_one, [(model, FEATURES)] * 2)
    check(results, model)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_executor(model, method: str) -> None:
    context = multiprocessing.get_context(method)
    with ckpt.registered(), concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(serve_one, [model] * 2, [FEATURES] * 2))
    check(results, model)


def test_joblib_loky(model) -> None:
    joblib = pytest.importorskip("joblib")
    with ckpt.registered():
        results = joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(serve_one)(model, FEATURES) for _ in range(2))
    check(results, model)


def test_unregister_restores_copyreg_exactly(model) -> None:
    lock_type = type(threading.Lock())
    sentinel = object()
    copyreg.dispatch_table[lock_type] = sentinel  # someone else's reducer, kept through a register cycle
    try:
        before = dict(copyreg.dispatch_table)
        with ckpt.registered() as covered:
            assert lock_type in covered and copyreg.dispatch_table[lock_type] is not sentinel
            assert threading.Thread in covered and threading.Timer in covered
        assert copyreg.dispatch_table == before
    finally:
        copyreg.dispatch_table.pop(lock_type, None)
    with pytest.raises(TypeError):
        pickle.dumps(model)


def test_save_still_lists_rewraps_while_registered(model, tmp_path) -> None:
    with ckpt.registered():
        report = ckpt.save(model, tmp_path / "m.ckpt")
        assert [f.path for f in ckpt.scan(model).findings]
    assert {s.path for s in report.manifest.substitutions} >= {"model._stats_lock", "model.requests"}


class Unbuffered:
    """What Ray's workers put in sys.stderr: a wrapper around a log file, no file itself."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, data: str) -> None:
        self.stream.write(data)
        self.stream.flush()


def test_a_handler_on_a_wrapped_standard_stream_is_rebound(monkeypatch, tmp_path: Path) -> None:
    """A handler a Ray worker builds writes to such a wrapper: it comes back
    on the loading process's stderr, through ckpt's pickler and through
    cloudpickle (whose own reducer for files refuses the log file inside)."""
    cloudpickle = pytest.importorskip("cloudpickle")
    with open(tmp_path / "worker.err", "a") as log:
        monkeypatch.setattr(sys, "stderr", Unbuffered(log))
        handler = logging.StreamHandler()
        with ckpt.registered():
            shipped = cloudpickle.dumps(handler)
        saved = ckpt.dumps(handler)
        monkeypatch.undo()
    assert pickle.loads(shipped).stream is sys.stderr
    assert pickle.loads(saved).stream is sys.stderr  # as a signed file loads: whole
