"""Which values of a pickle stream lead to the objects save substituted.

Save knows *which* objects it rewrapped (its reducers record them) but the
manifest must say *where* each sits, by path. The stream it just wrote
already encodes that: every list, dict, instance and call result in a pickle
is built from values written before it. Replaying the opcodes with one bit
per value -- does this value hold, or lead to, a substituted object? --
marks every memo entry on a path to one, in one pass over the bytes. The
scan's walk then goes down only into marked objects (`StreamOracle`, below),
where the plain scan re-pickles halves of the model to find them (5,000
pickler runs on the object-heavy benchmark).

`Replay` is fed the pickler's output: the main pickle, then, for each object
the walk asks about, that object pickled again by the same pickler (a memo
GET when it was written before, else its new opcodes, which continue the
same memo). Nothing is built and nothing is imported: a value is a node
number and a bit.

src/ckpt/scanning/_replay.c does exactly this at C speed; this is its twin, used when
the extension was not built (or CKPT_PURE_PYTHON is set), and the
reference the tests fuzz it against.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ckpt.kinds.pickler import memo_indexes
from ckpt.objects.compiled import compiled
from ckpt.objects.opcodes import CODES, SIGNED_WIDTHS, WIDTHS


class ReplayError(ValueError):
    """The bytes are not a pickle this replay can follow (truncated, malformed)."""


def _codes(*names: str) -> list[int]:
    return [CODES[name] for name in names]


(UNKNOWN, ATOM, EMPTY, FROM_MARK, FROM_TOP_1, FROM_TOP_2, FROM_TOP_3, INTO_TOP_1, INTO_TOP_2, INTO_TOP_MARK, PUT, GET,
 SKIP, MARK, POP, POP_MARK, DUP, STOP, LEAD) = range(19)
"""What an opcode does to the replay's stack (one table for both twins). LEAD
pushes a value that leads by itself: NEXT_BUFFER's effect when the replay
looks for out-of-band buffers (`replay(buffers=True)`) instead of targets."""

EFFECTS = bytearray(256)
for _effect, _names in (
    # values that hold nothing: node 0, whose bit is never set
    (ATOM, ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
            "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE", "SHORT_BINUNICODE",
            "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT", "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE",
            "BYTEARRAY8", "NEXT_BUFFER", "GLOBAL", "EXT1", "EXT2", "EXT4", "PERSID")),
    # containers filled later (APPENDS, SETITEMS, ADDITEMS): a node of their own
    (EMPTY, ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET")),
    # a new value built from everything above the last mark, or from the top n values
    (FROM_MARK, ("TUPLE", "LIST", "DICT", "FROZENSET", "OBJ", "INST")),
    (FROM_TOP_1, ("TUPLE1", "BINPERSID")),
    (FROM_TOP_2, ("TUPLE2", "REDUCE", "NEWOBJ", "STACK_GLOBAL")),
    (FROM_TOP_3, ("TUPLE3", "NEWOBJ_EX")),
    # values given to the value below them
    (INTO_TOP_1, ("APPEND", "BUILD")),
    (INTO_TOP_2, ("SETITEM",)),
    (INTO_TOP_MARK, ("APPENDS", "SETITEMS", "ADDITEMS")),
    (PUT, ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE")),
    (GET, ("GET", "BINGET", "LONG_BINGET")),
    (SKIP, ("PROTO", "FRAME", "READONLY_BUFFER")),
    (MARK, ("MARK",)), (POP, ("POP",)), (POP_MARK, ("POP_MARK",)), (DUP, ("DUP",)), (STOP, ("STOP",)),
):
    for _code in _codes(*_names):
        EFFECTS[_code] = _effect
MAX_DIGITS = 10
"""The longest decimal memo index PUT and GET may spell."""


class Replay:
    """The replay's state across the pickles one pickler writes (its memo
    carries over from one `feed` to the next, as the pickler's does).

    `targets` are the memo indexes of the substituted objects; `effects` is
    EFFECTS, or BUFFER_EFFECTS to find what holds an out-of-band buffer."""

    def __init__(self, targets: Collection[int], effects: bytes | bytearray = EFFECTS) -> None:
        self._targets = frozenset(targets)
        self._effects = effects
        self._bits = bytearray(1)  # node 0: atoms
        self._memo: list[int] = []  # memo index -> node; -1 for an index never stored
        self._fed = 0

    @property
    def memo_size(self) -> int:
        return len(self._memo)

    def leads(self, index: int) -> bool:
        """Whether memo entry `index` is, holds or leads to a substituted object."""
        node = self._memo[index] if 0 <= index < len(self._memo) else -1
        return node >= 0 and self._bits[node] == 1

    def feed(self, raw: bytes | bytearray) -> bool:
        """Replay complete pickles (one or more, each ending in STOP);
        whether the value of the last one leads to a substituted object."""
        self._fed += len(raw)
        bits, memo, effects = self._bits, self._memo, self._effects
        stack: list[int] = []
        marks: list[int] = []
        result: bool | None = None
        i, end = 0, len(raw)
        try:
            while i < end:
                code = raw[i]
                start, i = _argument(raw, i, code)
                effect = effects[code]
                if effect == ATOM:
                    stack.append(0)
                elif effect == GET:
                    index = _index(raw, start, i, code)
                    if not 0 <= index < len(memo) or memo[index] < 0:
                        raise ReplayError(f"a memo index that was never stored, at position {start - 1}")
                    stack.append(memo[index])
                elif effect == PUT:
                    self._put(len(memo) if start == i else _index(raw, start, i, code), stack, marks)
                elif effect == EMPTY or effect == LEAD:
                    stack.append(self._node(effect == LEAD))
                elif FROM_MARK <= effect <= FROM_TOP_3:
                    cut = marks.pop() if effect == FROM_MARK else len(stack) - (effect - FROM_MARK)
                    if cut < (marks[-1] if marks else 0):
                        raise IndexError
                    stack[cut:] = [self._node(any(bits[n] for n in stack[cut:]))]
                elif INTO_TOP_1 <= effect <= INTO_TOP_MARK:
                    cut = marks.pop() if effect == INTO_TOP_MARK else len(stack) - (effect - INTO_TOP_1 + 1)
                    if cut < (marks[-1] if marks else 0) + 1:
                        raise IndexError
                    if any(bits[n] for n in stack[cut:]):
                        bits[stack[cut - 1]] = 1
                    del stack[cut:]
                elif effect == MARK:
                    marks.append(len(stack))
                elif effect == POP:
                    if len(stack) > (marks[-1] if marks else 0):
                        stack.pop()
                    else:
                        marks.pop()
                elif effect == POP_MARK:
                    del stack[marks.pop():]
                elif effect == DUP:
                    if len(stack) <= (marks[-1] if marks else 0):
                        raise IndexError
                    stack.append(stack[-1])
                elif effect == STOP:
                    if len(stack) != 1 or marks:
                        raise ReplayError(f"STOP with {len(stack)} values and {len(marks)} marks, at position {i - 1}")
                    result = bits[stack.pop()] == 1
                elif effect != SKIP:
                    raise ReplayError(f"opcode {code:#04x} at position {i - 1} is not one a pickler writes")
        except IndexError:
            raise ReplayError(f"stack underflow, at position {i - 1}") from None
        if result is None or stack or marks:
            raise ReplayError("the stream does not end with a complete pickle")
        return result

    def _node(self, lead: bool) -> int:
        self._bits.append(1 if lead else 0)
        return len(self._bits) - 1

    def _put(self, index: int, stack: list[int], marks: list[int]) -> None:
        if len(stack) <= (marks[-1] if marks else 0):
            raise IndexError
        if index > len(self._memo) + self._fed:
            raise ReplayError(f"memo index {index} is beyond anything this stream could have stored")
        if index in self._targets:
            stack[-1] = self._node(True)  # a substituted object: a node of its own, marked
        if index >= len(self._memo):
            self._memo.extend([-1] * (index + 1 - len(self._memo)))
        self._memo[index] = stack[-1]


def _argument(raw: bytes | bytearray, i: int, code: int) -> tuple[int, int]:
    """Where opcode `code` at `i` has its argument, and where the next opcode starts."""
    entry = WIDTHS[code]
    if entry is None:
        raise ReplayError(f"unknown opcode {code:#04x} at position {i}")
    width, start = entry[1], i + 1
    if width >= 0:
        after = start + width
    elif width in (-1, -4, -8):  # a length of that many bytes, then the argument
        if start - width > len(raw):
            raise ReplayError(f"{entry[0]} at position {i} runs past the end of the stream")
        length = int.from_bytes(raw[start : start - width], "little")
        start -= width
        after = start + length
    else:  # one line (-2) or two (-3)
        after = raw.find(b"\n", start) + 1
        if after and width == -3:
            after = raw.find(b"\n", after) + 1
        if not after:
            raise ReplayError(f"{entry[0]} at position {i} runs past the end of the stream")
    if after > len(raw):
        raise ReplayError(f"{entry[0]} at position {i} runs past the end of the stream")
    return start, after


def _index(raw: bytes | bytearray, start: int, end: int, code: int) -> int:
    """A memo index: little-endian binary (BINPUT, LONG_BINGET, ...), or decimal text and a newline (PUT, GET)."""
    if WIDTHS[code][1] >= 0:  # type: ignore[index]
        return int.from_bytes(raw[start:end], "little")
    text = raw[start : end - 1]
    if not 0 < len(text) <= MAX_DIGITS or not text.isdigit():
        raise ReplayError(f"memo index {text!r} at position {start - 1} is not a decimal number")
    return int(text)


BUFFER_EFFECTS = bytes(EFFECTS[:_codes("NEXT_BUFFER")[0]]) + bytes([LEAD]) + bytes(EFFECTS[_codes("NEXT_BUFFER")[0] + 1:])
"""EFFECTS where an out-of-band buffer leads: a value leads if it holds an array save wrote out of band."""


def replay(targets: Collection[int], *, buffers: bool = False) -> Any:
    """A Replay (of EFFECTS, or with `buffers` of BUFFER_EFFECTS): the
    compiled twin's (scanning/_replay.c), unless it is not there (`compiled`)."""
    effects = BUFFER_EFFECTS if buffers else bytes(EFFECTS)
    twin = compiled("ckpt.scanning._replay")
    if twin is not None:
        return twin.Replay(targets, SIGNED_WIDTHS + effects)
    return Replay(targets, effects)


class Disagreement(Exception):
    """The stream and the walk do not tell the same story: save scans instead."""


class _Leads(Exception):
    """What the oracle answers for an object that leads to a substituted one
    (the scan walks into it, as into an object pickle fails on)."""


class StreamOracle:
    """The scan's oracle (`scan.Oracle`) for the model save just pickled:
    an object fails if pickling it again with the same pickler -- a memo GET
    for anything already written -- replays to a value that leads to one of
    `targets` (the objects save substituted), or with `buffers` to an array
    it wrote out of band. `pickler` is save's RewrapPickler, its memo intact;
    `data` is everything it wrote."""

    def __init__(self, pickler: Any, data: bytes | bytearray, targets: list[Any], *, buffers: bool = False) -> None:
        self._pickler = pickler
        self.targets = targets
        chosen = self._pickle(tuple(targets))
        indexes = memo_indexes(chosen, len(targets))
        if indexes is None:
            raise Disagreement("an object save substituted was not in the pickler's memo")
        self._replay = replay(indexes, buffers=buffers)
        self._feed(data)
        self._feed(chosen)

    def __call__(self, obj: Any) -> tuple[BaseException | None, int]:
        return (_Leads() if self._feed(self._pickle(obj)) else None), 0

    def verdicts(self, objs: list[Any]) -> list[BaseException | None]:
        """The verdict for each of `objs`, from one pickling of them all when
        each was written before (a memo GET each), else one at a time."""
        raw = self._pickle(tuple(objs))
        self._feed(raw)
        indexes = memo_indexes(raw, len(objs))
        if indexes is None:
            return [self(obj)[0] for obj in objs]
        return [_Leads() if self._replay.leads(index) else None for index in indexes]

    def _pickle(self, obj: Any) -> bytes:
        """`obj` pickled again, its new array buffers kept out of the checkpoint's."""
        pickler, tap = self._pickler, self._pickler.tap
        kept = pickler.buffers
        pickler.buffers = []
        tap.captured = b""
        try:
            pickler.dump(obj)
            return tap.captured
        except Exception as exc:  # it pickled a moment ago: the object changed, or pickles differently each time
            raise Disagreement(f"pickling an object again raised {type(exc).__name__}: {exc}") from None
        finally:
            tap.captured = None
            pickler.buffers = kept

    def _feed(self, raw: bytes | bytearray) -> bool:
        try:
            return bool(self._replay.feed(raw))
        except ReplayError as exc:
            raise Disagreement(f"the stream could not be replayed: {exc}") from None
