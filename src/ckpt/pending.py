"""Saves that finish in the background, and the order of saves to one file.

`save(..., background=True)` takes the object on the caller's thread (the
pickling pass, the arrays copied) and leaves the rest (hashing, writing,
fsync, the rename) to a thread of its own, as orbax and
`torch.distributed.checkpoint.async_save` do for arrays. Saves to one path
are written in the order they were made: each waits for the one before it,
whether it runs in the background or not. The writing threads are not
daemons, so the interpreter finishes them before it exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_log = logging.getLogger("ckpt")


class PendingSave:
    """A save that goes on in the background. `wait()` gives its SaveReport,
    or raises what the save raised."""

    def __init__(self, key: str, previous: PendingSave | None, work: Callable[[], Any]) -> None:
        self.path = key
        self._previous = previous
        self._work = work
        self._finished = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"ckpt-save {key}")

    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """The SaveReport, once the file is written (TimeoutError if it is not within `timeout` seconds)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"the background save of {self.path} is still running")
        if self._error is not None:
            raise self._error
        return self._result

    def settled(self) -> None:
        """Wait until it is done, whatever its outcome (a later save to the path goes on)."""
        self._finished.wait()

    def _run(self) -> None:
        if self._previous is not None:
            self._previous.settled()
            self._previous = None
        try:
            self._result = self._work()
        except BaseException as exc:  # handed to wait(); said at once in case nobody waits
            self._error = exc
            _log.warning("ckpt: the background save of %s failed: %s", self.path, exc)
        finally:
            self._work = _done
            self._finished.set()
            _forget(self)

    def __repr__(self) -> str:
        state = "done" if self.done() else "writing"
        return f"<PendingSave {self.path} ({state})>"


def _done() -> None:
    """What a finished save holds instead of its work (which held the captured object)."""


_lock = threading.Lock()
_latest: dict[str, PendingSave] = {}


def start(key: str, work: Callable[[], Any]) -> PendingSave:
    """Run `work` on a thread of its own, after every earlier save to `key`."""
    with _lock:
        pending = PendingSave(key, _latest.get(key), work)
        _latest[key] = pending
    pending._thread.start()
    return pending


def after(key: str, work: Callable[[], T]) -> T:
    """Run `work` here, once every earlier save to `key` is done."""
    with _lock:
        previous = _latest.get(key)
    if previous is not None:
        previous.settled()
    return work()


def _forget(pending: PendingSave) -> None:
    with _lock:
        if _latest.get(pending.path) is pending:
            del _latest[pending.path]
