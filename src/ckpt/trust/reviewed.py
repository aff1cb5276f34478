"""The reviewed table: every global any checkpoint may use without --trust.

One entry per exact name (`module:qualname`), each with what the file may do
with it and a one-line reason, the way fickling keeps its allowlist: the
stdlib data types, numpy, pandas, scipy.sparse and torch reconstructors, and
(read from the catalog's rows) what its rewraps write. A few *rules* cover families too large to
list and uniform enough to judge by what they resolve to (torch's layers and
optimizers, numpy's scalar types and ufuncs, stdlib enum members, builtin
exceptions, Cython's generated `__pyx_unpickle_<Class>` reconstructors).

What an entry permits: see `entries`.
Nothing here is callable because of its name alone: `policy` resolves each
name and checks it is the object reviewed.
"""

from __future__ import annotations

import sys
from typing import Any

from ckpt.kinds.catalog import admitted_entries
from ckpt.trust.entries import CLASS, CONSTANT, FUNCTION, Entry, classes, functions


def _numpy_core(name: str, kind: str, reason: str, **options: Any) -> list[Entry]:
    """numpy 2 writes numpy._core.*, numpy 1 wrote numpy.core.*: both name the same object."""
    return [Entry(f"{package}.{name}", kind, reason, **options) for package in ("numpy._core", "numpy.core")]


_TORCH_DTYPES = ("float16 float32 float64 bfloat16 complex32 complex64 complex128 bool int8 int16 int32 int64 uint8 "
                 "uint16 uint32 uint64 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz")
"""By the names pickle writes (torch.float is torch.float32, written as float32)."""

ENTRIES: tuple[Entry, ...] = (
    # --- builtins ---------------------------------------------------------
    Entry("builtins:slice", CLASS, "a slice; of plain bounds only (a chain of slices would crash when freed)",
          call=True, guard="flat_slice"),
    *classes("builtins", "int float complex bool str list dict tuple set frozenset object range",
              "a builtin data type; calling it builds plain data from plain data", call=True),
    *classes("builtins", "bytes bytearray", "a builtin data type; its size is bounded by the file", call=True,
              guard="sized"),
    Entry("builtins:type", CLASS, "only as pickle writes NoneType, NotImplementedType and ellipsis: "
          "type(None); the guard refuses any other call", call=True, fresh=False, guard="singleton_type"),
    Entry("builtins:NotImplemented", CONSTANT, "a singleton"),
    Entry("builtins:Ellipsis", CONSTANT, "a singleton"),
    Entry("builtins:getattr", FUNCTION, "only as pickle names a method of a class: getattr(an admitted class, name) "
          "is the global module:Class.name, admitted or refused as that name (zoneinfo's ZoneInfo._unpickle); "
          "never an attribute of an object the file built", fresh=False),
    # --- collections, functools, types, io --------------------------------
    *classes("collections", "OrderedDict defaultdict deque Counter ChainMap UserDict UserList UserString",
              "a container; its constructor stores what it is given", call=True),
    Entry("functools:partial", CLASS, "a call to come, as ckpt writes keyword arguments (a file handler, a tensor's "
          "dtype): the data-only unpickler keeps it as the call it spells, of an admitted function, and no "
          "partial reaches the loaded object", call=True),
    Entry("types:SimpleNamespace", CLASS, "an attribute bag", call=True),
    *classes("_io", "StringIO BytesIO", "an in-memory buffer; its state is its text or bytes"),
    # --- dates, numbers, identifiers, paths ---------------------------------
    *classes("datetime", "date time datetime timedelta timezone tzinfo", "a date or time value", call=True),
    Entry("decimal:Decimal", CLASS, "a decimal number; only from its text, of bounded length (converting a huge "
          "integer takes quadratic time)", call=True, guard="decimal_text"),
    Entry("decimal:Context", CLASS, "decimal arithmetic settings", call=True),
    *classes("decimal", "Clamped DivisionByZero Inexact InvalidOperation Overflow Rounded Subnormal Underflow "
              "FloatOperation", "a decimal signal, as a value (a Context's traps and flags)"),
    Entry("string:Template", CLASS, "a string template (logging's $-style formats hold one)"),
    Entry("fractions:Fraction", CLASS, "a rational number; only from two integers of bounded size", call=True,
          guard="integers_only"),
    Entry("uuid:UUID", CLASS, "an identifier"),
    *classes("ipaddress", "IPv4Address IPv6Address IPv4Network IPv6Network IPv4Interface IPv6Interface",
              "an address value", call=True),
    *classes("pathlib", "PurePath PurePosixPath PureWindowsPath Path PosixPath WindowsPath",
              "a path value; nothing is opened", call=True),
    *functions("re", "_compile compile", "compiles a pattern (re.DEBUG dropped: it prints)", guard="no_debug_flag"),
    Entry("re:Pattern", CLASS, "a compiled pattern, as a value"),
    Entry("zoneinfo:ZoneInfo", CLASS, "a time zone, looked up by key", call=True),
    Entry("zoneinfo:ZoneInfo._unpickle", FUNCTION, "looks up a time zone by key", fresh=False),
    *functions("time", "monotonic monotonic_ns time time_ns perf_counter perf_counter_ns process_time",
                "a clock, also as a value: called with any data it reads the time or raises (cachetools' TTLCache "
                "keeps one as its timer)", fresh=False, value=True),
    # --- http.cookiejar: every requests.Session and httpx.Client holds one ---
    *classes("http.cookiejar", "Cookie CookieJar FileCookieJar MozillaCookieJar LWPCookieJar DefaultCookiePolicy",
              "cookies and the policy for them: data (a jar's lock is rewrapped)"),
    # --- logging ------------------------------------------------------------
    Entry("logging:getLogger", FUNCTION, "the loading process's logger of that name (pickle's own spelling); one it "
          "does not have comes back detached, never registered", fresh=False, guard="existing_logger"),
    *classes("logging", "Formatter Filter PercentStyle StrFormatStyle StringTemplateStyle LogRecord",
              "logging configuration data"),
    *classes("logging", "Handler NullHandler", "a handler writing nowhere the file names (built from its state)"),
    *classes("logging.handlers", "QueueHandler MemoryHandler BufferingHandler",
              "a handler forwarding records in memory"),
    # --- numpy ----------------------------------------------------------------
    *_numpy_core("multiarray:_reconstruct", FUNCTION, "an empty array of a shape and dtype, within the file's size",
                 guard="bounded_reconstruct"),
    *_numpy_core("numeric:_frombuffer", FUNCTION, "an array over a buffer the file holds"),
    *_numpy_core("multiarray:scalar", FUNCTION, "a numpy scalar from its bytes"),
    Entry("numpy:dtype", CLASS, "a dtype; only as numpy pickles it (a copy, so its state is its own)", call=True,
          guard="dtype_copy"),
    Entry("numpy:ndarray", CLASS, "the array class, as an argument of its rebuild functions"),
    *classes("numpy.ma", "MaskedArray", "the masked array class, as an argument of its rebuild function"),
    Entry("numpy.ma.core:_mareconstruct", FUNCTION, "an empty masked array, within the file's size",
          guard="bounded_mareconstruct"),
    *functions("numpy.random._pickle", "__generator_ctor __randomstate_ctor",
                "a random generator of a named bit generator, state applied after", guard="bit_generator"),
    Entry("numpy.random._pickle:__bit_generator_ctor", FUNCTION, "a bit generator by its name, state applied after; "
          "also as a value, the constructor numpy's generator constructors are given", guard="bit_generator",
          value=True),
    *classes("numpy.random._pcg64", "PCG64 PCG64DXSM", "a bit generator"),
    *classes("numpy.random._mt19937", "MT19937", "a bit generator"),
    *classes("numpy.random._philox", "Philox", "a bit generator"),
    *classes("numpy.random._sfc64", "SFC64", "a bit generator"),
    *classes("numpy.random.bit_generator", "SeedSequence", "a seed sequence (rebuilt by its Cython reconstructor)"),
    # --- pandas (its classes need --trust pandas; its reconstructors are here) --
    Entry("pandas._libs.internals:_unpickle_block", FUNCTION, "a block of a DataFrame from its values"),
    Entry("pandas.core.indexes.base:_new_Index", FUNCTION, "an Index of an admitted Index class from its data",
          guard="admitted_class_argument"),
    Entry("pandas._libs.tslibs.timestamps:_unpickle_timestamp", FUNCTION, "a Timestamp from its value"),
    Entry("pandas._libs.tslibs.timedeltas:_timedelta_unpickle", FUNCTION, "a Timedelta from its value"),
    *functions("pandas._libs.tslibs.nattype", "_nat_unpickle __nat_unpickle", "pandas' NaT singleton", fresh=False),
    *classes("pandas.core.internals.managers", "BlockManager SingleBlockManager",
              "a DataFrame's or Series' blocks and axes: its constructor stores them", call=True),
    # --- torch -----------------------------------------------------------------
    Entry("torch:as_strided", FUNCTION, "a view of a tensor ckpt wrote (src/ckpt/kinds/tensors.py); bounds checked by torch; "
          "also as a value, the function _rebuild_from_type_v2 is given (its guard admits no other)", value=True),
    Entry("torch:from_numpy", FUNCTION, "a tensor sharing the memory of a numpy array the file holds (a storage's "
          "bytes, src/ckpt/kinds/tensors.py)"),
    Entry("torch._C:TensorBase.view", FUNCTION, "a storage's bytes seen as its dtype (src/ckpt/kinds/tensors.py); the guard "
          "admits a tensor and a dtype only", guard="dtype_view"),
    Entry("torch:frombuffer", FUNCTION, "a tensor over a buffer the file holds (how ckpt wrote a storage before "
          "format 2)"),
    Entry("torch:empty", FUNCTION, "an empty storage's tensor, within the file's size (before format 2)",
          guard="bounded_empty"),
    Entry("torch._tensor:_rebuild_from_type_v2", FUNCTION, "a tensor subclass or a tensor with attributes: calls "
          "torch.as_strided only", guard="tensor_rebuild"),
    Entry("torch._utils:_rebuild_parameter", FUNCTION, "a Parameter around a tensor"),
    Entry("torch._utils:_rebuild_parameter_with_state", FUNCTION, "a Parameter around a tensor, with attributes"),
    Entry("torch:Tensor", CLASS, "the tensor class, as an argument of its rebuild function"),
    Entry("torch:Size", CLASS, "a shape", call=True),
    Entry("torch:device", CLASS, "a device name", call=True),
    *(Entry(f"torch:{dtype}", CONSTANT, "a dtype") for dtype in _TORCH_DTYPES.split()),
    Entry("torch.serialization:_get_layout", FUNCTION, "looks a tensor layout up by its name (torch.strided)",
          fresh=False),
    *admitted_entries(),
)

BY_NAME: dict[str, Entry] = {entry.name: entry for entry in ENTRIES}

# --- rules: families judged by what a name resolves to ------------------------

STDLIB_ENUM_MODULES = frozenset({
    "signal", "http", "socket", "ssl", "re", "inspect", "uuid", "enum", "calendar", "pstats", "plistlib",
    "tkinter.constants", "ast", "logging", "concurrent.futures", "dis", "py_compile", "json",
})
"""Standard modules whose enum members (signal.Signals, http.HTTPStatus, ssl.TLSVersion ...) load without trust."""

CLASS_PACKAGES = {
    "torch.nn.modules": "torch's layers: instantiated and given their saved state, never called with file arguments",
    "torch.optim": "torch's optimizers and schedulers: instantiated and given their saved state",
    "scipy.sparse": "scipy's sparse matrices and arrays: data, rebuilt from their saved state",
}
"""Packages whose public classes load without trust, for instantiation and state only."""


def rule_modules(module: str) -> bool:
    """Whether a name in `module` may be judged by a rule (so `module` may be imported to look)."""
    return (module in ("builtins", "numpy") or module in STDLIB_ENUM_MODULES
            or any(module == p or module.startswith(p + ".") for p in CLASS_PACKAGES))


def by_rule(module: str, qualname: str, obj: Any) -> Entry | None:
    """The entry a rule makes for `obj` (found at module:qualname), or None."""
    name = f"{module}:{qualname}"
    public = not any(part.startswith("_") for part in qualname.split("."))
    if isinstance(obj, type):
        if module == "builtins" and issubclass(obj, BaseException):
            return Entry(name, CLASS, "a builtin exception; its constructor stores its arguments", call=True)
        if module == "numpy" and _is_numpy_scalar_type(obj):
            return Entry(name, CLASS, "a numpy scalar type", call=True)
        if module in STDLIB_ENUM_MODULES and _is_enum(obj):
            return enum_entry(name)
        for package, reason in CLASS_PACKAGES.items():
            if public and (module == package or module.startswith(package + ".")):
                return Entry(name, CLASS, reason)
    elif module == "numpy" and type(obj).__name__ == "ufunc" and getattr(obj, "__name__", None) == qualname:
        return Entry(name, CONSTANT, "a numpy ufunc, as a value")
    return None


def enum_entry(name: str) -> Entry:
    return Entry(name, CLASS, "an enum: calling it with one value looks a member up", call=True, fresh=False,
                 guard="enum_lookup")


def _is_enum(cls: type) -> bool:
    enum = sys.modules.get("enum")
    return enum is not None and issubclass(cls, enum.Enum)


def _is_numpy_scalar_type(cls: type) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and issubclass(cls, numpy.generic)


CYTHON_RECONSTRUCTOR = "__pyx_unpickle_"
"""Cython's generated `__pyx_unpickle_<Class>(cls, checksum, state)`: makes a
`<Class>` and sets its fields from `state`, nothing else. Admitted exactly
when `<Class>` of the same module is."""


def cython_class(qualname: str) -> str | None:
    return qualname[len(CYTHON_RECONSTRUCTOR):] if qualname.startswith(CYTHON_RECONSTRUCTOR) else None
