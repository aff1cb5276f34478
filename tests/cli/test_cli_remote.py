"""`ckpt save -o s3://...`, `ckpt load s3://...`, `ckpt inspect s3://...`
through the installed command, against a real S3 server (moto's, on
127.0.0.1) reached as a user reaches one: AWS_ENDPOINT_URL and credentials
in the environment, or storage options in [tool.ckpt] and on the command
line. (Interrupted and killed uploads: tests/reliability/test_remote_uploads.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Result, RunCkpt, S3Server, assert_one_line_error

import ckpt
from sample_models import service

pytest.importorskip("s3fs")

SERVICE = "sample_models.service:build"
SMALL_PARTS = ["--storage-option", f"default_block_size={5 << 20}"]


def test_load_verify_json_and_an_existing_object(s3: S3Server, run_ckpt: RunCkpt) -> None:
    """(The plain round trip, save -> load --verify -> inspect, is
    docs/REMOTE.md's S3 example: tests/test_docs.py runs it against this server.)"""
    bucket = s3.bucket()
    url = f"s3://{bucket}/service.ckpt"
    ckpt.save(service.build(), url, storage_options=s3.options)
    again = run_ckpt("save", SERVICE, "-o", url, env=s3.env)
    assert_one_line_error(again, 2, f"{url!r} already exists (pass --force to replace it")
    loaded = run_ckpt("load", url, "--verify", "--format", "json", env=s3.env)
    assert loaded.code == 0, loaded
    report = loaded.json()
    assert report["path"] == url and report["verify"]["ok"] and report["root_type"].endswith("InferenceService")
    assert s3.keys(bucket) == ["service.ckpt"] and s3.unfinished_uploads(bucket) == []


def test_storage_options_from_tool_ckpt_and_the_command_line(s3: S3Server, run_ckpt: RunCkpt,
                                                             tmp_path: Path) -> None:
    """No AWS_ENDPOINT_URL: the endpoint comes from [tool.ckpt], and
    --storage-option adds to (and overrides) what it says."""
    bucket = s3.bucket()
    url = f"s3://{bucket}/nested.ckpt"
    (tmp_path / "pyproject.toml").write_text(f'[tool.ckpt.storage-options.s3]\nendpoint_url = "{s3.endpoint}"\n')
    env = {**{k: v for k, v in s3.env.items() if k != "AWS_ENDPOINT_URL"}, "PYTHONPATH": str(REPO)}
    saved = run_ckpt("save", "sample_models.nested:cycle", "-o", url, *SMALL_PARTS, cwd=tmp_path, env=env)
    assert saved.code == 0 and s3.keys(bucket) == ["nested.ckpt"], saved
    wrong = run_ckpt("inspect", url, "--storage-option", "endpoint_url=http://127.0.0.1:9", cwd=tmp_path,
                     env={**env, "AWS_MAX_ATTEMPTS": "1"})
    assert_one_line_error(wrong, 2, f"cannot read {url!r}: ", "Could not connect to the endpoint URL")
    local = run_ckpt("inspect", "x.ckpt", "--storage-option", "anon=true", cwd=tmp_path, env=env)
    assert_one_line_error(local, 2, "--storage-option", "applies to URLs")


def test_errors_are_one_line(s3: S3Server, run_ckpt: RunCkpt) -> None:
    bucket = s3.bucket()
    missing = run_ckpt("load", f"s3://{bucket}/absent.ckpt", "--verify", env=s3.env)
    assert_one_line_error(missing, 2, f"no such checkpoint: 's3://{bucket}/absent.ckpt'")
    mapped = run_ckpt("load", f"s3://{bucket}/absent.ckpt", "--mmap", env=s3.env)
    assert_one_line_error(mapped, 2, f"--mmap maps a local file, and s3://{bucket}/absent.ckpt is remote "
                                     "(load it without --mmap")
    unknown = run_ckpt("inspect", "nosuchscheme://b/m.ckpt")
    assert_one_line_error(unknown, 2, "Protocol not known: nosuchscheme")


@pytest.mark.parametrize("blocked, missing", [("s3fs", "s3fs, which is"), ("fsspec", "fsspec and s3fs, which are")])
def test_a_missing_backend_names_the_extra_to_install(tmp_path: Path, blocked: str, missing: str) -> None:
    """s3fs (or fsspec) made unimportable in the `ckpt` process, as in an
    installation without the s3 extra; local checkpoints still work there."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; from ckpt.cli import main; "
            "sys.exit(main(sys.argv[1:]))")

    def run(*args: str) -> Result:
        return Result(subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                                     env={**os.environ, "NO_COLOR": "1"}, timeout=60))

    result = run("save", SERVICE, "-o", "s3://bucket/service.ckpt")
    assert_one_line_error(result, 2, f"cannot open 's3://bucket/service.ckpt': s3:// URLs need {missing} not "
                                     "installed (pip install 'ckpt[s3]')")
    if blocked == "fsspec":
        assert run("save", SERVICE, "-o", str(tmp_path / "local.ckpt")).code == 0
