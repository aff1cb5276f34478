"""A model whose save stalls once ckpt's temporary file exists.

`ckpt save tests/reliability/stalling.py:build -o OUT` touches OUT's
directory/writing and sleeps while the object is being written, so a test
can interrupt or kill `ckpt save` mid-write at a known moment (no timing).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

OUTPUT_ENV = "CKPT_TEST_OUTPUT"


class Stall:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        out = Path(os.environ[OUTPUT_ENV])
        if any(out.parent.glob(f".{out.name}.*.ckpt-tmp")):
            (out.parent / "writing").touch()
            time.sleep(60)
        return dict, ()


def build() -> dict[str, Any]:
    return {"weights": list(range(1000)), "lock": threading.Lock(), "stall": Stall()}
