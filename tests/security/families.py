"""The data-only tier's hostile corpus, by family: what outside testers threw at it.

`gadgets.py` aims at libraries' own dangerous code; `hostile.py` at the
obvious. This corpus aims at the data-only unpickler's rules, one family
per way a file could make a load *do* something:

- a bound method of an object the file made, handed to a function that
  calls its arguments (sorted's key, json's object_hook, partial, map,
  filter, a defaultdict's factory);
- a state dict whose keys shadow what BUILD, APPEND(S), SETITEM(S) and
  ADDITEMS call next on the same object;
- processes, executors and threads: multiprocessing contexts, executors and
  their submit, a worker that starts threads;
- restored objects carrying callables that something calls later, at
  collection or at exit (an executor's initializer, a defaultdict's factory,
  a torch forward hook, a finalizer, a handler flushed at exit);
- logging and diskcache trusted by the user: their handlers and caches
  built as data, and nothing written, opened or connected during the load;
- imports with side effects, and loggers registered by name;
- hostile pickles from public collections (picklescan's test data and its
  advisories), regenerated here opcode by opcode.

Each `Case` runs at no trust and at the trust a scikit-learn, pandas or
torch user gives (`TRUSTS`, or the family's own), and says where it loads
as inert data (`loads_at`); everywhere else it must be refused in one line.
Either way nothing happens: the tests check the workspace, the listener,
the audit events from every thread, the process state, and what interpreter
exit then does.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conftest import rewrite_member
from gadgets import (
    FALSE,
    MARK_TEXT,
    NEWOBJ,
    Work,
    attr,
    built,
    mapping,
    method,
    new,
    text_array,
    tup,
)
from hostile import (
    APPENDS,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    NONE,
    SETITEM,
    TRUE,
    blob,
    call,
    glob,
    items,
    keywords,
    number,
    pkl,
    text,
)

APPEND, ADDITEMS, STACK_GLOBAL = b"a", b"\x90", b"\x93"

NO_TRUST: tuple[str, ...] = ()
TRUSTS: tuple[tuple[str, ...], ...] = (NO_TRUST, ("sklearn",), ("pandas",), ("torch",))
"""What a scikit-learn, pandas or torch user gives, and nothing."""
TORCH = ("torch",)
EXPORTER = glob("torch.package.package_exporter", "PackageExporter")
"""torch.package.PackageExporter(path) creates (truncates) a zip at path: a
torch class harmless to rebuild, harmful to call with the file's path."""


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    payload: Callable[[Work], bytes]
    loads_at: tuple[tuple[str, ...], ...] = ()
    """The trust levels at which it loads, as inert data; refused at the others."""
    trusts: tuple[tuple[str, ...], ...] = TRUSTS
    source: str = "outside testers of the data-only tier"
    preimport: bool = True
    """Whether the child imports the modules it names first; off when the
    question is whether the loader imports them."""
    verify: bool = False
    """Whether `verify` runs too: its probes exercise what loaded (they call what it holds)."""
    registers: bool = False
    """Whether the load registers a handler with logging: only a handler's
    constructor does, and only a name the user trusts exactly is constructed
    (logging then flushes it at exit, which must write or send nothing)."""

    def plant(self, path: Path, work: Work) -> bytes:
        data = self.payload(work)
        rewrite_member(path, "data.pkl", data)
        return data


def path(where: str) -> bytes:
    return call(glob("pathlib", "PosixPath"), text(where))


# --- a bound method handed to a caller ---------------------------------------------------


def _bound_methods() -> list[Case]:
    family = "a bound method handed to a function that calls its arguments"
    write = lambda w: attr(path(w.sentinel), "write_text")  # noqa: E731
    return [
        Case("sorted(key=Path(p).write_text)", family, lambda w: pkl(keywords(
            glob("builtins", "sorted"), (items(text(MARK_TEXT)),), {"key": write(w)}))),
        Case("max(key=pathlib:Path.touch) named as a global", family, lambda w: pkl(keywords(
            glob("builtins", "max"), (items(path(w.sentinel)),), {"key": glob("pathlib", "Path.touch")}))),
        Case("json.loads(object_hook=Path(p).write_text)", family, lambda w: pkl(keywords(
            glob("json", "loads"), (text('{"a": 1}'),), {"object_hook": write(w)}))),
        Case("functools.partial(Path(keep).unlink)()", family, lambda w: pkl(call(call(
            glob("functools", "partial"), attr(path(w.keep), "unlink"))))),
        Case("functools.partial(pathlib:Path.chmod, Path(keep), 0)()", family, lambda w: pkl(call(call(
            glob("functools", "partial"), glob("pathlib", "Path.chmod"), path(w.keep), number(0))))),
        Case("any(map(Path(keep).unlink))", family, lambda w: pkl(call(glob("builtins", "any"), call(
            glob("builtins", "map"), glob("pathlib", "Path.unlink"), items(path(w.keep)))))),
        Case("list(filter(pathlib:Path.unlink, [keep]))", family, lambda w: pkl(call(glob("builtins", "list"), call(
            glob("builtins", "filter"), glob("pathlib", "Path.unlink"), items(path(w.keep)))))),
        Case("slice(a reviewed function) keeping it as data", family, lambda w: pkl(call(
            glob("builtins", "slice"), glob("logging", "getLogger")))),
        Case("defaultdict(Path(p).touch)", family, lambda w: pkl(call(
            glob("collections", "defaultdict"), attr(path(w.sentinel), "touch")))),
        Case("partial(numpy:ndarray.tofile, array, p)()", family, lambda w: pkl(call(call(
            glob("functools", "partial"), glob("numpy", "ndarray.tofile"), text_array(MARK_TEXT.encode()),
            text(w.sentinel))))),
        Case("getattr(PosixPath, 'write_text')(Path(p), mark)", family, lambda w: pkl(call(call(
            glob("builtins", "getattr"), glob("pathlib", "PosixPath"), text("write_text")), path(w.sentinel),
            text(MARK_TEXT)))),
        Case("Path(keep).rename via getattr", family, lambda w: pkl(method(path(w.keep), "rename", text(w.sentinel)))),
        Case("Path(p).symlink_to via getattr", family, lambda w: pkl(method(path(w.sentinel), "symlink_to",
                                                                            text(w.keep)))),
        Case("operator.methodcaller('unlink')(Path(keep))", family, lambda w: pkl(call(call(
            glob("_operator", "methodcaller"), text("unlink")), path(w.keep))),
            source="picklescan GHSA-955r-x9j8-7rhh (methodcaller)"),
    ]


# --- state keys that shadow what comes next ------------------------------------------------


def _state_keys() -> list[Case]:
    family = "a state key shadowing what BUILD, APPEND(S), SETITEM(S) or ADDITEMS call next"
    path_class = glob("pathlib", "PosixPath")
    return [
        Case("BUILD {'__setstate__': Path} then BUILD", family, lambda w: pkl(built(built(
            call(glob("collections", "OrderedDict")), mapping(__setstate__=path_class)), text(w.sentinel)))),
        Case("BUILD {'append': Path} then APPEND", family, lambda w: pkl(built(
            call(glob("types", "SimpleNamespace")), mapping(append=path_class, extend=path_class))
            + text(w.sentinel) + APPEND)),
        Case("BUILD {'extend': ...} on a UserList then APPENDS", family, lambda w: pkl(built(
            call(glob("collections", "UserList")), mapping(extend=path_class))
            + MARK + text(w.sentinel) + APPENDS)),
        Case("BUILD {'__setitem__': ...} then SETITEM", family, lambda w: pkl(built(
            call(glob("collections", "UserDict")), mapping(__setitem__=path_class))
            + text(w.sentinel) + NONE + SETITEM)),
        Case("BUILD {'data': Path} on a UserDict then SETITEM", family, lambda w: pkl(built(
            call(glob("collections", "UserDict")), mapping(data=path(w.sentinel)))
            + text("x") + NONE + SETITEM)),
        Case("BUILD {'add': ...} on a WeakSet then ADDITEMS", family, lambda w: pkl(built(
            call(glob("_weakrefset", "WeakSet")), mapping(add=path_class))
            + MARK + text(w.sentinel) + ADDITEMS)),
        Case("BUILD {'flush', 'emit'} on a StreamHandler", family, lambda w: pkl(built(
            new(glob("logging", "StreamHandler")), mapping(flush=path_class, emit=path_class)))),
        Case("BUILD {'flush', 'emit'} on a weak proxy to a StreamHandler (judged by the proxy's class)", family,
             lambda w: pkl(built(call(glob("_weakref", "proxy"), new(glob("logging", "StreamHandler"))),
                                 mapping(flush=path_class, emit=text(w.sentinel))))),
        Case("SETITEM on a weak proxy to an OrderedDict", family, lambda w: pkl(call(
            glob("_weakref", "proxy"), call(glob("collections", "OrderedDict"))) + text(w.sentinel) + NONE + SETITEM)),
        Case("BUILD {'name'} on a Handler (a property)", family, lambda w: pkl(built(
            new(glob("logging", "Handler")), mapping(name=text(w.sentinel))))),
        Case("BUILD {'__reduce__', 'write'} on a SimpleNamespace", family, lambda w: pkl(built(
            call(glob("types", "SimpleNamespace")), mapping(__reduce__=path_class, write=path_class)))),
        Case("BUILD a state keyed by a number", family, lambda w: pkl(built(
            call(glob("types", "SimpleNamespace")), EMPTY_DICT + number(1) + path_class + SETITEM))),
        Case("BUILD {'write': Path} on a SimpleNamespace then nothing calls it", family, lambda w: pkl(built(
            call(glob("types", "SimpleNamespace")), mapping(write=path_class, flush=path_class))),
            loads_at=TRUSTS),
        Case("a defaultdict's factory set as slot state", family, lambda w: pkl(built(
            new(glob("collections", "defaultdict")), tup(NONE, mapping(default_factory=path_class)))),
            loads_at=TRUSTS),
    ]


# --- processes, executors, threads ------------------------------------------------------


def _workers() -> list[Case]:
    family = "processes, executors and threads"
    script = lambda w: text(w.file("evil.sh"))  # noqa: E731
    return [
        Case("SpawnContext.set_executable(script) then Pool(1)", family, lambda w: pkl(
            method(new(glob("multiprocessing.context", "SpawnContext")), "set_executable", script(w))
            + b"0" + method(new(glob("multiprocessing.context", "SpawnContext")), "Pool", number(1)))),
        Case("multiprocessing.set_executable(script)", family, lambda w: pkl(call(
            glob("multiprocessing", "set_executable"), script(w)))),
        Case("multiprocessing.pool.Pool(1)", family, lambda w: pkl(call(glob("multiprocessing.pool", "Pool"),
                                                                        number(1)))),
        Case("torch.multiprocessing.pool.Pool(1) (it sets the start method)", family, lambda w: pkl(call(
            glob("torch.multiprocessing.pool", "Pool"), number(1)))),
        Case("ThreadPoolExecutor(1).submit(Path(p).touch)", family, lambda w: pkl(method(
            call(glob("concurrent.futures.thread", "ThreadPoolExecutor"), number(1)), "submit",
            attr(path(w.sentinel), "touch")))),
        Case("ProcessPoolExecutor(1)", family, lambda w: pkl(call(
            glob("concurrent.futures.process", "ProcessPoolExecutor"), number(1)))),
        Case("threading.Thread(target=...).start()", family, lambda w: pkl(method(keywords(
            glob("threading", "Thread"), (), {"target": glob("pathlib", "Path.touch"), "args": tup(path(w.sentinel))}),
            "start"))),
        Case("_thread.start_new_thread", family, lambda w: pkl(call(
            glob("_thread", "start_new_thread"), glob("pathlib", "Path.touch"), tup(path(w.sentinel))))),
        Case("a worker thread that starts a thread", family, lambda w: pkl(method(
            call(glob("concurrent.futures.thread", "ThreadPoolExecutor"), number(1)), "submit",
            attr(call(glob("threading", "Timer"), number(0), glob("pathlib", "Path.touch"), items(path(w.sentinel))),
                 "start")))),
        Case("sklearn Parallel, its instance called with tasks", family, lambda w: pkl(call(built(
            new(glob("sklearn.utils.parallel", "Parallel")), mapping(n_jobs=number(2), _backend=NONE)),
            items(tup(glob("pathlib", "PosixPath"), tup(text(w.sentinel)), EMPTY_DICT))))),
        Case("iter(a torch DataLoader with workers)", family, lambda w: pkl(call(glob("builtins", "iter"), built(
            new(glob("torch.utils.data.dataloader", "DataLoader")),
            mapping(dataset=items(number(1)), num_workers=number(2), batch_size=number(1)))))),
    ]


# --- restored objects carrying callables ----------------------------------------------------


def _carried() -> list[Case]:
    family = "restored objects carrying callables from the file"
    executor = glob("concurrent.futures.thread", "ThreadPoolExecutor")
    return [
        Case("an executor's initializer os.system", family, lambda w: pkl(keywords(
            executor, (number(1),), {"initializer": glob("posix", "system"), "initargs": tup(text(w.touch()))}))),
        Case("an executor's initializer, a reviewed function", family, lambda w: pkl(call(
            executor, number(1), text(""), glob("logging", "getLogger"), tup(text("x"))))),
        Case("an executor's initializer, a torch class writing a file, by keyword", family, lambda w: pkl(keywords(
            executor, (number(1),), {"initializer": EXPORTER, "initargs": tup(text(w.keep))}))),
        Case("an executor's initializer, a torch class writing a file (restored as None)", family, lambda w: pkl(
            call(executor, number(1), text(""), EXPORTER, tup(text(w.keep)))), loads_at=(TORCH,), verify=True),
        Case("an executor's initializer, a reviewed class filling memory (dropped: verify submits)", family,
             lambda w: pkl(call(executor, number(1), text(""), glob("collections", "deque"), tup(call(
                 glob("builtins", "range"), number(10**6))))), loads_at=TRUSTS, verify=True),
        Case("an executor's initializer set as its state", family, lambda w: pkl(built(new(executor), mapping(
            _initializer=EXPORTER, _initargs=tup(text(w.keep)), _max_workers=number(1))))),
        Case("an executor's initializer set as state after its constructor", family, lambda w: pkl(built(call(
            executor, number(1)), mapping(_initializer=glob("collections", "deque"), _initargs=tup(text("x")))))),
        Case("a condition whose lock methods the file set, exercised by verify", family, lambda w: pkl(built(
            new(glob("threading", "Condition")), mapping(
                _lock=call(glob("_thread", "allocate_lock")), acquire=glob("logging", "StreamHandler"),
                release=glob("logging", "StreamHandler"), _waiters=call(glob("collections", "deque"))))),
             loads_at=TRUSTS, verify=True),
        Case("a condition whose own methods the file set", family, lambda w: pkl(built(
            new(glob("threading", "Condition")), mapping(_lock=call(glob("_thread", "allocate_lock")),
                                                         _release_save=glob("logging", "StreamHandler"))))),
        Case("a defaultdict's factory, a torch class", family, lambda w: pkl(call(
            glob("collections", "defaultdict"), EXPORTER)), loads_at=(TORCH,)),
        Case("a defaultdict's factory, os.system", family, lambda w: pkl(call(
            glob("collections", "defaultdict"), glob("posix", "system")))),
        Case("a QueueListener's handlers", family, lambda w: pkl(built(new(glob("logging.handlers", "QueueListener")),
            mapping(queue=call(glob("queue", "SimpleQueue")), handlers=tup(built(new(glob("logging", "StreamHandler")),
                    mapping(stream=call(glob("types", "SimpleNamespace")), level=number(0), filters=items(),
                            formatter=NONE, _name=NONE))), respect_handler_level=FALSE, _thread=NONE))),
            loads_at=TRUSTS),
        Case("a torch forward hook, a function", family, lambda w: pkl(built(new(glob(
            "torch.nn.modules.linear", "Linear")), mapping(_forward_hooks=call(
                glob("collections", "OrderedDict"), items(tup(number(0), glob("logging", "getLogger")))))))),
        Case("a torch forward hook, a torch class writing a file", family, lambda w: pkl(built(new(glob(
            "torch.nn.modules.linear", "Linear")), mapping(_forward_hooks=call(
                glob("collections", "OrderedDict"), items(tup(number(0), EXPORTER))))))),
        Case("a finalizer calling what the file set (StorageWeakRef.__del__)", family, lambda w: pkl(built(
            new(glob("torch.multiprocessing.reductions", "StorageWeakRef")),
            tup(NONE, mapping(cdata=text(w.keep), _free_weak_ref=EXPORTER))))),
        Case("a finalizer with a reviewed class (StorageWeakRef.__del__ allocating)", family, lambda w: pkl(built(
            new(glob("torch.multiprocessing.reductions", "StorageWeakRef")),
            tup(NONE, mapping(cdata=number(1 << 40), _free_weak_ref=glob("builtins", "bytearray")))))),
        Case("a handler flushing at exit through a stream whose flush the file set", family, lambda w: pkl(built(
            new(glob("logging", "StreamHandler")), mapping(
                stream=built(call(glob("types", "SimpleNamespace")), mapping(write=EXPORTER, flush=EXPORTER)),
                level=number(0), filters=items(), formatter=NONE, _name=NONE)))),
        Case("weakref.proxy(obj, callback): a callback fires when the object dies", family, lambda w: pkl(call(
            glob("_weakref", "proxy"), call(glob("builtins", "set")), glob("pathlib", "Path.touch")))),
        Case("a weak proxy to a function (calling the proxy calls it)", family, lambda w: pkl(call(
            glob("_weakref", "proxy"), glob("pathlib", "Path.touch")))),
        Case("weakref.finalize(obj, Path.touch, p)", family, lambda w: pkl(call(
            glob("weakref", "finalize"), call(glob("types", "SimpleNamespace")), glob("pathlib", "Path.touch"),
            path(w.sentinel)))),
        Case("atexit.register(os.system, touch)", family, lambda w: pkl(call(
            glob("atexit", "register"), glob("posix", "system"), text(w.touch())))),
    ]


# --- logging and diskcache, trusted by the user ----------------------------------------------

LOGGING = ("logging",)
FILE_HANDLER = ("logging:FileHandler",)
SOCKET_HANDLER = ("logging.handlers:SocketHandler",)
DISKCACHE = ("diskcache",)


def _trusted_by_the_user() -> list[Case]:
    family = "logging and diskcache, trusted by the user"
    return [
        Case("FileHandler(keep, 'w') called (it would truncate at load)", family, lambda w: pkl(call(
            glob("logging", "FileHandler"), text(w.keep), text("w"))),
            trusts=(NO_TRUST, LOGGING, FILE_HANDLER)),
        Case("FileHandler(keep, 'w', delay=True): opens nothing at load or exit", family, lambda w: pkl(keywords(
            glob("logging", "FileHandler"), (text(w.keep), text("w")), {"delay": TRUE})),
            trusts=(NO_TRUST, LOGGING, FILE_HANDLER), loads_at=(FILE_HANDLER,), registers=True),
        Case("a FileHandler built from its state", family, lambda w: pkl(built(new(glob("logging", "FileHandler")),
            mapping(baseFilename=text(w.keep), mode=text("w"), stream=NONE, level=number(0), filters=items(),
                    formatter=NONE, _name=NONE, encoding=NONE, delay=TRUE, errors=NONE))),
            trusts=(NO_TRUST, LOGGING), loads_at=(LOGGING,)),
        Case("SocketHandler to the listener: no connection at load or exit", family, lambda w: pkl(call(
            glob("logging.handlers", "SocketHandler"), text("127.0.0.1"), number(w.port))),
            trusts=(NO_TRUST, LOGGING, SOCKET_HANDLER), loads_at=(SOCKET_HANDLER,), registers=True),
        Case("MemoryHandler flushing records to a FileHandler", family, lambda w: pkl(built(
            new(glob("logging.handlers", "MemoryHandler")), mapping(
                capacity=number(1), flushLevel=number(0), flushOnClose=TRUE, level=number(0), filters=items(),
                formatter=NONE, _name=NONE, buffer=items(call(glob("logging", "makeLogRecord"), mapping(msg=text(
                    MARK_TEXT)))), target=built(new(glob("logging", "FileHandler")), mapping(
                        baseFilename=text(w.keep), mode=text("w"), stream=NONE, level=number(0), filters=items(),
                        formatter=NONE, _name=NONE, encoding=NONE, delay=TRUE, errors=NONE))))),
            trusts=(NO_TRUST, LOGGING)),
        Case("a Logger called into being, detached", family, lambda w: pkl(call(glob("logging", "Logger"),
                                                                                text("ckpt.corpus.trusted"))),
             trusts=(NO_TRUST, LOGGING), loads_at=(LOGGING,)),
        Case("diskcache Cache.__setstate__ (opens a directory and a database)", family, lambda w: pkl(
            _cache(w.file("cache"))), trusts=(NO_TRUST, DISKCACHE)),
        Case("diskcache Cache over the victim's directory", family, lambda w: pkl(_cache(w.victim_dir)),
             trusts=(NO_TRUST, DISKCACHE)),
    ]


def _cache(directory: str) -> bytes:
    """diskcache's Cache as it pickles itself: (directory, timeout, disk class), which __setstate__ opens."""
    return built(new(glob("diskcache.core", "Cache")), tup(text(directory), number(60), glob("diskcache.core", "Disk")))


# --- imports and loggers ------------------------------------------------------------------


def _imports() -> list[Case]:
    family = "an import with side effects, a logger by name"
    sklearn, torch = (NO_TRUST, ("sklearn",)), (NO_TRUST, TORCH)
    return [
        Case("enable_iterative_imputer:IterativeImputer", family, lambda w: pkl(new(glob(
            "sklearn.experimental.enable_iterative_imputer", "IterativeImputer"))), trusts=sklearn, preimport=False),
        Case("enable_iterative_imputer:impute (bound by an augmented assignment)", family, lambda w: pkl(glob(
            "sklearn.experimental.enable_iterative_imputer", "impute")), trusts=sklearn, preimport=False),
        Case("enable_halving_search_cv:HalvingGridSearchCV", family, lambda w: pkl(new(glob(
            "sklearn.experimental.enable_halving_search_cv", "HalvingGridSearchCV"))), trusts=sklearn,
            preimport=False),
        Case("a function in a torch package whose __init__ registers exit hooks", family, lambda w: pkl(call(glob(
            "torch._inductor.codecache", "compile_file"), text(w.sentinel))), trusts=torch, preimport=False,
            source="picklescan tests/data/malicious17.pkl"),
        Case("a method of a class in a torch module not imported yet", family, lambda w: pkl(call(glob(
            "torch._dynamo.guards", "GuardBuilder.get"), text("__import__('os').system('true')"))), trusts=torch,
            preimport=False, source="picklescan GHSA-86cj-95qr-2p4f"),
        Case("a torch module that execs code as it is imported", family, lambda w: pkl(call(glob(
            "torch.jit.unsupported_tensor_ops", "execWrapper"), text(w.python()), EMPTY_DICT, EMPTY_DICT)),
            trusts=torch, preimport=False, source="picklescan GHSA-vr7h-p6mm-wpmh"),
        Case("getLogger of a new name (restored detached)", family, lambda w: pkl(call(
            glob("logging", "getLogger"), text("ckpt.corpus.brand.new"))), loads_at=TRUSTS, preimport=False),
        Case("getLogger of a new child of an existing logger", family, lambda w: pkl(call(
            glob("logging", "getLogger"), text("concurrent.futures.ckpt_corpus"))), loads_at=TRUSTS,
            preimport=False),
        Case("a logger's manager reached through getattr", family, lambda w: pkl(method(call(
            glob("logging", "getLogger")), "getChild", text("ckpt.corpus.child")))),
    ]


# --- public collections, regenerated ------------------------------------------------------


def _public() -> list[Case]:
    """Techniques of picklescan's test data and advisories (tests/data, tests/data2
    in mmaitre314/picklescan), each written again here; the effect aims at the workspace."""
    family = "hostile pickles from public collections"
    touch = lambda w: text(w.touch())  # noqa: E731
    code = lambda w: text(w.python())  # noqa: E731

    def row(name: str, ghsa: str, payload: Callable[[Work], bytes], trusts: tuple[tuple[str, ...], ...] = TRUSTS,
            preimport: bool = True) -> Case:
        return Case(name, family, payload, trusts=trusts, source=f"picklescan {ghsa}", preimport=preimport)

    return [
        row("profile.Profile.run", "GHSA-x696-vm39-cp64", lambda w: pkl(call(
            glob("profile", "Profile.run"), call(glob("profile", "Profile")), code(w)))),
        row("cProfile.runctx", "GHSA-9w88-8rmg-7g2p", lambda w: pkl(call(
            glob("cProfile", "runctx"), code(w), EMPTY_DICT, EMPTY_DICT))),
        row("trace.Trace.runctx", "GHSA-g344-hcph-8vgg", lambda w: pkl(call(
            glob("trace", "Trace.runctx"), call(glob("trace", "Trace")), code(w), EMPTY_DICT, EMPTY_DICT))),
        row("timeit.timeit", "tests/data2/malicious21.pkl", lambda w: pkl(call(
            glob("timeit", "timeit"), code(w), text("pass"), NONE, number(1)))),
        row("doctest.debug_script", "GHSA-fqq6-7vqf-w3fg", lambda w: pkl(call(
            glob("doctest", "debug_script"), code(w)))),
        row("pkgutil.resolve_name to os.system", "GHSA-vvpj-8cmc-gx39", lambda w: pkl(call(call(
            glob("pkgutil", "resolve_name"), text("os:system")), touch(w)))),
        row("ensurepip._run_pip", "GHSA-xp4f-hrf8-rxw7", lambda w: pkl(call(
            glob("ensurepip", "_run_pip"), items(text("--version"))))),
        row("numpy.f2py.crackfortran.getlincoef evals", "GHSA-r8g5-cgf2-4m4m", lambda w: pkl(call(
            glob("numpy.f2py.crackfortran", "getlincoef"), text(f"__import__('os').system({w.touch()!r})"),
            EMPTY_DICT))),
        row("numpy.testing runstring", "tests/data2/malicious22.pkl", lambda w: pkl(call(
            glob("numpy.testing._private.utils", "runstring"), code(w), EMPTY_DICT))),
        row("pty.spawn", "GHSA-vqmv-47xg-9wpr", lambda w: pkl(call(glob("pty", "spawn"), items(
            text("touch"), text(w.sentinel))))),
        row("ctypes.CDLL of a path", "GHSA-4675-36f9-wf6r", lambda w: pkl(call(
            glob("ctypes", "CDLL"), text(w.file("evil.so"))))),
        row("asyncio _UnixSubprocessTransport._start", "GHSA-q77w-mwjj-7mqx", lambda w: pkl(call(
            glob("asyncio.unix_events", "_UnixSubprocessTransport._start"), NONE, items(text("touch"),
                                                                                    text(w.sentinel)),
            TRUE, NONE, NONE, NONE, number(0)))),
        row("torch.utils.collect_env.run", "GHSA-f745-w6jp-hpxx", lambda w: pkl(call(
            glob("torch.utils.collect_env", "run"), touch(w)))),
        row("torch ConfigModule.load_config (pickle.loads)", "GHSA-vv6j-3g6g-2pvj", lambda w: pkl(call(
            glob("torch.utils._config_module", "ConfigModule.load_config"), NONE, blob(pickle.dumps(
                {"x": 1})))), trusts=(NO_TRUST, TORCH)),
        row("torch.serialization.load through partial", "tests/data/malicious19.pkl", lambda w: pkl(call(call(
            glob("functools", "partial"), glob("torch.serialization", "load"), text(w.file("evil.pt")))))),
        row("BUILD on the torch._utils module", "tests/data/sys_module_override_sploit.pkl", lambda w: pkl(built(
            glob("torch", "_utils"), mapping(_rebuild_tensor=glob("posix", "system"))))),
        row("ShapeEnv.evaluate_guards_expression", "GHSA-f4x7-rfwp-v3xw", lambda w: pkl(call(glob(
            "torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression"), NONE,
            text(f"__import__('os').system({w.touch()!r})"), EMPTY_LIST)), trusts=(NO_TRUST, TORCH),
            preimport=False),
        row("types.CodeType", "tests/data2/types_CodeType.pkl", lambda w: pkl(call(glob("types", "CodeType"),
                                                                                    *[number(0)] * 5))),
        row("_io.FileIO(keep, 'w')", "tests/data2/io_FileIO.pkl", lambda w: pkl(call(
            glob("_io", "FileIO"), text(w.keep), text("w")))),
        row("a global whose module name is computed (type confusion)", "tests/data2/type-confusion-exploit.pkl",
            lambda w: pkl(call(glob("builtins", "str"), text("posix")) + text("system") + STACK_GLOBAL
                          + MARK + touch(w) + b"t" + b"R")),
        row("NEWOBJ of a class named as a function", "tests/data2 (the NEWOBJ spelling)", lambda w: pkl(
            glob("posix", "system") + tup(touch(w)) + NEWOBJ)),
        Case("protocol 0 text, escaped (benign)", family, lambda w: b"(lp0\nVtext \\u00e9\\u1234\np1\na.",
             loads_at=TRUSTS, source="picklescan tests/data/benign0_v0.pkl (its codec was imported mid-load)",
             preimport=False),
    ]


CASES: tuple[Case, ...] = (*_bound_methods(), *_state_keys(), *_workers(), *_carried(), *_trusted_by_the_user(),
                           *_imports(), *_public())
FAMILIES = sorted({case.family for case in CASES})
