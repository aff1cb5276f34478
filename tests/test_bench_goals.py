"""bench/goals.py runs end to end on cheap goals (tiny sizes). No timing assertions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # started early, so the two workers finish together (conftest.py)

REPO = Path(__file__).resolve().parents[1]
GOALS = [sys.executable, "bench/goals.py", "--quick", "--repeats", "1"]
ROWS = ("tiny: a dict of four numbers and a lock: save", "tiny: a dict of four numbers and a lock: load",
        "100,000 buffer members: ckpt.load")
BEFORE = "# results\n\n## How to read this\n\nread me\n\n## Goals of the full run\n\nkept as is\n"


def goals(tmp_path: Path, *extra: str, only: str = "small") -> subprocess.CompletedProcess[str]:
    command = [*GOALS, "--only", only, "--tmpdir", str(tmp_path), *extra]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def section(text: str, name: str) -> str:
    found = re.search(rf"<!-- {name} -->\n(.*?)\n<!-- /{name} -->", text, re.S)
    assert found, text
    return found.group(1)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie is not running


def test_quick_prints_a_row_per_workload_and_writes_nothing(tmp_path: Path) -> None:
    results = REPO / "bench" / "RESULTS.md"
    before = results.read_text()
    out = goals(tmp_path, only="small,members").stdout
    for row in ROWS:
        [line] = [line for line in out.splitlines() if line.startswith(f"| {row} |")]
        assert re.search(r"\| \d+\.\d\d× \(\d+\.\d\d–\d+\.\d\d\) \|", line), line
    assert "Both loaded" in out
    assert results.read_text() == before


def test_write_replaces_its_section_in_place_and_stops_its_burners(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(BEFORE)
    goals(tmp_path, "--write", "--results", str(results))
    first = results.read_text()
    assert first.startswith("# results\n\n## How to read this\n\nread me\n\n<!-- goals:quiet -->\n")
    assert first.endswith("<!-- /goals:quiet -->\n\n## Goals of the full run\n\nkept as is\n")

    busy = goals(tmp_path, "--write", "--results", str(results), "--busy", "1")
    assert all(gone(pid) for pid in burner_pids(busy.stderr))
    second = results.read_text()
    assert second.count("<!-- goals:quiet -->") == second.count("<!-- goals:busy -->") == 1
    assert section(second, "goals:quiet") == section(first, "goals:quiet")
    assert "--busy 1" in section(second, "goals:busy")
    assert second.endswith("<!-- /goals:busy -->\n\n## Goals of the full run\n\nkept as is\n")

    goals(tmp_path, "--write", "--results", str(results))
    third = results.read_text()
    assert third.index("<!-- goals:quiet -->") < third.index("<!-- goals:busy -->")
    assert section(third, "goals:busy") == section(second, "goals:busy")
    assert re.sub(r"<!-- goals:quiet -->.*?<!-- /goals:quiet -->", "", third, flags=re.S) == \
        re.sub(r"<!-- goals:quiet -->.*?<!-- /goals:quiet -->", "", second, flags=re.S)


def test_a_full_run_of_run_py_keeps_the_goals_sections() -> None:
    sys.path.insert(0, str(REPO))
    from bench.report import keep_marked, put_marked

    old = put_marked(put_marked(BEFORE, "goals:quiet", "## quiet\n\nq"), "goals:busy", "## busy\n\nb")
    new = "# fresh\n\n## How to read this\n\nnew text\n\n## Goals of the full run\n\nnew table\n"
    kept = keep_marked(new, old)
    assert kept.startswith("# fresh\n\n## How to read this\n\nnew text\n\n<!-- goals:quiet -->\n## quiet\n\nq\n")
    assert section(kept, "goals:busy") == "## busy\n\nb"
    assert kept.endswith("<!-- /goals:busy -->\n\n## Goals of the full run\n\nnew table\n")


def burner_pids(stderr: str) -> list[int]:
    found = re.search(r"busy: \d+ burner\(s\), pids ([\d ]+)", stderr)
    assert found, stderr
    return [int(pid) for pid in found.group(1).split()]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_busy_burners_are_gone_after_an_interrupt(tmp_path: Path, stop: signal.Signals) -> None:
    command = [*GOALS, "--only", "small", "--tmpdir", str(tmp_path), "--busy", "2", "--repeats", "1000"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    pids = burner_pids(proc.stderr.readline())
    time.sleep(0.3)
    proc.send_signal(stop)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert all(gone(pid) for pid in pids)
