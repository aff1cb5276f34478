"""On a terminal: a rich report, and a progress bar for a save that takes a
while. Piped or with NO_COLOR: plain text, no escape codes, no progress."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, RunCkpt

SLOW_MODEL = textwrap.dedent(
    """
    import threading, time

    class Slow:
        def __reduce__(self):
            time.sleep(0.002)
            return (Slow, ())

    def build():
        return {"items": [Slow() for _ in range(500)], "lock": threading.Lock()}
    """
)


def run_on_terminal(ckpt_exe: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ckpt with stdout and stderr on a pseudo-terminal; return (exit code, output)."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"COLUMNS": "160"} | (env or {})
    proc = subprocess.Popen([ckpt_exe, *args], stdout=terminal, stderr=terminal, cwd=cwd, env=environment)
    os.close(terminal)
    output = b""
    while select.select([controller], [], [], 60)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return proc.wait(timeout=60), output.decode(errors="replace")


def test_scan_on_a_terminal_is_a_rich_table(ckpt_exe: str) -> None:
    code, output = run_on_terminal(ckpt_exe, "scan", "sample_models.service:build")
    assert code == 1
    assert "┏" in output and "\x1b[" in output and "model._stats_lock" in output


def test_no_color_on_a_terminal_is_plain(ckpt_exe: str) -> None:
    code, output = run_on_terminal(ckpt_exe, "scan", "sample_models.service:build", env={"NO_COLOR": "1"})
    assert code == 1
    assert "\x1b[" not in output and "┏" not in output
    assert "model._stats_lock: lock (_thread.lock) -> rewrap" in output


@pytest.fixture
def slow_project(tmp_path: Path) -> Path:
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    return tmp_path


def test_a_slow_save_shows_progress_on_a_terminal(ckpt_exe: str, slow_project: Path) -> None:
    code, output = run_on_terminal(ckpt_exe, "save", "slowmodel:build", "-o", "m.ckpt", cwd=slow_project)
    assert code == 0, output
    assert "pickling" in output and "━" in output


def test_piped_save_has_no_progress_and_nothing_on_stderr(run_ckpt: RunCkpt, slow_project: Path) -> None:
    result = run_ckpt("save", "slowmodel:build", "-o", "m.ckpt", cwd=slow_project)
    assert result.code == 0, result
    assert result.err == "" and "\x1b[" not in result.out
