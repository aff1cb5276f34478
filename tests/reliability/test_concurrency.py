"""Restored primitives under real contention, and saving while threads work.

tests/core/test_checkpoint.py already has 8 threads on a restored Lock, one
consumer on a restored Queue, one waiter on a shared Condition, one barrier
round and an executor's thread names; these go further: re-entrant locking,
every waiter woken, a semaphore's bound, many barrier rounds, a bounded
queue with blocked producers, an executor under load. Then what a save does
when another thread changes the model meanwhile (docs/GUARANTEES.md).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ckpt
from ckpt.errors import SaveError

WORKERS = 8
SIZE = 2_000


def round_trip(obj: Any, tmp_path: Path) -> Any:
    ckpt.save(obj, tmp_path / "model.ckpt")
    return ckpt.load(tmp_path / "model.ckpt")


def no_arguments(index: int) -> tuple[Any, ...]:
    return ()


def in_threads(target: Callable[..., Any], count: int = WORKERS,
               args: Callable[[int], tuple[Any, ...]] = no_arguments) -> None:
    """Run `target(*args(i))` in `count` threads at once and wait for all (a hang fails)."""
    threads = [threading.Thread(target=target, args=args(i)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a thread is stuck on a restored primitive"


def test_restored_rlock_is_reentrant_under_contention(tmp_path: Path) -> None:
    lock = round_trip({"lock": threading.RLock()}, tmp_path)["lock"]
    counter = [0]

    def work() -> None:
        for _ in range(1000):
            with lock, lock:  # re-entered by its owner, excluded for everyone else
                counter[0] += 1

    in_threads(work)
    assert counter[0] == WORKERS * 1000
    assert lock.acquire(blocking=False)


def test_restored_condition_wakes_every_waiter(tmp_path: Path) -> None:
    cond = round_trip({"cond": threading.Condition()}, tmp_path)["cond"]
    state = {"ready": False, "waiting": 0, "woken": 0}

    def waiter() -> None:
        with cond:
            state["waiting"] += 1
            cond.notify_all()
            if cond.wait_for(lambda: state["ready"], timeout=30):
                state["woken"] += 1

    threads = [threading.Thread(target=waiter) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    with cond:
        assert cond.wait_for(lambda: state["waiting"] == WORKERS, timeout=30)
        state["ready"] = True
        cond.notify_all()
    for thread in threads:
        thread.join(30)
    assert state["woken"] == WORKERS


def test_restored_semaphore_keeps_its_value_as_a_bound_on_concurrency(tmp_path: Path) -> None:
    sem = threading.BoundedSemaphore(3)
    sem.acquire()  # value 2 at save
    sem = round_trip({"sem": sem}, tmp_path)["sem"]
    inside, most = [0], [0]
    guard = threading.Lock()

    def work() -> None:
        for _ in range(200):
            with sem:
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with guard:
                    inside[0] -= 1

    in_threads(work)
    assert 1 <= most[0] <= 2
    assert sem.acquire(blocking=False) and sem.acquire(blocking=False) and not sem.acquire(blocking=False)


def test_restored_barrier_holds_round_after_round(tmp_path: Path) -> None:
    barrier = round_trip({"barrier": threading.Barrier(4)}, tmp_path)["barrier"]
    arrivals: list[int] = []

    def work() -> None:
        for _ in range(10):
            arrivals.append(barrier.wait(30))

    in_threads(work, count=4)
    assert sorted(arrivals) == sorted(list(range(4)) * 10)
    assert not barrier.broken and barrier.n_waiting == 0


def test_restored_bounded_queue_blocks_producers_and_serves_saved_items_first(tmp_path: Path) -> None:
    q: queue.Queue[Any] = queue.Queue(maxsize=4)
    for i in range(3):
        q.put(f"saved-{i}")
    q = round_trip({"q": q}, tmp_path)["q"]
    assert [q.get(timeout=5) for _ in range(3)] == ["saved-0", "saved-1", "saved-2"]
    for _ in range(3):
        q.task_done()
    got: list[Any] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        for i in range(100):
            q.put((worker, i), timeout=30)  # maxsize 4: mostly blocked, woken by the consumers

    def consume() -> None:
        while (item := q.get(timeout=30)) is not None:
            with lock:
                got.append(item)
            q.task_done()
        q.task_done()

    consumers = [threading.Thread(target=consume) for _ in range(3)]
    for consumer in consumers:
        consumer.start()
    in_threads(produce, count=4, args=lambda i: (i,))
    for _ in consumers:
        q.put(None, timeout=30)
    q.join()  # every task_done counted: the restored accounting is consistent
    assert sorted(got) == [(w, i) for w in range(4) for i in range(100)]


def test_restored_executor_runs_jobs_under_load(tmp_path: Path) -> None:
    model = {"pool": concurrent.futures.ThreadPoolExecutor(4, "restored"), "lock": threading.Lock()}
    loaded = round_trip(model, tmp_path)
    model["pool"].shutdown()
    pool, lock = loaded["pool"], loaded["lock"]
    total, names = [0], set()

    def job(i: int) -> int:
        with lock:
            total[0] += i
            names.add(threading.current_thread().name)
        return i * i

    futures = [pool.submit(job, i) for i in range(300)]
    assert [f.result(30) for f in futures] == [i * i for i in range(300)]
    pool.shutdown()
    assert total[0] == sum(range(300))
    assert 1 <= len(names) <= 4 and all(name.startswith("restored") for name in names)


# --- saving while another thread changes the model -------------------------------


@dataclasses.dataclass
class Record:
    step: int

    def __reduce__(self) -> tuple[type[Record], tuple[int]]:
        return Record, (self.step,)  # Python code: pickle and scan let other threads in here


def changing_model() -> tuple[dict[str, Any], threading.Event, threading.Thread]:
    """A model another thread keeps changing, in bounded memory: a list
    appended to and trimmed at the front (always increasing), a dict of
    records filled and emptied in turn (always record.step % SIZE == key).
    Pickling each record runs Python code, where the other thread gets its turn."""
    model: dict[str, Any] = {"items": [], "table": {}, "lock": threading.Lock()}
    stop = threading.Event()

    def mutate() -> None:
        i = 0
        while not stop.is_set():
            model["items"].append(Record(i))
            if len(model["items"]) > 2 * SIZE:
                del model["items"][:SIZE]
            if (i // SIZE) % 2:  # fill the table, then empty it: its size never rests
                model["table"].pop(i % SIZE, None)
            else:
                model["table"][i % SIZE] = Record(i)
            i += 1

    return model, stop, threading.Thread(target=mutate)


def test_saving_a_model_another_thread_changes_succeeds_or_fails_cleanly(tmp_path: Path) -> None:
    """Each object lands in the file as pickle read it, so every entry is one
    the other thread wrote; a dict resized mid-read stops the save with
    SaveError (nothing written, the previous file intact). No third outcome,
    no torn file."""
    model, stop, mutator = changing_model()
    path = tmp_path / "model.ckpt"
    outcomes = set()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the mutator runs inside every pickle and scan
    mutator.start()
    try:
        for _ in range(20):
            before = path.read_bytes() if path.exists() else None
            try:
                ckpt.save(model, path, overwrite=True)
            except SaveError as exc:
                assert "changed" in str(exc), exc
                assert (path.read_bytes() if path.exists() else None) == before
                outcomes.add("refused")
                continue
            assert ckpt.verify(path, trust=["test_concurrency"]).ok
            loaded = ckpt.load(path, trust=["test_concurrency"])
            assert all(a.step < b.step for a, b in zip(loaded["items"], loaded["items"][1:]))
            assert all(record.step % SIZE == key for key, record in loaded["table"].items())
            outcomes.add("saved")
    finally:
        stop.set()
        mutator.join()
        sys.setswitchinterval(interval)
    assert outcomes and outcomes <= {"saved", "refused"}
    assert [p.name for p in tmp_path.iterdir()] == (["model.ckpt"] if path.exists() else [])


def test_holding_the_models_lock_while_saving_gives_a_consistent_snapshot(tmp_path: Path) -> None:
    """ckpt takes none of the model's locks; holding the one that guards an
    invariant makes every save see it whole (the held lock loads unlocked)."""
    model = {"lock": threading.Lock(), "a": 500, "b": 500}
    stop = threading.Event()

    def transfer() -> None:
        while not stop.is_set():
            with model["lock"]:
                model["a"] -= 1
                model["b"] += 1

    mutator = threading.Thread(target=transfer)
    mutator.start()
    try:
        for i in range(10):
            with model["lock"]:
                ckpt.save(model, tmp_path / f"m{i}.ckpt")
            loaded = ckpt.load(tmp_path / f"m{i}.ckpt")
            assert loaded["a"] + loaded["b"] == 1000
            assert loaded["lock"].acquire(blocking=False)
    finally:
        stop.set()
        mutator.join()


def test_two_threads_saving_to_one_path_leave_one_valid_file(tmp_path: Path) -> None:
    path, writers = tmp_path / "model.ckpt", 2
    errors: list[BaseException] = []

    def save(worker: int) -> None:
        try:
            for _ in range(10):
                ckpt.save({"worker": worker, "lock": threading.Lock()}, path, overwrite=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    in_threads(save, count=writers, args=lambda i: (i,))
    assert not errors
    assert ckpt.verify(path).ok and ckpt.load(path)["worker"] in range(writers)
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]
