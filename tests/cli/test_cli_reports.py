"""Reports a person can read: 1,000 like findings are one row (`--all` lists
each); JSON and SARIF always list each."""

from __future__ import annotations

from pathlib import Path

from conftest import RunCkpt, assert_one_line_error

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


def test_save_to_stdout_is_refused_in_one_line(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    result = run_ckpt("save", "sample_models.service:build", "-o", "-", cwd=tmp_path)
    assert_one_line_error(result, 2, "not to stdout")
    assert not (tmp_path / "-").exists()


def test_inspect_titles_its_tables_and_prints_whole_hashes(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    path = str(tmp_path / "m.ckpt")
    assert run_ckpt("save", "sample_models.service:build", "-o", path).code == 0
    text = run_ckpt("inspect", path).out
    for title in ("members (", "substitutions (", "globals data.pkl refers to ("):
        assert any(line.startswith(title) for line in text.splitlines()), text
    sha256 = run_ckpt("inspect", path, "--format", "json").json()["manifest"]["members"]["data.pkl"]["sha256"]
    assert len(sha256) == 64 and sha256 in text and "…" not in text


def test_each_finding_says_what_happens_once(run_ckpt: RunCkpt) -> None:
    """The note says what happens to this object, then what its kind loses,
    without the kind's generic sentence about every other case."""
    out = run_ckpt("scan", "sample_models.service:build").out
    assert "model.requests: queue (queue.Queue) -> rewrap: 2 item(s) kept; lost: nothing\n" in out
    assert "model.handler: log-handler (logging.StreamHandler) -> rewrap: writes to the loading process's stderr; " \
           "lost: an open stream\n" in out
    assert "standard streams are rebound" not in out


LOGGED = """
import logging

def build():
    log = logging.getLogger("reports.logged")
    log.handlers[:] = [logging.NullHandler(), logging.NullHandler()]
    return {"log": log, "quiet": logging.getLogger("reports.quiet")}
"""


def test_a_logger_with_handlers_is_said_to_lose_them(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    """Plain pickle saves a logger by name (no finding), but its handlers stay in this process."""
    (tmp_path / "logged.py").write_text(LOGGED)
    said = ("logger 'reports.logged' is restored by name (the loading process's logger of that name): "
            "its 2 handlers (NullHandler) belong to this process and are not saved")
    scanned = run_ckpt("scan", "logged:build", cwd=tmp_path)
    assert scanned.code == 0 and f"note: {said}" in scanned.out and "reports.quiet" not in scanned.out, scanned
    assert run_ckpt("scan", "logged:build", "--format", "json", cwd=tmp_path).json()["notices"] == [said]
    saved = run_ckpt("save", "logged:build", "-o", "m.ckpt", cwd=tmp_path)
    assert saved.code == 0 and f"note: {said}" in saved.out, saved
