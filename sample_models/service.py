"""A realistic inference service: the kind of object people try to pickle.

`build()` returns a running service: weights, a bounded request queue with
two requests waiting, a worker thread draining it, a thread pool for
preprocessing, a lock around the statistics, a readiness event and a log
handler. Plain pickle fails on it with "cannot pickle '_thread.lock' object".
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class InferenceService:
    def __init__(self, size: int = 8) -> None:
        self.weights = [[(i + 1) * (j + 1) / size for j in range(size)] for i in range(size)]
        self.config = {"batch": 4, "timeout": 2.5, "labels": ["cat", "dog"]}
        self.requests: queue.Queue[Any] = queue.Queue(maxsize=64)
        self.stats = {"served": 0}
        self._stats_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="preprocess")
        self.log = logging.getLogger("sample_models.service")
        self.handler = logging.StreamHandler()
        self.log.addHandler(self.handler)
        self.ready = threading.Event()
        self.worker = threading.Thread(target=self._serve, name="inference-worker", daemon=True)

    def start(self) -> InferenceService:
        self.worker.start()
        self.ready.set()
        return self

    def predict(self, features: list[float]) -> list[float]:
        with self._stats_lock:
            self.stats["served"] += 1
        return [sum(w * x for w, x in zip(row, features)) for row in self.weights]

    def _serve(self) -> None:
        while (request := self.requests.get()) is not None:
            self.pool.submit(self.predict, request)


def build() -> InferenceService:
    service = InferenceService()
    service.requests.put([1.0] * 8)
    service.requests.put([0.5] * 8)
    return service
