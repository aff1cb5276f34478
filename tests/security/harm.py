"""The harm oracle: what a load did to the process and the disk, from any thread.

A load of an untrusted file must do nothing, so the children that run
hostile payloads (gadget_child.py, corpus_child.py, fuzz_child.py) judge it
by its effects, not by whether it raised:

- `Recorder`: an audit hook (`sys.addaudithook` hears every thread) that,
  while armed, records writes, deletions, renames, mode changes,
  connections, processes, native libraries, code compiled from text and
  modules imported, whichever thread does them;
- `snapshot` / `difference`: the process's state before and after (threads,
  registered loggers and handlers, sys.modules, os.environ, sys.path,
  multiprocessing's start method and executable, copyreg, warnings filters,
  cwd, exit hooks, and the settings of numpy, torch, sklearn and pandas);
- `tree`: a directory's contents (each file's sha256), to diff the disk.

Nothing here changes what a load does: the hook only appends to a list.
"""

from __future__ import annotations

import atexit
import copyreg
import gc
import hashlib
import importlib
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

WATCHED = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.remove",
           "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.symlink", "os.link",
           "os.utime", "os.putenv", "os.unsetenv", "os.chdir", "os.startfile", "subprocess.Popen", "pty.spawn",
           "shutil.", "tempfile.", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
           "urllib.Request", "http.client.connect", "smtplib.connect", "ftplib.connect", "imaplib.open",
           "telnetlib.Telnet.open", "webbrowser.open", "ctypes.dlopen", "marshal.load", "code.__new__", "sys.settrace",
           "sys.setprofile", "sys.addaudithook", "resource.setrlimit", "signal.pthread_kill", "mmap.__new__",
           "pdb.Pdb", "syslog.", "sqlite3.connect", "_thread.start_new_thread", "os.fchmod", "os.lchown")
"""Audit events (by prefix) that no data load causes."""


def _is_file(name: Any) -> bool:
    return isinstance(name, str) and not name.startswith("<") and os.path.isfile(name)


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    if isinstance(flags, int):
        return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
    return False


class Recorder:
    """Forbidden audit events, from any thread, while armed (`with recorder as events:`)."""

    def __init__(self) -> None:
        self._events: list[str] | None = None
        sys.addaudithook(self._hook)

    def __enter__(self) -> list[str]:
        self._events = []
        return self._events

    def __exit__(self, *exc: object) -> None:
        self._events = None

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        events = self._events
        if events is None or event == "builtins.id":
            return
        try:
            found = _forbidden(event, args)
        except Exception as exc:  # never let the hook change what the load does
            found = f"the audit hook failed on {event}: {exc!r}"
        if found:
            where = threading.current_thread().name
            events.append(found if where == "MainThread" else f"{found} (in thread {where})")


def _forbidden(event: str, args: tuple[Any, ...]) -> str | None:
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        return f"open for writing: {path!r} {mode!r}" if _writes(mode, flags) else None
    if event == "exec":
        name = getattr(args[0] if args else None, "co_filename", None)
        return None if _is_file(name) else f"exec of code from {name!r}"
    if event == "compile":
        name = args[1] if len(args) > 1 else None
        return None if _is_file(name if isinstance(name, str) else None) else f"compile of {name!r}"
    if event == "import":
        name = args[0] if args else "?"
        return None if name in sys.modules or str(name).startswith("ckpt.") else f"import of {name}"
    if event.startswith(WATCHED):
        return f"{event} {_short(args)}"
    return None


def _short(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) < 200 else text[:200] + "..."


# --- process state ------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


_FEWEST: list[int] = []
"""The fewest threads the kernel has counted: the process's own."""


def _native_threads() -> int:
    """The process's threads as the kernel counts them (native ones too). A
    thread that was just joined may linger a moment while it exits: above
    the fewest ever counted, look again for up to 20 ms (a thread a payload
    started stays)."""
    try:
        count = len(os.listdir("/proc/self/task"))
        for _ in range(20):
            if not _FEWEST or count <= _FEWEST[0]:
                break
            time.sleep(0.001)
            count = len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()
    if not _FEWEST or count < _FEWEST[0]:
        _FEWEST[:] = [count]
    return count


def snapshot() -> dict[str, Any]:
    """What a payload could change in the process, in comparable form."""
    gc.collect()
    import multiprocessing
    import multiprocessing.spawn

    state: dict[str, Any] = {
        "sys.modules": sorted(sys.modules),
        "os.environ": dict(os.environ),
        "sys.path": list(sys.path),
        "sys.meta_path": [repr(f) for f in sys.meta_path],
        "sys.path_hooks": [repr(h) for h in sys.path_hooks],
        "sys.hooks": [id(sys.excepthook), id(sys.displayhook), id(sys.stdout), id(sys.stderr), id(sys.stdin),
                      id(sys.unraisablehook), id(sys.breakpointhook), id(threading.excepthook)],
        "sys.recursionlimit": sys.getrecursionlimit(),
        "sys.switchinterval": sys.getswitchinterval(),
        "sys.flags": [sys.dont_write_bytecode, sys.getprofile() is None, sys.gettrace() is None],
        "copyreg.dispatch_table": sorted((repr(k), id(v)) for k, v in copyreg.dispatch_table.items()),
        "copyreg._extension_registry": sorted(map(repr, copyreg._extension_registry.items())),  # type: ignore[attr-defined]
        "copyreg._inverted_registry": sorted(map(repr, copyreg._inverted_registry.items())),  # type: ignore[attr-defined]
        "logging.root": [[id(h) for h in logging.root.handlers], logging.root.level, logging.root.disabled,
                         [id(f) for f in logging.root.filters]],
        "logging.manager": [logging.root.manager.disable, sorted(logging.root.manager.loggerDict)],
        "logging.classes": [id(logging.getLoggerClass()), id(logging.getLogRecordFactory()),
                            logging.raiseExceptions, logging.lastResort is None],
        "logging live handlers": sorted(repr(type(r())) for r in logging._handlerList  # type: ignore[attr-defined]
                                        if r() is not None),
        "warnings.filters": [repr(f) for f in warnings.filters],
        "warnings.showwarning": id(warnings.showwarning),
        "atexit callbacks": atexit._ncallbacks(),  # type: ignore[attr-defined]
        "threads": sorted(f"{t.name} {t.ident}" for t in threading.enumerate()),
        "native threads": _native_threads(),
        "multiprocessing": [multiprocessing.get_start_method(allow_none=True),
                            multiprocessing.spawn.get_executable(), len(multiprocessing.active_children())],
        "gc.enabled": gc.isenabled(),
        "cwd": os.getcwd(),
        "umask": _umask(),
        "signals": [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)],
        "socket.defaulttimeout": socket.getdefaulttimeout(),
        "random": _digest(random.getstate()),
        "builtins": sorted((k, id(v)) for k, v in vars(importlib.import_module("builtins")).items() if k != "_"),
    }
    np = sys.modules.get("numpy")
    if np is not None:
        state["numpy.geterr"] = np.geterr()
        state["numpy.geterrcall"] = repr(np.geterrcall())
        state["numpy.printoptions"] = repr(np.get_printoptions())
        legacy = np.random.get_state()
        state["numpy.random"] = _digest((legacy[0], hashlib.sha256(legacy[1].tobytes()).hexdigest(), legacy[2:]))
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = [repr(torch.get_default_dtype()), torch.initial_seed(), torch.get_num_threads(),
                          torch.are_deterministic_algorithms_enabled(), repr(torch.get_default_device()),
                          hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()]
    sklearn = sys.modules.get("sklearn")
    if sklearn is not None:
        state["sklearn.get_config"] = repr(sorted(sklearn.get_config().items()))
    pandas_config = sys.modules.get("pandas._config.config")
    if pandas_config is not None:
        state["pandas options"] = _digest(pandas_config._global_config)
    return state


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    diff: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list) and key in ("sys.modules", "sys.path", "threads",
                                                                       "warnings.filters"):
            diff[key] = {"added": [x for x in new if x not in old][:20], "removed": [x for x in old if x not in new][:20]}
        elif isinstance(old, dict) and isinstance(new, dict):
            diff[key] = {k: [old.get(k), new.get(k)] for k in set(old) | set(new) if old.get(k) != new.get(k)}
        else:
            diff[key] = [_short((old,)), _short((new,))]
    return diff


def tree(root: Path) -> dict[str, str]:
    """Everything under root: a directory, a link's target, or a file's sha256 and mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel] = f"dir {path.stat().st_mode:o}"
        else:
            found[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mode:o}"
    return found


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two `tree`s, one line each."""
    effects = []
    for rel in sorted(set(before) | set(after)):
        if before.get(rel) != after.get(rel):
            change = "created" if rel not in before else "deleted" if rel not in after else "changed"
            effects.append(f"{rel} {change}")
    return effects


def exit_as_the_interpreter_does(kept: list[Any]) -> None:
    """What interpreter exit runs, where a payload may act only then: the
    threads it waits for, the exit hooks, logging's flush of every live
    handler, then the finalizers of what loads returned (`kept`, emptied)."""
    try:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join(5)
        atexit._run_exitfuncs()  # type: ignore[attr-defined]
        logging.shutdown()
        kept.clear()
        gc.collect()
    except BaseException:  # noqa: BLE001 - an exit hook's failure is not the oracle's
        pass
