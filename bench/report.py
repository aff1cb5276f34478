"""Turn the benchmark's measurements into bench/RESULTS.md: machine, goals, tables, profiles.

Every ratio is against plain pickle (protocol 5) of the hand-fixed model,
the lower bound a user gets by writing `__getstate__` / `__setstate__`
themselves; scan is against `pickle.dumps` of the clean model.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.tools import PICKLE

if TYPE_CHECKING:
    import argparse

    from bench.run import ModelRun, Row

MIB = 1 << 20
ANALYSIS = Path(__file__).with_name("ANALYSIS.md")
"""The hand-written account of where the remaining time goes, copied into RESULTS.md."""
VARIANT_LABEL = {"as_is": "as is", "fixed": "hand-fixed", "clean": "clean", "weights": "state_dict", "": "—"}
QUICK_WARNING = " **--quick: tiny models (the titles give the full sizes); a smoke run, not a measurement.**"
PACKAGES = ("numpy", "torch", "scikit-learn", "dill", "joblib", "cloudpickle")


def render(
    runs: list[ModelRun], args: argparse.Namespace, *, tmp_dir: Path, seconds: float, load: tuple[float, float]
) -> str:
    """The whole RESULTS.md; `load` is the 1-minute load average at the start and the end of the run."""
    found = Found(runs, args.quick)
    parts = [
        "# ckpt benchmark results",
        f"`python bench/run.py{' --quick' if args.quick else ''}` — every model × operation in one run, "
        f"{seconds / 60:.1f} minutes wall time." + (QUICK_WARNING if args.quick else ""),
        "## Machine", "\n".join(machine(tmp_dir, load)),
        "## How to read this", "\n".join(how_to_read(args)),
        "## Goals of the full run", goals_table(found),
    ]
    if ANALYSIS.exists():
        parts.append(ANALYSIS.read_text().strip())
    for run in runs:
        parts += model_section(run, found)
    if any(run.profiles for run in runs):
        parts += ["## Where ckpt's time goes (cProfile, top functions by own time)",
                  "Reproduce with `python bench/run.py --profile OP MODEL` "
                  "(`--memory` for tracemalloc's top allocation sites)."]
        parts += [section for run in runs for section in profile_sections(run)]
    return "\n\n".join(parts) + "\n"


# --- sections bench/goals.py owns -----------------------------------------------

KEPT = ("goals:quiet", "goals:busy")
"""Marked sections of RESULTS.md that bench/goals.py writes: a full run of bench/run.py keeps them."""
_ANCHOR = "## How to read this"


def _marked(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {re.escape(name)} -->\n(.*?)\n?<!-- /{re.escape(name)} -->", re.S)


def put_marked(text: str, name: str, body: str) -> str:
    """`text` with the marked section `name` replaced in place; if it has none, the section goes
    after "How to read this" (after the marked sections already there), the rest untouched."""
    block = f"<!-- {name} -->\n{body.strip()}\n<!-- /{name} -->"
    if _marked(name).search(text):
        return _marked(name).sub(lambda _: block, text, count=1)
    ends = [found.end() for other in KEPT if (found := _marked(other).search(text))]
    if ends:
        return text[:max(ends)] + "\n\n" + block + text[max(ends):]
    anchor = text.find(_ANCHOR)
    heading = text.find("\n## ", anchor + 1) + 1 if anchor >= 0 else 0
    if heading <= 0:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:heading] + block + "\n\n" + text[heading:]


def keep_marked(new: str, old: str) -> str:
    """A freshly rendered RESULTS.md given the marked sections of the one it replaces."""
    for name in KEPT:
        found = _marked(name).search(old)
        if found:
            new = put_marked(new, name, found.group(1))
    return new


# --- looking results up -------------------------------------------------------


class Found:
    """Measurements by model, tool and operation."""

    def __init__(self, runs: list[ModelRun], quick: bool) -> None:
        self.runs = {run.spec.name: run for run in runs}
        self.quick = quick

    def result(self, model: str, tool: str, op: str, variant: str | None = None) -> dict[str, Any] | None:
        """The first successful measurement of `tool` (on `variant`, if given)."""
        run = self.runs.get(model)
        for row in run.rows + run.scans if run else ():
            if row.tool == tool and variant in (None, row.variant) and row.ok(op):
                return row.results[op]
        return None

    def seconds(self, model: str, tool: str, op: str, variant: str | None = None) -> float | None:
        found = self.result(model, tool, op, variant)
        return found["seconds"] if found else None

    def peak(self, model: str, tool: str, op: str, variant: str | None = None) -> float | None:
        found = self.result(model, tool, op, variant)
        return peak_mib(found) if found else None

    def baseline(self, model: str, op: str) -> float | None:
        """Plain pickle on the hand-fixed model; scan's baseline is pickle.dumps."""
        if op in ("scan", "dumps"):
            return self.seconds(model, "pickle.dumps", "dumps")
        return self.seconds(model, PICKLE, op, "fixed")

    def model_mib(self, model: str) -> float | None:
        """RSS growth while building the model as is (in ckpt's save worker)."""
        found = self.result(model, "ckpt", "save")
        return found["model_mib"] if found else None


def peak_mib(result: dict[str, Any]) -> float:
    """The operation's peak over the RSS before it (≥ 0: the reset puts the mark at the RSS of the moment)."""
    return max(0.0, result["peak_extra_mib"])


def ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


# --- formatting ---------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:#.3g}"


def fmt_x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def fmt_mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- machine ------------------------------------------------------------------


def machine(tmp_dir: Path, load: tuple[float, float]) -> list[str]:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    ram = _proc_field("/proc/meminfo", "MemTotal")
    ram_gib = f"{int(ram.split()[0]) / (1 << 20):.1f} GiB" if ram else "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- CPU: {cpu}, {cores} cores usable; RAM {ram_gib}; Linux {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- ckpt {_version('ckpt')} at commit {commit()}",
        f"- files written to {tmp_dir.parent} ({_mount(tmp_dir)}); run on {now}",
        f"- 1-minute load average {load[0]:.2f} at the start, {load[1]:.2f} at the end (anything above 0 is "
        "other processes sharing these cores while the benchmark ran)",
    ]


def _proc_field(path: str, name: str) -> str | None:
    try:
        with open(path) as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def commit() -> str:
    """HEAD, and whether ckpt's sources differ from it (the numbers would not be that commit's)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' with uncommitted changes in src/' if dirty else ''}"


def _mount(path: Path) -> str:
    """The device and filesystem the path lives on, from /proc/mounts."""
    best = ("", "unknown device", "unknown filesystem")
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                device, point, kind = line.split()[:3]
                if str(path).startswith(point) and len(point) >= len(best[0]):
                    best = (point, device, kind)
    except OSError:
        pass
    return f"{best[1]}, {best[2]}, mounted at {best[0] or '?'}"


def how_to_read(args: argparse.Namespace) -> list[str]:
    big = f" ({args.big_repeats} on the 500 MiB and 200 MiB models)" if args.big_repeats != args.repeats else ""
    return [
        f"- Times are the median of up to {args.repeats} runs{big}, fewer once a measurement's runs exceed "
        f"{args.budget:.0f} s, in seconds. "
        "Building the model, importing modules, deleting the previous file and freeing the previous result "
        "are never timed. The first run in a process is often the slowest (fresh memory to fault in); "
        "runs that disagree by more than a quarter are listed under each table.",
        "- **×** is the ratio to plain `pickle.dump`/`pickle.load` (protocol 5) of the *hand-fixed* model "
        "(classes with hand-written `__getstate__`/`__setstate__` that drop and recreate their thread "
        "objects): the lower bound a user gets by hand. Below 1 is faster than it.",
        "- **save** includes durability. Baselines: dump into the file, flush, `fsync` the file (the "
        "**fsync** column is that part; no atomic rename, no directory fsync). ckpt: its whole atomic write "
        "(scan, temp file, hashing, fsync, rename, directory fsync).",
        "- **load** reads a file just written (warm page cache) — for ckpt that includes checking the archive "
        "and hashing every member; **load+verify** is `load_checkpoint` then `verify(loaded=report)` "
        "(which hashes every member again and exercises each restored primitive). ×load is against pickle's "
        "load.",
        "- **peak** is the RSS high-water mark (`ru_maxrss`) during the operation minus the RSS just before "
        "it, in MiB, each operation in a fresh process after the model was built and the high-water mark "
        "reset (`/proc/self/clear_refs`). It counts the result too: a load's peak includes the loaded model.",
        "- A baseline first gets the model **as is**; if it fails, its error is shown and it is measured "
        "again on the hand-fixed model. **model size** is the RSS growth while building the model.",
    ]


# --- goals --------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    models: tuple[str, ...]
    measure: Callable[[Found, str], tuple[bool, str] | None]
    """(met, what was measured) on one model, or None if not measured."""


def _speed(tool: str, op: str, limit: float, versus: str = "") -> Callable[[Found, str], tuple[bool, str] | None]:
    """ckpt `op` time / the reference (pickle's `versus` op, default the same op) ≤ limit."""

    def measure(found: Found, model: str) -> tuple[bool, str] | None:
        value = ratio(found.seconds(model, tool, op), found.baseline(model, versus or op))
        return None if value is None else (value <= limit, fmt_x(value))

    return measure


def _faster_than(
    other: str, op: str, factor: float, *, tool: str = "ckpt", variant: str | None = None
) -> Callable[[Found, str], tuple[bool, str] | None]:
    """`other` (on `variant`) takes ≥ factor × the time of `tool`."""

    def measure(found: Found, model: str) -> tuple[bool, str] | None:
        value = ratio(found.seconds(model, other, op, variant), found.seconds(model, tool, op))
        return None if value is None else (value >= factor, f"{other} takes {fmt_x(value)} {tool}'s time")

    return measure


def _peak(tool: str, op: str, limit: float) -> Callable[[Found, str], tuple[bool, str] | None]:
    """ckpt's peak over the RSS before the operation ≤ limit × model size."""

    def measure(found: Found, model: str) -> tuple[bool, str] | None:
        peak, size = found.peak(model, tool, op), found.model_mib(model)
        if peak is None or not size:
            return None
        pickle_peak = found.peak(model, PICKLE, "load" if op == "load" else "save", "fixed")
        return peak <= limit * size, (f"+{fmt_mib(peak)} MiB = {peak / size:.2f}× model size {fmt_mib(size)} "
                                      f"MiB (pickle: +{fmt_mib(pickle_peak)})")

    return measure


def _out_of_band(found: Found, model: str) -> tuple[bool, str] | None:
    run = found.runs.get(model)
    if run is None or not run.layout or run.spec.out_of_band is None:
        return None
    expected = run.spec.out_of_band(run.spec.quick if found.quick else {})
    layout = run.layout
    aligned = "all 64-byte aligned" if layout["aligned"] else "NOT all aligned"
    return layout["buffers"] >= expected and layout["aligned"], (
        f"{layout['buffers']} buffer members for {expected} large arrays/tensors, {aligned}")


GOALS = (
    Goal("save (with hashing and fsync) ≤ 1.15× hand-fixed pickle", ("object_heavy", "array_heavy"),
         _speed("ckpt", "save", 1.15)),
    Goal("load with verification ≤ 1.2× plain pickle load", ("object_heavy", "array_heavy"),
         _speed("ckpt", "verify", 1.2, versus="load")),
    Goal("(load alone, hashing every member) ≤ 1.2× plain pickle load", ("object_heavy", "array_heavy"),
         _speed("ckpt", "load", 1.2)),
    Goal("≥ 5× faster than dill: save", ("object_heavy",), _faster_than("dill", "save", 5)),
    Goal("≥ 5× faster than dill: load", ("object_heavy",), _faster_than("dill", "load", 5)),
    Goal("arrays/tensors out of band in aligned members", ("array_heavy", "torch_service"), _out_of_band),
    Goal("load(mmap=True) ≥ 10× faster than pickle.load", ("array_heavy",),
         _faster_than(PICKLE, "load", 10, tool="ckpt mmap=True", variant="fixed")),
    Goal("load(mmap=True) memory ≈ pages touched (≤ 0.1× model size; load touches none)", ("array_heavy",),
         _peak("ckpt mmap=True", "load", 0.1)),
    Goal("peak memory during save ≤ model size + 10% (extra ≤ 0.1× model)",
         ("object_heavy", "array_heavy", "torch_service", "sklearn_pipeline"), _peak("ckpt", "save", 0.1)),
    Goal("peak memory during load ≤ 1.2× model size (no extra copy)",
         ("object_heavy", "array_heavy", "torch_service", "sklearn_pipeline"), _peak("ckpt", "load", 1.2)),
    Goal("scan of the clean model ≤ 1.5× pickle.dumps", ("object_heavy",),
         lambda found, model: _scan_ratio(found, model, "clean", 1.5)),
    Goal("scan with the 1,000 findings ≤ 5× pickle.dumps", ("object_heavy",),
         lambda found, model: _scan_ratio(found, model, "as_is", 5.0)),
)


def _scan_ratio(found: Found, model: str, variant: str, limit: float) -> tuple[bool, str] | None:
    value = ratio(found.seconds(model, "ckpt scan", "scan", variant), found.baseline(model, "dumps"))
    return None if value is None else (value <= limit, fmt_x(value))


def goals_table(found: Found) -> str:
    rows = []
    for goal in GOALS:
        measured = [(model, goal.measure(found, model)) for model in goal.models]
        known = [(model, m) for model, m in measured if m is not None]
        status = "–" if not known else ("✓" if all(ok for _, (ok, _) in known) else "✗")
        detail = "; ".join(f"{LETTER[model]} {'✓' if ok else '✗'} {text}" for model, (ok, text) in known)
        rows.append([goal.text, status, detail or "not measured in this run"])
    return table(["goal", "status", "measured"], rows)


LETTER = {"object_heavy": "(a)", "array_heavy": "(b)", "torch_service": "(c)", "sklearn_pipeline": "(d)"}


# --- model tables ---------------------------------------------------------------


def model_section(run: ModelRun, found: Found) -> list[str]:
    name = run.spec.name
    size = found.model_mib(name)
    parts = [f"## {run.spec.title}",
             f"Target `bench.models:{name}`; model size {fmt_mib(size)} MiB. Trusted on load: "
             f"{', '.join(run.spec.trust)}."]
    if run.rows:
        parts.append(table(
            ["tool", "model", "save s", "×", "fsync s", "load s", "×", "load+verify s", "×load", "file MiB",
             "peak save", "peak load", "peak verify", "notes"],
            [operation_row(row, found, name) for row in run.rows]))
    if run.scans:
        parts.append(table(["scan", "model", "s", "×pickle.dumps", "findings", "peak MiB", "notes"],
                           [scan_row(row, found, name) for row in run.scans]))
    noisy = spreads(run.rows + run.scans)
    if noisy:
        parts.append(f"Runs that differ by more than {NOISY:.0%} of their median (min–max s): {noisy}.")
    return parts


NOISY = 0.25


def spreads(rows: list[Row]) -> str:
    """The measurements whose runs disagree: where a ratio should be read with care."""
    found = []
    for row in rows:
        for op, result in row.results.items():
            times = result.get("times") or []
            if len(times) > 1 and (max(times) - min(times)) > NOISY * result["seconds"]:
                found.append(f"{row.tool} ({VARIANT_LABEL[row.variant]}) {op} {fmt_s(min(times))}–{fmt_s(max(times))}")
    return "; ".join(found)


def operation_row(row: Row, found: Found, model: str) -> list[str]:
    save, load, verify = (row.results.get(op) for op in ("save", "load", "verify"))
    pickle_load = found.baseline(model, "load")
    cells = [row.tool, VARIANT_LABEL[row.variant]]
    cells += _timed(save, found.baseline(model, "save"))
    cells.append(fmt_s(save.get("fsync")) if save and save.get("ok") else "—")
    cells += _timed(load, pickle_load)
    cells += _timed(verify, pickle_load)
    cells.append(fmt_mib(save["size"] / MIB) if save and save.get("ok") else "—")
    cells += [fmt_mib(peak_mib(r)) if r and r.get("ok") else "—" for r in (save, load, verify)]
    cells.append(notes(row))
    return cells


def _timed(result: dict[str, Any] | None, reference: float | None) -> list[str]:
    if result is None:
        return ["—", "—"]
    if not result.get("ok"):
        return ["✗", "—"]
    return [fmt_s(result["seconds"]), fmt_x(ratio(result["seconds"], reference))]


def notes(row: Row) -> str:
    """Each failure's one-line error; a load of another tool's file that was never written."""
    failed = [f"{op}: {r['error']}" for op, r in row.results.items() if not r.get("ok")]
    if not row.results:
        failed.append("not run: the file it reads was never written")
    return "; ".join(failed).replace("|", "\\|")


def scan_row(row: Row, found: Found, model: str) -> list[str]:
    op = "dumps" if row.tool == "pickle.dumps" else "scan"
    result = row.results[op]
    cells = [row.tool, VARIANT_LABEL[row.variant], *_timed(result, found.baseline(model, "dumps"))]
    ok = result.get("ok")
    cells.append(str(result.get("findings", "—")) if ok else "—")
    cells.append(fmt_mib(peak_mib(result)) if ok else "—")
    cells.append(notes(row))
    return cells


# --- profiles -----------------------------------------------------------------


def profile_sections(run: ModelRun) -> list[str]:
    sections = []
    for op, result in run.profiles.items():
        heading = f"### {LETTER[run.spec.name]} ckpt {op}"
        if not result.get("ok"):
            sections += [heading, f"profile failed: {result.get('error')}"]
            continue
        rows = [[f"`{label}`", str(calls), f"{own:.3f}", f"{cumulative:.3f}"]
                for label, calls, own, cumulative in result["top"]]
        sections += [f"{heading} — {result['seconds']:.2f} s under cProfile",
                     table(["function", "calls", "own s", "cumulative s"], rows)]
    return sections
