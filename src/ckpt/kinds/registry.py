"""A strip never breaks its owner: a callable stripped from a registry leaves it.

A torch module's hook dicts, a trainer's callback list, a signal's
receivers: their owner calls every entry, so an entry saved as None breaks
the owner on first use (`None(...)`), not just the entry. A stripped
callable whose container is such a registry -- a list, or a dict keyed by
something else than names (hook ids, receiver ids), whose entries are all
callable, or all tuples holding a callable where it sits (Django's
`(key, receiver)` pairs) -- is taken out of the container instead.

The container is not changed: the object pickle reduces nearest above it
(`anchor`: the registry itself when it is a dict or list subclass, else its
owner, or the saved root) is written with a copy of its state in which the
registry lacks the entry. Save plans each removal before writing (`plan`,
which builds the copy once to be sure it can), and the scan says, before any
save, what a strip of a callable would do (`strip_effect`).
"""

from __future__ import annotations

import copyreg
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ckpt.objects.decompose import PROTOCOL
from ckpt.objects.paths import Edge

Holders = tuple[tuple[Any, Edge], ...]
"""From an object upward: each container or owner above it, with the edge that leads down from it
(as far as the first that is no plain dict, list or tuple)."""

_PLAIN = (dict, list, tuple)


@dataclass(frozen=True)
class Removal:
    """One stripped callable taken out of its registry."""

    anchor: Any
    """The object whose reduction is written with the registry's entry left out."""
    steps: tuple[Edge, ...]
    """From `anchor` down to the registry (empty: the anchor is the registry)."""
    entry: Edge
    """The registry's edge to the entry that goes."""


def registry_of(obj: Any, holders: Holders) -> tuple[int, Edge] | None:
    """Where a registry holds `obj` if it sits in one: the index in `holders`
    of the registry, and the registry's edge to the entry (`obj`, or the tuple
    holding it). None for anything else."""
    if not callable(obj) or not holders:
        return None
    container, edge = holders[0]
    if type(container) is tuple and len(holders) > 1 and edge[0] == "item":
        at = edge[1]
        registry, entry = holders[1]
        holds = lambda item: type(item) is tuple and len(item) > at and callable(item[at])  # noqa: E731
        return (1, entry) if entry[0] in _ENTRIES and _is_registry(registry, holds) else None
    return (0, edge) if edge[0] in _ENTRIES and _is_registry(container, callable) else None


_ENTRIES = ("item", "value")
"""Edges to a list's or dict's entries (not to an attribute, such as a defaultdict's factory)."""


def _is_registry(container: Any, holds: Callable[[Any], bool]) -> bool:
    if isinstance(container, list):
        return all(map(holds, container))
    if isinstance(container, dict):
        return not any(isinstance(key, str) for key in container) and all(map(holds, container.values()))
    return False


def strip_effect(obj: Any, registry: str) -> str:
    """What a strip would do to the owner of `obj` (an entry of the registry
    at path `registry`, if any), said before the save: nothing for what is
    not a function or callable object."""
    if registry:
        return f"--strip removes it from {registry}, whose owner calls every entry"
    if isinstance(obj, type):
        return "--strip leaves None where a class was: what is built from it fails to load"
    if callable(obj):
        return "--strip leaves None where a callable was: its owner fails when it calls it"
    return ""


def plan(obj: Any, holders: Holders, root: Any, reduce: Callable[[Any], Any]) -> Removal | None:
    """How save takes the stripped `obj` out of its registry, or None if it
    is in none or no object above the registry can be written without it
    (then it is saved as None). `reduce` is how the pickler reduces an object."""
    found = registry_of(obj, holders)
    if found is None:
        return None
    level, entry = found
    anchor, steps = holders[level][0], list[Edge]()
    for holder, edge in holders[level + 1:]:
        if type(anchor) not in _PLAIN:
            break
        anchor = holder
        steps.insert(0, edge)
    if type(anchor) in _PLAIN and anchor is not root:
        return None
    removal = Removal(anchor, tuple(steps), entry)
    try:
        written([removal], reduce)
    except _Unsupported:
        return None
    return removal


class _Unsupported(Exception):
    """The anchor's reduction does not hold the registry where its path says."""


def written(removals: Iterable[Removal], reduce: Callable[[Any], Any]) -> Any:
    """What to write for the anchor of `removals` (all of one anchor): a
    plain dict, list or tuple root as a copy; anything else as its reduce
    value with the registry's items, or the registries in its state, copied
    without their entries."""
    removals = list(removals)
    anchor = removals[0].anchor
    if type(anchor) in _PLAIN:
        return _apply(anchor, removals)
    value = reduce(anchor)
    if not isinstance(value, tuple):
        raise _Unsupported
    value = list(value)
    items = [r.entry for r in removals if not r.steps]
    if items:
        value = _without_items(value, anchor, items)
    state = [r for r in removals if r.steps]
    if state:
        if len(value) < 3:
            raise _Unsupported
        value[2] = _apply_state(value[2], state)
    return tuple(value)


def _apply(holder: Any, removals: list[Removal]) -> Any:
    by_registry: dict[tuple[Edge, ...], list[Edge]] = {}
    for removal in removals:
        by_registry.setdefault(removal.steps, []).append(removal.entry)
    for steps, entries in by_registry.items():
        holder = _replace(holder, steps, functools.partial(_pruned, entries=entries))
    return holder


def _apply_state(state: Any, removals: list[Removal]) -> Any:
    """The anchor's state (a dict, or pickle's `(dict, slots)` pair) with its registries pruned."""
    if isinstance(state, dict):
        return _apply(state, [_as_item(r) for r in removals])
    if isinstance(state, tuple) and len(state) == 2:
        parts = list(state)
        for i, part in enumerate(parts):
            mine = [r for r in removals if isinstance(part, dict) and r.steps[0][1] in part]
            if mine:
                parts[i] = _apply(part, [_as_item(r) for r in mine])
        return tuple(parts)
    raise _Unsupported


def _as_item(removal: Removal) -> Removal:
    """An attribute or custom-state step, as the state dict's item."""
    tag, name = removal.steps[0][:2]
    if tag not in ("attr", "getstate"):
        raise _Unsupported
    return Removal(removal.anchor, (("item", name), *removal.steps[1:]), removal.entry)


def _replace(holder: Any, steps: tuple[Edge, ...], change: Callable[[Any], Any]) -> Any:
    """A copy of `holder` in which what `steps` lead to is `change(it)`."""
    if not steps:
        return change(holder)
    key = _key(holder, steps[0])
    inner = _replace(holder[key], steps[1:], change)
    if type(holder) is tuple:
        return holder[:key] + (inner,) + holder[key + 1:]
    if type(holder) not in (dict, list):
        raise _Unsupported
    copy = holder.copy()
    copy[key] = inner
    return copy


def _key(holder: Any, edge: Edge) -> Any:
    try:
        if edge[0] == "item":
            holder[edge[1]]
            return edge[1]
        if edge[0] == "value" and isinstance(holder, dict):
            return list(holder)[edge[1]]
    except (KeyError, IndexError, TypeError):
        pass
    raise _Unsupported


def _pruned(registry: Any, *, entries: list[Edge]) -> Any:
    """A plain copy of a plain registry without `entries`."""
    drop = {_key(registry, entry) for entry in entries}
    if type(registry) is list:
        return [item for i, item in enumerate(registry) if i not in drop]
    if type(registry) is dict:
        return {k: v for k, v in registry.items() if k not in drop}
    raise _Unsupported


def _without_items(value: list[Any], registry: Any, entries: list[Edge]) -> list[Any]:
    """The reduce value of a dict or list subclass (an OrderedDict of hooks)
    with the entries left out of the items it gives pickle."""
    drop = {_key(registry, entry) for entry in entries}
    value += [None] * (5 - len(value))
    if isinstance(registry, dict) and value[4] is not None:
        value[4] = iter([(k, v) for k, v in value[4] if k not in drop])
    elif isinstance(registry, list) and value[3] is not None:
        value[3] = iter([item for i, item in enumerate(value[3]) if i not in drop])
    else:
        raise _Unsupported
    return value


def default_reduce(obj: Any) -> Any:
    """How pickle reduces `obj` without ckpt: copyreg's reducer, else `__reduce_ex__`."""
    reducer = copyreg.dispatch_table.get(type(obj))
    return reducer(obj) if reducer is not None else obj.__reduce_ex__(PROTOCOL)
