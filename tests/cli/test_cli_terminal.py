"""On a terminal: a rich report, and a progress bar for a save that takes a
while. Piped or with NO_COLOR: plain text, no escape codes, no progress."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
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


def run_on_terminal(ckpt_exe: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
                    columns: int = 160) -> tuple[int, str]:
    """Run ckpt with stdout and stderr on a pseudo-terminal `columns` wide; return (exit code, output)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "FORCE_COLOR")}
    environment |= env or {}
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


def test_an_empty_no_color_does_not_disable_colour(ckpt_exe: str) -> None:
    code, output = run_on_terminal(ckpt_exe, "scan", "sample_models.service:build", env={"NO_COLOR": ""})
    assert code == 1 and "\x1b[" in output


def test_force_color_gives_the_rich_report_through_a_pipe(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.service:build", env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert result.code == 1 and "\x1b[" in result.out


LONG_MODEL = textwrap.dedent(
    """
    import logging, threading

    class AHandlerWhoseQualifiedNameIsLongerThanMostColumns(logging.StreamHandler):
        pass

    class Item:
        def __init__(self):
            self.lk = threading.Lock()

    def build():
        handlers = {"the_primary_output_handler_of_this_service": AHandlerWhoseQualifiedNameIsLongerThanMostColumns()}
        return {"configuration_of_the_service": {"handlers_by_name": handlers},
                "guard": threading.RLock(), "items": [Item() for _ in range(50)]}
    """
)


@pytest.fixture
def long_project(tmp_path: Path) -> Path:
    (tmp_path / "longmodel.py").write_text(LONG_MODEL)
    return tmp_path


def _plain(output: str) -> list[str]:
    """The terminal's output without escape codes, as lines."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output).replace("\r", "").split("\n")


@pytest.mark.parametrize("term", ["xterm-256color", "dumb"])
@pytest.mark.parametrize("columns", [60, 80, 200])
def test_paths_and_types_are_never_cut_at_any_width(ckpt_exe: str, run_ckpt: RunCkpt, long_project: Path,
                                                    columns: int, term: str) -> None:
    findings = run_ckpt("scan", "longmodel:build", "--format", "json", "--all", cwd=long_project).json()["findings"]
    code, output = run_on_terminal(ckpt_exe, "scan", "longmodel:build", cwd=long_project, columns=columns,
                                   env={"TERM": term})
    assert code == 1 and "…" not in output, output
    lines = _plain(output)
    whole = ["model['items'][*].lk", *(f["path"] for f in findings if "items" not in f["path"]),
             *(f["type"] for f in findings)]
    for text in whole:
        assert any(text in line for line in lines), (text, output)


@pytest.mark.parametrize("columns", [60, 80])
def test_a_long_saved_line_wraps_under_its_value(ckpt_exe: str, run_ckpt: RunCkpt, long_project: Path,
                                                columns: int) -> None:
    assert run_ckpt("save", "longmodel:build", "-o", "m.ckpt", cwd=long_project).code == 0
    code, output = run_on_terminal(ckpt_exe, "load", "m.ckpt", "--trust", "longmodel", cwd=long_project,
                                   columns=columns)
    assert code == 0, output
    lines = _plain(output)
    saved = next(i for i, line in enumerate(lines) if line.startswith("  saved:"))
    value_column = lines[saved].index("2")  # where the date, the value, starts
    assert lines[saved + 1].startswith(" " * value_column) and lines[saved + 1].strip(), output


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


@pytest.mark.parametrize("flag", ["--no-progress", "-q"])
def test_no_progress_and_quiet_show_no_progress_bar(ckpt_exe: str, slow_project: Path, flag: str) -> None:
    code, output = run_on_terminal(ckpt_exe, "save", "slowmodel:build", "-o", "m.ckpt", flag, cwd=slow_project)
    assert code == 0, output
    assert "pickling" not in output  # the progress bar's label
