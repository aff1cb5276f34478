"""Save a checkpoint over an existing one, and SIGKILL the saver at random moments.

Run as `python killed_saves.py ROOT TRIALS SEED`: for each ROOT/trialN/model.ckpt
(the test put the old checkpoint there), a forked child saves `model(2)` over
it and is killed after a random delay drawn from 0 to 1.5 times what a save
takes here, so the kills land before, during and after the write. Forking
keeps 50 trials to a few seconds; each child is a separate process that dies
by SIGKILL, exactly as `kill -9` would end a `ckpt save`.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import ckpt


def model(version: int, layers: int = 4) -> dict[str, Any]:
    """About 2 MB: arrays written as out-of-band members, and a data.pkl of its own weight."""
    rng = np.random.default_rng(version)
    return {"version": version, "layers": [rng.standard_normal(60_000) for _ in range(layers)],
            "log": [f"step {i}" for i in range(20_000)], "lock": threading.Lock()}


def save_in_child(path: Path, obj: Any) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            ckpt.save(obj, path, overwrite=True)
        finally:
            os._exit(0)
    return pid


def main(root: Path, trials: int, seed: int) -> None:
    new = model(2)
    # Calibrate under the trials' own conditions: a forked child saving (fork
    # and copy-on-write cost more than a save in this warm process).
    took = 0.0
    for attempt in range(3):
        started = time.perf_counter()
        os.waitpid(save_in_child(root / f"calibration{attempt}.ckpt", new), 0)
        took = max(took, time.perf_counter() - started)
    rng = random.Random(seed)
    for trial in range(trials):
        pid = save_in_child(root / f"trial{trial}" / "model.ckpt", new)
        time.sleep(rng.uniform(0, 1.5 * took))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
