"""One measurement in a fresh process: ``python -m bench.worker JOB_JSON`` prints one JSON line.

Why a process per operation: the RSS high-water mark (``ru_maxrss``) belongs
to the whole process, so an operation's peak can only be told apart in a
process that has done nothing else heavy. The worker imports everything
first, builds the model (untimed), records the RSS and ``ru_maxrss``, resets
the kernel's high-water mark (``/proc/self/clear_refs``, so the model
build's own peak cannot hide the operation's), then runs the operation a
few times, timing only the operation itself: removing the previous file
before a save, and freeing the previous result after a load, are outside
the clock.

The parent passes only JSON (model name, variant, tool, operation, path):
nothing is pickled across processes.
"""

from __future__ import annotations

import cProfile
import gc
import importlib
import io
import json
import os
import pstats
import re
import resource
import statistics
import sys
import sysconfig
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.models import MODELS, ModelSpec
from bench.tools import BY_NAME, Tool, ckpt_save

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")
_STDLIB = sysconfig.get_paths()["stdlib"] + "/"
BUILDS = {"save", "scan", "dumps"}
"""Operations that need the model in memory (the others read a file)."""


def rss_mib() -> float:
    """Resident set size now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE / MIB


def maxrss_mib() -> float:
    """The RSS high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the high-water mark to the current RSS, where the kernel allows it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, without terminal escapes, at most 200 characters."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    gc.collect()


def _dumps(obj: Any) -> int:
    import pickle

    return len(pickle.dumps(obj, protocol=5))


def _scan(obj: Any) -> int:
    import ckpt

    return len(ckpt.scan(obj).findings)


def operation(job: dict[str, Any], tool: Tool | None, obj: Any) -> tuple[Callable[[], None], Callable[[], Any]]:
    """(prepare, run) for the job: prepare is untimed, run is what the clock sees."""
    path = Path(job.get("path", ""))
    op = job["op"]
    if op == "save":
        assert tool is not None and tool.save is not None
        return lambda: _remove(path), lambda: tool.save(obj, path)
    if op in ("load", "verify"):
        assert tool is not None
        read = tool.load if op == "load" else tool.verify
        assert read is not None
        trust = tuple(job["trust"])
        return gc.collect, lambda: read(path, trust)
    if op == "scan":
        return gc.collect, lambda: _scan(obj)
    if op == "dumps":
        return gc.collect, lambda: _dumps(obj)
    raise ValueError(f"unknown operation {op!r}")


def _note(op: str, out: Any) -> Any:
    """What is kept of one run's result: a save's fsync seconds, a scan's finding count."""
    return out if op in ("save", "scan", "dumps") else None


def prepare_process(job: dict[str, Any]) -> tuple[ModelSpec, Tool | None, float]:
    """Import everything the job touches, so nothing timed pays for a first import."""
    spec = MODELS[job["model"]]
    tool = BY_NAME.get(job.get("tool", ""))
    rss_start = rss_mib()
    for module in ("ckpt", *spec.imports, *(tool.imports if tool else ())):
        importlib.import_module(module)
    return spec, tool, rss_start


def measure(job: dict[str, Any]) -> dict[str, Any]:
    spec, tool, rss_start = prepare_process(job)
    rss_imports = rss_mib()
    obj = spec.make(job["variant"], job["quick"]) if job["op"] in BUILDS else None
    gc.collect()
    rss_model = rss_mib()
    prepare, run = operation(job, tool, obj)
    result: dict[str, Any] = {"rss_start_mib": rss_start, "rss_imports_mib": rss_imports,
                              "model_mib": rss_model - rss_imports, "maxrss_before_mib": maxrss_mib()}
    times, notes = [], []
    result["peak_reset"] = reset_peak()
    result["rss_before_mib"] = rss_before = rss_mib()
    for _ in range(job["repeats"]):
        prepare()
        started = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - started)
        notes.append(_note(job["op"], out))
        del out
        if sum(times) > job["budget"]:
            break
    result["maxrss_after_mib"] = maxrss = maxrss_mib()
    result.update(ok=True, times=times, seconds=statistics.median(times), peak_extra_mib=maxrss - rss_before)
    _summarize_notes(job, notes, result)
    return result


def _summarize_notes(job: dict[str, Any], notes: list[Any], result: dict[str, Any]) -> None:
    op = job["op"]
    if op == "save":
        fsyncs = [n for n in notes if n is not None]
        result["fsync"] = statistics.median(fsyncs) if fsyncs else None
        result["size"] = os.path.getsize(job["path"])
    elif op == "scan":
        result["findings"] = notes[-1]
    elif op == "dumps":
        result["size"] = notes[-1]


# --- profiles -----------------------------------------------------------------


def profile(job: dict[str, Any]) -> dict[str, Any]:
    """cProfile (or tracemalloc with job["memory"]) of one ckpt operation on the model."""
    spec, _, _ = prepare_process(job)
    op = job["profile_op"]
    path = Path(job["path"])
    obj = spec.make("as_is", job["quick"])
    if op in ("load", "verify"):
        ckpt_save(obj, path)
        obj = None
        gc.collect()
    prepare, run = operation({**job, "op": op}, BY_NAME["ckpt"], obj)
    prepare()
    return (_tracemalloc if job.get("memory") else _cprofile)(run, job["top"])


def _cprofile(run: Callable[[], Any], top: int) -> dict[str, Any]:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(run)
    seconds = time.perf_counter() - started
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    entries = [[_label(key), calls, own, cumulative] for key, (_, calls, own, cumulative, _) in rows]
    return {"ok": True, "seconds": seconds, "text": text.getvalue(), "top": entries}


def _tracemalloc(run: Callable[[], Any], top: int) -> dict[str, Any]:
    tracemalloc.start()
    started = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - started
    snapshot = tracemalloc.take_snapshot()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    stats = snapshot.statistics("lineno")[:top]
    lines = [f"traced now {current / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB (result still alive)"]
    lines += [f"{s.size / MIB:9.1f} MiB {s.count:9d} blocks  {s.traceback[0]}" for s in stats]
    entries = [[str(s.traceback[0]), s.count, s.size / MIB, 0.0] for s in stats]
    return {"ok": True, "seconds": seconds, "text": "\n".join(lines), "top": entries, "peak_mib": peak / MIB}


def _label(key: tuple[str, int, str]) -> str:
    """`module/file.py:line(function)`, shortened to the part after site-packages, the repository or the stdlib."""
    file, line, function = key
    if file == "~":
        return function
    for marker in ("site-packages/", str(Path(__file__).resolve().parents[1]) + "/", _STDLIB):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file}:{line}({function})"


def main(argv: list[str]) -> int:
    job = json.loads(argv[1])
    try:
        result = profile(job) if job["op"] == "profile" else measure(job)
    except Exception as exc:  # a failing tool is a result (a row saying so), not a crash
        result = {"ok": False, "error": one_line(exc)}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
