"""A short run of the loader's fuzzer (tests/security/fuzz_child.py), in a
child process under an address-space limit: any crash, hang, memory
blow-up or exception other than a CkptError fails, with the example that
caused it, and so does any effect its harm oracle sees (a file written or
deleted, a connection, a thread or process started, the process changed,
from any thread, during a load or at exit). The long run is
`python tests/security/fuzz_child.py --seconds 1800` (docs/SECURITY.md)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # started early, so the two workers finish together (conftest.py)

CHILD = Path(__file__).with_name("fuzz_child.py")
SECONDS = 6
"""Half crash-oriented, half harm-oriented (the harm pass imports numpy, pandas,
scikit-learn and torch first: a few seconds more)."""
MEMORY = 4 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def test_fuzzed_streams_load_or_are_refused_and_nothing_crashes(tmp_path: Path) -> None:
    current = tmp_path / "current.pkl"
    try:
        proc = subprocess.run([sys.executable, str(CHILD), "--seconds", str(SECONDS), "--current", str(current)],
                              capture_output=True, text=True, timeout=SECONDS + 90, preexec_fn=_limit, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the fuzzer hung on {current.read_bytes()!r}")
    assert proc.returncode == 0, f"exit {proc.returncode} on {current.read_bytes()!r}\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith("ok: ") and " 0 harm-checked" not in proc.stdout, proc.stdout
