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
