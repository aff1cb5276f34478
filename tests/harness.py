"""Running the installed `ckpt` the way a user's shell would, with limits.

Shared by tests/security and tests/reliability: the real console script in a
subprocess, under an address-space limit (so "memory stays bounded" is a
fact the kernel enforces, not a hope), several at a time when there are many.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import REPO, Result

MEMORY_LIMIT = 2 << 30
"""Address space a `ckpt` process may use: importing torch takes about 0.7 GiB."""


def installed_ckpt() -> str:
    """The console script next to this interpreter (what `pip install` made),
    else whatever `ckpt` is on PATH (a pyenv shim costs 80 ms a call)."""
    beside = Path(sys.executable).with_name("ckpt")
    found = str(beside) if beside.exists() else shutil.which("ckpt")
    assert found, "the ckpt command is not installed: pip install -e '.[test]'"
    return found


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(args: Sequence[str], *, cwd: Path = REPO, timeout: float = 120) -> Result:
    """`ckpt ARGS` under MEMORY_LIMIT; a hang past `timeout` fails the test."""
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([installed_ckpt(), *args], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout, preexec_fn=_limit_memory)
    return Result(proc)


def run_many(commands: Sequence[Sequence[str]], *, workers: int = 3) -> list[Result]:
    """Several `ckpt` runs at once (each its own limited process), in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run_limited, commands))
