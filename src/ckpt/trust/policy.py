"""Who may be loaded, and for what: exact identity and roles, not a deny list.

A global is `module:qualname`. It is admitted by

- the reviewed table (`reviewed`): exact names and a few rules, no trust needed;
- `--trust PACKAGE` (or `trust = [...]`): the public *classes* defined in
  that package and its subpackages, never its functions;
- `--trust package.module:qualname`: that one class or function.

This is the data-only tier's policy: a file signed by a key the user trusts
never reaches it (`provenance`).

Nothing is imported before the name is admitted, and a module of a
package (not the standard library's) that is not imported yet is imported
only if its source defines the name (a module imported for its side
effects defines nothing a pickle can name). An admitted name is then
resolved: `module` imported, `qualname` walked through classes only (never
through a module attribute, a function or an instance), and the result must
be a class or function whose own `__module__` and `__qualname__` are the
name (reviewed names are checked against the object reviewed). Then every
use the stream makes of it (`stream`) must be one its role allows:

- a class is stored, instantiated (`cls.__new__(cls)`) and given state;
  `cls.__new__(cls, *args)` only if it declares `__getnewargs__`;
  `cls(*args)` only if its own reduction calls it (it defines `__reduce__`
  and does not override that class's constructor), or it is trusted by name;
- a function is called only when reviewed or trusted by name;
- an enum class is called with one value (a member lookup) and what it
  returns is the process's own member: it gets no state.

`judge` returns every refusal with the narrowest trust that would admit it:
loading, `inspect`, refusal hints and save's list of the trust a file needs
all come from it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.machinery
import importlib.util
import pkgutil
import sys
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckpt.errors import ConfigError, printable
from ckpt.kinds import byvalue
from ckpt.moved import current
from ckpt.trust import reviewed
from ckpt.trust.analysis import (
    CALL,
    INSTANCE_CALLED,
    NEW,
    NEW_ARGS,
    RESULT_USED,
    USE_NAMES,
    VALUE,
    StreamFacts,
)
from ckpt.trust.entries import CLASS, FUNCTION, Entry
from ckpt.trust.guards import guard_name

MAIN_MODULES = ("__main__", "__mp_main__")
"""A script's own module: trusted like any package (`--trust __main__`)."""


@dataclass(frozen=True)
class Trust:
    """What the user (or a signed manifest) trusts beyond the reviewed table."""

    packages: tuple[str, ...] = ()
    """Their public classes are admitted."""
    names: frozenset[str] = frozenset()
    """Exact `module:qualname`: that class or function, for every use."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Trust:
        packages, names = [], set()
        for entry in entries:
            entry = entry.strip()
            module, colon, qualname = entry.partition(":")
            if not _dotted(module) or (colon and not _dotted(qualname)):
                raise ConfigError(
                    f"trust {printable(entry)!r} is neither a package (mypkg) nor an exact name (mypkg.module:Class)"
                )
            if colon:
                names.add(current(entry))
            else:
                packages.append(current(entry))
        return cls(tuple(dict.fromkeys(packages)), frozenset(names))

    def __add__(self, other: Trust) -> Trust:
        return Trust(tuple(dict.fromkeys(self.packages + other.packages)), self.names | other.names)

    def package_of(self, module: str) -> str | None:
        return next((p for p in self.packages if module == p or module.startswith(p + ".")), None)


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def require_installed(trust: Trust) -> None:
    """Refuse (ConfigError) a trust entry whose top-level package is not
    installed: a typo, most likely, named with the installed names nearest
    it. Only `importlib.util.find_spec` of top-level names: nothing is imported."""
    for entry in (*trust.packages, *sorted(trust.names)):
        top = entry.partition(":")[0].partition(".")[0]
        if not top.isidentifier() or top in sys.modules or top in MAIN_MODULES:
            continue
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            names = _top_level_names()
            near = [names[n] for n in difflib.get_close_matches(top.lower(), sorted(names), n=3)]
            guess = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
            raise ConfigError(f"trust entry {printable(entry)!r}: no module or package {printable(top)!r} is "
                              f"installed here{guess}")


def _top_level_names() -> dict[str, str]:
    """What can be imported at the top level here (installed distributions'
    packages, modules on sys.path, the standard library), by lower-cased name."""
    import importlib.metadata  # only for a trust entry that names nothing installed: slow to import

    names = {*importlib.metadata.packages_distributions(), *(m.name for m in pkgutil.iter_modules()),
             *sys.builtin_module_names, *sys.stdlib_module_names}
    return {name.lower(): name for name in sorted(names) if not name.startswith("_")}


@dataclass(frozen=True)
class Admission:
    """A resolved global and what the file may do with it."""

    name: str
    obj: Any = field(repr=False)
    kind: str
    allowed: int
    fresh: bool
    guard: str | None
    source: str
    """Why it is admitted: a reviewed reason, or the trust entry."""
    uses: int = 0
    """What the stream does with it (`stream` bits)."""

    @property
    def handed(self) -> str | None:
        """The guard the loader hands out instead of the object: for calls only."""
        return self.guard if self.guard and (self.kind != CLASS or self.uses & CALL) else None


@dataclass(frozen=True)
class Refusal:
    name: str
    why: str
    trust: str | None
    """The narrowest --trust that admits it; None when nothing can."""


@dataclass(frozen=True)
class Judgement:
    admissions: dict[str, Admission]
    refusals: tuple[Refusal, ...]
    problems: tuple[str, ...]
    malformed: str | None = None
    code: tuple[str, ...] = ()
    """cloudpickle's reconstructors the stream names: it holds code saved by value."""

    @property
    def ok(self) -> bool:
        return not self.refusals and not self.problems

    def required(self) -> tuple[str, ...]:
        """The trust entries a file needs beyond the reviewed table."""
        return narrowest(r.trust for r in self.refusals if r.trust)


def judge(facts: StreamFacts, trust: Trust = Trust(), *, complete: bool = True, imports: bool = True) -> Judgement:
    """Admit or refuse every global of the stream for every use it makes of it.

    Not `complete` (a load): when some name is refused by name alone, only
    the names whose modules are imported already are resolved besides, so a
    file that will be refused imports nothing new. Not `imports` (inspect):
    a name whose module is not imported yet is judged by its name alone."""
    admissions: dict[str, Admission] = {}
    refusals: list[Refusal] = []
    names = facts.globals
    if not complete and facts.problems:
        names = {}
    elif not complete and not all(admissible(name, trust) for name in names):
        names = {name: uses for name, uses in names.items()
                 if not admissible(name, trust) or name.partition(":")[0] in sys.modules}
    for name, uses in names.items():
        found = _judged(name, trust, imports)
        if isinstance(found, Refusal):
            role = ", ".join(facts.uses(name)) or "named"
            why = f"({role}) {found.why}"
            if name.replace(":", ".") in trust.packages:  # the old, dotted spelling of an exact name
                why += f" (--trust {name.replace(':', '.')} names a package; one class or function is {name})"
            refusals.append(dataclasses.replace(found, why=why))
            continue
        found = dataclasses.replace(found, uses=uses, guard=guard_name(found.obj, found.guard))
        denied = uses & ~found.allowed
        if denied:
            refusals.append(_not_for(found, denied))
            continue
        if found.guard and found.kind == CLASS and uses & CALL and uses & (VALUE | NEW | NEW_ARGS):
            refusals.append(Refusal(name, "is both called (through a check of its arguments) and used as a class; "
                                    "ckpt cannot do both", None))
            continue
        admissions[name] = found
    code = tuple(name for name in facts.globals if byvalue.reconstructs_code(name))
    return Judgement(admissions, tuple(refusals), facts.problems, facts.malformed, code)


def _judged(name: str, trust: Trust, imports: bool) -> Admission | Refusal:
    """`admit` (or, for a module not imported when `imports` is off, `_by_name`)
    of the name as it is now (`moved.current`), named as the file names it."""
    now = current(name)
    found = admit(now, trust) if imports or now.partition(":")[0] in sys.modules else _by_name(now, trust)
    return found if now == name else dataclasses.replace(found, name=name)


def admissible(name: str, trust: Trust) -> bool:
    """Whether anything could admit `name`, judging by the name alone (nothing imported)."""
    module, _, qualname = current(name).partition(":")
    name = f"{module}:{qualname}"
    if not _dotted(module) or not _dotted(qualname) or _dunder(module, qualname):
        return False
    return bool(name in reviewed.BY_NAME or name in trust.names or trust.package_of(module)
                or reviewed.rule_modules(module) or reviewed.cython_class(qualname))


def admit(name: str, trust: Trust) -> Admission | Refusal:
    """Resolve `name` if anything admits it; importing only what is admitted."""
    module, _, qualname = name.partition(":")
    if not _dotted(module) or not _dotted(qualname) or _dunder(module, qualname):
        return Refusal(name, "is not a name ckpt ever loads", None)
    if byvalue.reconstructs_code(name):
        return Refusal(name, f"rebuilds {CODE_BY_VALUE}: it loads only from a signer you trust", None)
    if name in _WHOLE_ONLY:
        return Refusal(name, f"{_WHOLE_ONLY[name]}: it loads only from a signer you trust", None)
    entry = reviewed.BY_NAME.get(name)
    exact = name in trust.names
    package = trust.package_of(module)
    cython = reviewed.cython_class(qualname)
    if not admissible(name, trust):
        return Refusal(name, "is not trusted", name)
    if (not exact and entry is None and cython is None and module not in sys.modules
            and module.partition(".")[0] not in sys.stdlib_module_names):
        bound = defines(module, qualname)
        if bound is None:
            return Refusal(name, f"is not defined in the source of {module}, which ckpt does not import just to "
                           "look (importing a module runs it)", None)
        if bound == "function":
            return Refusal(name, f"is not trusted (a function, by the source of {module}, which is not imported "
                           "for it: trust it by its exact name)", name)
    try:
        obj = resolve(module, qualname)
    except LookupError as exc:
        return Refusal(name, str(exc), None)
    if entry is not None:
        return _from_entry(entry, obj)
    if cython is not None:
        return _cython(name, module, cython, obj, trust)
    if not _is_named(obj, module, qualname):
        return Refusal(name, f"is not the class or function it names ({_describe(obj)})", None)
    if exact:
        return _exactly_trusted(name, obj)
    if (rule := reviewed.by_rule(module, qualname, obj)) is not None:
        return _from_entry(rule, obj)
    if package and isinstance(obj, type) and not _private(qualname):
        return _package_class(name, obj, package)
    return Refusal(name, f"is not trusted ({_role(obj, qualname)})", name)


CODE_BY_VALUE = "code saved by value (a lambda or local function)"
_WHOLE_ONLY = {
    "importlib:import_module": "imports a module the file names (a module the model held)",
    "ckpt.kinds.rewrap:set_state": "sets an object's attributes, as whole loads of a class whose __getattr__ recurses "
                                  "before its state is set (pymongo's Database) need",
}
"""Globals a whole load runs and a data load never does, whatever is trusted."""


def defines(module: str, qualname: str) -> str | None:
    """How `module`'s source binds `qualname` (a top-level name, or one
    nested in the classes its dots name): "class", "function" or "name" (an
    assignment); None when it does not (a module imported only for its side
    effects, sklearn's `enable_iterative_imputer`, defines nothing a pickle
    can name; torch._dynamo's `GuardBuilder.get` is a function, not a class,
    so nothing needs importing to refuse it). Read without running anything:
    neither the module nor the packages above it are imported (`find_spec`
    would import the parents, and torch._inductor's __init__ registers exit
    hooks). A module whose source cannot be read (compiled, zipped, found by
    an import hook of its own) gets the benefit of the doubt: "name"."""
    origin = _source_file(module)
    if origin is None:
        return "name"
    try:
        body = ast.parse(Path(origin).read_bytes(), filename=origin).body
    except (OSError, SyntaxError, ValueError):
        return "name"
    *outer, last = qualname.split(".")
    for part in outer:
        body = next((node.body for node in _statements(body) if isinstance(node, ast.ClassDef) and node.name == part),
                    [])
    return _bound(body).get(last)


def _source_file(module: str) -> str | None:
    """The .py file `module` would be imported from, found the way the path
    finder finds it, from the deepest package already imported: no module
    code runs."""
    parts = module.split(".")
    depth = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in sys.modules), 0)
    search = getattr(sys.modules[".".join(parts[:depth])], "__path__", None) if depth else None
    if depth and search is None:
        return None
    spec = None
    for i in range(depth, len(parts)):
        try:
            spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        search = spec.submodule_search_locations
        if i < len(parts) - 1 and not search:
            return None
    origin = spec.origin if spec is not None else None
    return origin if origin and origin.endswith(".py") else None


def _bound(body: list[ast.stmt]) -> dict[str, str]:
    """Names a module or class body binds, with how: "class", "function" or
    "name" (imports are not definitions; the last binding wins)."""
    names: dict[str, str] = {}
    for node in _statements(body):
        if isinstance(node, ast.ClassDef):
            names[node.name] = "class"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = "function"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update((name, "name") for target in targets for name in _assigned(target))
    return names


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A body's statements, with those of its if / try / with blocks (a
    definition under `if TYPE_CHECKING` or in an `except ImportError`)."""
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for part in ("body", "orelse", "finalbody"):
                yield from _statements(getattr(node, part, []))
            for handler in getattr(node, "handlers", []):
                yield from _statements(handler.body)
        else:
            yield node


def _assigned(target: ast.expr) -> Iterator[str]:
    """The names an assignment binds: `x = ...`, `x, y = ...`; never the
    object an attribute or item is set on (`impute.__all__ += [...]` in
    enable_iterative_imputer binds nothing of its own)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _assigned(element)
    elif isinstance(target, ast.Starred):
        yield from _assigned(target.value)


def _by_name(name: str, trust: Trust) -> Admission | Refusal:
    """What `admit` would say, judged without importing the name's module."""
    if not admissible(name, trust):
        return Refusal(name, "is not trusted" if _dotted(name.partition(":")[0]) else "is not a name ckpt ever loads",
                       name)
    entry = reviewed.BY_NAME.get(name)
    source = f"reviewed: {entry.reason}" if entry else f"--trust {name if name in trust.names else trust.package_of(name.partition(':')[0])}"
    return Admission(name, None, entry.kind if entry else CLASS, ~0, True, None,
                     f"{source} (by name: {name.partition(':')[0]} is not imported, so not checked further)")


def _dunder(module: str, qualname: str) -> bool:
    """Dunder names reach into the interpreter (`__class__`, `__globals__`,
    `__builtins__`); the one dunder module, a script's `__main__`, can be trusted."""
    parts = qualname.split(".") + ([] if module in MAIN_MODULES else module.split("."))
    return any(p.startswith("__") and p.endswith("__") for p in parts)


def _private(qualname: str) -> bool:
    return any(part.startswith("_") for part in qualname.split("."))


def resolve(module: str, qualname: str) -> Any:
    """module:qualname by exact identity: the module's own attribute, then
    classes only. LookupError (with the reason) if it is not there."""
    try:
        found: Any = sys.modules.get(module) or importlib.import_module(module)
    except ImportError as exc:
        raise LookupError(f"needs module {exc.name or module!r}, which is not installed here") from None
    except Exception as exc:  # the module's own import failed
        raise LookupError(f"cannot import {module} ({type(exc).__name__})") from None
    parts = qualname.split(".")
    for index, part in enumerate(parts):
        if index and not isinstance(found, type):
            raise LookupError(f"reaches {'.'.join(parts[index:])} through {_describe(found)}, not a class")
        holder = vars(found) if isinstance(found, types.ModuleType) else None
        found = holder.get(part, _MISSING) if holder is not None else getattr(found, part, _MISSING)
        if found is _MISSING:
            raise LookupError(f"is not found in {module}")
    if isinstance(found, types.ModuleType):
        raise LookupError("is a module")
    return found


_MISSING = object()


def _is_named(obj: Any, module: str, qualname: str) -> bool:
    """A class or function whose own name is module:qualname, or a method
    bound to the class it was reached through (a classmethod, which may be
    inherited: pickle names it through the class)."""
    if isinstance(obj, types.MethodType) and isinstance(obj.__self__, type):
        owner = qualname.rpartition(".")[0]
        return obj.__self__ is resolve(module, owner) and obj.__name__ == qualname.rpartition(".")[2]
    if not (isinstance(obj, type) or callable(obj)):
        return False
    return getattr(obj, "__module__", None) == module and getattr(obj, "__qualname__", None) == qualname


def _describe(obj: Any) -> str:
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def _role(obj: Any, qualname: str) -> str:
    if isinstance(obj, type):
        return "a private class" if _private(qualname) else "a class"
    return "a function: trust it by its exact name"


def _from_entry(entry: Entry, obj: Any) -> Admission | Refusal:
    if entry.kind == CLASS and not isinstance(obj, type):
        return Refusal(entry.name, f"is not the class ckpt reviewed ({_describe(obj)})", None)
    if entry.kind == FUNCTION and (isinstance(obj, type) or not callable(obj)):
        return Refusal(entry.name, f"is not the function ckpt reviewed ({_describe(obj)})", None)
    guard = entry.guard
    if entry.kind == CLASS and guard is None and _is_enum_class(obj):
        entry = reviewed.enum_entry(entry.name)
        guard = entry.guard
    allowed = entry.allowed
    if entry.kind == CLASS and _declares(obj, ("__getnewargs__", "__getnewargs_ex__")):
        allowed |= NEW_ARGS  # cls.__new__(cls, *args) is what its own pickling writes
    return Admission(entry.name, obj, entry.kind, allowed, entry.fresh, guard, f"reviewed: {entry.reason}")


def _cython(name: str, module: str, cls_name: str, obj: Any, trust: Trust) -> Admission | Refusal:
    """__pyx_unpickle_<Class>: admitted when <Class> is, as a constructor of it."""
    owner = admit(f"{module}:{cls_name}", trust)
    if isinstance(owner, Refusal):
        return Refusal(name, f"rebuilds {module}:{cls_name}, which {owner.why}", owner.trust)
    if not callable(obj) or isinstance(obj, type):
        return Refusal(name, f"is not a Cython reconstructor ({_describe(obj)})", None)
    return Admission(name, obj, FUNCTION, VALUE | CALL | RESULT_USED, True, "cython_reconstructor",
                     f"Cython's reconstructor of {cls_name} ({owner.source})")


def _exactly_trusted(name: str, obj: Any) -> Admission:
    if isinstance(obj, type):
        enum = _is_enum_class(obj)
        allowed = VALUE | NEW | NEW_ARGS | CALL | RESULT_USED | INSTANCE_CALLED
        return Admission(name, obj, CLASS, allowed, not enum, "enum_lookup" if enum else None, f"--trust {name}")
    return Admission(name, obj, FUNCTION, VALUE | CALL | RESULT_USED, True, None, f"--trust {name}")


def _package_class(name: str, cls: type, package: str) -> Admission | Refusal:
    """A class of a trusted package: what its own pickling does, nothing more.
    Not one with a finalizer of its own code: its `__del__` would run, with
    the file's state, at collection or exit, outside any sandbox (torch's
    StorageWeakRef calls an attribute the file sets on its argument)."""
    finalizer = next((base for base in cls.__mro__[:-1] if "__del__" in vars(base)), None)
    if finalizer is not None:
        return Refusal(name, f"has a finalizer ({finalizer.__module__}.{finalizer.__qualname__}.__del__) that would "
                       f"run the file's state after the load: --trust {package} does not cover it", name)
    enum = _is_enum_class(cls)
    allowed = VALUE | NEW | RESULT_USED  # never calling an instance: no pickling of its own does that
    if _declares(cls, ("__getnewargs__", "__getnewargs_ex__")):
        allowed |= NEW_ARGS
    if enum or _reduces_to_itself(cls):
        allowed |= CALL
    return Admission(name, cls, CLASS, allowed, not enum, "enum_lookup" if enum else None, f"--trust {package}")


def _declares(cls: type, hooks: tuple[str, ...]) -> bool:
    return any(hook in vars(base) for base in cls.__mro__[:-1] for hook in hooks)


def _reduces_to_itself(cls: type) -> bool:
    """The class (or the base whose reduction it inherits, without changing
    that base's constructor) defines `__reduce__`/`__reduce_ex__`: calling it
    with arguments is what its own pickling writes. numpy.memmap inherits
    ndarray's reduction but has its own constructor (which opens a file):
    not callable by a file."""
    for base in cls.__mro__[:-1]:
        if "__reduce__" in vars(base) or "__reduce_ex__" in vars(base):
            return cls.__new__ is base.__new__ and cls.__init__ is base.__init__  # type: ignore[misc]
    return False


def _is_enum_class(obj: Any) -> bool:
    enum = sys.modules.get("enum")
    return enum is not None and isinstance(obj, type) and issubclass(obj, enum.Enum)


def _not_for(found: Admission, denied: int) -> Refusal:
    """A use the admission does not cover. Only a class trusted by package
    can be given more (its exact name admits every use); reviewed entries
    and exact trust are final."""
    uses = ", ".join(text for bit, text in USE_NAMES.items() if denied & bit)
    if found.source.startswith("--trust") and found.source != f"--trust {found.name}":
        return Refusal(found.name, f"is {uses} here, which {found.source} does not cover (its own pickling "
                       "never does that)", found.name)
    return Refusal(found.name, f"is {uses} here, which ckpt never allows for it ({found.source})", None)


def narrowest(entries: Iterable[str]) -> tuple[str, ...]:
    """Trust entries, with several classes of one package folded into the
    package; never the standard library's (trusting `logging` would admit
    handlers that write files and connect)."""
    names = sorted(set(entries))
    by_top: dict[str, list[str]] = {}
    for name in names:
        by_top.setdefault(name.split(":")[0].split(".")[0], []).append(name)
    result = []
    for top, group in sorted(by_top.items()):
        classes = [n for n in group if _looks_like_class(n)]
        if len(classes) > 1 and top not in sys.stdlib_module_names:
            result.append(top)
            result += [n for n in group if n not in classes]
        else:
            result += group
    return tuple(result)


def loaded_class(name: str) -> type | None:
    """The class `module:qualname` names, if its module is imported already
    (as at save, whose process has them all); None otherwise. Imports nothing."""
    module, _, qualname = name.partition(":")
    if module not in sys.modules:
        return None
    try:
        found = resolve(module, qualname)
    except LookupError:
        return None
    return found if isinstance(found, type) else None


def _looks_like_class(name: str) -> bool:
    """A name whose object is a public class (checked when it is imported already, as at save)."""
    return not _private(name.partition(":")[2]) and loaded_class(name) is not None
