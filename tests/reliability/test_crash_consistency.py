"""A save that dies — kill -9, Ctrl-C, an unwritable directory, a full disk,
a second writer — never costs the checkpoint that was there.

After each: the path holds a checkpoint that verifies (the old one, or the
new one if the save got that far), and no temporary file is left behind
except by a killed writer, whose leftovers the next save removes.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, Result, assert_one_line_error, unwritable
from harness import installed_ckpt, run_limited
from killed_saves import model
from stalling import OUTPUT_ENV

import ckpt
from ckpt.errors import WriteError

pytestmark = pytest.mark.slow  # started early, so the two workers finish together (conftest.py)

HERE = Path(__file__).resolve().parent
TEMPORARIES = ".model.ckpt.*.ckpt-tmp"


def version_of(path: Path) -> int:
    """The checkpoint at `path` verifies, and holds exactly model(1) or model(2): which."""
    assert ckpt.verify(path).ok, ckpt.verify(path).failures
    loaded = ckpt.load(path)
    expected = model(loaded["version"])
    assert loaded["version"] in (1, 2) and loaded["log"] == expected["log"]
    assert all(np.array_equal(a, b) for a, b in zip(loaded["layers"], expected["layers"], strict=True))
    return loaded["version"]


def test_sigkill_at_random_moments_leaves_the_old_or_the_new_checkpoint(tmp_path: Path) -> None:
    trials = 50
    old = tmp_path / "old.ckpt"
    ckpt.save(model(1), old)
    for trial in range(trials):
        (tmp_path / f"trial{trial}").mkdir()
        os.link(old, tmp_path / f"trial{trial}" / "model.ckpt")  # replaced, never written in place
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(HERE / "killed_saves.py"), str(tmp_path), str(trials), "2026"],
                   check=True, env=env, timeout=300)
    seen: collections.Counter[tuple[int, bool]] = collections.Counter()
    for trial in range(trials):
        directory = tmp_path / f"trial{trial}"
        seen[version_of(directory / "model.ckpt"), any(directory.glob(TEMPORARIES))] += 1
    killed_mid_write = seen[1, True] + seen[2, True]
    assert killed_mid_write and seen[1, False] + seen[1, True] and seen[2, False], seen  # every moment was hit
    for trial in range(trials):
        directory = tmp_path / f"trial{trial}"
        if any(directory.glob(TEMPORARIES)):
            ckpt.save({"version": 3}, directory / "model.ckpt", overwrite=True)
            assert not any(directory.glob(TEMPORARIES)), "the next save leaves a dead writer's temporary"
            assert ckpt.load(directory / "model.ckpt") == {"version": 3}


# --- interrupting the real `ckpt save` at a known moment ---------------------------


@pytest.fixture
def old_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "model.ckpt"
    ckpt.save(model(1, layers=1), path)
    return path


def stalled_save(output: Path) -> subprocess.Popen[str]:
    """`ckpt save --force` over `output`, stopped in the middle of writing it."""
    proc = subprocess.Popen([installed_ckpt(), "save", str(HERE / "stalling.py") + ":build", "-o", str(output),
                             "--force"], cwd=REPO, env={**os.environ, OUTPUT_ENV: str(output), "NO_COLOR": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (output.parent / "writing").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


def finished(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=60)
    return Result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def test_ctrl_c_during_ckpt_save_exits_130_and_keeps_the_old_file(old_checkpoint: Path) -> None:
    before = old_checkpoint.read_bytes()
    proc = stalled_save(old_checkpoint)
    proc.send_signal(signal.SIGINT)
    assert_one_line_error(finished(proc), 130, "interrupted")
    assert old_checkpoint.read_bytes() == before
    assert not any(old_checkpoint.parent.glob(TEMPORARIES))


def test_kill_9_during_ckpt_save_keeps_the_old_file_and_the_next_save_cleans_up(old_checkpoint: Path) -> None:
    before = old_checkpoint.read_bytes()
    proc = stalled_save(old_checkpoint)
    proc.kill()
    assert finished(proc).code == -signal.SIGKILL
    assert old_checkpoint.read_bytes() == before
    [leftover] = old_checkpoint.parent.glob(TEMPORARIES)
    assert str(proc.pid) in leftover.name
    result = run_limited(["save", "sample_models.nested:cycle", "-o", str(old_checkpoint), "--force"])
    assert result.code == 0, result
    assert not leftover.exists() and ckpt.verify(old_checkpoint, trust=["sample_models"]).ok


def test_unwritable_directory_is_one_line_and_keeps_the_old_file(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    ckpt.save(model(1, layers=1), directory / "model.ckpt")
    before = (directory / "model.ckpt").read_bytes()
    with unwritable(directory):
        result = run_limited(["save", "sample_models.service:build", "-o", str(directory / "model.ckpt"), "--force"])
        assert_one_line_error(result, 2, "permission denied")
        assert sorted(p.name for p in directory.iterdir()) == ["model.ckpt"]
    assert (directory / "model.ckpt").read_bytes() == before


# --- a full disk ------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


BIG_MODELS = """\
import threading
import numpy as np
def python_objects():
    return {"log": [f"step {i}" for i in range(200_000)], "lock": threading.Lock()}
def arrays():
    return {"w": np.ones(300_000), "lock": threading.Lock()}
"""


@pytest.mark.parametrize("factory", ["python_objects", "arrays"])
def test_full_disk_is_one_line_and_keeps_the_old_file(full_disk: Path, tmp_path: Path, factory: str) -> None:
    """Whether the disk fills while data.pkl streams out or while an array is
    written: the same error, the old checkpoint intact, no temporary left."""
    (tmp_path / "big.py").write_text(BIG_MODELS)
    path = full_disk / "model.ckpt"
    ckpt.save({"version": 1}, path)
    before = path.read_bytes()
    result = run_limited(["save", f"{tmp_path / 'big.py'}:{factory}", "-o", str(path), "--force"])
    assert_one_line_error(result, 2, "no space left on the device", "previous file is intact")
    assert path.read_bytes() == before
    assert [p.name for p in full_disk.iterdir()] == ["model.ckpt"]
    with pytest.raises(WriteError, match="no space left"):
        ckpt.save(model(2), path, overwrite=True)
    assert path.read_bytes() == before and [p.name for p in full_disk.iterdir()] == ["model.ckpt"]


# --- two writers -----------------------------------------------------------------


def test_two_processes_saving_to_one_path_leave_one_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    saver = ("import sys, ckpt as c; from killed_saves import model; m = model(int(sys.argv[1]), layers=1)\n"
             "for _ in range(15): c.save(m, sys.argv[2], overwrite=True)")
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}"}
    writers = [subprocess.Popen([sys.executable, "-c", saver, str(version), str(path)], env=env,
                                stderr=subprocess.PIPE, text=True) for version in (1, 2)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read() if writer.stderr else ""
    assert ckpt.verify(path).ok
    assert ckpt.load(path)["version"] in (1, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]
