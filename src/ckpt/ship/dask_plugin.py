"""The Dask worker plugin behind `clusters.register_workers`.

Its own module because it subclasses distributed's `WorkerPlugin` (Dask
refuses duck-typed plugins), so importing it imports distributed: only
`register_workers` does. Workers unpickle it by reference, as
`ckpt.ship.dask_plugin.RegisterPlugin`, so ckpt must be installed there.
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ckpt.ship.register import register


class RegisterPlugin(WorkerPlugin):
    """`register()` in the worker's process when it joins the cluster.

    No `teardown`: unregistering when the worker closes would gain nothing
    in a worker process that is ending, and in a cluster of threads
    (`processes=False`) it would undo the driver's own `register()`."""

    idempotent = True  # registered twice: the workers keep the first

    def setup(self, worker: Any) -> None:
        register()
