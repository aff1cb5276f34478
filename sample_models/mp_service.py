"""A model that hands work to worker processes: it holds multiprocessing
primitives, which plain pickle refuses outside of starting a process.

`build()` returns the model after a run: a lock, a shared counter of
requests served (`multiprocessing.Value`), a results queue with one result
nobody collected, and a stop event. A checkpoint restores fresh local ones
(the counter's value kept, the uncollected result not), which `serve()`
passes to new worker processes as usual.
"""

from __future__ import annotations

import multiprocessing
from typing import Any


class WorkerModel:
    def __init__(self, method: str = "spawn") -> None:
        ctx = multiprocessing.get_context(method)
        self.method = method
        self.weights = [0.25, -1.0, 2.0]
        self.lock = ctx.Lock()
        self.served = ctx.Value("i", 0)
        self.results = ctx.Queue()
        self.stop = ctx.Event()

    def predict(self, features: list[float]) -> float:
        return sum(w * x for w, x in zip(self.weights, features))


def work(model: WorkerModel, features: list[float]) -> None:
    """In a worker process: count the request under the shared lock, send the result."""
    with model.lock:
        model.served.value += 1
    model.results.put(model.predict(features))


def serve(model: WorkerModel, batch: list[list[float]]) -> dict[str, Any]:
    """One worker process per request, in the model's start method."""
    ctx = multiprocessing.get_context(model.method)
    workers = [ctx.Process(target=work, args=(model, features)) for features in batch]
    for worker in workers:
        worker.start()
    results = sorted(model.results.get(timeout=30) for _ in batch)
    for worker in workers:
        worker.join(30)
    return {"results": results, "served": model.served.value, "exit codes": [w.exitcode for w in workers]}


def build() -> WorkerModel:
    model = WorkerModel()
    model.served.value = 3
    model.results.put(1.5)  # a result nobody collected: not kept
    return model
