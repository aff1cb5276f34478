"""Ship objects holding thread primitives to Dask and Ray workers, and back.

Dask and Ray pickle what crosses between processes: Dask with pickle (or
cloudpickle where pickle cannot), Ray always with its vendored cloudpickle.
Both consult `copyreg.dispatch_table` (cloudpickle through a ChainMap in
front of it), so `registered()` around `client.submit(f, model)` or
`f.remote(model)` sends a lock-holding model with fresh primitives: the
arguments are pickled there and then, in the driver.

Results are pickled in the worker, which has a `copyreg` of its own: these
two functions register ckpt there, on every worker a cluster starts, now or
later. Neither imports Dask or Ray: a Dask client is passed in, and Ray
reads a runtime_env dict that names the setup hook by its dotted path (a
string: Ray imports it in each worker instead of pickling a function).

    ckpt.register_workers(client)                      # Dask
    ray.init(runtime_env=ckpt.ray_runtime_env())       # Ray
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from ckpt.errors import ConfigError
from ckpt.ship.register import register

DASK_PLUGIN = "ckpt-register"
"""The name `register_workers` gives its worker plugin (to `unregister_worker_plugin`, which stops new workers getting it)."""

RAY_SETUP_HOOK = f"{register.__module__}.{register.__name__}"
"""What Ray's `worker_process_setup_hook` runs in each worker it starts: `register()`, by dotted path."""


class PluginClient(Protocol):
    """What `register_workers` needs of a `distributed.Client`."""

    def register_plugin(self, plugin: Any, name: str | None = None) -> Any: ...


def register_workers(client: PluginClient) -> None:
    """Run `register()` on every current and future worker of `client`'s
    cluster, so results holding thread primitives come back. A Dask worker
    plugin: the scheduler keeps it and hands it to workers that join later
    (a scaled-up or restarted worker). Registering again is a no-op."""
    from ckpt.ship.dask_plugin import (
        RegisterPlugin,  # imports distributed: only when asked
    )

    client.register_plugin(RegisterPlugin(), name=DASK_PLUGIN)


def ray_runtime_env(base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`base` (a runtime_env, or nothing) with the setup hook that runs
    `register()` in every Ray worker process, for `ray.init(runtime_env=...)`
    or `.options(runtime_env=...)`. A copy: Ray writes into the runtime_env
    it is given. Ray runs one hook per worker: a `base` with a hook of its
    own is refused, rather than silently replaced."""
    env = copy.deepcopy(dict(base or {}))
    hook = env.setdefault("worker_process_setup_hook", RAY_SETUP_HOOK)
    if hook != RAY_SETUP_HOOK:
        raise ConfigError(f"the runtime_env already has a worker_process_setup_hook ({hook!r}) and Ray runs only one",
                          hint="call ckpt.register() from that hook instead")
    return env
