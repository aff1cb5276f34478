"""Where in the object graph sits what makes a pickle unloadable.

Save refuses an object whose pickle names a global no trust admits, or
does what no ordinary pickle does (a private bound method): the error then
names the object's path, as scan names an unpicklable one. `culprits` walks
the graph the way pickle takes it apart (`graph.decompose`), breadth first,
and stops at the first few matches or after `LIMIT` objects: it runs only
on that error path, never on a save that succeeds.
"""

from __future__ import annotations

import collections
import types
from collections.abc import Iterable
from typing import Any

from .graph import decompose
from .paths import Edge, format_path

LIMIT = 200_000
"""Objects walked at most: enough for any graph a person debugs by path."""

_BOUND = (types.MethodType, types.BuiltinMethodType)


def culprits(root: Any, names: Iterable[str] = (), *, instances_of: tuple[type, ...] = (), most: int = 3) -> list[str]:
    """Paths of up to `most` objects that are one of `names` (`module:qualname`),
    an instance of `instances_of`, or a private method bound to an instance."""
    wanted = set(names)
    found: list[str] = []
    seen: set[int] = set()
    queue: collections.deque[tuple[Any, tuple[Edge, ...]]] = collections.deque([(root, ())])
    while queue and len(found) < most and len(seen) < LIMIT:
        obj, edges = queue.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if _is_culprit(obj, wanted) or (instances_of and isinstance(obj, instances_of)):
            found.append(format_path(edges))
            continue
        try:
            children = decompose(obj)
        except Exception:  # Unpicklable and the like: what pickle cannot take apart is scan's to report
            continue
        queue.extend((child, edges + (edge,)) for edge, child in children)
    return found


def _is_culprit(obj: Any, wanted: set[str]) -> bool:
    if isinstance(obj, _BOUND) and not isinstance(getattr(obj, "__self__", None), (type, types.ModuleType)):
        return getattr(obj, "__name__", "").startswith("_")
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return isinstance(module, str) and isinstance(qualname, str) and f"{module}:{qualname}" in wanted
