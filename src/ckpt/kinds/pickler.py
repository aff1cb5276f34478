"""The C pickler, taught the catalog: rewrap thread kinds, strip on request.

`RewrapPickler` is `pickle.Pickler` (the C implementation) with a
type-keyed `dispatch_table` (`_Reducers`) that decides each type once, the
first time the pickler meets it: catalog kinds are written with their row's
reducer (plain stdlib constructors, so the pickle loads without ckpt), and
`substituted` records each object so written, in order, for the manifest;
every other type gets copyreg's reducer or `__reduce_ex__` itself, called
from C. A `reducer_override` would cost a Python call for every object
(302,005 calls, 1.18x plain pickle on the object-heavy benchmark
against 0.99x for the table); only a save with strips installs one, since
those are chosen by identity, or with code by value (`by_value`: functions
and classes never reach a dispatch table). Save pickles with the table
alone first, and again with code by value only if that failed or named
something of `__main__` (`Tap.names_main`): a model without such code pays
nothing for it. Types created while pickling are decided when met, like
the others.

Weak references and containers keep what the checkpoint holds anyway: the
first one met runs a pre-pass (the same pickler, writing nowhere, weak
kinds written empty) whose memo is the set of objects saved strongly. A
graph without weak kinds never pays for it.

Large contiguous buffers (numpy arrays) go out of band, protocol 5 style:
`buffers` collects them without copying, for the container to write as
aligned members.
"""

from __future__ import annotations

import copyreg
import functools
import io
import logging
import operator
import pickle
import sys
import types
from collections.abc import Callable, Collection
from typing import Any, BinaryIO

from ckpt.kinds import byvalue, catalog, registry, rewrap
from ckpt.kinds.registry import Removal
from ckpt.kinds.tensors import TensorReducer, tensor_types
from ckpt.objects.decompose import OWN_REDUCERS, PROTOCOL, global_error
from ckpt.objects.opcodes import CODES, WIDTHS

OUT_OF_BAND_MIN = 64 * 1024
"""Buffers smaller than this stay inside data.pkl: one member per small array would cost more than it saves."""

_BY_REFERENCE = frozenset({types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                           types.ClassMethodDescriptorType})
"""Written by name where pickle would write a call (`plain_global`); classes and functions C writes by name itself."""
_Handler = Callable[[Any], Any]


class Tap:
    """A pickler's file: passes writes on (or drops them, with no target),
    reports the bytes passed on so far to `progress`, and can capture the
    next writes instead, to read back what was written. It notes whether
    the pickle may name something of `__main__`: a function or class there
    is written by name by a pickler without `reducer_override`, and must be
    written by value instead (`byvalue`)."""

    def __init__(self, target: Any = None, progress: Callable[[int], None] | None = None) -> None:
        self.target = target
        self.progress = progress
        self.captured: bytes | None = None
        self.names_main = False
        """A write held the text `__main__` (the C pickler writes a global's module
        name inside one frame, so no name is split between writes)."""
        self._written = 0

    def write(self, data: Any) -> int:
        if not self.names_main and type(data) is bytes and MAIN in data:
            self.names_main = True
        n = memoryview(data).nbytes
        if self.captured is not None:
            self.captured += bytes(data)
        elif self.target is not None:
            self.target.write(data)
            self._written += n
            if self.progress is not None:
                self.progress(self._written)
        return n


def memo_size(pickler: pickle.Pickler, tap: Tap, written: bytearray | None = None) -> int:
    """How many objects the pickler memoized, without copying its memo (that
    costs more than the pickling): a new object gets the next memo index, and
    pickling it again writes that index as a memo GET. The two pickles this
    writes are appended to `written` (what a replay of the pickler's output
    must also be fed); nothing else should be pickled into the same file after."""
    marker: list[Any] = []
    tap.captured = b""
    pickler.dump(marker)
    first = tap.captured
    tap.captured = b""
    pickler.dump((marker,))
    if written is not None:
        written += first + tap.captured
    indexes = memo_indexes(tap.captured, 1)
    if indexes is None:  # a pickler writes a memoized object as a GET: never
        raise RuntimeError("the pickler wrote its marker again instead of a memo GET")
    return indexes[0]


_GETS = {CODES[name]: WIDTHS[CODES[name]][1] for name in ("BINGET", "LONG_BINGET")}  # type: ignore[index]
"""The memo GETs a pickler writes, and the width of their index."""
_TUPLE_ENDS = {0: b").", 1: b"\x85\x94.", 2: b"\x86\x94.", 3: b"\x87\x94."}  # EMPTY_TUPLE; TUPLE1-3, MEMOIZE; STOP
_LONG_TUPLE_END = b"t\x94."  # TUPLE, MEMOIZE, STOP


def memo_indexes(raw: bytes, count: int) -> list[int] | None:
    """The memo indexes of the `count` items of a tuple of memoized objects,
    from the pickle a pickler writes of that tuple: MARK (for more than
    three), one GET each, then the tuple opcode, MEMOIZE and STOP -- exactly,
    with a FRAME wherever the pickler starts one (every 64 KiB); None for
    anything else (an item that was not in the memo)."""
    size = len(raw)
    i = _past_frame(raw, 2)  # PROTO
    if count > 3:
        i = _past_frame(raw, i + (raw[i : i + 1] == b"("))
    indexes: list[int] = []
    while len(indexes) < count and i < size:
        code = raw[i]
        if code == _FRAME:
            i += 9
            continue
        width = _GETS.get(code)
        if width is None:
            break
        indexes.append(int.from_bytes(raw[i + 1 : i + 1 + width], "little"))
        i += 1 + width
    if len(indexes) != count or raw[_past_frame(raw, i):] != _TUPLE_ENDS.get(count, _LONG_TUPLE_END):
        return None
    return indexes


_FRAME = CODES["FRAME"]


def _past_frame(raw: bytes, i: int) -> int:
    """`i`, or past the FRAME opcode (and its 8-byte length) that starts there."""
    return i + 9 if raw[i : i + 1] == b"\x95" else i


MAIN = b"__main__"


class RewrapPickler(pickle.Pickler):
    def __init__(
        self,
        file: BinaryIO | None,
        *,
        strip_ids: Collection[int] = (),
        removals: Collection[Removal] = (),
        by_value: bool = False,
        out_of_band: bool = True,
        progress: Callable[[int], None] | None = None,
        saved: Collection[int] | None = None,
    ) -> None:
        self.tap = Tap(file, progress)
        self.dispatch_table = _Reducers(self.reducer_for)  # read by Pickler.__init__, as reducer_override is
        self._strip = frozenset(strip_ids)
        self._removals: dict[int, list[Removal]] = {}
        """Stripped callables left out of their registries, by the id of the object written without them."""
        for removal in removals:
            self._removals.setdefault(id(removal.anchor), []).append(removal)
        self.by_value = by_value
        """Functions and classes pickle cannot name are written by value (else pickling fails on them)."""
        self._functions = byvalue.Functions()
        if self._strip or self._removals or by_value:
            self.reducer_override = self._override  # type: ignore[method-assign]  # read by Pickler.__init__
        super().__init__(self.tap, PROTOCOL, buffer_callback=self._take_buffer if out_of_band else None)
        self.buffers: list[pickle.PickleBuffer] = []
        self.substituted: list[Any] = []
        """The objects of catalog kinds written (by their row's reducer, or by
        pickle with their parts rewrapped), in the order the pickler met them."""
        self._tensor_types = tensor_types()
        self._tensors = TensorReducer() if self._tensor_types else None
        self._root: Any = None
        self._saved = saved
        """ids of the objects saved strongly (the pre-pass's memo); None until a weak kind needs it."""
        self._nulled: set[int] = set()
        self.notes: dict[int, str] = {}
        """Remarks known only while saving, by object id (what a weak container kept)."""
        self._sentinels: dict[int, str] | None = None
        self.loggers: dict[int, Any] = {}
        """The loggers written (by name, as pickle does): their handlers are not saved."""

    def modules(self) -> set[str]:
        """The modules of the types the pickler wrote by reduction (the types
        it looked up in its table): where the manifest's package versions come from."""
        return {getattr(cls, "__module__", None) or "" for cls in self.dispatch_table}

    def tensor_storages(self) -> dict[int, Any]:
        """The dtype each torch storage was written as, by the address of its bytes (`TensorReducer.storages`)."""
        return self._tensors.storages() if self._tensors is not None else {}

    def tensor_bytes(self, tensor: Any) -> Any:
        """The numpy array of the storage `tensor` was written from (`TensorReducer.bytes_of`)."""
        return self._tensors.bytes_of(tensor) if self._tensors is not None else None

    @property
    def rewrapped(self) -> bool:
        """Whether any catalog kind was rewrapped or stripped (then save lists them)."""
        return bool(self.substituted)

    def dump(self, obj: Any) -> None:
        self._root = obj
        if type(obj) in (dict, list, tuple) and id(obj) in self._removals:  # pickle reduces no plain root
            obj = registry.written(self._removals[id(obj)], registry.default_reduce)
        try:
            super().dump(obj)
        finally:
            self._root = None
            if isinstance(self._saved, dict):
                self._saved = None  # the pre-pass's memo: it keeps every object alive

    def _override(self, obj: Any) -> Any:
        """Strips, chosen by identity (and the objects written without a
        stripped registry entry), and code by value: functions and classes
        never reach a dispatch table. A Python call for every object, so
        installed only for a save that needs one or the other."""
        if id(obj) in self._strip:
            self._nulled.add(id(obj))
            self.substituted.append(obj)
            return rewrap.NONE_REDUCE
        if id(obj) in self._removals:  # reduced as its type is, then its registry copied without the entry
            return registry.written(self._removals[id(obj)], self.reducer_for(type(obj)) or registry.default_reduce)
        if not self.by_value:
            return NotImplemented
        if type(obj) is types.FunctionType:
            if byvalue.by_value(obj):
                self.substituted.append(obj)
                return self._functions.reduce(obj)
        elif isinstance(obj, type) and byvalue.by_value(obj):
            if not byvalue.builtin_type(obj):  # written by its name in `types`, not by value
                self.substituted.append(obj)
            return byvalue.reduce_class(obj)
        return NotImplemented

    def reducer_for(self, cls: type) -> _Handler | None:
        """How objects of `cls` are written; None for a class of classes
        that copyreg does not reduce (pickle writes those by name)."""
        if cls in _BY_REFERENCE:
            return self._by_reference
        if cls in OWN_REDUCERS:
            return OWN_REDUCERS[cls]  # type: ignore[no-any-return]
        if cls is object:
            return self._sentinel
        if cls in byvalue.PARTS:
            return byvalue.PARTS[cls]  # type: ignore[no-any-return]
        if issubclass(cls, type):
            return copyreg.dispatch_table.get(cls)
        if issubclass(cls, logging.Logger):
            return functools.partial(self._logger, _default_reducer(cls))
        if catalog.handled_by_copyreg(cls):
            return _default_reducer(cls)
        if self._tensors is not None and cls in self._tensor_types:
            return self._tensors
        kinds = catalog.kinds_of_type(cls)
        if kinds:
            return functools.partial(self._rewrap, kinds, _default_reducer(cls))
        if isinstance(getattr(cls, "__reduce__", None), types.FunctionType):
            return _through_descriptor
        if rewrap.asks_bare_instance(cls):
            return rewrap.reduce_with_state_setter
        if rewrap.new_needs_arguments(cls):
            return rewrap.reduce_without_new
        return _default_reducer(cls)

    def _sentinel(self, obj: object) -> Any:
        """A bare `object()` is a sentinel (`MISSING = object()`), compared by
        identity: one that is a module's global is written by name, so the
        load gets the module's own, not a new one that no `is` matches
        (redis' connections took a copy of its SENTINEL for a dict of
        options). Found by one look through the loaded modules, the first
        time a save meets one."""
        if self._sentinels is None:
            self._sentinels = {id(value): name for module in list(sys.modules.values())
                               for name, value in list(getattr(module, "__dict__", {}).items()) if type(value) is object}
        name = self._sentinels.get(id(obj))
        return name if name is not None else _default(obj)

    def _rewrap(self, kinds: tuple[catalog.Kind, ...], default: _Handler, obj: Any) -> Any:
        kind = catalog.applying(kinds, obj)
        if kind is None:
            return default(obj)
        self.substituted.append(obj)
        if kind.reduce is None:  # written as pickle writes it: its parts are rewrapped (an Event's Condition)
            return default(obj)
        if not kind.weak:
            value = kind.reduce(obj)
            if value is rewrap.NONE_REDUCE:
                self._nulled.add(id(obj))
            return value
        saved = self._saved_strongly()
        self.notes[id(obj)] = catalog.weak_save_note(obj, saved)
        return kind.reduce(obj, saved)

    def _saved_strongly(self) -> Collection[int]:
        """The ids of the objects the checkpoint holds without its weak
        references: the memo of a pre-pass over the whole graph with the same
        strips, weak kinds written empty, minus what it wrote as None."""
        if self._saved is None:
            pre = RewrapPickler(None, strip_ids=self._strip, removals=[r for rs in self._removals.values() for r in rs],
                                by_value=self.by_value, saved=_PRE_PASS)  # writes nowhere
            pre.dump(self._root)
            memo = pre.memo.copy()
            pre.clear_memo()
            for oid in pre._nulled:
                memo.pop(oid, None)
            self._saved = memo
        return self._saved

    def _by_reference(self, obj: Any) -> Any:
        name = plain_global(obj)
        return _default(obj) if name is NotImplemented else name

    def _logger(self, default: _Handler, obj: Any) -> Any:
        self.loggers[id(obj)] = obj
        return default(obj)

    def _take_buffer(self, buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_MIN:
            return True  # in band
        self.buffers.append(buffer)
        return False


class _Reducers(dict[type, _Handler]):
    """The pickler's dispatch table: filled as types are met (`__missing__`
    runs once per type, asking `decide`), then read by C. A class of classes
    `decide` gives no reducer is left out (KeyError), so that pickle writes
    its instances by name."""

    def __init__(self, decide: Callable[[type], _Handler | None]) -> None:
        super().__init__()
        self._decide = decide

    def __missing__(self, cls: type) -> _Handler:
        reducer = self._decide(cls)
        if reducer is None:
            raise KeyError(cls)
        self[cls] = reducer
        return reducer


_default = operator.methodcaller("__reduce_ex__", PROTOCOL)
"""What the C pickler calls when no table has the type, called from C too."""


def _default_reducer(cls: type) -> _Handler:
    """copyreg's reducer for `cls` (someone's registration, or ckpt's own
    `register()`), else `__reduce_ex__`: what pickle would do without ckpt."""
    return copyreg.dispatch_table.get(cls, _default)


_PRE_PASS: Collection[int] = frozenset()
"""`saved` of the pre-pass itself: it keeps no weak entry."""


def _through_descriptor(obj: Any) -> Any:
    """A reduction `(descriptor.__get__, (owner,))` (cachetools' @cachedmethod
    wrappers) rebuilds what `owner.<name>` gives, for the class attribute
    `name` that is that descriptor: written as `getattr(owner, name)`, the
    bound-method form the safe loader knows, instead of a call of a bound
    method. Any other reduction is returned as it is (pickle does not call
    it again)."""
    value = obj.__reduce_ex__(PROTOCOL)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], tuple) and len(value[1]) == 1:
        method, (owner,) = value
        descriptor = getattr(method, "__self__", None)
        if getattr(method, "__name__", None) == "__get__" and descriptor is not None:
            for base in type(owner).__mro__:
                for name, attribute in vars(base).items():
                    if attribute is descriptor:
                        return getattr, (owner, name)
    return value


def plain_global(obj: Any) -> Any:
    """Name a method descriptor or a builtin bound to a class (torch's
    functions, `SimpleQueue.put`) as the module attribute it also is, where
    pickle's own reduction would spell it `getattr(cls, name)`, a call the
    safe loader never allows. Anything else: NotImplemented (pickle as usual)."""
    if type(obj) is types.MethodDescriptorType:
        return obj.__qualname__ if global_error(obj) is None else NotImplemented
    if type(obj) is types.BuiltinFunctionType and not isinstance(obj.__self__, types.ModuleType):
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        name = getattr(obj, "__name__", None)
        if module is not None and name is not None and getattr(module, name, None) is obj:
            return name
    return NotImplemented


def dumps(obj: Any, *, strip_ids: Collection[int] = ()) -> bytes:
    """The rewrapped pickle of `obj` with every buffer in band, code by value."""
    out = io.BytesIO()
    RewrapPickler(out, strip_ids=strip_ids, by_value=True, out_of_band=False).dump(obj)
    return out.getvalue()
