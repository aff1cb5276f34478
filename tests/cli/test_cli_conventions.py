"""The conventions of a command-line tool: -q, `python -m ckpt`, shell
completion, a closed pipe, versioned JSON, and a factory that returns None."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, RunCkpt, assert_one_line_error


def test_quiet_prints_nothing_but_the_exit_code_says_it(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    for args in (("scan", "sample_models.service:build"), ("save", "sample_models.service:build", "-o",
                                                          str(tmp_path / "m.ckpt")),
                 ("inspect", str(tmp_path / "m.ckpt"), "--format", "json")):
        result = run_ckpt(*args, "-q")
        assert result.out == "" and result.err == "", result
        assert result.code == (1 if args[0] == "scan" else 0), result


def test_quiet_still_prints_errors(run_ckpt: RunCkpt) -> None:
    assert_one_line_error(run_ckpt("scan", "sample_models.nope:build", "--quiet"), 2, "sample_models.nope")


def test_python_dash_m_ckpt_is_the_command(run_ckpt: RunCkpt) -> None:
    proc = subprocess.run([sys.executable, "-m", "ckpt", "scan", "sample_models.nested:clean"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    heading = run_ckpt("scan", "sample_models.nested:clean").out.splitlines()[0]
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == heading, proc


def test_shell_completion_is_clicks(ckpt_exe: str) -> None:
    source = subprocess.run([ckpt_exe], env={"_CKPT_COMPLETE": "bash_source", "PATH": ""}, capture_output=True,
                            text=True, timeout=60)
    assert source.returncode == 0 and "_ckpt_completion()" in source.stdout
    words = subprocess.run([ckpt_exe], capture_output=True, text=True, timeout=60,
                           env={"_CKPT_COMPLETE": "bash_complete", "COMP_WORDS": "ckpt ins", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["plain,inspect"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_reader_that_closes_the_pipe_is_a_quiet_exit_0(ckpt_exe: str, run_ckpt: RunCkpt, tmp_path: Path,
                                                         fmt: str) -> None:
    """`ckpt inspect f | head -1`: the reader has what it wanted."""
    assert run_ckpt("save", "sample_models.nested:many", "-o", str(tmp_path / "m.ckpt")).code == 0
    proc = subprocess.Popen([ckpt_exe, "inspect", str(tmp_path / "m.ckpt"), "--all", "--format", fmt],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before ckpt writes its first line
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""


def test_every_json_document_has_a_schema_version(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    model, saved = "sample_models.nested:shared_lock", str(tmp_path / "m.ckpt")
    (tmp_path / "pyproject.toml").write_text(f'[tool.ckpt]\ncheckpoints = ["{Path(saved).name}"]\n')
    runs = [("scan", model), ("save", model, "-o", saved), ("load", saved, "--trust", "sample_models"),
            ("inspect", saved), ("check", "--config", str(tmp_path / "pyproject.toml"))]
    for args in runs:
        result = run_ckpt(*args, "--format", "json")
        assert result.json()["schema_version"] == 1, (args, result)


FACTORIES = textwrap.dedent(
    """
    import threading

    NOTHING = None

    def forgot_return():
        model = {"lock": threading.Lock()}
    """
)


def test_a_factory_that_returns_none_is_an_error(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    result = run_ckpt("scan", "factories:forgot_return", cwd=tmp_path)
    assert_one_line_error(result, 2, "factory 'factories:forgot_return' returned None", "return model")


def test_a_module_attribute_that_is_none_is_scanned_as_none(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    result = run_ckpt("scan", "factories:NOTHING", cwd=tmp_path)
    assert result.code == 0 and "(NoneType): clean" in result.out, result


def test_an_unknown_config_key_warns_in_save_and_load_and_fails_check(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES.replace("NOTHING = None", "def lock():\n    return threading.Lock()"))
    (tmp_path / "pyproject.toml").write_text('[tool.ckpt]\ntargets = ["factories:lock"]\ntrsut = ["factories"]\n')
    warning = "unknown key 'trsut' in [tool.ckpt]; did you mean 'trust'? (ignored)"
    saved = run_ckpt("save", "factories:lock", "-o", "m.ckpt", cwd=tmp_path)
    assert saved.code == 0 and saved.err.startswith("ckpt: warning: ") and warning in saved.err, saved
    loaded = run_ckpt("load", "m.ckpt", cwd=tmp_path)
    assert loaded.code == 0 and warning in loaded.err, loaded
    assert run_ckpt("load", "m.ckpt", "-q", cwd=tmp_path).err == ""
    assert_one_line_error(run_ckpt("check", cwd=tmp_path), 2, "unknown key 'trsut'", "did you mean 'trust'?")


ABANDONED_AT_CTRL_C = {
    # aiohttp reports an unclosed connection through asyncio's logger
    "connection": (
        "import asyncio\n"
        "loop = asyncio.new_event_loop()\n"
        "class Connection:\n"
        "    def __del__(self):\n"
        "        loop.call_exception_handler({'message': 'Unclosed connection', 'client_connection': self})\n"
        "held = Connection()\n"
    ),
    # s3fs's half-run request coroutine raises as it is closed at exit
    # ("Exception ignored in: <coroutine ...>")
    "coroutine": (
        "import types\n"
        "@types.coroutine\n"
        "def suspend():\n"
        "    yield\n"
        "async def request():\n"
        "    try:\n"
        "        await suspend()\n"
        "    finally:\n"
        "        raise ValueError('Token was created in a different Context')\n"
        "held = request()\n"
        "held.send(None)\n"
    ),
}


@pytest.mark.parametrize("abandoned", sorted(ABANDONED_AT_CTRL_C))
def test_ctrl_c_is_one_line_even_when_what_it_abandoned_reports_at_exit(run_ckpt, tmp_path, abandoned) -> None:
    """An upload interrupted mid-request leaves a connection and a half-run
    coroutine that report themselves when collected at exit: the interrupt
    is still one line."""
    (tmp_path / "abandoning.py").write_text(ABANDONED_AT_CTRL_C[abandoned] + "def build():\n    raise KeyboardInterrupt\n")
    result = run_ckpt("save", "abandoning:build", "-o", str(tmp_path / "m.ckpt"), cwd=tmp_path)
    assert result.code == 130 and result.err.strip() == "ckpt: interrupted", result
    assert not (tmp_path / "m.ckpt").exists()
