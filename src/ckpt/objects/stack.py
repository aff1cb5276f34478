"""Deep object graphs: pickling and unpickling on a stack sized for them.

pickle recurses once per level of nesting, and the C pickler counts each
level against `sys.getrecursionlimit()`: a graph nested deeper than about a
thousand levels (a long linked chain, a client whose objects refer on and
on) fails to save with a RecursionError. CPython also hashes a nested
tuple recursively with no limit at all, so a load of something pickle
wrote that deep must not run on a small stack either.

Such work runs on a thread of its own whose C stack fits `levels` levels,
with the recursion limit raised to match while it runs (the limit is the
interpreter's, not the thread's: it is restored afterwards, and only one
deep run raises it at a time). A save retries there when pickling ran out of
recursion; the manifest records the levels it wrote with, and the load of
that file gives itself as many.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEEPEST = 1 << 18
"""Recursion levels a deep save gets: a linked chain some 80,000 objects deep."""

BYTES_PER_LEVEL = 2048
"""C stack per level of recursion, with room to spare, so that the raised
limit is reached before the stack's end: measured, about 200 bytes for the
C pickler's save of one object, under 64 for a tuple's hash, and 500 to 750
for Python code C calls back into at every level (a `__getattr__`, `__eq__`
or `__repr__` that recurses without end: that must end in a RecursionError,
never overflow the stack)."""

_BASE = 16 << 20
"""Stack for everything besides the recursion: the work's own frames."""

_deep = threading.local()
_running = threading.Lock()


def levels() -> int:
    """The levels the current thread has room for: 0 unless it is a deep run's."""
    return getattr(_deep, "levels", 0)


def run(work: Callable[[], T], depth: int = DEEPEST) -> T:
    """`work()`, on a thread whose stack fits `depth` levels of recursion
    (here, when this thread is a deep run's already: it has what it has)."""
    if levels():
        return work()
    box: dict[str, Any] = {}

    def deep() -> None:
        _deep.levels = depth
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, depth))
        try:
            box["result"] = work()
        except BaseException as exc:  # carried back to the caller's thread
            box["error"] = exc
        finally:
            sys.setrecursionlimit(previous)

    with _running:  # one raised limit at a time; and the stack size applies to threads started meanwhile
        size = threading.stack_size()
        threading.stack_size(depth * BYTES_PER_LEVEL + _BASE)
        try:
            worker = threading.Thread(target=deep, name="ckpt-deep", daemon=True)
            worker.start()
        finally:
            threading.stack_size(size)
        worker.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
