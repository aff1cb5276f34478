"""A save to a URL that fails, is interrupted or killed mid-upload never
costs the object that was there, and leaves no visible partial one: against
a real S3 server (moto's, on 127.0.0.1) and fsspec's memory filesystem.

Failures are injected where they happen for real: inside s3fs's part upload
(a dropped connection, Ctrl-C as KeyboardInterrupt), SIGINT and SIGKILL sent
to `ckpt save` while the server holds the first part of its upload.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO, Result, S3Server, assert_one_line_error
from harness import installed_ckpt

import ckpt

s3fs = pytest.importorskip("s3fs")

PART = 5 << 20
"""S3's smallest part but the last: a 17 MB model is three parts (ckpt writes 8 MB at a time)."""

BIG_MODEL = """
import threading
import numpy as np

def build():
    return {"lock": threading.Lock(), "weights": np.ones(64 << 17)}  # 64 MB: eight parts of 8 MB
"""


def big_model(version: int) -> dict[str, Any]:
    return {"version": version, "lock": threading.Lock(), "weights": np.full(17 << 17, float(version))}  # 17 MB


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


# --- the real `ckpt save`, interrupted and killed ------------------------------------


@contextlib.contextmanager
def uploading(s3: S3Server, bucket: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`ckpt save --force` of a 64 MB model over s3://bucket/model.ckpt,
    yielded once the server has stored the first part of its upload and
    holds the next one unanswered (`S3Server.parts_held`): an interrupt or
    a kill there lands mid-upload, with no timing."""
    (tmp_path / "big.py").write_text(BIG_MODEL)
    with s3.parts_held():
        proc = subprocess.Popen([installed_ckpt(), "save", f"{tmp_path / 'big.py'}:build", "-o",
                                 f"s3://{bucket}/model.ckpt", "--force", "--storage-option",
                                 f"default_block_size={PART}"],
                                cwd=REPO, env={**os.environ, **s3.env, "NO_COLOR": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(parts for _, parts in s3.unfinished_uploads(bucket)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        yield proc


@pytest.fixture
def old_object(s3: S3Server) -> tuple[str, bytes]:
    bucket = s3.bucket()
    ckpt.save({"version": 1}, f"s3://{bucket}/model.ckpt", storage_options=s3.options)
    return bucket, s3.read(bucket, "model.ckpt")


def test_ctrl_c_mid_upload_aborts_it_and_keeps_the_old_object(s3: S3Server, old_object: tuple[str, bytes],
                                                              tmp_path: Path) -> None:
    bucket, before = old_object
    with uploading(s3, bucket, tmp_path) as proc:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert_one_line_error(Result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)), 130,
                          "interrupted")
    assert s3.read(bucket, "model.ckpt") == before
    assert s3.unfinished_uploads(bucket) == []  # aborted, parts and all


def test_kill_9_mid_upload_keeps_the_old_object(s3: S3Server, old_object: tuple[str, bytes],
                                                tmp_path: Path) -> None:
    """A killed process cannot abort its upload: the parts it stored stay
    (invisible to every reader, reclaimed by an AbortIncompleteMultipartUpload
    lifecycle rule), and the key still holds the old object."""
    bucket, before = old_object
    with uploading(s3, bucket, tmp_path) as proc:
        proc.kill()
        proc.communicate(timeout=60)
    assert s3.keys(bucket) == ["model.ckpt"] and s3.read(bucket, "model.ckpt") == before
    [(key, parts)] = s3.unfinished_uploads(bucket)
    assert key == "model.ckpt" and parts >= 1
    assert ckpt.load(f"s3://{bucket}/model.ckpt", storage_options=s3.options) == {"version": 1}
