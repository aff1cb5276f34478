"""The catalog: ONE table of every kind of object ckpt knows.

Scan reads it to name what it finds, save (the pickler) to rewrap or strip,
suggest to write the hand fix, verify to exercise what was restored, the
data-only loader to admit what a rewrap writes, and the "What happens to each
kind" table in docs/KINDS.md is generated from it. A kind is one row, and
everything it needs lives in this folder: the row names its reducer
(`rewrap`) and its probe (`probes`) and carries the reviewed entries its
rewrap writes (`admits`); nothing else lists kinds.

A row matches by type, including subclasses, unless the subclass takes care
of its own pickling (defines `__reduce__`, `__reduce_ex__` or `__getstate__`)
or `copyreg` has a reducer for it: then plain pickle succeeds on it and ckpt
leaves it alone (no false positive). Several rows may match one type: the
first whose `applies` accepts the object is its kind (the process's
standard streams, then files open for reading, before other open files; a
sqlite file before an in-memory database).
"""

from __future__ import annotations

import copyreg
import enum
import functools
import os
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ckpt.kinds import byvalue, probes, rewrap
from ckpt.kinds.lazy import LazyConnection, LazyFile
from ckpt.objects.decompose import PROTOCOL, global_error
from ckpt.objects.paths import Edge
from ckpt.trust.entries import CLASS, CONSTANT, FUNCTION, Entry, classes, functions


class Action(str, enum.Enum):
    """What `ckpt save` does with an object of a kind."""

    REWRAP = "rewrap"  # written as a fresh equivalent built from stdlib constructors
    BY_VALUE = "by-value"  # code written into the file (cloudpickle's reducers): loads only from a trusted signer
    STRIP = "strip"  # written as None, and reported
    REMOVE = "remove"  # a stripped callable left out of its registry: what a strip does there, no kind's action
    ERROR = "error"  # save refuses, unless the user passes --strip PATH


@dataclass(frozen=True, eq=False)
class Kind:
    """One row of the catalog."""

    name: str
    """Stable identifier: finding kind, SARIF rule id, docs."""
    types: tuple[str, ...]
    """Dotted names of the matched classes (subclasses match too)."""
    action: Action
    lost: str
    """What a checkpoint does not carry over, in a few words."""
    advice: str
    """What the user can do about it."""
    reduce: Callable[..., Any] | None = None
    """Rewrap: how the pickler writes it. None: pickled as an ordinary object,
    its inner Lock / RLock / Condition rewrapped by their own rows."""
    weak: bool = False
    """A weak reference or container: `reduce(obj, saved)` also takes the ids
    of the objects the checkpoint holds anyway, whose entries it keeps."""
    internal: frozenset[str] = frozenset()
    """Attributes the rewrap rebuilds by itself; scan does not look inside them."""
    payload: Callable[[Any], Iterable[tuple[Edge, Any]]] | None = None
    """What scan walks under a found object. Default: for rewrap kinds, the
    instance attributes except `internal`; otherwise nothing."""
    note: Callable[[Any], str] | None = None
    """A remark on this particular object at save time (a held lock, lost work)."""
    probe: Callable[[Any], None] | None = None
    """Verify: raises probes.ProbeFailed if a restored object does not work."""
    applies: Callable[[Any], bool] | None = None
    """Narrows a type match (a function is only a finding if pickle cannot name it)."""
    admits: tuple[Entry, ...] = ()
    """The globals the rewrap writes that a file from anyone may use (entries
    of the reviewed table, each with its reason). What it writes beyond them
    loads from a signer you trust, or with --trust."""
    keep: str | None = None
    """Suggest: expression to keep in `__getstate__` (`{obj}` is the attribute)."""
    recreate: str = "{target} = None"
    """Suggest: statements for `__setstate__` (`{target}`, `{saved}`, `{type}`, `{inner}`)."""
    inner: str | None = None
    """Suggest: the attribute holding a primitive this one is built on (a
    Condition's lock); `{inner}` names it when the same instance holds it too."""
    for_files: bool = False
    """The rewrap suits a file only: `register()` leaves the type to pickle, since
    multiprocessing hands such an object to the child it starts as the same one."""

    def walk_payload(self, obj: Any) -> Iterable[tuple[Edge, Any]]:
        if self.payload is not None:
            return self.payload(obj)
        if self.action is Action.REWRAP and hasattr(obj, "__dict__"):
            return [(("attr", k), v) for k, v in vars(obj).items() if k not in self.internal]
        return ()

    def remark(self, obj: Any) -> str:
        return self.note(obj) if self.note else ""


def _held(lock: Any) -> str:
    return "held at save time: restored unlocked" if _locked(lock) else ""


def _locked(lock: Any) -> bool:
    """Held, for every kind of lock: threading's and asyncio's say so, an
    RLock only in its repr, a multiprocessing one by its semaphore at zero."""
    if hasattr(lock, "locked"):
        return bool(lock.locked())
    if hasattr(lock, "_semlock"):
        return bool(lock._semlock._is_zero())
    return repr(lock).startswith("<locked")


def _queue_note(q: Any) -> str:
    return f"{q.qsize()} item(s) kept"


def _semaphore_note(sem: Any) -> str:
    bound = getattr(sem, "_initial_value", getattr(sem, "_bound_value", None))
    return f"value {sem._value}" + (f" of {bound}" if bound is not None else "")


def _bound_to_loop(obj: Any) -> bool:
    """An asyncio primitive pickles until it first waits in an event loop,
    which binds it (`_loop`): before that it is no finding, and plain pickle
    writes it as it is."""
    return getattr(obj, "_loop", None) is not None


def _loop_note(loop: Any) -> str:
    state = "running" if loop.is_running() else "closed" if loop.is_closed() else "not running"
    return f"event loop ({state})"


def _async_future_note(future: Any) -> str:
    name = f"task {future.get_name()!r}" if hasattr(future, "get_name") else "future"
    return f"{name} ({'done' if future.done() else 'pending'})"


def _started(listener: Any) -> bool:
    """A stopped QueueListener is plain data around its queue and handlers
    (their own rows rewrap them): only a started one has a thread to start again."""
    return listener._thread is not None


def _listener_note(listener: Any) -> str:
    return "started at save time: started again at load, on a new thread"


_ASYNC_INTERNAL = frozenset({"_loop", "_waiters"})
_UNLINKED = "its link to other processes: restored as a fresh local one"
_PASS_ON = "pass it to the child processes that need it after load"


def _mp_semaphore_note(sem: Any) -> str:
    semlock = sem._semlock
    value = semlock._get_value()
    if semlock.maxvalue == semlock.SEM_VALUE_MAX:
        return f"value {value}"
    freed = ": restored with every slot free" if value < semlock.maxvalue else ""
    return f"value {value} of {semlock.maxvalue}{freed}"


def _mp_queue_note(q: Any) -> str:
    """How many items are not kept, as far as the queue tells without reading them."""
    try:
        size = q.qsize()
    except (AttributeError, NotImplementedError):  # a SimpleQueue; or macOS, which has no sem_getvalue
        return "" if q.empty() else "its items not kept"
    return f"{size} item(s) not kept" if size else ""


def _shared_note(shared: Any) -> str:
    obj = shared._obj
    if hasattr(shared, "__len__"):
        return f"{len(obj)} {obj._type_.__name__} item(s) kept"
    return f"{type(obj).__name__} {obj.value!r} kept"


def _pool_note(pool: Any) -> str:
    pending = pool._work_queue.qsize()
    return f"{pending} pending work item(s) lost" if pending else ""


def _future_note(future: Any) -> str:
    return "" if future.done() else "not done at save time: restored cancelled"


def _handler_note(handler: Any) -> str:
    return {
        "reopen": f"reopens {getattr(handler, 'baseFilename', '?')} in append mode on first use",
        "std": f"writes to the loading process's {rewrap.std_stream_name(getattr(handler, 'stream', None))}",
        "strip": f"stream {getattr(handler, 'stream', None)!r} stripped: call setStream() after load",
        "keep": "",
    }[rewrap.stream_treatment(handler)]


def _thread_note(thread: Any) -> str:
    return f"thread {thread.name!r} ({'alive' if thread.is_alive() else 'not running'})"


def _std_stream_note(stream: Any) -> str:
    return f"rebound to the loading process's sys.{rewrap.std_stream_name(stream)}"


def _is_std_stream(obj: Any) -> bool:
    return rewrap.std_stream_name(obj) is not None


def _weak_scan_note(obj: Any) -> str:
    """At scan time: how many objects it refers to; save counts what it keeps (`weak_save_note`)."""
    return f"refers to {len(rewrap.weak_referents(obj))} object(s): kept where the checkpoint holds them anyway"


def weak_save_note(obj: Any, saved: Any) -> str:
    """At save time: what the rewrap kept and dropped."""
    referents = rewrap.weak_referents(obj)
    kept = sum(rewrap.saved_anyway(r, saved) for r in referents)
    if isinstance(obj, (weakref.ref, *rewrap.PROXY_TYPES)):
        return "live: its referent is saved" if kept else "restored dead: its referent is not saved"
    return f"{kept} of {len(referents)} entries kept, {len(referents) - kept} dropped (not saved elsewhere)"


def _weak_payload(obj: Any) -> list[tuple[Edge, Any]]:
    """What a weak container holds strongly: a WeakValueDictionary's keys, a WeakKeyDictionary's values."""
    if isinstance(obj, weakref.WeakValueDictionary):
        return [(("key", i), key) for i, key in enumerate(obj.keys())]
    if isinstance(obj, weakref.WeakKeyDictionary):
        return [(("value", i), value) for i, value in enumerate(obj.values())]
    return []


@functools.cache
def _fresh_ssl(verifying: bool) -> Any:
    """One context of each kind the ssl rewrap restores, to compare saved ones with."""
    import ssl

    return ssl.create_default_context() if verifying else ssl._create_unverified_context()


def _ssl_rebuildable(ctx: Any) -> bool:
    """The rebuilt context is as strict as the saved one (see rewrap.reduce_ssl_context)."""
    import ssl

    verifying = ctx.verify_mode != ssl.CERT_NONE
    if verifying and ctx.protocol == ssl.PROTOCOL_TLS_SERVER:
        return False  # a server asking for client certificates: no fixed-behaviour constructor makes one
    fresh = _fresh_ssl(verifying)
    return ctx.minimum_version <= fresh.minimum_version and ctx.maximum_version >= fresh.maximum_version


def _ssl_note(ctx: Any) -> str:
    import ssl

    fresh = _fresh_ssl(ctx.verify_mode != ssl.CERT_NONE)
    changes = [f"{name} {getattr(fresh, name)!s} (saved: {getattr(ctx, name)!s})"
               for name in ("verify_mode", "check_hostname", "minimum_version")
               if getattr(fresh, name) != getattr(ctx, name)]
    cas, system = ctx.cert_store_stats()["x509_ca"], fresh.cert_store_stats()["x509_ca"]
    if cas != system:
        changes.append(f"{cas} CA certificate(s) at save, the system's {system} after load")
    return "; ".join(changes)


def _sqlite_on_file(conn: Any) -> bool:
    if isinstance(conn, LazyConnection):
        return conn.driver == "sqlite3"
    return bool(rewrap.sqlite_file(conn))


def _sqlite_in_memory(conn: Any) -> bool:
    return rewrap.sqlite_file(conn) == ""


def _duckdb_on_file(conn: Any) -> bool:
    if isinstance(conn, LazyConnection):
        return conn.driver == "duckdb"
    return rewrap.duckdb_file(conn) is not None


def _db_note(conn: Any) -> str:
    if isinstance(conn, LazyConnection):
        path, read_only = conn.database, conn.options.get("read_only", False)
    elif type(conn).__module__ == "_duckdb":
        path, read_only = rewrap.duckdb_file(conn)  # type: ignore[misc]  # the row applies only to a file
    else:
        path, read_only = rewrap.sqlite_file(conn), False
    return f"{path} reopened lazily{' read-only' if read_only else ''}, on first use"


def _read_file(file: Any) -> bool:
    return rewrap.read_mode(file) is not None


def _read_file_note(file: Any) -> str:
    if isinstance(file, LazyFile):
        return f"{file.path} reopened lazily, on first use"
    return f"{os.path.abspath(file.name)} reopened lazily at position {file.tell()}, on first use"


def _connections_note(pool: Any) -> str:
    dropped = len(rewrap.pooled_connections(pool))
    return f"{dropped} open connection(s) dropped: the client connects again on first use" if dropped else ""


def _pool_settings(pool: Any) -> list[tuple[Edge, Any]]:
    """What the connection-pool rewrap writes as it is: the pool's attributes but its connections."""
    emptied = rewrap.pooling(pool)
    return [(("attr", name), value) for name, value in vars(pool).items() if name not in emptied]


def _process_pool_note(pool: Any) -> str:
    workers, pending = len(pool._processes or ()), len(pool._pending_work_items)
    notes = [f"{workers} worker process(es) not carried (started again on first submit)"] if workers else []
    return "; ".join(notes + ([f"{pending} pending work item(s) lost"] if pending else []))


def _enqueued(handler: Any) -> bool:
    return bool(handler._enqueue)


def _handler_payload(handler: Any) -> list[tuple[Edge, Any]]:
    """What the queued-log-sink rewrap writes: the handler's constructor arguments (its sink among them)."""
    return [(("attr", "_" + name.rstrip("_")), value) for name, value in rewrap.handler_settings(handler).items()]


def _sink_file_open(sink: Any) -> bool:
    """A loguru file sink holds its open file (one made with delay=True has none until its first message)."""
    return sink._file is not None


def _bar_on_std_stream(bar: Any) -> bool:
    """A tqdm bar rewrapped: open on stdout or stderr, or closed (restored
    disabled, it writes nowhere). A bar disabled from the start has no
    stream and pickles as it is: no finding."""
    return _has_stream(bar) and (bar.disable or rewrap.std_stream_name(rewrap.bar_stream(bar)) in ("stdout", "stderr"))


def _has_stream(bar: Any) -> bool:
    """Whether a tqdm bar holds its stream (every bar but one disabled from the start): pickle refuses those."""
    return hasattr(bar, "fp")


def _bar_note(bar: Any) -> str:
    if bar.disable:
        return "closed at save time: restored disabled"
    return f"at {bar.n}/{bar.total}, on the loading process's {rewrap.std_stream_name(rewrap.bar_stream(bar))}"


def _nothing(obj: Any) -> tuple[()]:
    """The payload of a kind whose rewrap carries none of its attributes."""
    return ()


def _local_arguments(local: Any) -> list[tuple[Edge, Any]]:
    """What a thread-local's rewrap carries: its class's required `__init__` arguments."""
    return [(("attr", name), value) for name, value in rewrap.local_arguments(local).items()]


def _simple_queue_items(q: Any) -> Iterator[tuple[Edge, Any]]:
    for i, item in enumerate(rewrap.drain_simple_queue(q)):
        yield ("note", f"item {i}"), item


def _pool_payload(pool: Any) -> list[tuple[Edge, Any]]:
    return [(("attr", "_initializer"), pool._initializer), (("attr", "_initargs"), pool._initargs)]


def _unnamed(obj: Any) -> bool:
    """Pickle cannot write it by name (a wrapper made at run time)."""
    return global_error(obj) is not None


def _wrapped(obj: Any) -> list[tuple[Edge, Any]]:
    """What a decorator's wrapper holds: the function it wraps."""
    return [(("attr", "__wrapped__"), obj.__wrapped__)]


def _importable(module: types.ModuleType) -> bool:
    """A module the loading process imports by its name (not one made on the fly)."""
    return sys.modules.get(module.__name__) is module


def _code_note(code: types.CodeType) -> str:
    return f"the code of {code.co_qualname}"


_FILES = ("_io.TextIOWrapper", "_io.BufferedReader", "_io.BufferedWriter", "_io.BufferedRandom")
_QUEUE_INTERNALS = frozenset({"mutex", "not_empty", "not_full", "all_tasks_done"})
_UNBOUND = "an asyncio primitive, bound to no event loop: its plain state"
_DROP = "drop it in __getstate__ and rebuild it in __setstate__, or pass --strip PATH to save it as None"
_WHOLE = "the file loads only from a signer you trust (as data, it is refused)"
_NAMED = "for a file others load as data, use a module-level"

KINDS: tuple[Kind, ...] = (
    # --- thread primitives: rewrapped -------------------------------------
    Kind("lock", ("_thread.LockType",), Action.REWRAP, "nothing (restored unlocked)", "none needed",
         reduce=rewrap.reduce_lock, note=_held, probe=probes.probe_lock,
         recreate="{target} = threading.Lock()",
         admits=(Entry("_thread:allocate_lock", FUNCTION, "a fresh lock"),)),
    Kind("rlock", ("_thread.RLock",), Action.REWRAP, "owner and recursion count (restored unlocked)",
         "none needed", reduce=rewrap.reduce_rlock, note=_held, probe=probes.probe_rlock,
         recreate="{target} = threading.RLock()",
         admits=(Entry("threading:RLock", FUNCTION, "a fresh re-entrant lock"),)),
    Kind("condition", ("threading.Condition",), Action.REWRAP, "waiting threads",
         "none needed; a lock it shares stays shared", reduce=rewrap.reduce_condition,
         internal=frozenset({"_lock", "acquire", "release", "_release_save", "_acquire_restore",
                             "_is_owned", "_waiters"}),
         probe=probes.probe_condition, inner="_lock", recreate="{target} = threading.Condition({inner})",
         admits=(Entry("threading:Condition", CLASS, "a fresh condition around the saved lock", call=True),)),
    Kind("semaphore", ("threading.Semaphore", "threading.BoundedSemaphore"), Action.REWRAP, "waiting threads (value and bound kept)",
         "none needed", internal=frozenset({"_cond"}), note=_semaphore_note, probe=probes.probe_semaphore,
         keep="{obj}._value", recreate="{target} = {type}({saved})",
         admits=classes("threading", "Semaphore BoundedSemaphore", "a thread primitive rebuilt from its state")),
    Kind("event", ("threading.Event",), Action.REWRAP, "waiting threads (flag kept)", "none needed",
         internal=frozenset({"_cond"}), probe=probes.probe_event, keep="{obj}.is_set()",
         recreate="{target} = threading.Event()\nif {saved}:\n    {target}.set()",
         admits=classes("threading", "Event", "a thread primitive rebuilt from its state")),
    Kind("barrier", ("threading.Barrier",), Action.REWRAP,
         "threads waiting at save time (parties, action and timeout kept)", "none needed",
         reduce=rewrap.reduce_barrier, internal=frozenset({"_cond"}), probe=probes.probe_barrier,
         keep="({obj}.parties, {obj}._action, {obj}._timeout)", recreate="{target} = threading.Barrier(*{saved})",
         admits=classes("threading", "Barrier", "a thread primitive rebuilt from its state")),
    Kind("queue", ("queue.Queue", "queue.LifoQueue", "queue.PriorityQueue"), Action.REWRAP, "nothing (type, maxsize and items kept)", "none needed",
         internal=_QUEUE_INTERNALS, note=_queue_note, probe=probes.probe_queue,
         keep="({obj}.maxsize, list({obj}.queue))",
         recreate="maxsize, items = {saved}\n{target} = {type}(maxsize)\nfor item in items:\n    {target}.put(item)",
         admits=classes("queue", "Queue LifoQueue PriorityQueue", "a queue rebuilt from its state (maxsize, items)")),
    Kind("simple-queue", ("_queue.SimpleQueue",), Action.REWRAP, "nothing (items kept, in order)",
         "none needed", reduce=rewrap.reduce_simple_queue, payload=_simple_queue_items,
         note=_queue_note, probe=probes.probe_simple_queue, recreate="{target} = queue.SimpleQueue()",
         admits=(*classes("queue", "SimpleQueue", "a fresh SimpleQueue, refilled by the rewrap", call=True),
                 *classes("_queue", "SimpleQueue", "a fresh SimpleQueue, refilled by the rewrap", call=True),
                 Entry("_queue:SimpleQueue.put", FUNCTION, "refills a SimpleQueue the load created; as a value "
                       "(map's argument), calling it puts data in a queue", value=True),
                 *functions("builtins", "iter next any", "the rewrap's expression; of one builtin list, tuple, "
                            "iterator of one or map only (no class's __iter__ runs)", fresh=False,
                            guard="builtin_iteration"),
                 Entry("builtins:map", CLASS, "the rewrap's expression; maps SimpleQueue.put only", call=True,
                       fresh=False, guard="queue_refill"))),
    Kind("thread-pool", ("concurrent.futures.thread.ThreadPoolExecutor",), Action.REWRAP,
         "worker threads and pending work (max_workers, name prefix and initializer kept)",
         "resubmit pending work after load", reduce=rewrap.reduce_thread_pool, payload=_pool_payload,
         note=_pool_note, probe=probes.probe_thread_pool, keep="{obj}._max_workers",
         recreate="{target} = concurrent.futures.ThreadPoolExecutor({saved})",
         admits=(Entry("concurrent.futures.thread:ThreadPoolExecutor", CLASS, "a fresh executor with the saved "
                       "settings, but no initializer (its worker threads would call it: ckpt's own verify, or your "
                       "first submit); only by its constructor, never given state after", call=True, fresh=False,
                       new=False, guard="no_initializer"),)),
    Kind("future", ("concurrent.futures.Future",), Action.REWRAP,
         "callbacks and waiters; a future not done is restored cancelled", "none needed",
         reduce=rewrap.reduce_future, internal=frozenset({"_condition", "_waiters", "_done_callbacks"}),
         note=_future_note, probe=probes.probe_future,
         admits=(Entry("concurrent.futures._base:Future", CLASS, "a finished or cancelled future's result"),)),
    Kind("thread-local", ("_thread._local",), Action.REWRAP, "every thread's attributes (restored empty)",
         "set the attributes again after load", reduce=rewrap.reduce_local, payload=_local_arguments,
         probe=probes.probe_local, recreate="{target} = threading.local()",
         admits=(Entry("threading:local", CLASS, "a fresh thread-local namespace", call=True),
                 Entry("_thread:_local", CLASS, "a fresh thread-local namespace", call=True))),
    Kind("log-handler", ("logging.Handler",), Action.REWRAP,
         "an open stream (files reopen lazily in append mode; standard streams are rebound; others stripped)",
         "none needed for file and standard-stream handlers", reduce=rewrap.reduce_handler,
         internal=frozenset({"lock", "stream"}), note=_handler_note, probe=probes.probe_handler,
         keep='getattr({obj}, "baseFilename", None)',
         recreate="{target} = logging.FileHandler({saved}, delay=True) if {saved} else logging.StreamHandler()",
         admits=(Entry("logging:StreamHandler", CLASS, "a handler on a standard stream; called with no "
                       "argument it picks up the loading process's stderr (the guard admits no argument, so no "
                       "stream comes from the file)", call=True, guard="no_arguments"),)),
    # --- process resources: rebuilt ------------------------------------------
    Kind("std-stream", _FILES + ("_io.FileIO",), Action.REWRAP,
         "nothing (rebound to the loading process's stream of the same name)", "none needed",
         reduce=rewrap.reduce_std_stream, applies=_is_std_stream, note=_std_stream_note, probe=probes.probe_std_stream,
         keep='"stderr" if {obj} in (sys.stderr, sys.__stderr__) else "stdout" if {obj} in (sys.stdout, '
              'sys.__stdout__) else "stdin"',
         recreate='{target} = {{"stdin": sys.stdin, "stdout": sys.stdout, "stderr": sys.stderr}}[{saved}]',
         admits=tuple(Entry(f"sys:{name}", CONSTANT, "the loading process's standard stream of that name")
                       for name in ("stdin", "stdout", "stderr"))),
    Kind("progress-bar", ("tqdm.std.tqdm",), Action.REWRAP,
         "its position, postfix, rate and elapsed time (a fresh bar at its count: total, desc, unit, scale, leave, "
         "width and format kept; quiet at load, it shows from its first update)",
         "none needed; a bar writing to another file is refused (progress-bar-file)",
         reduce=rewrap.reduce_progress_bar, applies=_bar_on_std_stream, payload=_nothing, note=_bar_note,
         probe=probes.probe_progress_bar,
         keep="dict(total={obj}.total, initial={obj}.n, desc={obj}.desc, unit={obj}.unit, leave={obj}.leave)",
         recreate="{target} = {type}(**{saved})"),
    Kind("weakref", ("weakref.ReferenceType",), Action.REWRAP,
         "its callback; a reference whose referent is not saved elsewhere comes back dead",
         "keep a strong reference elsewhere in the model to what must survive", reduce=rewrap.reduce_weakref,
         weak=True, payload=_nothing, note=_weak_scan_note, probe=probes.probe_weakref,
         keep="{obj}()", recreate="{target} = weakref.ref({saved}) if {saved} is not None else None",
         admits=(Entry("weakref:ReferenceType", CLASS, "a weak reference; of one argument, never a callback",
                       call=True, guard="one_argument"),)),
    Kind("weak-proxy", ("weakref.ProxyType", "weakref.CallableProxyType"), Action.REWRAP,
         "its callback; a proxy whose referent is not saved elsewhere comes back dead (plain pickle would save a "
         "copy of the referent in its place)", "keep a strong reference elsewhere in the model to what must survive",
         reduce=rewrap.reduce_weak_proxy, weak=True, payload=_nothing, note=_weak_scan_note,
         probe=probes.probe_weak_proxy, recreate="{target} = None  # make it again: weakref.proxy(what it stood for)",
         admits=(Entry("_weakref:proxy", FUNCTION, "a weak proxy; of one argument (an object the file holds, or a "
                       "set only the load holds, for a dead proxy), never a callback; given no state or items (they "
                       "would reach its referent unchecked)", fresh=False, guard="one_argument"),)),
    Kind("weak-container", ("weakref.WeakValueDictionary", "weakref.WeakKeyDictionary", "_weakrefset.WeakSet"),
         Action.REWRAP, "entries whose weakly held object is not saved elsewhere (counted at save)", "none needed",
         reduce=rewrap.reduce_weak_container, weak=True, payload=_weak_payload, note=_weak_scan_note,
         probe=probes.probe_weak_container,
         keep="list({obj}.items()) if hasattr({obj}, 'items') else list({obj})", recreate="{target} = {type}({saved})",
         admits=(*classes("weakref", "WeakValueDictionary WeakKeyDictionary", "a weak mapping built from the "
                          "entries the file holds", call=True),
                 Entry("_weakrefset:WeakSet", CLASS, "a weak set built from the objects the file holds", call=True))),
    Kind("ssl-context", ("ssl.SSLContext",), Action.REWRAP,
         "loaded certificates, custom CA files, ciphers and ALPN (protocol, verify mode and hostname check kept; "
         "the system's CAs loaded)", "load custom CA files and certificate chains again after load",
         reduce=rewrap.reduce_ssl_context, applies=_ssl_rebuildable, note=_ssl_note, probe=probes.probe_ssl_context,
         keep="({obj}.verify_mode, {obj}.check_hostname)",
         recreate="{target} = ssl.create_default_context()\n{target}.check_hostname = False\n"
                  "{target}.verify_mode, {target}.check_hostname = {saved}",
         admits=(Entry("ssl:create_default_context", FUNCTION, "a verifying client context with the system's "
                       "CAs; one positional argument, its purpose, so no CA file, path or data comes from the file; "
                       "no state either (keylog_filename would open a file)", fresh=False, guard="one_argument"),
                 Entry("ssl:_create_unverified_context", FUNCTION, "a context that does not verify, of a protocol; "
                       "one positional argument, so no certificate file comes from the file; no state", fresh=False,
                       guard="one_argument"),
                 Entry("ssl:_ASN1Object", CLASS, "an OID by its text: the purpose of create_default_context "
                       "(ssl.Purpose's members do not survive pickle)", call=True))),
    Kind("db-connection", ("sqlite3.Connection", "ckpt.kinds.lazy.LazyConnection"), Action.REWRAP,
         "open transactions, row_factory and text_factory (reopened lazily on first use: path and isolation "
         "level kept)", "load it with --trust ckpt.kinds.lazy:LazyConnection (it writes to the saved path when "
         "used); set row_factory again after load", reduce=rewrap.reduce_sqlite, applies=_sqlite_on_file,
         note=_db_note, probe=probes.probe_db_file,
         keep='{obj}.execute("PRAGMA database_list").fetchone()[2]', recreate="{target} = sqlite3.connect({saved})"),
    Kind("memory-db", ("sqlite3.Connection",), Action.STRIP, "the in-memory database (restored as None)",
         "save its content with Connection.serialize() and restore it with deserialize()",
         reduce=rewrap.reduce_stripped, applies=_sqlite_in_memory,
         note=lambda conn: "an in-memory database: stripped", keep="{obj}.serialize()",
         recreate='{target} = sqlite3.connect(":memory:")\n{target}.deserialize({saved})'),
    Kind("duckdb-connection", ("_duckdb.DuckDBPyConnection", "ckpt.kinds.lazy.LazyConnection"), Action.REWRAP,
         "open transactions, unfetched results and settings made with SET (reopened lazily on first use: the "
         "file kept, read-only if it was opened so)", "close it in the saving process before another opens it (duckdb "
         "locks its file); load it with --trust ckpt.kinds.lazy:LazyConnection (unless read-only, it writes to the "
         "saved path when used)", reduce=rewrap.reduce_duckdb, applies=_duckdb_on_file,
         note=_db_note, probe=probes.probe_db_file,
         keep='{obj}.cursor().execute("select path, readonly from duckdb_databases() where database_name = '
              'current_database()").fetchone()', recreate="{target} = duckdb.connect(*{saved})"),
    Kind("read-file", ("_io.TextIOWrapper", "_io.BufferedReader", "_io.FileIO", "ckpt.kinds.lazy.LazyFile"),
         Action.REWRAP, "what it had buffered, and its content if the file changes (reopened lazily by its "
         "absolute path on first use, at the saved position: mode, encoding and errors kept)",
         "load it with --trust ckpt.kinds.lazy:LazyFile (it reads the saved path when used)",
         reduce=rewrap.reduce_read_file, applies=_read_file, note=_read_file_note, probe=probes.probe_read_file,
         keep="({obj}.name, {obj}.mode, {obj}.tell())",
         recreate="path, mode, position = {saved}\n{target} = open(path, mode)\n{target}.seek(position)"),
    # --- clients' connections and workers: emptied, or made again ---------------
    Kind("connection-pool", tuple(rewrap.POOLED), Action.REWRAP,
         "its open connections, with their sockets, TLS sessions and event-loop transports (the pool, its "
         "settings and limits kept, empty: the client connects again on first use)", "none needed",
         reduce=rewrap.reduce_connection_pool, payload=_pool_settings, note=_connections_note,
         probe=probes.probe_connection_pool,
         recreate="{target} = None  # make the pool again with the client's settings: its connections cannot be saved"),
    Kind("aiohttp-session", ("aiohttp.client.ClientSession", "ckpt.kinds.lazy.LazySession"), Action.REWRAP,
         "its connections and the event loop it was bound to (made again on first use, in the loop that uses "
         "it: base URL, headers, timeout, auth, cookies, raise_for_status, trust_env and connection limits "
         "kept; a custom connector, a raise_for_status callback, JSON serializer, middlewares and trace configs "
         "are not)",
         "load it with --trust ckpt.kinds.lazy:LazySession (it connects where the file says when used); "
         "use it inside a coroutine", reduce=rewrap.reduce_aiohttp_session, payload=_nothing,
         probe=probes.probe_lazy_session,
         recreate="{target} = None  # make the session again inside the loop that uses it"),
    Kind("process-pool", ("concurrent.futures.process.ProcessPoolExecutor",), Action.REWRAP,
         "worker processes and pending work (max_workers, start method, initializer and max_tasks_per_child kept)",
         "resubmit pending work after load", reduce=rewrap.reduce_process_pool, payload=_pool_payload,
         note=_process_pool_note, probe=probes.probe_process_pool, keep="{obj}._max_workers",
         recreate="{target} = concurrent.futures.ProcessPoolExecutor({saved})"),
    Kind("queued-log-sink", ("loguru._handler.Handler",), Action.REWRAP,
         "its queue and worker thread (made again by its constructor: a new worker writes to the same sink what "
         "is logged after load; what was queued at save is written by the saving process)",
         "none needed", reduce=rewrap.reduce_enqueued_handler, applies=_enqueued, payload=_handler_payload,
         note=lambda handler: f"a new worker thread writes to {handler._name} after load",
         probe=probes.probe_enqueued_handler, for_files=True),
    Kind("log-file-sink", ("loguru._file_sink.FileSink",), Action.REWRAP,
         "the open file (reopened in append mode on the first message: path, rotation, retention and compression "
         "kept)", "none needed", reduce=rewrap.reduce_file_sink, applies=_sink_file_open,
         internal=frozenset({"_file"}), note=lambda sink: f"reopens {sink._file_path} in append mode on the first message",
         probe=probes.probe_file_sink),
    Kind("queue-listener", ("logging.handlers.QueueListener",), Action.REWRAP,
         "its thread (started again at load on a new one; queue, items and handlers kept)",
         "none needed; stop() it before saving if records queued then must not be handled again after load",
         reduce=rewrap.reduce_listener, applies=_started,
         internal=frozenset({"_thread"}), note=_listener_note, probe=probes.probe_listener,
         recreate="{target} = None  # rebuild it: logging.handlers.QueueListener(queue, *handlers), then start()",
         admits=(Entry("logging.handlers:QueueListener", CLASS, "a queue listener, stopped: its queue and "
                       "handlers (the rewrap also starts it, which is no data)"),)),
    # --- asyncio primitives bound to an event loop: rewrapped unbound -------
    Kind("async-lock", ("asyncio.Lock",), Action.REWRAP, "its event loop and waiting coroutines (restored unlocked)",
         "none needed", reduce=rewrap.reduce_async_lock, applies=_bound_to_loop, internal=_ASYNC_INTERNAL,
         note=_held, probe=probes.probe_async_lock, recreate="{target} = asyncio.Lock()",
         admits=classes("asyncio.locks", "Lock", _UNBOUND)),
    Kind("async-condition", ("asyncio.Condition",), Action.REWRAP, "its event loop and waiting coroutines",
         "none needed; a lock it shares stays shared", reduce=rewrap.reduce_condition, applies=_bound_to_loop,
         internal=_ASYNC_INTERNAL | {"_lock", "locked", "acquire", "release"}, probe=probes.probe_async_condition,
         recreate="{target} = asyncio.Condition()",
         admits=(Entry("asyncio.locks:Condition", CLASS, "a fresh asyncio condition around the saved lock",
                       call=True),)),
    Kind("async-semaphore", ("asyncio.Semaphore", "asyncio.BoundedSemaphore"), Action.REWRAP,
         "its event loop and waiting coroutines (value and bound kept)", "none needed", reduce=rewrap.reduce_async,
         applies=_bound_to_loop, internal=_ASYNC_INTERNAL, note=_semaphore_note,
         probe=probes.probe_async_semaphore, keep="{obj}._value", recreate="{target} = {type}({saved})",
         admits=classes("asyncio.locks", "Semaphore BoundedSemaphore", _UNBOUND)),
    Kind("async-event", ("asyncio.Event",), Action.REWRAP, "its event loop and waiting coroutines (flag kept)",
         "none needed", reduce=rewrap.reduce_async, applies=_bound_to_loop, internal=_ASYNC_INTERNAL,
         probe=probes.probe_async_event, keep="{obj}.is_set()",
         recreate="{target} = asyncio.Event()\nif {saved}:\n    {target}.set()",
         admits=classes("asyncio.locks", "Event", _UNBOUND)),
    Kind("async-queue", ("asyncio.Queue",), Action.REWRAP,
         "its event loop, waiting coroutines and items taken but not marked done (type, maxsize and items kept)",
         "none needed", reduce=rewrap.reduce_async_queue, applies=_bound_to_loop,
         internal=frozenset({"_loop", "_getters", "_putters", "_finished"}), note=_queue_note,
         probe=probes.probe_async_queue, keep="({obj}.maxsize, list({obj}._queue))",
         recreate="maxsize, items = {saved}\n{target} = {type}(maxsize)\nfor item in items:\n"
                  "    {target}.put_nowait(item)",
         admits=classes("asyncio.queues", "Queue PriorityQueue LifoQueue",
                         "an asyncio queue, bound to no event loop: maxsize and items")),
    # --- multiprocessing primitives: rewrapped as fresh local ones ---------
    Kind("mp-lock", ("multiprocessing.synchronize.Lock", "multiprocessing.synchronize.RLock"), Action.REWRAP,
         f"{_UNLINKED}, unlocked", _PASS_ON, reduce=rewrap.reduce_mp_lock, payload=_nothing, note=_held,
         for_files=True, probe=probes.probe_lock,
         recreate="{target} = {type}(ctx=multiprocessing.get_context())"),
    Kind("mp-semaphore", ("multiprocessing.synchronize.Semaphore", "multiprocessing.synchronize.BoundedSemaphore"),
         Action.REWRAP, f"{_UNLINKED} (a Semaphore keeps its value, a BoundedSemaphore its bound, with every slot "
         "free)", _PASS_ON, reduce=rewrap.reduce_mp_semaphore, payload=_nothing, note=_mp_semaphore_note,
         for_files=True, probe=probes.probe_mp_semaphore, keep="{obj}.get_value()",
         recreate="{target} = {type}({saved}, ctx=multiprocessing.get_context())"),
    Kind("mp-condition", ("multiprocessing.synchronize.Condition",), Action.REWRAP, f"waiting processes; {_UNLINKED}",
         "none needed; a lock it shares stays shared", reduce=rewrap.reduce_mp_condition, for_files=True,
         internal=frozenset({"_lock", "acquire", "release", "_sleeping_count", "_woken_count", "_wait_semaphore"}),
         probe=probes.probe_condition, recreate="{target} = multiprocessing.Condition()"),
    Kind("mp-event", ("multiprocessing.synchronize.Event",), Action.REWRAP, f"{_UNLINKED} (flag kept)", _PASS_ON,
         internal=frozenset({"_cond", "_flag"}), for_files=True, probe=probes.probe_event, keep="{obj}.is_set()",
         recreate="{target} = multiprocessing.Event()\nif {saved}:\n    {target}.set()"),
    Kind("mp-barrier", ("multiprocessing.synchronize.Barrier",), Action.REWRAP,
         f"{_UNLINKED} (parties, action and timeout kept)", _PASS_ON, reduce=rewrap.reduce_mp_barrier,
         for_files=True, internal=frozenset({"_cond", "_wrapper", "_array"}),
         probe=probes.probe_barrier, keep="({obj}.parties, {obj}._action, {obj}._timeout)",
         recreate="{target} = multiprocessing.Barrier(*{saved})"),
    Kind("mp-queue", ("multiprocessing.queues.Queue", "multiprocessing.queues.JoinableQueue"), Action.REWRAP,
         f"its items; {_UNLINKED}, empty (maxsize kept)", "put the items again after load, if they matter",
         reduce=rewrap.reduce_mp_queue, payload=_nothing, note=_mp_queue_note, for_files=True,
         probe=probes.probe_mp_queue, keep="{obj}._maxsize",
         recreate="{target} = {type}({saved}, ctx=multiprocessing.get_context())"),
    Kind("mp-simple-queue", ("multiprocessing.queues.SimpleQueue",), Action.REWRAP, f"its items; {_UNLINKED}, empty",
         "put the items again after load, if they matter", reduce=rewrap.reduce_mp_queue, payload=_nothing,
         note=_mp_queue_note, for_files=True, probe=probes.probe_mp_queue,
         recreate="{target} = multiprocessing.SimpleQueue()"),
    Kind("mp-value", ("multiprocessing.sharedctypes.Synchronized",), Action.REWRAP,
         f"{_UNLINKED} (type and value kept)", _PASS_ON, reduce=rewrap.reduce_mp_shared, payload=_nothing,
         note=_shared_note,
         for_files=True, probe=probes.probe_shared, keep="(type({obj}.get_obj()), {obj}.value)",
         recreate="ctype, value = {saved}\n{target} = multiprocessing.Value(ctype, value)"),
    Kind("mp-array", ("multiprocessing.sharedctypes.SynchronizedArray",), Action.REWRAP,
         f"{_UNLINKED} (type and contents kept)", _PASS_ON, reduce=rewrap.reduce_mp_shared,
         payload=_nothing, note=_shared_note,
         for_files=True, probe=probes.probe_shared, keep="({obj}.get_obj()._type_, {obj}[:])",
         recreate="ctype, items = {saved}\n{target} = multiprocessing.Array(ctype, items)"),
    # --- threads and event loops: stripped -----------------------------------
    Kind("thread", ("threading.Thread",), Action.STRIP, "the thread and its attributes (restored as None)",
         "start a new thread after load", reduce=rewrap.reduce_stripped, note=_thread_note),
    Kind("event-loop", ("asyncio.AbstractEventLoop",), Action.STRIP, "the loop and everything scheduled on it "
         "(restored as None)", "run the loaded model in the loading process's loop (asyncio.run, "
         "asyncio.get_running_loop())", reduce=rewrap.reduce_stripped, note=_loop_note),
    Kind("async-future", ("asyncio.Future",), Action.STRIP, "the task or future and its result (restored as None)",
         "create the task again after load", reduce=rewrap.reduce_stripped, note=_async_future_note),
    # --- everything else pickle refuses: reported, never rewrapped ---------
    Kind("open-file", _FILES + ("_io.FileIO", "_io.BufferedRWPair", "tempfile._TemporaryFileWrapper"), Action.ERROR,
         "the open file",
         "keep the file name and reopen it in __setstate__; " + _DROP),
    Kind("socket", ("socket.socket",), Action.ERROR, "the connection", "reconnect after load; " + _DROP),
    Kind("generator", ("types.GeneratorType", "types.CoroutineType", "types.AsyncGeneratorType"),
         Action.ERROR, "its position", "keep the data it iterates over instead; " + _DROP),
    Kind("local-function", ("types.FunctionType",), Action.BY_VALUE,
         f"nothing: its code, defaults, closure and the globals it reads are saved by value; {_WHOLE}",
         f"none needed; {_NAMED} function (or a functools.partial of one)", payload=byvalue.function_parts,
         applies=byvalue.by_value, note=byvalue.describe,
         recreate="{target} = None  # rebuild it here, or define it at module level so pickle can name it"),
    Kind("local-class", ("builtins.type",), Action.BY_VALUE,
         "its identity: its methods and class attributes are saved by value, and the class loaded is a copy "
         f"(isinstance against the class a new run of the script defines is False); {_WHOLE}",
         f"none needed; {_NAMED} class", payload=byvalue.class_parts, applies=byvalue.by_value, note=byvalue.describe,
         recreate="{target} = None  # rebuild it here, or define the class at module level so pickle can name it"),
    Kind("torchscript-module", ("torch.jit._script.ScriptModule",), Action.REWRAP,
         "its Python class (it loads as torch.jit.RecursiveScriptModule, as from torch.jit.load) and any attribute "
         f"TorchScript does not hold; {_WHOLE}", "none needed; or save it with torch.jit.save beside the checkpoint",
         reduce=rewrap.reduce_script_module, payload=_nothing, probe=probes.probe_script_module),
    Kind("lru-cache", ("functools._lru_cache_wrapper",), Action.REWRAP,
         "its cached results (the function is wrapped again, same maxsize and typed, cache empty)", "none needed",
         reduce=rewrap.reduce_lru_cache, applies=_unnamed, payload=_wrapped,
         probe=probes.probe_lru_cache, keep="({obj}.__wrapped__, {obj}.cache_parameters())",
         recreate="function, parameters = {saved}\n"
                  "{target} = functools.lru_cache(parameters['maxsize'], parameters['typed'])(function)"),
    Kind("code", ("types.CodeType",), Action.BY_VALUE, f"nothing: saved by value; {_WHOLE}",
         f"none needed; {_NAMED} function instead of its code object", reduce=byvalue.reduce_code, payload=_nothing,
         note=_code_note),
    Kind("progress-bar-file", ("tqdm.std.tqdm",), Action.ERROR, "the bar and the file it writes to",
         "make it write to sys.stderr or sys.stdout (ckpt rewraps those bars); " + _DROP, applies=_has_stream),
    Kind("db-cursor", ("sqlite3.Cursor",), Action.ERROR, "the cursor and its position",
         "keep the query and run it again after load; " + _DROP),
    Kind("module", ("types.ModuleType",), Action.REWRAP,
         f"nothing (imported by its name on load: where it is not installed, the load fails); {_WHOLE}",
         "none needed",
         reduce=rewrap.reduce_module, applies=_importable, payload=_nothing, probe=probes.probe_module,
         keep="{obj}.__name__",
         recreate="{target} = importlib.import_module({saved})"),
    Kind("dynamic-module", ("types.ModuleType",), Action.ERROR, "the module object, which no import can find again",
         "keep what it holds instead; " + _DROP),
    Kind("frame", ("types.FrameType", "types.TracebackType"), Action.ERROR,
         "the interpreter state", "store the formatted traceback text instead; " + _DROP),
)

UNPICKLABLE = Kind("unpicklable", (), Action.ERROR, "the object", "see the message; " + _DROP)
"""Not a known kind: pickle raised on it. The finding carries pickle's message."""

ALL_KINDS = KINDS + (UNPICKLABLE,)
BY_NAME = {kind.name: kind for kind in ALL_KINDS}

_PICKLING_HOOKS = ("__reduce_ex__", "__reduce__", "__getstate__")
_MODULES = frozenset(name.rpartition(".")[0] for kind in KINDS for name in kind.types)
_by_type: dict[type, list[Kind]] = {}
_decided: dict[type, tuple[Kind, ...]] = {}
_resolved: set[str] = set()
_modules_seen = 0


def _refresh() -> None:
    """Resolve the rows whose modules are imported. A type from a module
    nobody imported cannot be in the object graph, so ckpt never imports
    anything (sqlite3, multiprocessing) just to recognise it."""
    global _modules_seen
    if len(sys.modules) == _modules_seen or len(_resolved) == len(_MODULES):
        return
    _modules_seen = len(sys.modules)
    loaded = _MODULES & sys.modules.keys()
    if loaded <= _resolved:
        return
    _by_type.clear()
    for kind in KINDS:
        for dotted in kind.types:
            module, _, attr = dotted.rpartition(".")
            if module in loaded and (cls := vars(sys.modules[module]).get(attr)) is not None:  # no lazy import
                _by_type.setdefault(cls, []).append(kind)
    _resolved.update(loaded)
    _decided.clear()


def _decide(cls: type) -> tuple[Kind, ...]:
    """The rows for `cls` via its MRO, unless a subclass pickles itself."""
    for base in cls.__mro__:
        kinds = _by_type.get(base)
        if not kinds:
            continue
        if base is not cls and any(getattr(cls, h, None) is not getattr(base, h, None) for h in _PICKLING_HOOKS):
            return ()
        return tuple(kinds)
    return ()


def kinds_of_type(cls: type) -> tuple[Kind, ...]:
    """The rows that may apply to instances of `cls` (before `applies` and copyreg), in table order."""
    _refresh()
    try:
        return _decided[cls]
    except KeyError:
        kinds = _decided[cls] = _decide(cls)
        return kinds


def applying(kinds: tuple[Kind, ...], obj: Any) -> Kind | None:
    """The first of `kinds` whose `applies` accepts `obj`."""
    return next((kind for kind in kinds if kind.applies is None or kind.applies(obj)), None)


REGISTERED: set[type] = set()
"""Classes whose copyreg reducer is ckpt's own (`register()`): still catalog kinds."""


def handled_by_copyreg(cls: type) -> bool:
    """A reducer someone else put in copyreg: pickle uses it, so ckpt leaves the type alone."""
    return cls in copyreg.dispatch_table and cls not in REGISTERED


def rewrap_reducers() -> dict[type, Callable[[Any], Any]]:
    """Every class (and existing subclass) with a rewrap reducer, for copyreg.
    Weak kinds are left out (what they keep depends on the whole graph saved,
    which a copyreg reducer never sees), and so are `for_files` ones (a
    multiprocessing lock sent to a child process must stay the same lock),
    and code by value (its reducer names types only `reducer_override` writes)."""
    _refresh()
    reducers: dict[type, Callable[[Any], Any]] = {}
    todo = list(_by_type)
    while todo:
        cls = todo.pop()
        reducer = None if cls in reducers else _copyreg_reducer(kinds_of_type(cls))
        if reducer is not None:
            reducers[cls] = reducer
            todo.extend(cls.__subclasses__())
    return reducers


def _copyreg_reducer(kinds: tuple[Kind, ...]) -> Callable[[Any], Any] | None:
    if not any(_copyreg_kind(kind) for kind in kinds):
        return None
    if len(kinds) == 1 and kinds[0].applies is None:
        return kinds[0].reduce
    return functools.partial(_first_reducer, kinds)


def _first_reducer(kinds: tuple[Kind, ...], obj: Any) -> Any:
    """The reducer of the row that applies to `obj`, else what pickle itself does (it raises for an open file)."""
    kind = applying(kinds, obj)
    if kind is None or not _copyreg_kind(kind):
        return obj.__reduce_ex__(PROTOCOL)
    return kind.reduce(obj)  # type: ignore[misc]


def _copyreg_kind(kind: Kind) -> bool:
    return kind.reduce is not None and not kind.weak and not kind.for_files and kind.action is not Action.BY_VALUE


def kind_for(obj: Any) -> Kind | None:
    """The catalog row that applies to `obj`, or None if plain pickle handles it."""
    cls = type(obj)
    if handled_by_copyreg(cls):
        return None
    return applying(kinds_of_type(cls), obj)


def admitted_entries() -> tuple[Entry, ...]:
    """Every row's `admits`: what the reviewed table takes from the catalog."""
    return tuple(entry for kind in KINDS for entry in kind.admits)
