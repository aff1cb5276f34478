"""Checkpoints at fsspec URLs through the API, against a real S3 server
(moto's, on 127.0.0.1) and fsspec's memory filesystem: the same archive as
a local save, options from `storage_options=`, one line for each error.
(Failed, interrupted and killed uploads: tests/reliability/test_remote_uploads.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, S3Server

import ckpt
from sample_models import service

s3fs = pytest.importorskip("s3fs")

def test_importing_ckpt_imports_no_fsspec() -> None:
    code = "import sys, ckpt, ckpt.cli; print(sorted(m for m in ('fsspec', 's3fs') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_s3_round_trip_with_storage_options(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/models/service.ckpt"
    saved = ckpt.save(service.build(), url, storage_options=s3.options)
    assert saved.path == url and not saved.replaced
    assert s3.keys(bucket) == ["models/service.ckpt"]
    loaded = ckpt.load(url, storage_options=s3.options)
    assert loaded.requests.qsize() == 2 and loaded._stats_lock.acquire(blocking=False)
    result = ckpt.verify(url, against=service.build(), storage_options=s3.options)
    assert result.ok and result.path == url, result.failures
    info = ckpt.inspect(url, storage_options=s3.options)
    assert info.path == url and info.provenance.whole
    # the object is the very archive a local save writes: downloaded, it is a checkpoint file
    local = tmp_path / "downloaded.ckpt"
    local.write_bytes(s3.read(bucket, "models/service.ckpt"))
    assert local.stat().st_size == saved.size and ckpt.verify(local).ok
    assert ckpt.save(service.build(), url, storage_options=s3.options).replaced


def test_overwrite_false_refuses_an_existing_object(s3: S3Server) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/m.ckpt"
    ckpt.save({"v": 1}, url, storage_options=s3.options)
    before = s3.read(bucket, "m.ckpt")
    with pytest.raises(ckpt.WriteError, match=r"already exists \(pass overwrite=True to replace it"):
        ckpt.save({"v": 2}, url, overwrite=False, storage_options=s3.options)
    assert s3.read(bucket, "m.ckpt") == before and s3.unfinished_uploads(bucket) == []


def test_missing_object_and_bucket_are_one_line(s3: S3Server) -> None:
    bucket = s3.bucket()
    with pytest.raises(FileNotFoundError) as raised:
        ckpt.load(f"s3://{bucket}/absent.ckpt", storage_options=s3.options)
    assert isinstance(raised.value, ckpt.MissingFileError)
    assert str(raised.value) == f"no such checkpoint: 's3://{bucket}/absent.ckpt'"
    with pytest.raises(ckpt.WriteError, match="cannot write 's3://no-such-bucket-here/m.ckpt': no such bucket"):
        ckpt.save({"v": 1}, "s3://no-such-bucket-here/m.ckpt", storage_options=s3.options)
    assert ckpt.verify(f"s3://{bucket}/absent.ckpt", storage_options=s3.options).failures[0].detail == (
        f"no such checkpoint: 's3://{bucket}/absent.ckpt'")


def test_no_credentials_is_one_line(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ckpt.CkptError) as raised:
        ckpt.load(f"s3://{s3.bucket()}/m.ckpt", storage_options={"endpoint_url": s3.endpoint})
    assert str(raised.value).endswith("/m.ckpt': NoCredentialsError: Unable to locate credentials")


def test_mmap_is_for_local_files(s3: S3Server) -> None:
    with pytest.raises(ckpt.CkptError, match=r"^mmap=True maps a local file, and s3://b/m.ckpt is remote"):
        ckpt.load("s3://b/m.ckpt", mmap=True)


def test_memory_and_file_urls_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    model = service.build()
    ckpt.save(model, "memory://ckpt-tests/service.ckpt")
    assert ckpt.load("memory://ckpt-tests/service.ckpt").requests.qsize() == 2
    assert ckpt.verify("memory://ckpt-tests/service.ckpt").ok
    with pytest.raises(ckpt.WriteError, match="already exists"):
        ckpt.save(model, "memory://ckpt-tests/service.ckpt", overwrite=False)
    url = (tmp_path / "local.ckpt").as_uri()  # file:// is the local path, written atomically
    ckpt.save(model, url)
    assert (tmp_path / "local.ckpt").is_file() and ckpt.load(url, mmap=True).requests.qsize() == 2


def test_storage_options_are_for_urls(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="storage_options apply to URLs"):
        ckpt.save({"v": 1}, tmp_path / "m.ckpt", storage_options={"anon": True})
