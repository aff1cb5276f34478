"""Every entry of the reviewed table (what a file from anyone loads as data)
is needed by a real object, and that object round-trips through the
data-only loader with no --trust (pandas' reconstructors with --trust
pandas, which its classes need). An entry no object here needs is either an
alias written by another version (numpy 1's `numpy.core` names) or listed in
ALIASES with why; anything else fails the test."""

from __future__ import annotations

import asyncio
import collections
import datetime
import decimal
import fractions
import functools
import http.cookiejar
import io
import ipaddress
import json
import logging
import logging.handlers
import operator
import pathlib
import queue
import re
import ssl
import sys
import threading
import time
import types
import uuid
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

import ckpt
from ckpt.trust import reviewed
from ckpt.trust.analysis import analyse
from sample_models import kinds

ALIASES = {
    "re:compile": "hand-written pickles call re.compile; pickle itself writes re._compile",
    "threading:local": "threading.local is _thread._local, which is the name pickle writes",
    "queue:SimpleQueue": "queue.SimpleQueue is _queue.SimpleQueue, which is the name pickle writes",
    "datetime:tzinfo": "the abstract base of time zones, admitted as a value for user tzinfo subclasses' bases",
    "pathlib:PurePath": "the base of pure paths: files hold PurePosixPath or PureWindowsPath",
    "pathlib:Path": "the base of concrete paths: files hold PosixPath or WindowsPath",
    "pathlib:WindowsPath": "cannot be made on Linux; the name a Windows checkpoint holds",
    "pandas._libs.tslibs.nattype:__nat_unpickle": "the name older pandas wrote for NaT",
    "sys:stdin": "a model holding the process's stdin, as in any program; under pytest stdin is a stand-in of its own "
                 "(tests/cli/test_cli_kinds.py loads one in a fresh process)",
    "torch:frombuffer": "how ckpt wrote a tensor's storage before format 2 (with functools.partial for its dtype)",
    "torch:empty": "how ckpt wrote an empty storage before format 2",
}
"""Entries no object made here needs, each with the reason it is in the table anyway."""


def weak_objects() -> list[Any]:
    """Weak references, proxies and containers whose referents (reviewed
    classes) the list holds too (so they are kept)."""
    a, b = logging.Filter("a"), logging.Filter("b")
    return [a, b, weakref.ref(a), weakref.proxy(b), weakref.WeakValueDictionary({"a": a}),
            weakref.WeakKeyDictionary({a: 1}), weakref.WeakSet([b])]


SIGNALS = [decimal.Clamped, decimal.DivisionByZero, decimal.Inexact, decimal.InvalidOperation, decimal.Overflow,
           decimal.Rounded, decimal.Subnormal, decimal.Underflow, decimal.FloatOperation]

def stdlib_objects() -> list[Any]:
    odict = collections.OrderedDict(a=1)
    jar = http.cookiejar.CookieJar()
    jar.set_cookie(http.cookiejar.Cookie(0, "n", "v", None, False, "example.com", True, False, "/", True, False,
                                         None, False, None, None, {}))
    simple = queue.SimpleQueue()
    simple.put(1)
    done: Future[int] = Future()
    done.set_result(3)
    values = [int, float, complex, bool, str, list, dict, tuple, set, frozenset, object, range, bytes,
              bytearray, NotImplemented, Ellipsis, type(None), re.Pattern, time.monotonic, time.monotonic_ns,
              time.time, time.time_ns, time.perf_counter, time.perf_counter_ns, time.process_time]
    objects = [complex(1, 2), range(3), slice(1, 2), b"b", bytearray(b"ba"), odict,
               collections.defaultdict(list, a=[1]), collections.deque([1], 3), collections.Counter("ab"),
               collections.ChainMap({1: 2}), collections.UserDict(a=1), collections.UserList([1]),
               collections.UserString("s"), types.SimpleNamespace(a=1),
               io.StringIO("text"), io.BytesIO(b"bytes"), datetime.date(2026, 1, 2), datetime.time(3, 4),
               datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc), datetime.timedelta(5),
               decimal.Decimal("1.5"), decimal.Context(prec=5, traps=SIGNALS, flags=SIGNALS), fractions.Fraction(1, 3), uuid.UUID(int=5),
               ipaddress.IPv4Address("1.2.3.4"), ipaddress.IPv6Address("::1"), ipaddress.IPv4Network("10.0.0.0/8"),
               ipaddress.IPv6Network("::/64"), ipaddress.IPv4Interface("10.0.0.1/8"),
               ipaddress.IPv6Interface("::1/64"), pathlib.PurePosixPath("/a"), pathlib.PureWindowsPath("c:/a"),
               pathlib.PosixPath("/b"), re.compile("a+"), jar, http.cookiejar.FileCookieJar("f"),
               http.cookiejar.MozillaCookieJar("m"), http.cookiejar.LWPCookieJar("l"),
               http.cookiejar.DefaultCookiePolicy(), logging.getLogger("ckpt.reviewed"),
               logging.Formatter("%(message)s"), logging.Formatter("{message}", style="{"),
               logging.Formatter("$message", style="$"), logging.Filter("x"), logging.makeLogRecord({"msg": "m"}),
               logging.Handler(), logging.NullHandler(), logging.StreamHandler(),
               logging.handlers.QueueHandler(queue.Queue()), logging.handlers.MemoryHandler(10),
               logging.handlers.QueueListener(queue.Queue(), logging.handlers.BufferingHandler(2)),  # stopped
               logging.handlers.BufferingHandler(5), threading.Lock(), threading.RLock(), threading.Condition(),
               threading.Semaphore(2), threading.BoundedSemaphore(3), threading.Event(), threading.Barrier(2),
               threading.local(), queue.Queue(), queue.LifoQueue(), queue.PriorityQueue(), simple,
               ThreadPoolExecutor(1), done, asyncio.Lock(), asyncio.Event(),
               asyncio.Semaphore(2), asyncio.BoundedSemaphore(2), asyncio.Queue(), asyncio.PriorityQueue(),
               asyncio.LifoQueue(), sys.stdout, sys.stderr, ssl.create_default_context(),
               ssl._create_unverified_context(), *weak_objects(), values, *catalog_rewraps()]
    import zoneinfo

    try:
        objects.append(zoneinfo.ZoneInfo("UTC"))  # pickled as getattr(ZoneInfo, "_unpickle")(key)
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone data on this machine")
    return objects


def catalog_rewraps() -> list[Any]:
    """What the newer catalog rows rewrap (multiprocessing's never load as data, nor a started queue listener:
    it is started again)."""
    rows = ["async-lock", "async-condition", "async-semaphore", "async-event", "async-queue"]
    return [kinds.FACTORIES[row]().value for row in rows]


def numpy_objects() -> list[Any]:
    np = pytest.importorskip("numpy")
    bit_generators = [np.random.PCG64(1), np.random.PCG64DXSM(1), np.random.MT19937(1), np.random.Philox(1),
                      np.random.SFC64(1)]
    return [np.arange(3.0), np.arange(6.0).reshape(2, 3)[:, ::2], np.array([1, "a"], dtype=object),
            np.float64(1.5), np.dtype("f4"), np.ma.masked_array([1, 2], [0, 1]), np.random.default_rng(0),
            np.random.RandomState(0), np.random.SeedSequence(3), *bit_generators,
            [np.random.Generator(b) for b in bit_generators]]


def torch_objects() -> list[Any]:
    torch = pytest.importorskip("torch")
    dtypes = [getattr(torch, e.name.split(":")[1]) for e in reviewed.ENTRIES
              if e.name.startswith("torch:") and e.kind == reviewed.CONSTANT
              and isinstance(getattr(torch, e.name.split(":")[1], None), torch.dtype)]
    parameter = torch.nn.Parameter(torch.ones(2))
    parameter.note = "kept"
    layouts = [torch.strided, torch.sparse_coo]  # pickled as torch.serialization._get_layout(name)
    return [torch.arange(4.0), torch.empty(0), torch.ones(3, requires_grad=True), torch.nn.Parameter(torch.ones(2)),
            parameter, torch.Size([2, 3]), torch.device("cpu"), dtypes, layouts]


def pandas_objects() -> list[Any]:
    pd = pytest.importorskip("pandas")
    return [pd.DataFrame({"a": [1, 2]}), pd.Series([1.5]), pd.Timestamp("2026-01-01"), pd.Timedelta(5), pd.NaT,
            pd.Index(["x"])]


def file_handler_objects(tmp_path: Any) -> list[Any]:
    """A file handler: loads as data only with its exact name trusted (it writes where the file says)."""
    return [logging.FileHandler(tmp_path / "log.txt", delay=True)]


def globals_of(objects: list[Any], trust: tuple[str, ...] = ()) -> set[str]:
    data = ckpt.dumps(objects)
    loaded = ckpt.loads(data, trust=trust)  # the round trip: loads with no more than this trust
    assert len(loaded) == len(objects)
    return set(analyse(data).globals)


def test_every_reviewed_entry_is_needed_by_a_real_object_that_round_trips(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Any) -> None:
    with capsys.disabled():  # the process's own standard streams, not pytest's capturing stand-ins
        stdlib = globals_of(stdlib_objects())
    needed = stdlib | globals_of(numpy_objects()) | globals_of(torch_objects())
    needed |= globals_of(pandas_objects(), trust=("pandas",))
    needed |= globals_of(file_handler_objects(tmp_path), trust=("logging:FileHandler",))
    unused = {e.name for e in reviewed.ENTRIES} - needed - set(ALIASES)
    unused = {name for name in unused if not name.startswith("numpy.core.")}  # numpy 1 wrote these
    assert not unused, f"reviewed entries no object here needs: {sorted(unused)}"
    stale = set(ALIASES) & needed
    assert not stale, f"ALIASES that an object does need (drop them from ALIASES): {sorted(stale)}"


def test_a_stored_clock_comes_back_as_itself_and_no_other_function_loads_as_data() -> None:
    """A clock is harmless to call with anything (cachetools keeps one as a
    timer); a function that calls what it is given (sorted's key, json's
    object_hook) never reaches a file's data."""
    loaded = ckpt.loads(ckpt.dumps({"timer": time.monotonic, "pattern": re.compile("a")}))
    assert loaded["timer"] is time.monotonic and loaded["pattern"].match("aa")
    for function in (len, sorted, operator.add, json.loads, functools.partial(max, 1)):
        with pytest.raises(ckpt.UnsafeCheckpointError, match="not trusted|never allows"):
            ckpt.loads(ckpt.dumps({"f": function}))


def test_each_reviewed_name_has_one_entry_across_the_table_and_the_catalog() -> None:
    """The catalog's rows carry the entries their rewraps write; a name given
    twice would let one entry silently replace the other's guard."""
    names = [entry.name for entry in reviewed.ENTRIES]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []
    assert "_thread:allocate_lock" in reviewed.BY_NAME  # read from the lock row
