"""Which objects holding code come back working: ckpt against dill and cloudpickle.

    python bench/carried.py                           # prints the table
    python bench/carried.py --write bench/CARRIED.md  # and writes it there

Each case is something a training loop or a service holds with code in it:
a lambda forward hook, a LambdaLR schedule, a defaultdict's factory, a
FunctionTransformer, callbacks, a class and a function of the script itself,
a dataclass defined in a function, a closure over a lock. They are built in a
process that runs this file as its script (so its functions are `__main__`'s,
as in a notebook or a training script), written by each tool, then loaded in
a fresh process that has not run it, and *exercised*: a forward pass, a
scheduler step, a transform, the callbacks called. "works" means the
exercise gave the expected answer; anything else is what went wrong.

The same run also loads each ckpt file as another user would (another
`CKPT_HOME`, which does not trust the signer) and records the refusal.
tests/restored runs it and holds ckpt to "works" for every case.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("ckpt", "dill", "cloudpickle")


# --- the cases: what is built, and how it is exercised after load -----------------


def torch_hook() -> Any:
    import torch

    module = torch.nn.Linear(2, 2)
    module.register_forward_hook(lambda mod, args, out: out * 0 + 7)
    return module


def use_torch_hook(module: Any) -> bool:
    import torch

    return bool((module(torch.ones(1, 2)) == 7).all())


def lambda_lr() -> Any:
    import torch

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.5 ** epoch)
    return {"optimizer": optimizer, "scheduler": scheduler}


def use_lambda_lr(state: Any) -> bool:
    state["optimizer"].step()
    state["scheduler"].step()
    return bool(state["optimizer"].param_groups[0]["lr"] == 0.5)


def default_factory() -> Any:
    counts: collections.defaultdict[str, list[int]] = collections.defaultdict(lambda: [0])
    counts["seen"].append(1)
    return counts


def use_default_factory(counts: Any) -> bool:
    return bool(counts["new"] == [0] and counts["seen"] == [0, 1])


def function_transformer() -> Any:
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    pipe = make_pipeline(FunctionTransformer(func=lambda x: np.log1p(x)), StandardScaler())
    return pipe.fit(np.arange(1.0, 7.0).reshape(3, 2))


def use_function_transformer(pipe: Any) -> bool:
    import numpy as np

    out = pipe.transform(np.arange(1.0, 7.0).reshape(3, 2))
    return bool(out.shape == (3, 2) and abs(out.mean()) < 1e-9)


def record(calls: list[Any], name: str, step: int) -> None:
    calls.append((name, step))


def callbacks() -> Any:
    calls: list[Any] = []

    def on_step(step: int) -> None:
        calls.append(("step", step))

    return {"calls": calls, "callbacks": [on_step, lambda step: calls.append(("lambda", step)),
                                          functools.partial(record, calls, "partial")]}


def use_callbacks(state: Any) -> bool:
    for callback in state["callbacks"]:
        callback(3)
    return bool(state["calls"] == [("step", 3), ("lambda", 3), ("partial", 3)])


class Scorer:
    """A class of the script itself."""

    def __init__(self, weight: int) -> None:
        self.weight = weight

    def __call__(self, x: int) -> int:
        return self.weight * x


def by_length(text: str) -> int:
    return len(text)


def script_class() -> Any:
    return {"scorer": Scorer(3), "key": by_length}


def use_script_class(state: Any) -> bool:
    return state["scorer"](2) == 6 and sorted(["ccc", "a", "bb"], key=state["key"]) == ["a", "bb", "ccc"]


def local_dataclass() -> Any:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int = 0

    return Point(1)


def use_local_dataclass(point: Any) -> bool:
    return [f.name for f in dataclasses.fields(point)] == ["x", "y"] and dataclasses.replace(point, y=5).y == 5


def service() -> Any:
    lock = threading.Lock()
    hits: collections.Counter[str] = collections.Counter()

    def handle(name: str) -> int:
        with lock:
            hits[name] += 1
            return hits[name]

    return {"handle": handle, "lock": lock}


def use_service(state: Any) -> bool:
    return state["handle"]("a") == 1 and state["handle"]("a") == 2 and not state["lock"].locked()


CASES: dict[str, tuple[Callable[[], Any], Callable[[Any], bool], str]] = {
    "torch forward hook (lambda)": (torch_hook, use_torch_hook, "torch"),
    "LambdaLR scheduler": (lambda_lr, use_lambda_lr, "torch"),
    "defaultdict(lambda: ...)": (default_factory, use_default_factory, ""),
    "FunctionTransformer(func=lambda ...)": (function_transformer, use_function_transformer, "sklearn"),
    "callbacks (closure, lambda, partial)": (callbacks, use_callbacks, ""),
    "a class and a function of __main__": (script_class, use_script_class, ""),
    "a dataclass defined in a function": (local_dataclass, use_local_dataclass, ""),
    "a closure over a lock (a service)": (service, use_service, ""),
}
"""Case -> (build, exercise, the module it needs)."""


# --- writing (in the process that runs this file as its script) -----------------------


def _write(tool: str, obj: Any, path: Path) -> None:
    if tool == "ckpt":
        import ckpt

        ckpt.save(obj, path)
        return
    module = __import__(tool)
    with open(path, "wb") as file:
        module.dump(obj, file)


def save_all(directory: Path) -> None:
    """Every case written by every tool; a tool that refuses leaves its error instead."""
    for number, (build, _, needs) in enumerate(CASES.values()):
        if needs and not _importable(needs):
            continue
        for tool in TOOLS:
            path = directory / f"{number}.{tool}"
            try:
                _write(tool, build(), path)
            except Exception as exc:  # the tool's refusal is the result
                path.with_suffix(f".{tool}-error").write_text(_short(exc))


# --- loading (in a fresh process that never ran this file) ----------------------------


def _read(tool: str, path: Path) -> Any:
    if tool == "ckpt":
        import ckpt

        return ckpt.load(path)
    module = __import__("dill") if tool == "dill" else pickle
    with open(path, "rb") as file:
        return module.load(file)


def load_all(directory: Path, other_home: Path) -> dict[str, dict[str, str]]:
    """Each case as each tool brings it back: "works", or what went wrong;
    and, under "as another user", how a ckpt file loads for someone who
    does not trust its signer."""
    results: dict[str, dict[str, str]] = {}
    for number, (name, (_, exercise, needs)) in enumerate(CASES.items()):
        if needs and not _importable(needs):
            continue
        results[name] = {tool: _carried(tool, directory / f"{number}.{tool}", exercise) for tool in TOOLS}
    os.environ["CKPT_HOME"] = str(other_home)
    for number, name in enumerate(CASES):
        if name in results:
            results[name]["as another user"] = _as_another_user(directory / f"{number}.ckpt")
    return results


def _as_another_user(path: Path) -> str:
    """How a ckpt file loads for someone who does not trust its signer: what the refusal says it holds."""
    import ckpt

    try:
        ckpt.load(path)
    except ckpt.CkptError as exc:
        said = "refused: " if "\n" not in str(exc) else "refused, over several lines: "
        return said + exc.message.partition("as data only, and ")[2]
    except FileNotFoundError:
        return "not saved"
    return "loads"


def _carried(tool: str, path: Path, exercise: Callable[[Any], bool]) -> str:
    error = path.with_suffix(f".{tool}-error")
    if error.exists():
        return f"save fails: {error.read_text()}"
    try:
        obj = _read(tool, path)
    except Exception as exc:
        return f"load fails: {_short(exc)}"
    try:
        return "works" if exercise(obj) else "loads, but does not work"
    except Exception as exc:
        return f"loads, then fails: {_short(exc)}"


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --- the run and the table -------------------------------------------------------------


def run(directory: Path) -> dict[str, dict[str, str]]:
    """Save in one process (this file as its script), load in another; the results."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, str(Path(__file__)), "--save", str(directory)], check=True, env=env, cwd=REPO)
    load = (f"import json, pathlib; from bench.carried import load_all; "
            f"print(json.dumps(load_all(pathlib.Path({str(directory)!r}), pathlib.Path({str(directory / 'other')!r}))))")
    done = subprocess.run([sys.executable, "-c", load], check=True, env=env, cwd=REPO, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def table(results: dict[str, dict[str, str]]) -> str:
    columns = [*TOOLS, "as another user"]
    rows = ["| case | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, carried in results.items():
        cells = [carried[c].replace("|", "\\|") for c in columns]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the table into FILE")
    args = parser.parse_args()
    if args.save:
        save_all(args.save)
        return
    with tempfile.TemporaryDirectory() as directory:
        text = table(run(Path(directory)))
    print(text)
    if args.write:
        args.write.write_text(f"# What comes back working\n\n{__doc__.splitlines()[0].rstrip('.')} (`python bench/carried.py`; "
                              "fresh processes, each case exercised after load).\n\n"
                              f"{text}\n")


if __name__ == "__main__":
    main()
