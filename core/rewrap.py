"""How each thread kind is written into a checkpoint: tiny reduce functions.

Each `reduce_<kind>(obj)` returns a standard pickle reduce value built only
from stdlib callables, so the `data.pkl` inside a checkpoint loads with plain
`pickle.load` and nothing from ckpt installed. The catalog table points at
these; the pickler uses them; `register()` installs them into `copyreg`.

Kinds with no reducer here (Queue, Event, Semaphore, ...) need none: they
pickle as ordinary objects once their inner Lock / RLock / Condition are
rewrapped, which keeps a lock shared by a Queue's three Conditions one lock.
"""

from __future__ import annotations

import _thread
import copyreg
import functools
import inspect
import io
import logging
import queue
import sys
import threading
from concurrent.futures import _base as futures_base
from typing import Any

NONE_REDUCE = (type(None), ())
"""Reduce value that loads as `None` (pickled as `type(None)()`): a stripped object."""


def reduce_stripped(obj: Any) -> tuple[Any, ...]:
    return NONE_REDUCE


class Call:
    """Placeholder pickled as `func(*args)`.

    Lets a reducer spell a small expression out of stdlib callables; being
    reduced to `func`, the class itself never appears in the pickle.
    """

    __slots__ = ("func", "args")

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def default_reduce(obj: Any, **changes: Any) -> tuple[Any, ...]:
    """The reduce value pickle would use for a plain instance, with some state replaced."""
    return copyreg.__newobj__, (type(obj),), {**obj.__dict__, **changes}  # type: ignore[attr-defined]


def reduce_lock(lock: Any) -> tuple[Any, ...]:
    # `_thread.allocate_lock` exists under that name on every Python 3;
    # `threading.Lock` is a function on some versions and a type on others.
    return _thread.allocate_lock, ()


def reduce_rlock(lock: Any) -> tuple[Any, ...]:
    return threading.RLock, ()


def reduce_condition(cond: threading.Condition) -> tuple[Any, ...]:
    # The lock goes through the memo, so a lock shared with another object
    # (or three Conditions of one Queue) stays one lock. Waiters are threads
    # of this process: they are not carried.
    return type(cond), (cond._lock,)  # type: ignore[attr-defined]


def reduce_barrier(barrier: threading.Barrier) -> tuple[Any, ...]:
    # Threads waiting at save time do not exist on load: start a fresh round.
    return default_reduce(barrier, _count=0, _state=0)


def reduce_simple_queue(q: queue.SimpleQueue) -> tuple[Any, ...]:
    """A SimpleQueue has no state to set, only `put`: spell the refill as

        next(iter([fresh := SimpleQueue(), any(map(SimpleQueue.put, [fresh] * n, items))]))

    which evaluates to the fresh queue after putting every item, in order.
    """
    items = drain_simple_queue(q)
    fresh = Call(type(q))
    refill = Call(any, Call(map, queue.SimpleQueue.put, [fresh] * len(items), items))
    return next, (Call(iter, [fresh, refill]),)


def drain_simple_queue(q: queue.SimpleQueue) -> list[Any]:
    """The items of a SimpleQueue, in order, leaving it as it was."""
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            break
    for item in items:
        q.put(item)
    return items


def reduce_thread_pool(pool: Any) -> tuple[Any, ...]:
    return type(pool), (pool._max_workers, pool._thread_name_prefix, pool._initializer, pool._initargs)


def reduce_local(local: threading.local) -> tuple[Any, ...]:
    return type(local), ()


def reduce_future(future: Any) -> tuple[Any, ...]:
    # A future nobody will complete would hang every waiter: cancel it.
    state = future._state
    if state in (futures_base.PENDING, futures_base.RUNNING):
        state = futures_base.CANCELLED
    return default_reduce(future, _state=state, _waiters=[], _done_callbacks=[])


def reduce_handler(handler: logging.Handler) -> tuple[Any, ...]:
    """A handler keeps its configuration; its lock is rewrapped by the RLock
    reducer; its stream is handled by `stream_treatment`."""
    treatment = stream_treatment(handler)
    if treatment == "reopen":
        return _reopening_file_handler(handler)  # type: ignore[arg-type]
    if treatment == "stderr":
        state = {k: v for k, v in handler.__dict__.items() if k != "stream"}
        return type(handler), (), state
    if treatment == "strip":
        return default_reduce(handler, stream=None)
    return default_reduce(handler)


def _reopening_file_handler(handler: logging.FileHandler) -> tuple[Any, ...]:
    """Rebuilt through its constructor with delay=True: it opens nothing at
    load, and its file (in append mode, never truncating) on the first record."""
    cls = type(handler)
    mode = handler.mode.replace("w", "a")
    wanted: dict[str, Any] = {"mode": mode, "encoding": handler.encoding, "delay": True, "errors": handler.errors}
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    skip = ("stream", "_builtin_open", "lock")
    state = {k: v for k, v in handler.__dict__.items() if k not in skip} | {"mode": mode}
    return functools.partial(cls, handler.baseFilename, **kwargs), (), state


def stream_treatment(handler: logging.Handler) -> str:
    """What happens to a handler's stream: "reopen" (a file handler reopens
    its file lazily, in append mode, on the first record after load),
    "stderr" (bound to the loading process's stderr), "strip" (an open
    stream that cannot be carried), or "keep" (no stream, or a picklable one)."""
    stream = getattr(handler, "stream", None)
    if isinstance(handler, logging.FileHandler):
        return "reopen"
    if stream is None or not isinstance(stream, io.IOBase) or isinstance(stream, (io.StringIO, io.BytesIO)):
        return "keep"
    rebuildable = type(handler).__init__ is logging.StreamHandler.__init__
    if rebuildable and stream in (sys.stderr, sys.__stderr__):
        return "stderr"
    return "strip"
