"""Write the hand fix: `__getstate__` / `__setstate__` for each owning class.

For every class that holds a finding in one of its attributes, produce the
two methods a person would write: drop (or keep what matters of) the
attribute on save, rebuild it on load. The per-kind code comes from the
catalog rows (`keep`, `recreate`), never from a list here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from .catalog import BY_NAME, Action
from .scan import Finding, ScanReport


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


def _for_class(cls: str, findings: list[Finding]) -> Suggestion:
    attributes: dict[str, Finding] = {}
    for finding in findings:
        assert finding.owner is not None
        attributes.setdefault(finding.owner.attribute, finding)
    slots = any(f.owner is not None and f.owner.slots for f in findings)
    save_lines, load_lines, imports = [], [], set()
    for name, finding in attributes.items():
        kind = BY_NAME[finding.kind]
        obj = f"self.{name}"
        saved = f'state["{name}"]'
        comment = f"  # {finding.type}: {kind.lost}"
        keep = kind.keep.format(obj=obj) if kind.keep else "None"
        save_lines.append(f'state["{name}"] = {keep}{comment}')
        recreate = kind.recreate.format(target=obj, saved=saved, type=finding.type)
        if kind.action is Action.ERROR:
            recreate += f"  # {kind.advice}"
        load_lines.extend(recreate.splitlines())
        imports.update(_modules_in(recreate, finding.type))
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


def _modules_in(code: str, type_name: str) -> set[str]:
    """The modules the generated code names (`threading.Lock()`, `{type}`)."""
    modules = {"threading", "queue", "logging", "logging.handlers", "concurrent.futures", "asyncio", "multiprocessing",
               "sys", "ssl", "sqlite3", "weakref",
               type_name.rpartition(".")[0]}
    return {module for module in modules if module and f"{module}." in code}
