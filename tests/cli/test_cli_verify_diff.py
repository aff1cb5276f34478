"""`ckpt verify`, `ckpt diff` and the arrays `ckpt inspect` lists, end to
end: the installed command in a subprocess, on files it saved."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, RunCkpt, assert_one_line_error, flip_byte, rewrite_member

NET = """
import os
import threading

import numpy as np


class Net:
    def __init__(self, step):
        rng = np.random.default_rng(0)
        self.weights = {"fc1": rng.standard_normal((128, 256)).astype(np.float32),
                        "fc2": np.asfortranarray(rng.standard_normal((256, 64)))}
        self.tied = self.weights["fc1"]
        self.bias = np.zeros(8, dtype=np.float32)  # small: inside data.pkl
        self.lock = threading.Lock()
        self.step = step
        if step:
            self.weights["fc1"][3, 5] += 0.5
            self.weights["fc1"][7, 1] = np.nan


def build():
    return Net(int(os.environ.get("STEP", "0")))
"""


@pytest.fixture(scope="module")
def saved_net(tmp_path_factory: pytest.TempPathFactory, ckpt_exe: str) -> Path:
    """Two checkpoints of one model, a training step apart (one weight moved by 0.5, one became NaN), saved once."""
    folder = tmp_path_factory.mktemp("net")
    (folder / "netmod.py").write_text(textwrap.dedent(NET))
    for step in ("0", "1"):
        saved = subprocess.run([ckpt_exe, "save", "netmod:build", "-o", f"step{step}.ckpt"], cwd=folder,
                               capture_output=True, text=True, env={**os.environ, "STEP": step}, timeout=120)
        assert saved.returncode == 0, saved.stderr
    return folder


@pytest.fixture
def net(saved_net: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The two checkpoints, and the model's module, in this test's own directory (tests damage them)."""
    for name in ("netmod.py", "step0.ckpt", "step1.ckpt"):
        shutil.copy(saved_net / name, tmp_path / name)
    return tmp_path / "step0.ckpt", tmp_path / "step1.ckpt"


def test_inspect_lists_each_array_by_path_like_a_safetensors_header(run_ckpt: RunCkpt, net: tuple[Path, Path]
                                                                     ) -> None:
    first, _ = net
    text = run_ckpt("inspect", str(first))
    assert text.code == 0, text
    assert "arrays (written out of band, listed by the manifest)" in text.out
    assert "model.weights['fc1']  numpy.ndarray  float32  [128, 256]  131.1 kB  buffers/0" in text.out
    assert "also at model.tied" in text.out
    doc = run_ckpt("inspect", str(first), "--format", "json").json()
    arrays = {a["path"]: a for a in doc["arrays"]}
    assert set(arrays) == {"model.weights['fc1']", "model.weights['fc2']"}  # the bias is too small to go out of band
    fc2 = arrays["model.weights['fc2']"]
    assert (fc2["dtype"], fc2["shape"], fc2["strides"], fc2["nbytes"]) == ("float64", [256, 64], [8, 2048], 131072)
    assert doc["manifest"]["arrays"][0]["also_at"] == ["model.tied"]


def test_diff_reports_each_array_by_path_with_how_much_it_changed(run_ckpt: RunCkpt, net: tuple[Path, Path]) -> None:
    first, second = net
    text = run_ckpt("diff", str(first), str(second))
    assert text.code == 1, text
    assert "1 of 2 arrays differ, data.pkl differs" in text.out
    assert "model.weights['fc1']  changed  float32 [128, 256]  2 of 32,768 elements; largest |a-b| inf" in text.out
    assert "model.weights['fc2']  same" in text.out
    doc = run_ckpt("diff", str(first), str(second), "--format", "json").json()
    assert doc["schema_version"] == 1 and doc["equal"] is False and doc["data_same"] is False
    fc1, fc2 = doc["arrays"]
    assert (fc1["path"], fc1["status"], fc1["elements_changed"], fc1["largest_difference"]) == (
        "model.weights['fc1']", "changed", 2, "inf")  # JSON has no infinity: a NaN against a number
    assert (fc2["status"], fc2["elements_changed"]) == ("same", None)  # same bytes: not even read


def test_diff_of_equal_content_is_exit_0(run_ckpt: RunCkpt, net: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = net
    again = tmp_path / "again.ckpt"
    assert run_ckpt("save", "netmod:build", "-o", str(again), cwd=tmp_path).code == 0
    result = run_ckpt("diff", str(first), str(again), "--format", "json")
    assert result.code == 0 and result.json()["equal"] is True, result
    assert [c["field"] for c in result.json()["manifest"]] == []  # same versions, same signer


def test_diff_runs_nothing_from_either_file(run_ckpt: RunCkpt, net: tuple[Path, Path], tmp_path: Path) -> None:
    """A file whose data.pkl would run a command if unpickled, compared by
    another user, from a directory where the model's module does not import."""
    first, second = net
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {canary}",)

    rewrite_member(second, "data.pkl", pickle.dumps(Payload(), protocol=5))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_ckpt("diff", str(first), str(second), cwd=elsewhere, env={"CKPT_HOME": str(tmp_path / "other")})
    assert result.code == 1 and "data.pkl differs" in result.out, result
    assert "signer" not in result.out  # altered, but still signed by the same key: only bytes are compared
    assert not canary.exists()


def test_diff_of_a_file_that_lists_no_arrays_compares_its_buffers_as_bytes(run_ckpt: RunCkpt,
                                                                          net: tuple[Path, Path]) -> None:
    first, second = net
    with zipfile.ZipFile(second) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    del manifest["arrays"]  # as an older ckpt wrote it
    rewrite_member(second, "manifest.json", json.dumps(manifest).encode())
    doc = run_ckpt("diff", str(first), str(second), "--format", "json").json()
    assert any("lists no arrays" in note for note in doc["notes"]), doc
    by_key = {a["path"]: a["status"] for a in doc["arrays"]}
    assert by_key["buffers/0"] == "added" and by_key["model.weights['fc1']"] == "removed"


def test_diff_refuses_damaged_and_missing_files_as_bad_input(run_ckpt: RunCkpt, net: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    first, second = net
    flip_byte(second, "buffers/0")
    assert_one_line_error(run_ckpt("diff", str(first), str(second)), 2, "cannot compare", "buffers/0")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert_one_line_error(run_ckpt("diff", str(tmp_path / "notes.ckpt"), str(first)), 2, "not a zip archive")
    missing = run_ckpt("diff", str(first), str(tmp_path / "absent.ckpt"), "--format", "json")
    assert_one_line_error(missing, 2, "no such checkpoint")
    assert missing.json()["error"]["exit_code"] == 2


def test_the_library_returns_a_frozen_dataclass(net: tuple[Path, Path]) -> None:
    import dataclasses

    import ckpt

    first, second = net
    result = ckpt.diff(first, second)
    assert isinstance(result, ckpt.Diff) and not result.equal and result.exit_code == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.a = "x"  # type: ignore[misc]
    [fc1] = [a for a in result.arrays if a.key == "model.weights['fc1']"]
    assert fc1.status == "changed" and fc1.elements == 2 and fc1.largest == float("inf")


# --- verify -------------------------------------------------------------------


def test_verify_checks_each_file_and_fails_if_any_fails(run_ckpt: RunCkpt, net: tuple[Path, Path]) -> None:
    first, second = net
    flip_byte(second, "buffers/1")
    result = run_ckpt("verify", str(first), str(second), cwd=first.parent)  # where the model's module imports
    assert result.code == 1, result
    assert f"ckpt verify: {first}: ok" in result.out and f"ckpt verify: {second}: FAIL" in result.out
    assert "ckpt verify: 2 files, 1 failed" in result.out
    doc = run_ckpt("verify", str(first), str(second), "--format", "json", cwd=first.parent).json()
    assert [f["ok"] for f in doc["files"]] == [True, False] and doc["ok"] is False
    checks = {c["name"]: c for c in doc["files"][0]["checks"]}
    assert {"hashes", "signature", "load", "primitives work"} <= set(checks)
    assert checks["load"]["detail"] == "netmod.Net loaded whole"


def test_verify_trusts_what_it_is_told_to(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    """Another user's file fails on its signature until its signer's public key is given."""
    saved = tmp_path / "service.ckpt"
    assert run_ckpt("save", "sample_models.service:build", "-o", str(saved)).code == 0
    public = tmp_path / "team.pub"
    public.write_text(run_ckpt("key", "export").out)
    other = {"CKPT_HOME": str(tmp_path / "another-user")}
    untrusted = run_ckpt("verify", str(saved), "--trust", "sample_models", env=other)
    assert untrusted.code == 1 and "signature        FAIL" in untrusted.out, untrusted
    trusted = run_ckpt("verify", str(saved), "--trusted-key", str(public), "--against", "sample_models.service:build",
                       env=other)
    assert trusted.code == 0 and "against target   ok" in trusted.out, trusted


def test_verify_bad_input_is_exit_2(run_ckpt: RunCkpt, net: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = net
    assert_one_line_error(run_ckpt("verify", str(first), str(tmp_path / "absent.ckpt")), 2, "no such checkpoint")
    assert_one_line_error(run_ckpt("verify", str(first), "--against", "netmod:nope", cwd=tmp_path), 2, "nope")
    assert_one_line_error(run_ckpt("verify"), 2, "Missing argument")


@pytest.mark.parametrize("command", ["load", "inspect", "verify"])
def test_a_trust_entry_naming_nothing_installed_is_a_typo(run_ckpt: RunCkpt, net: tuple[Path, Path],
                                                         command: str) -> None:
    first, _ = net
    result = run_ckpt(command, str(first), "--trust", "sampel_models", "--trust", "numpy")  # from the repository
    assert_one_line_error(result, 2, "trust entry 'sampel_models': no module or package 'sampel_models' is installed",
                          "did you mean 'sample_models'?")
    spelled = run_ckpt(command, str(first), "--trust", "sample_models", cwd=first.parent, env={"PYTHONPATH": str(REPO)})
    assert spelled.code == 0, spelled
