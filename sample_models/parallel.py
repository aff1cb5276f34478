"""Work done in another process on a model that holds thread primitives:
what `multiprocessing`, `ProcessPoolExecutor`, joblib, Dask and Ray ship
with pickle. Used by the `register()` and cluster examples of docs/API.md
and docs/CLUSTERS.md, and their tests."""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def serve_one(service: Any, features: list[float]) -> dict[str, Any]:
    """Run one prediction in the worker, using the service's own primitives."""
    with service._stats_lock:  # a fresh lock in this process: acquirable
        service.stats["served"] += 1
    service.requests.put(features)  # the queue came with its pending requests
    pending = service.requests.qsize()
    ready = service.ready.wait(1)  # the event kept its flag
    return {
        "prediction": service.predict(features),
        "pending": pending,
        "ready": ready,
        "pid_lock_fresh": not service._stats_lock.locked(),
        "thread": threading.current_thread().name,
    }


class Throttle:
    """A job runner whose primitives interlock, as real ones do: one lock
    behind two attributes and a Condition, a semaphore with one of its three
    slots taken, and a queue with two jobs waiting."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stats_lock = self.lock
        self.changed = threading.Condition(self.lock)
        self.slots = threading.BoundedSemaphore(3)
        self.slots.acquire()
        self.jobs: queue.Queue[str] = queue.Queue()
        self.jobs.put("resize")
        self.jobs.put("encode")


def busy_throttle() -> Throttle:
    """A throttle caught mid-work, its lock held as it is sent (it arrives free)."""
    throttle = Throttle()
    throttle.lock.acquire()
    return throttle


def exercise(throttle: Throttle) -> dict[str, Any]:
    """Use the throttle's primitives in this process, from two threads, and
    report what they did: what a worker sends back to the driver. Leaves
    the throttle as it was."""
    with ThreadPoolExecutor(1) as other:
        with throttle.lock:
            taken_while_held = other.submit(throttle.lock.acquire, timeout=0.2).result()
        taken_after = other.submit(_take_and_release, throttle.lock).result()
        free_slots = other.submit(_free_slots, throttle.slots).result()
    return {
        "pid": os.getpid(),
        "lock_excludes": not taken_while_held and taken_after,
        "lock_shared": throttle.stats_lock is throttle.lock is throttle.changed._lock,  # type: ignore[attr-defined]
        "jobs": list(throttle.jobs.queue),
        "free_slots": free_slots,
    }


def _take_and_release(lock: Any) -> bool:
    if not lock.acquire(timeout=2):
        return False
    lock.release()
    return True


def _free_slots(semaphore: threading.Semaphore) -> int:
    """How many slots can be taken now (all given back after counting)."""
    taken = 0
    while semaphore.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        semaphore.release()
    return taken


class Keeper:
    """Keeps a model in a long-lived worker (a Ray actor): given one when
    built, handed another later in exchange for the one it held."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def swap(self, model: Any) -> Any:
        held, self.model = self.model, model
        return held

    def exercise(self) -> dict[str, Any]:
        return exercise(self.model)
