"""The package's type annotations hold (mypy). entry/, core/ and cli/ install
as ckpt, ckpt.core and ckpt.cli, a mapping mypy cannot follow through the
editable install, so the check runs on a package of symlinks to the sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def test_mypy_finds_no_errors(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    package = tmp_path / "ckpt"
    package.mkdir()
    for name in ("core", "cli"):
        (package / name).symlink_to(REPO / name)
    (package / "__init__.py").symlink_to(REPO / "entry" / "__init__.py")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--namespace-packages",
         "--explicit-package-bases", "--cache-dir", str(tmp_path / "cache"), "-p", "ckpt"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
