"""The service classes of the real-world corpus (tests/realworld/corpus.py).

Each is the kind of small class a real service defines around a third-party
object: the library object plus a `threading.Lock()` guarding it, so plain
`pickle` refuses the service and ckpt has to rewrap the lock. They live in a
module of their own (importable as `services`) so a checkpoint names them as
`services.Service` and a fresh process can import them.

Nothing here imports a third-party library at import time: a child process
that loads one case imports only that case's library.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Generic, TypeVar


class Service:
    """A named service: `lock` plus whatever library objects it holds, as attributes."""

    def __init__(self, name: str, **parts: Any) -> None:
        self.name = name
        self.lock = threading.Lock()
        for key, value in parts.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"<Service {self.name}>"


try:
    from cachetools import cachedmethod
except ImportError:  # the cachetools cases skip; this module must still import

    def cachedmethod(cache: Any, **_: Any) -> Any:  # type: ignore[no-redef]
        return lambda method: method


class CachedLookup:
    """A cachetools-memoized method guarded by the service's lock.

    `cache` is a cachetools cache (TTLCache, LRUCache, ...); `lookup` is
    wrapped with `@cachedmethod` using it and the lock, and the bound method
    is also kept as an attribute (`self.fetch`), as callback-style code does.
    """

    def __init__(self, cache: Any) -> None:
        self.lock = threading.Lock()
        self.cache = cache
        self.calls = 0
        self.fetch = self.lookup  # a bound method held as an attribute

    @cachedmethod(lambda self: self.cache, lock=lambda self: self.lock)
    def lookup(self, key: str) -> str:
        self.calls += 1
        return key.upper()


class Worker:
    """A service with a worker pool and a job queue (ckpt rewraps both)."""

    def __init__(self, name: str, **parts: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor
        from queue import Queue

        self.name = name
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(2, thread_name_prefix=name)
        self.jobs: Queue[Any] = Queue()
        for key, value in parts.items():
            setattr(self, key, value)


# --- classes built with attrs and pydantic (defined only when installed) ----

try:
    import attrs
except ImportError:  # the attrs case skips
    attrs = None  # type: ignore[assignment]

if attrs is not None:

    @attrs.define
    class RateLimit:
        """A slotted attrs class with a validator, a factory default and its own lock."""

        name: str
        per_second: float = attrs.field(validator=attrs.validators.gt(0))
        burst: int = 1
        tags: list[str] = attrs.Factory(list)
        lock: Any = attrs.field(factory=threading.Lock, eq=False, repr=False)

        def allow(self, used: int) -> bool:
            with self.lock:
                return used < self.burst

    @attrs.frozen
    class Endpoint:
        """A frozen attrs value object."""

        host: str
        port: int = attrs.field(converter=int)


try:
    import pydantic
except ImportError:  # the pydantic case skips
    pydantic = None  # type: ignore[assignment]

if pydantic is not None:
    import datetime as _dt

    class Address(pydantic.BaseModel):
        city: str
        zip_code: str = pydantic.Field(pattern=r"^\d{5}$")

    class Customer(pydantic.BaseModel):
        """A pydantic model with a nested model, a validator and a private lock."""

        model_config = pydantic.ConfigDict(validate_assignment=True)

        id: int
        email: str
        joined: _dt.datetime
        address: Address
        tags: list[str] = []
        _lock: Any = pydantic.PrivateAttr(default_factory=threading.Lock)

        @pydantic.field_validator("email")
        @classmethod
        def _lower(cls, value: str) -> str:
            if "@" not in value:
                raise ValueError("not an email address")
            return value.lower()


def flaky(state: dict[str, int]) -> str:
    """Fails until it has been called `state['fail']` times (for retry policies)."""
    state["calls"] = state.get("calls", 0) + 1
    if state["calls"] <= state["fail"]:
        raise ConnectionError(f"attempt {state['calls']} failed")
    return "done"


class LineSink:
    """A loguru sink that appends each message to a file (opened per write,
    so the sink holds a path, not an open file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, message: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(str(message))


# --- what real code keeps in its objects ------------------------------------

T = TypeVar("T")
Number = TypeVar("Number", int, float)


class Box(Generic[T]):
    """A user generic: `Box[int]` is a typing alias a service may hold."""

    def __init__(self, item: T) -> None:
        self.item = item


class Pipeline:
    """Callback-style code: bound methods of private names kept as values,
    one name-mangled (`self.__flush`), as handlers of an event table."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[Any] = []
        self.flushed = 0
        self.on_item = self._on_item
        self.handlers = {"item": self._on_item, "flush": self.__flush}

    def _on_item(self, item: Any) -> None:
        with self.lock:
            self.seen.append(item)

    def __flush(self) -> int:
        with self.lock:
            self.flushed += len(self.seen)
            self.seen.clear()
            return self.flushed


@dataclasses.dataclass
class RequestContext(threading.local):
    """Per-thread state made with a required argument (as rich's
    ConsoleThreadLocals is): `threading.local` runs `__init__` again, with
    the same arguments, in each thread that uses it."""

    settings: dict[str, Any]
    stack: list[str] = dataclasses.field(default_factory=list)


def quadratic(trial: Any) -> float:
    """An optuna objective (module-level, so a study's trials can name it)."""
    x = trial.suggest_float("x", -10.0, 10.0)
    return (x - 2.0) ** 2
