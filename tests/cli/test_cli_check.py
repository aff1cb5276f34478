"""`ckpt check`, SARIF output and the pre-commit hooks, end to end: the
installed `ckpt` (and the real `pre-commit`, `git`) on a temporary project."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    GIT,
    PRE_COMMIT,
    REPO,
    RunCkpt,
    assert_one_line_error,
    clean_env,
    flip_byte,
    pre_commit_config,
    run_pre_commit,
)

from ckpt.kinds.catalog import ALL_KINDS

MODEL = """
import threading


class Model:
    def __init__(self):
        self.weights = [1.0, 2.0]
        self.lock = threading.Lock()


def build():
    return Model()
"""

CONFIG = """
[project]
name = "demo"
version = "0"

[tool.ckpt]
targets = ["demopkg.model:build"]
checkpoints = ["models/*.ckpt"]
trusted-keys = ["keys/team.pub"]
"""


def make_project(root: Path, run_ckpt: RunCkpt) -> Path:
    """A package with a model holding a lock, its [tool.ckpt], a checkpoint a
    teammate saved (this suite's key) and that teammate's public key: what CI
    needs to verify it, with nothing secret."""
    (root / "demopkg").mkdir(parents=True)
    (root / "demopkg" / "__init__.py").touch()
    (root / "demopkg" / "model.py").write_text(textwrap.dedent(MODEL))
    (root / "pyproject.toml").write_text(textwrap.dedent(CONFIG))
    (root / "keys").mkdir()
    (root / "keys" / "team.pub").write_text(run_ckpt("key", "export").out)
    (root / "models").mkdir()
    saved = run_ckpt("save", "demopkg.model:build", "-o", "models/model.ckpt", cwd=root)
    assert saved.code == 0, saved
    return root


def add_open_file(root: Path) -> int:
    """The change a pre-commit check must stop: a new attribute pickle cannot
    handle and save cannot rewrap. Returns the line it is assigned on."""
    model = root / "demopkg" / "model.py"
    lines = model.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "self.lock =" in line) + 1
    lines.insert(at, "        self.log_file = open(__file__ + '.log', 'a')")  # written to: read-only files reopen
    model.write_text("\n".join(lines) + "\n")
    return at + 1


@pytest.fixture
def project(tmp_path: Path, run_ckpt: RunCkpt) -> Path:
    return make_project(tmp_path / "project", run_ckpt)


def test_clean_project_passes_from_any_subdirectory(run_ckpt: RunCkpt, project: Path) -> None:
    result = run_ckpt("check", cwd=project / "demopkg")
    assert result.code == 0, result
    assert re.search(r"target demopkg\.model:build\s+ok\s+save handles every finding \(1 rewrap\)", result.out)
    assert re.search(r"checkpoint \S*models/model\.ckpt\s+ok", result.out)
    assert "2 checks, all passed" in result.out


def test_new_unrewrappable_attribute_fails_with_its_path(run_ckpt: RunCkpt, project: Path) -> None:
    add_open_file(project)
    result = run_ckpt("check", cwd=project)
    assert result.code == 1, result
    assert re.search(r"target demopkg\.model:build\s+FAIL\s+1 failing: model\.log_file \(open-file", result.out)
    assert "1 failed" in result.out


def test_tampered_checkpoint_fails(run_ckpt: RunCkpt, project: Path) -> None:
    flip_byte(project / "models" / "model.ckpt")
    result = run_ckpt("check", "--format", "json", cwd=project)
    assert result.code == 1, result
    doc = result.json()
    assert doc["ok"] is False and doc["fail_on"] == "error"
    target, checkpoint = doc["items"]
    assert target["ok"] is True and [f["path"] for f in target["findings"]] == ["model.lock"]
    assert checkpoint["what"] == "checkpoint" and checkpoint["ok"] is False
    failed = {c["name"] for c in checkpoint["verify"]["checks"] if c["ok"] is False}
    assert "hashes" in failed


def test_given_files_check_only_what_concerns_them(run_ckpt: RunCkpt, project: Path) -> None:
    add_open_file(project)
    (project / "notes.py").write_text("x = 1\n")
    only_ckpt = run_ckpt("check", "models/model.ckpt", "--format", "json", cwd=project)
    assert only_ckpt.code == 0, only_ckpt
    assert [i["what"] for i in only_ckpt.json()["items"]] == ["checkpoint"]
    unrelated = run_ckpt("check", "notes.py", cwd=project)
    assert unrelated.code == 0 and "nothing among the given files" in unrelated.out, unrelated
    model = run_ckpt("check", "demopkg/model.py", cwd=project)
    assert model.code == 1 and "model.log_file" in model.out, model


def test_config_option_reads_another_file(run_ckpt: RunCkpt, project: Path, tmp_path: Path) -> None:
    alt = project / "ci" / "ckpt.toml"
    alt.parent.mkdir()
    alt.write_text('[tool.ckpt]\ntargets = ["model.py:build"]\nfail-on = "any"\n')
    shutil.copy(project / "demopkg" / "model.py", alt.parent / "model.py")
    result = run_ckpt("check", "--config", str(alt), cwd=tmp_path)
    assert result.code == 1 and "model.lock (lock, rewrap)" in result.out, result


@pytest.mark.parametrize(
    ("table", "fragments"),
    [
        ('targets = ["demopkg.model:build"]\ntargest = []', ["pyproject.toml: unknown key 'targest'"]),
        ('targets = "demopkg.model:build"', ["pyproject.toml: [tool.ckpt] targets must be a list"]),
        ('targets = ["demopkg.model:biuld"]', ["pyproject.toml: [tool.ckpt] targets: 'demopkg.model:biuld'",
                                               "did you mean 'build'"]),
        ('targets = ["demopkg.gone:build"]', ["targets: 'demopkg.gone:build' does not resolve"]),
        ('fail-on = "never"\ntargets = ["demopkg.model:build"]', ["fail-on must be"]),
        ("trust = []", ["nothing to check", "pyproject.toml has no [tool.ckpt] targets or checkpoints"]),
    ],
)
def test_configuration_errors_are_one_line_naming_the_key_and_file(
    run_ckpt: RunCkpt, project: Path, table: str, fragments: list[str]
) -> None:
    (project / "pyproject.toml").write_text(f"[tool.ckpt]\n{table}\n")
    assert_one_line_error(run_ckpt("check", cwd=project), 2, str(project), *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--config", "absent.toml"], ["no such configuration file: 'absent.toml'"]),
        (["gone.ckpt"], ["no such file: 'gone.ckpt'"]),
        (["models"], ["'models' is a directory"]),
    ],
)
def test_usage_errors_are_one_line(run_ckpt: RunCkpt, project: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_ckpt("check", *args, cwd=project), 2, *fragments)


# --- SARIF -------------------------------------------------------------------

LEVELS = {"none", "note", "warning", "error"}


def assert_code_scanning_sarif(doc: dict[str, Any]) -> dict[str, Any]:
    """What a code-scanning upload (GitHub's upload-sarif) needs: SARIF 2.1.0,
    one run, a named driver whose rules have ids and descriptions, and
    results whose ruleId and ruleIndex name a rule, with a level, a message
    and a location relative to the source root. Returns the run."""
    assert doc["version"] == "2.1.0" and "sarif-schema-2.1.0" in doc["$schema"]
    [run] = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ckpt" and driver["version"]
    assert driver.get("informationUri", "https://").startswith("https://")  # a real address, or none
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is True
    rules = driver["rules"]
    for rule in rules:
        assert rule["id"] and rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in LEVELS
    assert len({r["id"] for r in rules}) == len(rules)
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].startswith("file:///")
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in LEVELS and result["message"]["text"]
        [location] = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%" and not artifact["uri"].startswith("/")
        assert location["physicalLocation"].get("region", {"startLine": 1})["startLine"] >= 1
    return run


def test_rules_are_the_catalog(run_ckpt: RunCkpt, project: Path) -> None:
    run = assert_code_scanning_sarif(run_ckpt("check", "--format", "sarif", cwd=project).json())
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == [k.name for k in ALL_KINDS] + ["check-failed"]
    levels = {r["id"]: r["defaultConfiguration"]["level"] for r in run["tool"]["driver"]["rules"]}
    assert levels["lock"] == "note" and levels["open-file"] == "error"  # save rewraps a lock: nothing to fix


def test_check_sarif_points_at_the_assignment(run_ckpt: RunCkpt, project: Path) -> None:
    line = add_open_file(project)
    flip_byte(project / "models" / "model.ckpt")
    result = run_ckpt("check", "--format", "sarif", cwd=project)
    assert result.code == 1, result
    run = assert_code_scanning_sarif(result.json())
    by_rule = {r["ruleId"]: r for r in run["results"]}
    opened = by_rule["open-file"]
    assert opened["level"] == "error" and "model.log_file" in opened["message"]["text"]
    assert opened["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "demopkg/model.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": line},
    }
    assert by_rule["lock"]["level"] == "note"
    damaged = by_rule["check-failed"]
    assert damaged["level"] == "error" and "hashes" in damaged["message"]["text"]
    assert damaged["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/model.ckpt"


def test_scan_sarif(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.service:build", "--format", "sarif")
    assert result.code == 1, result
    run = assert_code_scanning_sarif(result.json())
    found = {r["properties"]["path"]: r for r in run["results"]}
    assert found["model.worker"]["ruleId"] == "thread" and found["model.worker"]["level"] == "note"
    worker = found["model.worker"]["locations"][0]["physicalLocation"]
    assert worker["artifactLocation"]["uri"] == "sample_models/service.py"
    source = (REPO / "sample_models" / "service.py").read_text().splitlines()
    assert source[worker["region"]["startLine"] - 1].strip().startswith("self.worker =")


def test_scan_sarif_errors_for_what_save_refuses_and_notes_what_it_handles(run_ckpt: RunCkpt) -> None:
    run = assert_code_scanning_sarif(run_ckpt("scan", "sample_models.kinds:generator", "--format", "sarif").json())
    assert {r["ruleId"]: r["level"] for r in run["results"]} == {"generator": "error"}
    run = assert_code_scanning_sarif(run_ckpt("scan", "sample_models.nested:hidden", "--format", "sarif").json())
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["local-function"] == "note" and levels["lock"] == "note"  # saved by value, rewrapped


# --- pre-commit --------------------------------------------------------------

def try_repo(hook_repo: Path, project: Path, store: Path, *, all_files: bool = True) -> tuple[int, dict[str, str]]:
    """Every hook of `hook_repo` on `project` with the real pre-commit, configured
    as README says (`pre_commit_config`), in CI's environment: no private key."""
    return run_pre_commit(project, pre_commit_config(hook_repo), store, all_files=all_files,
                          env={"CKPT_HOME": str(project.parent / "ci-home")})


@pytest.fixture
def git_project(tmp_path: Path, run_ckpt: RunCkpt) -> Path:
    root = make_project(tmp_path / "project", run_ckpt)
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True, env=clean_env())
    return root


@PRE_COMMIT
def test_pre_commit_hooks_pass_a_clean_project(hook_repo: Path, git_project: Path, pre_commit_home: Path) -> None:
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home)
    assert code == 0, hooks
    assert hooks["ckpt check"].startswith("Passed") and hooks["ckpt verify"].startswith("Passed")


@PRE_COMMIT
def test_pre_commit_hooks_stop_a_new_attribute_and_a_tampered_checkpoint(hook_repo: Path, git_project: Path,
                                                                           pre_commit_home: Path) -> None:
    add_open_file(git_project)
    flip_byte(git_project / "models" / "model.ckpt")
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home)
    assert code == 1, hooks
    check, verify = hooks["ckpt check"], hooks["ckpt verify"]
    assert check.startswith("Failed") and "model.log_file (open-file" in check
    assert verify.startswith("Failed") and re.search(r"models/model\.ckpt: FAIL.*\n(.*\n)*?hashes\s+FAIL", verify)


def commit_all(project: Path) -> None:
    for command in (["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*GIT, *command], cwd=project, check=True, env=clean_env())


def edit_config(project: Path, old: str, new: str) -> None:
    config = project / "pyproject.toml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))


@PRE_COMMIT
@pytest.mark.parametrize(("change", "failure"), [
    (lambda root: edit_config(root, '"demopkg.model:build"', '"demopkg.model:biuld"'), "does not resolve"),
    (lambda root: edit_config(root, 'trusted-keys = ["keys/team.pub"]', "trusted-keys = []"), "signature"),
    (lambda root: flip_byte(root / "models" / "model.ckpt"), "hashes"),
], ids=["broken target in pyproject.toml", "the team key removed from pyproject.toml", "checkpoint replaced"])
def test_pre_commit_check_runs_on_a_commit_without_python_changes(hook_repo: Path, git_project: Path,
                                                                   pre_commit_home: Path, change: Any,
                                                                   failure: str) -> None:
    """What [tool.ckpt] reads changes, and no Python file does: `ckpt check`
    still runs on the commit (and fails) instead of being skipped."""
    commit_all(git_project)
    change(git_project)
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home, all_files=False)
    assert code == 1 and hooks["ckpt check"].startswith("Failed") and failure in hooks["ckpt check"], hooks


@PRE_COMMIT
def test_pre_commit_skips_ckpt_check_when_nothing_it_reads_changes(hook_repo: Path, git_project: Path,
                                                                    pre_commit_home: Path) -> None:
    commit_all(git_project)
    (git_project / "README.md").write_text("notes\n")
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home, all_files=False)
    assert code == 0 and hooks["ckpt check"].startswith("Skipped"), hooks
