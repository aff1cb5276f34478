"""One paired comparison in a fresh process: ``python -m bench.paired JOB_JSON`` prints one JSON line.

Why paired: two medians taken minutes apart see two different machines
(another process's burst, the page cache, writeback). Here the baseline and
ckpt take turns — baseline, ckpt, baseline, ckpt… — in one process, so the
two runs of each pair share the machine's state, and bench/goals.py reports
the ratio of each pair. As in bench/worker.py, building the models, writing
the files a load reads, deleting the previous file and freeing the previous
result are never timed.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bench.models import (
    MODELS,
    ModelSpec,
    array_dict,
    many_arrays,
    object_heavy,
    sklearn_pipeline,
    tiny,
    torch_service,
)
from bench.tools import BY_NAME, Tool, ckpt_save
from bench.worker import one_line, operation

GIB_MIB = 1024


def _arrays(total_mib: float, quick_mib: float) -> ModelSpec:
    size = f"{total_mib / GIB_MIB:g} GiB" if total_mib >= GIB_MIB else f"{total_mib:g} MiB"
    return ModelSpec(f"arrays_{size.replace(' ', '').lower()}", f"arrays, {size} (a dict of 4)",
                     functools.partial(array_dict, total_mib=total_mib), {"total_mib": quick_mib}, ("bench",), ("numpy",))


def _members(count: int, quick: int) -> ModelSpec:
    return ModelSpec(f"members_{count // 1000}k", f"{count:,} buffer members", functools.partial(many_arrays, count=count),
                     {"count": quick}, ("bench",), ("numpy",))


_TORCH = ("as_is", "fixed", "weights")
_SKLEARN = ("numpy", "sklearn.pipeline", "sklearn.ensemble", "sklearn.preprocessing")
WORKLOADS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    *MODELS.values(),
    *(_arrays(full, quick) for full, quick in ((10, 0.5), (100, 1), (1024, 2), (4096, 4))),
    ModelSpec("tiny", "tiny: a dict of four numbers and a lock", tiny, {}, ("bench",)),
    _members(10_000, 100),
    _members(100_000, 1_000),
    ModelSpec("object_heavy_1m", "1,000,000 small objects, 10,000 locks",
              functools.partial(object_heavy, items=1_000_000, locks=10_000), {"items": 10_000, "locks": 100}, ("bench",),
              variants=("as_is", "fixed", "clean")),
    ModelSpec("torch_100m", "(c) torch: ~100 M float32 parameters (381 MiB)",
              functools.partial(torch_service, param_mib=381.5), {"param_mib": 2}, ("bench", "torch"), ("torch",), _TORCH),
    ModelSpec("forest_200", "(d) scikit-learn: the pipeline with a 200-tree random forest",
              functools.partial(sklearn_pipeline, trees=200), {"samples": 500, "trees": 3}, ("bench", "sklearn"),
              _SKLEARN),
)}
"""What a comparison can measure: bench/models.py's four models, and the goals' own sizes."""


def _ckpt_save_every_buffer(obj: Any, path: Path) -> None:
    """ckpt's own save with its out-of-band threshold at 0, so that each tiny array becomes a buffer
    member: a file any loader must cope with, which save writes only for arrays of 64 KiB or more."""
    from ckpt.kinds import pickler

    with mock.patch.object(pickler, "OUT_OF_BAND_MIN", 0):
        ckpt_save(obj, path)


EVERY_BUFFER = "ckpt, every buffer out of band"
TOOLS: dict[str, Tool] = {**BY_NAME, EVERY_BUFFER: Tool(EVERY_BUFFER, _ckpt_save_every_buffer, BY_NAME["ckpt"].load,
                                                        baseline=False)}
WRITES = {"save", "background"}
"""Operations that write a file (removed before each run)."""
READS = {"load", "verify"}
"""Operations on a file written once, untimed, by the side's tool."""


def _background(obj: Any, path: Path) -> Any:
    import ckpt

    return ckpt.save(obj, path, overwrite=True, background=True)


class Side:
    """One side of a pair: its workload, tool and operation, ready to run."""

    def __init__(self, job: dict[str, Any], side: dict[str, Any], index: int) -> None:
        self.spec = WORKLOADS[side["workload"]]
        self.tool = TOOLS.get(side.get("tool", ""))
        self.op = side["op"]
        self.variant = side.get("variant", "as_is")
        self.path = Path(job["dir"]) / f"{index}-{side['workload']}"
        self.times: list[float] = []
        self.totals: list[float] = []
        """A background save's time until `wait()` returned."""

    def imports(self) -> tuple[str, ...]:
        return ("ckpt", *self.spec.imports, *(self.tool.imports if self.tool else ()))

    def ready(self, quick: bool, built: dict[tuple[str, str], Any]) -> None:
        """Build the object (shared by sides on the same workload and variant) or write the file a load reads."""
        if self.op in READS:
            assert self.tool is not None and self.tool.save is not None
            self.tool.save(self.spec.make(self.variant, quick), self.path)
            gc.collect()
            self.prepare, self.run = operation(self._job(), self.tool, None)
            return
        key = (self.spec.name, self.variant)
        if key not in built:
            built[key] = self.spec.make(self.variant, quick)
        obj = built[key]
        if self.op == "background":
            self.prepare, self.run = functools.partial(self.path.unlink, missing_ok=True), lambda: _background(obj, self.path)
        else:
            self.prepare, self.run = operation(self._job(), self.tool, obj)

    def _job(self) -> dict[str, Any]:
        return {"op": self.op, "path": str(self.path), "trust": list(self.spec.trust)}

    def once(self) -> None:
        self.prepare()
        started = time.perf_counter()
        out = self.run()
        self.times.append(time.perf_counter() - started)
        if self.op == "background":
            out.wait()
            self.totals.append(time.perf_counter() - started)
        del out
        gc.collect()

    def result(self) -> dict[str, Any]:
        size = os.path.getsize(self.path) if self.op in WRITES | READS and self.path.exists() else None
        return {"times": self.times, "totals": self.totals, "size": size, "members": _buffers(self)}


def _buffers(side: Side) -> int | None:
    """How many buffer members the ckpt file a load read has."""
    if side.op not in READS or side.tool is None or "ckpt" not in side.tool.name:
        return None
    from bench.run import file_layout

    return file_layout(side.path)["buffers"]


def measure(job: dict[str, Any]) -> dict[str, Any]:
    sides = [Side(job, side, i) for i, side in enumerate(job["sides"])]
    for module in {m for side in sides for m in side.imports()}:
        importlib.import_module(module)
    built: dict[tuple[str, str], Any] = {}
    for side in sides:
        side.ready(job["quick"], built)
    gc.collect()
    for _ in range(job["repeats"]):
        for side in sides:
            side.once()
    return {"ok": True, "sides": [side.result() for side in sides]}


def main(argv: list[str]) -> int:
    try:
        result = measure(json.loads(argv[1]))
    except Exception as exc:  # a failing or refused operation is a result (a row saying so), not a crash
        result = {"ok": False, "error": one_line(exc)}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
