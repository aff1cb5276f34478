"""Paths a person can paste into Python: `model.steps[1][1].handler.lock`.

The scan never builds a string per object. It records, for each object it
walks, its parent and the *edge* that led there (a small tuple), and only
turns the chain into text for the objects it reports. An edge is one of:

    ("attr", name)       model.name
    ("item", key)        model[key]            (list index, dict key that is a literal)
    ("key", i)           list(model)[i]        (the i-th key of a dict)
    ("value", i)         list(model.values())[i]   (the value of the i-th key, when that key is
                                               no literal: stable across runs, unlike its repr,
                                               and naming the dict only once)
    ("member", i)        list(model)[i]        (the i-th member of a set)
    ("call", text)       model.text            (e.g. "__getstate__()")
    ("getstate", key)    model.__getstate__()[key]   (a custom state's value that is not an attribute)
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
from collections.abc import Sequence
from typing import Any

ROOT = "model"
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
    "item": lambda key: f"[{_key_repr(key)}]",
    "call": lambda text: f".{text}",
    "getstate": lambda key: f".__getstate__()[{_key_repr(key)}]",
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
    if tag == "type":
        return f"type({text})"
    return f"getattr({text}, {edge[1]!r})"


def _key_repr(key: Any) -> str:
    if is_literal(key):
        return repr(key)
    return f"<{type(key).__qualname__} at {id(key):#x}>"


def is_literal(key: Any) -> bool:
    """Whether `repr(key)` is a Python literal that evaluates back to an equal key."""
    if type(key) is tuple:
        return all(is_literal(k) for k in key)
    return type(key) in _LITERALS


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


def follow(root: Any, path: str) -> Any:
    """The object at `path` under `root`, following only `.attr` and
    `[literal]` steps (no code is evaluated). Raises LookupError otherwise."""
    if not path.startswith(ROOT):
        raise LookupError(f"{path!r} does not start at {ROOT!r}")
    obj, position, rest = root, 0, path[len(ROOT) :]
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if match is None:
            raise LookupError(f"{path!r}: cannot follow {rest[position:]!r} without evaluating code")
        attr, key = match.groups()
        try:
            obj = getattr(obj, attr) if attr is not None else obj[ast.literal_eval(key)]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, SyntaxError) as exc:
            raise LookupError(f"{path!r}: {type(exc).__name__} at {match.group(0)!r}") from None
        position = match.end()
    return obj
