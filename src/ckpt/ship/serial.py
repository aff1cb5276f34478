"""`dumps` / `loads`: the rewrapped pickle as bytes, without a container.

For shipping an object over a wire or a queue: the same rewrap as `save`,
but no manifest, hashes, buffers (everything in band) or signature, so
`loads` is the data-only loader `load` uses for a file from anyone else.
Between processes of your own, `register()` and plain pickle carry more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ckpt.errors import SaveError
from ckpt.kinds.pickler import dumps as rewrap_dumps
from ckpt.scanning.walk import scan_object
from ckpt.trust.data_only import unpickle
from ckpt.trust.policy import Trust


def dumps(obj: Any) -> bytes:
    """Pickle `obj` with thread kinds rewrapped; SaveError names what cannot be."""
    try:
        return rewrap_dumps(obj)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        blocking = [f.path for f in scan_object(obj).findings if f.action.value == "error"]
        where = f" at {', '.join(blocking[:5])}" if blocking else ""
        raise SaveError(f"cannot pickle the object{where}: {type(exc).__name__}: {exc}") from None


def loads(data: bytes | bytearray | memoryview, *, trust: Iterable[str] = ()) -> Any:
    """Unpickle bytes as data only (see `load`): nothing they name runs."""
    return unpickle(data, trust=Trust.parse(trust))
