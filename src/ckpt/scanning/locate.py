"""Where in the source a finding comes from: a file and, when known, a line.

Code-scanning services (SARIF) and editors want to point at the line to
change, not at an object path. A finding held in an instance attribute is
located at the assignment `self.<attr> = ...` in the owning class (or a base
class, in MRO order), or at its annotated class-body field (dataclasses),
by parsing the class's source with `ast`; nothing is executed. Anything else
(a lock in a dict, an attribute set from outside the class) points at the
target's module, at the line defining the target's attribute.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ckpt.errors import TargetError
from ckpt.scanning.walk import Finding, Owner
from ckpt.target import parse

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Location:
    file: Path
    line: int | None = None
    """1-based; None when only the file is known."""


def finding_location(finding: Finding, target: str, root: Path) -> Location | None:
    """The assignment of the finding's attribute, else the target's definition."""
    if finding.owner is not None:
        found = attribute_location(finding.owner)
        if found is not None:
            return found
    try:
        return target_location(target, root)
    except TargetError:
        return None


def attribute_location(owner: Owner) -> Location | None:
    """The first line assigning `owner.attribute` in its class or a base class."""
    cls = _find_class(owner.cls)
    if cls is None:
        return None
    for klass in cls.__mro__[:-1]:  # object has no source
        found = _assignment_in(klass, owner.attribute)
        if found is not None:
            return found
    return None


def target_location(text: str, root: Path) -> Location | None:
    """The target's module file, at the line defining its first attribute."""
    file = module_file(text, root)
    if file is None:
        return None
    return Location(file, _definition_line(file, parse(text).attr.split(".")[0]))


def module_file(text: str, root: Path) -> Path | None:
    """The source file of the target's module (relative file targets are
    relative to `root`). Finds the module without running it, though its
    parent packages are imported, as any import does."""
    target = parse(text)
    if target.file is not None:
        return (root / target.file).resolve()
    module = sys.modules.get(target.module)
    if module is not None:
        origin = getattr(module, "__file__", None)
    else:
        origin = _spec_origin(text, target.module)
    return Path(origin).resolve() if origin else None


def _spec_origin(text: str, name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # a parent package that is missing or raises on import
        raise TargetError(f"cannot find module {name!r} for {text!r}: {type(exc).__name__}: {exc}") from None
    if spec is None:
        raise TargetError(f"no module named {name!r} (for {text!r})")
    return spec.origin if spec.has_location else None


def _find_class(qualified: str) -> type | None:
    """The class named `module.Qual.Name`, from the modules already imported
    (the object exists, so its module is); None for local classes."""
    parts = qualified.split(".")
    for split in range(len(parts) - 1, 0, -1):
        obj: object = sys.modules.get(".".join(parts[:split]))
        if obj is None:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name, None)
        return obj if isinstance(obj, type) else None
    return None


def _assignment_in(cls: type, attribute: str) -> Location | None:
    try:
        file = inspect.getsourcefile(cls)
        lines, first = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    if file is None:
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.ClassDef):
        return None
    found = [getattr(n, "lineno", 1) for n in _assignments(node, attribute)]
    return Location(Path(file).resolve(), first + min(found) - 1) if found else None


def _assignments(cls: ast.ClassDef, attribute: str) -> list[ast.AST]:
    """`attribute: T = ...` in the class body, and `self.attribute = ...`
    (also augmented, annotated or unpacked) in its methods."""
    out: list[ast.AST] = []
    for statement in cls.body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and attribute in _names(statement, None):
            out.append(statement)
        if isinstance(statement, _FUNCTIONS):
            arguments = statement.args.posonlyargs + statement.args.args
            if arguments:
                this = arguments[0].arg
                out += [n for n in ast.walk(statement) if attribute in _names(n, this)]
    return out


def _names(node: ast.AST, this: str | None) -> list[str]:
    """The names `node` assigns: bare names (this is None) or `this.<name>`."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    else:
        return []
    names: list[str] = []
    while targets:
        target = targets.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            targets += target.elts
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
        elif this is None and isinstance(target, ast.Name):
            names.append(target.id)
        elif this is not None and isinstance(target, ast.Attribute) and _is_name(target.value, this):
            names.append(target.attr)
    return names


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _definition_line(file: Path, name: str) -> int | None:
    """The line of the top-level `def name`, `class name` or `name = ...`."""
    try:
        tree = ast.parse(file.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)) and node.name == name:
            return node.lineno
        if name in _names(node, None):
            return node.lineno
    return None
