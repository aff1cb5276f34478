"""What is measured: ckpt and each baseline, as save / load functions on a path.

Every baseline writes to a real file and fsyncs it before its save is timed
as done (ckpt fsyncs the file and its directory as part of its atomic write),
so no save gets the page cache for free; the baselines' fsync time is also
reported on its own. Nothing here builds models or times anything: the
worker does.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

Trust = tuple[str, ...]
Dump = Callable[[Any, BinaryIO], Any]


@dataclass(frozen=True)
class Tool:
    name: str
    save: Callable[[Any, Path], float | None] | None
    """Writes the object to the path; returns the seconds spent in fsync (None: not separable)."""
    load: Callable[[Path, Trust], Any]
    verify: Callable[[Path, Trust], Any] | None = None
    """Load and verify (ckpt only)."""
    needs: str | None = None
    """A module the model must use for the tool to apply (torch tools: "torch")."""
    file_of: str | None = None
    """Load the file another tool saved (instead of saving one)."""
    baseline: bool = True
    """A baseline is given the model as is and, if that fails, the hand-fixed variant."""
    variant: str = "as_is"
    """The model variant a non-baseline tool is given."""
    imports: tuple[str, ...] = ()
    """Modules the worker imports before timing anything."""


def fsynced(dump: Dump) -> Callable[[Any, Path], float]:
    """A save that dumps into the file, flushes and fsyncs it; returns the fsync seconds."""

    def save(obj: Any, path: Path) -> float:
        with open(path, "wb") as file:
            dump(obj, file)
            file.flush()
            started = time.perf_counter()
            os.fsync(file.fileno())
            return time.perf_counter() - started

    return save


def _read_with(load: Callable[[BinaryIO], Any]) -> Callable[[Path, Trust], Any]:
    def read(path: Path, trust: Trust) -> Any:
        with open(path, "rb") as file:
            return load(file)

    return read


# --- ckpt ---------------------------------------------------------------------


def ckpt_save(obj: Any, path: Path) -> None:
    import ckpt

    ckpt.save(obj, path, overwrite=True)


def _ckpt_load(mmap: bool) -> Callable[[Path, Trust], Any]:
    def load(path: Path, trust: Trust) -> Any:
        import ckpt

        return ckpt.load(path, trust=trust, mmap=mmap)

    return load


def _ckpt_load_verify(mmap: bool) -> Callable[[Path, Trust], Any]:
    """load_checkpoint, then every check of verify on that loaded report; fails unless all pass."""

    def load_verify(path: Path, trust: Trust) -> Any:
        import ckpt

        report = ckpt.load_checkpoint(path, trust=trust, mmap=mmap)
        verdict = ckpt.verify(path, trust=trust, loaded=report)
        if not verdict.ok:
            failed = verdict.failures[0]
            raise RuntimeError(f"verify failed: {failed.name}: {failed.detail}")
        return report.obj

    return load_verify


# --- baselines ----------------------------------------------------------------


def _pickle_dump(obj: Any, file: BinaryIO) -> None:
    pickle.dump(obj, file, protocol=5)


def _dill_dump(obj: Any, file: BinaryIO) -> None:
    import dill

    dill.dump(obj, file, protocol=5)


def _dill_load(file: BinaryIO) -> Any:
    import dill

    return dill.load(file)


def _cloudpickle_dump(obj: Any, file: BinaryIO) -> None:
    import cloudpickle

    cloudpickle.dump(obj, file, protocol=5)


def _joblib_dump(obj: Any, file: BinaryIO) -> None:
    import joblib

    joblib.dump(obj, file)


def _joblib_load(path: Path, trust: Trust) -> Any:
    import joblib

    return joblib.load(path)


def _torch_dump(obj: Any, file: BinaryIO) -> None:
    import torch

    torch.save(obj, file)


def _torch_load(weights_only: bool) -> Callable[[Path, Trust], Any]:
    def load(path: Path, trust: Trust) -> Any:
        import torch

        return torch.load(path, weights_only=weights_only)

    return load


PICKLE = "pickle"
"""The baseline every ratio is taken against (run on the hand-fixed variant)."""

TOOLS: tuple[Tool, ...] = (
    Tool(PICKLE, fsynced(_pickle_dump), _read_with(pickle.load)),
    Tool("ckpt", ckpt_save, _ckpt_load(False), _ckpt_load_verify(False), baseline=False),
    Tool("ckpt mmap=True", None, _ckpt_load(True), _ckpt_load_verify(True), file_of="ckpt", baseline=False),
    Tool("dill", fsynced(_dill_dump), _read_with(_dill_load), imports=("dill",)),
    Tool("cloudpickle", fsynced(_cloudpickle_dump), _read_with(pickle.load), imports=("cloudpickle",)),
    Tool("joblib", fsynced(_joblib_dump), _joblib_load, imports=("joblib",)),
    Tool("torch.save", fsynced(_torch_dump), _torch_load(False), needs="torch", imports=("torch",)),
    Tool("torch.load weights_only=True", None, _torch_load(True), needs="torch", file_of="torch.save",
         imports=("torch",)),
    Tool("torch state_dict, weights_only=True", fsynced(_torch_dump), _torch_load(True), needs="torch",
         baseline=False, variant="weights", imports=("torch",)),
)
BY_NAME = {tool.name: tool for tool in TOOLS}
