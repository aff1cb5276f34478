"""The stream analysis: what it finds, and that its compiled fast path
(core/_stream.c) and its pure-Python loop agree on every stream, real,
hostile, mutated or random."""

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

from ckpt.core import stream
from ckpt.core.pickler import dumps
from ckpt.core.stream import CALL, NEW, NEW_ARGS, RESULT_USED, VALUE, analyse

compiled = pytest.mark.skipif(stream._fast_path() is None, reason="the compiled fast path is not built here")


def both(data: bytes) -> tuple[Any, Any]:
    """The analysis with the fast path and without it."""
    fast = analyse(data)
    os.environ["CKPT_PURE_PYTHON"] = "1"
    try:
        return fast, analyse(data)
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


@compiled
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_they_agree_on_mutated_and_truncated_pickles(data: st.DataObject) -> None:
    """A flipped, dropped or inserted byte anywhere, or a cut: the same facts, the same problems."""
    original = data.draw(st.sampled_from(list(samples())))
    position = data.draw(st.integers(0, len(original) - 1))
    how = data.draw(st.sampled_from(["flip", "drop", "insert", "cut"]))
    value = data.draw(st.integers(0, 255))
    mutated = {
        "flip": original[:position] + bytes([value]) + original[position + 1:],
        "drop": original[:position] + original[position + 1:],
        "insert": original[:position] + bytes([value]) + original[position:],
        "cut": original[:position],
    }[how]
    fast, pure = both(mutated)
    assert fast == pure


@compiled
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_they_agree_on_random_bytes(data: bytes) -> None:
    fast, pure = both(b"\x80\x05" + data)
    assert fast == pure


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
