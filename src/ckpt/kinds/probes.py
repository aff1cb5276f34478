"""Does a restored primitive actually work? One small probe per kind.

A probe exercises the object across real threads and raises `ProbeFailed`
when it does not behave. Probes never change what the object holds: queue
items stay where they are, an event keeps its flag, a semaphore its value.
asyncio primitives are exercised by coroutines on a fresh event loop in
another thread (so a caller inside a running loop can verify too), and
unbound from that loop afterwards, as they were.
"""

from __future__ import annotations

import os
import pathlib
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from ckpt.kinds.lazy import LazySession
from ckpt.kinds.rewrap import bar_stream, pooled_connections, proxy_referent
from ckpt.trust import sandbox

TIMEOUT = 2.0


class ProbeFailed(Exception):
    """A restored object did not behave like the primitive it stands for."""


class _Other:
    """Another thread, kept for as long as probes keep it busy: probing a
    thousand locks needs two thousand calls from another thread, and a
    thread started for each cost more than the probes. It ends after
    `IDLE` seconds without work, so nothing outlives a verify for long."""

    IDLE = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = queue.SimpleQueue()
        self._alive = False

    def run(self, fn: Callable[[], Any]) -> Any:
        box: dict[str, Any] = {}
        done = threading.Event()
        with self._lock:
            self._work.put((fn, box, done))
            if not self._alive:
                self._alive = True
                threading.Thread(target=self._serve, name="ckpt-probe", daemon=True).start()
        if not done.wait(TIMEOUT):
            raise ProbeFailed("a probe thread did not finish (deadlock?)")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _serve(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._work.empty():
                        self._alive = False
                        return
                continue
            fn, box, done = item
            try:
                box["result"] = fn()
            except BaseException as exc:  # carried back to the caller
                box["error"] = exc
            done.set()


_others = {False: _Other(), True: _Other()}
"""The other thread of probes run in a data-only load's sandbox (started
there, so jailed as that thread is) and of the rest: a thread started
outside the sandbox never runs a sandboxed probe's work."""


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` in another thread and return its result (or raise its error)."""
    return _others[sandbox.loading()].run(sandbox.carried(fn))


def probe_lock(lock: Any) -> None:
    """Free, excludes another thread while held, and is free again after.
    (Arguments by position: multiprocessing's locks call them `block`.)"""
    if not lock.acquire(True, TIMEOUT):
        raise ProbeFailed("the restored lock is held and cannot be acquired")
    try:
        if _in_thread(lambda: lock.acquire(False)):
            raise ProbeFailed("another thread acquired the lock while it was held")
    finally:
        lock.release()
    if not _in_thread(lambda: _acquire_release(lock)):
        raise ProbeFailed("another thread could not acquire the released lock")


def _acquire_release(lock: Any) -> bool:
    if not lock.acquire(True, TIMEOUT):
        return False
    lock.release()
    return True


def probe_rlock(lock: Any) -> None:
    """Re-entrant for its owner, exclusive for others."""
    with lock, lock:
        if _in_thread(lambda: lock.acquire(False)):
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
    _free_slot_taken(sem, sem._value)  # type: ignore[attr-defined]
    probe_condition(sem._cond)  # type: ignore[attr-defined]


def _free_slot_taken(sem: Any, value: int) -> None:
    """With `value` free slots, another thread can take one and return it."""
    if value > 0 and not _in_thread(lambda: _acquire_release(sem)):
        raise ProbeFailed(f"the semaphore has value {value} but no thread could acquire it")


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



def probe_progress_bar(bar: Any) -> None:
    """An open bar writes to one of this process's standard streams; its line
    renders from its settings. `format_meter` only builds the text: nothing
    is printed to the user's terminal, and the bar is left as it was."""
    if not bar.disable:
        probe_std_stream(bar_stream(bar))
    try:
        line = type(bar).format_meter(**bar.format_dict)
    except Exception as exc:  # a bar_format or setting tqdm cannot render
        raise ProbeFailed(f"the restored progress bar does not render ({exc})") from None
    if not isinstance(line, str):
        raise ProbeFailed("the restored progress bar does not render to text")


def probe_module(module: Any) -> None:
    """A module restored by its name is the loading process's own."""
    if sys.modules.get(module.__name__) is not module:
        raise ProbeFailed(f"{module.__name__} is not the module this process imported under that name")


def probe_weakref(ref: Any) -> None:
    """Calling it gives its referent, or None once that is gone, from any thread."""
    here = ref()
    if _in_thread(ref) is not here:
        raise ProbeFailed("the restored weak reference gives another object in another thread")


def probe_weak_proxy(proxy: Any) -> None:
    """It stands for the same object in any thread, or is dead in all."""
    here = proxy_referent(proxy)
    if _in_thread(lambda: proxy_referent(proxy)) is not here:
        raise ProbeFailed("the restored weak proxy stands for another object in another thread")


def probe_lru_cache(cached: Any) -> None:
    """It has its maxsize, and its cache can be cleared and counted."""
    cached.cache_clear()
    info = cached.cache_info()
    if info.currsize != 0 or info.maxsize != cached.cache_parameters()["maxsize"]:
        raise ProbeFailed("the restored lru_cache does not count what it holds")


def probe_script_module(module: Any) -> None:
    """The compiled module is there: TorchScript prints the code of its forward."""
    if not module.code.strip():
        raise ProbeFailed("the restored TorchScript module has no compiled forward")


def probe_lazy_session(session: Any) -> None:
    """It opened nothing at load: the session is made in the loop that first uses it."""
    if not isinstance(session, LazySession) or session.opened or session.closed:
        raise ProbeFailed("the restored aiohttp session was opened at load, outside the loop that will use it")


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


def probe_db_file(conn: Any) -> None:
    """Its database file opens and reads, through a connection of the
    probe's own (sqlite's read-only, duckdb's as the lazy one will open it):
    a lazy connection stays unopened, the file unchanged."""
    path = getattr(conn, "database", None)
    if path is None:  # a live sqlite3 connection: asked directly
        conn.execute("select count(*) from sqlite_master").fetchone()
        return
    if not pathlib.Path(path).exists():
        raise ProbeFailed(f"the database file {path} does not exist here")
    try:
        _READERS[conn.driver](path, conn.options)
    except Exception as exc:  # sqlite3.DatabaseError, duckdb.Error: each driver's own
        raise ProbeFailed(f"{path} does not read as a {conn.driver} database ({exc})") from None


def _read_sqlite(path: str, options: dict[str, Any]) -> None:
    import sqlite3

    probe = sqlite3.connect(f"{pathlib.Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        probe.execute("select count(*) from sqlite_master").fetchone()
    finally:
        probe.close()


def _read_duckdb(path: str, options: dict[str, Any]) -> None:
    """Opened as the lazy connection will open it: duckdb refuses one process
    two connections to a file in different modes, and a read-only one while
    another process holds it open for writing."""
    import duckdb

    with duckdb.connect(path, **options) as probe:
        probe.execute("select count(*) from duckdb_tables()").fetchone()


_READERS = {"sqlite3": _read_sqlite, "duckdb": _read_duckdb}


def probe_read_file(file: Any) -> None:
    """Its file is there and reads from the saved position (opened by the
    probe itself: a lazy file stays unopened, at its position)."""
    if file.opened:
        return
    try:
        with open(file.path, file.mode, **file.options) as probe:
            probe.seek(file.position)
            probe.read(1)
    except (OSError, ValueError) as exc:  # gone, unreadable, or not text in its encoding
        raise ProbeFailed(f"{file.path} does not read from position {file.position} here ({exc})") from None


def probe_connection_pool(pool: Any) -> None:
    """It holds no connection of the saving process: the client connects again on first use."""
    left = len(pooled_connections(pool))
    if left:
        raise ProbeFailed(f"the restored pool holds {left} connection(s) from the saving process")


def probe_process_pool(pool: Any) -> None:
    """Not shut down, and its settings run a job: a pool of the same context,
    initializer and worker limit starts a worker and returns a result, then
    is shut down. The restored pool itself starts no worker (probes leave
    what they probe as it was: a pool's workers, left running, outlive the
    caller's use of it until the interpreter's exit, where they race its
    exit hook)."""
    if pool._shutdown_thread or pool._broken:
        raise ProbeFailed("the restored process pool is shut down or broken")
    twin = type(pool)(1, pool._mp_context, pool._initializer, pool._initargs)
    try:
        result = twin.submit(abs, -3).result(TIMEOUT * 15)
    except Exception as exc:  # a timeout, or BrokenProcessPool: a worker that could not start
        raise ProbeFailed(f"the restored process pool's settings did not run a job ({type(exc).__name__}: {exc})"
                          ) from None
    finally:
        twin.shutdown(wait=True, cancel_futures=True)
    if result != 3:
        raise ProbeFailed("the restored process pool's settings ran a job but returned the wrong result")


def probe_file_sink(sink: Any) -> None:
    """Not opened yet, in append mode (it opens its file on the first
    message), and writable where it will open it, if that folder exists
    (loguru makes a missing one). Nothing is written."""
    if sink._file is not None:
        raise ProbeFailed("the restored log file sink already holds an open file")
    if "a" not in sink._kwargs["mode"]:
        raise ProbeFailed(f"the restored log file sink would open its file in mode {sink._kwargs['mode']!r}, not append")
    folder = os.path.dirname(os.path.abspath(sink._path))
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
        raise ProbeFailed(f"the restored log file sink cannot write in {folder} here")


def probe_enqueued_handler(handler: Any) -> None:
    """Its worker thread takes from its queue: a confirmation put through it
    comes back (what `logger.complete()` waits for)."""
    _in_thread(handler.complete_queue)


def probe_listener(listener: Any) -> None:
    """Started, as it was saved: its thread is alive, taking from the queue.
    (No record is sent through it: that would reach the model's handlers.)"""
    if listener._thread is None or not listener._thread.is_alive():
        raise ProbeFailed("the restored queue listener has no running thread: what is queued is never handled")


def probe_mp_semaphore(sem: Any) -> None:
    """Counts like probe_semaphore's, through multiprocessing's own methods."""
    value = sem.get_value()
    _free_slot_taken(sem, value)
    if sem.get_value() != value:
        raise ProbeFailed(f"the semaphore's value changed from {value} to {sem.get_value()}")


def probe_mp_queue(q: Any) -> None:
    """What another thread puts comes out here, through the queue's pipe;
    items already in it are put back, in order (and marked done again)."""
    marker = f"ckpt-probe-{id(q)}"
    taken: list[Any] = []

    def take() -> None:
        while not (type(item := q.get()) is str and item == marker):
            taken.append(item)

    _in_thread(lambda: q.put(marker))
    _in_thread(take)
    for item in taken:
        q.put(item)
    for _ in range(len(taken) + 1 if hasattr(q, "task_done") else 0):
        q.task_done()


def probe_shared(shared: Any) -> None:
    """Its lock works, and another thread reads the same contents."""
    probe_lock(shared.get_lock())
    read = (lambda: shared[:]) if hasattr(shared, "__len__") else (lambda: shared.value)
    if _in_thread(read) != read():
        raise ProbeFailed("another thread read different contents from the shared memory")


def _on_fresh_loop(primitives: tuple[Any, ...], exercise: Callable[[Any], Any]) -> None:
    """Run the coroutine `exercise(asyncio)` on a new event loop in another
    thread, then unbind `primitives` from that loop as they were before.
    (asyncio is imported here, and handed over, only when there is an
    asyncio object to probe: ckpt does not import it otherwise.)"""
    import asyncio

    before = [vars(p).get("_loop", _UNBOUND) for p in primitives]

    async def bounded() -> None:
        try:
            await asyncio.wait_for(exercise(asyncio), TIMEOUT / 2)
        except asyncio.TimeoutError:
            raise ProbeFailed("a coroutine waiting on the restored primitive was never woken") from None

    try:
        _in_thread(lambda: asyncio.run(bounded()))
    finally:
        for primitive, loop in zip(primitives, before):
            if loop is _UNBOUND:
                vars(primitive).pop("_loop", None)
            else:
                primitive._loop = loop


_UNBOUND = object()


def probe_async_lock(lock: Any) -> None:
    """Excludes a second coroutine until the first releases it."""

    async def exercise(asyncio: Any) -> None:
        await lock.acquire()
        second = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        if second.done():
            raise ProbeFailed("a second coroutine acquired the asyncio lock while it was held")
        lock.release()
        await second
        lock.release()

    _on_fresh_loop((lock,), exercise)


def probe_async_condition(cond: Any) -> None:
    """A coroutine waiting on the condition wakes on notify."""

    async def exercise(asyncio: Any) -> None:
        async def waiter() -> None:
            async with cond:
                await cond.wait()

        task = asyncio.ensure_future(waiter())
        while not cond._waiters:
            await asyncio.sleep(0)
        async with cond:
            cond.notify_all()
        await task

    _on_fresh_loop((cond, cond._lock), exercise)


def probe_async_semaphore(sem: Any) -> None:
    """A coroutine gets a slot: at once if one is free, else when one is
    released; the value is the same after."""
    value = sem._value

    async def exercise(asyncio: Any) -> None:
        taker = asyncio.ensure_future(sem.acquire())
        await asyncio.sleep(0)
        if taker.done() != (value > 0):
            raise ProbeFailed(f"the asyncio semaphore has value {value}, but a coroutine "
                              f"{'could not take' if value else 'took'} a slot")
        sem.release()
        await taker

    _on_fresh_loop((sem,), exercise)
    if sem._value != value:
        raise ProbeFailed(f"the asyncio semaphore's value changed from {value} to {sem._value}")


def probe_async_event(event: Any) -> None:
    """Waiting returns at once if the flag is set; else a waiter wakes when
    it is set (and the flag is cleared again)."""
    flag = event.is_set()

    async def exercise(asyncio: Any) -> None:
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        if waiter.done() != flag:
            raise ProbeFailed("waiting on the asyncio event disagrees with its flag")
        if not flag:
            event.set()
            await waiter
            event.clear()

    _on_fresh_loop((event,), exercise)


def probe_async_queue(q: Any) -> None:
    """A waiting getter receives what is put; the items, their count of
    unfinished tasks and the finished flag are then put back as they were."""
    items, unfinished, finished = q._queue, q._unfinished_tasks, q._finished.is_set()
    marker = object()

    async def exercise(asyncio: Any) -> None:
        q._init(0)
        getter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        q.put_nowait(marker)
        if await getter is not marker:
            raise ProbeFailed("a waiting getter did not receive what was put into the asyncio queue")

    try:
        _on_fresh_loop((q,), exercise)
    finally:
        q._queue, q._unfinished_tasks = items, unfinished
        (q._finished.set if finished else q._finished.clear)()
