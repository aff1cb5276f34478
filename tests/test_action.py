"""action.yml, the composite GitHub Action: its structure is what GitHub
runs (every expression names a declared input or an earlier step), its
check step run as the runner would run it (bash, its env, $GITHUB_OUTPUT)
on real projects, and README shows it as it is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
STEPS = ACTION["runs"]["steps"]


def test_it_is_a_composite_action_whose_expressions_name_what_exists() -> None:
    assert ACTION["name"] and ACTION["description"] and ACTION["runs"]["using"] == "composite"
    inputs = ACTION["inputs"]
    assert all(spec["description"] and "default" in spec for spec in inputs.values())
    seen: list[str] = []
    for step in STEPS:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step["shell"] == "bash", step  # a composite step must name its shell
        text = json.dumps(step)
        assert not re.search(r"\$\{\{[^}]*\}\}", step.get("run", "")), "inputs reach the shell through env only"
        for name in re.findall(r"inputs\.([\w-]+)", text):
            assert name in inputs, name
        for name in re.findall(r"steps\.([\w-]+)\.", text):
            assert name in seen, name
        if "id" in step:
            seen.append(step["id"])
    for output in ACTION["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.[\w-]+ \}\}", output["value"]).group(1) in seen


def test_it_installs_ckpt_from_itself_checks_and_uploads_even_when_the_check_fails() -> None:
    install, check, upload, fail = STEPS
    assert '"$GITHUB_ACTION_PATH"' in install["run"] and "pip install" in install["run"]
    assert "ckpt check --format sarif" in check["run"] and "set +e" in check["run"]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@v")
    assert upload["if"].startswith("always()") and upload["with"]["sarif_file"] == "${{ inputs.sarif-file }}"
    assert fail["if"] == "steps.check.outputs.exit-code != '0'"


PROJECT_MODEL = """
import os
import threading


class Model:
    def __init__(self):
        self.weights = [1.0, 2.0]
        self.lock = threading.Lock()
{extra}

def build():
    return Model()
"""


def run_check_step(root: Path, args: str = "") -> tuple[dict[str, Any], str]:
    """The check step's script, as the runner runs it: bash, the step's env
    with the inputs' defaults, $GITHUB_OUTPUT; returns the SARIF log and the exit-code output."""
    check = STEPS[1]
    output = root / "github-output"
    env = {"CKPT_ARGS": args, "SARIF_FILE": ACTION["inputs"]["sarif-file"]["default"], "GITHUB_OUTPUT": str(output),
           "PATH": os.environ["PATH"], "CKPT_HOME": str(root / "ci-home"), "NO_COLOR": "1"}
    proc = subprocess.run(["bash", "-e", "-c", check["run"]], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr  # the step itself succeeds: the last step fails the job
    log = json.loads((root / env["SARIF_FILE"]).read_text())
    return log, output.read_text().strip()


@pytest.mark.parametrize(("extra", "config", "code", "levels"), [
    ("", 'targets = ["model:build"]', "0", {"note"}),
    ("        self.log = open(os.devnull, 'w')", 'targets = ["model:build"]', "1", {"note", "error"}),  # written to
    ("", 'targets = ["model:biuld"]', "2", set()),
], ids=["passes", "fails", "bad configuration"])
def test_the_check_step_writes_a_valid_log_and_its_exit_code(tmp_path: Path, extra: str, config: str, code: str,
                                                            levels: set[str]) -> None:
    (tmp_path / "model.py").write_text(textwrap.dedent(PROJECT_MODEL).format(extra=extra))
    (tmp_path / "pyproject.toml").write_text(f"[tool.ckpt]\n{config}\n")
    log, output = run_check_step(tmp_path)
    assert output == f"exit-code={code}"
    [run] = log["runs"]
    assert {r["level"] for r in run["results"]} == levels
    assert run["invocations"][0]["executionSuccessful"] is (code != "2")


def test_readme_shows_the_action_with_its_inputs() -> None:
    readme = (REPO / "README.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "your-org/ckpt@" in b]
    workflow = yaml.safe_load(block)
    [step] = [s for s in workflow["jobs"]["ckpt"]["steps"] if str(s.get("uses", "")).startswith("your-org/ckpt@")]
    assert set(step.get("with", {})) <= set(ACTION["inputs"])
    assert workflow["jobs"]["ckpt"]["permissions"]["security-events"] == "write"
