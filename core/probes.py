"""Does a restored primitive actually work? One small probe per kind.

A probe exercises the object across real threads and raises `ProbeFailed`
when it does not behave. Probes never change what the object holds: queue
items stay where they are, an event keeps its flag, a semaphore its value.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

TIMEOUT = 2.0


class ProbeFailed(Exception):
    """A restored object did not behave like the primitive it stands for."""


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` in another thread and return its result (or raise its error)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # carried back to the caller
            box["error"] = exc

    worker = threading.Thread(target=run, name="ckpt-probe", daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():
        raise ProbeFailed("a probe thread did not finish (deadlock?)")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def probe_lock(lock: Any) -> None:
    """Free, excludes another thread while held, and is free again after."""
    if not lock.acquire(timeout=TIMEOUT):
        raise ProbeFailed("the restored lock is held and cannot be acquired")
    try:
        if _in_thread(lambda: lock.acquire(blocking=False)):
            raise ProbeFailed("another thread acquired the lock while it was held")
    finally:
        lock.release()
    if not _in_thread(lambda: _acquire_release(lock)):
        raise ProbeFailed("another thread could not acquire the released lock")


def _acquire_release(lock: Any) -> bool:
    if not lock.acquire(timeout=TIMEOUT):
        return False
    lock.release()
    return True


def probe_rlock(lock: Any) -> None:
    """Re-entrant for its owner, exclusive for others."""
    with lock, lock:
        if _in_thread(lambda: lock.acquire(blocking=False)):
            raise ProbeFailed("another thread acquired the re-entrant lock while it was held")
    probe_lock(lock)


def probe_condition(cond: threading.Condition) -> None:
    """A thread waiting on the condition wakes on notify."""
    woke = threading.Event()
    ready = threading.Event()

    def waiter() -> None:
        with cond:
            ready.set()
            if cond.wait(TIMEOUT):
                woke.set()

    worker = threading.Thread(target=waiter, name="ckpt-probe", daemon=True)
    worker.start()
    if not ready.wait(TIMEOUT):
        raise ProbeFailed("a thread could not acquire the condition's lock")
    with cond:
        cond.notify_all()
    worker.join(TIMEOUT)
    if not woke.is_set():
        raise ProbeFailed("a thread waiting on the condition was not woken by notify")


def probe_semaphore(sem: threading.Semaphore) -> None:
    """Counts: when it has a free slot, another thread can take and return it."""
    value = sem._value  # type: ignore[attr-defined]
    if value > 0 and not _in_thread(lambda: _acquire_release(sem)):
        raise ProbeFailed(f"the semaphore has value {value} but no thread could acquire it")
    probe_condition(sem._cond)  # type: ignore[attr-defined]


def probe_event(event: threading.Event) -> None:
    """Its flag reads the same from another thread, and waiting agrees with it."""
    flag = event.is_set()
    if _in_thread(lambda: event.wait(0.01)) != flag:
        raise ProbeFailed("waiting on the event disagrees with its flag")
    probe_condition(event._cond)  # type: ignore[attr-defined]


def probe_barrier(barrier: threading.Barrier) -> None:
    """Not broken, nobody waiting: ready for a fresh round."""
    if barrier.broken or barrier.n_waiting:
        raise ProbeFailed("the restored barrier is broken or has phantom waiters")
    probe_condition(barrier._cond)  # type: ignore[attr-defined]


def probe_queue(q: Any) -> None:
    """Its three conditions share its mutex, and they wake waiting threads."""
    for name in ("not_empty", "not_full", "all_tasks_done"):
        if getattr(q, name)._lock is not q.mutex:  # type: ignore[attr-defined]
            raise ProbeFailed(f"the queue's {name} condition no longer shares the queue's mutex")
    probe_lock(q.mutex)
    probe_condition(q.not_empty)


def probe_simple_queue(q: Any) -> None:
    """Another thread can put, and this one gets what it put, in order behind
    the existing items (which are put back unchanged)."""
    marker = object()
    _in_thread(lambda: q.put(marker))
    items = []
    while (item := q.get(timeout=TIMEOUT)) is not marker:
        items.append(item)
    for item in items:
        q.put(item)


def probe_thread_pool(pool: Any) -> None:
    """Runs a job and returns its result."""
    if pool.submit(sum, (1, 2)).result(TIMEOUT) != 3:
        raise ProbeFailed("the restored thread pool did not run a job")


def probe_local(local: threading.local) -> None:
    """Attributes set in one thread are invisible in another."""
    marker = "_ckpt_probe"
    _in_thread(lambda: setattr(local, marker, True))
    if hasattr(local, marker):
        raise ProbeFailed("a thread-local attribute leaked across threads")


def probe_future(future: Any) -> None:
    """Done, so nobody waiting on it hangs."""
    if not future.done():
        raise ProbeFailed("the restored future is not done; waiting on it would hang")


def probe_handler(handler: Any) -> None:
    """Its lock works."""
    probe_rlock(handler.lock)


def probe_std_stream(stream: Any) -> None:
    """It is one of this process's standard streams, and still open."""
    import sys

    names = ("stdin", "stdout", "stderr")
    if not any(stream is getattr(sys, n) or stream is getattr(sys, f"__{n}__") for n in names):
        raise ProbeFailed("the restored stream is not one of this process's standard streams")
    if stream.closed:
        raise ProbeFailed("the restored standard stream is closed")


def probe_weakref(ref: Any) -> None:
    """Calling it gives its referent, or None once that is gone, from any thread."""
    here = ref()
    if _in_thread(ref) is not here:
        raise ProbeFailed("the restored weak reference gives another object in another thread")


class _Referent:
    """A fresh object that can be weakly referred to and used as a key."""


def probe_weak_container(container: Any) -> None:
    """An entry for an object that dies goes away by itself; the saved entries stay."""
    before = len(container)
    referent = _Referent()
    if isinstance(container, weakref.WeakValueDictionary):
        container[f"ckpt-probe-{id(referent)}"] = referent  # a strong key that is not the referent
    elif isinstance(container, weakref.WeakKeyDictionary):
        container[referent] = None
    else:
        container.add(referent)
    if len(container) != before + 1:
        raise ProbeFailed("an entry could not be added to the restored weak container")
    del referent
    if len(container) != before:
        raise ProbeFailed("the restored weak container kept an entry whose object is gone")


def probe_ssl_context(ctx: Any) -> None:
    """It starts a TLS handshake over memory buffers (no network): a client writes its hello."""
    import ssl

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    tls = ctx.wrap_bio(incoming, outgoing, server_side=server,
                       server_hostname=None if server or not ctx.check_hostname else "example.com")
    if server:
        return
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    if not outgoing.pending:
        raise ProbeFailed("the restored SSL context did not start a handshake")


def probe_sqlite(conn: Any) -> None:
    """Its database file opens read-only and reads (through a connection of
    the probe's own: a lazy connection stays unopened, the file unchanged)."""
    import pathlib
    import sqlite3

    path = getattr(conn, "database", None)
    if path is None:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return
    if not pathlib.Path(path).exists():
        raise ProbeFailed(f"the database file {path} does not exist here")
    probe = sqlite3.connect(f"{pathlib.Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        probe.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ProbeFailed(f"{path} does not read as a sqlite database ({exc})") from None
    finally:
        probe.close()
