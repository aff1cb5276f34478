"""Resolve a TARGET string to a live object.

This is the only module that imports the user's code. A target is
`package.module:attr`, `package.module:attr.sub` or `path/to/file.py:attr`;
the current directory is on `sys.path`, as with `python -m`. A class, function,
method or `functools.partial` is called with no arguments (a factory); any
other object is the model itself, even if it happens to be callable (a torch
module is callable, but calling it would run `forward`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckpt.errors import TargetError

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_FACTORY_TYPES = (type, types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)


@dataclass(frozen=True)
class Target:
    """A parsed TARGET: where the object lives, not the object itself."""

    text: str
    module: str
    attr: str
    file: Path | None = None


class TargetCallError(TargetError):
    """The factory (or the import) raised; `cause` is the original exception,
    with its traceback (the command line shows it under `--traceback`)."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


def parse(text: str) -> Target:
    """Split `module:attr` or `file.py:attr`, refusing anything else."""
    module, sep, attr = text.rpartition(":")
    if not sep or not module or not attr:
        raise TargetError(
            f"malformed target {text!r}",
            hint="expected package.module:attr or path/to/file.py:attr",
        )
    if not _DOTTED.match(attr):
        raise TargetError(f"malformed target {text!r}: {attr!r} is not an attribute name or dotted path")
    if module.endswith(".py") or os.sep in module or "/" in module:
        return Target(text, Path(module).stem, attr, Path(module))
    if not _DOTTED.match(module):
        raise TargetError(f"malformed target {text!r}: {module!r} is not a module name")
    return Target(text, module, attr)


def resolve(text: str) -> Any:
    """Import the target and return the object (calling it if it is a factory)."""
    target = parse(text)
    module = _import_file(target) if target.file else _import_module(target)
    obj = _get_attr(module, target)
    return _call_factory(obj, target) if isinstance(obj, _FACTORY_TYPES) else obj


def importable_cwd() -> None:
    """Put the current directory on sys.path, as `python -m` does (the
    `ckpt` console script does not), so the user's packages import."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def _import_module(target: Target) -> types.ModuleType:
    importable_cwd()
    try:
        return importlib.import_module(target.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or target.module
        if target.module == missing or target.module.startswith(missing + "."):
            raise TargetError(
                f"no module named {missing!r} (while importing {target.module!r} for {target.text!r})",
                hint="is the package installed, or are you in the directory that contains it?",
            ) from None
        raise TargetError(
            f"importing {target.module!r} failed: it needs module {missing!r}, which is not installed",
            hint=f"install {missing.split('.')[0]!r} in this environment",
        ) from None
    except Exception as exc:  # user code: any error at import time is bad input
        raise TargetCallError(f"importing {target.module!r} raised {_describe(exc)}", exc) from None


def _import_file(target: Target) -> types.ModuleType:
    assert target.file is not None
    path = target.file.resolve()
    if not path.is_file():
        raise TargetError(f"no such file: {str(target.file)!r} (from target {target.text!r})")
    existing = sys.modules.get(target.module)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    # Like `python path/to/file.py`: the file's directory is importable, so
    # its sibling modules resolve and its classes pickle by reference.
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(target.module, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import {str(target.file)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[target.module] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[target.module]
        raise TargetCallError(f"importing {str(target.file)!r} raised {_describe(exc)}", exc) from None
    return module


def _get_attr(module: types.ModuleType, target: Target) -> Any:
    obj: Any = module
    where = target.module
    for name in target.attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise TargetError(f"{where!r} has no attribute {name!r}{_close_matches(obj, name)}") from None
        where = f"{where}:{name}" if where == target.module else f"{where}.{name}"
    return obj


def _close_matches(obj: Any, name: str) -> str:
    candidates = [n for n in dir(obj) if not n.startswith("__")]
    matches = difflib.get_close_matches(name, candidates, n=3)
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""


def _call_factory(factory: Any, target: Target) -> Any:
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise TargetError(
            f"factory {target.text!r} needs arguments {inspect.signature(factory)}, and ckpt calls it with none",
            hint="point the target at a zero-argument function that builds the model",
        ) from None
    except ValueError:
        pass  # no signature available (some builtins): just try the call
    try:
        built = factory()
    except Exception as exc:
        raise TargetCallError(f"factory {target.text!r} raised {_describe(exc)}", exc) from None
    if built is None:  # a factory that forgot `return`: scanning None would report it clean
        raise TargetError(f"factory {target.text!r} returned None",
                          hint="does it end with `return model`? (a module attribute that is None is scanned as None)")
    return built


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
