"""How each catalog kind is written into a checkpoint: tiny reduce functions.

Each `reduce_<kind>(obj)` returns a standard pickle reduce value built only
from stdlib callables (and the library's own classes), so the `data.pkl`
inside a checkpoint loads with plain `pickle.load` and nothing from ckpt
installed, except what reopens lazily (`lazy`: database files, files read
from). The catalog table points at these; the pickler uses them;
`register()` installs them into `copyreg`.

Kinds with no reducer here (Queue, Event, Semaphore, ...) need none: they
pickle as ordinary objects once their inner Lock / RLock / Condition are
rewrapped, which keeps a lock shared by a Queue's three Conditions one lock.

asyncio primitives are written as themselves without the event loop they
bound to and the futures waiting on them. multiprocessing primitives are
written as fresh local ones (their constructors, called with the saved
settings): a file outlives the processes that shared the originals.
Connection pools are written empty, and executors and queues served by a
worker are made again by their constructors, which start the worker.
"""

from __future__ import annotations

import _thread
import cmd
import collections
import copyreg
import functools
import importlib
import inspect
import io
import logging
import operator
import os
import queue
import stat
import sys
import threading
import types
import weakref
from collections.abc import Collection
from concurrent.futures import _base as futures_base
from typing import Any

from ckpt.kinds.lazy import READ_MODES, LazyConnection, LazyFile, LazySession
from ckpt.objects.decompose import global_error

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


class Rebuilt:
    """Placeholder pickled as an instance of `cls` given `state`, as pickle
    writes a plain instance (NEWOBJ, then BUILD): a changed copy of an
    object (a pool's queue with its connections taken out), written
    without making the copy. Pickle checks that the class NEWOBJ makes is
    the `__class__` of the object it writes: the placeholder answers with
    the class it stands for."""

    __slots__ = ("cls", "state")

    def __init__(self, cls: type, state: dict[str, Any]) -> None:
        self.cls = cls
        self.state = state

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return self.cls

    def __reduce__(self) -> tuple[Any, ...]:
        return copyreg.__newobj__, (self.cls,), self.state  # type: ignore[attr-defined]


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
    """A fresh thread-local of the same class, empty in every thread; a
    subclass whose `__init__` requires arguments (rich's dataclass
    `ConsoleThreadLocals(theme_stack=...)`) gets them from this thread's
    attributes of the same names, since `threading.local` calls `__init__`
    again, with the arguments it was made with, in each thread that uses it."""
    arguments = local_arguments(local)
    if arguments:
        return functools.partial(type(local), **arguments), ()
    return type(local), ()


def local_arguments(local: threading.local) -> dict[str, Any]:
    """The arguments without a default that the `__init__` of `local`'s class
    takes by keyword, from this thread's attributes of those names (a
    required one it has no attribute for is left out: the call fails at load
    as it would have at construction)."""
    init = type(local).__init__
    if not isinstance(init, types.FunctionType):  # threading.local's own: it takes none
        return {}
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    state = vars(local)
    required = [p.name for p in list(inspect.signature(init).parameters.values())[1:]
                if p.default is p.empty and p.kind in keyword]
    return {name: state[name] for name in required if name in state}


def reduce_future(future: Any) -> tuple[Any, ...]:
    # A future nobody will complete would hang every waiter: cancel it.
    state = future._state
    if state in (futures_base.PENDING, futures_base.RUNNING):
        state = futures_base.CANCELLED
    return default_reduce(future, _state=state, _waiters=[], _done_callbacks=[])


def reduce_handler(handler: logging.Handler) -> tuple[Any, ...]:
    """A handler keeps its configuration; its lock is rewrapped by the RLock
    reducer; its stream is handled by `stream_treatment`. A plain
    `StreamHandler` on stderr (logging's default) is rebuilt by its own
    constructor, which picks up the loading process's stderr: no global of
    `sys` (which the model hubs' scanners flag) and no `getattr`. Another
    standard stream is written as the std-stream row writes one (whatever
    wraps it, and past cloudpickle, whose own reducer for files comes
    before copyreg's)."""
    treatment = stream_treatment(handler)
    if treatment == "reopen":
        return _reopening_file_handler(handler)  # type: ignore[arg-type]
    if treatment == "strip":
        return default_reduce(handler, stream=None)
    if treatment == "std" and type(handler) is logging.StreamHandler and std_stream_name(handler.stream) == "stderr":
        return logging.StreamHandler, (), {k: v for k, v in vars(handler).items() if k not in ("stream", "lock")}
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
    """A started listener, started again: its state as saved (queue and
    handlers) with no thread, then its own `start()` once it is built, which
    gives it a new thread. Spelled like the SimpleQueue's refill,

        next(iter([restored, QueueListener.start(restored)]))

    which evaluates to the restored listener after starting it."""
    restored = Rebuilt(type(listener), {**vars(listener), "_thread": None})
    return next, (Call(iter, [restored, Call(type(listener).start, restored)]),)


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
    """The objects a weak reference, proxy or container refers to weakly."""
    if isinstance(obj, (weakref.ref, *PROXY_TYPES)):
        referent = _referent(obj) if isinstance(obj, weakref.ref) else proxy_referent(obj)
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


PROXY_TYPES = (weakref.ProxyType, weakref.CallableProxyType)


def proxy_referent(proxy: Any) -> Any:
    """What a `weakref.proxy` stands for, or None once that is gone. A proxy
    forwards every attribute to its referent and has no way to hand the
    referent itself over, but the referent's own `__reduce_ex__`, taken
    through the proxy, is bound to it; the proxy's repr, which ends with
    the referent's address, confirms it is that object."""
    try:
        referent = getattr(proxy.__reduce_ex__, "__self__", None)
    except ReferenceError:
        return None
    if referent is None or not repr(proxy).endswith(f" at {id(referent):#x}>"):
        return None
    return referent


def reduce_weak_proxy(proxy: Any, saved: Collection[int]) -> tuple[Any, ...]:
    """A proxy to the restored referent when that is saved anyway; otherwise
    a dead proxy (to a set only the load holds), which raises ReferenceError
    when used, as the original would once its referent was collected. Plain
    pickle would write a copy of the referent in the proxy's place: an object
    apart from the model, the cycle through it broken."""
    referent = proxy_referent(proxy)
    if referent is None or not saved_anyway(referent, saved):
        return weakref.proxy, (Call(set),)
    return weakref.proxy, (referent,)


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


# --- objects whose __getattr__ recurses before their state is set -------------


def asks_bare_instance(cls: type) -> bool:
    """Whether loading an instance of `cls` with pickle's own BUILD would
    recurse without end: BUILD first asks the new, empty instance for
    `__setstate__`, which a class without one answers through its
    `__getattr__`; pymongo's Database and Collection read `self._name`
    there, which is not set yet, so they ask again, and again. Found by
    asking an empty instance once, here, as the load would."""
    getattr_ = getattr(cls, "__getattr__", None)
    if not isinstance(getattr_, types.FunctionType) or hasattr(cls, "__setstate__"):
        return False
    if cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__new__ is not object.__new__:
        return False
    try:
        getattr(object.__new__(cls), "__setstate__", None)
    except RecursionError:
        return True
    except Exception:  # it raised, as the load would: pickle passes that on
        return False
    return False


def reduce_with_state_setter(obj: Any) -> Any:
    """pickle's own reduction, its state applied by `set_state` instead of BUILD."""
    value = obj.__reduce_ex__(5)
    if not isinstance(value, tuple) or len(value) < 3 or value[2] is None or len(value) == 6:
        return value
    return (*value, *(None,) * (5 - len(value)), set_state)


def set_state(obj: Any, state: Any) -> None:
    """What BUILD does for an object with no `__setstate__`, without asking it for one."""
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        obj.__dict__.update(state)
    for name, value in (slots or {}).items():
        setattr(obj, name, value)


# --- objects whose __new__ takes arguments pickle does not give ---------------------


def new_needs_arguments(cls: type) -> bool:
    """Whether pickle's own reduction of an instance of `cls` fails at load:
    it writes `cls.__new__(cls)` (NEWOBJ), and a `__new__` that needs more
    (jinja2's `Template.__new__(cls, source)`) raises TypeError there. Only
    plain Python classes that leave pickling to `object` are concerned."""
    if cls.__new__ is object.__new__ or _builtin_base(cls) is not object:
        return False
    if cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__:
        return False
    if hasattr(cls, "__getnewargs_ex__") or hasattr(cls, "__getnewargs__"):
        return False
    try:
        parameters = list(inspect.signature(cls.__new__).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    required = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                inspect.Parameter.KEYWORD_ONLY)
    return any(p.default is inspect.Parameter.empty and p.kind in required for p in parameters)


def _builtin_base(cls: type) -> type:
    """The first class in `cls`'s MRO that is not defined in Python, found as
    copyreg finds it (a heap type is one a class statement made)."""
    return next(base for base in cls.__mro__ if not base.__flags__ & _HEAPTYPE)


def reduce_without_new(obj: Any) -> Any:
    """pickle's own reduction, the instance made as `object.__new__(cls)`
    (`copyreg._reconstructor`, pickle's own spelling of it) rather than by
    the class's `__new__`; its state is then set as usual."""
    value = obj.__reduce_ex__(5)
    if isinstance(value, tuple) and len(value) >= 2 and value[0] is _NEWOBJ and len(value[1]) == 1:
        return (_RECONSTRUCTOR, (value[1][0], object, None), *value[2:])
    return value


_NEWOBJ = getattr(copyreg, "__newobj__")  # none of these is in typeshed's copyreg
_RECONSTRUCTOR = getattr(copyreg, "_reconstructor")
_HEAPTYPE = getattr(copyreg, "_HEAPTYPE")


# --- lru_cache wrappers made at run time ---------------------------------------


def reduce_lru_cache(cached: Any) -> tuple[Any, ...]:
    """A `functools.lru_cache` wrapper that pickle cannot name (one made at
    run time, around a bound method or a local function: pickle writes a
    wrapper by its qualified name, which finds the undecorated function or
    nothing): the same function wrapped again, with the same maxsize and
    typed, its cache empty."""
    parameters = cached.cache_parameters()
    decorator = Call(functools.lru_cache, parameters["maxsize"], parameters["typed"])
    return operator.call, (decorator, cached.__wrapped__)


# --- TorchScript ------------------------------------------------------------------


def reduce_script_module(module: Any) -> tuple[Any, ...]:
    """A TorchScript module (scripted or traced) as `torch.jit.save` writes
    it, its code, parameters, buffers and submodules, read back by
    `torch.jit.load`: its state lives in C++, which pickle cannot take apart."""
    import torch

    archive = io.BytesIO()
    torch.jit.save(module, archive)
    return torch.jit.load, (Call(io.BytesIO, archive.getvalue()),)


# --- modules ---------------------------------------------------------------------


def reduce_module(module: types.ModuleType) -> tuple[Any, ...]:
    """Imported by its name where the file loads, as cloudpickle writes a module
    (the functions saved by value read modules among their globals)."""
    return importlib.import_module, (module.__name__,)


# --- database connections, files read from, aiohttp sessions: made on first use ---


def sqlite_file(conn: Any) -> str | None:
    """The file of a connection's main database: "" for an in-memory or
    temporary one; None when it cannot be asked (closed, or another
    thread's connection)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except Exception:  # sqlite3.ProgrammingError: closed, or check_same_thread
        return None
    return row[2] if row is not None else None


def duckdb_file(conn: Any) -> tuple[str, bool] | None:
    """The file of a duckdb connection's database and whether it was opened
    read-only; None for an in-memory database or a closed connection. Asked
    on a cursor of its own (duckdb's duplicate connection to the same
    database), so a result the connection holds is left for its owner to fetch."""
    try:
        cursor = conn.cursor()
    except Exception:  # duckdb.ConnectionException: closed
        return None
    try:
        row = cursor.execute("select path, readonly from duckdb_databases() "
                             "where database_name = current_database()").fetchone()
    finally:
        cursor.close()
    return (row[0], bool(row[1])) if row is not None and row[0] else None


def _lazy_again(conn: LazyConnection) -> tuple[Any, ...]:
    """A restored connection is written as it was made, opened since or not."""
    return LazyConnection, (conn.database, dict(conn.options), conn.driver)


def reduce_sqlite(conn: Any) -> tuple[Any, ...]:
    """A connection that reopens its file on first use (`lazy`): nothing is opened at load."""
    if isinstance(conn, LazyConnection):
        return _lazy_again(conn)
    return LazyConnection, (sqlite_file(conn), {"isolation_level": conn.isolation_level}, "sqlite3")


def reduce_duckdb(conn: Any) -> tuple[Any, ...]:
    """As `reduce_sqlite`: the same file, read-only if it was opened so."""
    if isinstance(conn, LazyConnection):
        return _lazy_again(conn)
    path, read_only = duckdb_file(conn)  # type: ignore[misc]  # the row applies only to a file
    return LazyConnection, (path, {"read_only": read_only}, "duckdb")


def read_mode(file: Any) -> str | None:
    """How a file of the read-file row was opened ("r" or "rb"), or None if it
    does not qualify: open, for reading only, by the path of a regular file
    that is still the file it opened (not replaced, deleted, or relative to
    another directory since), and able to say where it is (a text file read
    with next() cannot)."""
    if isinstance(file, LazyFile):
        return file.mode
    name, mode = getattr(file, "name", None), getattr(file, "mode", None)
    if not isinstance(name, str) or mode not in READ_MODES or file.closed:
        return None
    try:
        opened, named = os.fstat(file.fileno()), os.stat(name)
        file.tell()
    except OSError:
        return None
    return mode if stat.S_ISREG(opened.st_mode) and os.path.samestat(opened, named) else None


def reduce_read_file(file: Any) -> tuple[Any, ...]:
    """A file that reopens its path on first use, at the position it was at:
    its absolute path (the loading process may run elsewhere), its mode, and
    a text file's encoding and errors. What was buffered is read again."""
    if isinstance(file, LazyFile):
        position = file.resource.tell() if file.opened else file.position
        return LazyFile, (file.path, file.mode, position, dict(file.options))
    mode = read_mode(file)
    options = {} if "b" in mode else {"encoding": file.encoding, "errors": file.errors}  # type: ignore[operator]
    return LazyFile, (os.path.abspath(file.name), mode, file.tell(), options)


def reduce_aiohttp_session(session: Any) -> tuple[Any, ...]:
    """A session made again on first use, in the loop that uses it (`lazy`),
    with the settings it was made with: base URL, default headers, timeout,
    auth, raise_for_status (when it is True or False: a callback is not
    carried), trust_env, the connector's limits, and its cookies (by domain
    and path, as its jar keeps them)."""
    if isinstance(session, LazySession):
        return LazySession, (dict(session.options),)
    options: dict[str, Any] = {
        "headers": list(session._default_headers.items()), "timeout": session._timeout,
        "raise_for_status": session._raise_for_status is True, "trust_env": session._trust_env,
        "jar": {"unsafe": getattr(session._cookie_jar, "_unsafe", False),
                "cookies": dict(getattr(session._cookie_jar, "_cookies", {}))},
    }
    if session._base_url is not None:
        options["base_url"] = str(session._base_url)
    if session._default_auth is not None:
        options["auth"] = session._default_auth
    connector = session._connector
    if connector is not None and hasattr(connector, "limit_per_host"):
        options["connector"] = {"limit": connector.limit, "limit_per_host": connector.limit_per_host}
    return LazySession, (options,)


# --- pools of live connections: kept, emptied -------------------------------------

POOLED = {
    "urllib3.connectionpool.HTTPConnectionPool": ("pool",),
    "httpcore.ConnectionPool": ("_connections", "_requests"),
    "httpcore.AsyncConnectionPool": ("_connections", "_requests"),
    "httpcore2.ConnectionPool": ("_connections", "_requests"),
    "httpcore2.AsyncConnectionPool": ("_connections", "_requests"),
    "redis.connection.ConnectionPool": ("_available_connections", "_in_use_connections", "_created_connections",
                                        "pool", "_connections"),
    "redis.asyncio.connection.ConnectionPool": ("_available_connections", "_in_use_connections"),
}
"""The connection pools ckpt knows (the connection-pool row matches these
classes), and the attributes where each keeps its connections, or counts
them: what the rewrap empties. (httpx's clients hold httpcore's pools,
openai's and anthropic's those of their forks, httpx2 and httpcore2;
requests' adapters drop their urllib3 pools themselves.)"""


def pooling(pool: Any) -> list[str]:
    """The attributes of `pool` that hold or count its connections: those of
    the first class in its MRO that POOLED names (each library is imported:
    it made the pool)."""
    for cls in type(pool).__mro__:
        for dotted, names in POOLED.items():
            module, _, qualname = dotted.rpartition(".")
            if getattr(sys.modules.get(module), qualname, None) is cls:
                return [name for name in names if name in vars(pool)]
    return []


def pooled_connections(pool: Any) -> list[Any]:
    """The connections a pool holds (idle, in use, or requests waiting for one), each once."""
    found: dict[int, Any] = {}
    for name in pooling(pool):
        value = getattr(pool, name)
        items = value.queue if isinstance(value, queue.Queue) else () if isinstance(value, int) else value
        found.update((id(item), item) for item in list(items) if item is not None)
    return list(found.values())


def _emptied(value: Any) -> Any:
    """What a pool's attribute holds with no connection: a count is 0; a
    queue holds a free slot (None) for each of its maxsize, as the pool's
    constructor fills it; a list or set is empty, a weak set too."""
    if isinstance(value, int):
        return 0
    if isinstance(value, queue.Queue):
        return Rebuilt(type(value), {**vars(value), "queue": type(value.queue)([None] * value.maxsize)})
    if type(value) in (list, set):
        return type(value)()
    return Call(type(value), [])


def reduce_connection_pool(pool: Any) -> tuple[Any, ...]:
    """The same pool, its settings, locks and SSL context kept, with no
    connection in it: its sockets (and an async pool's event-loop transports)
    belong to the saving process, so the client opens a new connection on
    its first request after load."""
    return default_reduce(pool, **{name: _emptied(getattr(pool, name)) for name in pooling(pool)})


# --- worker-backed executors and queues: started again -------------------------


def reduce_process_pool(pool: Any) -> tuple[Any, ...]:
    """A fresh executor with the saved settings (max_workers, the kind of
    context, initializer and its arguments, max_tasks_per_child): its worker
    processes, and the pipes and queues that reach them, belong to the
    saving run. Pickled as they are, those pipe ends would carry their file
    descriptor numbers, which name other files (or none) in the loading
    process, and close them when collected."""
    settings = {"max_workers": pool._max_workers, "mp_context": pool._mp_context,
                "initializer": pool._initializer, "initargs": pool._initargs,
                "max_tasks_per_child": pool._max_tasks_per_child}
    cls: type = type(pool)
    return functools.partial(cls, **settings), ()


def handler_settings(handler: Any) -> dict[str, Any]:
    """A loguru handler's constructor arguments, as it keeps them (`filter_` as `_filter`)."""
    parameters = inspect.signature(type(handler).__init__).parameters
    return {name: getattr(handler, "_" + name.rstrip("_")) for name in parameters if name != "self"}


def reduce_enqueued_handler(handler: Any) -> tuple[Any, ...]:
    """A loguru handler added with enqueue=True, made again by its
    constructor: a fresh queue with its worker thread, writing to the same
    sink. (loguru's own pickling leaves the sink and thread behind, for a
    child process that hands its messages to its parent's worker: loaded
    anywhere else, nothing takes them from the queue, and
    `logger.complete()` waits forever.)"""
    cls: type = type(handler)
    return functools.partial(cls, **handler_settings(handler)), ()


def reduce_file_sink(sink: Any) -> tuple[Any, ...]:
    """A loguru file sink unopened, as `delay=True` makes one: it opens its
    path (rotation, retention and compression kept) on the first message
    after load, in append mode, so a sink that truncated its file at the
    start of the saving run does not truncate it again."""
    kwargs = {**sink._kwargs, "mode": sink._kwargs["mode"].replace("w", "a")}
    return default_reduce(sink, _file=None, _file_path=None, _file_dev=-1, _file_ino=-1, _kwargs=kwargs)
