"""Reports a person can read: 1,000 like findings are one row (`--all` lists
each); JSON and SARIF always list each."""

from __future__ import annotations

from pathlib import Path

from conftest import RunCkpt

MANY = "sample_models.nested:many"


def test_like_findings_are_one_row_and_all_lists_each(run_ckpt: RunCkpt) -> None:
    grouped = run_ckpt("scan", MANY)
    assert grouped.code == 1, grouped
    assert "model['items'][*].lk: lock (_thread.lock) -> rewrap" in grouped.out
    assert "1,000 objects (--all lists each)" in grouped.out
    assert len(grouped.out.splitlines()) < 10
    every = run_ckpt("scan", MANY, "--all")
    assert every.code == 1 and "model['items'][999].lk: lock" in every.out and "[*]" not in every.out
    assert len(every.out.splitlines()) == 1_003  # the heading, 1,001 findings, the summary


def test_json_and_sarif_list_every_finding(run_ckpt: RunCkpt) -> None:
    assert len(run_ckpt("scan", MANY, "--format", "json").json()["findings"]) == 1_001
    assert len(run_ckpt("scan", MANY, "--format", "sarif").json()["runs"][0]["results"]) == 1_001


def test_save_groups_its_substitutions(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    saved = run_ckpt("save", MANY, "-o", str(tmp_path / "m.ckpt"))
    assert saved.code == 0, saved
    assert "model['items'][*].lk" in saved.out and len(saved.out.splitlines()) < 15
    again = run_ckpt("save", MANY, "-o", str(tmp_path / "m.ckpt"), "--force", "--all")
    assert "model['items'][999].lk" in again.out and "[*]" not in again.out


def test_a_few_like_findings_keep_their_exact_paths(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", "sample_models.nested:keyed")
    assert "list(model['pools'].values())[1]['lock']" in result.out and "[*]" not in result.out
