"""Where ckpt's own modules were before the src/ layout, for what still names them.

Checkpoints written before the move name three of ckpt's objects by their
old modules (`ckpt.core.lazy:LazyConnection`, `ckpt.core.lazy:LazyFile`,
`ckpt.core.rewrap:set_state`); a Ray `runtime_env` may name the old worker
hook (`ckpt.core.register.register`), a Dask worker may unpickle the old
plugin, and a `[tool.ckpt]` table may trust an old name. `ckpt.core` makes
each old module the new one itself (the same objects: `isinstance` and
identity hold), and the data-only policy reads every name through `current`.
"""

from __future__ import annotations

MOVED = {
    "ckpt.core.lazy": "ckpt.kinds.lazy",
    "ckpt.core.rewrap": "ckpt.kinds.rewrap",
    "ckpt.core.register": "ckpt.ship.register",
    "ckpt.core.dask_plugin": "ckpt.ship.dask_plugin",
}
"""Old module -> the module it is now."""


def current(name: str) -> str:
    """`module:qualname` (or a module) with a moved module named as it is now."""
    module, colon, qualname = name.partition(":")
    return f"{MOVED.get(module, module)}{colon}{qualname}"
