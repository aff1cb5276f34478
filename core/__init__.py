"""ckpt's library: scan, save, load and verify checkpoints of Python objects.

Never imports click or rich: everything here returns data (frozen
dataclasses) and raises `CkptError`s; the command line renders them.

    >>> import ckpt                                  # the same API as ckpt.core
    >>> report = ckpt.scan(model)                    # where would pickle fail? (or a "pkg.mod:build" target)
    >>> ckpt.save(model, "model.ckpt")               # rewrap, sign with your key, write atomically (replacing)
    >>> model = ckpt.load("model.ckpt")              # yours (or a trusted signer's): whole; anyone else's: data only
    >>> ckpt.verify("model.ckpt").ok
    >>> ckpt.diff("a.ckpt", "b.ckpt").arrays         # every array by path: changed or not, by how much

Every error raised on purpose is a `CkptError` (exported here with each of
its subclasses); a missing checkpoint is also a `FileNotFoundError`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ckpt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from .checkpoint import Inspection, LoadReport, SaveReport, inspect, load, load_checkpoint, save  # noqa: E402
from .diff import ArrayDiff, Diff, diff  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError, CkptError, ConfigError, MalformedPickleError, MissingFileError, SaveError, SigningKeyError,
    TargetError, UnsafeCheckpointError, WriteError,
)
from .keys import PublicKey  # noqa: E402
from .provenance import Origin, Provenance  # noqa: E402
from .register import register, registered, unregister  # noqa: E402
from .clusters import ray_runtime_env, register_workers  # noqa: E402
from .scan import Finding, ScanReport, scan  # noqa: E402
from .target import TargetCallError, resolve  # noqa: E402
from .serial import dumps, loads  # noqa: E402
from .verify import VerifyReport, verify  # noqa: E402

__all__ = [
    "ArrayDiff", "CheckpointError", "CkptError", "ConfigError", "Diff", "Finding", "Inspection", "LoadReport", "MalformedPickleError", "MissingFileError",
    "Origin", "Provenance", "PublicKey", "SaveError", "SaveReport", "ScanReport", "SigningKeyError",
    "TargetCallError", "TargetError", "UnsafeCheckpointError",
    "VerifyReport", "WriteError", "__version__", "diff", "dumps", "inspect", "load", "load_checkpoint", "loads",
    "ray_runtime_env", "register", "register_workers", "registered", "resolve", "save", "scan", "unregister", "verify",
]
