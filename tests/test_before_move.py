"""A checkpoint written before ckpt's modules moved into src/ckpt/ loads
after the move, and what it restores works: every name such a file refers
to is still importable (tests/data/README.md)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import REPO, RunCkpt

import ckpt
from sample_models import before_move

DATA = REPO / "tests" / "data"
FILE = DATA / "before-move.ckpt"
KEY = DATA / "before-move.pub"

pytestmark = pytest.mark.xdist_group("before-move")  # the files it reopens sit at one fixed path


def test_it_loads_whole_from_its_trusted_signer_and_works() -> None:
    before_move.make_files()
    model = ckpt.load(FILE, trusted_keys=[KEY])
    assert model["reader"].readline() == before_move.LINES[1]  # reopened where it was saved
    assert model["db"].execute("select sum(n) from rows").fetchone() == (6,)
    assert model["jobs"].get_nowait() == "job-1"
    assert (model["lookup"].name, model["lookup"].size) == ("settings", 3)
    lock, held = model["lock"], []
    with lock:
        worker = threading.Thread(target=lambda: held.append(lock.acquire(timeout=0.05)))
        worker.start()
        worker.join()
    assert held == [False] and lock.acquire(timeout=1)


def test_ckpt_verify_passes_on_it(run_ckpt: RunCkpt) -> None:
    before_move.make_files()
    result = run_ckpt("verify", str(FILE), "--trusted-key", str(KEY))
    assert result.code == 0, result


def test_from_an_untrusted_signer_it_is_refused_for_the_state_setter_alone(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    """Data only, with the old names trusted as a config written before the
    move would: what stops it is only what no data load runs."""
    trust = ("sample_models.before_move:Lookup", "ckpt.core.lazy:LazyFile", "ckpt.core.lazy:LazyConnection")
    result = run_ckpt("load", str(FILE), *(f"--trust={name}" for name in trust))
    assert result.code == 1, result
    assert "ckpt.core.rewrap:set_state" in result.err and "signer you trust" in result.err, result
    assert "LazyFile" not in result.err and "LazyConnection" not in result.err, result
