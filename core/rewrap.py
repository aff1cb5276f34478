"""How each thread kind is written into a checkpoint: tiny reduce functions.

Each `reduce_<kind>(obj)` returns a standard pickle reduce value built only
from stdlib callables, so the `data.pkl` inside a checkpoint loads with plain
`pickle.load` and nothing from ckpt installed. The catalog table points at
these; the pickler uses them; `register()` installs them into `copyreg`.

Kinds with no reducer here (Queue, Event, Semaphore, ...) need none: they
pickle as ordinary objects once their inner Lock / RLock / Condition are
rewrapped, which keeps a lock shared by a Queue's three Conditions one lock.

asyncio primitives are written as themselves without the event loop they
bound to and the futures waiting on them. multiprocessing primitives are
written as fresh local ones (their constructors, called with the saved
settings): a file outlives the processes that shared the originals.
"""

from __future__ import annotations

import _thread
import cmd
import collections
import copyreg
import functools
import inspect
import io
import logging
import queue
import sys
import threading
import types
import weakref
from collections.abc import Collection
from concurrent.futures import _base as futures_base
from typing import Any

from .graph import global_error
from .lazy import LazyConnection

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
    reducer; its stream is handled by `stream_treatment` (a standard stream
    is written as the std-stream row writes one: whatever wraps it, and
    past cloudpickle, whose own reducer for files comes before copyreg's)."""
    treatment = stream_treatment(handler)
    if treatment == "reopen":
        return _reopening_file_handler(handler)  # type: ignore[arg-type]
    if treatment == "strip":
        return default_reduce(handler, stream=None)
    if treatment == "std":
        rebind = reduce_std_stream(handler.stream)  # type: ignore[attr-defined]
        if isinstance(rebind, str):
            return default_reduce(handler)  # its stream is written by the std-stream row, as a global
        return default_reduce(handler, stream=Call(rebind[0], *rebind[1]))
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


def reduce_listener(listener: Any) -> tuple[Any, ...]:
    # Its thread is stripped: a QueueListener with no thread is a stopped one.
    return default_reduce(listener, _thread=None)


_ASYNC_WAITERS = ("_waiters", "_getters", "_putters")


def reduce_async(obj: Any, **changes: Any) -> tuple[Any, ...]:
    """The same asyncio primitive, unbound: no `_loop` (a loop of the saving
    process) and no waiting futures (coroutines that will not exist)."""
    state = {k: v for k, v in vars(obj).items() if k != "_loop"}
    state.update({k: collections.deque() for k in _ASYNC_WAITERS if state.get(k) is not None})
    return copyreg.__newobj__, (type(obj),), state | changes  # type: ignore[attr-defined]


def reduce_async_lock(lock: Any) -> tuple[Any, ...]:
    return reduce_async(lock, _locked=False)


def reduce_async_queue(q: Any) -> tuple[Any, ...]:
    # Items taken but never marked done belong to coroutines that are gone:
    # only the items still queued count as unfinished.
    return reduce_async(q, _unfinished_tasks=q.qsize())


def _mp_fresh(cls: type, made_like: Any, *args: Any) -> tuple[Any, ...]:
    """`cls(*args, ctx=...)`: a fresh primitive for the kind of context the
    lock or semaphore `made_like` was made in. One made for fork cannot be
    handed to a spawned process and the other way round, so that much is
    kept; spawn or forkserver makes no difference to it. (Where Python does
    not record it, a semaphore made for fork is the one with no name.)"""
    from multiprocessing import context

    unnamed = sys.platform != "win32" and made_like._semlock.name is None
    ctx = context.ForkContext() if getattr(made_like, "_is_fork_ctx", unnamed) else context.SpawnContext()
    return functools.partial(cls, ctx=ctx), args


def reduce_mp_lock(lock: Any) -> tuple[Any, ...]:
    return _mp_fresh(type(lock), lock)


def reduce_mp_semaphore(sem: Any) -> tuple[Any, ...]:
    """A Semaphore keeps its value. A BoundedSemaphore's constructor takes
    one number, its bound: it is restored with every slot free (the slots'
    holders were processes of the saving run)."""
    semlock = sem._semlock
    bounded = semlock.maxvalue != semlock.SEM_VALUE_MAX
    return _mp_fresh(type(sem), sem, semlock.maxvalue if bounded else semlock._get_value())


def reduce_mp_condition(cond: Any) -> tuple[Any, ...]:
    # The lock goes through the memo (and its own row), so a shared lock stays shared.
    return _mp_fresh(type(cond), cond._wait_semaphore, cond._lock)


def reduce_mp_barrier(barrier: Any) -> tuple[Any, ...]:
    return _mp_fresh(type(barrier), barrier._cond._wait_semaphore, barrier._parties, barrier._action,
                     barrier._timeout)


def reduce_mp_queue(q: Any) -> tuple[Any, ...]:
    """A fresh, empty queue: its items are in a pipe other processes read
    from, and reading them at save time would take them from those processes."""
    return _mp_fresh(type(q), q._rlock, *([q._maxsize] if hasattr(q, "_maxsize") else []))


def reduce_mp_shared(shared: Any) -> tuple[Any, ...]:
    """`multiprocessing.Value(typecode, value, lock=<its lock>)`, or `Array`
    of its items: fresh shared memory with the same contents; the lock goes
    through its own row (and the memo: a lock two of them share stays one)."""
    from multiprocessing import sharedctypes

    obj = shared._obj
    make: Any
    if isinstance(shared, sharedctypes.SynchronizedArray):
        make, args = sharedctypes.Array, (typecode(obj._type_), list(obj))
    else:
        make, args = sharedctypes.Value, (typecode(type(obj)), obj.value)
    return functools.partial(make, lock=shared._lock), args


def typecode(ctype: type) -> Any:
    """The typecode multiprocessing names a ctypes type by ('i', 'd'), or the type itself."""
    from multiprocessing import sharedctypes

    codes = {t: code for code, t in reversed(sharedctypes.typecode_to_type.items())}  # type: ignore[attr-defined]
    return codes.get(ctype, ctype)


def stream_treatment(handler: logging.Handler) -> str:
    """What happens to a handler's stream: "reopen" (a file handler reopens
    its file lazily, in append mode, on the first record after load),
    "std" (a standard stream: bound to the loading process's), "strip" (an
    open stream that cannot be carried), or "keep" (no stream, or a picklable one)."""
    stream = getattr(handler, "stream", None)
    if isinstance(handler, logging.FileHandler):
        return "reopen"
    if stream is not None and std_stream_name(stream):  # even one that is no file: Ray's workers wrap sys.stderr
        return "std"
    if stream is None or not isinstance(stream, io.IOBase) or isinstance(stream, (io.StringIO, io.BytesIO)):
        return "keep"
    return "strip"


# --- standard streams ---------------------------------------------------------

_STD_STREAMS = ("stdin", "stdout", "stderr")


def std_stream_name(obj: Any) -> str | None:
    """"stdout" if `obj` is this process's `sys.stdout` or `sys.__stdout__`
    (likewise stdin, stderr); None for any other object, open files included."""
    for name in _STD_STREAMS:
        if obj is getattr(sys, name, None) or obj is getattr(sys, f"__{name}__", None):
            return name
    return None


def reduce_std_stream(stream: Any) -> str | tuple[Any, ...]:
    """The loading process's stream of the same name: the global
    `sys.stdout` (stdin, stderr) when `stream` is that stream now. The C
    pickler writes a global only for the object it names, found through
    its `__module__` if it has one: so `sys.__stdout__` while `sys.stdout`
    is redirected, and a redirecting stream of a class of its own (pytest's
    capture), are read from an object whose constructor picks them up:
    `logging.StreamHandler().stream` is `sys.stderr`, `cmd.Cmd().stdout`
    and `.stdin` are `sys.stdout` and `sys.stdin` (that spelling loads
    only whole: the data-only loader calls no handler's constructor)."""
    name = std_stream_name(stream)
    if name is not None and stream is getattr(sys, name) and getattr(stream, "__module__", None) is None:
        return name
    if name == "stderr":
        return getattr, (Call(logging.StreamHandler), "stream")
    return getattr, (Call(cmd.Cmd), name)



# --- tqdm progress bars ----------------------------------------------------------

BAR_SETTINGS = ("total", "desc", "unit", "unit_scale", "leave", "disable", "ascii", "bar_format")
"""What a restored tqdm bar keeps as it was, when a plain value (besides its count, width, stream and delay)."""
PLAIN = (int, float, str, bool, type(None))
QUIET_DELAY = 0.001
"""The least `delay` a restored bar gets: tqdm prints a bar in its constructor
unless delay > 0, and then first at an update after the delay, so loading
prints nothing. (Not smaller: added to a timestamp, 1e-9 would vanish.)"""


def bar_stream(bar: Any) -> Any:
    """The stream a tqdm bar writes to, unwrapped from its DisableOnWriteError."""
    return getattr(bar.fp, "_wrapped", bar.fp)


def reduce_progress_bar(bar: Any) -> tuple[Any, ...]:
    """`type(bar)(**settings)` through functools.partial: a fresh bar at the
    saved count (as `initial`), writing to the loading process's stream of
    the same name (the stream goes through the std-stream row), and quiet
    at load (`QUIET_DELAY`). Only plain values: the restricted loader's guard
    admits nothing else. Its width is kept unless it was measured
    (`dynamic_ncols`); its position is left to tqdm, postfix and rate history
    are not carried."""
    settings = {name: getattr(bar, name) for name in BAR_SETTINGS}
    settings["initial"] = bar.n
    if not bar.dynamic_ncols:
        settings["ncols"] = bar.ncols
    settings = {name: value for name, value in settings.items() if type(value) in PLAIN}
    stream = bar_stream(bar)
    if std_stream_name(stream) in ("stdout", "stderr"):
        settings["file"] = stream
    settings["delay"] = max(bar.delay, QUIET_DELAY)
    cls: type = type(bar)
    return functools.partial(cls, **settings), ()


# --- weak references and containers ------------------------------------------


def saved_anyway(obj: Any, saved: Collection[int]) -> bool:
    """Whether `obj` is in the checkpoint without the weak references to it:
    strongly reachable in the saved graph (`saved`: ids), or a class or
    function pickle names (it exists wherever the checkpoint loads)."""
    if id(obj) in saved:
        return True
    return isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) and global_error(obj) is None


def weak_referents(obj: Any) -> list[Any]:
    """The objects a weak reference or container refers to weakly."""
    if isinstance(obj, weakref.ref):
        referent = _referent(obj)
        return [] if referent is None else [referent]
    if isinstance(obj, weakref.WeakValueDictionary):
        return list(obj.values())
    if isinstance(obj, weakref.WeakKeyDictionary):
        return list(obj.keys())
    return list(obj)  # WeakSet


def reduce_weakref(ref: Any, saved: Collection[int]) -> tuple[Any, ...]:
    """A live reference to the restored referent when that is saved anyway
    (a WeakMethod to the restored bound method's object); otherwise a dead
    reference: `weakref.ref(set())`, whose set only the load holds, so it is
    gone when the load returns, as if its referent had been collected.
    Callbacks are not carried."""
    referent = _referent(ref)
    if referent is None or not saved_anyway(referent, saved):
        return weakref.ref, (Call(set),)
    if isinstance(ref, weakref.WeakMethod):
        return weakref.WeakMethod, (ref(),)
    return weakref.ref, (referent,)


def _referent(ref: weakref.ref) -> Any:  # type: ignore[type-arg]
    """What `ref` refers to: for a WeakMethod, the method's object (calling
    it makes a new bound method each time), if its function is alive too."""
    if isinstance(ref, weakref.WeakMethod):
        return weakref.ref.__call__(ref) if ref() is not None else None
    return ref()


_WEAK_INTERNALS = frozenset({"data", "_remove", "_pending_removals", "_iterating", "_dirty"})
"""What WeakValueDictionary, WeakKeyDictionary and WeakSet keep in their own __dict__."""


def reduce_weak_container(container: Any, saved: Collection[int]) -> tuple[Any, ...]:
    """The same kind of container, built with the entries whose weakly held
    objects are saved anyway; the others are dropped (and counted by save).
    Attributes a subclass adds are kept."""
    if isinstance(container, weakref.WeakValueDictionary):
        kept: Any = {k: v for k, v in container.items() if saved_anyway(v, saved)}
    elif isinstance(container, weakref.WeakKeyDictionary):
        kept = {k: v for k, v in container.items() if saved_anyway(k, saved)}
    else:
        kept = [x for x in container if saved_anyway(x, saved)]
    extra = {k: v for k, v in vars(container).items() if k not in _WEAK_INTERNALS}
    return (type(container), (kept,), extra) if extra else (type(container), (kept,))


# --- ssl ------------------------------------------------------------------------

_SERVER_AUTH_OID = "1.3.6.1.5.5.7.3.1"
"""ssl.Purpose.SERVER_AUTH's OID: `ssl._ASN1Object(oid)` is equal to the
member (the member itself does not survive pickle: its value's pickled form
does not match `_ASN1Object.__new__`)."""


def reduce_ssl_context(ctx: Any) -> tuple[Any, ...]:
    """`create_default_context(SERVER_AUTH)` (verifying, hostnames checked,
    the system's CAs) for a context that verifies, `_create_unverified_context(
    protocol)` for one that does not: one call of a function of fixed
    behaviour, with one argument and no state, so a file cannot set
    `keylog_filename` (which opens a file) or load certificates from paths
    or data of its own. (The catalog row applies only where that is at
    least as strict as the saved context.)"""
    import ssl  # imported already: the context is one of its objects

    if ctx.verify_mode == ssl.CERT_NONE:
        return ssl._create_unverified_context, (ctx.protocol,)
    return ssl.create_default_context, (Call(ssl._ASN1Object, _SERVER_AUTH_OID),)


# --- sqlite ---------------------------------------------------------------------


def sqlite_file(conn: Any) -> str | None:
    """The file of a connection's main database: "" for an in-memory or
    temporary one; None when it cannot be asked (closed, or another
    thread's connection)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except Exception:  # sqlite3.ProgrammingError: closed, or check_same_thread
        return None
    return row[2] if row is not None else None


def reduce_sqlite(conn: Any) -> tuple[Any, ...]:
    """A connection that reopens its file on first use (`lazy`): nothing is
    opened at load. A restored one is written the same way, unopened or not."""
    if isinstance(conn, LazyConnection):
        return LazyConnection, (conn.database, dict(conn.options))
    return LazyConnection, (sqlite_file(conn), {"isolation_level": conn.isolation_level})
