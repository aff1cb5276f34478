"""The asyncio, multiprocessing and QueueListener kinds, end to end: each
sample of `sample_models.kinds` saved by the installed `ckpt save`, checked
by `ckpt load --verify`, then loaded in a fresh interpreter and used for
real: coroutines on a real event loop (asyncio.run), real threads, real
child processes (fork, and spawn for the samples made in a spawn context)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import logging.handlers
import os
import pickle
import queue
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RunCkpt

import ckpt
from ckpt.kinds import probes
from sample_models import kinds

HOLDER = "sample_models.kinds:Holder"

CHILDREN = '''
import asyncio, ctypes, logging, logging.handlers, multiprocessing, sys
import ckpt


def start(method, target, *args):
    child = multiprocessing.get_context(method).Process(target=target, args=args)
    child.start()
    return child


def run(method, target, *args):
    child = start(method, target, *args)
    child.join(30)
    return child.exitcode


def try_lock(lock):
    sys.exit(1 if lock.acquire(False) else 0)


def take(sem, timeout):
    sys.exit(0 if sem.acquire(True, timeout) else 1)


def add(shared, n):
    with shared.get_lock():
        shared.value += n


def add_each(shared, n):
    with shared.get_lock():
        for i in range(len(shared)):
            shared[i] += n


def notify(cond):
    with cond:
        cond.notify_all()


def call(obj, method, *args):
    getattr(obj, method)(*args)
'''
"""Module-level helpers of the exercise script: spawned children import them."""

EXERCISES = {
    "async-lock": """
        async def main():
            order = []
            async def worker(n):
                async with obj:
                    order.append(("in", n))
                    await asyncio.sleep(0.01)
                    order.append(("out", n))
            await asyncio.gather(worker(1), worker(2))
            return order
        assert asyncio.run(main()) == [("in", 1), ("out", 1), ("in", 2), ("out", 2)]
    """,
    "async-condition": """
        async def main():
            async def waiter():
                async with obj:
                    await obj.wait()
            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0.01)
            async with obj:
                obj.notify_all()
            await asyncio.wait_for(task, 5)
        asyncio.run(main())
    """,
    "async-semaphore": """
        assert (obj._value, obj._bound_value) == (1, 2)
        async def main():
            await obj.acquire()
            blocked = asyncio.ensure_future(obj.acquire())
            await asyncio.sleep(0.01)
            assert not blocked.done()
            obj.release()
            await asyncio.wait_for(blocked, 5)
            obj.release()
            obj.release()
            try:
                obj.release()
            except ValueError:
                return "bounded"
        assert asyncio.run(main()) == "bounded"
    """,
    "async-event": """
        assert obj.is_set()
        async def main():
            await asyncio.wait_for(obj.wait(), 5)
            obj.clear()
            waiter = asyncio.ensure_future(obj.wait())
            await asyncio.sleep(0.01)
            assert not waiter.done()
            obj.set()
            return await asyncio.wait_for(waiter, 5)
        assert asyncio.run(main()) is True
    """,
    "async-queue": """
        assert (obj.maxsize, obj.qsize()) == (10, 3)
        async def main():
            items = [await obj.get() for _ in range(3)]
            for _ in items:
                obj.task_done()
            await asyncio.wait_for(obj.join(), 5)
            getter = asyncio.ensure_future(obj.get())
            await asyncio.sleep(0)
            await obj.put("late")
            return items, await asyncio.wait_for(getter, 5)
        assert asyncio.run(main()) == (["first", {"n": 2}, [3]], "late")
    """,
    "event-loop": """
        assert obj is None
        assert asyncio.run(asyncio.sleep(0, "ran")) == "ran"
    """,
    "async-future": """
        assert obj is None
    """,
    "queue-listener": """
        assert obj._thread.is_alive()  # started again, as it was saved
        logger = logging.getLogger("ckpt-test-listener")
        logger.propagate = False
        logger.addHandler(logging.handlers.QueueHandler(obj.queue))
        logger.warning("through the listener")
        obj.stop()
        assert [r.getMessage() for r in obj.handlers[0].buffer] == ["through the listener"]
    """,
    "mp-lock": """
        with obj:
            assert run("spawn", try_lock, obj) == 0  # held here: the child cannot take it
        assert run("spawn", take, obj, 10) == 0
        assert not obj.acquire(False)  # the child took it and exited holding it: one lock for both
    """,
    "mp-semaphore": """
        assert obj.get_value() == 2
        obj.acquire()
        obj.acquire()
        assert run("fork", take, obj, 0.2) == 1
        obj.release()
        assert run("fork", take, obj, 10) == 0 and obj.get_value() == 0
    """,
    "mp-condition": """
        with obj:
            child = start("fork", notify, obj)
            assert obj.wait(10)
        child.join(10)
        assert child.exitcode == 0
    """,
    "mp-event": """
        assert obj.is_set()
        obj.clear()
        assert run("fork", call, obj, "set") == 0
        assert obj.wait(5)
    """,
    "mp-barrier": """
        assert (obj.parties, obj.n_waiting, obj.broken) == (2, 0, False)
        child = start("fork", call, obj, "wait")
        obj.wait()
        child.join(10)
        assert child.exitcode == 0
    """,
    "mp-queue": """
        assert obj.empty() and obj._maxsize == 4
        assert run("fork", call, obj, "put", "from the child") == 0
        assert obj.get(timeout=10) == "from the child"
        obj.task_done()
        obj.join()
    """,
    "mp-simple-queue": """
        assert obj.empty()
        assert run("fork", call, obj, "put", "from the child") == 0
        assert obj.get() == "from the child"
    """,
    "mp-value": """
        assert obj.value == 42 and obj.get_obj()._type_ == "i"
        assert run("spawn", add, obj, 8) == 0
        assert obj.value == 50
    """,
    "mp-array": """
        assert obj[:] == [0.5, 1.5, 2.5] and obj.get_obj()._type_ is ctypes.c_double
        assert run("fork", add_each, obj, 1.0) == 0
        assert obj[:] == [1.5, 2.5, 3.5]
    """,
}
"""Per kind: what the loaded `obj` (the sample's `value`) is put through."""

STRIPPED = {"event-loop", "async-future"}


def exercise(tmp_path: Path, checkpoint: Path, code: str) -> None:
    """Load `checkpoint` in a fresh interpreter, with no flags, and run `code` on it."""
    script = tmp_path / "exercise.py"
    body = textwrap.indent(textwrap.dedent(code), "    ")
    script.write_text(f"{CHILDREN}\n\nif __name__ == '__main__':\n"
                      f"    obj = ckpt.load(sys.argv[1]).value\n{body}\n    print('exercised')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script), str(checkpoint)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "exercised" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", sorted(EXERCISES))
def test_each_kind_round_trips_and_works(run_ckpt: RunCkpt, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.ckpt"
    saved = run_ckpt("save", f"sample_models.kinds:{kind.replace('-', '_')}", "-o", str(path), "--format", "json")
    assert saved.code == 0, saved
    manifest = saved.json()["manifest"]
    action = "strip" if kind in STRIPPED else "rewrap"
    assert (manifest["substitutions"][0]["path"], manifest["substitutions"][0]["kind"],
            manifest["substitutions"][0]["action"]) == ("model.value", kind, action)
    loaded = run_ckpt("load", str(path), "--verify", "--format", "json")  # your own file: no flags
    assert loaded.code == 0, loaded
    checks = {c["name"]: c for c in loaded.json()["verify"]["checks"]}
    assert checks["primitives work"]["ok"] and checks["substitutions"]["ok"] and checks["stripped"]["ok"], checks
    exercise(tmp_path, path, EXERCISES[kind])


def test_multiprocessing_from_someone_else_is_refused_even_with_the_model_trusted(run_ckpt: RunCkpt,
                                                                                 tmp_path: Path) -> None:
    """Making a multiprocessing primitive can start multiprocessing's resource
    tracker (a process no audit hook sees), and its context names the program
    every later child runs: nothing of multiprocessing loads as data."""
    path = tmp_path / "lock.ckpt"
    assert run_ckpt("save", "sample_models.kinds:mp_lock", "-o", str(path)).code == 0
    refused = run_ckpt("load", str(path), "--trust", HOLDER, env={"CKPT_HOME": str(tmp_path / "another-user")})
    assert refused.code == 1 and "a key you do not trust" in refused.err and "multiprocessing" in refused.err, refused


def test_register_leaves_multiprocessing_primitives_to_multiprocessing() -> None:
    """Starting a process hands it the very lock (multiprocessing's own
    pickling): register() must not turn that into a fresh one."""
    import multiprocessing.queues  # noqa: F401  (imported: the catalog resolves only loaded modules' types)
    import multiprocessing.sharedctypes  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    with ckpt.registered() as covered:
        modules = {cls.__module__ for cls in covered}
    assert "asyncio.locks" in modules and not any(m.startswith("multiprocessing") for m in modules), modules


def test_primitives_no_loop_has_bound_are_no_finding_and_pickle_as_they_are(tmp_path: Path) -> None:
    model = {"lock": asyncio.Lock(), "event": asyncio.Event(), "queue": asyncio.Queue(3),
             "cond": asyncio.Condition(), "sem": asyncio.Semaphore(2)}
    model["queue"].put_nowait("item")
    assert ckpt.scan(model).findings == ()
    pickle.dumps(model)
    ckpt.save(model, tmp_path / "a.ckpt")
    loaded = ckpt.load(tmp_path / "a.ckpt")
    assert loaded["queue"].get_nowait() == "item" and loaded["sem"]._value == 2

    async def use() -> None:
        async with loaded["cond"], loaded["lock"], loaded["sem"]:
            loaded["event"].set()

    asyncio.run(use())
    # As data (from anyone else), each is its plain state; a Condition holds
    # its lock's bound methods, and no bound method loads as data.
    del model["cond"]
    as_data = ckpt.loads(ckpt.dumps(model))
    assert as_data["queue"].get_nowait() == "item" and as_data["sem"]._value == 2
    with pytest.raises(ckpt.UnsafeCheckpointError, match="no bound method loads as data"):
        ckpt.loads(ckpt.dumps(asyncio.Condition()))


class StatefulService:
    """Its own state carries its (loop-bound) lock: found at a path verify cannot follow."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    def __getstate__(self) -> dict[str, Any]:
        return {"held": [self.lock]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        [self.lock] = state["held"]


def test_verify_passes_a_restored_asyncio_primitive_behind_a_custom_state(tmp_path: Path) -> None:
    model = StatefulService(kinds.async_lock().value)
    report = ckpt.save(model, tmp_path / "s.ckpt")
    assert [s.path for s in report.manifest.substitutions] == ["model.__getstate__()['held'][0]"]
    result = ckpt.verify(tmp_path / "s.ckpt")
    assert result.ok, result.failures


def test_an_asyncio_probe_leaves_the_primitive_unbound_and_as_it_was() -> None:
    q: asyncio.Queue[str] = asyncio.PriorityQueue()
    for item in ("b", "a"):
        q.put_nowait(item)
    probes.probe_async_queue(q)
    assert "_loop" not in vars(q) and q.qsize() == 2 and q._unfinished_tasks == 2

    async def drain() -> list[str]:
        return [await q.get(), await q.get()]

    assert asyncio.run(drain()) == ["a", "b"]  # usable on another loop: the probe's did not stick


def test_a_queue_handler_and_its_listener_keep_sharing_one_queue() -> None:
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    sink = logging.handlers.BufferingHandler(5)
    pair = {"handler": logging.handlers.QueueHandler(records),
            "listener": logging.handlers.QueueListener(records, sink)}
    pair["listener"].start()
    try:
        [finding] = [f for f in ckpt.scan(pair).findings if f.kind == "queue-listener"]
        assert "started again at load" in finding.note
        loaded = ckpt.loads(ckpt.dumps(pair), trust=["logging.handlers:QueueListener.start"])
    finally:
        pair["listener"].stop()
    assert loaded["handler"].queue is loaded["listener"].queue and loaded["listener"]._thread.is_alive()
    loaded["listener"].stop()


def test_async_service_sample(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    path = tmp_path / "async.ckpt"
    assert run_ckpt("save", "sample_models.async_service:build", "-o", str(path)).code == 0
    loaded = run_ckpt("load", str(path), "--verify", "--against",
                      "sample_models.async_service:build", "--format", "json")
    assert loaded.code == 0 and loaded.json()["verify"]["ok"], loaded
    script = ("import sys, ckpt\nfrom sample_models import async_service\n"
              "service = ckpt.load(sys.argv[1])\n"
              "print(async_service.run_after_load(service))\n")
    assert printed_by(script, path) == "{'results': [-2.0, -1.5], 'served': 5, 'ready': True}"


def printed_by(script: str, path: Path) -> str:
    """What `script`, run in a fresh interpreter on the checkpoint at `path`, prints."""
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_mp_service_sample_serves_through_spawned_workers(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    path = tmp_path / "mp.ckpt"
    saved = run_ckpt("save", "sample_models.mp_service:build", "-o", str(path), "--format", "json")
    assert saved.code == 0, saved
    notes = {s["path"]: s["note"] for s in saved.json()["manifest"]["substitutions"]}
    assert notes["model.results"] == "1 item(s) not kept" and notes["model.served"] == "c_int 3 kept"
    loaded = run_ckpt("load", str(path), "--verify", "--format", "json")
    assert loaded.code == 0 and loaded.json()["verify"]["ok"], loaded
    script = ("import sys, ckpt\nfrom sample_models import mp_service\n"
              "if __name__ == '__main__':\n"
              "    model = ckpt.load(sys.argv[1])\n"
              "    print(mp_service.serve(model, [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]))\n")
    assert printed_by(script, path) == "{'results': [2.0, 4.25], 'served': 5, 'exit codes': [0, 0]}"


IMPORTS = ("import asyncio, asyncio.locks, asyncio.queues, multiprocessing, multiprocessing.queues, "
           "multiprocessing.synchronize\n")


def _async_restored(service: Any) -> None:
    assert service.requests.qsize() == 2 and service.ready.is_set() and service.slots._value == 2
    asyncio.run(service.drain())


def _mp_restored(model: Any) -> None:
    assert model.served.value == 3 and model.lock.acquire(False) and not model.stop.is_set()


@pytest.mark.parametrize(("target", "check"), [("sample_models.async_service:build", _async_restored),
                                               ("sample_models.mp_service:build", _mp_restored)])
def test_suggested_code_fixes_the_class(run_ckpt: RunCkpt, target: str, check: Callable[[Any], None]) -> None:
    """Paste the generated methods into the class: plain pickle then works,
    and gives working primitives with what the rows keep."""
    result = run_ckpt("scan", target, "--suggest", "--format", "json")
    [suggestion] = result.json()["suggestions"]
    namespace: dict[str, Any] = {}
    exec(IMPORTS + suggestion["code"], namespace)
    module = importlib.import_module(target.split(":")[0])
    cls = getattr(module, suggestion["class"].rpartition(".")[2])
    fixed = type("Fixed", (cls,), {"__getstate__": namespace["__getstate__"],
                                   "__setstate__": namespace["__setstate__"], "__module__": __name__})
    globals()["Fixed"] = fixed
    original = module.build()
    original.__class__ = fixed
    check(pickle.loads(pickle.dumps(original)))
