"""Turn checkpoint bytes into objects without running code nobody trusted.

Loading is parse -> audit -> construct (as in skops): the container has
already checked every member's hash; then

1. parse: `stream.analyse` reads data.pkl's opcodes and lists every global
   with each use the stream makes of it, and anything no ordinary pickle
   does (state given to a global, calls of computed objects, ...);
2. audit: `policy.judge` resolves each global by exact identity and checks
   every use against its role; any refusal or problem stops the load here,
   before anything from the file is built, naming every refused global and
   the narrowest --trust that admits it;
3. construct: the C unpickler runs with a `find_class` that hands out exactly
   the objects the audit resolved (or their argument guards, `guards`).

Nothing is undone afterwards because nothing unsafe is done: state only
reaches instances the load creates, and the code that runs is an admitted
class's own `__new__`, `__init__` or `__setstate__` and the reviewed
reconstructors. Trusting a class trusts that code, but not the file's: while
the unpickler runs, an audit hook (`sys.addaudithook`) refuses compiling text
that comes from the file (scipy's distributions exec source kept in their
state), starting processes, opening network connections and loading native
libraries, whoever asks. The unpickler runs on a stack deep enough that
hashing deeply nested tuples cannot crash the interpreter (`audit.crash_proof`).
"""

from __future__ import annotations

import io
import pickle
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .audit import crash_proof, fresh_extension_cache
from .errors import CheckpointError, one_line
from .guards import GUARDS, Context
from .policy import Judgement, Trust, judge
from .reviewed import CLASS
from .stream import StreamFacts, analyse, collector_paused


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, handed: dict[str, Any], buffers: Iterable[Any] | None) -> None:
        super().__init__(file, buffers=buffers)
        self.handed = handed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.handed[f"{module}:{name}"]
        except KeyError:  # the analysis saw every global: a stream that disagrees with it is refused
            raise CheckpointError(f"data.pkl asks for {module}:{name}, which its analysis did not find") from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("data.pkl uses a persistent id; ckpt never resolves them")


FORBIDDEN_EVENTS = frozenset({
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "subprocess.Popen",
    "pty.spawn", "socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo",
    "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect", "imaplib.open", "poplib.connect",
    "nntplib.connect", "telnetlib.Telnet.open", "webbrowser.open",
})
"""Audit events refused while a checkpoint's objects are built: no object's
own pickling starts a process or opens a connection. (ctypes is allowed:
lightgbm and xgboost rebuild their boosters through their own ctypes bindings.)"""

_loading = threading.local()


def _watch(event: str, args: tuple[Any, ...]) -> None:
    data = getattr(_loading, "data", None)
    if data is None:
        return
    if event in FORBIDDEN_EVENTS:
        _loading.violation = f"{event} was called while its objects were built"
    elif event == "compile" and _from_file(args[0], data):
        _loading.violation = "code from the file itself was compiled while its objects were built"
    else:
        return
    raise CheckpointError(f"data.pkl: {_loading.violation}; ckpt refuses it")


def _from_file(source: Any, data: bytes) -> bool:
    """Source text that appears in the pickle: the file supplied the code
    (networkx compiles code of its own while it loads: that is allowed)."""
    if isinstance(source, str):
        source = source.encode("utf-8", "surrogatepass")
    return isinstance(source, bytes) and len(source) >= 4 and source in data


_hooked: list[bool] = []


def _watched(work: Callable[[], Any], data: bytes) -> Callable[[], Any]:
    """`work`, run with the audit hook armed for `data` (in whatever thread runs it)."""
    if not _hooked:
        sys.addaudithook(_watch)
        _hooked.append(True)

    def run() -> Any:
        _loading.data, _loading.violation = data, None
        try:
            with collector_paused():  # what a load builds is new and reachable
                result = work()
        finally:
            violation, _loading.data = _loading.violation, None
        if violation:  # raised inside a class's own code, which may have swallowed it
            raise CheckpointError(f"data.pkl: {violation}; ckpt refuses it")
        return result

    return run


def audited(data: Any, trust: Trust, facts: StreamFacts | None = None) -> Judgement:
    """Parse and audit: what loading `data` under `trust` would admit and
    refuse (a file that is refused anyway imports nothing more to say so).
    `facts`: the analysis of `data`, if the caller has it already."""
    return judge(facts or analyse(data), trust, complete=False)


def unpickle(data: Any, *, trust: Trust, buffers: Iterable[Any] | None = None, what: str = "data.pkl",
             facts: StreamFacts | None = None) -> Any:
    """Unpickle `data` under `trust`; raises UnsafeCheckpointError or CheckpointError."""
    judgement = audited(data, trust, facts)
    if not judgement.ok:
        raise judgement.refusal(what)
    buffers = list(buffers) if buffers is not None else None
    limit = max(len(memoryview(data)), 1) * 8 + sum(memoryview(b).nbytes for b in (buffers or ()))
    context = Context(limit, {id(a.obj) for a in judgement.admissions.values() if a.kind == CLASS})
    handed = {name: GUARDS[a.handed](a.obj, context) if a.handed else a.obj
              for name, a in judgement.admissions.items()}
    unpickler = _Unpickler(io.BytesIO(data), handed, buffers)
    try:
        with fresh_extension_cache():
            return crash_proof(_watched(unpickler.load, bytes(data)), data)
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"cannot load {what}: it is nested too deeply") from None
    except MemoryError:
        raise CheckpointError(f"cannot load {what}: it needs more memory than is available") from None
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {one_line(str(exc))}") from None
