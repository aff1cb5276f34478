"""Code saved by value: the functions and classes pickle cannot name.

A lambda, a closure, a function or class defined inside a function or in a
script's `__main__` has no importable name a loading process could resolve:
pickle refuses it (or, for `__main__`, writes a name only the saving script
resolves again). ckpt writes such code by value with cloudpickle's own
reducers -- what Ray, Dask and PySpark ship code with -- rather than with
reducers of its own, and decides "by value" exactly as cloudpickle does
(`_should_pickle_by_reference`): whatever cloudpickle names, pickle names.

What a function by value carries: its code object, defaults, closure, the
globals its code reads, and its `__dict__`; a class by value: its own dict
(methods, class attributes). Code runs when it is loaded, so such a file
loads only whole, from a signer the user trusts; the data-only loader
refuses cloudpickle's reconstructors by name (`reconstructs_code`).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import types
import typing
from collections.abc import Iterator
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle

from ckpt.objects.paths import Edge

_BY_NAME = frozenset({type(None), type(Ellipsis), type(NotImplemented)})
"""Types pickle writes by name although no module attribute holds them (`type(None)`)."""


def by_value(obj: Any) -> bool:
    """Whether a function or class is written by value: cloudpickle's own
    decision, which also covers the built-in types no module names
    (`types.CodeType`: written as cloudpickle's `_builtin_type('CodeType')`).
    Remembered per object: the scan asks it of every instance's class."""
    try:
        return _by_value_cached(obj)
    except TypeError:  # unhashable: decided every time
        return _decide(obj)


@functools.lru_cache(maxsize=4096)
def _by_value_cached(obj: Any) -> bool:
    return _decide(obj)


def _decide(obj: Any) -> bool:
    if obj in _BY_NAME:
        return False
    try:
        return not _cloudpickle._should_pickle_by_reference(obj)
    except Exception:  # a name whose lookup raises: pickle's own lookup says why
        return False


def builtin_type(cls: type) -> bool:
    """A built-in type no module names (`types.MethodType`): cloudpickle
    writes it as `_builtin_type(name)`, its name in `types`."""
    return cls in _cloudpickle._BUILTIN_TYPE_NAMES


def describe(obj: Any) -> str:
    """Why pickle cannot name it, in a few words (the finding's note)."""
    qualname = str(getattr(obj, "__qualname__", getattr(obj, "__name__", "?")))
    module = getattr(obj, "__module__", None)
    what = "a lambda" if qualname.endswith("<lambda>") else "a class" if isinstance(obj, type) else "a function"
    outer, _, _ = qualname.rpartition(".<locals>.")
    if outer:
        return f"{what} defined inside {outer}()"
    if module in ("__main__", "__mp_main__"):
        return f"{what} defined in __main__ (the script that saved it)"
    if isinstance(obj, type) and builtin_type(obj):
        return f"the built-in type {_cloudpickle._BUILTIN_TYPE_NAMES[obj]}, which no module names"
    return f"{what} not found as {module}.{qualname}"


class Functions:
    """cloudpickle's reducer for functions by value, with the table of
    global namespaces it shares between the functions of one pickle (two
    functions of one module keep one namespace after load): cloudpickle
    keeps that table on its pickler, so its methods are borrowed here."""

    _dynamic_function_reduce = cloudpickle.Pickler._dynamic_function_reduce
    _function_getnewargs = cloudpickle.Pickler._function_getnewargs

    def __init__(self) -> None:
        self.globals_ref: dict[int, dict[str, Any]] = {}

    def reduce(self, func: types.FunctionType) -> tuple[Any, ...]:
        return self._dynamic_function_reduce(func)  # type: ignore[no-any-return]


reduce_class = _cloudpickle._class_reduce
"""A class by value (`_make_skeleton_class` and its dict), or NotImplemented for one pickle names."""

reduce_code = _cloudpickle._code_reduce


def _reduce_typevar(var: Any) -> Any:
    """A TypeVar a module holds by its name, as pickle writes it; any other by value."""
    if _cloudpickle._lookup_module_and_qualname(var, name=var.__name__) is not None:
        return var.__reduce__()
    return _cloudpickle._typevar_reduce(var)


_PART_TYPES = (types.CellType, classmethod, staticmethod, property, abc.abstractclassmethod,
               abc.abstractstaticmethod, abc.abstractproperty, types.MappingProxyType,
               dataclasses._FIELD_BASE)  # type: ignore[attr-defined]
PARTS: dict[type, Any] = {cls: cloudpickle.Pickler._dispatch_table[cls] for cls in _PART_TYPES}
"""cloudpickle's reducers for what a class or closure by value is made of
(cells, classmethod, property, a dataclass's field metadata and sentinels),
which pickle refuses or gets wrong alone; the pickler's dispatch table and
the scan's use them. Modules are the catalog's `module` kind (imported by name)."""
PARTS[typing.TypeVar] = _reduce_typevar


def function_parts(func: types.FunctionType) -> Iterator[tuple[Edge, Any]]:
    """What a function by value carries besides its code: the scan walks
    these (a lock in a closure is rewrapped like any other). The modules
    its code reads are imported by name, and left out."""
    for i, cell in enumerate(func.__closure__ or ()):
        try:
            yield ("closure", i), cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name in _cloudpickle._extract_code_globals(func.__code__):
        value = func.__globals__.get(name, _MISSING)
        if value is not _MISSING and not isinstance(value, types.ModuleType):
            yield ("global", name), value
    for name in ("__defaults__", "__kwdefaults__"):
        if getattr(func, name):
            yield ("attr", name), getattr(func, name)
    for name, value in vars(func).items():
        yield ("attr", name), value


_MISSING = object()


def class_parts(cls: type) -> Iterator[tuple[Edge, Any]]:
    """What a class by value carries: its class attributes, and for its
    methods by value (plain, class or static methods, properties) what
    each of those carries, so that a class is one finding, not one per method.
    A built-in type no module names carries nothing: it is written as
    cloudpickle's `_builtin_type(name)`."""
    if builtin_type(cls):
        return
    state, _ = _cloudpickle._class_getstate(cls)
    for name, value in state.items():
        methods = list(_methods(name, value))
        if not methods:
            yield ("attr", name), value
        for edges, func in methods:
            for edge, part in function_parts(func):
                yield ("via", (*edges, edge)), part


def _methods(name: str, value: Any) -> Iterator[tuple[tuple[Edge, ...], types.FunctionType]]:
    """The functions by value a class attribute holds, each with the edges from the class to it."""
    candidates: list[tuple[tuple[Edge, ...], Any]]
    if isinstance(value, types.FunctionType):
        candidates = [((("attr", name),), value)]
    elif isinstance(value, (classmethod, staticmethod)):
        candidates = [((("attr", "__dict__"), ("item", name), ("attr", "__func__")), value.__func__)]
    elif isinstance(value, property):
        candidates = [((("attr", "__dict__"), ("item", name), ("attr", part)), getattr(value, part))
                      for part in ("fget", "fset", "fdel")]
    else:
        return
    for edges, func in candidates:
        if isinstance(func, types.FunctionType) and by_value(func):
            yield edges, func


def parts(obj: Any) -> Iterator[tuple[Edge, Any]]:
    """What a function or class by value carries."""
    return class_parts(obj) if isinstance(obj, type) else function_parts(obj)


def reconstructs_code(name: str) -> bool:
    """Whether a global (`module:qualname`) is one of cloudpickle's
    reconstructors: a stream that names one builds code from the file."""
    module = name.partition(":")[0]
    return module == "cloudpickle" or module.startswith("cloudpickle.")
