"""Resources a checkpoint reopens on first use: database connections, files read from, aiohttp sessions.

What the db-connection, duckdb-connection and read-file rewraps restore a
connection to a database file, or a file open for reading, as: loading a
checkpoint opens nothing; the first attribute the model's code uses
(`execute`, `read`, `with conn:`, iterating a file ...) opens the saved path
and hands the call on. A connection writes where the checkpoint says as soon
as the model uses it, like a restored `logging.FileHandler`, and a file reads
what the checkpoint names, so the data-only loader admits them only when
trusted (`--trust ckpt.kinds.lazy:LazyConnection`, `ckpt.kinds.lazy:LazyFile`).
An aiohttp session is made on first use for another reason: it belongs to
the event loop that makes it, and none runs while a checkpoint loads.

They are the objects a checkpoint may hold that need ckpt installed to load:
no standard library object defers opening.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Lazy:
    """Opens its resource (`_open`) on first use, once, and hands every attribute on to it."""

    __slots__ = ("_resource", "_opening", "__weakref__")

    def __init__(self) -> None:
        object.__setattr__(self, "_resource", None)
        object.__setattr__(self, "_opening", threading.Lock())

    def _open(self) -> Any:
        raise NotImplementedError

    @property
    def opened(self) -> bool:
        return self._resource is not None

    @property
    def resource(self) -> Any:
        """The connection or file, opened now if it is not yet. Shared by
        threads: the first to use it need not be the one that loaded it."""
        with self._opening:
            if self._resource is None:
                object.__setattr__(self, "_resource", self._open())
        return self._resource

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # a protocol probe (`__dict__`, `__setstate__`): opens nothing
            raise AttributeError(name)
        return getattr(self.resource, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.resource, name, value)  # row_factory, isolation_level, ...

    def __enter__(self) -> Any:
        return self.resource.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.resource.__exit__(*exc)

    def close(self) -> None:
        """Closes the resource if it was opened; an unopened one stays so."""
        if self._resource is not None:
            self._resource.close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"cannot pickle a {type(self).__name__} with plain pickle: save it with ckpt "
                        "(or ckpt.register())")


def _options_checked(options: dict[str, Any] | None, allowed: dict[str, tuple[type, ...]], what: str) -> dict[str, Any]:
    """`options`, each a keyword `allowed` names, of one of its types; TypeError otherwise."""
    options = dict(options or {})
    for key, value in options.items():
        if key not in allowed or not isinstance(value, allowed[key]):
            raise TypeError(f"a lazy {what} does not take {key}={value!r}")
    return options


def _connect_sqlite(database: str, options: dict[str, Any]) -> Any:
    import sqlite3  # only when a model really uses it

    # check_same_thread=False: the thread that first uses it need not be the one that loaded it
    return sqlite3.connect(database, check_same_thread=False, **options)


def _connect_duckdb(database: str, options: dict[str, Any]) -> Any:
    import duckdb  # only when a model really uses it

    return duckdb.connect(database, **options)


@dataclass(frozen=True)
class Driver:
    connect: Callable[[str, dict[str, Any]], Any]
    options: dict[str, tuple[type, ...]]
    """The connect options a lazy connection takes, and their types: the ones
    a live connection tells (never a factory or class it would call)."""


DRIVERS = {
    "sqlite3": Driver(_connect_sqlite, {"isolation_level": (str, type(None))}),
    "duckdb": Driver(_connect_duckdb, {"read_only": (bool,)}),
}


class LazyConnection(Lazy):
    """`<driver>.connect(database, **options)` on first use, for a sqlite3 or duckdb database file."""

    __slots__ = ("database", "options", "driver")

    def __init__(self, database: str, options: dict[str, Any] | None = None, driver: str = "sqlite3") -> None:
        if driver not in DRIVERS:
            raise TypeError(f"a lazy connection has no driver {driver!r}")
        if not isinstance(database, str) or not database or database == ":memory:":
            raise TypeError(f"a lazy {driver} connection needs a database file, not {database!r}")
        super().__init__()
        object.__setattr__(self, "database", database)
        object.__setattr__(self, "options", _options_checked(options, DRIVERS[driver].options, f"{driver} connection"))
        object.__setattr__(self, "driver", driver)

    def _open(self) -> Any:
        return DRIVERS[self.driver].connect(self.database, self.options)

    def __repr__(self) -> str:
        return f"<LazyConnection {self.driver} {self.database!r} ({'open' if self.opened else 'not opened yet'})>"


READ_MODES = frozenset({"r", "rt", "rb"})
TEXT_OPTIONS: dict[str, tuple[type, ...]] = {"encoding": (str, type(None)), "errors": (str, type(None))}


class LazyFile(Lazy):
    """`open(path, mode, **options)` on first use, at `position` (what
    `tell()` gave; for a text file, the cookie `seek` takes back)."""

    __slots__ = ("path", "mode", "position", "options")

    def __init__(self, path: str, mode: str, position: int, options: dict[str, Any] | None = None) -> None:
        if not isinstance(path, str) or not path:
            raise TypeError(f"a lazy file needs a path, not {path!r}")
        if mode not in READ_MODES:
            raise TypeError(f"a lazy file is opened for reading only, not {mode!r}")
        if type(position) is not int or position < 0:
            raise TypeError(f"a lazy file's position is a number from tell(), not {position!r}")
        super().__init__()
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "position", position)
        object.__setattr__(self, "options", _options_checked(options, {} if "b" in mode else TEXT_OPTIONS, "file"))

    def _open(self) -> Any:
        file = open(self.path, self.mode, **self.options)  # noqa: SIM115 - the lazy file owns it
        file.seek(self.position)
        return file

    def __iter__(self) -> Any:
        return iter(self.resource)

    def __next__(self) -> Any:
        return next(self.resource)

    def __repr__(self) -> str:
        state = "open" if self.opened else f"not opened yet, at {self.position}"
        return f"<LazyFile {self.path!r} mode {self.mode!r} ({state})>"


class LazySession(Lazy):
    """`aiohttp.ClientSession(**options)` on first use, in the event loop that
    uses it (a session made outside a running loop is refused by aiohttp,
    and one made in another loop fails there). `options` are the session's
    constructor arguments, but `connector` holds a TCPConnector's limits,
    and `jar` the cookie jar's `unsafe` flag (cookies for IP addresses) and
    its cookies by domain and path. Only data: no factory, class or callable
    the session would call comes from the file."""

    __slots__ = ("options",)

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        import aiohttp  # its timeout and auth are among the options: already imported by the load

        allowed: dict[str, tuple[type, ...]] = {
            "base_url": (str,), "headers": (list,), "timeout": (aiohttp.ClientTimeout,),
            "auth": (aiohttp.BasicAuth,), "raise_for_status": (bool,), "trust_env": (bool,),
            "connector": (dict,), "jar": (dict,)}
        options = _options_checked(options, allowed, "aiohttp session")
        _options_checked(options.get("connector"), {"limit": (int,), "limit_per_host": (int,)}, "connector")
        _options_checked(options.get("jar"), {"unsafe": (bool,), "cookies": (dict,)}, "cookie jar")
        super().__init__()
        object.__setattr__(self, "options", options)

    def _open(self) -> Any:
        import aiohttp  # only when a model really uses it

        options = dict(self.options)
        options["connector"] = aiohttp.TCPConnector(**options.pop("connector", {}))
        jar = options.pop("jar", {})
        options["cookie_jar"] = aiohttp.CookieJar(unsafe=jar.get("unsafe", False))
        options["cookie_jar"]._cookies.update(jar.get("cookies", {}))
        return aiohttp.ClientSession(**options)

    @property
    def closed(self) -> bool:
        """False until it is opened and closed (aiohttp's own answer then)."""
        return self._resource is not None and self._resource.closed

    async def close(self) -> None:  # type: ignore[override]  # aiohttp's close is a coroutine
        if self._resource is not None:
            await self._resource.close()

    async def __aenter__(self) -> Any:
        return await self.resource.__aenter__()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.resource.__aexit__(*exc)

    def __repr__(self) -> str:
        return f"<LazySession ({'open' if self.opened else 'not opened yet'})>"
