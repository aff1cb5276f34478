"""Guards: allowed callables that are safe only with some arguments.

find_class hands out a stand-in instead of the real object; the stand-in
checks the arguments, then calls the real one: allocations are bounded by
what the file holds, file handlers must not open their file at load,
classes numpy and torch rebuild from are not callable directly, classes
and loggers the load reaches are remembered so state applied to them is
undone. A checkpoint that stores one of these objects as a plain value
(not as something to call) gets the stand-in back: the price of judging
every call the pickle makes.
"""

from __future__ import annotations

import inspect
import logging
import operator
import queue
import re
import sys
from collections.abc import Callable
from typing import Any

from .errors import CheckpointError
from .graph import global_name

Guard = Callable[[Any, Any], Any]
"""guard(real object, the unpickler) -> the stand-in; the unpickler has `.limit` and `.handed`."""


def _refused_call(what: str) -> CheckpointError:
    return CheckpointError(f"data.pkl {what}; ckpt refuses it (the file is malicious or was not written by ckpt)")


def _one_argument_type(obj: Any, load: Any) -> Callable[[Any], type]:
    def type_of(value: Any) -> type:
        cls = type(value)  # type(name, bases, dict) would create a class: never
        load.handed.remember(cls)  # a class the pickle did not name is still the process's own
        return cls

    return type_of


def _one_argument_iter(obj: Any, load: Any) -> Callable[[Any], Any]:
    def iterate(iterable: Any) -> Any:
        return iter(iterable)  # iter(callable, sentinel) could loop forever: never

    return iterate


def _remembered_logger(obj: Any, load: Any) -> Callable[..., logging.Logger]:
    def get_logger(name: str | None = None) -> logging.Logger:
        logger = logging.getLogger(name)
        load.handed.remember(logger)  # the process's own: state applied to it is undone
        return logger

    return get_logger


def _queue_refill_map(obj: Any, load: Any) -> Callable[..., Any]:
    """map() is written only to refill a SimpleQueue; any other function
    would let a small file make an unbounded number of calls."""

    def refill(function: Any, *iterables: Any) -> Any:
        if function is not queue.SimpleQueue.put:
            raise _refused_call("maps a function other than SimpleQueue.put over its data")
        return map(function, *iterables)

    return refill


def _sized(obj: Any, load: Any) -> Callable[..., Any]:
    """bytes(n) / bytearray(n) allocate n bytes: no more than the file could hold."""

    def build(*args: Any) -> Any:
        size = args[0] if args else 0
        if hasattr(type(size), "__index__") and operator.index(size) > load.limit:  # numpy ints too
            raise CheckpointError(f"data.pkl asks for a {operator.index(size)}-byte buffer, more than the file holds")
        return obj(*args)

    return build


def _integers_only(obj: Any, load: Any) -> Callable[..., Any]:
    """Fraction('1e999999999') computes a number with a billion digits: only
    the (numerator, denominator) integers pickle writes are accepted."""

    def build(*args: Any) -> Any:
        if not all(type(a) is int for a in args):
            raise _refused_call(f"builds a {global_name(obj)} from something other than integers")
        return obj(*args)

    return build


def _no_debug_flag(obj: Any, load: Any) -> Callable[..., Any]:
    """re.DEBUG makes compiling a pattern print to stdout: dropped."""

    def compile_pattern(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(flags, int):
            flags &= ~re.DEBUG
        return obj(pattern, flags)

    return compile_pattern


def _delayed_open(obj: Any, load: Any) -> Callable[..., Any]:
    """A file handler opens (creates, maybe truncates) its file in its
    constructor unless delay=True, which is how ckpt writes every one."""

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            delay = inspect.signature(obj).bind(*args, **kwargs).arguments.get("delay")
        except TypeError as exc:
            raise _refused_call(f"builds a {global_name(obj)} with bad arguments ({exc})") from None
        if delay is not True:
            raise _refused_call(f"builds a {global_name(obj)} that opens its file at load (delay is not True)")
        return obj(*args, **kwargs)

    return build


def _elements(shape: Any) -> int:
    count = 1
    for n in shape if isinstance(shape, (tuple, list)) else (shape,):
        count *= int(n)
    return count


def _numpy_itemsize(dtype: Any) -> int:
    try:
        return max(int(sys.modules["numpy"].dtype(dtype).itemsize), 1)
    except Exception:  # numpy will refuse it itself
        return 1


def _check_allocation(nbytes: int, load: Any) -> None:
    if nbytes > load.limit:
        raise CheckpointError(f"data.pkl asks for an array of {nbytes} bytes, more than the file holds")


class _ArgumentOnly:
    """numpy.ndarray, MaskedArray and torch.Tensor reach a checkpoint only as
    arguments of their rebuild functions; called directly, they allocate any
    shape. The stand-in refuses calls and cannot be changed."""

    __slots__ = ("wrapped",)
    wrapped: Any

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "wrapped", wrapped)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refused_call(f"sets {name!r} on {global_name(self.wrapped)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refused_call(f"calls {global_name(self.wrapped)} directly")

    def __repr__(self) -> str:
        return f"<{global_name(self.wrapped)}, as loaded by ckpt>"


def _argument_only(obj: Any, load: Any) -> _ArgumentOnly:
    return _ArgumentOnly(obj)


def _unwrap(value: Any) -> Any:
    return value.wrapped if isinstance(value, _ArgumentOnly) else value


def _bounded_reconstruct(obj: Any, load: Any) -> Callable[..., Any]:
    """numpy's `_reconstruct(cls, shape, dtype)` allocates: keep it within the file's size."""

    def build(cls: Any, shape: Any, dtype: Any) -> Any:
        _check_allocation(_elements(shape) * _numpy_itemsize(dtype), load)
        return obj(_unwrap(cls), shape, dtype)

    return build


def _bounded_mareconstruct(obj: Any, load: Any) -> Callable[..., Any]:
    """numpy.ma's `_mareconstruct(subtype, baseclass, baseshape, basetype)` allocates too."""

    def build(subtype: Any, baseclass: Any, baseshape: Any, basetype: Any) -> Any:
        _check_allocation(_elements(baseshape) * _numpy_itemsize(basetype), load)
        return obj(_unwrap(subtype), _unwrap(baseclass), baseshape, basetype)

    return build


def _bounded_empty(obj: Any, load: Any) -> Callable[..., Any]:
    """torch.empty(*size) allocates: ckpt writes it only for empty storages."""

    def build(*size: Any, **kwargs: Any) -> Any:
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        itemsize = getattr(kwargs.get("dtype"), "itemsize", 8)
        _check_allocation(_elements(shape) * max(int(itemsize), 1), load)
        return obj(*size, **kwargs)

    return build


def _unwrapping(obj: Any, load: Any) -> Callable[..., Any]:
    """torch's `_rebuild_from_type_v2(func, new_type, args, state)` takes the class as an argument."""

    def build(func: Any, new_type: Any, args: Any, state: Any) -> Any:
        return obj(func, _unwrap(new_type), args, state)

    return build


def construct_only(cls: type) -> type:
    """A stand-in for a class allowed by package (torch's layers): pickle
    builds instances with NEWOBJ (`cls.__new__(cls)`, then state), which the
    stand-in forwards; calling it would run the constructor with the file's
    arguments (`Linear(50000, 50000)` allocates and fills 10 GB): refused."""

    class ConstructOnly(type):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise _refused_call(f"calls {global_name(cls)} directly")

    def new(standin: type, *args: Any, **kwargs: Any) -> Any:
        return cls.__new__(cls, *args, **kwargs)

    return ConstructOnly(cls.__name__, (), {"__new__": new, "__qualname__": cls.__qualname__,
                                            "__module__": cls.__module__})


_GUARDS: tuple[tuple[str, Guard], ...] = (
    ("builtins.type", _one_argument_type), ("builtins.iter", _one_argument_iter),
    ("builtins.map", _queue_refill_map), ("builtins.bytes", _sized), ("builtins.bytearray", _sized),
    ("logging.getLogger", _remembered_logger),
    ("fractions.Fraction", _integers_only), ("re.compile", _no_debug_flag), ("re._compile", _no_debug_flag),
    ("logging.FileHandler", _delayed_open), ("logging.handlers.RotatingFileHandler", _delayed_open),
    ("logging.handlers.TimedRotatingFileHandler", _delayed_open),
    ("logging.handlers.WatchedFileHandler", _delayed_open),
    ("numpy.ndarray", _argument_only), ("numpy.ma.MaskedArray", _argument_only),
    ("numpy.ma.core.MaskedArray", _argument_only),
    ("numpy._core.multiarray._reconstruct", _bounded_reconstruct),
    ("numpy.core.multiarray._reconstruct", _bounded_reconstruct),
    ("numpy.ma.core._mareconstruct", _bounded_mareconstruct),
    ("torch.Tensor", _argument_only), ("torch.empty", _bounded_empty),
    ("torch._tensor._rebuild_from_type_v2", _unwrapping),
)
"""Guarded globals, by the name of the object they resolve to. Looked up at
each find_class (numpy and torch may be imported by the load itself)."""


def guard_for(obj: Any) -> Guard | None:
    for dotted, guard in _GUARDS:
        module, _, name = dotted.rpartition(".")
        loaded = sys.modules.get(module)
        if loaded is not None and getattr(loaded, name, None) is obj:
            return guard
    return None
