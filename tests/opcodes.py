"""Structure-aware pickle streams for hypothesis: the opcodes and the
globals a ckpt file may use (reviewed classes and reconstructors, memo puts
and gets, marks, tuples, calls, state, items), and a few it may not.

Two users: the loader's fuzzer (tests/security/fuzz_child.py: never a crash,
a hang or a raw exception) and the stream analysis's own test
(tests/core/test_stream.py: its compiled fast path and its Python loop
agree on every stream).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

GLOBALS = [
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "deque"), ("builtins", "slice"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "int"), ("builtins", "bytes"), ("builtins", "getattr"),
    ("builtins", "type"), ("builtins", "iter"), ("builtins", "next"), ("builtins", "map"), ("fractions", "Fraction"),
    ("decimal", "Decimal"), ("re", "_compile"), ("functools", "partial"), ("_thread", "allocate_lock"),
    ("threading", "Condition"), ("types", "SimpleNamespace"), ("datetime", "timedelta"), ("uuid", "UUID"),
    ("_io", "StringIO"), ("logging", "getLogger"), ("logging", "StreamHandler"), ("queue", "Queue"),
    ("builtins", "NotImplemented"), ("posix", "system"), ("builtins", "eval"),
]

OPS: list[bytes] = [
    b"(", b")", b"]", b"}", b"N", b"\x88", b"\x89", b"t", b"\x85", b"\x86", b"\x87", b"l", b"d", b"a", b"e", b"s",
    b"u", b"b", b"R", b"\x81", b"\x92", b"0", b"1", b"2", b"\x94", b"\x8f", b"\x90", b"\x91", b"\x93", b"Q", b"o",
    b"\x97", b"\x98", b"\x80\x04", b".",
]
"""The opcodes without an argument (and PROTO): containers, calls, state, stack and memo."""

TEXT_LINES = [b"g", b"p", b"I", b"L", b"F", b"S", b"V", b"P"]
"""Protocol 0's opcodes with a line of text."""


def _text_line(draw: Any) -> bytes:
    line = draw(st.sampled_from([b"0", b"1", b"7", b"00", b"-3", b"12L", b"99999999999999999999", b"1_0", b" 1",
                                 b"'x'", b"\\u00e9", b"\xff", b""]))
    return draw(st.sampled_from(TEXT_LINES)) + line + b"\n"


def _sized(draw: Any) -> bytes:
    """A length-prefixed argument: bytes, strings, big integers, extension codes."""
    body = draw(st.binary(max_size=12))
    code, size = draw(st.sampled_from([(b"C", 1), (b"U", 1), (b"\x8c", 1), (b"\x8a", 1), (b"B", 4), (b"T", 4),
                                       (b"X", 4), (b"\x8b", 4), (b"\x8d", 8), (b"\x8e", 8), (b"\x96", 8)]))
    return code + len(body).to_bytes(size, "little") + body


def _op(draw: Any) -> bytes:
    kind = draw(st.integers(0, 12))
    if kind <= 3:
        return draw(st.sampled_from(OPS))
    if kind == 4:
        module, name = draw(st.sampled_from(GLOBALS))
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    if kind == 5:
        text = draw(st.sampled_from(["a", "x", "1.5", "append", "keys", "__init__", "_private", "a|b", "posix"]))
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw
    if kind == 6:
        return b"K" + bytes([draw(st.integers(0, 255))])
    if kind == 7:
        return draw(st.sampled_from([b"q", b"h", b"\x82"])) + bytes([draw(st.integers(0, 8))])
    if kind == 8:
        return b"\x8a\x10" + (draw(st.integers(0, 2**60)) * (2**61 - 1)).to_bytes(16, "little")  # colliding hashes
    if kind == 9:
        return _text_line(draw)
    if kind == 10:
        return _sized(draw)
    if kind == 11:
        return draw(st.sampled_from([b"r", b"j", b"\x84"])) + draw(st.integers(0, 9)).to_bytes(4, "little")
    return b"G" + draw(st.binary(min_size=8, max_size=8))


@st.composite
def streams(draw: Any) -> bytes:
    return b"\x80\x05" + b"".join(_op(draw) for _ in range(draw(st.integers(1, 60)))) + b"."


# --- programs that build, call, store, fill and remember -------------------------------------
#
# `streams` above is mostly malformed; the harm fuzzer (tests/security/fuzz_child.py) needs
# streams the data-only unpickler runs far into: expressions that leave one object on the
# stack, nested: constants, globals, calls, NEWOBJ, state, items and memo entries.


def _short_text(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    return (b"\x8c" + bytes([len(raw)]) if len(raw) < 256 else b"X" + len(raw).to_bytes(4, "little")) + raw


def _number(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _named(name: str) -> bytes:
    module, _, qualname = name.partition(":")
    return b"c" + module.encode() + b"\n" + qualname.encode() + b"\n"


def _marked(items: list[bytes], opcode: bytes) -> bytes:
    return b"(" + b"".join(items) + opcode


def _leaf(draw: Any, names: list[str], texts: list[str], written: list[int]) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(st.sampled_from([b"N", b"\x88", b"\x89", b")", b"]", b"}", b"\x8f"]))
    if kind == 1:
        return _number(draw(st.integers(-(2**70), 2**70)))
    if kind == 2:
        raw = draw(st.binary(max_size=6))
        return b"C" + bytes([len(raw)]) + raw
    if kind in (3, 4):
        return _named(draw(st.sampled_from(names)))
    if kind == 5:  # STACK_GLOBAL of two texts
        return _short_text(draw(st.sampled_from(texts))) + _short_text(draw(st.sampled_from(texts))) + b"\x93"
    if kind == 6 and written:
        return b"h" + bytes([draw(st.sampled_from(written))])  # BINGET of a slot written before
    if kind == 6 and draw(st.integers(0, 9)) == 0:
        return b"h" + bytes([draw(st.integers(0, 7))])  # one that may be empty: a malformed stream
    return _short_text(draw(st.sampled_from(texts)))


_NESTED = 19
"""How many kinds of nested expression `_expression` draws from."""


def _expression(draw: Any, names: list[str], texts: list[str], budget: list[int], written: list[int]) -> bytes:
    """One expression leaving one object on the stack, within the budget of
    nodes; `written`: the memo slots the stream has written so far (drawn
    in stream order, so a later BINGET finds them)."""
    budget[0] -= 1
    if budget[0] <= 0 or draw(st.integers(0, 3)) == 0:
        return _leaf(draw, names, texts, written)

    def one() -> bytes:
        return _expression(draw, names, texts, budget, written)

    def callee() -> bytes:  # mostly a global, as pickle writes: anything else is refused by the analysis
        return _named(draw(st.sampled_from(names))) if draw(st.integers(0, 4)) else one()

    def few(most: int = 4) -> list[bytes]:
        return [one() for _ in range(draw(st.integers(0, most)))]

    def attributes() -> bytes:  # a state dict keyed by attribute names
        pairs = [_short_text(draw(st.sampled_from(texts))) + one() for _ in range(draw(st.integers(0, 3)))]
        return b"}" + _marked(pairs, b"u")

    kind = draw(st.integers(0, _NESTED - 1))
    if kind == 0:
        return _marked(few(), b"t")
    if kind == 1:
        size = draw(st.integers(1, 3))
        return b"".join(one() for _ in range(size)) + b"\x85\x86\x87"[size - 1 : size]
    if kind == 2:
        return _marked(few(), b"l")
    if kind == 3:
        return _marked([one() + one() for _ in range(draw(st.integers(0, 3)))], b"d")
    if kind == 4:
        return _marked(few(), b"\x91")  # FROZENSET
    if kind == 5:
        return callee() + _marked(few(3), b"t") + b"R"  # REDUCE
    if kind == 6:
        return callee() + _marked(few(3), b"t") + b"\x81"  # NEWOBJ
    if kind == 7:
        return callee() + _marked(few(2), b"t") + attributes() + b"\x92"  # NEWOBJ_EX
    if kind == 8:
        state = [one, attributes, lambda: one() + attributes() + b"\x86"][draw(st.integers(0, 2))]()
        return one() + state + b"b"  # BUILD with a state, a dict of attributes, or (state, slots)
    if kind == 9:
        return one() + one() + b"a"  # APPEND
    if kind == 10:
        return one() + _marked(few(), b"e")  # APPENDS
    if kind == 11:
        return one() + one() + one() + b"s"  # SETITEM
    if kind == 12:
        return one() + _marked([one() + one() for _ in range(draw(st.integers(0, 3)))], b"u")  # SETITEMS
    if kind == 13:
        return one() + _marked(few(), b"\x90")  # ADDITEMS
    if kind in (14, 15):
        body, slot = one(), draw(st.integers(0, 7))
        written.append(slot)
        return body + b"q" + bytes([slot])  # BINPUT
    if kind == 16:
        return one() + b"2" + one() + b"\x86"  # DUP: the object, and a pair of it and another
    if kind == 17:
        return one() + one() + b"0"  # POP the second
    return _marked([callee()] + few(3), b"o")  # OBJ: a class and its arguments


@st.composite
def data_only_streams(draw: Any, names: list[str], texts: list[str]) -> bytes:
    """Streams of one nested expression over `names` (module:qualname
    globals) and `texts` (attribute names, paths): what a file uses to make
    a load do something: constants, globals, calls, NEWOBJ, state, items
    and memo entries (slots 0-7, read once written, now and then before:
    a malformed stream is refused, also fine)."""
    budget = [draw(st.integers(1, 24))]
    return b"\x80\x05" + _expression(draw, names, texts, budget, []) + b"."
