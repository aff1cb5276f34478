"""Structural comparison of two object graphs: what `--against` reports.

Walks both graphs side by side, taking objects apart the way pickle does
(`objects.decompose`), and reports the first paths where they differ.
Arrays and tensors compare by shape, dtype and values (NaN equal to NaN);
catalog kinds compare by what a checkpoint keeps (queue items, semaphore
value, event flag), never by the fresh lock inside; loggers by name (what
pickle keeps of them); an object saved as None by a strip matches whatever
the fresh graph has there.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Collection
from typing import Any

from ckpt.kinds import catalog
from ckpt.kinds.catalog import Action
from ckpt.objects.decompose import ATOMS, Unpicklable, decompose
from ckpt.objects.paths import Edge, format_path


def differences(loaded: Any, fresh: Any, *, stripped: Collection[str] = (), limit: int = 10) -> list[str]:
    """Up to `limit` paths where `loaded` and `fresh` differ, each with why."""
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Any, Any, tuple[Edge, ...]]] = [(loaded, fresh, ())]
    while stack and len(found) < limit:
        a, b, edges = stack.pop()
        if (id(a), id(b)) in seen:
            continue
        seen.add((id(a), id(b)))
        path = format_path(edges)
        if path in stripped:
            continue
        problem, children = _compare(a, b)
        if problem:
            found.append(f"{path}: {problem}")
        for edge, x, y in reversed(children):
            stack.append((x, y, (*edges, edge)))
    return found


def _compare(a: Any, b: Any) -> tuple[str | None, list[tuple[Edge, Any, Any]]]:
    """A difference at this node, or the pairs of children to compare."""
    kind = catalog.kind_for(b)
    if a is None and kind is not None and kind.action is not Action.REWRAP:
        return None, []  # stripped on save, as the catalog says
    if type(a) is not type(b):
        return f"type {_name(a)} != {_name(b)}", []
    if type(a) in ATOMS:
        return (None if _same_atom(a, b) else f"{_short(a)} != {_short(b)}"), []
    array = _array_difference(a, b)
    if array is not False:
        return (array if isinstance(array, str) else None), []
    if isinstance(a, logging.Logger):  # saved by name: the loading process's logger, or a detached one, of that name
        return (None if a.name == b.name else f"logger {a.name!r} != {b.name!r}"), []
    if kind is not None:
        return _pair(dict(kind.walk_payload(a)), dict(kind.walk_payload(b)))
    try:
        return _pair(dict(decompose(a, keep_atoms=True)), dict(decompose(b, keep_atoms=True)))
    except Unpicklable:
        return (None if a == b else "differs (and cannot be taken apart)"), []


def _pair(left: dict[Edge, Any], right: dict[Edge, Any]) -> tuple[str | None, list[tuple[Edge, Any, Any]]]:
    if left.keys() != right.keys():
        only_left = [format_path([e], "") for e in left.keys() - right.keys()]
        only_right = [format_path([e], "") for e in right.keys() - left.keys()]
        return f"parts differ: only in loaded {sorted(only_left)}, only in fresh {sorted(only_right)}", []
    return None, [(edge, left[edge], right[edge]) for edge in left]


def _same_atom(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


def _array_difference(a: Any, b: Any) -> str | None | bool:
    """False if not an array or tensor; else None (equal) or the difference."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(a, numpy.ndarray):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"array {a.dtype}{list(a.shape)} != {b.dtype}{list(b.shape)}"
        if a.dtype == object:
            return False  # compare element by element, as objects
        return None if numpy.array_equal(a, b, equal_nan=a.dtype.kind in "fc") else "array values differ"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"tensor {a.dtype}{list(a.shape)} != {b.dtype}{list(b.shape)}"
        same = torch.equal(a, b) or (
            a.is_floating_point() and torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0), b.nan_to_num(0))
        )
        return None if same else "tensor values differ"
    return False


def _name(obj: Any) -> str:
    return type(obj).__qualname__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
