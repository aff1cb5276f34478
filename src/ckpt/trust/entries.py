"""An entry of the reviewed table: one exact global a checkpoint may use
without --trust, what the file may do with it, and why that is harmless.

What an entry permits (bits from `analysis`):
- a class: stored as a value and instantiated (`cls.__new__(cls)`, then its
  own `__setstate__` or attribute update) by default; `call` adds
  `cls(*args)` (its own `__init__`), `new_args` adds `cls.__new__(cls, *args)`;
- a function: called (never stored, unless `value`: a function harmless to
  call with any data, such as a clock); `fresh` says whether what it
  returns is a new object (which may then receive state or items);
- a constant: stored as a value only.
`guard` names a check of the call's arguments (`guards`), applied by identity.

Entries live in two places, both read into one table by `reviewed`: the
general ones (stdlib data, numpy, pandas, torch) in `reviewed` itself, and
the ones a rewrap writes in the catalog row of its kind (`Kind.admits`), so
that a kind is one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ckpt.trust.analysis import CALL, NEW, NEW_ARGS, RESULT_USED, VALUE

CLASS, FUNCTION, CONSTANT = "class", "function", "constant"


@dataclass(frozen=True)
class Entry:
    name: str
    """`module:qualname`, exactly as the file spells it."""
    kind: str
    reason: str
    call: bool = False
    new_args: bool = False
    fresh: bool = True
    guard: str | None = None
    value: bool = False
    """A function that may also be stored as data (see the module docstring)."""
    new: bool = True
    """A class that may be made without its constructor (then given state)."""

    @property
    def allowed(self) -> int:
        if self.kind == CONSTANT:
            return VALUE
        if self.kind == FUNCTION:
            return CALL | (RESULT_USED if self.fresh else 0) | (VALUE if self.value else 0)
        bits = VALUE | RESULT_USED | (NEW if self.new else 0)
        return bits | (CALL if self.call else 0) | (NEW_ARGS if self.new_args else 0)


def classes(module: str, names: str, reason: str, **options: Any) -> tuple[Entry, ...]:
    """One class entry per space-separated name, all of `module`, for one reason."""
    return tuple(Entry(f"{module}:{name}", CLASS, reason, **options) for name in names.split())


def functions(module: str, names: str, reason: str, **options: Any) -> tuple[Entry, ...]:
    """One function entry per space-separated name, all of `module`, for one reason."""
    return tuple(Entry(f"{module}:{name}", FUNCTION, reason, **options) for name in names.split())
