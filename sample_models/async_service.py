"""An asyncio service after it has served: its primitives are bound to the
event loop that ran it, so plain pickle fails on them (on the loop they
hold, and the futures waiting on them).

`build()` runs the service once under `asyncio.run`, as a real one would
have run: a lock around its statistics (with a Condition sharing it), a
semaphore limiting concurrent requests, a readiness event, a queue of
requests still waiting, and the task that served them (stripped on save).
After load, `asyncio.run(service.drain())` serves the waiting requests on
the loading process's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any


class AsyncService:
    def __init__(self, concurrency: int = 2) -> None:
        self.weights = [0.5, 1.5, -2.0]
        self.stats = {"served": 0}
        self.stats_lock = asyncio.Lock()
        self.served = asyncio.Condition(self.stats_lock)
        self.slots = asyncio.BoundedSemaphore(concurrency)
        self.ready = asyncio.Event()
        self.requests: asyncio.Queue[list[float]] = asyncio.Queue(maxsize=16)
        self.worker: asyncio.Task[None] | None = None

    def predict(self, features: list[float]) -> float:
        return sum(w * x for w, x in zip(self.weights, features))

    async def handle(self, features: list[float]) -> float:
        async with self.slots:
            await asyncio.sleep(0)  # the requests overlap: the slots and the lock are contended
            async with self.served:
                await asyncio.sleep(0)  # another request waits for the lock meanwhile
                self.stats["served"] += 1
                self.served.notify_all()
            return self.predict(features)

    async def drain(self) -> list[float]:
        """Serve every waiting request, concurrently within the slots."""
        pending = [self.requests.get_nowait() for _ in range(self.requests.qsize())]
        results = await asyncio.gather(*(self.handle(features) for features in pending))
        for _ in pending:
            self.requests.task_done()
        return list(results)

    async def wait_served(self, count: int) -> None:
        async with self.served:
            await self.served.wait_for(lambda: self.stats["served"] >= count)

    async def run_once(self) -> None:
        """Serve a burst of requests, then leave two waiting."""
        self.worker = asyncio.current_task()
        started = asyncio.ensure_future(self.ready.wait())
        waiter = asyncio.ensure_future(self.wait_served(3))
        await asyncio.gather(*(self.handle([1.0, 2.0, float(i)]) for i in range(3)))
        await waiter
        try:
            await asyncio.wait_for(self.requests.get(), 0.001)  # nobody sends: binds the queue
        except asyncio.TimeoutError:
            pass
        self.ready.set()
        await started
        for i in range(2):
            self.requests.put_nowait([float(i), 0.0, 1.0])


def build() -> AsyncService:
    service = AsyncService()
    asyncio.run(service.run_once())
    return service


def run_after_load(service: Any) -> dict[str, Any]:
    """What the loading process does with a restored service: serve on its own loop."""
    results = asyncio.run(service.drain())
    return {"results": results, "served": service.stats["served"], "ready": service.ready.is_set()}
