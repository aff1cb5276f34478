"""save(..., background=True): the caller gets control back once the object
is captured, the file appears whole later, and saves to one path keep
their order. Real files, real threads, a fresh interpreter for the exit."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ckpt

np = pytest.importorskip("numpy")


def model(value: float) -> dict[str, object]:
    return {"weights": np.full(2_000_000, value), "lock": threading.Lock(), "step": int(value)}


def test_the_file_holds_the_model_as_it_was_when_save_returned(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    live = model(1.0)
    pending = ckpt.save(live, path, background=True)
    live["weights"][:] = 7.0  # the training loop goes on at once
    live["step"] = 7
    report = pending.wait()
    assert pending.done() and report.path == str(path) and report.manifest.signature is not None
    loaded = ckpt.load(path)
    assert loaded["step"] == 1 and float(loaded["weights"].max()) == 1.0 and loaded["lock"].acquire(False)


def test_saves_to_one_path_are_written_in_the_order_they_were_made(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    pendings = [ckpt.save(model(step), path, background=True) for step in range(1, 5)]
    ckpt.save(model(9.0), path)  # a synchronous save waits for those before it
    assert all(p.done() for p in pendings)
    assert [p.wait().path for p in pendings] == [str(path)] * 4
    assert ckpt.load(path)["step"] == 9


def test_a_failed_background_save_raises_in_wait_and_leaves_nothing(unwritable_directory: Path) -> None:
    pending = ckpt.save(model(1.0), unwritable_directory / "m.ckpt", background=True)
    with pytest.raises(ckpt.WriteError):
        pending.wait(timeout=60)
    assert list(unwritable_directory.iterdir()) == []


def test_a_file_object_is_refused_for_a_background_save(tmp_path: Path) -> None:
    with open(tmp_path / "m.ckpt", "wb") as file, pytest.raises(TypeError, match="path or URL"):
        ckpt.save(model(1.0), file, background=True)


def test_the_interpreter_finishes_a_pending_save_before_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    code = ("import sys, numpy as np, ckpt\n"
            "ckpt.save({'w': np.ones(20_000_000)}, sys.argv[1], background=True)\n"
            "print('returned', flush=True)\n")  # and exits at once
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "returned\n", proc.stderr
    assert time.perf_counter() - started < 120
    assert ckpt.verify(path).ok
