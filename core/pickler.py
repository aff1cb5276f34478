"""The C pickler, taught the catalog: rewrap thread kinds, strip on request.

`RewrapPickler` is `pickle.Pickler` (the C implementation) with a
`reducer_override` that looks up each object's type once: catalog kinds are
written with their row's reducer (plain stdlib constructors, so the pickle
loads without ckpt), objects the user asked to strip are written as None,
and classes and functions are recorded as the globals the pickle references.
Everything else returns NotImplemented and is pickled by C as usual.

Weak references and containers keep what the checkpoint holds anyway: the
first one met runs a pre-pass (the same pickler, writing nowhere, weak
kinds written empty) whose memo is the set of objects saved strongly. A
graph without weak kinds never pays for it.

Large contiguous buffers (numpy arrays) go out of band, protocol 5 style:
`buffers` collects them without copying, for the container to write as
aligned members.
"""

from __future__ import annotations

import functools
import io
import logging
import pickle
import sys
import types
from collections.abc import Callable, Collection
from typing import Any, BinaryIO

from . import catalog, rewrap
from .graph import PROTOCOL, global_error, global_name
from .tensors import TensorReducer, tensor_types

OUT_OF_BAND_MIN = 64 * 1024
"""Buffers smaller than this stay inside data.pkl: one member per small array would cost more than it saves."""

_BY_REFERENCE = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                 types.WrapperDescriptorType, types.ClassMethodDescriptorType)
_SINGLETON_TYPES = (type(None), type(NotImplemented), type(...))
_Handler = Callable[[Any], Any]


class Tap:
    """A pickler's file: passes writes on (or drops them, with no target),
    reports the bytes passed on so far to `progress`, and can capture the
    next writes instead, to read back what was written."""

    def __init__(self, target: Any = None, progress: Callable[[int], None] | None = None) -> None:
        self.target = target
        self.progress = progress
        self.captured: bytes | None = None
        self._written = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        if self.captured is not None:
            self.captured += bytes(data)
        elif self.target is not None:
            self.target.write(data)
            self._written += n
            if self.progress is not None:
                self.progress(self._written)
        return n


def memo_size(pickler: pickle.Pickler, tap: Tap) -> int:
    """How many objects the pickler memoized, without copying its memo (that
    costs more than the pickling): a new object gets the next memo index, and
    pickling it again writes that index as a memo GET. Ends the pickler's use."""
    marker: list[Any] = []
    tap.captured = b""
    pickler.dump(marker)
    tap.captured = b""
    pickler.dump(marker)
    tail = tap.captured.removeprefix(b"\x80\x05")
    if tail[:1] == b"\x95":  # FRAME and its 8-byte length
        tail = tail[9:]
    return tail[1] if tail[:1] == b"h" else int.from_bytes(tail[1:5], "little")


class RewrapPickler(pickle.Pickler):
    def __init__(
        self,
        file: BinaryIO | None,
        *,
        strip_ids: Collection[int] = (),
        out_of_band: bool = True,
        progress: Callable[[int], None] | None = None,
        saved: Collection[int] | None = None,
    ) -> None:
        self.tap = Tap(file, progress)
        super().__init__(self.tap, PROTOCOL, buffer_callback=self._take_buffer if out_of_band else None)
        self.buffers: list[pickle.PickleBuffer] = []
        self._strip = frozenset(strip_ids)
        self._handlers: dict[type, _Handler | None] = {}
        self._referenced: dict[int, Any] = {}
        self.rewrapped = False
        """Whether any catalog kind was rewrapped or stripped (then save lists them)."""
        self.objects = 0
        """How many objects the pickle memoized (set by save once it is written)."""
        self._tensor_types = tensor_types()
        self._tensors = TensorReducer() if self._tensor_types else None
        self._root: Any = None
        self._saved = saved
        """ids of the objects saved strongly (the pre-pass's memo); None until a weak kind needs it."""
        self._nulled: set[int] = set()
        self.notes: dict[int, str] = {}
        """Remarks known only while saving, by object id (what a weak container kept)."""
        self.loggers: dict[int, Any] = {}
        """The loggers written (by name, as pickle does): their handlers are not saved."""

    def dump(self, obj: Any) -> None:
        self._root = obj
        try:
            super().dump(obj)
        finally:
            self._root = None
            if isinstance(self._saved, dict):
                self._saved = None  # the pre-pass's memo: it keeps every object alive

    @property
    def globals(self) -> list[str]:
        """module.qualname of every class and function written by reference."""
        names = {global_name(obj, None if name is NotImplemented else name) for obj, name in self._referenced.values()}
        return sorted(name for name in names if name)

    def reducer_override(self, obj: Any) -> Any:
        if self._strip and id(obj) in self._strip:
            self._nulled.add(id(obj))
            return rewrap.NONE_REDUCE
        cls = type(obj)
        try:
            handler = self._handlers[cls]
        except KeyError:
            handler = self._handlers[cls] = self._handler_for(cls)
        return NotImplemented if handler is None else handler(obj)

    def _handler_for(self, cls: type) -> _Handler | None:
        if issubclass(cls, type) or cls in _BY_REFERENCE:
            return self._by_reference
        if issubclass(cls, logging.Logger):
            return self._logger
        if catalog.handled_by_copyreg(cls):
            return None
        if self._tensors is not None and cls in self._tensor_types:
            return self._tensors
        if cls in _named_instance_types():
            return self._by_name
        kinds = catalog.kinds_of_type(cls)
        if any(kind.reduce is not None for kind in kinds):
            return functools.partial(self._rewrap, kinds)
        if isinstance(getattr(cls, "__reduce__", None), types.FunctionType):
            return _through_descriptor
        return None

    def _rewrap(self, kinds: tuple[catalog.Kind, ...], obj: Any) -> Any:
        kind = catalog.applying(kinds, obj)
        if kind is None or kind.reduce is None:
            return NotImplemented
        self.rewrapped = True
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
            pre = RewrapPickler(None, strip_ids=self._strip, saved=_PRE_PASS)  # writes nowhere
            pre.dump(self._root)
            memo = pre.memo.copy()
            for oid in pre._nulled:
                memo.pop(oid, None)
            self._saved = memo
        return self._saved

    def _by_reference(self, obj: Any) -> Any:
        name = plain_global(obj)
        # pickle writes the singleton types as type(None) etc.: the global is `type`
        self._referenced[id(obj)] = (type if obj in _SINGLETON_TYPES else obj, name)
        return name

    def _logger(self, obj: Any) -> Any:
        self.loggers[id(obj)] = obj
        return NotImplemented

    def _by_name(self, obj: Any) -> Any:
        """Objects pickle writes as a global (Ellipsis, torch.float32): record the name."""
        name = obj.__reduce_ex__(PROTOCOL)
        if isinstance(name, str):
            self._referenced[id(obj)] = (obj, name)
        return NotImplemented

    def _take_buffer(self, buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_MIN:
            return True  # in band
        self.buffers.append(buffer)
        return False


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


def _named_instance_types() -> tuple[type, ...]:
    torch = sys.modules.get("torch")
    extra = (torch.dtype, torch.layout, torch.memory_format) if torch is not None else ()
    return (type(...), type(NotImplemented), *extra)


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
    """The rewrapped pickle of `obj` with every buffer in band."""
    out = io.BytesIO()
    RewrapPickler(out, strip_ids=strip_ids, out_of_band=False).dump(obj)
    return out.getvalue()
