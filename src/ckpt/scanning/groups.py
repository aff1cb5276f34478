"""Findings (or substitutions) of one kind whose paths differ only in
indexes and keys, as one group: a report of 1,000 like locks is one row.

Reports keep every finding; grouping is for reading them (`--all` lists each).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Generic, TypeVar

from ckpt.objects.paths import pattern, wildcard

GROUP_AT = 4
"""Like findings are grouped from this many on: fewer are listed, each with its exact path."""


T = TypeVar("T")


@dataclass(frozen=True)
class Group(Generic[T]):
    """`members` share `pattern` and the grouping key; one member alone is its own group."""

    pattern: str
    members: tuple[T, ...]

    @property
    def first(self) -> T:
        return self.members[0]

    @property
    def grouped(self) -> bool:
        return len(self.members) > 1

    def common(self, text: Callable[[T], str]) -> str | None:
        """The text every member has in common (a remark), or None if they differ."""
        values = {text(m) for m in self.members}
        return values.pop() if len(values) == 1 else None


def group(items: Sequence[T], same: Callable[[T], Hashable], least: int = GROUP_AT,
          path: Callable[[T], str] = attrgetter("path")) -> list[Group[T]]:
    """Groups in the order their first members come. Items with the same
    `same(item)` and the same `path(item)` up to indexes and keys form one
    group when there are at least `least` of them; the others stay single."""
    buckets: dict[tuple[str, Hashable], list[T]] = {}
    for item in items:
        buckets.setdefault((wildcard(path(item)), same(item)), []).append(item)
    groups: list[Group[T]] = []
    for members in buckets.values():
        if len(members) >= least:
            groups.append(Group(pattern([path(m) for m in members]), tuple(members)))
        else:
            groups.extend(Group(path(m), (m,)) for m in members)
    return groups
