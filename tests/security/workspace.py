"""Where a hostile payload is planted and how its effects are seen from outside.

Shared by the security tests that run payloads in a child process
(test_gadgets.py, test_data_only_corpus.py): each row is planted in its own
copy of a valid checkpoint (data.pkl replaced, the manifest recomputed to
match, as an attacker would) inside its own workspace, with a victim file to
damage and a loopback listener to reach; `run_child` loads them in
gadget_child.py (which forks once per payload and reports audit events and
changes to the process), and `what_happened` diffs the workspace and asks
the listener afterwards, once the child has exited.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from conftest import REPO, Result
from gadgets import PRECIOUS, Work, named_modules
from harm import changes, tree
from harness import installed_ckpt

CHILD = Path(__file__).with_name("gadget_child.py")
CHILD_MEMORY = 4 << 30
"""Address space of a library child: it imports all five libraries."""
CLI_MEMORY = 2 << 30


class Row(Protocol):
    """A payload: a name, and how to plant it in a checkpoint for a workspace."""

    @property
    def name(self) -> str: ...

    def plant(self, path: Path, work: Work) -> bytes: ...


# --- the loopback listener ----------------------------------------------------------


class Listeners:
    """One listening socket per workspace, each counting who connected."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self.accepted: dict[int, int] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def open(self) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.setblocking(False)
        port = server.getsockname()[1]
        self.accepted[port] = 0
        self._sockets.append(server)
        self._selector.register(server, selectors.EVENT_READ, port)
        return port

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.2):
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                self.accepted[key.data] += 1
                conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for server in self._sockets:
            server.close()


class NoListener(Listeners):
    """For effects seen on disk only."""

    def __init__(self) -> None:
        self.accepted = {}


# --- planting ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    row: Any
    path: Path
    work: Work
    data: bytes
    tree: dict[str, str]


def plant(row: Row, base: Path, root: Path, port: int) -> Planted:
    directory = root / re.sub(r"\W+", "_", row.name)
    (directory / "victim").mkdir(parents=True)
    (directory / "victim" / "keep.txt").write_text(PRECIOUS)
    path = directory / "model.ckpt"
    shutil.copy(base, path)
    work = Work(directory, port)
    data = row.plant(path, work)
    return Planted(row, path, work, data, tree(directory))


def what_happened(planted: Planted, listeners: Listeners) -> list[str]:
    """Effects visible from outside: the workspace and the listener."""
    effects = changes(planted.tree, tree(planted.work.root))
    victim = Path(planted.work.keep)
    if not victim.exists() or victim.read_text() != PRECIOUS:
        effects.append("the victim file was damaged")
    if listeners.accepted.get(planted.work.port):
        effects.append(f"{listeners.accepted[planted.work.port]} connection(s) to the listener")
    return effects


# --- running things -------------------------------------------------------------------


def env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def limit(size: int) -> Any:
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (size, size))


def run_cli(args: Sequence[str]) -> Result:
    """The installed `ckpt` under the memory limit, as harness.run_limited runs it."""
    proc = subprocess.run([installed_ckpt(), *args], cwd=REPO, capture_output=True, text=True, env=env(),
                          timeout=120, preexec_fn=limit(CLI_MEMORY))
    return Result(proc)


def run_child(mode: str, planted: Sequence[Planted], trusts: Sequence[Sequence[str]], warm_up: Path | None, *,
              loads_trusts: Sequence[Sequence[str]] = ()) -> list[Any]:
    """Each planted payload loaded in gadget_child.py: `load` at every trust
    level (or the row's own `trusts`), `loads` at `loads_trusts`, `verify`
    too if the row's `verify` is on; the modules a payload names are imported
    first, unless the row's `preimport` is off (the question is then whether
    the loader imports them)."""
    jobs = [{"name": p.row.name, "path": str(p.path), "work": str(p.work.root),
             "modules": named_modules(p.data) if getattr(p.row, "preimport", True) else [],
             "trusts": [list(t) for t in getattr(p.row, "trusts", trusts)],
             "loads_trusts": [list(t) for t in loads_trusts], "verify": getattr(p.row, "verify", False)}
            for p in planted]
    spec = {"mode": mode, "jobs": jobs, "timeout": 20, "warm_up": str(warm_up) if warm_up else None}
    proc = subprocess.run([sys.executable, str(CHILD)], input=json.dumps(spec), capture_output=True, text=True,
                          cwd=REPO, env=env(), timeout=600, preexec_fn=limit(CHILD_MEMORY))
    assert proc.returncode == 0, f"the {mode} child failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)  # type: ignore[no-any-return]
