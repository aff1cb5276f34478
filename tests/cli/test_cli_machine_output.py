"""With `--format json` or `sarif`, stdout holds exactly one valid document,
whatever the user's code prints and however ckpt exits: what CI pipes into a
parser or uploads to code scanning."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCkpt

NOISY = """
import os
import sys
import threading

print("imported: hello on stdout")
os.system("echo from a child process")
os.write(1, b"straight to file descriptor 1\\n")


class Model:
    def __init__(self):
        self.lock = threading.Lock()


def build():
    print("building", file=sys.stdout)
    return Model()


def broken():
    print("about to fail")
    raise ValueError("no model today")
"""


@pytest.fixture
def noisy(tmp_path: Path) -> Path:
    (tmp_path / "noisy.py").write_text(textwrap.dedent(NOISY))
    return tmp_path


def one_document(out: str) -> Any:
    """stdout is one JSON document and nothing else (json.loads refuses trailing text)."""
    return json.loads(out)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_what_the_users_code_prints_goes_to_stderr(run_ckpt: RunCkpt, noisy: Path, fmt: str) -> None:
    result = run_ckpt("scan", "noisy:build", "--format", fmt, cwd=noisy)
    assert result.code == 1, result
    document = one_document(result.out)
    assert document["findings"][0]["path"] == "model.lock" if fmt == "json" else document["runs"][0]["results"]
    for printed in ("imported: hello on stdout", "from a child process", "straight to file descriptor 1", "building"):
        assert printed in result.err and printed not in result.out


def ckpt_lines(result: Any) -> list[str]:
    """ckpt's own lines on stderr (the user's code prints there too)."""
    assert "Traceback" not in result.err, result
    return [line for line in result.err.splitlines() if line.startswith("ckpt: ")]


def test_an_error_is_a_json_document_too(run_ckpt: RunCkpt, noisy: Path) -> None:
    result = run_ckpt("scan", "noisy:broken", "--format", "json", cwd=noisy)
    assert result.code == 2 and ckpt_lines(result) == [
        "ckpt: error: factory 'noisy:broken' raised ValueError: no model today (run with --traceback for the full "
        "traceback)"], result
    assert "about to fail" in result.err and "about to fail" not in result.out
    assert one_document(result.out) == {"schema_version": 1, "error": {
        "message": "factory 'noisy:broken' raised ValueError: no model today (run with --traceback for the full "
                   "traceback)", "exit_code": 2}}


@pytest.mark.parametrize("args", [
    ["scan", "noisy:broken", "--format", "sarif"],            # the target raises
    ["check", "--format=sarif", "--no-such-option"],          # a usage error, before any option is read
    ["check", "--format", "sarif"],                           # no pyproject.toml: nothing to check
], ids=["target raises", "usage error", "no configuration"])
def test_an_error_is_a_sarif_run_with_a_tool_notification(run_ckpt: RunCkpt, noisy: Path, args: list[str]) -> None:
    result = run_ckpt(*args, cwd=noisy)
    [error_line] = ckpt_lines(result)
    assert result.code == 2, result
    [run] = one_document(result.out)["runs"]
    assert run["results"] == [] and run["tool"]["driver"]["name"] == "ckpt"
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error" and notification["message"]["text"] in error_line


def test_quiet_prints_no_document_and_still_keeps_stdout_clean(run_ckpt: RunCkpt, noisy: Path) -> None:
    for args in (["noisy:build", "--format", "json", "-q"], ["noisy:broken", "--quiet", "--format=sarif"]):
        result = run_ckpt("scan", *args, cwd=noisy)
        assert result.out == "" and "imported: hello on stdout" in result.err, result


def test_sarif_levels_say_what_needs_fixing(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    """What save rewraps, strips or saves by value is a note (nothing to fix); what it refuses is an error."""
    (tmp_path / "model.py").write_text("import threading\n\n"
                                       "def build():\n"
                                       "    return {'lock': threading.Lock(), 'rows': (n for n in range(3)),\n"
                                       "            'key': lambda row: row}\n")
    [run] = run_ckpt("scan", "model.py:build", "--format", "sarif", cwd=tmp_path).json()["runs"]
    driver = run["tool"]["driver"]
    assert "informationUri" not in driver  # the project has no public home to point at yet
    assert {r["level"] for r in run["results"]} == {"note", "error"}
    for result in run["results"]:
        expected = "error" if result["properties"]["action"] == "error" else "note"
        assert result["level"] == expected == driver["rules"][result["ruleIndex"]]["defaultConfiguration"]["level"]
