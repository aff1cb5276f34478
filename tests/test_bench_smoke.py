"""bench/run.py still runs end to end (tiny models, one repeat). No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # started early, so the two workers finish together (conftest.py)

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_a_table(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    command = [sys.executable, "bench/run.py", "--quick", "--models", "object_heavy", "--repeats", "1",
               "--out", str(out), "--json", str(raw), "--tmpdir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    [model] = json.loads(raw.read_text())
    rows = {(row["tool"], row["variant"]): row["results"] for row in model["rows"]}
    assert "TypeError" in rows["pickle", "as_is"]["save"]["error"]  # plain pickle refuses the model
    for op in ("save", "load", "verify"):
        assert rows["ckpt", "as_is"][op]["ok"], rows["ckpt", "as_is"][op]
    assert rows["pickle", "fixed"]["load"]["ok"]
    assert all(profile["ok"] for profile in model["profiles"].values()), model["profiles"]

    markdown = out.read_text()
    for heading in ("## Machine", "## Goals of the full run", "## (a) object-heavy", "## Where ckpt's time goes"):
        assert heading in markdown
