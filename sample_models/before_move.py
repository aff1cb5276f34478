"""The model behind tests/data/before-move.ckpt: a checkpoint written by
ckpt before its modules moved into src/ckpt/, kept so that every name such
a file refers to stays importable (ckpt's own lazy connection and file, and
the state setter of a class whose `__getattr__` recurses).

The files it opens live under FIXTURE_DIR, a fixed absolute path, because
a checkpoint records the absolute path of a file or database it reopens:
the test makes them again there before it uses the restored objects.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path("/tmp/ckpt-before-move")
LINES = ["first line\n", "second line\n", "third line\n"]


class Lookup:
    """Answers unknown attributes from `_fields`, which an empty instance
    lacks: asking one for anything recurses (as pymongo's Database does)."""

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None


def make_files() -> None:
    """The text file and the sqlite database the model reads from."""
    FIXTURE_DIR.mkdir(exist_ok=True)
    (FIXTURE_DIR / "lines.txt").write_text("".join(LINES))
    database = FIXTURE_DIR / "rows.db"
    database.unlink(missing_ok=True)
    with sqlite3.connect(database) as conn:
        conn.execute("create table rows (n integer)")
        conn.executemany("insert into rows values (?)", [(1,), (2,), (3,)])
    conn.close()


def build() -> dict[str, Any]:
    make_files()
    reader = open(FIXTURE_DIR / "lines.txt")  # noqa: SIM115 - the model holds it open
    reader.readline()  # saved at the second line
    jobs: queue.Queue[str] = queue.Queue()
    jobs.put("job-1")
    return {
        "lock": threading.Lock(),
        "jobs": jobs,
        "reader": reader,
        "db": sqlite3.connect(FIXTURE_DIR / "rows.db", check_same_thread=False),
        "lookup": Lookup(name="settings", size=3),
    }
