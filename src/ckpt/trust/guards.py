"""Guards: reviewed callables that are safe only with some arguments.

A reviewed entry (or a rule) names its guard; the loader hands out the guard
instead of the real callable, and the guard checks the call's arguments by
what they are (identity and type, never a name), then calls the real one:
allocations stay within what the file could hold, file handlers never open
their file at load, numpy's generator constructors only build bit
generators, Cython and pandas reconstructors only build classes this load
admitted. A guard is handed out only for globals the file calls, not for
classes it instantiates or stores.
"""

from __future__ import annotations

import inspect
import logging
import operator
import queue
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ckpt.errors import CheckpointError
from ckpt.trust.flood import MAX_COLLISIONS, Floods


@dataclass
class Context:
    """What guards know about the load."""

    limit: int
    """Bytes one call may allocate: what the file itself could hold, times 8."""
    classes: set[int] = field(default_factory=set)
    """ids of the classes this load admitted."""
    floods: Floods = field(default_factory=Floods)
    """Numbers built by guards: a flood of distinct ones sharing a hash is refused."""
    warnings: list[str] = field(default_factory=list)
    """What a guard changed about what it built, for the load's report."""

    def counted(self, number: Any) -> Any:
        """`number`, after checking it is not one too many of distinct numbers sharing one hash."""
        if self.floods.add(number):
            raise refused(f"builds more than {MAX_COLLISIONS:,} distinct numbers with one hash value (a "
                          "hash-flooding dict or set)")
        return number




Guard = Callable[[Any, Context], Callable[..., Any]]


def refused(what: str) -> CheckpointError:
    return CheckpointError(f"data.pkl {what}; ckpt refuses it (the file was not written by ckpt, or was edited)")


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _one_argument(obj: Any, load: Context) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:  # iter(callable, sentinel) could loop forever
            raise refused(f"calls {_name(obj)} with {len(args)} arguments")
        return obj(*args)

    return call


_ITERATED = frozenset({list, tuple, type(iter([])), type(iter(())), map})
"""What iter, next, any and map may iterate: builtin sequences, their
iterators and a map, whose iteration runs no class's code."""


def _builtin_iteration(obj: Any, load: Context) -> Callable[..., Any]:
    """iter, next and any call their argument's __iter__ / __next__: only
    on a builtin list, tuple, their iterators or a map (the SimpleQueue
    rewrap's spelling), never on an object whose class's code would run."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs or type(args[0]) not in _ITERATED:
            what = _name(type(args[0])) if len(args) == 1 else f"{len(args)} arguments"
            raise refused(f"calls {_name(obj)} on {what} (only builtin lists, tuples, their iterators and map)")
        return obj(args[0])

    return call


def _no_arguments(obj: Any, load: Context) -> Callable[..., Any]:
    """A constructor that picks up what it needs from the loading process (a
    StreamHandler's stderr): nothing from the file."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            raise refused(f"calls {_name(obj)} with arguments")
        return obj()

    return call


def _queue_refill(obj: Any, load: Context) -> Callable[..., Any]:
    """map() is written only to refill a SimpleQueue; any other function
    would let a small file make an unbounded number of calls, and anything
    but builtin sequences would run a class's __iter__."""

    def refill(function: Any, *iterables: Any) -> Any:
        if function is not queue.SimpleQueue.put:
            raise refused("maps a function other than SimpleQueue.put over its data")
        if any(type(it) not in (list, tuple) for it in iterables):
            raise refused("maps SimpleQueue.put over something other than builtin lists and tuples")
        return obj(function, *iterables)

    return refill


def _sized(obj: Any, load: Context) -> Callable[..., Any]:
    """bytes(n) / bytearray(n) allocate n bytes: no more than the file could hold."""

    def build(*args: Any) -> Any:
        size = args[0] if args else 0
        if hasattr(type(size), "__index__") and operator.index(size) > load.limit:
            raise CheckpointError(f"data.pkl asks for a {operator.index(size)}-byte buffer, more than the file holds")
        return obj(*args)

    return build


MAX_NUMBER_BITS = 100_000
"""Integers a Fraction is built from, at most (30,000 digits): its gcd is
quadratic in their size, and no model's fraction comes near."""
MAX_DECIMAL_TEXT = 100_000
"""Characters of a Decimal's text, at most."""


def _integers_only(obj: Any, load: Context) -> Callable[..., Any]:
    """Fraction('1e999999999') computes a number with a billion digits: only
    the (numerator, denominator) integers pickle writes are accepted, of
    bounded size, and counted for hash flooding."""

    def build(*args: Any) -> Any:
        if not all(type(a) is int for a in args):
            raise refused(f"builds a {_name(obj)} from something other than integers")
        if any(a.bit_length() > MAX_NUMBER_BITS for a in args):
            raise refused(f"builds a {_name(obj)} of integers over {MAX_NUMBER_BITS:,} bits")
        return load.counted(obj(*args))

    return build


def _decimal_text(obj: Any, load: Context) -> Callable[..., Any]:
    """Decimal is pickled as Decimal(text): from an integer, converting a
    huge one takes quadratic time. Text only, of bounded length."""

    def build(*args: Any) -> Any:
        if len(args) != 1 or type(args[0]) is not str or len(args[0]) > MAX_DECIMAL_TEXT:
            raise refused(f"builds a Decimal from something other than its text (of at most {MAX_DECIMAL_TEXT:,} "
                          "characters)")
        return load.counted(obj(args[0]))

    return build


def _existing_logger(obj: Any, load: Context) -> Callable[..., Any]:
    """Pickle writes a logger as `getLogger(name)`: the process's logger of
    that name. One the process does not have would be created and
    registered for good: a load changes no process state, so it comes back
    detached instead (named, its records going to the root logger's
    handlers), and the load says so."""

    def lookup(*args: Any) -> Any:
        if not args:
            return obj()
        if len(args) != 1 or type(args[0]) is not str:
            raise refused("looks a logger up by something other than its name")
        name = args[0]
        existing = logging.Logger.manager.loggerDict.get(name)
        if isinstance(existing, logging.Logger) or name == "root":
            return obj(name)
        detached = logging.Logger(name)
        detached.parent = obj()
        load.warnings.append(f"logger {name!r} does not exist in this process: restored detached (not registered "
                             "with logging; its records go to the root logger's handlers)")
        return detached

    return lookup


SINGLETON_TYPES = (type(None), type(NotImplemented), type(Ellipsis))


def _singleton_type(obj: Any, load: Context) -> Callable[..., Any]:
    """type(x) is written by pickle only for the types of None, NotImplemented
    and Ellipsis (which have no name to import): nothing else."""

    def build(*args: Any) -> Any:
        if len(args) != 1 or type(args[0]) not in SINGLETON_TYPES:
            raise refused("calls type() on something other than None, NotImplemented or Ellipsis")
        return obj(args[0])

    return build


def _flat_slice(obj: Any, load: Context) -> Callable[..., Any]:
    """A slice holding a slice holding a slice... a million deep is freed by
    recursion in C, which overflows the stack: slices hold plain bounds only."""

    def build(*args: Any) -> Any:
        if any(isinstance(a, slice) for a in args):
            raise refused("builds a slice of slices")
        return obj(*args)

    return build


MAX_PATTERN = 20_000
"""Characters of a regular expression, at most: compiling a long
case-insensitive character class took 53 s for 140 KB."""


def _no_debug_flag(obj: Any, load: Context) -> Callable[..., Any]:
    """re.DEBUG makes compiling a pattern print to stdout: dropped. A pattern
    longer than MAX_PATTERN is refused."""

    def compile_pattern(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(pattern, (str, bytes)) and len(pattern) > MAX_PATTERN:
            raise refused(f"compiles a pattern of {len(pattern):,} characters (at most {MAX_PATTERN:,})")
        if isinstance(flags, int):
            flags &= ~re.DEBUG
        return obj(pattern, flags)

    return compile_pattern


def _no_initializer(obj: Any, load: Context) -> Callable[..., Any]:
    """An executor's worker threads call its initializer with its initargs,
    outside any sandbox, when work is first submitted: restored without
    them, and the load says so."""

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = inspect.signature(obj).bind(*args, **kwargs)
        except TypeError as exc:
            raise refused(f"builds a {_name(obj)} with bad arguments ({exc})") from None
        if bound.arguments.get("initializer") is not None:
            bound.arguments["initializer"], bound.arguments["initargs"] = None, ()
            load.warnings.append(f"{_name(obj)} restored without the initializer the file gave it")
        return obj(*bound.args, **bound.kwargs)

    return build


def delayed_open(obj: Any, load: Context) -> Callable[..., Any]:
    """A file handler opens (creates, maybe truncates) its file in its
    constructor unless delay=True, which is how ckpt writes every one."""

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            delay = inspect.signature(obj).bind(*args, **kwargs).arguments.get("delay")
        except TypeError as exc:
            raise refused(f"builds a {_name(obj)} with bad arguments ({exc})") from None
        if delay is not True:
            raise refused(f"builds a {_name(obj)} that opens its file at load (delay is not True)")
        return obj(*args, **kwargs)

    return build


def _elements(shape: Any) -> int:
    count = 1
    for n in shape if isinstance(shape, (tuple, list)) else (shape,):
        count *= operator.index(n)
    return count


def _numpy_itemsize(dtype: Any) -> int:
    try:
        return max(int(sys.modules["numpy"].dtype(dtype).itemsize), 1)
    except Exception:  # numpy will refuse it itself
        return 1


def _check_allocation(nbytes: int, load: Context) -> None:
    if nbytes > load.limit:
        raise CheckpointError(f"data.pkl asks for an array of {nbytes} bytes, more than the file holds")


def _bounded_reconstruct(obj: Any, load: Context) -> Callable[..., Any]:
    """numpy's `_reconstruct(cls, shape, dtype)` allocates: keep it within the file's size."""

    def build(cls: Any, shape: Any, dtype: Any) -> Any:
        _admitted(cls, load, "an array")
        _check_allocation(_elements(shape) * _numpy_itemsize(dtype), load)
        return obj(cls, shape, dtype)

    return build


def _bounded_mareconstruct(obj: Any, load: Context) -> Callable[..., Any]:
    """numpy.ma's `_mareconstruct(subtype, baseclass, baseshape, basetype)` allocates too."""

    def build(subtype: Any, baseclass: Any, baseshape: Any, basetype: Any) -> Any:
        _admitted(subtype, load, "a masked array")
        _admitted(baseclass, load, "a masked array")
        _check_allocation(_elements(baseshape) * _numpy_itemsize(basetype), load)
        return obj(subtype, baseclass, baseshape, basetype)

    return build


def _bounded_empty(obj: Any, load: Context) -> Callable[..., Any]:
    """torch.empty(*size) allocates: ckpt writes it only for empty storages."""

    def build(*size: Any, **kwargs: Any) -> Any:
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        itemsize = getattr(kwargs.get("dtype"), "itemsize", 8)
        _check_allocation(_elements(shape) * max(int(itemsize), 1), load)
        return obj(*size, **kwargs)

    return build


def _tensor_rebuild(obj: Any, load: Context) -> Callable[..., Any]:
    """torch's `_rebuild_from_type_v2(func, new_type, args, state)` calls
    `func(*args)`: only torch.as_strided, as ckpt writes it, into an admitted
    tensor class."""

    def build(func: Any, new_type: Any, args: Any, state: Any) -> Any:
        torch = sys.modules["torch"]
        if func is not torch.as_strided:
            raise refused(f"rebuilds a tensor by calling {_name(func)}")
        if not (isinstance(new_type, type) and issubclass(new_type, torch.Tensor)):
            raise refused(f"rebuilds a tensor as {_name(new_type)}")
        _admitted(new_type, load, "a tensor")
        return obj(func, new_type, args, state)

    return build


def _dtype_view(obj: Any, load: Context) -> Callable[..., Any]:
    """Tensor.view(dtype): the same bytes as another dtype, nothing else."""

    def view(tensor: Any, dtype: Any) -> Any:
        torch = sys.modules["torch"]
        if not isinstance(tensor, torch.Tensor) or not isinstance(dtype, torch.dtype):
            raise refused("views something other than a tensor as a dtype")
        return obj(tensor, dtype)

    return view


def _dtype_copy(obj: Any, load: Context) -> Callable[..., Any]:
    """numpy pickles a dtype as dtype(spec, align, True): a copy. Without
    copy=True numpy returns its own shared dtype, and the state the file
    applies next would change it for the whole process."""

    def build(*args: Any) -> Any:
        if len(args) != 3 or args[2] is not True:
            raise refused("builds a numpy dtype that is not a copy")
        return obj(*args)

    return build


def _bit_generator(obj: Any, load: Context) -> Callable[..., Any]:
    """numpy's generator constructors take a bit generator's name, class or
    instance, and the constructor function of bit generators: nothing else
    (they call what they are given)."""

    def build(*args: Any) -> Any:
        random = sys.modules["numpy.random"]
        bit_generator = random.bit_generator.BitGenerator
        ctor = vars(sys.modules["numpy.random._pickle"])["__bit_generator_ctor"]
        for arg in args:
            ok = (type(arg) is str or arg is ctor or isinstance(arg, bit_generator)
                  or (isinstance(arg, type) and issubclass(arg, bit_generator)))
            if not ok:
                raise refused(f"builds a numpy random generator from {_name(type(arg))}")
        return obj(*args)

    return build


def _admitted_class_argument(obj: Any, load: Context) -> Callable[..., Any]:
    """Reconstructors taking the class to build first (pandas' _new_Index,
    Cython's __pyx_unpickle_*): only a class this load admitted."""

    def build(cls: Any, *args: Any, **kwargs: Any) -> Any:
        _admitted(cls, load, "an object")
        return obj(cls, *args, **kwargs)

    return build


def _admitted(cls: Any, load: Context, what: str) -> None:
    if not isinstance(cls, type) or id(cls) not in load.classes:
        raise refused(f"builds {what} of {_name(cls)}, which this load did not admit")


def _enum_lookup(obj: Any, load: Context) -> Callable[..., Any]:
    """Calling an enum class with one value looks a member up; with more,
    it creates a new enum class (whose members run a mixed-in constructor)."""

    def lookup(*args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs:
            raise refused(f"calls enum {_name(obj)} with {len(args)} arguments (only a member lookup is allowed)")
        return obj(args[0])

    return lookup


GUARDS: dict[str, Guard] = {
    "sized": _sized, "one_argument": _one_argument, "queue_refill": _queue_refill,
    "builtin_iteration": _builtin_iteration, "no_initializer": _no_initializer,
    "integers_only": _integers_only, "no_debug_flag": _no_debug_flag, "delayed_open": delayed_open,
    "bounded_reconstruct": _bounded_reconstruct, "bounded_mareconstruct": _bounded_mareconstruct,
    "bounded_empty": _bounded_empty, "tensor_rebuild": _tensor_rebuild, "dtype_copy": _dtype_copy,
    "bit_generator": _bit_generator, "admitted_class_argument": _admitted_class_argument,
    "cython_reconstructor": _admitted_class_argument, "enum_lookup": _enum_lookup, "decimal_text": _decimal_text,
    "flat_slice": _flat_slice, "singleton_type": _singleton_type, "existing_logger": _existing_logger,
    "no_arguments": _no_arguments, "dtype_view": _dtype_view,
}


TAKES_FUNCTIONS = frozenset({"tensor_rebuild", "bit_generator", "queue_refill"})
"""Guards handed the reviewed functions a file passes them (each checks
them by identity); every other callee is given none."""


def guard_name(obj: Any, named: str | None) -> str | None:
    """The guard for an admitted object: its entry's, or by what it is (every
    file handler class, whoever admitted it, opens nothing at load)."""
    if isinstance(obj, type) and issubclass(obj, logging.FileHandler):
        return "delayed_open"
    return named
