"""Work done in another process on a model that holds thread primitives:
what `multiprocessing`, `ProcessPoolExecutor` and joblib ship with pickle.
Used by the README's `register()` example and its tests."""

from __future__ import annotations

import threading
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
