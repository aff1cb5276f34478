"""README.md is accurate: its kinds table is the catalog's, and its Python
examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ckpt.cli import kinds_table
from conftest import REPO

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_kinds_table_is_generated_from_the_catalog() -> None:
    assert f"{kinds_table.START}\n{kinds_table.render()}\n{kinds_table.END}" in README


def test_python_examples_run_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", section("Using ckpt from Python"), re.DOTALL)
    assert len(blocks) >= 3
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "model._stats_lock lock rewrap" in proc.stdout
    assert "pass --trust sample_models" in proc.stdout
