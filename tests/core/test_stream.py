"""The stream analysis: what it finds, and that src/ckpt/trust/_analysis.c and the
pure-Python loop agree on every stream, real, hostile, mutated or random."""

from __future__ import annotations

import collections
import functools
import logging
import os
import pickle
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opcodes import streams

from ckpt.kinds.pickler import dumps
from ckpt.trust import analysis as stream
from ckpt.trust.analysis import CALL, NEW, NEW_ARGS, RESULT_USED, VALUE, analyse

compiled = pytest.mark.skipif(stream._fast_path() is None, reason="the compiled fast path is not built here")


def both(data: bytes, walk: Any = analyse) -> tuple[Any, Any]:
    """`walk(data)` compiled and in Python."""
    fast = walk(data)
    os.environ["CKPT_PURE_PYTHON"] = "1"
    try:
        return fast, walk(data)
    finally:
        del os.environ["CKPT_PURE_PYTHON"]


class Plain:
    def __init__(self) -> None:
        self.x, self.name, self.items = 1, "plain", [1.5, "a", None, True]


def samples() -> Iterator[bytes]:
    yield dumps({"objects": [Plain() for _ in range(50)], "lock": threading.Lock(), "rlock": threading.RLock()})
    yield dumps(collections.OrderedDict(a=collections.defaultdict(list), b=collections.deque([1, 2], 5)))
    yield dumps({"q": queue.Queue(), "handler": logging.StreamHandler(), "partial": functools.partial(max, 1)})
    yield dumps([("t", (1, (2, (3,)))), frozenset({1, 2}), b"bytes" * 100, "ü" * 300, 10**40, -1.5])
    for protocol in range(6):
        yield pickle.dumps({"p": [Plain(), Plain()], "n": None, "s": {1, 2}}, protocol)


@compiled
@pytest.mark.parametrize("index", range(10))
def test_the_fast_path_and_the_python_loop_agree_on_real_pickles(index: int) -> None:
    data = list(samples())[index]
    fast, pure = both(data)
    assert fast == pure and not fast.problems


@st.composite
def mutated(draw: Any) -> bytes:
    """A real pickle with a byte flipped, dropped or inserted anywhere, or cut."""
    original = draw(st.sampled_from(list(samples())))
    position = draw(st.integers(0, len(original) - 1))
    value = draw(st.integers(0, 255))
    return draw(st.sampled_from([
        original[:position] + bytes([value]) + original[position + 1:],
        original[:position] + original[position + 1:],
        original[:position] + bytes([value]) + original[position:],
        original[:position],
    ]))


@compiled
@settings(max_examples=150, deadline=None)
@given(mutated())
def test_they_agree_on_mutated_and_truncated_pickles(data: bytes) -> None:
    """A flipped, dropped or inserted byte anywhere, or a cut: the same facts, the same problems."""
    fast, pure = both(data)
    assert fast == pure


@compiled
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_they_agree_on_random_bytes(data: bytes) -> None:
    fast, pure = both(b"\x80\x05" + data)
    assert fast == pure


@compiled
@settings(max_examples=300, deadline=None)
@given(streams())
def test_they_agree_on_structured_streams(data: bytes) -> None:
    """Streams built from every opcode family, the globals a file may name
    and some it may not: the fast path reads them all, and must judge as
    the loop does, problem by problem."""
    fast, pure = both(data)
    assert fast == pure


@compiled
@pytest.mark.parametrize("body", [b"N\x85" * 3, b")\x85\x85", b"cbuiltins\nint\n20", b"N(\x8f(N\x90",
                                  b"\x82\x01Q", b"(cbuiltins\nlist\nl0", b"\x8c\x01a\x8c\x01b\x930"])
def test_no_opcode_is_slow_however_often_a_file_repeats_it(body: bytes) -> None:
    """A file of 2 MB repeating one small sequence is read by the fast path
    to its end: the Python loop, a hundred times slower, never takes over
    (what kept a 10 MB file's analysis near 10 s)."""
    data = b"\x80\x04" + body * (2_000_000 // len(body)) + b"N."
    seen: list[int] = []
    fast = stream._fast_path()

    def counting(raw: bytes, i: int, *rest: Any) -> Any:
        seen.append(i)
        return fast(raw, i, *rest)

    original, stream._fast_path = stream._fast_path, lambda: counting
    try:
        analyse(data)
    finally:
        stream._fast_path = original
    assert len(seen) <= 2, f"the Python loop took over {len(seen) - 1} times"


def test_uses_are_what_the_stream_does_with_each_global() -> None:
    facts = analyse(dumps({"plain": Plain(), "factory": collections.defaultdict(list, a=[1]), "lock": threading.Lock()}))
    assert facts.globals[f"{__name__}:Plain"] == NEW
    assert facts.globals["collections:defaultdict"] == CALL | RESULT_USED
    assert facts.globals["builtins:list"] == VALUE
    assert facts.globals["_thread:allocate_lock"] == CALL
    assert not facts.problems


def test_a_class_instantiated_with_arguments_is_marked_so() -> None:
    Point = collections.namedtuple("Point", "x y")
    globals()["Point"] = Point
    Point.__qualname__ = "Point"
    facts = analyse(dumps(Point(1, 2)))
    assert facts.globals[f"{__name__}:Point"] == NEW_ARGS


@settings(max_examples=100, deadline=None)
@given(mutated())
def test_a_bytearray_is_read_as_its_bytes(data: bytes) -> None:
    """Save analyses the data.pkl it kept as a bytearray (not copied again): the same facts as from bytes."""
    assert analyse(bytearray(data)) == analyse(data)
