"""The cyclic garbage collector, paused while many new objects are made."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile (and on again after, if it
    was): collections triggered by hundreds of thousands of new objects
    that make no cycles cost a third of an object-heavy load for nothing."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
