"""Hash flooding: distinct keys that share one hash value.

A dict or set of k keys with one hash value costs k*k/2 comparisons to
build (60,000 took 15 s a pass), and a load cannot be interrupted while
the C unpickler builds it. CPython randomizes the hashes of str and bytes,
but not those of numbers and of tuples of numbers: a file can make any
number of integers (their hash is the value modulo 2**61 - 1), tuples (the
tuple hash can be inverted) or complex numbers collide. So the stream
analysis counts, for every such value the file spells out, how many
distinct ones share its hash, and refuses the file past `MAX_COLLISIONS`;
the guards count the Decimals and Fractions they build the same way.

Counting keeps a few representatives per hash value, never a set of the
colliding values themselves (that set would be the flood).
"""

from __future__ import annotations

from typing import Any

MAX_COLLISIONS = 2_000
"""Distinct values that may share a hash value. No real model comes near:
distinct numbers or tuples that collide by chance number a handful at most."""

REPRESENTATIVES = 8
"""Distinct values remembered per hash value: a file may repeat a few
colliding values (-1 and -2 hash alike) as often as it likes."""


class Floods:
    """How many distinct values share each hash value."""

    __slots__ = ("_seen", "_more")

    def __init__(self) -> None:
        self._seen: dict[int, Any] = {}
        """hash -> the first value, or a list of the first REPRESENTATIVES distinct values."""
        self._more: dict[int, int] = {}
        """hash -> how many values matched none of its representatives."""

    def add(self, value: Any) -> bool:
        """Count `value`; True the one time it makes more than MAX_COLLISIONS distinct values share a hash."""
        key = hash(value)
        seen = self._seen.get(key, _ABSENT)
        if seen is _ABSENT:
            self._seen[key] = value
            return False
        known = seen if isinstance(seen, list) else [seen]
        if any(value == other for other in known):
            return False
        if len(known) < REPRESENTATIVES:
            self._seen[key] = [*known, value]
        more = self._more[key] = self._more.get(key, 0) + 1
        return more == MAX_COLLISIONS


_ABSENT = object()
