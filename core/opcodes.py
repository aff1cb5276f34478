"""The pickle opcodes: one table for every reader of a stream.

`WIDTHS[byte]` is the opcode's name and how its argument is laid out: the
stream analysis (`stream`), save's replay (`reach`) and the data-only
unpickler all read it.
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
