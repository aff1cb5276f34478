"""One factory per catalog kind: `ckpt scan sample_models.kinds:lock` finds
`model.value`. The factory names are the kind names with `-` as `_`."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import queue
import socket
import sqlite3
import ssl
import sys
import tempfile
import threading
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
"""Alive for the proxy below; a proxy pickles as its referent, so pickle fails only on one to an unpicklable object."""


def weak_proxy() -> Holder:
    return Holder(weakref.proxy(_SIGNAL))


def db_cursor() -> Holder:
    return Holder(sqlite3.connect(":memory:").cursor())


def thread() -> Holder:
    return Holder(threading.Thread(target=_echo, args=(1,), name="sample-thread"))


def mp_primitive() -> Holder:
    return Holder(multiprocessing.get_context("spawn").Lock())


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


def weakref_() -> Holder:
    return Holder(weakref.ref(Holder))


def db_connection() -> Holder:
    path = os.path.join(tempfile.gettempdir(), "ckpt-sample.db")
    return Holder(sqlite3.connect(path, check_same_thread=False))


def module() -> Holder:
    return Holder(sys.modules["json"] if "json" in sys.modules else __import__("json"))


def frame() -> Holder:
    return Holder(sys._getframe())


def unpicklable() -> Holder:
    return Holder(memoryview(b"not a kind ckpt names: pickle's own message is the finding"))


FACTORIES = {
    "lock": lock, "rlock": rlock, "condition": condition, "semaphore": semaphore, "event": event,
    "barrier": barrier, "queue": queue_, "simple-queue": simple_queue, "thread-pool": thread_pool,
    "future": future, "thread-local": thread_local, "log-handler": log_handler, "std-stream": std_stream,
    "weak-container": weak_container, "ssl-context": ssl_context, "memory-db": memory_db, "thread": thread,
    "mp-primitive": mp_primitive, "open-file": open_file, "socket": socket_, "generator": generator,
    "local-function": local_function, "local-class": local_class, "weakref": weakref_,
    "weak-proxy": weak_proxy, "db-connection": db_connection, "db-cursor": db_cursor, "module": module, "frame": frame, "unpicklable": unpicklable,
}
"""Catalog kind name -> factory; the tests check that every kind has one."""
