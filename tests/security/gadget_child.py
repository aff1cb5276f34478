"""Run gadget payloads in a throwaway process and report what they changed.

    python gadget_child.py < jobs.json > results.json

jobs.json: {"mode": "ckpt" | "plain", "jobs": [{"name", "path", "work",
"modules", "trusts"}]}. The process imports numpy, scipy, sklearn, pandas
and torch once, installs an audit hook, then forks once per job (a fresh,
disposable copy of an interpreter that already has the libraries): the
fork imports the modules the payload names (as a loader resolving them
would), snapshots the process, runs the load -- `ckpt.core.load` and
`ckpt.core.loads` for each trust level in "ckpt" mode, plain
`pickle.loads` in "plain" mode -- snapshots again, runs the exit hooks (a
payload may act only at interpreter exit), and reports as JSON: the
exception each load raised, the audit events it caused and every
difference in process state. Files and connections are checked by the
caller, after the process is gone.
"""

from __future__ import annotations

import atexit
import copyreg
import gc
import hashlib
import importlib
import json
import logging
import os
import pickle
import random
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
import zipfile
from typing import Any

LIBRARIES = ("numpy", "scipy", "scipy.stats", "scipy.io", "sklearn", "sklearn.datasets", "pandas", "torch",
             "torch.fx", "joblib")

RECORDING: list[Any] = []
"""While a load runs: the list its audit events go to."""

_WATCHED = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.remove",
            "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.symlink", "os.link",
            "os.utime", "os.putenv", "os.unsetenv", "os.chdir", "os.startfile", "subprocess.Popen", "pty.spawn",
            "shutil.", "tempfile.", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
            "urllib.Request", "http.client.connect", "smtplib.connect", "ftplib.connect", "imaplib.open",
            "telnetlib.Telnet.open", "webbrowser.open", "ctypes.", "marshal.load", "code.__new__", "sys.settrace",
            "sys.setprofile", "sys.addaudithook", "resource.setrlimit", "signal.pthread_kill", "mmap.__new__",
            "pdb.Pdb", "syslog.", "sqlite3.connect", "glob.glob", "os.scandir", "os.listdir")


def _is_file(name: Any) -> bool:
    return isinstance(name, str) and not name.startswith("<") and os.path.isfile(name)


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    if isinstance(flags, int):
        return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
    return False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not RECORDING:
        return
    record = RECORDING[-1]
    try:
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            if _writes(mode, flags):
                record.append(f"open for writing: {path!r} {mode!r}")
        elif event == "exec":
            code = args[0] if args else None
            name = getattr(code, "co_filename", None)
            if not _is_file(name):
                record.append(f"exec of code from {name!r}")
        elif event == "compile":
            name = args[1] if len(args) > 1 else None
            if not _is_file(name if isinstance(name, str) else None):
                record.append(f"compile of {name!r}")
        elif event == "import":
            name = args[0] if args else "?"
            if name not in sys.modules and not str(name).startswith("ckpt."):
                record.append(f"import of {name}")
        elif event.startswith(_WATCHED) and event not in ("os.listdir", "os.scandir", "glob.glob"):
            record.append(f"{event} {_short(args)}")
    except Exception as exc:  # never let the hook change what the load does
        record.append(f"audit hook failed on {event}: {exc!r}")


def _short(args: tuple[Any, ...]) -> str:
    text = repr(args)
    return text if len(text) < 200 else text[:200] + "..."


# --- process state ------------------------------------------------------------


def _digest(value: Any) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def snapshot() -> dict[str, Any]:
    gc.collect()
    state: dict[str, Any] = {
        "sys.modules": sorted(sys.modules),
        "os.environ": dict(os.environ),
        "sys.path": list(sys.path),
        "sys.meta_path": [repr(f) for f in sys.meta_path],
        "sys.path_hooks": [repr(h) for h in sys.path_hooks],
        "sys.hooks": [id(sys.excepthook), id(sys.displayhook), id(sys.stdout), id(sys.stderr), id(sys.stdin),
                      id(sys.unraisablehook), id(sys.breakpointhook)],
        "sys.recursionlimit": sys.getrecursionlimit(),
        "sys.switchinterval": sys.getswitchinterval(),
        "copyreg.dispatch_table": sorted((repr(k), id(v)) for k, v in copyreg.dispatch_table.items()),
        "copyreg._extension_registry": sorted(map(repr, copyreg._extension_registry.items())),
        "copyreg._inverted_registry": sorted(map(repr, copyreg._inverted_registry.items())),
        "logging.root": [[id(h) for h in logging.root.handlers], logging.root.level, logging.root.disabled,
                         [id(f) for f in logging.root.filters]],
        "logging.manager": [logging.root.manager.disable, sorted(logging.root.manager.loggerDict)],
        "logging.classes": [id(logging.getLoggerClass()), id(logging.getLogRecordFactory()),
                            logging.raiseExceptions, logging.lastResort is None],
        "logging live handlers": sorted(repr(type(r())) for r in logging._handlerList if r() is not None),
        "warnings.filters": [repr(f) for f in warnings.filters],
        "warnings.showwarning": id(warnings.showwarning),
        "atexit callbacks": atexit._ncallbacks(),
        "threads": sorted(t.name for t in threading.enumerate()),
        "gc.enabled": gc.isenabled(),
        "cwd": os.getcwd(),
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


# --- running one job ------------------------------------------------------------


def _data_pkl(path: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("data.pkl")


def _attempt(run: Any) -> dict[str, Any]:
    before = snapshot()
    outcome: dict[str, Any] = {}
    RECORDING.append([])
    try:
        result = run()
        outcome["returned"] = type(result).__name__
        del result
    except BaseException as exc:  # noqa: BLE001 - we report every kind
        outcome["raised"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        outcome["message"] = " ".join(str(exc).split())[:300]
        outcome["ckpt_error"] = _is_ckpt_error(exc)
        if not outcome["ckpt_error"]:
            outcome["traceback"] = traceback.format_exc()[-1500:]
        del exc
    finally:
        outcome["events"] = RECORDING.pop()
    outcome["diff"] = difference(before, snapshot())
    return outcome


def _is_ckpt_error(exc: BaseException) -> bool:
    core = sys.modules.get("ckpt.core")
    return core is not None and isinstance(exc, core.CkptError)


def run_job(mode: str, job: dict[str, Any]) -> dict[str, Any]:
    os.chdir(job["work"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in job["modules"]:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001 - a module that cannot even be imported
                pass
    report: dict[str, Any] = {"name": job["name"], "attempts": []}
    if mode == "plain":
        data = _data_pkl(job["path"])
        attempt = _attempt(lambda: _keep(pickle.loads(data)))
        report["attempts"].append({"trust": None, **attempt})
    else:
        import ckpt.core

        data = _data_pkl(job["path"])
        for trust in job["trusts"]:
            runs = [("load", lambda: ckpt.core.load(job["path"], trust=trust))]
            if trust in job.get("loads_trusts", []):
                runs.append(("loads", lambda: ckpt.core.loads(data, trust=trust)))
            for how, run in runs:
                report["attempts"].append({"trust": trust, "how": how, **_attempt(run)})
    # A payload may act only at interpreter exit (atexit, logging.shutdown).
    RECORDING.append([])
    try:
        atexit._run_exitfuncs()
        logging.shutdown()  # what interpreter exit does to every live handler
    except BaseException:  # noqa: BLE001
        pass
    finally:
        report["at_exit"] = RECORDING.pop()
    return report


_KEPT: list[Any] = []


def _keep(obj: Any) -> Any:
    """What plain pickle returned stays alive until exit, as a user's model would."""
    _KEPT.append(obj)
    return obj


def fork_job(mode: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the disposable copy
        os.close(read)
        try:
            signal.alarm(int(timeout))
            try:
                report = run_job(mode, job)
            except BaseException as exc:  # noqa: BLE001
                report = {"name": job["name"], "crashed": f"{type(exc).__name__}: {exc}"[:500]}
            raw = json.dumps(report, default=repr).encode()
            with os.fdopen(write, "wb") as out:
                out.write(raw)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        raw = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not raw:
        return {"name": job["name"], "crashed": f"the process died (status {status}): timed out or killed"}
    return json.loads(raw)


def main() -> None:
    spec = json.load(sys.stdin)
    mode = spec["mode"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in LIBRARIES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        if mode == "ckpt":
            import ckpt.core  # noqa: F401

            _warm_up(spec.get("warm_up"))
        snapshot()  # what taking a snapshot imports lazily is imported now
    gc.collect()
    gc.freeze()
    atexit._clear()  # the libraries' own exit hooks cost 50 ms a fork; each fork runs only the ones a load added  # forks then share the libraries' objects instead of copying them on the first collection
    # What payloads print must not mix with the report: fd 1 becomes /dev/null.
    sys.stdout.flush()
    report_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.addaudithook(_hook)
    results = []
    for job in spec["jobs"]:
        start = time.monotonic()
        results.append(fork_job(mode, job, spec.get("timeout", 30)))
        results[-1]["seconds"] = round(time.monotonic() - start, 3)
    with os.fdopen(report_fd, "w") as out:
        json.dump(results, out)


def _warm_up(path: str | None) -> None:
    """Whatever the loader imports lazily on its first load, refusal or not, is not the payload's doing."""
    import ckpt.core

    if path:
        for run in (lambda: ckpt.core.load(path), lambda: ckpt.core.verify(path), lambda: ckpt.core.inspect(path)):
            try:
                run()
            except Exception:
                pass
    for data in (b"\x80\x04cposix\nsystem\n.", b"\x80\x04csklearn.base\nBaseEstimator\n)\x81.",
                 b"\x80\x04ctorch.fx.graph_module\nreduce_graph_module\n."):
        for trust in ((), ("sklearn", "torch")):
            try:
                ckpt.core.loads(data, trust=trust)
            except Exception:
                pass


if __name__ == "__main__":
    main()
