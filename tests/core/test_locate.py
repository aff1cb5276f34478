"""Locating findings in the source: the line that assigns the attribute,
else the line defining the target (what SARIF results point at)."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from ckpt.scanning.locate import Location, finding_location, module_file
from ckpt.scanning.walk import scan
from ckpt.target import resolve

SOURCE = """
import threading
from dataclasses import dataclass, field


class Base:
    def __init__(self):
        self.lock = threading.Lock()  # base-lock


class Child(Base):
    def __init__(self):
        super().__init__()
        self.size = 3
        self.log, self.other = open(__file__), 1  # unpacked


@dataclass
class Config:
    name: str = "x"
    guard: object = field(default_factory=threading.RLock)  # field


class Late:
    def __init__(this):
        this.count = 0

    def start(this):
        this.count += 1
        this.event = threading.Event()  # late


def child():
    return Child()


def config():
    return Config()


def late():
    obj = Late()
    obj.start()
    return obj


def in_dict():  # in-dict
    return {"lock": threading.Lock()}


def local_class():  # local-class
    class Hidden:
        def __init__(self):
            self.lock = threading.Lock()
    return Hidden()
"""

_counter = itertools.count()


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"locmod{next(_counter)}"
    file = tmp_path / f"{name}.py"
    file.write_text(textwrap.dedent(SOURCE))
    return file, name


def line_of(file: Path, marker: str) -> int:
    return next(i for i, line in enumerate(file.read_text().splitlines(), 1) if line.rstrip().endswith(marker))


def locations(file: Path, factory: str) -> dict[str, Location | None]:
    target = f"{file}:{factory}"
    report = scan(resolve(target), target=target)
    try:
        return {f.path: finding_location(f, target, file.parent) for f in report.findings}
    finally:
        for f in report.findings:
            if hasattr(f.obj, "close"):
                f.obj.close()


def test_attribute_assigned_in_init_and_in_a_base_class(module: tuple[Path, str]) -> None:
    file, _ = module
    found = locations(file, "child")
    assert found["model.lock"] == Location(file.resolve(), line_of(file, "# base-lock"))
    assert found["model.log"] == Location(file.resolve(), line_of(file, "# unpacked"))


def test_dataclass_field(module: tuple[Path, str]) -> None:
    file, _ = module
    assert locations(file, "config")["model.guard"] == Location(file.resolve(), line_of(file, "# field"))


def test_assignment_outside_init_with_another_self_name(module: tuple[Path, str]) -> None:
    file, _ = module
    assert locations(file, "late")["model.event"] == Location(file.resolve(), line_of(file, "# late"))


@pytest.mark.parametrize(("factory", "marker"), [("in_dict", "# in-dict"), ("local_class", "# local-class")])
def test_falls_back_to_the_target_definition(module: tuple[Path, str], factory: str, marker: str) -> None:
    file, _ = module
    assert set(locations(file, factory).values()) == {Location(file.resolve(), line_of(file, marker))}


def test_module_file_of_a_module_target(module: tuple[Path, str]) -> None:
    file, name = module
    sys.path.insert(0, str(file.parent))
    assert module_file(f"{name}:child", Path("/nowhere")) == file.resolve()
    assert module_file(f"{file.name}:child", file.parent) == file.resolve()
