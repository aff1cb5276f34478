"""Target resolution: every way a TARGET can be wrong gives a TargetError
that names the problem; every valid form gives the object."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest

from ckpt.errors import TargetError
from ckpt.target import TargetCallError, parse, resolve

_counter = itertools.count()


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a fresh, uniquely named package in a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"tpkg{next(_counter)}"

    def write(source: str, module: str = "model") -> str:
        pkg = tmp_path / name
        pkg.mkdir(exist_ok=True)
        (pkg / "__init__.py").touch()
        (pkg / f"{module}.py").write_text(textwrap.dedent(source))
        return f"{name}.{module}"

    return write


@pytest.mark.parametrize("text", ["nocolon", ":attr", "module:", "a b:c", "mod:1abc", "mod:a..b"])
def test_malformed_targets_are_refused(text: str) -> None:
    with pytest.raises(TargetError, match="malformed target"):
        parse(text)


def test_file_targets_parse_to_a_path() -> None:
    target = parse("models/train.py:build")
    assert target.file == Path("models/train.py") and target.module == "train" and target.attr == "build"


def test_a_factory_is_called_and_a_plain_object_is_not(package) -> None:
    module = package(
        """
        class Model:
            def __call__(self):
                raise AssertionError("a callable instance is the model, not a factory")
        def build():
            return {"built": True}
        INSTANCE = Model()
        """
    )
    assert resolve(f"{module}:build") == {"built": True}
    assert type(resolve(f"{module}:Model")).__name__ == "Model"  # a class is a factory
    assert type(resolve(f"{module}:INSTANCE")).__name__ == "Model"  # not called


def test_dotted_attributes_are_followed(package) -> None:
    module = package(
        """
        class Zoo:
            class Inner:
                VALUE = {"deep": 1}
        """
    )
    assert resolve(f"{module}:Zoo.Inner.VALUE") == {"deep": 1}


def test_a_file_target_imports_the_file_with_its_directory_importable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "helper_for_file_target.py").write_text("VALUE = 41\n")
    script = tmp_path / "script_for_file_target.py"
    script.write_text("import helper_for_file_target\ndef build():\n    return helper_for_file_target.VALUE + 1\n")
    assert resolve(f"{script}:build") == 42


def test_missing_module_names_the_module(package) -> None:
    package("X = 1")
    with pytest.raises(TargetError, match="no module named 'nosuchpkg_for_ckpt'") as info:
        resolve("nosuchpkg_for_ckpt.model:build")
    assert "installed" in str(info.value)


def test_missing_dependency_names_the_dependency_not_the_target(package) -> None:
    module = package("import not_installed_dependency_xyz\n")
    with pytest.raises(TargetError, match="needs module 'not_installed_dependency_xyz'"):
        resolve(f"{module}:build")


def test_missing_attribute_lists_close_matches(package) -> None:
    module = package("def build_model():\n    return 1\n")
    with pytest.raises(TargetError, match="has no attribute 'build_modle'; did you mean 'build_model'"):
        resolve(f"{module}:build_modle")


def test_factory_that_needs_arguments_says_so(package) -> None:
    module = package("def build(size, depth=2):\n    return size\n")
    with pytest.raises(TargetError, match=r"needs arguments \(size, depth=2\)"):
        resolve(f"{module}:build")


def test_factory_that_raises_keeps_the_cause(package) -> None:
    module = package("def build():\n    raise ValueError('weights missing\\nsecond line')\n")
    with pytest.raises(TargetCallError, match="raised ValueError: weights missing") as info:
        resolve(f"{module}:build")
    assert isinstance(info.value.cause, ValueError)
    assert "\n" not in str(info.value)


def test_module_that_raises_on_import(package) -> None:
    module = package("raise RuntimeError('boom at import')\n")
    with pytest.raises(TargetCallError, match="raised RuntimeError: boom at import"):
        resolve(f"{module}:build")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file"):
        resolve(f"{tmp_path / 'absent.py'}:build")
