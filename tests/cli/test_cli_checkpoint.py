"""`ckpt save`, `ckpt load` and `ckpt inspect` end to end, through the
installed command in a subprocess, on real files."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
from conftest import RunCkpt, assert_one_line_error, rewrite_member


@pytest.fixture
def saved(run_ckpt: RunCkpt, tmp_path: Path) -> Path:
    path = tmp_path / "service.ckpt"
    result = run_ckpt("save", "sample_models.service:build", "-o", str(path))
    assert result.code == 0, result
    return path


def test_save_reports_what_it_rewrapped(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    path = tmp_path / "s.ckpt"
    result = run_ckpt("save", "sample_models.service:build", "-o", str(path), "--format", "json")
    assert result.code == 0, result
    doc = result.json()
    assert doc["path"] == str(path) and doc["size"] == path.stat().st_size
    manifest = doc["manifest"]
    assert manifest["format"] == "ckpt" and manifest["format_version"] == 2
    assert manifest["signature"]["alg"] == "ed25519" and doc["signer"].startswith("SHA256:")
    assert manifest["target"] == "sample_models.service:build"
    assert {s["path"]: s["action"] for s in manifest["substitutions"]} == {
        "model.requests": "rewrap", "model._stats_lock": "rewrap", "model.pool": "rewrap",
        "model.handler": "rewrap", "model.ready": "rewrap", "model.worker": "strip",
    }
    assert set(manifest["members"]) == {"data.pkl"}
    for key in ("created", "ckpt_version", "python", "root_type", "modules"):
        assert key in manifest


def test_load_verify_against(run_ckpt: RunCkpt, saved: Path) -> None:
    result = run_ckpt("load", str(saved), "--verify", "--against", "sample_models.service:build", "--format", "json")
    assert result.code == 0, result
    doc = result.json()
    assert doc["root_type"] == "sample_models.service.InferenceService" and doc["objects"] > 10
    assert doc["verify"]["ok"] is True
    names = {c["name"]: c["ok"] for c in doc["verify"]["checks"]}
    assert names["primitives work"] and names["against target"] and names["hashes"]


def test_someone_elses_file_names_its_signer_and_both_ways_forward(run_ckpt: RunCkpt, saved: Path,
                                                                  tmp_path: Path) -> None:
    result = run_ckpt("load", str(saved), env={"CKPT_HOME": str(tmp_path / "another-user")})
    assert_one_line_error(result, 1, "a key you do not trust, so it loads as data only",
                          "sample_models.service:InferenceService (instantiated) is not trusted",
                          "ckpt key trust", f"ckpt sign {saved}", "--trust sample_models.service:InferenceService")
    assert "trust=" not in result.err  # the library's spelling, respelled as the flag


def test_a_trusted_signers_file_loads_whole(run_ckpt: RunCkpt, saved: Path, tmp_path: Path) -> None:
    """The signer exports a public key; another user trusts it (a file kept
    in their home, or --trusted-key); no private key ever leaves the signer."""
    exported = run_ckpt("key", "export")
    assert exported.code == 0 and exported.out.startswith("ssh-ed25519 "), exported
    public = tmp_path / "teammate.pub"
    public.write_text(exported.out)
    other = {"CKPT_HOME": str(tmp_path / "another-user")}
    by_flag = run_ckpt("load", str(saved), "--trusted-key", str(public), "--format", "json", env=other)
    assert by_flag.code == 0 and by_flag.json()["provenance"]["loads"] == "whole", by_flag
    trusted = run_ckpt("key", "trust", str(public), "--name", "teammate", env=other)
    assert trusted.code == 0 and "teammate" in trusted.out, trusted
    listed = run_ckpt("key", "list", "--format", "json", env=other)
    assert [k["role"] for k in listed.json()["keys"]] == ["trusted"], listed
    loaded = run_ckpt("load", str(saved), "--verify", env=other)
    assert loaded.code == 0 and "signed by teammate" in loaded.out, loaded
    assert not (tmp_path / "another-user" / "signing-key").exists()  # loading made no key
    untrusted = run_ckpt("key", "untrust", "teammate", env=other)
    assert untrusted.code == 0 and run_ckpt("load", str(saved), env=other).code == 1


def test_trust_and_trusted_keys_from_pyproject(run_ckpt: RunCkpt, saved: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "CKPT_HOME": str(tmp_path / "another-user")}
    (project / "pyproject.toml").write_text('[tool.ckpt]\ntrust = ["sample_models"]\n')
    as_data = run_ckpt("load", str(saved), "--format", "json", cwd=project, env=env)
    assert as_data.code == 0 and as_data.json()["provenance"]["loads"] == "data only", as_data
    (project / "keys").mkdir()
    (project / "keys" / "team.pub").write_text(run_ckpt("key", "export").out)
    (project / "pyproject.toml").write_text('[tool.ckpt]\ntrusted-keys = ["keys/team.pub"]\n')
    whole = run_ckpt("load", str(saved), "--format", "json", cwd=project, env=env)
    assert whole.code == 0 and whole.json()["provenance"]["loads"] == "whole", whole


def test_vouching_for_a_file_makes_it_load_whole(run_ckpt: RunCkpt, saved: Path, tmp_path: Path) -> None:
    other = {"CKPT_HOME": str(tmp_path / "another-user")}
    assert run_ckpt("load", str(saved), env=other).code == 1
    unasked = run_ckpt("sign", str(saved), env=other)  # no terminal to confirm on
    assert_one_line_error(unasked, 2, "--yes")
    signed = run_ckpt("sign", str(saved), "--yes", env=other)
    assert signed.code == 0 and "a key you do not trust" in signed.out and "now signed by you" in signed.out, signed
    assert run_ckpt("load", str(saved), "--verify", env=other).code == 0
    assert run_ckpt("load", str(saved)).code == 1  # the first signer's own copy is now someone else's


def test_save_refuses_to_overwrite_without_force(run_ckpt: RunCkpt, saved: Path) -> None:
    before = saved.read_bytes()
    result = run_ckpt("save", "sample_models.nested:cycle", "-o", str(saved))
    assert_one_line_error(result, 2, "already exists (pass --force to replace it;")
    assert "overwrite=" not in result.err
    assert saved.read_bytes() == before
    forced = run_ckpt("save", "sample_models.nested:cycle", "-o", str(saved), "--force")
    assert forced.code == 0 and "replaced" in forced.out


def test_save_refuses_unrewrappable_objects_naming_paths(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    out = tmp_path / "g.ckpt"
    result = run_ckpt("save", "sample_models.kinds:generator", "-o", str(out))
    assert_one_line_error(result, 1, "model.value (generator", "pass --strip model.value to save")
    assert not out.exists()
    stripped = run_ckpt("save", "sample_models.kinds:generator", "-o", str(out), "--strip", "model.value")
    assert stripped.code == 0, stripped
    assert "model.value" in stripped.out and "strip" in stripped.out


def test_strip_of_a_path_with_no_finding_names_the_flag(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    result = run_ckpt("save", "sample_models.nested:hidden", "-o", str(tmp_path / "h.ckpt"), "--strip", "model.nope")
    assert_one_line_error(result, 2, "error: --strip model.nope: no finding at that path")


def test_save_to_missing_directory(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    result = run_ckpt("save", "sample_models.nested:cycle", "-o", str(tmp_path / "no" / "m.ckpt"))
    assert_one_line_error(result, 2, "does not exist")


@pytest.mark.parametrize("command", ["load", "inspect"])
def test_missing_file(run_ckpt: RunCkpt, tmp_path: Path, command: str) -> None:
    assert_one_line_error(run_ckpt(command, str(tmp_path / "absent.ckpt")), 2, "no such checkpoint")


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_not_zip(path: Path) -> None:
    path.write_bytes(b"hello, I am a text file\n")


def damage_version(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["format_version"] = 3
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())


def damage_extra_member(path: Path) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("buffers/7", b"surprise")


def damage_evil_name(path: Path) -> None:
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("../../evil.py", b"import os")


def damage_hash(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        data = archive.read("data.pkl")
    rewrite_member(path, "data.pkl", data[:-2] + b"N.", fix_manifest=False)


DAMAGE = {
    "truncated": (damage_truncate, "truncated"),
    "bit flip": (damage_flip, ""),
    "not a zip": (damage_not_zip, "not a zip archive"),
    "unknown version": (damage_version, "format_version 3"),
    "extra member": (damage_extra_member, "edited"),
    "evil name": (damage_evil_name, "unexpected archive member"),
    "hash mismatch": (damage_hash, ""),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_files_are_refused_in_one_line(run_ckpt: RunCkpt, saved: Path, case: str) -> None:
    damage, fragment = DAMAGE[case]
    damage(saved)
    for args in (["load", str(saved)], ["load", str(saved), "--verify"]):
        assert_one_line_error(run_ckpt(*args), 1, fragment)


def test_inspect_shows_a_hostile_pickle_and_runs_nothing(run_ckpt: RunCkpt, saved: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    rewrite_member(saved, "data.pkl", pickle.dumps(Payload(), protocol=5))
    inspected = run_ckpt("inspect", str(saved), "--format", "json")
    assert inspected.code == 1, inspected  # altered after it was signed
    doc = inspected.json()
    assert doc["provenance"]["origin"] == "altered" and doc["provenance"]["loads"] == "data only"
    system = next(g for g in doc["globals"] if g["name"] == "posix:system")
    assert system["uses"] == ["called"] and not system["admitted"] and system["trust"] == "posix:system"
    assert any("altered" in p for p in doc["problems"])
    loaded = run_ckpt("load", str(saved), "--trust", "posix", "--verify")  # a package's trust admits no function
    assert_one_line_error(loaded, 1, "altered after it was signed", "posix:system (called) is not trusted")
    assert not sentinel.exists()


def test_inspect_of_an_intact_file(run_ckpt: RunCkpt, saved: Path) -> None:
    result = run_ckpt("inspect", str(saved))
    assert result.code == 0, result
    assert "nothing in it was run" in result.out and "signed by you" in result.out
    assert "whole, as plain pickle would" in result.out
    assert "model.worker" in result.out and "intact" in result.out


def test_save_and_load_help(run_ckpt: RunCkpt) -> None:
    for command, words in (("save", ["--strip", "--force", "atomically"]), ("load", ["--verify", "--trust", "--mmap"]),
                           ("inspect", ["nothing"])):
        result = run_ckpt(command, "--help")
        assert result.code == 0 and all(w in result.out for w in words), result


def test_text_from_a_checkpoint_cannot_drive_the_terminal(run_ckpt: RunCkpt, saved: Path) -> None:
    """A hand-edited manifest with escape sequences in its fields is shown
    with them escaped, never sent to the terminal."""
    with zipfile.ZipFile(saved) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["target"] = "\x1b[2J\x1b]0;pwned\x07[bold]markup[/bold]"
    manifest["substitutions"][0]["path"] = "model.\x1b[31mred"
    rewrite_member(saved, "manifest.json", json.dumps(manifest).encode())
    for args in (["inspect", str(saved)], ["load", str(saved), "--trust", "sample_models"]):  # altered: as data
        result = run_ckpt(*args)
        assert result.code == (1 if args[0] == "inspect" else 0), result  # inspect: "altered after it was signed"
        assert "\x1b" not in result.out and "\x07" not in result.out
        assert "\\x1b[2J" in result.out or "\\x1b[31mred" in result.out


def test_inspect_says_when_it_cannot_analyse_the_pickle(run_ckpt: RunCkpt, saved: Path) -> None:
    rewrite_member(saved, "data.pkl", b"\x80\x05\x8c\x05abc")  # consistent hashes, a pickle cut short
    result = run_ckpt("inspect", str(saved))
    assert result.code == 1, result
    assert "cannot analyse data.pkl: it is not a valid pickle" in result.out and "intact" not in result.out
    assert_one_line_error(run_ckpt("load", str(saved)), 1, "not a valid pickle")
