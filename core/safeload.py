"""Turn checkpoint bytes into objects without running code nobody trusted.

Loading is parse -> audit -> construct (as in skops): the container has
already checked every member's hash; here the C unpickler runs with a
restricted `find_class` that judges every global before it is imported:

- always denied, whatever is trusted: process, file, network and import
  machinery, evaluators, other deserializers (`DENIED`);
- allowed: safe builtins, collections, datetime, decimal, numpy's rebuild
  functions, the catalog's constructors (`ALLOWED` and the catalog rows);
- trusted by the user: `--trust MODULE` (and its submodules), or the
  manifest's globals when its HMAC signature verifies.

A dotted name (`threading:_os.system`) is judged again by what it resolves
to. A module is never returned. Classes and functions handed out (and the
classes `type(x)` and loggers `getLogger` return) are snapshotted, and if
the pickle applied state to one of them (BUILD on a class would mutate the
running process) the change is undone and the file refused. A refusal lists
every global the file needs that is not trusted (found by a static walk of
the opcodes that executes nothing) and the exact `--trust` that would allow it.

Allowed is not unconditional: callables that are safe only with some
arguments are handed out as guarded stand-ins (`_GUARDS`): allocations are
bounded by what the file holds, file handlers must not open their file at
load, classes numpy and torch rebuild from are not callable directly. And
before anything is built, tuples nested deep enough to crash CPython's
hash are refused (`tuple_depth`).
"""

from __future__ import annotations

import importlib
import io
import inspect
import logging
import operator
import pickle
import pickletools
import queue
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .errors import CheckpointError, UnsafeCheckpointError
from .graph import global_name

DENIED_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "importlib", "runpy",
    "socket", "_socket", "ssl", "shutil", "pickle", "_pickle", "pickletools", "copyreg", "marshal", "ctypes",
    "_ctypes", "code", "codeop", "pty", "webbrowser", "io", "_io", "types", "inspect", "gc", "asyncio",
    "multiprocessing", "concurrent.futures.process", "signal", "tempfile", "shelve", "dbm", "sqlite3",
    "urllib", "http", "ftplib", "smtplib", "telnetlib", "imaplib", "poplib", "xmlrpc", "zipimport", "pkgutil",
    "site", "builtins.open", "dill", "cloudpickle", "joblib", "yaml", "_thread.start_new_thread", "platform",
    "timeit", "pdb", "bdb", "trace", "cProfile", "profile", "threading.Thread", "threading.Timer",
    "numpy.load", "numpy.loads", "numpy.lib.npyio", "numpy.lib.format", "numpy.fromfile", "numpy.memmap",
    "numpy.loadtxt", "numpy.genfromtxt", "numpy.save", "numpy.savez", "numpy.savetxt", "numpy.ctypeslib",
    "numpy.f2py", "numpy.distutils", "numpy.testing", "torch.load", "torch.save", "torch.serialization",
    "torch.storage._load_from_bytes", "torch.hub", "torch.jit", "torch.package", "torch.utils.cpp_extension",
    "torch._C._load_for_lite_interpreter", "torch.ops", "logging.config", "logging.handlers.SocketHandler",
    "logging.handlers.DatagramHandler", "logging.handlers.SysLogHandler", "logging.handlers.SMTPHandler",
    "logging.handlers.HTTPHandler", "logging.handlers.NTEventLogHandler", "operator.attrgetter",
    "operator.methodcaller", "functools.reduce", "builtins.eval", "builtins.exec", "builtins.compile",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.__import__", "builtins.breakpoint",
    "builtins.input", "builtins.globals", "builtins.locals", "builtins.vars", "builtins.help", "builtins.exit",
    "builtins.quit", "builtins.memoryview", "builtins.super", "builtins.classmethod", "builtins.staticmethod",
    "builtins.property", "collections.namedtuple", "re.sub", "re.subn",
})
"""Dotted prefixes that are refused even when trusted: `os` covers `os.system` and `os.path.join`."""

ALLOWED = frozenset({
    "builtins.complex", "builtins.slice", "builtins.object", "builtins.Ellipsis", "builtins.NotImplemented",
    "builtins.frozenset", "builtins.set", "builtins.bytearray", "builtins.bytes",
    "functools.partial", "re._compile", "re.compile",
    "collections.OrderedDict", "collections.defaultdict", "collections.deque", "collections.Counter",
    "collections.ChainMap", "datetime.date", "datetime.time", "datetime.datetime", "datetime.timedelta",
    "datetime.timezone", "decimal.Decimal", "fractions.Fraction", "uuid.UUID", "enum.Enum",
    "pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "logging.getLogger", "logging.Formatter", "logging.Filter", "logging.PercentStyle",
    "logging.StrFormatStyle", "logging.StringTemplateStyle", "logging.NullHandler", "logging.Handler",
    "logging.StreamHandler", "logging.FileHandler", "logging.handlers.RotatingFileHandler",
    "logging.handlers.TimedRotatingFileHandler", "logging.handlers.WatchedFileHandler",
    "logging.handlers.QueueHandler", "logging.handlers.MemoryHandler", "logging.handlers.BufferingHandler",
    "numpy.ndarray", "numpy.dtype", "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer", "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar", "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray",
    "numpy.ma.MaskedArray",
    "numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState", "numpy.random._pcg64.PCG64", "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox", "numpy.random._sfc64.SFC64",
    # Handed out only through the guards below: type(x) with one argument
    # (pickle writes NoneType as type(None)), iter(x) with one argument.
    "builtins.type", "builtins.iter",
    # torch tensors as ckpt writes them (core/tensors.py), and parameters.
    "torch.as_strided", "torch.frombuffer", "torch.empty", "torch._tensor._rebuild_from_type_v2",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.Tensor",
    "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer", "torch.Size", "torch.device",
    *(f"torch.{dtype}" for dtype in (
        "float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "bool", "int8",
        "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2",
        "half", "float", "double", "long", "int", "short", "cfloat", "cdouble")),
    *(f"torch.{layout}" for layout in ("strided", "contiguous_format", "channels_last", "preserve_format")),
})
"""Globals any checkpoint may use: constructors of plain data. The catalog adds its own."""

CLASS_PREFIXES = ("torch.nn.modules.",)
"""Packages whose *classes* any checkpoint may use (torch's layers are plain
data holders); functions there still need trust."""


def _catalog_globals() -> frozenset[str]:
    """What the catalog's rewraps write: the rewrapped classes and their helpers."""
    names: set[str] = set()
    for kind in catalog.KINDS:
        if kind.action is catalog.Action.REWRAP:
            names.update(kind.types)
        names.update(kind.emits)
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    """Which globals a load may use, beyond `ALLOWED` and the catalog's."""

    trust: tuple[str, ...] = ()
    signed_globals: frozenset[str] = frozenset()

    def verdict(self, dotted: str) -> str | None:
        """None if `dotted` (module.qualname) may be loaded, else why not."""
        parts = dotted.split(".")
        if any(p.startswith("__") and p.endswith("__") for p in parts):
            return "denied"
        if any(".".join(parts[:i]) in DENIED_MODULES for i in range(1, len(parts) + 1)):
            return "denied"
        if dotted in ALLOWED or dotted in _CATALOG or dotted in self.signed_globals:
            return None
        if dotted.startswith(CLASS_PREFIXES):
            return None  # find_class checks that it is a class
        if any(dotted == t or dotted.startswith(t + ".") for t in self.trust):
            return None
        return "untrusted"


_CATALOG = _catalog_globals()


@dataclass(frozen=True)
class Refusal:
    name: str
    reason: str  # "denied" or "untrusted"


def refuse(refusals: Iterable[Refusal], what: str) -> UnsafeCheckpointError:
    """One line: what is denied or untrusted, and the --trust that would help."""
    refusals = sorted(set(refusals), key=lambda r: r.name)
    denied = [_printable(r.name) for r in refusals if r.reason == "denied"]
    untrusted = [r.name for r in refusals if r.reason == "untrusted"]
    if denied:
        return UnsafeCheckpointError(
            f"refusing to load {what}: it references {', '.join(denied)}, which ckpt never loads "
            "(the file is malicious or was not written by ckpt)"
        )
    packages = sorted({name.split(".")[0] for name in untrusted if name.split(".")[0].isidentifier()})
    flags = " ".join(f"--trust {p}" for p in packages)
    return UnsafeCheckpointError(
        f"refusing to load {what}: it needs {len(untrusted)} untrusted global(s): "
        f"{', '.join(_printable(name) for name in untrusted)}",
        hint=f"if you trust that code, pass {flags}, or list it under trust in [tool.ckpt]" if flags else None,
    )


# --- the static walk (executes nothing) -------------------------------------


MAX_TUPLE_DEPTH = 10_000
"""Tuples nested deeper than this are refused before anything is built:
hashing one recurses in C without a limit and crashes the interpreter
(around 100,000 levels). pickle itself cannot write more than about
`sys.getrecursionlimit()` levels, so no file ckpt wrote comes near."""


@dataclass(frozen=True)
class StaticGlobals:
    names: tuple[str, ...]
    oddities: tuple[str, ...] = ()  # computed names, extension codes, persistent ids, deep nesting


def referenced_globals(data: bytes | bytearray | memoryview) -> StaticGlobals:
    """Every global the pickle would ask for, by simulating its stack and
    memo for strings only. Nothing is imported or called."""
    names: dict[str, None] = {}
    oddities: dict[str, None] = {}
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    marks: list[int] = []
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(bytes(data))):
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, qualname = str(arg).partition(" ")
                names[f"{module}.{qualname}"] = None
            elif name == "STACK_GLOBAL":
                qualname, module = (stack.pop() if stack else None), (stack.pop() if stack else None)
                if isinstance(module, str) and isinstance(qualname, str):
                    names[f"{module}.{qualname}"] = None
                else:
                    oddities["a global whose name is computed at load time"] = None
                stack.append(None)
                continue
            elif name.startswith("EXT"):
                oddities[f"extension code {arg} (copyreg registry)"] = None
            elif name in ("PERSID", "BINPERSID"):
                oddities["a persistent id (ckpt never resolves them)"] = None
            _simulate(op, arg, stack, memo, marks)
    except Exception as exc:  # a malformed stream: report what was seen
        oddities[f"malformed pickle ({_one_line(str(exc))})"] = None
    depth = tuple_depth(data)
    if depth > MAX_TUPLE_DEPTH:
        oddities[f"tuples nested {depth:,} levels deep (more than {MAX_TUPLE_DEPTH:,})"] = None
    return StaticGlobals(tuple(names), tuple(oddities))


def _simulate(op: pickletools.OpcodeInfo, arg: Any, stack: list[Any], memo: dict[int, Any], marks: list[int]) -> None:
    """Track strings through the stack and memo; everything else is None."""
    name = op.name
    if name == "MARK":
        marks.append(len(stack))
        return
    if name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1] if stack else None
        return
    before = op.stack_before
    if pickletools.markobject in before:
        del stack[marks.pop() if marks else 0 :]
        before = before[: before.index(pickletools.markobject)]  # APPENDS and SETITEMS: the container stays
    for _ in before:
        if stack:
            stack.pop()
    if name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(arg))
        return
    pushed = len(op.stack_after)
    stack.extend([arg if isinstance(arg, str) and "UNICODE" in name else None] * pushed)


# --- how deep tuples nest: one fast pass over the opcodes ------------------
#
# A tuple's hash hashes its items, recursively, with no recursion limit. The
# walk tracks, for every stack entry, how many tuples deep it reaches, with
# rules that can only overestimate: a tuple (TUPLE*, and OBJ / INST, whose
# result may be a tuple subclass holding the stack items) is one deeper than
# what it holds; a call (REDUCE, NEWOBJ) is as deep as its argument tuple;
# lists, dicts, sets and objects given state are as deep as what they hold.

_PUSH, _MARK, _TUPLE, _MARK_TUPLE, _COLLECT, _EXTEND, _MERGE1, _MERGE2, _CALL, _CALL_EX, _POP, _POP_MARK, \
    _DUP, _PUT, _MEMOIZE, _GET, _REPLACE, _KEEP, _STOP, _STACK_GLOBAL, _EMPTY_TUPLE = range(21)

_EFFECTS = {
    "MARK": _MARK, "TUPLE1": _TUPLE, "TUPLE2": _TUPLE, "TUPLE3": _TUPLE, "TUPLE": _MARK_TUPLE, "OBJ": _MARK_TUPLE,
    "INST": _MARK_TUPLE, "LIST": _COLLECT, "DICT": _COLLECT, "FROZENSET": _COLLECT, "APPENDS": _EXTEND,
    "SETITEMS": _EXTEND, "ADDITEMS": _EXTEND, "APPEND": _MERGE1, "BUILD": _MERGE1, "SETITEM": _MERGE2,
    "REDUCE": _CALL, "NEWOBJ": _CALL, "NEWOBJ_EX": _CALL_EX, "POP": _POP, "POP_MARK": _POP_MARK, "DUP": _DUP,
    "PUT": _PUT, "BINPUT": _PUT, "LONG_BINPUT": _PUT, "MEMOIZE": _MEMOIZE, "GET": _GET, "BINGET": _GET,
    "LONG_BINGET": _GET, "BINPERSID": _REPLACE, "STACK_GLOBAL": _STACK_GLOBAL, "READONLY_BUFFER": _KEEP,
    "PROTO": _KEEP, "FRAME": _KEEP, "STOP": _STOP, "EMPTY_TUPLE": _EMPTY_TUPLE,
}
_TUPLE_SIZES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_OPCODE_TABLE = {
    op.code.encode("latin-1")[0]: (
        op.arg.n if op.arg is not None else 0,
        2 if op.name in ("GLOBAL", "INST") else 1,  # lines of a newline-terminated argument
        _EFFECTS.get(op.name, _PUSH),
        _TUPLE_SIZES.get(op.name, 0),
    )
    for op in pickletools.opcodes
}
_LENGTH_BYTES = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def tuple_depth(data: Any) -> int:
    """How deep tuples nest in the pickle, at most. Nothing is built: a
    malformed stream just ends the walk (the unpickler refuses it later)."""
    raw = bytes(data)
    stack: list[int] = []
    marks: list[int] = []
    memo: dict[int, int] = {}
    deepest = 0
    i, end = 0, len(raw)
    try:
        while i < end:
            n, lines, effect, size = _OPCODE_TABLE[raw[i]]
            start = i = i + 1
            if n >= 0:
                i += n
            elif n == pickletools.UP_TO_NEWLINE:
                for _ in range(lines):
                    i = raw.index(b"\n", i) + 1
            else:
                width = _LENGTH_BYTES[n]
                i += width + int.from_bytes(raw[i : i + width], "little")
            if effect == _PUSH:
                stack.append(0)
            elif effect == _PUT or effect == _MEMOIZE or effect == _GET:
                key = len(memo) if effect == _MEMOIZE else _memo_key(raw, start, i, n)
                if effect == _GET:
                    stack.append(memo.get(key, 0))
                else:
                    memo[key] = stack[-1]
            elif effect == _TUPLE or effect == _MARK_TUPLE:
                cut = marks.pop() if effect == _MARK_TUPLE else len(stack) - size
                depth = 1 + max(stack[cut:], default=0)
                del stack[cut:]
                stack.append(depth)
                deepest = max(deepest, depth)
            else:
                _apply(effect, stack, marks)
                if effect == _STOP:
                    break
    except (IndexError, KeyError, ValueError):
        pass
    return deepest


def _memo_key(raw: bytes, start: int, stop: int, n: int) -> int:
    if n == pickletools.UP_TO_NEWLINE:
        return int(raw[start : stop - 1])
    return int.from_bytes(raw[start:stop], "little")


def _apply(effect: int, stack: list[int], marks: list[int]) -> None:
    """The opcodes that neither push a constant, nor touch the memo, nor build a tuple."""
    if effect == _MARK:
        marks.append(len(stack))
    elif effect == _COLLECT or effect == _EXTEND or effect == _POP_MARK:
        cut = marks.pop()
        held = max(stack[cut:], default=0)
        del stack[cut:]
        if effect == _COLLECT:
            stack.append(held)
        elif effect == _EXTEND:
            stack[-1] = max(stack[-1], held)
    elif effect == _MERGE1 or effect == _MERGE2 or effect == _CALL:
        count = 2 if effect == _MERGE2 else 1
        held = max(stack[-count:])
        del stack[-count:]
        stack[-1] = max(stack[-1], held)
    elif effect == _CALL_EX:
        held = max(stack[-2], stack[-1] + 1)  # keyword arguments become the object's items
        del stack[-2:]
        stack[-1] = max(stack[-1], held)
    elif effect == _POP or effect == _STOP:
        stack.pop()
    elif effect == _DUP:
        stack.append(stack[-1])
    elif effect == _STACK_GLOBAL:
        del stack[-2:]
        stack.append(0)
    elif effect == _REPLACE:
        stack[-1] = 0
    elif effect == _EMPTY_TUPLE:
        stack.append(1)


def _one_line(message: str) -> str:
    """An error message from a library, on one line (pickle's own span two)."""
    return _printable(" ".join(message.split()))


def _printable(text: str) -> str:
    """Text from a file, safe on one terminal line: control characters escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# --- the restricted unpickler -------------------------------------------------


@dataclass
class _Handed:
    """What find_class gave out, to detect state applied to it."""

    objects: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    def remember(self, obj: Any) -> None:
        if id(obj) not in self.objects and isinstance(obj, (type, types.FunctionType, logging.Logger)):
            self.objects[id(obj)] = (obj, _state_of(obj))

    def undo_changes(self) -> list[str]:
        """Put back anything the load changed on what it was handed; name it."""
        changed = []
        for obj, before in self.objects.values():
            if _identities(_state_of(obj)) != _identities(before):
                _restore(obj, before)
                changed.append(global_name(obj) or repr(obj))
        return changed


_FUNCTION_STATE = ("__defaults__", "__kwdefaults__", "__code__", "__closure__")


def _state_of(obj: Any) -> dict[str, Any]:
    """Its attributes (by identity: comparing values could run their __eq__)."""
    state = dict(vars(obj))
    if isinstance(obj, types.FunctionType):
        state.update({name: getattr(obj, name) for name in _FUNCTION_STATE})
    return state


def _identities(state: dict[str, Any]) -> dict[str, int]:
    return {key: id(value) for key, value in state.items()}


def _restore(obj: Any, before: dict[str, Any]) -> None:
    for key in set(vars(obj)) - set(before):
        delattr(obj, key)
    for key, value in before.items():
        if key != "__closure__" and getattr(obj, key, _MISSING) is not value:
            setattr(obj, key, value)


_MISSING = object()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, policy: Policy, buffers: Iterable[Any] | None, limit: int) -> None:
        super().__init__(file, buffers=buffers)
        self.policy = policy
        self.handed = _Handed()
        self.refused: list[Refusal] = []
        self.missing: str | None = None
        self.limit = limit
        """Bytes a single call may allocate: what the file itself could hold, times 8."""
        self._construct_only: dict[int, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        reason = self.policy.verdict(dotted)
        if reason is not None:
            self.refused.append(Refusal(dotted, reason))
            raise _Refused(dotted)
        obj = self._resolve(module, name)
        if dotted.startswith(CLASS_PREFIXES) and not isinstance(obj, type) and not self._trusted(dotted):
            self.refused.append(Refusal(dotted, "untrusted"))
            raise _Refused(dotted)
        if isinstance(obj, types.ModuleType):
            self.refused.append(Refusal(dotted, "denied"))
            raise _Refused(dotted)
        actual = global_name(obj) if hasattr(obj, "__qualname__") else None
        if actual is not None and actual != dotted and (why := self.policy.verdict(actual)) is not None:
            self.refused.append(Refusal(f"{dotted} (= {actual})", why))
            raise _Refused(dotted)
        self.handed.remember(obj)
        guard = _guard_for(obj)
        if guard is not None:
            return guard(obj, self)
        if dotted.startswith(CLASS_PREFIXES) and not self._trusted(dotted):
            return self._construct_only_class(obj)
        return obj

    def _trusted(self, dotted: str) -> bool:
        return any(dotted == t or dotted.startswith(t + ".") for t in self.policy.trust)

    def _construct_only_class(self, cls: type) -> type:
        """One stand-in per class and load (see `_construct_only`)."""
        if id(cls) not in self._construct_only:
            self._construct_only[id(cls)] = _construct_only(cls)
        return self._construct_only[id(cls)]

    def _resolve(self, module: str, name: str) -> Any:
        try:
            found: Any = importlib.import_module(module)
        except ImportError as exc:
            self.missing = exc.name or module
            raise
        for part in name.split("."):
            found = getattr(found, part)
        return found


class _Refused(Exception):
    pass


# --- guards: allowed callables that are safe only with some arguments ---------
#
# find_class hands out a stand-in instead of the real object; the stand-in
# checks the arguments, then calls the real one. A checkpoint that stores one
# of these objects as a plain value (not as something to call) gets the
# stand-in back: the price of judging every call the pickle makes.

Guard = Callable[[Any, _RestrictedUnpickler], Any]


def _refused_call(what: str) -> CheckpointError:
    return CheckpointError(f"data.pkl {what}; ckpt refuses it (the file is malicious or was not written by ckpt)")


def _one_argument_type(obj: Any, load: _RestrictedUnpickler) -> Callable[[Any], type]:
    def type_of(value: Any) -> type:
        cls = type(value)  # type(name, bases, dict) would create a class: never
        load.handed.remember(cls)  # a class the pickle did not name is still the process's own
        return cls

    return type_of


def _one_argument_iter(obj: Any, load: _RestrictedUnpickler) -> Callable[[Any], Any]:
    def iterate(iterable: Any) -> Any:
        return iter(iterable)  # iter(callable, sentinel) could loop forever: never

    return iterate


def _remembered_logger(obj: Any, load: _RestrictedUnpickler) -> Callable[..., logging.Logger]:
    def get_logger(name: str | None = None) -> logging.Logger:
        logger = logging.getLogger(name)
        load.handed.remember(logger)  # the process's own: state applied to it is undone
        return logger

    return get_logger


def _queue_refill_map(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """map() is written only to refill a SimpleQueue; any other function
    would let a small file make an unbounded number of calls."""

    def refill(function: Any, *iterables: Any) -> Any:
        if function is not queue.SimpleQueue.put:
            raise _refused_call("maps a function other than SimpleQueue.put over its data")
        return map(function, *iterables)

    return refill


def _sized(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """bytes(n) / bytearray(n) allocate n bytes: no more than the file could hold."""

    def build(*args: Any) -> Any:
        size = args[0] if args else 0
        if hasattr(type(size), "__index__") and operator.index(size) > load.limit:  # numpy ints too
            raise CheckpointError(f"data.pkl asks for a {operator.index(size)}-byte buffer, more than the file holds")
        return obj(*args)

    return build


def _integers_only(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """Fraction('1e999999999') computes a number with a billion digits: only
    the (numerator, denominator) integers pickle writes are accepted."""

    def build(*args: Any) -> Any:
        if not all(type(a) is int for a in args):
            raise _refused_call(f"builds a {global_name(obj)} from something other than integers")
        return obj(*args)

    return build


def _no_debug_flag(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """re.DEBUG makes compiling a pattern print to stdout: dropped."""

    def compile_pattern(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(flags, int):
            flags &= ~re.DEBUG
        return obj(pattern, flags)

    return compile_pattern


def _delayed_open(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
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


def _check_allocation(nbytes: int, load: _RestrictedUnpickler) -> None:
    if nbytes > load.limit:
        raise CheckpointError(f"data.pkl asks for an array of {nbytes} bytes, more than the file holds")


class _ArgumentOnly:
    """numpy.ndarray, MaskedArray and torch.Tensor reach a checkpoint only as
    arguments of their rebuild functions; called directly, they allocate any
    shape. The stand-in refuses calls and cannot be changed."""

    __slots__ = ("wrapped",)

    def __init__(self, wrapped: Any) -> None:
        object.__setattr__(self, "wrapped", wrapped)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refused_call(f"sets {name!r} on {global_name(self.wrapped)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refused_call(f"calls {global_name(self.wrapped)} directly")

    def __repr__(self) -> str:
        return f"<{global_name(self.wrapped)}, as loaded by ckpt>"


def _argument_only(obj: Any, load: _RestrictedUnpickler) -> _ArgumentOnly:
    return _ArgumentOnly(obj)


def _unwrap(value: Any) -> Any:
    return value.wrapped if isinstance(value, _ArgumentOnly) else value


def _bounded_reconstruct(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """numpy's `_reconstruct(cls, shape, dtype)` allocates: keep it within the file's size."""

    def build(cls: Any, shape: Any, dtype: Any) -> Any:
        _check_allocation(_elements(shape) * _numpy_itemsize(dtype), load)
        return obj(_unwrap(cls), shape, dtype)

    return build


def _bounded_mareconstruct(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """numpy.ma's `_mareconstruct(subtype, baseclass, baseshape, basetype)` allocates too."""

    def build(subtype: Any, baseclass: Any, baseshape: Any, basetype: Any) -> Any:
        _check_allocation(_elements(baseshape) * _numpy_itemsize(basetype), load)
        return obj(_unwrap(subtype), _unwrap(baseclass), baseshape, basetype)

    return build


def _bounded_empty(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """torch.empty(*size) allocates: ckpt writes it only for empty storages."""

    def build(*size: Any, **kwargs: Any) -> Any:
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        itemsize = getattr(kwargs.get("dtype"), "itemsize", 8)
        _check_allocation(_elements(shape) * max(int(itemsize), 1), load)
        return obj(*size, **kwargs)

    return build


def _unwrapping(obj: Any, load: _RestrictedUnpickler) -> Callable[..., Any]:
    """torch's `_rebuild_from_type_v2(func, new_type, args, state)` takes the class as an argument."""

    def build(func: Any, new_type: Any, args: Any, state: Any) -> Any:
        return obj(func, _unwrap(new_type), args, state)

    return build


def _construct_only(cls: type) -> type:
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


def _guard_for(obj: Any) -> Guard | None:
    for dotted, guard in _GUARDS:
        module, _, name = dotted.rpartition(".")
        loaded = sys.modules.get(module)
        if loaded is not None and getattr(loaded, name, None) is obj:
            return guard
    return None


def unpickle(data: Any, *, policy: Policy, buffers: Iterable[Any] | None = None, what: str = "data.pkl") -> Any:
    """Unpickle `data` under `policy`; raises UnsafeCheckpointError or CheckpointError."""
    return unpickle_counted(data, policy=policy, buffers=buffers, what=what)[0]


def unpickle_counted(
    data: Any, *, policy: Policy, buffers: Iterable[Any] | None = None, what: str = "data.pkl"
) -> tuple[Any, int]:
    """`unpickle`, and how many objects the pickle's memo held."""
    if (depth := tuple_depth(data)) > MAX_TUPLE_DEPTH:
        raise CheckpointError(
            f"refusing {what}: it nests tuples {depth:,} levels deep (ckpt loads at most {MAX_TUPLE_DEPTH:,}; "
            "hashing deeper ones crashes Python)"
        )
    limit = max(len(memoryview(data)), 1) * 8 + sum(memoryview(b).nbytes for b in (buffers or ()))
    unpickler = _RestrictedUnpickler(io.BytesIO(data), policy, buffers, limit)
    try:
        obj = unpickler.load()
    except _Refused:
        raise _refusal(data, policy, unpickler.refused, what) from None
    except ImportError:
        raise CheckpointError(
            f"cannot load {what}: it needs module {unpickler.missing!r}, which is not installed here"
        ) from None
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"cannot load {what}: it is nested too deeply") from None
    except MemoryError:
        raise CheckpointError(f"cannot load {what}: it needs more memory than is available") from None
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {_one_line(str(exc))}") from None
    finally:
        changed = unpickler.handed.undo_changes()
    if changed:
        raise UnsafeCheckpointError(
            f"refusing {what}: it tried to change {', '.join(changed)} in the running process (undone)"
        )
    return obj, len(unpickler.memo.copy())


def _refusal(data: Any, policy: Policy, seen: list[Refusal], what: str) -> UnsafeCheckpointError:
    """Name every global the file needs that the policy refuses, not just the first."""
    static = referenced_globals(data)
    refusals = set(seen)
    for name in static.names:
        reason = policy.verdict(name)
        if reason is not None:
            refusals.add(Refusal(name, reason))
    return refuse(refusals, what)
