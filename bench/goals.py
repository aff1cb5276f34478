"""ckpt's speed goals, each a ratio against a baseline measured beside it.

    python bench/goals.py                     # every goal, 5 pairs each; writes its section of bench/RESULTS.md
    python bench/goals.py --quick             # tiny sizes, 2 pairs: prints the markdown, writes nothing
    python bench/goals.py --only small,verify --repeats 3
    python bench/goals.py --busy 2            # the same with 2 CPU burners running: the "busy" section

bench/run.py measures every model × operation, one median after another;
here each comparison runs in one fresh process (bench/paired.py) that
alternates baseline and ckpt, so both see the same machine, and the median
of the per-pair ratios is the verdict. `--busy N` keeps N pure-Python loops
spinning for the whole run, as a training job beside the save would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/goals.py` puts bench/, not the repository, on sys.path
    sys.path.insert(0, str(ROOT))

from bench.paired import EVERY_BUFFER, WORKLOADS  # noqa: E402
from bench.report import QUICK_WARNING, commit, put_marked, table  # noqa: E402
from bench.run import _choices as choices  # noqa: E402
from bench.run import spawn  # noqa: E402

GIB = 1 << 30
PICKLE_SAVE = "pickle.dump + fsync"
PICKLE_LOAD = "pickle.load"


@dataclass(frozen=True)
class Side:
    """What one side of a pair runs (see bench/paired.py): a workload, a tool, an operation."""

    workload: str
    op: str
    tool: str = ""
    variant: str = "as_is"

    def job(self) -> dict[str, str]:
        return {"workload": self.workload, "op": self.op, "tool": self.tool, "variant": self.variant}


@dataclass(frozen=True)
class Comparison:
    """One row: ckpt's side against the baseline's, ratio = ckpt / baseline for each pair."""

    workload: str
    """The row's label (the full size; --quick runs smaller)."""
    baseline_label: str
    baseline: Side
    ckpt: Side
    limit: float | None
    """The goal on the median ratio; None: reported, no limit set."""
    total: bool = False
    """A background save: also a row for the time until wait() returned."""


@dataclass(frozen=True)
class Goal:
    name: str
    title: str
    comparisons: tuple[Comparison, ...]
    note: str = ""


def _pair(workload: str, op: str, tool: str, limit: float | None, *, variant: str = "fixed",
          labels: tuple[str, str] = (PICKLE_SAVE, PICKLE_LOAD)) -> Comparison:
    """ckpt's save, load or verify of the model as is against `tool`'s save or load of the hand-fixed
    variant; `labels` name the baseline's save and its load."""
    base = Side(workload, "save" if op == "save" else "load", tool, variant)
    label = labels[0] if op == "save" else labels[1]
    return Comparison(f"{WORKLOADS[workload].title}: {op}", label, base, Side(workload, op, "ckpt"), limit)


def _save_load(workload: str, *baselines: tuple[str, str, tuple[str, str]]) -> tuple[Comparison, ...]:
    """save ≤ 1.15× and load ≤ 1.1× against each (tool, variant, labels) baseline."""
    return tuple(_pair(workload, op, tool, limit, variant=variant, labels=labels)
                 for op, limit in (("save", 1.15), ("load", 1.1)) for tool, variant, labels in baselines)


_PICKLE = ("pickle", "fixed", (PICKLE_SAVE, PICKLE_LOAD))
_TORCH = ("torch state_dict, weights_only=True", "weights",
          ("torch.save(state_dict) + fsync", "torch.load(weights_only=True) of the state_dict"))
_JOBLIB = ("joblib", "fixed", ("joblib.dump + fsync", "joblib.load"))
ARRAY_SIZES = ("arrays_10mib", "arrays_100mib", "arrays_1gib", "arrays_4gib")
GOALS: dict[str, Goal] = {goal.name: goal for goal in (
    Goal("sizes", "Every size, linear: save ≤ 1.15×, load ≤ 1.1×",
         (*(c for w in ARRAY_SIZES for c in _save_load(w, _PICKLE)), *_save_load("object_heavy", _PICKLE),
          *_save_load("torch_100m", _TORCH, _PICKLE),
          *_save_load("forest_200", _PICKLE, _JOBLIB)),
         "Baselines save the hand-fixed variant (the array dicts need no fix: the same object)."),
    Goal("small", "No fixed cost for small checkpoints",
         (_pair("tiny", "save", "pickle", None), _pair("tiny", "load", "pickle", None)),
         "No limit set: read the milliseconds."),
    Goal("members", "Linear in the number of members: 10× the members ≤ 12× the load time",
         (Comparison("100,000 buffer members: ckpt.load", "ckpt.load of 10,000 members",
                     Side("members_10k", "load", EVERY_BUFFER), Side("members_100k", "load", EVERY_BUFFER), 12.0),),
         "Files of one-element arrays, written by ckpt's own save with its out-of-band threshold (64 KiB) at 0."),
    Goal("verify", "Verify at load speed: load_checkpoint + verify(loaded=report) ≤ 1.3× pickle.load",
         (_pair("object_heavy", "verify", "pickle", 1.3),),
         "The baseline is pickle.load of the hand-fixed variant."),
    Goal("scan", "Scan with findings ≤ 2× pickle.dumps of the hand-fixed graph",
         (Comparison(f"{WORKLOADS['object_heavy_1m'].title}: scan", "pickle.dumps",
                     Side("object_heavy_1m", "dumps", variant="fixed"), Side("object_heavy_1m", "scan"), 2.0),)),
    Goal("background", "A save that does not block: the caller's time in save(background=True)",
         tuple(Comparison(f"{WORKLOADS[w].title}: save(background=True)", "ckpt.save (synchronous)",
                          Side(w, "save", "ckpt"), Side(w, "background"), None, total=True)
               for w in ("array_heavy", "object_heavy")),
         "No limit set. The ckpt column is the call → return time; the next row, until wait() returned."),
)}


# --- running ------------------------------------------------------------------


BURN = ("import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "parent = int(sys.argv[1])\n"
        "while os.getppid() == parent:\n"
        "    for _ in range(100_000):\n"
        "        pass\n")
"""A burner: spins until it is terminated, or by itself once its parent is gone (even after a kill -9).
Ctrl-C is left to the parent, which stops its burners on the way out."""


@contextlib.contextmanager
def burners(count: int) -> Iterator[list[int]]:
    """`count` CPU-bound processes for the whole measurement: a busy machine, as when training runs beside the save."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN, str(os.getpid())]) for _ in range(count)]
    if procs:
        print(f"busy: {count} burner(s), pids {' '.join(str(p.pid) for p in procs)}", file=sys.stderr, flush=True)
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_comparison(comparison: Comparison, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    job = {"dir": str(tmp), "quick": args.quick, "repeats": args.repeats,
           "sides": [comparison.baseline.job(), comparison.ckpt.job()]}
    started = time.perf_counter()
    result = spawn("bench.paired", job, args.timeout)
    for leftover in tmp.iterdir():
        leftover.unlink()
    status = "ok" if result.get("ok") else f"fails: {result.get('error')}"
    print(f"  {comparison.workload} vs {comparison.baseline_label}: {status} "
          f"({time.perf_counter() - started:.1f}s wall)", file=sys.stderr, flush=True)
    return result


# --- rendering ----------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:#.3g} ms" if seconds < 0.1 else f"{seconds:#.3g} s"


def ratios(baseline: list[float], ckpt: list[float]) -> list[float]:
    return [c / b for b, c in zip(baseline, ckpt) if b > 0]


def rows(comparison: Comparison, result: dict[str, Any]) -> list[list[str]]:
    """The comparison's row (two for a background save), or one saying why it has no numbers."""
    if not result.get("ok"):
        error = str(result.get("error", "")).replace("|", "\\|")
        return [[comparison.workload, comparison.baseline_label, f"✗ {error}", "—", "—", _goal(comparison.limit), "✗"]]
    base, ckpt = result["sides"]
    found = [_row(comparison.workload, comparison, base["times"], ckpt["times"])]
    if comparison.total:
        found.append(_row(f"{comparison.workload}, until wait() returned", comparison, base["times"], ckpt["totals"]))
    return found


def _row(label: str, comparison: Comparison, base: list[float], ckpt: list[float]) -> list[str]:
    each = ratios(base, ckpt)
    middle = statistics.median(each)
    met = "–" if comparison.limit is None else ("✓" if middle <= comparison.limit else "✗")
    return [label, comparison.baseline_label, fmt_time(statistics.median(ckpt)), fmt_time(statistics.median(base)),
            f"{middle:.2f}× ({min(each):.2f}–{max(each):.2f})", _goal(comparison.limit), met]


def _goal(limit: float | None) -> str:
    return "—" if limit is None else f"≤ {limit:g}×"


HEADER = ("workload", "baseline", "ckpt median", "baseline median", "ratio median (min–max)", "goal", "met")


def per_gib(results: dict[Comparison, dict[str, Any]]) -> str:
    """ckpt's seconds per GiB of file at the two largest array sizes: flat means linear."""
    lines, sizes = [], []
    for op in ("save", "load"):
        sides = [r["sides"][1] for c, r in results.items()
                 if c.ckpt.workload in ARRAY_SIZES[2:] and c.ckpt.op == op and r.get("ok") and r["sides"][1]["size"]]
        if len(sides) == 2:
            rates = [statistics.median(side["times"]) / (side["size"] / GIB) for side in sides]
            sizes = [side["size"] for side in sides]
            change = rates[1] / rates[0]
            lines.append([f"ckpt.{op}", *(f"{rate:.3f}" for rate in rates), f"{change:.2f}×", "≤ 1.15×",
                          "✓" if change <= 1.15 else "✗"])
    if not lines:
        return ""
    header = [f"s/GiB at {size / GIB:.3g} GiB" if size >= GIB / 2 else f"s/GiB at {size / (1 << 20):.3g} MiB"
              for size in sizes]
    return table(("operation", *header, "ratio", "goal (flat)", "met"), lines)


def members_note(results: dict[Comparison, dict[str, Any]]) -> str:
    """How many buffer members the two files had, read back from them: the goal is void if save kept them in band."""
    for comparison, result in results.items():
        if comparison.ckpt.workload.startswith("members_") and result.get("ok"):
            counts = " and ".join(f"{side['members']:,}" for side in result["sides"])
            return f"Both loaded; the files hold {counts} buffer members."
    return ""


def section(args: argparse.Namespace, results: dict[Comparison, dict[str, Any]], load: tuple[float, float],
            started: datetime.datetime) -> str:
    what = f"busy machine ({args.busy} CPU burner{'s' if args.busy > 1 else ''})" if args.busy else "quiet machine"
    parts = [f"## Goals, paired: {what}",
             f"`{' '.join(['python bench/goals.py', *args.argv])}`" + (QUICK_WARNING if args.quick else ""),
             f"- run on {started:%Y-%m-%d %H:%M UTC}; ckpt at commit {commit()}; 1-minute load average "
             f"{load[0]:.2f} at the start, {load[1]:.2f} at the end\n"
             f"- each row: one fresh process running baseline, ckpt, baseline, ckpt… ({args.repeats} pairs); "
             "**ratio** is ckpt / baseline per pair, its median and (min–max) over the pairs; medians in "
             "seconds or milliseconds; ✓ when the median ratio is within the goal"]
    for goal in GOALS.values():
        mine = {c: r for c, r in results.items() if c in goal.comparisons}
        if not mine:
            continue
        parts += [f"### {goal.title}", table(HEADER, [row for c, r in mine.items() for row in rows(c, r)])]
        if goal.name == "sizes" and per_gib(mine):
            parts += ["Seconds per GiB of file, ckpt:", per_gib(mine)]
        note = " ".join(text for text in (goal.note, members_note(mine)) if text)
        if note:
            parts.append(note)
    return "\n\n".join(parts)


# --- command line -------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 pairs; prints, writes nothing unless --write")
    parser.add_argument("--only", help=f"comma-separated goal names, of: {', '.join(GOALS)}")
    parser.add_argument("--repeats", type=int, help="pairs per comparison (default 5; --quick: 2)")
    parser.add_argument("--busy", type=int, default=0, metavar="N", help="run N CPU burners the whole time")
    parser.add_argument("--write", action="store_true", help="with --quick: write the section all the same")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md", help="the file to write into")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a comparison's worker is killed")
    parser.add_argument("--tmpdir", type=Path, help="where files are written (default: the system temp dir)")
    args = parser.parse_args(argv)
    args.argv = argv
    args.only = choices(parser, "--only", args.only or ",".join(GOALS), tuple(GOALS))
    args.repeats = args.repeats or (2 if args.quick else 5)
    if args.repeats < 1 or args.busy < 0:
        parser.error("--repeats must be at least 1 and --busy at least 0")
    return args


def _stop_on_sigterm(number: int, frame: Any) -> None:
    """A plain kill stops the burners too: leave through the `finally` of `burners`."""
    sys.exit(128 + number)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started, load_before = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
    results: dict[Comparison, dict[str, Any]] = {}
    with burners(args.busy), tempfile.TemporaryDirectory(prefix="ckpt-goals-", dir=args.tmpdir) as tmp:
        for name in args.only:
            for comparison in GOALS[name].comparisons:
                results[comparison] = run_comparison(comparison, args, Path(tmp))
    markdown = section(args, results, (load_before, os.getloadavg()[0]), started)
    print(markdown)
    if args.write or not args.quick:
        name = "goals:busy" if args.busy else "goals:quiet"
        text = args.results.read_text() if args.results.exists() else ""
        args.results.write_text(put_marked(text, name, markdown))
        print(f"wrote the {name} section of {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the burners and the running worker are stopped by then
        print("interrupted: nothing written", file=sys.stderr)
        sys.exit(130)
