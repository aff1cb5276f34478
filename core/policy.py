"""Who may be loaded: the globals a checkpoint may ask for.

Every global a pickle names is judged by its dotted name before anything is
imported, and again by what it resolves to:

- always denied, whatever is trusted: process, file, network and import
  machinery, evaluators, other deserializers (`DENIED_MODULES`);
- allowed: safe builtins, collections, datetime, decimal, numpy's and
  torch's rebuild functions, the catalog's constructors (`ALLOWED` and the
  catalog rows), and the classes of `CLASS_PREFIXES` packages;
- trusted by the user: `--trust MODULE` (and its submodules), or the
  manifest's globals when its HMAC signature verifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from . import catalog
from .errors import UnsafeCheckpointError, printable

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

MAIN_MODULES = ("__main__", "__mp_main__")
"""A script's own module: its classes load when it is trusted (`--trust __main__`)."""

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
        """None if `dotted` (module.qualname) may be loaded, else why not.

        Dunder names (`__class__`, `__globals__`, `__subclasses__`) reach into
        the interpreter and are never loaded; the one dunder module, a
        script's `__main__`, can be trusted like any other."""
        parts = dotted.split(".")
        if any(p.startswith("__") and p.endswith("__") for p in parts[1:] if p) or (
            parts[0].startswith("__") and parts[0] not in MAIN_MODULES
        ):
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
    denied = [printable(r.name) for r in refusals if r.reason == "denied"]
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
        f"{', '.join(printable(name) for name in untrusted)}",
        hint=f"if you trust that code, pass {flags}, or list it under trust in [tool.ckpt]" if flags else None,
    )
