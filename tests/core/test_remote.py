"""Checkpoints at fsspec URLs, through the API, against a real S3 server
(moto's, on 127.0.0.1) and fsspec's memory filesystem: the same archive as
a local save, an object that appears whole or not at all, the old one
intact after any failure, and the multipart upload aborted."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckpt.core as ckpt
from conftest import REPO, S3Server
from sample_models import service

s3fs = pytest.importorskip("s3fs")

TRUST = ["sample_models"]
PART = 5 << 20
"""S3's smallest part but the last: a 17 MB model is three parts (ckpt writes 8 MB at a time)."""


def big_model(version: int) -> dict[str, Any]:
    return {"version": version, "lock": threading.Lock(), "weights": np.full(17 << 17, float(version))}  # 17 MB


def test_importing_ckpt_imports_no_fsspec() -> None:
    code = "import sys, ckpt.core, ckpt.cli; print(sorted(m for m in ('fsspec', 's3fs') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_s3_round_trip_with_storage_options(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/models/service.ckpt"
    saved = ckpt.save(service.build(), url, storage_options=s3.options)
    assert saved.path == url and not saved.replaced
    assert s3.keys(bucket) == ["models/service.ckpt"]
    loaded = ckpt.load(url, trust=saved.manifest.trust, storage_options=s3.options)
    assert loaded.requests.qsize() == 2 and loaded._stats_lock.acquire(blocking=False)
    result = ckpt.verify(url, trust=TRUST, against=service.build(), storage_options=s3.options)
    assert result.ok and result.path == url, result.failures
    info = ckpt.inspect(url, storage_options=s3.options)
    assert info.path == url and info.untrusted == ("sample_models.service:InferenceService",)
    # the object is the very archive a local save writes: downloaded, it is a checkpoint file
    local = tmp_path / "downloaded.ckpt"
    local.write_bytes(s3.read(bucket, "models/service.ckpt"))
    assert local.stat().st_size == saved.size and ckpt.verify(local, trust=TRUST).ok
    assert ckpt.save(service.build(), url, storage_options=s3.options).replaced


def test_overwrite_false_refuses_an_existing_object(s3: S3Server) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/m.ckpt"
    ckpt.save({"v": 1}, url, storage_options=s3.options)
    before = s3.read(bucket, "m.ckpt")
    with pytest.raises(ckpt.WriteError, match=r"already exists \(pass overwrite=True to replace it"):
        ckpt.save({"v": 2}, url, overwrite=False, storage_options=s3.options)
    assert s3.read(bucket, "m.ckpt") == before and s3.unfinished_uploads(bucket) == []


class _FailAfter:
    """Makes s3fs's upload fail once `parts` parts are stored, as a dropped
    connection or Ctrl-C would, having checked that they are stored."""

    def __init__(self, s3: S3Server, bucket: str, parts: int, error: BaseException) -> None:
        self.s3, self.bucket, self.parts, self.error = s3, bucket, parts, error
        self.seen: list[tuple[str, int]] = []

    def upload_chunk(self, original: Any) -> Any:
        def upload_chunk(file: Any, final: bool = False) -> Any:
            if len(file.parts or ()) >= self.parts:
                self.seen = self.s3.unfinished_uploads(self.bucket)
                raise self.error
            return original(file, final)

        return upload_chunk


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"), KeyboardInterrupt()],
                         ids=["connection-lost", "ctrl-c"])
def test_a_failure_mid_upload_aborts_it_and_keeps_the_old_object(s3: S3Server, monkeypatch: pytest.MonkeyPatch,
                                                                 error: BaseException) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/model.ckpt"
    options = {**s3.options, "default_block_size": PART}
    ckpt.save(big_model(1), url, storage_options=options)
    before = s3.read(bucket, "model.ckpt")
    fail = _FailAfter(s3, bucket, 2, error)
    monkeypatch.setattr(s3fs.core.S3File, "_upload_chunk", fail.upload_chunk(s3fs.core.S3File._upload_chunk))
    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            ckpt.save(big_model(2), url, storage_options=options)
    else:
        with pytest.raises(ckpt.WriteError) as raised:
            ckpt.save(big_model(2), url, storage_options=options)
        assert str(raised.value) == (f"cannot write {url!r}: ConnectionResetError: [Errno 104] Connection reset by "
                                     "peer; no new object was made and any previous one is intact")
    assert fail.seen == [("model.ckpt", 2)]  # the failure came mid-upload, two parts stored
    assert s3.read(bucket, "model.ckpt") == before
    assert s3.unfinished_uploads(bucket) == []  # aborted: its parts are gone, not billed
    assert ckpt.load(url, storage_options=options)["version"] == 1


def test_a_small_object_is_committed_only_once_all_of_it_is_stored(s3: S3Server,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No one-shot PUT at close: even a small archive is one part of a
    multipart upload, and Ctrl-C before it is completed leaves nothing."""
    bucket = s3.bucket()
    url = f"s3://{bucket}/small.ckpt"
    ckpt.save({"v": 1}, url, storage_options=s3.options)
    before = s3.read(bucket, "small.ckpt")
    seen = []

    def interrupted_commit(file: Any) -> None:
        seen.extend(s3.unfinished_uploads(bucket))
        raise KeyboardInterrupt

    monkeypatch.setattr(s3fs.core.S3File, "commit", interrupted_commit)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save({"v": 2}, url, storage_options=s3.options)
    assert seen == [("small.ckpt", 1)]
    assert s3.read(bucket, "small.ckpt") == before and s3.unfinished_uploads(bucket) == []


def test_concurrent_writers_leave_one_complete_checkpoint(s3: S3Server) -> None:
    """Two saves to one key: the last upload to complete wins, whole."""
    bucket = s3.bucket()
    url = f"s3://{bucket}/model.ckpt"
    options = {**s3.options, "default_block_size": PART}
    threads = [threading.Thread(target=ckpt.save, args=(big_model(v), url), kwargs={"storage_options": options})
               for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded = ckpt.load(url, storage_options=options)
    assert loaded["version"] in (1, 2) and (loaded["weights"] == loaded["version"]).all()
    assert ckpt.verify(url, storage_options=options).ok and s3.unfinished_uploads(bucket) == []


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
    assert ckpt.load("memory://ckpt-tests/service.ckpt", trust=TRUST).requests.qsize() == 2
    assert ckpt.verify("memory://ckpt-tests/service.ckpt", trust=TRUST).ok
    with pytest.raises(ckpt.WriteError, match="already exists"):
        ckpt.save(model, "memory://ckpt-tests/service.ckpt", overwrite=False)
    url = (tmp_path / "local.ckpt").as_uri()  # file:// is the local path, written atomically
    ckpt.save(model, url)
    assert (tmp_path / "local.ckpt").is_file() and ckpt.load(url, trust=TRUST, mmap=True).requests.qsize() == 2


def test_memory_url_keeps_the_old_object_when_interrupted_mid_upload() -> None:
    """fsspec's memory filesystem makes a file visible as it opens it, unless
    in a transaction: the save's own filesystem instance is in one."""
    fsspec = pytest.importorskip("fsspec")
    url = "memory://ckpt-tests/interrupted.ckpt"
    ckpt.save(big_model(1), url)
    before = fsspec.filesystem("memory").cat_file(url)

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "uploading" and done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ckpt.save(big_model(2), url, progress=progress)
    assert fsspec.filesystem("memory").cat_file(url) == before


def test_storage_options_are_for_urls(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="storage_options apply to URLs"):
        ckpt.save({"v": 1}, tmp_path / "m.ckpt", storage_options={"anon": True})
