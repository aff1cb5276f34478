"""Ship objects holding thread primitives to other processes.

The same locks that stop `pickle.dump` stop `multiprocessing.Pool`,
`ProcessPoolExecutor` and `joblib.Parallel`, which all pickle their
arguments. `register()` installs the catalog's rewrap reducers in `copyreg`
(which those picklers consult), so such objects arrive in the worker with
fresh, working primitives; `unregister()` puts `copyreg` back as it was.
Nothing is installed until asked: importing ckpt never changes `copyreg`.

    with ckpt.registered():
        results = pool.map(predict, [model] * 4)

Only classes that exist when `register()` runs are covered (subclasses of
`threading.Thread` or `logging.Handler` defined later are not). While
registered, `ckpt scan` still reports the objects these reducers rewrap.
"""

from __future__ import annotations

import contextlib
import copyreg
import threading
from collections.abc import Iterator
from typing import Any

from ckpt.kinds import catalog

_ABSENT = object()
_lock = threading.Lock()
_previous: dict[type, Any] = {}


def register() -> list[type]:
    """Install the rewrap reducers; returns the classes now covered. Idempotent."""
    with _lock:
        for cls, reduce in catalog.rewrap_reducers().items():
            if cls not in _previous:
                _previous[cls] = copyreg.dispatch_table.get(cls, _ABSENT)
                copyreg.pickle(cls, reduce)
        catalog.REGISTERED.update(_previous)
        return list(_previous)


def unregister() -> None:
    """Restore `copyreg` exactly as it was before `register()`."""
    with _lock:
        for cls, before in _previous.items():
            if before is _ABSENT:
                copyreg.dispatch_table.pop(cls, None)
            else:
                copyreg.dispatch_table[cls] = before
        catalog.REGISTERED.difference_update(_previous)
        _previous.clear()


@contextlib.contextmanager
def registered() -> Iterator[list[type]]:
    """`register()` for the duration of a `with` block."""
    covered = register()
    try:
        yield covered
    finally:
        unregister()

