"""`ckpt check`, SARIF output and the pre-commit hooks, end to end: the
installed `ckpt` (and the real `pre-commit`, `git`) on a temporary project."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ckpt.core.catalog import ALL_KINDS
from conftest import REPO, RunCkpt, assert_one_line_error, flip_byte

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
    lines.insert(at, "        self.log_file = open(__file__)")
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
    assert driver["name"] == "ckpt" and driver["version"] and driver["informationUri"].startswith("https://")
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
    assert levels["lock"] == "warning" and levels["open-file"] == "error"


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
    assert by_rule["lock"]["level"] == "warning"
    damaged = by_rule["check-failed"]
    assert damaged["level"] == "error" and "hashes" in damaged["message"]["text"]
    assert damaged["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "models/model.ckpt"


def test_scan_sarif(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.service:build", "--format", "sarif")
    assert result.code == 1, result
    run = assert_code_scanning_sarif(result.json())
    found = {r["properties"]["path"]: r for r in run["results"]}
    assert found["model.worker"]["ruleId"] == "thread" and found["model.worker"]["level"] == "warning"
    worker = found["model.worker"]["locations"][0]["physicalLocation"]
    assert worker["artifactLocation"]["uri"] == "sample_models/service.py"
    source = (REPO / "sample_models" / "service.py").read_text().splitlines()
    assert source[worker["region"]["startLine"] - 1].strip().startswith("self.worker =")


def test_scan_sarif_errors_for_what_save_refuses(run_ckpt: RunCkpt) -> None:
    run = assert_code_scanning_sarif(run_ckpt("scan", "sample_models.nested:hidden", "--format", "sarif").json())
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["local-function"] == "error" and levels["lock"] == "warning"


# --- pre-commit --------------------------------------------------------------

GIT = ["git", "-c", "user.name=ckpt tests", "-c", "user.email=tests@ckpt.invalid", "-c", "commit.gpgsign=false"]


def clean_env() -> dict[str, str]:
    """No GIT_* variables leaking in (tests run from a git hook would carry them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {"NO_COLOR": "1"}


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository's working tree, committed in a scratch git repository.

    `pre-commit try-repo` on the repository itself would use HEAD plus the
    tracked files' changes, missing new files until they are committed;
    a snapshot of the tracked and untracked (not ignored) files tests the
    code as it is here, which is what the rest of the suite imports."""
    dest = tmp_path_factory.mktemp("hook-repo")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True, env=clean_env()).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*GIT, *command], cwd=dest, check=True, env=clean_env())
    return dest


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit store for the session: the hooks' environment is built
    once (`pre-commit try-repo` would build it again for every run, 11 s each)."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(hook_repo: Path, project: Path, store: Path, *, all_files: bool = True) -> tuple[int, dict[str, str]]:
    """Run every hook of `hook_repo` on `project` with the real pre-commit
    (on every file, or as a commit would: on the staged changes), configured
    as a user would: the repository at its commit in .pre-commit-config.yaml;
    return its exit code and each hook's report by name."""
    rev = subprocess.run([*GIT, "rev-parse", "HEAD"], cwd=hook_repo, capture_output=True, text=True, check=True,
                         env=clean_env()).stdout.strip()
    ids = re.findall(r"^- id: (\S+)", (hook_repo / ".pre-commit-hooks.yaml").read_text(), re.M)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {hook_repo}\n  rev: {rev}\n  hooks:\n" + "".join(f"  - id: {i}\n" for i in ids))
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True, env=clean_env())
    ci_home = project.parent / "ci-home"  # CI holds no private key: only the project's trusted-keys
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", *(["--all-files"] if all_files else [])],
                          cwd=project, capture_output=True, text=True, timeout=600,
                          env=clean_env() | {"PRE_COMMIT_HOME": str(store), "CKPT_HOME": str(ci_home)})
    output = proc.stdout + proc.stderr
    hooks = {}
    for match in re.finditer(r"^(ckpt \w+)\.+(?:\(no files to check\))?(Passed|Failed|Skipped)$(.*?)(?=^ckpt \w+\.+|\Z)",
                             output, re.M | re.S):
        hooks[match.group(1)] = match.group(2) + match.group(3)
    assert set(hooks) == {"ckpt check", "ckpt verify"}, output
    return proc.returncode, hooks


@pytest.fixture
def git_project(tmp_path: Path, run_ckpt: RunCkpt) -> Path:
    root = make_project(tmp_path / "project", run_ckpt)
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True, env=clean_env())
    return root


def test_pre_commit_hooks_pass_a_clean_project(hook_repo: Path, git_project: Path, pre_commit_home: Path) -> None:
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home)
    assert code == 0, hooks
    assert hooks["ckpt check"].startswith("Passed") and hooks["ckpt verify"].startswith("Passed")


def test_pre_commit_hooks_stop_a_new_attribute_and_a_tampered_checkpoint(hook_repo: Path, git_project: Path,
                                                                           pre_commit_home: Path) -> None:
    add_open_file(git_project)
    flip_byte(git_project / "models" / "model.ckpt")
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home)
    assert code == 1, hooks
    check, verify = hooks["ckpt check"], hooks["ckpt verify"]
    assert check.startswith("Failed") and "model.log_file (open-file" in check
    assert verify.startswith("Failed") and re.search(r"checkpoint models/model\.ckpt\s+FAIL\s+hashes", verify)


def commit_all(project: Path) -> None:
    for command in (["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*GIT, *command], cwd=project, check=True, env=clean_env())


def edit_config(project: Path, old: str, new: str) -> None:
    config = project / "pyproject.toml"
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))


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


def test_pre_commit_skips_ckpt_check_when_nothing_it_reads_changes(hook_repo: Path, git_project: Path,
                                                                    pre_commit_home: Path) -> None:
    commit_all(git_project)
    (git_project / "README.md").write_text("notes\n")
    code, hooks = try_repo(hook_repo, git_project, pre_commit_home, all_files=False)
    assert code == 0 and hooks["ckpt check"].startswith("Skipped"), hooks
