"""README.md is accurate: its kinds table is the catalog's, its JSON example
is real output, its pre-commit snippet works as written and its local hooks
are the published ones, and its Python examples run as written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ckpt.cli import kinds_table
from conftest import GIT, PRE_COMMIT, REPO, clean_env, pre_commit_config, run_pre_commit

README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def subsection(title: str) -> str:
    """A `###` subsection, up to the next heading of its level or above."""
    start = README.index(f"### {title}")
    end = min((i for i in (README.find("\n### ", start + 1), README.find("\n## ", start + 1)) if i != -1), default=None)
    return README[start:end]


def test_kinds_table_is_generated_from_the_catalog() -> None:
    assert f"{kinds_table.START}\n{kinds_table.render()}\n{kinds_table.END}" in README


def test_scan_json_example_is_the_real_output(run_ckpt) -> None:
    [example] = [json.loads(b) for b in code_blocks(("json",)) if '"sample_models.nested:shared_lock"' in b]
    result = run_ckpt("scan", "sample_models.nested:shared_lock", "--format", "json")
    assert result.code == 1, result
    real = result.json()
    assert isinstance(real["seconds"], float)
    assert example == {**real, "seconds": example["seconds"]}  # the time is one run's


def test_local_pre_commit_hooks_are_the_published_ones() -> None:
    """README's `repo: local` hooks run in the user's own environment, and
    otherwise exactly as .pre-commit-hooks.yaml (which files trigger them)."""
    [local] = [yaml.safe_load(b) for b in code_blocks(("yaml",)) if "repo: local" in b]
    published = {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    hooks = local["repos"][0]["hooks"]
    assert {hook["id"] for hook in hooks} == set(published)
    for hook in hooks:
        expected = {k: v for k, v in published[hook["id"]].items() if k != "description"}
        assert hook == {**expected, "language": "system"}


@PRE_COMMIT
def test_the_pre_commit_snippet_works_as_written(hook_repo: Path, pre_commit_home: Path, tmp_path: Path) -> None:
    """README's .pre-commit-config.yaml, its URL pointed at a snapshot of this
    repository (branch main, no tags, as the project is): the real pre-commit
    runs both hooks with the `rev` as written, and `pre-commit autoupdate
    --freeze`, as README advises, pins that rev to a commit."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "demo.py").write_text("def build():\n    return {'weights': [1.0, 2.0]}\n")
    (project / "pyproject.toml").write_text('[tool.ckpt]\ntargets = ["demo:build"]\n')
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True, env=clean_env())
    config = pre_commit_config(hook_repo)
    assert re.search(r"^\s+rev: main\b", config, re.M), config
    code, hooks = run_pre_commit(project, config, pre_commit_home)
    assert code == 0 and hooks["ckpt check"].startswith("Passed") and hooks["ckpt verify"].startswith("Skipped"), hooks
    frozen = subprocess.run([sys.executable, "-m", "pre_commit", "autoupdate", "--freeze"], cwd=project,
                            capture_output=True, text=True, timeout=120,
                            env=clean_env() | {"PRE_COMMIT_HOME": str(pre_commit_home)})
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    commit = subprocess.run([*GIT, "rev-parse", "main"], cwd=hook_repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert f"rev: {commit}" in (project / ".pre-commit-config.yaml").read_text()


def test_python_examples_run_as_written(tmp_path: Path) -> None:
    blocks = [b for b in code_blocks(("python",)) if b in section("Using ckpt from Python")]
    assert len(blocks) >= 3
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "model._stats_lock lock rewrap" in proc.stdout
    assert "trust just these names: trust=['sample_models.service:InferenceService']" in proc.stdout
    assert "already exists (pass overwrite=True" in proc.stdout and "no such checkpoint: 'absent.ckpt'" in proc.stdout


def test_deepcopy_example_runs_as_written() -> None:
    [block] = [b for b in code_blocks(("python",)) if b in subsection("Copies: `copy.deepcopy`")]
    proc = subprocess.run([sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def code_blocks(languages: tuple[str, ...]) -> list[str]:
    """The README's fenced blocks in the given languages ("" for unmarked)."""
    blocks, current, language = [], None, ""
    for line in README.splitlines():
        if line.startswith("```") and current is None:
            current, language = [], line[3:].strip()
        elif line.startswith("```"):
            if language in languages:
                blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def readme_commands(urls: bool = False) -> list[str]:
    """The concrete `ckpt` commands in README's shell blocks, in order (not the
    `$ ` examples of output, not placeholders like mypkg): those on local
    files, or (`urls`) those on URLs, which need a server."""
    commands = []
    for block in code_blocks(("bash", "")):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command.startswith("pip install ") and "&& ckpt " in command:
                command = command.split("&& ", 1)[1]  # the install itself is what CI does
            if re.match(r"ckpt [a-z]+( |$)", command) and "mypkg" not in command:  # not "ckpt scan: ..." output
                if ("://" in command) == urls:
                    commands.append(command)
    return commands


def test_every_ckpt_command_in_the_readme_works_as_written(run_ckpt, tmp_path: Path) -> None:
    commands = readme_commands()
    assert "ckpt scan sample_models.service:build" in commands and len(commands) >= 4
    env = {"PYTHONPATH": str(REPO)}
    for command in commands:
        result = run_ckpt(*command.split()[1:], cwd=tmp_path, env=env)
        expected = 1 if command.startswith("ckpt scan") else 0  # the sample's findings are the point
        assert result.code == expected, (command, result)
        assert "Traceback" not in result.err and "error:" not in result.err, (command, result)


# --- "Beyond one machine": URLs ------------------------------------------------------


def url_blocks(scheme: str) -> list[str]:
    return [b for b in code_blocks(("python",)) if b in section("Beyond one machine") and f"{scheme}://" in b]


def test_the_s3_examples_run_against_a_real_s3_server(s3, run_ckpt, tmp_path: Path) -> None:
    """README's s3:// commands and Python, as written, against moto's server,
    reached the way the README says: AWS_ENDPOINT_URL and credentials in the
    environment. `my-bucket` exists, as it would for a user."""
    with contextlib.suppress(s3.client.exceptions.BucketAlreadyOwnedByYou):
        s3.bucket("my-bucket")
    env = {**s3.env, "PYTHONPATH": str(REPO)}
    commands = [c for c in readme_commands(urls=True) if "s3://" in c]
    assert [c.split()[1] for c in commands] == ["save", "load", "inspect"]
    saved, loaded, inspected = (run_ckpt(*command.split()[1:], cwd=tmp_path, env=env) for command in commands)
    url = "s3://my-bucket/models/service.ckpt"
    assert saved.code == 0 and f"wrote {url}" in saved.out, saved
    assert loaded.code == 0 and f"ckpt load: {url}" in loaded.out and "verify: all checks passed" in loaded.out, loaded
    assert inspected.code == 0 and f"ckpt inspect: {url}" in inspected.out, inspected
    [block] = url_blocks("s3")
    proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(s3.keys("my-bucket")) == ["models/service-api.ckpt", "models/service.ckpt"]


def test_the_storage_options_table_is_what_ckpt_reads(tmp_path: Path) -> None:
    from ckpt.core import config

    [toml] = [b for b in code_blocks(("toml",)) if "storage-options" in b]
    (tmp_path / "pyproject.toml").write_text(toml)
    assert config.load(tmp_path / "pyproject.toml", strict=True).storage_options == {
        "s3": {"endpoint_url": "http://127.0.0.1:9000", "default_block_size": 16 << 20}}


GCS_STAND_IN = """
# GCS itself is not reachable from here: fsspec's in-memory filesystem stands
# in for gcsfs under the gs:// scheme (registered in this process only), so
# what runs is ckpt's whole URL path (download, checks, safe load) with the
# part gcsfs plays played by memory. The checkpoint is put there first.
import fsspec
from fsspec.implementations.memory import MemoryFileSystem

class StandIn(MemoryFileSystem):
    protocol = ("gs", "gcs")

fsspec.register_implementation("gs", StandIn, clobber=True)
import ckpt.core
from sample_models import service
ckpt.core.save(service.build(), "gs://my-bucket/models/service.ckpt")
"""


def test_the_gcs_examples_run_against_a_stand_in(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    [block] = url_blocks("gs")
    commands = [c for c in readme_commands(urls=True) if "gs://" in c]
    assert commands
    cli = "\nfrom ckpt.cli import main\n" + "".join(
        f"assert main({command.split()[1:]!r}) == 0\n" for command in commands)
    proc = subprocess.run([sys.executable, "-c", GCS_STAND_IN + block + cli], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "('sample_models.service:InferenceService',)" in proc.stdout
    assert "ckpt inspect: gs://my-bucket/models/service.ckpt" in proc.stdout
