"""Mixed environments: a checkpoint saved under one version of a library and
loaded under another warns (or fails with strict); one that needs a package
that is not installed is refused with its name and saved version."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import RunCkpt, assert_one_line_error, rewrite_member

import ckpt
from ckpt.errors import CheckpointError


def set_module_version(path: Path, module: str, version: str) -> None:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["modules"][module] = version
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())


@pytest.fixture
def numpy_checkpoint(tmp_path: Path) -> Path:
    np = pytest.importorskip("numpy")
    path = tmp_path / "m.ckpt"
    ckpt.save({"w": np.arange(10.0)}, path)
    assert ckpt.inspect(path).manifest.modules == {"numpy": np.__version__}
    return path


def test_a_different_version_is_a_warning(numpy_checkpoint: Path) -> None:
    set_module_version(numpy_checkpoint, "numpy", "1.0.0")
    report = ckpt.load_checkpoint(numpy_checkpoint)
    assert any("numpy was 1.0.0 when saved" in w for w in report.warnings)
    with pytest.raises(CheckpointError, match=r"numpy was 1.0.0 when saved.*\(strict=True\)"):
        ckpt.load_checkpoint(numpy_checkpoint, strict=True)


def test_cli_warns_and_strict_fails(run_ckpt: RunCkpt, numpy_checkpoint: Path) -> None:
    set_module_version(numpy_checkpoint, "numpy", "1.0.0")
    loaded = run_ckpt("load", str(numpy_checkpoint))
    assert loaded.code == 0 and "warning: numpy was 1.0.0 when saved" in loaded.out, loaded
    assert_one_line_error(run_ckpt("load", str(numpy_checkpoint), "--strict"), 1, "numpy was 1.0.0")


def test_a_missing_package_is_named_with_its_saved_version(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    package = tmp_path / "src" / "vanishing_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(
        """
        import threading
        __version__ = "2.7.1"
        class Model:
            def __init__(self):
                self.lock = threading.Lock()
        """
    ))
    path = tmp_path / "m.ckpt"
    code = f"import ckpt as c, vanishing_pkg; c.save(vanishing_pkg.Model(), {str(path)!r})"
    saved = subprocess.run([sys.executable, "-c", code], cwd=package.parent, capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr
    result = run_ckpt("load", str(path), "--trust", "vanishing_pkg", cwd=tmp_path)  # not importable from here
    assert_one_line_error(result, 1, "vanishing_pkg (saved with version 2.7.1)", "not installed")
