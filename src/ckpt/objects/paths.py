"""Paths a person can paste into Python: `model.steps[1][1].handler.lock`.

Paths name the same object the same way in every run, so that a strip can
live in `[tool.ckpt]`: no process ids, thread ids or addresses in them
(`stable_key`). The scan never builds a string per object. It records, for each object it
walks, its parent and the *edge* that led there (a small tuple), and only
turns the chain into text for the objects it reports. An edge is one of:

    ("attr", name)       model.name
    ("item", key)        model[key]            (list index, dict key that is a literal)
    ("key", i)           list(model)[i]        (the i-th key of a dict)
    ("value", i)         list(model.values())[i]   (the value of the i-th key, when that key is
                                               no literal, or one that changes from run to run:
                                               a process or thread id, an address; naming the
                                               dict only once)
    ("member", i)        list(model)[i]        (the i-th member of a set)
    ("call", text)       model.text            (e.g. "__getstate__()")
    ("getstate", key)    model.__getstate__()[key]   (a custom state's value that is not an attribute)
    ("state-value", i)   list(model.__getstate__().values())[i]   (that value, when its key is no
                                               literal or changes from run to run)
    ("reduce", i)        model.__reduce_ex__(5)[i]
    ("closure", i)       model.__closure__[i].cell_contents
    ("global", name)     model.__globals__['name']   (a global a function by value reads)
    ("via", edges)       the edges one after the other (a method's part, seen from its class)
    ("type",)            type(model)
    ("note", text)       model<text>           (not an expression: e.g. a SimpleQueue item)
"""

from __future__ import annotations

import ast
import re
import weakref
from collections.abc import Sequence
from typing import Any

ROOT = "model"
STARTS = (ROOT, "list(", "type(", "getattr(")
"""How a path begins: at the root, or with a wrapper around it (a position, a type)."""
Edge = tuple[Any, ...]
_LITERALS = (str, bytes, int, float, bool, type(None))


def format_path(edges: Sequence[Edge], root: str = ROOT) -> str:
    """Render the edges from the root to an object as one expression.

    Suffix edges are appended to a list (a 100,000-edge chain stays linear);
    the few edges that wrap the expression (`list(...)`, `type(...)`) join it first.
    """
    parts = [root]
    for edge in edges:
        suffix = _suffix(edge)
        if suffix is None:
            parts = [_wrap("".join(parts), edge)]
        else:
            parts.append(suffix)
    return "".join(parts)


_SUFFIXES = {
    "item": lambda key: f"[{key!r}]",
    "call": lambda text: f".{text}",
    "getstate": lambda key: f".__getstate__()[{key!r}]",
    "reduce": lambda index: f".__reduce_ex__(5)[{index}]",
    "closure": lambda index: f".__closure__[{index}].cell_contents",
    "global": lambda name: f".__globals__[{name!r}]",
    "via": lambda edges: "".join(str(_suffix(edge)) for edge in edges),
    "note": lambda text: f"<{text}>",
}


def _suffix(edge: Edge) -> str | None:
    """The text an edge appends, or None if it must wrap the expression."""
    tag = edge[0]
    if tag == "attr":
        name = edge[1]
        return f".{name}" if isinstance(name, str) and name.isidentifier() else None
    render = _SUFFIXES.get(tag)
    return render(edge[1]) if render else None


def _wrap(text: str, edge: Edge) -> str:
    tag = edge[0]
    if tag in ("key", "member"):
        return f"list({text})[{edge[1]}]"
    if tag == "value":
        return f"list({text}.values())[{edge[1]}]"
    if tag == "state-value":
        return f"list({text}.__getstate__().values())[{edge[1]}]"
    if tag == "type":
        return f"type({text})"
    return f"getattr({text}, {edge[1]!r})"


def is_literal(key: Any) -> bool:
    """Whether `repr(key)` is a Python literal that evaluates back to an equal key."""
    if type(key) is tuple:
        return all(is_literal(k) for k in key)
    return type(key) in _LITERALS


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_ADDRESSES = 1 << 32
"""Where memory addresses start (64-bit): an int key that large, and aligned as
objects are (16 bytes), is taken for one (`id()` of something, a thread's ident)."""
_RUNTIME_IDS = ("pid", "ident", "native_id")
"""Attributes holding a process's or a thread's id (multiprocessing, subprocess, threading)."""


def stable_key(key: Any, value: Any) -> bool:
    """Whether a literal dict key names its entry the same way in every run:
    not the id of the process or thread it maps to (`{pid: process}`), nor
    an object's address (`{id(receiver): receiver}`, or text holding one)."""
    if type(key) is tuple:
        return all(stable_key(k, value) for k in key)
    if type(key) is str:
        return _ADDRESS.search(key) is None
    if type(key) is not int:
        return True
    referent = value() if isinstance(value, weakref.ref) else value
    if key in (id(value), id(referent)) or (key >= _ADDRESSES and key % 16 == 0):
        return False
    return not any(_attribute(value, name) == key for name in _RUNTIME_IDS)


def _attribute(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises (a process not started yet)
        return None


def literal_key(key: Any, value: Any) -> bool:
    """Whether a path names this dict entry by its key (else by its position)."""
    return is_literal(key) and stable_key(key, value)


_KEY = r"\[((?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\]'\"])*)\]"
_TOKEN = re.compile(r"\.([A-Za-z_]\w*)|" + _KEY)
_INDEX = re.compile(_KEY)


def wildcard(path: str) -> str:
    """`path` with every index and key written `[*]`: the paths of like
    objects that differ only in indexes and keys share it."""
    return _INDEX.sub("[*]", path)


def pattern(paths: Sequence[str]) -> str:
    """The paths (of one `wildcard`) written once, `[*]` where their indexes or keys
    differ: `model['items'][0].lk`, `model['items'][1].lk` -> `model['items'][*].lk`."""
    pieces = [_INDEX.split(path) for path in paths]  # text, key, text, key, ..., text
    return "".join(
        piece if i % 2 == 0 else f"[{piece}]" if all(p[i] == piece for p in pieces) else "[*]"
        for i, piece in enumerate(pieces[0])
    )


def matches(pattern: str, path: str) -> bool:
    """Whether `path` is `pattern`, or one of the paths a pattern with `[*]`
    (from `pattern`, or written by hand) stands for."""
    if "[*]" not in pattern:
        return pattern == path
    want, have = _INDEX.split(pattern), _INDEX.split(path)
    return len(want) == len(have) and all(w == h or (i % 2 == 1 and w == "*")
                                          for i, (w, h) in enumerate(zip(want, have)))


def follow(root: Any, path: str) -> Any:
    """The object at `path` under `root`, following only `.attr` and
    `[literal]` steps, and the positions `list(...)[i]`, `list(....values())[i]`
    and `type(...)` name (no code is evaluated). Raises LookupError otherwise."""
    obj, rest = _follow(root, path, path)
    if rest:
        raise LookupError(f"{path!r}: cannot follow {rest!r} without evaluating code")
    return obj


_VALUES = ".values())"
_POSITION = re.compile(r"\[(\d+)\]")


def _follow(root: Any, text: str, path: str) -> tuple[Any, str]:
    """The object `text` leads to, and what is left of it after the
    expression closes (a wrapper's `)`), or at the end."""
    if text.startswith("type("):
        obj, rest = _follow(root, text[len("type("):], path)
        return _steps(type(obj), _closing(rest, ")", path), path)
    if text.startswith("list("):
        obj, rest = _follow(root, text[len("list("):], path)
        values = rest.startswith(_VALUES)
        rest = _closing(rest, _VALUES if values else ")", path)
        position = _POSITION.match(rest)
        if position is None:
            raise LookupError(f"{path!r}: no position after list(...)")
        try:
            obj = list(obj.values() if values else obj)[int(position.group(1))]
        except (AttributeError, IndexError, TypeError) as exc:
            raise LookupError(f"{path!r}: {type(exc).__name__} at {position.group(0)!r}") from None
        return _steps(obj, rest[position.end():], path)
    if text.startswith(ROOT):
        return _steps(root, text[len(ROOT):], path)
    if text.startswith(STARTS):  # getattr(...)
        raise LookupError(f"{path!r}: cannot follow {text!r} without evaluating code")
    raise LookupError(f"{path!r} does not start at {ROOT!r}")


def _closing(rest: str, end: str, path: str) -> str:
    if not rest.startswith(end):
        raise LookupError(f"{path!r}: expected {end!r} at {rest!r}")
    return rest[len(end):]


def _steps(obj: Any, rest: str, path: str) -> tuple[Any, str]:
    """Follow `.attr` and `[literal]` steps as far as they go."""
    position = 0
    while position < len(rest) and not rest.startswith(_VALUES, position):
        match = _TOKEN.match(rest, position)
        if match is None:
            break
        attr, key = match.groups()
        try:
            obj = getattr(obj, attr) if attr is not None else obj[ast.literal_eval(key)]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, SyntaxError) as exc:
            raise LookupError(f"{path!r}: {type(exc).__name__} at {match.group(0)!r}") from None
        position = match.end()
    return obj, rest[position:]
