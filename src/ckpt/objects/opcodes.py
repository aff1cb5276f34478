"""The pickle opcodes: one table for every reader of a stream.

`WIDTHS[byte]` is the opcode's name and how its argument is laid out: the
stream analysis (`trust.analysis`), save's replay (`scanning.replay`), the
pickler's memo lookups (`kinds.pickler`) and the data-only unpickler all
read it, and the C twins read `SIGNED_WIDTHS`, the same widths as bytes.
"""

from __future__ import annotations

import pickletools

_LENGTHS = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
            pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}
UP_TO_NEWLINE, TWO_LINES = -2, -3

WIDTHS: list[tuple[str, int] | None] = [None] * 256
"""By opcode byte: its name and its argument's width (>= 0 fixed; -1/-4/-8 a
length of that many bytes first; -2 up to a newline; -3 two lines)."""
for _op in pickletools.opcodes:
    _n = _op.arg.n if _op.arg is not None else 0
    if _n == pickletools.UP_TO_NEWLINE:
        _n = TWO_LINES if _op.name in ("GLOBAL", "INST") else UP_TO_NEWLINE
    elif _n < 0:
        _n = -_LENGTHS[_n]
    WIDTHS[_op.code.encode("latin-1")[0]] = (_op.name, _n)

SIGNED_WIDTHS = bytes((127 if entry is None else entry[1]) & 0xFF for entry in WIDTHS)
"""WIDTHS for the C twins: a signed width per opcode byte (127: no such opcode)."""

CODES = {entry[0]: code for code, entry in enumerate(WIDTHS) if entry is not None}
"""Each opcode's byte, by name."""
