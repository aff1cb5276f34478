"""`dumps` / `loads`: the rewrapped pickle as bytes, without a container.

For shipping an object over a wire or a queue: the same rewrap as `save`,
the same restricted loader as `load`, but no manifest, hashes or buffers
(everything in band). `loads` of untrusted bytes is as safe as `load`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import SaveError
from .pickler import dumps as rewrap_dumps
from .policy import Trust
from .safeload import unpickle
from .scan import scan_object


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
    """Unpickle bytes from `dumps` through the restricted loader."""
    return unpickle(data, trust=Trust.parse(trust), what="the pickle")
