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
to. A module is never returned. Classes and functions handed out are
snapshotted, and if the pickle applied state to one of them (BUILD on a
class would mutate the running process) the change is undone and the file
refused. A refusal lists every global the file needs that is not trusted
(found by a static walk of the opcodes that executes nothing) and the exact
`--trust` that would allow it.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
import pickletools
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
    "copyreg._reconstructor", "functools.partial", "re._compile", "re.compile",
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
    "numpy.random._pickle.__generator_ctor", "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState", "numpy.random._pcg64.PCG64", "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox", "numpy.random._sfc64.SFC64", "numpy.random.bit_generator.SeedSequence",
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
"""Globals any checkpoint may use: constructors of plain data. The catalog adds its own."""


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
    denied = [r.name for r in refusals if r.reason == "denied"]
    untrusted = [r.name for r in refusals if r.reason == "untrusted"]
    if denied:
        return UnsafeCheckpointError(
            f"refusing to load {what}: it references {', '.join(denied)}, which ckpt never loads "
            "(the file is malicious or was not written by ckpt)"
        )
    packages = sorted({name.split(".")[0] for name in untrusted})
    flags = " ".join(f"--trust {p}" for p in packages)
    return UnsafeCheckpointError(
        f"refusing to load {what}: it needs {len(untrusted)} untrusted global(s): {', '.join(untrusted)}",
        hint=f"if you trust that code, pass {flags}, or list it under trust in [tool.ckpt]",
    )


# --- the static walk (executes nothing) -------------------------------------


@dataclass(frozen=True)
class StaticGlobals:
    names: tuple[str, ...]
    oddities: tuple[str, ...] = ()  # computed names, extension codes, persistent ids


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
        oddities[f"malformed pickle ({exc})"] = None
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
    if pickletools.markobject in op.stack_before:
        del stack[marks.pop() if marks else 0 :]
    else:
        for _ in op.stack_before:
            if stack:
                stack.pop()
    if name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(arg))
        return
    pushed = len(op.stack_after)
    stack.extend([arg if isinstance(arg, str) and "UNICODE" in name else None] * pushed)


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
        self._limit = limit
        self._guards = _guards()

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        reason = self.policy.verdict(dotted)
        if reason is not None:
            self.refused.append(Refusal(dotted, reason))
            raise _Refused(dotted)
        obj = self._resolve(module, name)
        if dotted.startswith(CLASS_PREFIXES) and not isinstance(obj, type) and self.policy.verdict(dotted) is None:
            if not any(dotted == t or dotted.startswith(t + ".") for t in self.policy.trust):
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
        if obj is logging.getLogger:
            return self._get_logger
        guard = self._guards.get(id(obj))
        return obj if guard is None else guard(obj, self._limit)

    def _get_logger(self, name: str | None = None) -> logging.Logger:
        """Loggers are the process's own: remember them, so state applied to one is undone."""
        logger = logging.getLogger(name)
        self.handed.remember(logger)
        return logger

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


def _one_argument_type(obj: Any, limit: int) -> Callable[[Any], type]:
    def type_of(value: Any) -> type:
        return type(value)  # type(name, bases, dict) would create a class: never

    return type_of


def _one_argument_iter(obj: Any, limit: int) -> Callable[[Any], Any]:
    def iterate(iterable: Any) -> Any:
        return iter(iterable)  # iter(callable, sentinel) could loop forever: never

    return iterate


def _sized(obj: Any, limit: int) -> Callable[..., Any]:
    """bytes(n) / bytearray(n) allocate n bytes: no more than the file could hold."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int) and args[0] > limit:
            raise CheckpointError(f"data.pkl asks for a {args[0]}-byte buffer, more than the file holds")
        return obj(*args)

    return build


def _bounded_reconstruct(obj: Any, limit: int) -> Callable[..., Any]:
    """numpy's `_reconstruct(cls, shape, dtype)` allocates: keep it within the file's size."""

    def build(cls: Any, shape: Any, dtype: Any) -> Any:
        count = 1
        for n in shape if isinstance(shape, tuple) else (shape,):
            count *= int(n)
        if count > limit:
            raise CheckpointError(f"data.pkl asks for an array of {count} elements, more than the file holds")
        return obj(cls, shape, dtype)

    return build


def _guards() -> dict[int, Callable[[Any, int], Any]]:
    """Wrappers for the allowed callables that are only safe with some arguments."""
    guards: dict[int, Callable[[Any, int], Any]] = {
        id(type): _one_argument_type, id(iter): _one_argument_iter, id(bytes): _sized, id(bytearray): _sized,
    }
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        reconstruct = getattr(sys.modules.get(module), "_reconstruct", None)
        if reconstruct is not None:
            guards[id(reconstruct)] = _bounded_reconstruct
    return guards


def unpickle(data: Any, *, policy: Policy, buffers: Iterable[Any] | None = None, what: str = "data.pkl") -> Any:
    """Unpickle `data` under `policy`; raises UnsafeCheckpointError or CheckpointError."""
    return unpickle_counted(data, policy=policy, buffers=buffers, what=what)[0]


def unpickle_counted(
    data: Any, *, policy: Policy, buffers: Iterable[Any] | None = None, what: str = "data.pkl"
) -> tuple[Any, int]:
    """`unpickle`, and how many objects the pickle's memo held."""
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
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {exc}") from None
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
