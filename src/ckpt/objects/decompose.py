"""Take one object apart the way `pickle.Pickler.save` would (protocol 5).

`decompose(obj)` returns the objects pickle would go on to save, each with
the edge that names it (see `paths`), or raises `Unpicklable` with the
message pickle itself would give. It follows the C pickler's order: exact
builtin containers, classes and functions by reference (or, written by
value, what they carry), `copyreg`'s dispatch table (and cloudpickle's
reducers for what code by value is made of, `byvalue.PARTS`), then
`__reduce_ex__(5)` and the reduce value's parts (`__newobj__`, state from
`__getstate__`, list and dict items, state setter). One reduction differs
from pickle's, as save's does (`OWN_REDUCERS`): a bound method that no
name finds again at load is `MethodType(function, object)`.
Atoms (None, bool, int, float, str, bytes) are never returned.
"""

from __future__ import annotations

import collections
import copyreg
import functools
import inspect
import pickle
import sys
import types
from collections.abc import Iterator
from typing import Any

from ckpt.kinds import byvalue
from ckpt.objects.paths import Edge, literal_key

ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, pickle.PickleBuffer})
PROTOCOL = 5
_NAMED_TYPES = (type, types.FunctionType, types.BuiltinFunctionType)
Children = list[tuple[Edge, Any]]


class Unpicklable(Exception):
    """pickle would raise on this object itself (not on something inside it)."""


def decompose(obj: Any, *, keep_atoms: bool = False) -> Children:
    """The parts of `obj` pickle would save next, atoms left out unless `keep_atoms`."""
    skip = () if keep_atoms else ATOMS
    cls = type(obj)
    if cls is dict:
        return _dict_children(obj.items(), skip)
    if cls is list or cls is tuple:
        return [(("item", i), v) for i, v in enumerate(obj) if type(v) not in skip]
    if cls is set or cls is frozenset:
        return [(("member", i), v) for i, v in enumerate(obj) if type(v) not in skip]
    if cls is type or cls is types.FunctionType:
        return _named_or_parts(obj)
    reducer = byvalue.PARTS.get(cls) or copyreg.dispatch_table.get(cls) or OWN_REDUCERS.get(cls)
    if reducer is None and issubclass(cls, type):
        return _named_or_parts(obj)
    try:
        value = reducer(obj) if reducer is not None else obj.__reduce_ex__(PROTOCOL)
    except Exception as exc:
        raise Unpicklable(_message(exc)) from None
    if isinstance(value, str):
        return _by_reference(obj, value)
    return _reduce_children(obj, value, skip)


def reduce_method(method: types.MethodType) -> Any:
    """A bound method, as pickle writes it (`getattr(its object, name)`)
    when that name finds it again at load. A private one (`self.__on_item`)
    is named by the attribute it is, `_Owner__on_item`: pickle uses the
    function's `__name__`, which no object has after load. One whose name
    finds nothing, or something else (a function compiled at run time and
    bound to an instance, as werkzeug's URL builders are), is written as
    `MethodType(function, object)`: its function by reference if importable,
    by value if not, as any function."""
    func, owner = method.__func__, method.__self__
    name = getattr(func, "__name__", "")
    if not isinstance(name, str):
        return types.MethodType, (func, owner)
    if name.startswith("__") and not name.endswith("__"):
        holder = getattr(func, "__qualname__", "").rpartition(".")[0].rpartition(".")[2]
        mangled = f"_{holder.lstrip('_')}{name}"
        if holder.lstrip("_") and _named_by(owner, mangled, func):
            return getattr, (owner, mangled)
    if _named_by(owner, name, func):
        return method.__reduce_ex__(PROTOCOL)
    return types.MethodType, (func, owner)


def _named_by(owner: Any, name: str, func: Any) -> bool:
    """Whether `getattr(owner, name)` binds `func` through its class, as
    found without running any `__getattr__` or property. A method found in
    the instance's own dictionary does not count, nor a method of a class
    written by value (a pydantic validator of a model defined in a
    function): at load, getattr may run before that dictionary, or that
    class's attributes, are filled."""
    if isinstance(owner, type) and byvalue.by_value(owner):
        return False
    try:
        found = inspect.getattr_static(owner, name)
    except AttributeError:
        return False
    return not isinstance(found, types.MethodType) and getattr(found, "__func__", found) is func


OWN_REDUCERS: dict[type, Any] = {types.MethodType: reduce_method}
"""How ckpt writes what pickle would write so that it fails at load; the
scan's pickle attempts use the same, so it reports what save will do."""


def global_error(obj: Any, name: str | None = None) -> str | None:
    """Why pickle cannot write `obj` by reference as module.qualname, or None."""
    if name is None:
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        return f"Can't pickle {obj!r}: it has no __qualname__"
    return _lookup_error(obj, name)


@functools.lru_cache(maxsize=4096)
def _lookup_error_cached(obj: Any, name: str) -> str | None:
    return _lookup_uncached(obj, name)


def _lookup_error(obj: Any, name: str) -> str | None:
    try:
        return _lookup_error_cached(obj, name)
    except TypeError:  # unhashable: look it up every time
        return _lookup_uncached(obj, name)


def _lookup_uncached(obj: Any, name: str) -> str | None:
    if "<locals>" in name.split(".") or "<lambda>" in name:
        return f"Can't pickle local object {name!r}: pickle names functions and classes by module and name"
    module_name = getattr(obj, "__module__", None) or _which_module(obj, name)
    try:
        __import__(module_name)
        found: Any = sys.modules[module_name]
        for part in name.split("."):
            found = getattr(found, part)
    except Exception:
        return f"Can't pickle {name!r}: it is not found as {module_name}.{name}"
    if found is not obj:
        return f"Can't pickle {name!r}: {module_name}.{name} is a different object"
    return None


def _which_module(obj: Any, name: str) -> str:
    for module_name, module in list(sys.modules.items()):
        if module_name in ("__main__", "__mp_main__") or module is None:
            continue
        try:
            found: Any = module
            for part in name.split("."):
                found = getattr(found, part)
        except Exception:  # AttributeError, or a module whose __getattr__ raises another error (torch.classes)
            continue
        if found is obj:
            return module_name
    return "__main__"


def named(obj: Any) -> bool:
    """Whether the pickler writes a function or class by its name (not by value)."""
    return global_error(obj) is None and not byvalue.by_value(obj)


def _named_or_parts(obj: Any) -> Children:
    """A function or class: nothing more to save if it is written by name; what it carries if by value."""
    if byvalue.by_value(obj):
        return list(byvalue.parts(obj))
    return _by_reference(obj)


def _by_reference(obj: Any, name: str | None = None) -> Children:
    error = global_error(obj, name)
    if error is not None:
        raise Unpicklable(error)
    return []


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _dict_children(items: Any, skip: Any = ATOMS) -> Children:
    out: Children = []
    for i, (key, value) in enumerate(items):
        if type(key) not in ATOMS:
            out.append((("key", i), key))
        if type(value) not in skip:
            out.append((("item", key) if literal_key(key, value) else ("value", i), value))
    return out


def _reduce_children(obj: Any, value: Any, skip: Any) -> Children:
    """The parts of a reduce value pickle saves, with the checks pickle makes."""
    if not isinstance(value, tuple) or not 2 <= len(value) <= 6:
        raise Unpicklable("__reduce__ must return a string or a tuple of 2 to 6 items")
    func, args, state, listitems, dictitems, setter = value + (None,) * (6 - len(value))
    if not callable(func):
        raise Unpicklable("first item of the tuple returned by __reduce__ must be callable")
    if not isinstance(args, tuple):
        raise Unpicklable("second item of the tuple returned by __reduce__ must be a tuple")
    for position, items in (("fourth", listitems), ("fifth", dictitems)):
        if items is not None and not isinstance(items, Iterator):
            raise Unpicklable(f"{position} element of the tuple returned by __reduce__ must be an iterator")
    if setter is not None and not callable(setter):
        raise Unpicklable("sixth element of the tuple returned by __reduce__ must be callable")
    func_name = str(getattr(func, "__name__", ""))
    default = func_name in ("__newobj__", "__newobj_ex__")
    out = _newobj_children(obj, func_name, args, skip) if default else _call_children(func, args)
    if state is not None:
        out += _state_children(obj, state, default, skip)
    try:
        if listitems is not None:
            out += [(("item", i), v) for i, v in enumerate(listitems) if type(v) not in skip]
        if dictitems is not None:
            out += _dict_children(_pairs(dictitems), skip)
    except Unpicklable:
        raise
    except Exception as exc:
        raise Unpicklable(_message(exc)) from None
    if setter is not None:
        out.append((("reduce", 5), setter))
    return out


def _pairs(items: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise Unpicklable("dict items iterator must return 2-tuples")
        yield item


def _newobj_children(obj: Any, func_name: str, args: tuple[Any, ...], skip: Any) -> Children:
    if not args:
        raise Unpicklable(f"{func_name} arglist is empty")
    cls = args[0]
    if not isinstance(cls, type):
        raise Unpicklable(f"args[0] from {func_name} args is not a type")
    if func_name == "__newobj__" and cls is not getattr(obj, "__class__", None):
        raise Unpicklable(f"args[0] from {func_name} args has the wrong class")
    out: Children = [] if named(cls) else [(("type",), cls)]
    if isinstance(obj, tuple) and func_name == "__newobj__":  # namedtuple and friends
        return out + [(("item", i), v) for i, v in enumerate(args[1:]) if type(v) not in skip]
    if len(args) > 1:
        out.append((("reduce", 1), args))
    return out


def _call_children(func: Any, args: tuple[Any, ...]) -> Children:
    out: Children = [] if isinstance(func, _NAMED_TYPES) and named(func) else [(("reduce", 0), func)]
    if func is getattr and len(args) == 2:  # a bound method: (getattr, (self, name))
        return out + [(("attr", "__self__"), args[0])]
    if func is types.MethodType and len(args) == 2:  # a bound method no name finds: MethodType(func, self)
        return [(("attr", "__func__"), args[0]), (("attr", "__self__"), args[1])]
    if func is collections.defaultdict and len(args) == 1:
        return out + ([] if args[0] is None else [(("attr", "default_factory"), args[0])])
    if args:
        out.append((("reduce", 1), args))
    return out


def _custom_state_children(obj: Any, state: Any, skip: Any) -> Children:
    """A custom `__getstate__`'s dict: a value that is also the attribute of
    that name is reached as `.name` (the path a person would write); any
    other value as `.__getstate__()['name']`."""
    if not isinstance(state, dict):
        return [(("call", "__getstate__()"), state)]
    attributes = getattr(obj, "__dict__", {})
    return [
        (_state_edge(i, key, value, attributes), value)
        for i, (key, value) in enumerate(state.items())
        if type(value) not in skip
    ]


def _state_edge(i: int, key: Any, value: Any, attributes: dict[str, Any]) -> Edge:
    if attributes.get(key, _NOTHING) is value:
        return ("attr", key)
    return ("getstate", key) if literal_key(key, value) else ("state-value", i)


_NOTHING = object()


def _state_children(obj: Any, state: Any, default: bool, skip: Any) -> Children:
    if type(obj) is functools.partial and isinstance(state, tuple) and len(state) == 4:
        names = ("func", "args", "keywords", "__dict__")
        return [(("attr", n), v) for n, v in zip(names, state) if v is not None and type(v) not in skip]
    if not default:
        return [(("reduce", 2), state)]
    if type(obj).__getstate__ is not object.__getstate__:
        return _custom_state_children(obj, state, skip)
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    out: Children = []
    for part in parts:
        if isinstance(part, dict):
            out += [(("attr", k), v) for k, v in part.items() if type(v) not in skip]
        elif part is not None:
            out.append((("call", "__getstate__()"), state))
    return out
