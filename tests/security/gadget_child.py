"""Run gadget payloads in a throwaway process and report what they changed.

    python gadget_child.py < jobs.json > results.json

jobs.json: {"mode": "ckpt" | "plain", "jobs": [{"name", "path", "work",
"modules", "trusts", "loads_trusts", "verify"}]}. The process imports numpy, scipy,
sklearn, pandas and torch once, then forks once per job (a fresh,
disposable copy of an interpreter that already has the libraries): the
fork imports the modules the payload names (as a loader resolving them
would; none when the job lists none), snapshots the process, runs the load
-- `ckpt.load` at each of `trusts` (and `ckpt.verifying`, whose
probes exercise what loaded, when the job says so) and `ckpt.loads` at
each of `loads_trusts` in "ckpt" mode, plain `pickle.loads` in "plain" mode --
with the harm oracle's audit hook recording (harm.py), snapshots again,
then does what interpreter exit does (joins the threads it would wait for,
runs the exit hooks, flushes logging's handlers, collects what the loads
returned: a payload may act only then), and reports as JSON: what each
load returned or raised, the audit events it caused from any thread and
every difference in process state. Files and connections are checked by
the caller, after the process is gone.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import pickle
import signal
import sys
import time
import traceback
import warnings
import zipfile
from typing import Any

from harm import Recorder, difference, exit_as_the_interpreter_does, snapshot

LIBRARIES = ("numpy", "scipy", "scipy.stats", "scipy.io", "sklearn", "sklearn.datasets", "pandas", "torch",
             "torch.fx", "joblib")

RECORDER: Recorder | None = None
"""Made after the libraries are imported: what they do then is not a load's doing."""


# --- running one job ------------------------------------------------------------


def _data_pkl(path: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("data.pkl")


def _attempt(run: Any) -> dict[str, Any]:
    assert RECORDER is not None
    before = snapshot()
    outcome: dict[str, Any] = {}
    with RECORDER as events:
        _run(run, outcome)
    outcome["events"] = events
    outcome["diff"] = difference(before, snapshot())
    return outcome


def _run(run: Any, outcome: dict[str, Any]) -> None:
    try:
        outcome["returned"] = type(_keep(run())).__name__
    except BaseException as exc:  # noqa: BLE001 - we report every kind
        outcome["raised"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
        outcome["message"] = " ".join(str(exc).split())[:300]
        outcome["ckpt_error"] = _is_ckpt_error(exc)
        if not outcome["ckpt_error"]:
            outcome["traceback"] = traceback.format_exc()[-1500:]
        del exc


def _verified(report: Any) -> Any:
    """verify's report, as a load's result: refused if its load was (a probe
    that fails is a finding about the object, not an effect)."""
    failures = [c for c in report.failures if c.name == "load"]
    if failures:
        raise sys.modules["ckpt"].CheckpointError("; ".join(f"{c.name}: {c.detail}" for c in failures))
    return report


def _is_ckpt_error(exc: BaseException) -> bool:
    api = sys.modules.get("ckpt")
    return api is not None and isinstance(exc, api.CkptError)


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
        attempt = _attempt(lambda: pickle.loads(data))
        report["attempts"].append({"trust": None, **attempt})
    else:
        import ckpt

        data = _data_pkl(job["path"])
        for trust in job["trusts"]:
            runs = [("load", lambda: ckpt.load(job["path"], trust=trust))]
            if trust in job.get("loads_trusts", []):
                runs.append(("loads", lambda: ckpt.loads(data, trust=trust)))
            if job.get("verify"):  # a load, then ckpt's probes exercise what it restored
                runs.append(("verify", lambda: _verified(ckpt.verify(job["path"], trust=trust))))
            for how, run in runs:
                report["attempts"].append({"trust": trust, "how": how, **_attempt(run)})
    assert RECORDER is not None
    with RECORDER as events:  # a plain pickle's objects stay: torch's FileStore removes its file when collected
        exit_as_the_interpreter_does(_KEPT if mode == "ckpt" else [])
    report["at_exit"] = events
    return report


_KEPT: list[Any] = []


def _keep(obj: Any) -> Any:
    """What a load returned stays alive until exit, as a user's model would."""
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
            import ckpt  # noqa: F401

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
    global RECORDER
    RECORDER = Recorder()
    results = []
    for job in spec["jobs"]:
        start = time.monotonic()
        results.append(fork_job(mode, job, spec.get("timeout", 30)))
        results[-1]["seconds"] = round(time.monotonic() - start, 3)
    with os.fdopen(report_fd, "w") as out:
        json.dump(results, out)


def _warm_up(path: str | None) -> None:
    """Whatever the loader imports lazily on its first load, refusal or not, is not the payload's doing."""
    import ckpt

    if path:
        for run in (lambda: ckpt.load(path), lambda: ckpt.verify(path), lambda: ckpt.inspect(path)):
            try:
                run()
            except Exception:
                pass
    for data in (b"\x80\x04cposix\nsystem\n.", b"\x80\x04csklearn.base\nBaseEstimator\n)\x81.",
                 b"\x80\x04ctorch.fx.graph_module\nreduce_graph_module\n."):
        for trust in ((), ("sklearn", "torch")):
            try:
                ckpt.loads(data, trust=trust)
            except Exception:
                pass


if __name__ == "__main__":
    main()
