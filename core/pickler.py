"""The C pickler, taught the catalog: rewrap thread kinds, strip on request.

`RewrapPickler` is `pickle.Pickler` (the C implementation) with a
`reducer_override` that looks up each object's type once: catalog kinds are
written with their row's reducer (plain stdlib constructors, so the pickle
loads without ckpt), objects the user asked to strip are written as None,
and classes and functions are recorded as the globals the pickle references.
Everything else returns NotImplemented and is pickled by C as usual.

Large contiguous buffers (numpy arrays) go out of band, protocol 5 style:
`buffers` collects them without copying, for the container to write as
aligned members.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import types
from collections.abc import Callable, Collection
from typing import Any, BinaryIO

from . import catalog, rewrap
from .graph import PROTOCOL, global_name

OUT_OF_BAND_MIN = 64 * 1024
"""Buffers smaller than this stay inside data.pkl: one member per small array would cost more than it saves."""

_BY_REFERENCE = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                 types.WrapperDescriptorType, types.ClassMethodDescriptorType)
_SINGLETON_TYPES = (type(None), type(NotImplemented), type(...))
_Handler = Callable[[Any], Any]


class RewrapPickler(pickle.Pickler):
    def __init__(self, file: BinaryIO, *, strip_ids: Collection[int] = (), out_of_band: bool = True) -> None:
        super().__init__(file, PROTOCOL, buffer_callback=self._take_buffer if out_of_band else None)
        self.buffers: list[pickle.PickleBuffer] = []
        self._strip = frozenset(strip_ids)
        self._handlers: dict[type, _Handler | None] = {}
        self._referenced: dict[int, Any] = {}

    @property
    def globals(self) -> list[str]:
        """module.qualname of every class and function written by reference."""
        names = {global_name(obj) for obj in self._referenced.values()}
        return sorted(name for name in names if name)

    def reducer_override(self, obj: Any) -> Any:
        if self._strip and id(obj) in self._strip:
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
        if cls in copyreg.dispatch_table:
            return None
        kind = catalog.kind_of_type(cls)
        if kind is None or kind.reduce is None:
            return None
        return kind.reduce

    def _by_reference(self, obj: Any) -> Any:
        # pickle writes the singleton types as type(None) etc.: the global is `type`
        self._referenced[id(obj)] = type if obj in _SINGLETON_TYPES else obj
        if type(obj) is types.MethodDescriptorType:
            return rewrap.reduce_method_descriptor(obj)
        return NotImplemented

    def _take_buffer(self, buffer: pickle.PickleBuffer) -> bool:
        if buffer.raw().nbytes < OUT_OF_BAND_MIN:
            return True  # in band
        self.buffers.append(buffer)
        return False


def dumps(obj: Any, *, strip_ids: Collection[int] = ()) -> bytes:
    """The rewrapped pickle of `obj` with every buffer in band."""
    out = io.BytesIO()
    RewrapPickler(out, strip_ids=strip_ids, out_of_band=False).dump(obj)
    return out.getvalue()
