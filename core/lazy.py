"""A sqlite3 connection that opens its database on first use.

What the db-connection rewrap restores a connection to a file as: loading
a checkpoint opens nothing; the first attribute the model's code uses
(`execute`, `cursor`, `commit`, `with conn:` ...) connects to the saved path
with `sqlite3.connect` and hands the call on. It writes where the checkpoint
says as soon as the model uses it, like a restored `logging.FileHandler`, so
the safe loader admits it only when trusted (`--trust
ckpt.core.lazy:LazyConnection`, recorded by save in the manifest).

It is the one object a checkpoint may hold that needs ckpt installed to load:
no standard library object defers a connection.
"""

from __future__ import annotations

import threading
from typing import Any

OPTIONS = {"isolation_level": (str, type(None))}
"""The `sqlite3.connect` options a lazy connection takes, and their types:
the one a live connection tells (never `factory`, a class it would call)."""


class LazyConnection:
    """`sqlite3.connect(database, check_same_thread=False, **options)` on first use."""

    __slots__ = ("database", "options", "_connection", "_opening", "__weakref__")

    def __init__(self, database: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        if not isinstance(database, str) or not database or database == ":memory:":
            raise TypeError(f"a lazy sqlite connection needs a database file, not {database!r}")
        for key, value in options.items():
            if key not in OPTIONS or not isinstance(value, OPTIONS[key]):
                raise TypeError(f"a lazy sqlite connection does not take {key}={value!r}")
        object.__setattr__(self, "database", database)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "_connection", None)
        object.__setattr__(self, "_opening", threading.Lock())

    @property
    def opened(self) -> bool:
        return self._connection is not None

    @property
    def connection(self) -> Any:
        """The sqlite3.Connection, opened now if it is not yet. Shared by
        threads (sqlite3 serialises them): the first to use it need not be
        the one that loaded it, hence check_same_thread=False."""
        with self._opening:
            if self._connection is None:
                import sqlite3  # only when a model really uses it

                connection = sqlite3.connect(self.database, check_same_thread=False, **self.options)
                object.__setattr__(self, "_connection", connection)
        return self._connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.connection, name, value)  # row_factory, isolation_level, ...

    def __enter__(self) -> Any:
        return self.connection.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.connection.__exit__(*exc)

    def close(self) -> None:
        """Closes the connection if it was opened; an unopened one stays so."""
        if self._connection is not None:
            self._connection.close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("cannot pickle a lazily reopened sqlite connection with plain pickle: save it with ckpt "
                        "(or ckpt.core.register())")

    def __repr__(self) -> str:
        return f"<LazyConnection {self.database!r} ({'open' if self.opened else 'not opened yet'})>"
