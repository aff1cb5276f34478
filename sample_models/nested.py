"""Thread objects in the places pickle looks: nested containers, slots,
dataclasses, shared between objects, in cycles, behind a custom
`__getstate__`, inside a partial, a defaultdict factory and a closure; and a
class that already handles its own lock (clean)."""

from __future__ import annotations

import collections
import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    name: str
    handler: logging.Handler | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Like a scikit-learn Pipeline: `steps` is a list of (name, estimator)."""

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = steps


class Slotted:
    __slots__ = ("cache", "guard")

    def __init__(self) -> None:
        self.cache = {"hits": 0}
        self.guard = threading.RLock()


class SafeCounter:
    """Already fixed by hand: drops its lock on save, recreates it on load."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class HiddenState:
    """Its custom state carries a lock that is not an attribute."""

    def __init__(self) -> None:
        self.value = 1

    def __getstate__(self) -> dict[str, Any]:
        return {"value": self.value, "_lock": threading.Lock()}


class Node:
    def __init__(self, name: str, parent: Node | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []


def _scale(x: float, factor: float = 2.0) -> float:
    return x * factor


def pipeline() -> Pipeline:
    """`model.steps[1][1].handler` is a log handler, deep in lists and tuples."""
    return Pipeline([("scale", Step("scale")), ("fit", Step("fit", handler=logging.StreamHandler()))])


def containers() -> dict[str, Any]:
    return {
        "layers": [{"w": [1.0, 2.0], "lock": threading.Lock()}, {"w": [3.0]}],
        "slots": Slotted(),
        "safe": SafeCounter(),
        "tuple": (1, (2, threading.Event())),
    }


def shared_lock() -> dict[str, Any]:
    """One lock held by two objects, and a Condition built on it."""
    lock = threading.Lock()
    first, second = Node("first"), Node("second")
    first.lock = lock  # type: ignore[attr-defined]
    second.lock = lock  # type: ignore[attr-defined]
    return {"first": first, "second": second, "cond": threading.Condition(lock)}


def cycle() -> Node:
    """A parent and child that point at each other; the child holds a semaphore."""
    root = Node("root")
    child = Node("child", parent=root)
    root.children.append(child)
    child.limit = threading.Semaphore(2)  # type: ignore[attr-defined]
    return root


def clean() -> dict[str, Any]:
    """Nothing plain pickle cannot handle: a class that fixed itself, a logger, a partial."""
    return {"counter": SafeCounter(), "log": logging.getLogger("sample"), "scale": functools.partial(_scale, factor=3)}


def hidden() -> dict[str, Any]:
    """Locks reachable only through a custom state, a partial's arguments,
    a defaultdict's factory and a closure."""
    lock = threading.Lock()

    def closure() -> bool:
        return lock.locked()

    return {
        "state": HiddenState(),
        "partial": functools.partial(_scale, threading.RLock()),
        "counts": collections.defaultdict(functools.partial(dict, guard=threading.Lock())),
        "callback": closure,
    }


def deep(depth: int = 100_000) -> Node:
    """A chain `depth` levels deep: far past pickle's recursion limit."""
    root = node = Node("0")
    for i in range(1, depth):
        child = Node(str(i), parent=None)
        node.children.append(child)
        node = child
    return root


class Key:
    """A dict key with no literal spelling (its repr names its address)."""

    def __init__(self, name: str) -> None:
        self.name = name


def keyed() -> dict[str, Any]:
    """Locks under dict keys that are objects: their paths go by the key's position."""
    return {"pools": {Key("a"): [1], Key("b"): {"lock": threading.Lock()}, Key("c"): threading.RLock()}}


class Item:
    def __init__(self) -> None:
        self.lk = threading.Lock()


def many(n: int = 1000) -> dict[str, Any]:
    """`n` findings of one kind whose paths differ only in an index: one row in a report."""
    return {"items": [Item() for _ in range(n)], "lock": threading.Lock()}


class Store:
    """One lock under two names and a Condition on it that signals updates:
    the three must stay one lock after a load."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.updated = threading.Condition(self.lock)
        self.guard = self.lock
        self.data: list[int] = []


def store() -> Store:
    return Store()
