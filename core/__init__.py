"""ckpt's library: scan, save, load and verify checkpoints of Python objects.

Never imports click or rich: everything here returns data (frozen
dataclasses) and raises `CkptError`s; the command line renders them.

    >>> import ckpt.core as ckpt
    >>> report = ckpt.scan(model)                    # where would pickle fail?
    >>> ckpt.save(model, "model.ckpt")               # rewrap and write, atomically
    >>> model = ckpt.load("model.ckpt", trust=["mypkg"])
    >>> ckpt.verify("model.ckpt").ok
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ckpt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from .checkpoint import Inspection, LoadReport, SaveReport, inspect, load, load_checkpoint, save  # noqa: E402
from .errors import CheckpointError, CkptError, SaveError, UnsafeCheckpointError  # noqa: E402
from .register import register, registered, unregister  # noqa: E402
from .scan import Finding, ScanReport, scan  # noqa: E402
from .serial import dumps, loads  # noqa: E402
from .verify import VerifyReport, verify  # noqa: E402

__all__ = [
    "CheckpointError", "CkptError", "Finding", "Inspection", "LoadReport", "SaveError", "SaveReport",
    "ScanReport", "UnsafeCheckpointError", "VerifyReport", "__version__", "dumps", "inspect", "load",
    "load_checkpoint", "loads", "register", "registered", "save", "scan", "unregister", "verify",
]
