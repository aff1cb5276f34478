"""ckpt's benchmark: ckpt against hand-fixed pickle, dill, cloudpickle, joblib and torch.

    python bench/run.py                      # full run (~10 min on 2 cores), writes bench/RESULTS.md
    python bench/run.py --quick              # tiny models, a smoke run; prints the table
    python bench/run.py --models object_heavy,array_heavy --ops save,load
    python bench/run.py --profile save object_heavy [--memory]   # where ckpt's time (or memory) goes

Every operation runs in a fresh worker process (bench/worker.py), one after
the other — never two models in memory at once — so each peak RSS is that
operation's own. The parent only plans, collects JSON and writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/, not the repository, on sys.path
    sys.path.insert(0, str(ROOT))

from bench.models import MODELS, ModelSpec  # noqa: E402
from bench.report import keep_marked, render  # noqa: E402
from bench.tools import PICKLE, TOOLS, Tool  # noqa: E402

OPS = ("scan", "save", "load", "verify")
PROFILED = {"object_heavy": ("scan", "save", "load", "verify"), "array_heavy": ("save", "load", "verify")}
"""The profiles whose top functions RESULTS.md shows: ckpt on (a) and (b)."""


@dataclass
class Row:
    """One tool on one variant of one model: the results of each operation."""

    tool: str
    variant: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ok(self, op: str) -> bool:
        return bool(self.results.get(op, {}).get("ok"))


@dataclass
class ModelRun:
    spec: ModelSpec
    rows: list[Row] = field(default_factory=list)
    scans: list[Row] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)
    """The ckpt file's out-of-band members: how many, and whether all are 64-byte aligned."""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


class Runner:
    """Runs worker jobs one at a time and says what it is doing on stderr."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp

    def job(self, spec: ModelSpec, op: str, **fields: Any) -> dict[str, Any]:
        repeats = self.args.big_repeats if spec.big else self.args.repeats
        job = {"model": spec.name, "op": op, "quick": self.args.quick, "repeats": repeats,
               "budget": self.args.budget, "trust": list(spec.trust), **fields}
        started = time.perf_counter()
        result = self._spawn(job)
        what = " ".join(str(fields.get(k, "")) for k in ("tool", "variant", "profile_op"))
        status = f"{result['seconds']:.3f}s" if result.get("ok") else f"fails: {result.get('error')}"
        print(f"  {spec.name} {op} {what}: {status} ({time.perf_counter() - started:.1f}s wall)", file=sys.stderr)
        return result

    def _spawn(self, job: dict[str, Any]) -> dict[str, Any]:
        return spawn("bench.worker", job, self.args.timeout)


def spawn(module: str, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run `python -m module JOB_JSON` in a fresh process; its last stdout line is the JSON result.
    A crash or a timeout is a result too (ok: False), not an exception."""
    command = [sys.executable, "-m", module, json.dumps(job)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"worker exited {done.returncode}: {tail[0][:200]}"}


def applies(tool: Tool, spec: ModelSpec) -> bool:
    return (tool.needs is None or tool.needs in spec.imports) and (tool.baseline or tool.variant in spec.variants)


def run_model(runner: Runner, spec: ModelSpec, ops: set[str]) -> ModelRun:
    run = ModelRun(spec)
    if "scan" in ops:
        run.scans = run_scans(runner, spec)
    if ops & {"save", "load", "verify"}:
        files: dict[str, tuple[Path, str]] = {}
        folder = runner.tmp / spec.name
        folder.mkdir()
        for tool in TOOLS:
            if applies(tool, spec):
                run.rows += run_tool(runner, spec, tool, files, ops)
        if "ckpt" in files:
            run.layout = file_layout(files["ckpt"][0])
        shutil.rmtree(folder)  # before the next model: the big ones write GBs
    return run


def run_scans(runner: Runner, spec: ModelSpec) -> list[Row]:
    """ckpt scan as is (findings) and clean, against pickle.dumps of the clean (else hand-fixed) model."""
    reference = "clean" if "clean" in spec.variants else "fixed"
    scans = [Row("pickle.dumps", reference), Row("ckpt scan", "as_is")]
    if "clean" in spec.variants:
        scans.append(Row("ckpt scan", "clean"))
    for row in scans:
        op = "dumps" if row.tool == "pickle.dumps" else "scan"
        row.results[op] = runner.job(spec, op, variant=row.variant)
    return scans


def run_tool(
    runner: Runner, spec: ModelSpec, tool: Tool, files: dict[str, tuple[Path, str]], ops: set[str]
) -> list[Row]:
    """A baseline gets the model as is, and the hand-fixed variant if that fails (pickle: always).

    `files` maps each tool to the file its last successful save wrote, and the variant in it.
    """
    if tool.file_of:
        path, variant = files.get(tool.file_of, (None, ""))
        row = Row(tool.name, variant)
        if path is not None:
            run_loads(runner, spec, tool, row, path, ops)
        return [row]
    rows = []
    path = runner.tmp / spec.name / tool.name.replace(" ", "_").replace("/", "_")
    for variant in ("as_is", "fixed") if tool.baseline else (tool.variant,):
        row = Row(tool.name, variant)
        rows.append(row)
        once = {} if "save" in ops else {"repeats": 1}  # only there to write the file the loads read
        row.results["save"] = runner.job(spec, "save", tool=tool.name, variant=variant, path=str(path), **once)
        if row.ok("save"):
            files[tool.name] = (path, variant)
            run_loads(runner, spec, tool, row, path, ops)
            if tool.name != PICKLE:
                break
    return rows


def run_loads(runner: Runner, spec: ModelSpec, tool: Tool, row: Row, path: Path, ops: set[str]) -> None:
    for op in ("load", "verify"):
        if op in ops and (op == "load" or tool.verify is not None):
            row.results[op] = runner.job(spec, op, tool=tool.name, variant=row.variant, path=str(path))


def file_layout(path: Path) -> dict[str, Any]:
    """Count ckpt's out-of-band members and check their alignment (reads the zip structure only)."""
    from ckpt.format.archive import ALIGN, open_archive

    with open_archive(path) as archive:
        names = archive.buffer_names
        return {"buffers": len(names), "aligned": all(archive.offset(n) % ALIGN == 0 for n in names),
                "members": len(archive.manifest.members)}


def run_profiles(runner: Runner, runs: list[ModelRun]) -> None:
    for run in runs:
        for op in PROFILED.get(run.spec.name, ()):
            run.profiles[op] = profile_job(runner, run.spec, op, memory=False, top=8)


def profile_job(runner: Runner, spec: ModelSpec, op: str, *, memory: bool, top: int) -> dict[str, Any]:
    path = runner.tmp / f"profile-{spec.name}.ckpt"
    result = runner.job(spec, "profile", profile_op=op, path=str(path), memory=memory, top=top)
    path.unlink(missing_ok=True)
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models: a smoke run of every path")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated, of: {', '.join(OPS)}")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median reported)")
    parser.add_argument("--big-repeats", type=int, default=5, help="runs per measurement on the big models")
    parser.add_argument("--budget", type=float, default=15.0,
                        help="stop repeating a measurement once its runs took this many seconds")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a worker is killed")
    parser.add_argument("--out", type=Path, help="markdown output (default bench/RESULTS.md; --quick: stdout)")
    parser.add_argument("--json", type=Path, help="also write every raw measurement as JSON here")
    parser.add_argument("--tmpdir", type=Path, help="where files are written (default: the system temp dir)")
    parser.add_argument("--no-profiles", action="store_true", help="skip the cProfile section of the results")
    parser.add_argument("--profile", nargs=2, metavar=("OP", "MODEL"),
                        help="only profile one ckpt operation (scan, save, load, verify) on one model")
    parser.add_argument("--memory", action="store_true", help="with --profile: tracemalloc instead of cProfile")
    parser.add_argument("--top", type=int, default=25, help="with --profile: how many entries")
    args = parser.parse_args(argv)
    args.models = _choices(parser, "--models", args.models, tuple(MODELS))
    args.ops = set(_choices(parser, "--ops", args.ops, OPS))
    if args.profile:
        _choices(parser, "--profile OP", args.profile[0], OPS)
        _choices(parser, "--profile MODEL", args.profile[1], tuple(MODELS))
    return args


def _choices(parser: argparse.ArgumentParser, option: str, given: str, allowed: tuple[str, ...]) -> list[str]:
    chosen = [part.strip() for part in given.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown or not chosen:
        parser.error(f"{option}: {', '.join(unknown) or 'nothing'} is not one of {', '.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-", dir=args.tmpdir) as tmp:
        runner = Runner(args, Path(tmp))
        if args.profile:
            op, model = args.profile
            result = profile_job(runner, MODELS[model], op, memory=args.memory, top=args.top)
            print(result["text"] if result.get("ok") else f"profile failed: {result.get('error')}")
            return 0 if result.get("ok") else 1
        started, load_before = time.perf_counter(), os.getloadavg()[0]
        runs = [run_model(runner, MODELS[name], args.ops) for name in args.models]
        if not args.no_profiles:
            run_profiles(runner, runs)
        markdown = render(runs, args, tmp_dir=Path(tmp), seconds=time.perf_counter() - started,
                          load=(load_before, os.getloadavg()[0]))
    out = args.out or (None if args.quick else ROOT / "bench" / "RESULTS.md")
    if out is None:
        print(markdown)
    else:
        out.write_text(keep_marked(markdown, out.read_text() if out.exists() else ""))
        print(f"wrote {out}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([_raw(run) for run in runs], indent=1))
    return 0


def _raw(run: ModelRun) -> dict[str, Any]:
    rows = [{"tool": r.tool, "variant": r.variant, "results": r.results} for r in run.rows]
    scans = [{"tool": r.tool, "variant": r.variant, "results": r.results} for r in run.scans]
    return {"model": run.spec.name, "rows": rows, "scans": scans, "layout": run.layout, "profiles": run.profiles}


if __name__ == "__main__":
    sys.exit(main())
