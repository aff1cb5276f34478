"""ckpt's pickler and restricted loader against CPython's own pickle test-suite.

`test.pickletester` ships with CPython: its abstract test classes take a
`dumps` and a `loads`, and here both go through ckpt — `RewrapPickler`
writes, the data-only loader (`safeload.unpickle`, what a file from anyone
else goes through) reads, with the suite's own module trusted (as a user
trusts a package). Every test runs; those that check something ckpt
deliberately does differently are skipped, each with the reason (`SKIPS`).

Two adjustments, both stating a ckpt rule rather than hiding a failure:
- ckpt always writes protocol 5, so the suite's protocol loops run protocol 5;
- the suite files its class `C` under `__main__` (as Python 2 pickles did);
  ckpt never loads globals from a dunder module, so `C` is filed back under
  `test.pickletester` for the pickling tests (the Python 2 data is skipped).

Then a property: any plain data round-trips through `dumps` / `loads`.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import unittest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ckpt
from ckpt.errors import CheckpointError, UnsafeCheckpointError
from ckpt.kinds.pickler import RewrapPickler
from ckpt.trust.data_only import unpickle
from ckpt.trust.policy import Trust

pt = pytest.importorskip("test.pickletester", reason="this Python ships without its test package")

pt.protocols = range(5, pickle.HIGHEST_PROTOCOL + 1)
pt.C.__module__ = "test.pickletester"
TRUST = ("test.pickletester", "builtins", "test.pickletester:create_dynamic_class")
"""builtins' classes are trusted too, so that the suite's malformed-stream
tests (built on list, int, ValueError) test the stream handling rather than
the reviewed table; trusting a package never admits its functions."""

PROTOCOL_5 = "ckpt always writes protocol 5; the test checks what older protocols write"
BUFFERS = "ckpt decides which buffers go out of band (64 KiB and up, as archive members): no buffer_callback"
PYTHON_2 = "Python 2 data (__main__, __builtin__, copy_reg names, str encodings): ckpt reads only what it wrote"
GETATTR = "bound methods of objects the file did not create (str.upper of a constant) are refused"
MEMO = "ckpt refuses a memo index larger than the stream could have filled (13 bytes could make gigabytes)"
REFUSED = "ckpt's stream analysis refuses it before the unpickler runs (an UnsafeCheckpointError, not pickle's own)"
NAMES = "a class whose __qualname__ is not where pickle finds it is not the class it names"
HELD = ("a class trusted with its package is rebuilt, never held as a value (whatever held it could call it after "
        "the load): only a reviewed class, or one trusted by its exact name, loads as a value")

SKIPS: dict[str, str] = {
    # AbstractPickleTests
    "test_float_format": PROTOCOL_5, "test_global_ext1": PROTOCOL_5, "test_global_ext2": PROTOCOL_5,
    "test_global_ext4": PROTOCOL_5, "test_pickle_to_2x": PROTOCOL_5, "test_bad_getattr": PROTOCOL_5,
    "test_picklebuffer_error": PROTOCOL_5, "test_compat_pickle": PROTOCOL_5,
    "test_framed_write_sizes_with_delayed_writer": "needs a Pickler class taking a protocol; ckpt's takes none",
    "test_in_band_buffers": BUFFERS, "test_oob_buffers": BUFFERS, "test_oob_buffers_writable_to_readonly": BUFFERS,
    "test_buffers_error": BUFFERS, "test_buffer_callback_error": BUFFERS, "test_buffers_numpy": BUFFERS,
    "test_c_methods": GETATTR, "test_py_methods": GETATTR,
    "test_newobj_proxies": "a weak proxy comes back as a proxy to the restored object (or a dead one), where "
                           "pickle writes a copy of the object in its place",
    "test_reduce_calls_base": "object.__reduce__ writes copyreg._reconstructor, which is not in ckpt's reviewed table",
    "test_builtin_types": "memoryview, super, property... are not in the reviewed table, and type is only ever "
                          "called as type(None)",
    "test_builtin_functions": "functions (eval, exec, __import__, __build_class__...) are never admitted by trusting "
                              "a package",
    "test_structseq": "os.stat_result and time.struct_time are not in the reviewed table",
    # AbstractUnpickleTests
    "test_load_from_data0": PYTHON_2, "test_load_from_data1": PYTHON_2, "test_load_from_data2": PYTHON_2,
    "test_load_from_data3": PYTHON_2, "test_load_from_data4": PYTHON_2, "test_load_classic_instance": PYTHON_2,
    "test_unpickle_from_2x": PYTHON_2, "test_compat_unpickle": PYTHON_2,
    "test_load_python2_str_as_bytes": PYTHON_2, "test_load_long_python2_str_as_bytes": PYTHON_2,
    "test_maxint64": "an INT that is not a number is refused by the stream analysis (not a valid pickle), "
                     "before the unpickler would raise ValueError",
    "test_negative_put": "a negative memo index is refused by the stream analysis (not a valid pickle), before "
                         "the unpickler would raise ValueError",
    "test_binget": MEMO, "test_get": MEMO, "test_long_binget": MEMO,
    "test_bad_newobj": REFUSED, "test_bad_newobj_ex": REFUSED, "test_bad_reduce": REFUSED,
    "test_newobj_not_class": REFUSED, "test_recursive_nested_names": NAMES, "test_nested_names": HELD,
    "test_truncated_data": "an empty or STOP-less stream is refused as not a valid pickle, before the unpickler "
                           "would raise EOFError",
    "test_large_pickles": "builtin functions (min, len) as values are never loaded as data",
    "test_proto": "an unknown protocol number is a malformed stream (UnpicklingError), where pickle raises ValueError",
}


class CkptPickle:
    """`dumps` / `loads` of the suite, through ckpt."""

    def dumps(self, arg: Any, proto: int | None = None, **kwargs: Any) -> bytes:
        out = io.BytesIO()
        RewrapPickler(out, out_of_band=False).dump(arg)
        return out.getvalue()

    def loads(self, buf: bytes, **kwds: Any) -> Any:
        """ckpt wraps every error in one CheckpointError; the suite asserts
        pickle's own exception types, so the original is raised again (a
        refusal is not unwrapped: it is the point of the loader)."""
        try:
            return unpickle(buf, trust=Trust.parse(TRUST), buffers=kwds.get("buffers"))
        except (UnsafeCheckpointError, pickle.UnpicklingError):
            raise  # a malformed stream is pickle's own UnpicklingError too
        except CheckpointError as exc:  # what an admitted class's own code raised
            raise exc.__context__ or pickle.UnpicklingError(str(exc)) from None

    def subTest(self, *message: Any, **params: Any) -> Any:  # noqa: N802 (unittest's name)
        """The suite's subtests name classes and objects: their reports carry
        them as text, so that pytest-xdist can send them between processes."""
        return super().subTest(*message, **{key: repr(value) for key, value in params.items()})  # type: ignore[misc]


def _with_skips(cls: type) -> type:
    for name, reason in SKIPS.items():
        if hasattr(cls, name):
            setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
    return cls


@_with_skips
class TestCPythonPickling(CkptPickle, pt.AbstractPickleTests, unittest.TestCase):
    pass


@_with_skips
class TestCPythonUnpickling(CkptPickle, pt.AbstractUnpickleTests, unittest.TestCase):
    bad_stack_errors = (pickle.UnpicklingError, IndexError)
    truncated_errors = (pickle.UnpicklingError, EOFError, AttributeError, ValueError, IndexError, ImportError)


# --- the property ---------------------------------------------------------------

_KEYS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.binary(max_size=8),
                  st.floats(allow_nan=False), st.dates(), st.fractions())
_LEAVES = _KEYS | st.complex_numbers(allow_nan=False) | st.datetimes() | st.timedeltas() | st.decimals(
    allow_nan=False) | st.builds(bytearray, st.binary(max_size=8))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children),
        st.dictionaries(_KEYS, children, max_size=4), st.frozensets(_KEYS, max_size=4), st.sets(_KEYS, max_size=4),
        st.builds(collections.OrderedDict, st.dictionaries(_KEYS, children, max_size=3)),
        st.builds(collections.deque, st.lists(children, max_size=3)),
        st.builds(collections.Counter, st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)),
    )


PLAIN_DATA = st.recursive(_LEAVES, _containers, max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(PLAIN_DATA)
def test_plain_data_round_trips_through_dumps_and_loads(value: Any) -> None:
    """Whatever plain data (stdlib types, nested, shared) ckpt.dumps writes,
    ckpt.loads gives back equal, with no --trust."""
    loaded = ckpt.loads(ckpt.dumps(value))
    assert loaded == value
    assert type(loaded) is type(value)


def test_shared_and_cyclic_references_survive() -> None:
    shared = [decimal.Decimal("1.5"), datetime.date(2020, 1, 1)]
    cyclic: list[Any] = [shared, shared]
    cyclic.append(cyclic)
    loaded = ckpt.loads(ckpt.dumps(cyclic))
    assert loaded[0] is loaded[1] and loaded[2] is loaded
    assert loaded[0] == shared
