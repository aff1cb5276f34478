"""The compiled twins of two stream readers, loaded in one place.

The data-only loader's analysis (trust/_analysis.c) and save's replay
(scanning/_replay.c) each have a C twin that does exactly what its Python
twin does, at C speed, reading the one opcode table (`opcodes`). Both are
optional: `pip install .` builds them where it finds a compiler, and
without them the Python twins run. CKPT_PURE_PYTHON turns them off, so the
tests can run each twin against the other.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def compiled(name: str) -> ModuleType | None:
    """The extension module `name`, or None if it was not built or CKPT_PURE_PYTHON is set."""
    if os.environ.get("CKPT_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
