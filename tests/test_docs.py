"""README.md and docs/ are accurate: the kinds table is the catalog's, the
JSON example is real output, the pre-commit snippet works as written and the
local hooks are the published ones, every `ckpt` command and Python example
runs as written, and every link between the pages resolves."""

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
from conftest import GIT, PRE_COMMIT, REPO, clean_env, pre_commit_config, run_pre_commit
from docpages import README, Page, page, pages

from ckpt.cli import kinds_table


def test_kinds_table_is_generated_from_the_catalog() -> None:
    assert f"{kinds_table.START}\n{kinds_table.render()}\n{kinds_table.END}" in page("KINDS.md").text


def test_kinds_table_regenerates_in_place(tmp_path: Path) -> None:
    """`--write docs/KINDS.md`, as the page says, rewrites the page to itself."""
    copy = tmp_path / "KINDS.md"
    copy.write_text(page("KINDS.md").text)
    subprocess.run([sys.executable, "-m", "ckpt.cli.kinds_table", "--write", str(copy)], check=True, timeout=60)
    assert copy.read_text() == page("KINDS.md").text


def test_scan_json_example_is_the_real_output(run_ckpt) -> None:
    [example] = [json.loads(b) for b in page("CLI.md").blocks("json") if '"sample_models.nested:shared_lock"' in b]
    result = run_ckpt("scan", "sample_models.nested:shared_lock", "--format", "json")
    assert result.code == 1, result
    real = result.json()
    assert isinstance(real["seconds"], float)
    assert example == {**real, "seconds": example["seconds"]}  # the time is one run's


def test_local_pre_commit_hooks_are_the_published_ones() -> None:
    """docs/CI.md's `repo: local` hooks run in the user's own environment, and
    otherwise exactly as .pre-commit-hooks.yaml (which files trigger them)."""
    [local] = [yaml.safe_load(b) for b in page("CI.md").blocks("yaml") if "repo: local" in b]
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


def run_python(blocks: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Blocks of one page, run as one script with the repository importable."""
    return subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


def test_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    blocks = README.blocks("python")
    assert blocks and "background=True" in blocks[0]
    proc = run_python(blocks, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["service.ckpt"]


def test_python_examples_run_as_written(tmp_path: Path) -> None:
    blocks = page("API.md").blocks("python")
    assert len(blocks) >= 4
    proc = run_python(blocks, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "model._stats_lock lock rewrap" in proc.stdout
    assert "trust just these names: trust=['sample_models.service:InferenceService']" in proc.stdout
    assert "already exists (pass overwrite=True" in proc.stdout and "no such checkpoint: 'absent.ckpt'" in proc.stdout
    assert (tmp_path / "background.ckpt").is_file()


def test_deepcopy_example_runs_as_written() -> None:
    [block] = page("CLUSTERS.md").blocks("python", within="Copies: `copy.deepcopy`")
    proc = subprocess.run([sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


COMMAND_PAGES = [p.name for p in pages() if p.commands()]


def test_the_pages_with_commands_are_found() -> None:
    assert {"README.md", "docs/CLI.md", "docs/KINDS.md"} <= set(COMMAND_PAGES)
    assert "ckpt scan sample_models.service:build" in README.commands()


@pytest.mark.parametrize("name", COMMAND_PAGES)
def test_every_ckpt_command_works_as_written(name: str, run_ckpt, tmp_path: Path) -> None:
    """Each page's commands in order, in a directory of their own (a page
    that loads a file saves it first)."""
    commands = page(Path(name).name).commands()
    env = {"PYTHONPATH": str(REPO)}
    for command in commands:
        result = run_ckpt(*command.split()[1:], cwd=tmp_path, env=env)
        expected = 1 if command.startswith("ckpt scan") else 0  # the sample's findings are the point
        assert result.code == expected, (command, result)
        assert "Traceback" not in result.err and "error:" not in result.err, (command, result)


# --- docs/REMOTE.md: URLs ---------------------------------------------------------------


def url_blocks(scheme: str) -> list[str]:
    return [b for b in page("REMOTE.md").blocks("python") if f"{scheme}://" in b]


def test_the_s3_examples_run_against_a_real_s3_server(s3, run_ckpt, tmp_path: Path) -> None:
    """docs/REMOTE.md's s3:// commands and Python, as written, against moto's
    server, reached the way the page says: AWS_ENDPOINT_URL and credentials in the
    environment. `my-bucket` exists, as it would for a user."""
    with contextlib.suppress(s3.client.exceptions.BucketAlreadyOwnedByYou):
        s3.bucket("my-bucket")
    env = {**s3.env, "PYTHONPATH": str(REPO)}
    commands = [c for c in page("REMOTE.md").commands(urls=True) if "s3://" in c]
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
    from ckpt import config

    [toml] = [b for b in page("REMOTE.md").blocks("toml") if "storage-options" in b]
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
import ckpt
from sample_models import service
ckpt.save(service.build(), "gs://my-bucket/models/service.ckpt")
"""


def test_the_gcs_examples_run_against_a_stand_in(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    [block] = url_blocks("gs")
    commands = [c for c in page("REMOTE.md").commands(urls=True) if "gs://" in c]
    assert commands
    cli = "\nfrom ckpt.cli import main\n" + "".join(
        f"assert main({command.split()[1:]!r}) == 0\n" for command in commands)
    proc = subprocess.run([sys.executable, "-c", GCS_STAND_IN + block + cli], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "('sample_models.service:InferenceService',)" in proc.stdout
    assert "ckpt inspect: gs://my-bucket/models/service.ckpt" in proc.stdout


# --- every page: configuration examples and links ------------------------------------


def test_every_tool_ckpt_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """Each `[tool.ckpt]` block of every page, read as strictly as `ckpt check` reads it."""
    from ckpt import config

    examples = [(p.name, b) for p in pages() for b in p.blocks("toml") if b.startswith("[tool.ckpt]")]
    assert {name for name, _ in examples} >= {"README.md", "docs/CLI.md"}
    for name, toml in examples:
        (tmp_path / "pyproject.toml").write_text(toml)
        assert config.load(tmp_path / "pyproject.toml", strict=True), name


def test_the_readme_links_every_page_of_docs() -> None:
    linked = {target.split("#")[0] for target in README.links()}
    assert {f"docs/{p.path.name}" for p in pages()[1:]} <= linked


@pytest.mark.parametrize("name", [p.name for p in pages()])
def test_every_relative_link_resolves(name: str) -> None:
    """Files exist, and a `#fragment` names a heading of the page it points to."""
    source = page(Path(name).name)
    broken = []
    for target in source.links():
        if re.match(r"[a-z]+:", target):  # https://, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        resolved = (source.path.parent / file).resolve() if file else source.path
        if not resolved.exists():
            broken.append(target)
        elif fragment and fragment not in Page(resolved).anchors():
            broken.append(target)
    assert not broken, broken
