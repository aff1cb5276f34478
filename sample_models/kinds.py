"""One factory per catalog kind: `ckpt scan sample_models.kinds:lock` finds
`model.value`. The factory names are the kind names with `-` as `_`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.process
import functools
import logging
import logging.handlers
import multiprocessing
import os
import queue
import socket
import sqlite3
import ssl
import sys
import tempfile
import threading
import types
import weakref
from typing import Any


class Holder:
    """A model with one attribute, `value`, holding the object under test."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Holder({self.value!r})"


def _echo(x: Any) -> Any:
    return x


def lock() -> Holder:
    return Holder(threading.Lock())


def rlock() -> Holder:
    return Holder(threading.RLock())


def condition() -> Holder:
    return Holder(threading.Condition())


def semaphore() -> Holder:
    sem = threading.BoundedSemaphore(5)
    sem.acquire()
    return Holder(sem)


def event() -> Holder:
    ev = threading.Event()
    ev.set()
    return Holder(ev)


def barrier() -> Holder:
    return Holder(threading.Barrier(3, timeout=5.0))


def queue_() -> Holder:
    q: queue.Queue[Any] = queue.Queue(maxsize=10)
    for item in ("first", {"n": 2}, [3]):
        q.put(item)
    return Holder(q)


def simple_queue() -> Holder:
    q: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for item in ("a", "b", ("c", 3)):
        q.put(item)
    return Holder(q)


def thread_pool() -> Holder:
    return Holder(concurrent.futures.ThreadPoolExecutor(max_workers=3, thread_name_prefix="sample"))


def future() -> Holder:
    done: concurrent.futures.Future[int] = concurrent.futures.Future()
    done.set_result(42)
    return Holder(done)


def thread_local() -> Holder:
    local = threading.local()
    local.seen = True
    return Holder(local)


def log_handler() -> Holder:
    path = os.path.join(tempfile.gettempdir(), "ckpt-sample.log")
    return Holder(logging.FileHandler(path, delay=False))


def std_stream() -> Holder:
    return Holder(sys.stdout)


def progress_bar() -> Holder:
    """A bar part-way through, on stdout (tqdm is optional: `NEEDS`)."""
    import tqdm

    bar = tqdm.tqdm(total=10, desc="train", unit="step", file=sys.stdout, delay=60)  # delay: nothing printed
    bar.update(4)
    return Holder(bar)


def progress_bar_file() -> Holder:
    import io

    import tqdm

    return Holder(tqdm.tqdm(total=10, file=io.StringIO()))


class Referent:
    """Something a weak reference can point at."""


_KEPT = Referent()
"""Held strongly at module level, so weak references to it in a sample stay alive."""


def weak_container() -> Holder:
    return Holder(weakref.WeakValueDictionary({"kept": _KEPT}))


def ssl_context() -> Holder:
    return Holder(ssl.create_default_context())


def memory_db() -> Holder:
    return Holder(sqlite3.connect(":memory:", check_same_thread=False))


_SIGNAL = threading.Event()
"""Alive for the proxy below, which the sample does not hold otherwise: the proxy comes back dead."""


def weak_proxy() -> Holder:
    return Holder(weakref.proxy(_SIGNAL))


def db_cursor() -> Holder:
    return Holder(sqlite3.connect(":memory:").cursor())


def thread() -> Holder:
    return Holder(threading.Thread(target=_echo, args=(1,), name="sample-thread"))


def queue_listener() -> Holder:
    """Started, as a service's listener is: its daemon thread waits on the queue."""
    listener = logging.handlers.QueueListener(queue.Queue(), logging.handlers.BufferingHandler(10))
    listener.start()
    return Holder(listener)


async def _briefly(awaitable: Any) -> None:
    try:
        await asyncio.wait_for(awaitable, 0.001)
    except asyncio.TimeoutError:
        pass


def _served(exercise: Any) -> None:
    """Run `exercise()` under asyncio.run: each asyncio factory makes its
    primitive wait once, which binds it to that (then closed) loop."""
    asyncio.run(exercise())


def async_lock() -> Holder:
    lock = asyncio.Lock()

    async def contend() -> None:
        async with lock:
            await _briefly(lock.acquire())

    _served(contend)
    return Holder(lock)


def async_condition() -> Holder:
    cond = asyncio.Condition()

    async def wait() -> None:
        async with cond:
            await _briefly(cond.wait())

    _served(wait)
    return Holder(cond)


def async_semaphore() -> Holder:
    sem = asyncio.BoundedSemaphore(2)

    async def exhaust() -> None:
        await sem.acquire()
        await sem.acquire()
        await _briefly(sem.acquire())
        sem.release()

    _served(exhaust)
    return Holder(sem)  # value 1 of 2


def async_event() -> Holder:
    event = asyncio.Event()
    _served(lambda: _briefly(event.wait()))
    event.set()
    return Holder(event)


def async_queue() -> Holder:
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=10)
    _served(lambda: _briefly(q.get()))
    for item in ("first", {"n": 2}, [3]):
        q.put_nowait(item)
    return Holder(q)


def event_loop() -> Holder:
    loop = asyncio.new_event_loop()
    loop.close()
    return Holder(loop)


def async_future() -> Holder:
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_result(42)
    loop.close()
    return Holder(future)


def aiohttp_session() -> Holder:
    import aiohttp

    async def open_session() -> Any:
        return aiohttp.ClientSession(headers={"X-Sample": "1"})

    session = asyncio.run(open_session())  # bound to that (then closed) loop, unused: nothing to close
    return Holder(session)


def mp_lock() -> Holder:
    return Holder(multiprocessing.get_context("spawn").Lock())


def mp_semaphore() -> Holder:
    sem = multiprocessing.Semaphore(3)
    sem.acquire()
    return Holder(sem)  # value 2


def mp_condition() -> Holder:
    return Holder(multiprocessing.Condition())


def mp_event() -> Holder:
    event = multiprocessing.Event()
    event.set()
    return Holder(event)


def mp_barrier() -> Holder:
    return Holder(multiprocessing.Barrier(2, timeout=5.0))


def mp_queue() -> Holder:
    return Holder(multiprocessing.JoinableQueue(maxsize=4))


def mp_simple_queue() -> Holder:
    return Holder(multiprocessing.SimpleQueue())


def mp_value() -> Holder:
    return Holder(multiprocessing.get_context("spawn").Value("i", 42))


def mp_array() -> Holder:
    return Holder(multiprocessing.Array("d", [0.5, 1.5, 2.5]))


def open_file() -> Holder:
    return Holder(open(os.devnull, "rb"))


def socket_() -> Holder:
    return Holder(socket.socket(socket.AF_INET, socket.SOCK_STREAM))


def generator() -> Holder:
    return Holder(x * x for x in range(3))


def local_function() -> Holder:
    return Holder(lambda x: x + 1)


def local_class() -> Holder:
    class Local:
        pass

    return Holder(Local)


def code() -> Holder:
    return Holder(compile("1 + 1", "<sample>", "eval"))


def lru_cache() -> Holder:
    return Holder(functools.lru_cache(maxsize=8)(_echo))  # a wrapper no name finds: `_echo` is the function


def torchscript_module() -> Holder:
    import torch

    return Holder(torch.jit.script(torch.nn.Linear(2, 2)))


def weakref_() -> Holder:
    return Holder(weakref.ref(Holder))


def db_connection() -> Holder:
    path = os.path.join(tempfile.gettempdir(), "ckpt-sample.db")
    return Holder(sqlite3.connect(path, check_same_thread=False))


def read_file() -> Holder:
    """This module's own source, open for reading, one line in."""
    source = open(__file__, encoding="utf-8")  # noqa: SIM115 - the sample holds it open
    source.readline()
    return Holder(source)


def duckdb_connection() -> Holder:
    """A connection to a file of this process's own: duckdb lets one process at a time open a file to write."""
    import duckdb

    return Holder(duckdb.connect(os.path.join(tempfile.gettempdir(), f"ckpt-sample-{os.getpid()}.duckdb")))


def connection_pool() -> Holder:
    """An HTTP connection pool, not connected (the rewrap is the same with connections in it)."""
    import urllib3

    return Holder(urllib3.HTTPConnectionPool("127.0.0.1", 9, maxsize=2))


def process_pool() -> Holder:
    return Holder(concurrent.futures.ProcessPoolExecutor(max_workers=2, initializer=_echo, initargs=(1,)))


def _loguru_handler(sink: Any, **options: Any) -> Any:
    """The handler loguru makes for `sink`, added to a logger of its own."""
    from loguru._logger import Core, Logger

    own = Logger(core=Core(), exception=None, depth=0, record=False, lazy=False, colors=False, raw=False,
                 capture=True, patchers=[], extra={})
    handler_id = own.add(sink, **options)
    return own._core.handlers[handler_id]


def queued_log_sink() -> Holder:
    """A loguru handler with enqueue=True (its worker thread running), writing to a module-level function."""
    return Holder(_loguru_handler(_echo, enqueue=True))


def log_file_sink() -> Holder:
    """A loguru file sink with its file open."""
    return Holder(_loguru_handler(os.path.join(tempfile.gettempdir(), "ckpt-sample-loguru.log"))._sink)


def module() -> Holder:
    return Holder(sys.modules["json"] if "json" in sys.modules else __import__("json"))


def dynamic_module() -> Holder:
    return Holder(types.ModuleType("made_on_the_fly"))


def frame() -> Holder:
    return Holder(sys._getframe())


def unpicklable() -> Holder:
    return Holder(memoryview(b"not a kind ckpt names: pickle's own message is the finding"))


FACTORIES = {
    "lock": lock, "rlock": rlock, "condition": condition, "semaphore": semaphore, "event": event,
    "barrier": barrier, "queue": queue_, "simple-queue": simple_queue, "thread-pool": thread_pool,
    "future": future, "thread-local": thread_local, "log-handler": log_handler, "queue-listener": queue_listener,
    "async-lock": async_lock, "async-condition": async_condition, "async-semaphore": async_semaphore,
    "async-event": async_event, "async-queue": async_queue, "mp-lock": mp_lock, "mp-semaphore": mp_semaphore,
    "mp-condition": mp_condition, "mp-event": mp_event, "mp-barrier": mp_barrier, "mp-queue": mp_queue,
    "mp-simple-queue": mp_simple_queue, "mp-value": mp_value, "mp-array": mp_array, "thread": thread,
    "event-loop": event_loop, "async-future": async_future, "open-file": open_file, "socket": socket_,
    "generator": generator, "local-function": local_function, "local-class": local_class, "code": code,
    "weakref": weakref_,
    "std-stream": std_stream, "weak-container": weak_container, "ssl-context": ssl_context, "memory-db": memory_db,
    "weak-proxy": weak_proxy, "db-connection": db_connection, "db-cursor": db_cursor, "module": module,
    "dynamic-module": dynamic_module, "frame": frame, "unpicklable": unpicklable, "progress-bar": progress_bar,
    "progress-bar-file": progress_bar_file, "read-file": read_file, "duckdb-connection": duckdb_connection,
    "connection-pool": connection_pool, "process-pool": process_pool, "queued-log-sink": queued_log_sink,
    "log-file-sink": log_file_sink, "lru-cache": lru_cache, "torchscript-module": torchscript_module,
    "aiohttp-session": aiohttp_session,
}
"""Catalog kind name -> factory; the tests check that every kind has one."""

NEEDS = {"progress-bar": "tqdm", "progress-bar-file": "tqdm", "duckdb-connection": "duckdb", "connection-pool": "urllib3",
         "queued-log-sink": "loguru", "log-file-sink": "loguru", "torchscript-module": "torch",
         "aiohttp-session": "aiohttp"}
"""Kinds whose sample needs an optional library: tests skip them where it is absent (`conftest.sample`)."""

CARRIED = {"queue-listener": [("model.value.queue", "queue"), ("model.value.handlers[0]", "log-handler")]}
"""Findings beneath a sample's `value`: parts of other kinds its rewrap carries over."""
