"""Write the hand fix: `__getstate__` / `__setstate__` for each owning class.

For every class that holds a finding in one of its attributes, produce the
two methods a person would write: drop (or keep what matters of) the
attribute on save, rebuild it on load. The per-kind code comes from the
catalog rows (`keep`, `recreate`), never from a list here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from ckpt.kinds.catalog import BY_NAME, Action
from ckpt.scanning.walk import Finding, ScanReport


@dataclass(frozen=True)
class Suggestion:
    cls: str
    paths: tuple[str, ...]
    code: str
    imports: tuple[str, ...]


def suggest(report: ScanReport) -> list[Suggestion]:
    """One suggestion per class owning findings; findings outside any class
    attribute (a lock in a plain list) have no hand fix to suggest."""
    by_class: dict[str, list[Finding]] = {}
    for finding in report.findings:
        if finding.owner is not None:
            by_class.setdefault(finding.owner.cls, []).append(finding)
    return [_for_class(cls, findings) for cls, findings in by_class.items()]


def _attributes(findings: list[Finding]) -> dict[str, Finding]:
    """Each attribute holding a finding, the attributes that alias another
    (`self.guard = self.lock`) included, what others are built on first (a
    Condition's lock before the Condition), so `__setstate__` can share it."""
    attributes: dict[str, Finding] = {}
    for finding in findings:
        for name in _own_names(finding).values():
            attributes.setdefault(name, finding)
    held = {id(f.obj) for f in attributes.values()}
    return dict(sorted(attributes.items(), key=lambda item: _inner(item[1]) in held))


def _own_names(finding: Finding) -> dict[str, str]:
    """The finding's paths that are attributes of its owner, each with the attribute's name."""
    assert finding.owner is not None
    prefix = f"{finding.owner.path}."
    names = {path: path[len(prefix):] for path in finding.paths if path.startswith(prefix)}
    return {path: name for path, name in names.items() if name.isidentifier()}


def _inner(finding: Finding) -> int | None:
    """The id of the primitive `finding`'s object is built on, if its kind has one."""
    attribute = BY_NAME[finding.kind].inner
    return id(getattr(finding.obj, attribute, None)) if attribute else None


def _for_class(cls: str, findings: list[Finding]) -> Suggestion:
    attributes = _attributes(findings)
    first: dict[int, str] = {}
    for name, finding in attributes.items():
        first.setdefault(id(finding.obj), name)
    slots = any(f.owner is not None and f.owner.slots for f in findings)
    save_lines, load_lines, imports = [], [], set()
    for name, finding in attributes.items():
        if first[id(finding.obj)] != name:  # one object under two names: restored as one
            save_lines.append(f'state["{name}"] = None  # the same object as self.{first[id(finding.obj)]}')
            load_lines.append(f"self.{name} = self.{first[id(finding.obj)]}")
            continue
        save, load = _rebuild(name, finding, first)
        save_lines.append(save)
        load_lines.extend(load.splitlines())
        imports.update(_modules_in(load, finding.type))
    state = (
        "state = {name: getattr(self, name) for cls in type(self).__mro__\n"
        "         for name in getattr(cls, '__slots__', ()) if hasattr(self, name)}"
        if slots
        else "state = self.__dict__.copy()"
    )
    restore = (
        "for name, value in state.items():\n    setattr(self, name, value)" if slots else "self.__dict__.update(state)"
    )
    body = (
        "def __getstate__(self):\n"
        + textwrap.indent(f"{state}\n" + "\n".join(save_lines) + "\nreturn state", "    ")
        + "\n\ndef __setstate__(self, state):\n"
        + textwrap.indent(f"{restore}\n" + "\n".join(load_lines), "    ")
        + "\n"
    )
    paths = tuple(f.path for f in findings)
    return Suggestion(cls, paths, body, tuple(sorted(imports)))


def _rebuild(name: str, finding: Finding, first: dict[int, str]) -> tuple[str, str]:
    """The `__getstate__` line and the `__setstate__` code for one attribute;
    a primitive built on one this instance holds is rebuilt on that one."""
    kind = BY_NAME[finding.kind]
    obj = f"self.{name}"
    saved = f'state["{name}"]'
    keep = kind.keep.format(obj=obj) if kind.keep else "None"
    built_on = _inner(finding)
    inner = first.get(built_on) if built_on is not None else None
    recreate = kind.recreate.format(target=obj, saved=saved, type=finding.type,
                                    inner=f"self.{inner}" if inner else "")
    if kind.action is Action.ERROR:
        recreate += f"  # {kind.advice}"
    elsewhere = [path for path in finding.paths if path not in _own_names(finding)]
    if elsewhere:
        recreate += f"  # shared with {', '.join(elsewhere)}: rebuilt here, it no longer is"
    why = f"{finding.note}, which pickle cannot name" if kind.action is Action.BY_VALUE else kind.lost
    return f'state["{name}"] = {keep}  # {finding.type}: {why}', recreate


def _modules_in(code: str, type_name: str) -> set[str]:
    """The modules the generated code names (`threading.Lock()`, `{type}`)."""
    modules = {"threading", "queue", "logging", "logging.handlers", "concurrent.futures", "asyncio", "multiprocessing",
               "sys", "ssl", "sqlite3", "duckdb", "weakref", "importlib",
               type_name.rpartition(".")[0]}
    return {module for module in modules if module and f"{module}." in code}
