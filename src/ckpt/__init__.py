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

__version__ = "0.1.0"
"""The one place the version is written: pyproject.toml reads it from here,
so neither `import ckpt` nor `ckpt --version` asks importlib.metadata (a
fifth of the command line's start-up)."""

from ckpt.checking import CheckItem, CheckReport, check  # noqa: E402
from ckpt.config import Config  # noqa: E402
from ckpt.config import load as read_config  # noqa: E402
from ckpt.diffing import ArrayDiff, Diff, diff  # noqa: E402
from ckpt.errors import FAILED as EXIT_FAILED  # noqa: E402
from ckpt.errors import USAGE as EXIT_USAGE  # noqa: E402
from ckpt.errors import (  # noqa: E402
    Argument,
    CheckpointError,
    CkptError,
    ConfigError,
    MalformedPickleError,
    MissingFileError,
    SaveError,
    SigningKeyError,
    TargetError,
    UnsafeCheckpointError,
    WriteError,
    printable,
)
from ckpt.format.files import opened  # noqa: E402
from ckpt.format.manifest import Array, Manifest, Substitution  # noqa: E402
from ckpt.format.remote import is_url  # noqa: E402
from ckpt.inspecting import GlobalVerdict, Inspection, inspect  # noqa: E402
from ckpt.kinds.catalog import ALL_KINDS as KINDS  # noqa: E402
from ckpt.kinds.catalog import Action, Kind  # noqa: E402
from ckpt.loading import LoadReport, load, load_checkpoint  # noqa: E402
from ckpt.pending import PendingSave  # noqa: E402
from ckpt.saving import SaveReport, save  # noqa: E402
from ckpt.scanning.groups import Group, group  # noqa: E402
from ckpt.scanning.locate import Location, finding_location  # noqa: E402
from ckpt.scanning.suggest import Suggestion, suggest  # noqa: E402
from ckpt.scanning.walk import Finding, ScanReport, scan  # noqa: E402
from ckpt.ship.clusters import ray_runtime_env, register_workers  # noqa: E402
from ckpt.ship.register import register, registered, unregister  # noqa: E402
from ckpt.ship.serial import dumps, loads  # noqa: E402
from ckpt.target import TargetCallError, importable_cwd, resolve  # noqa: E402
from ckpt.trust import keys  # noqa: E402
from ckpt.trust.keys import PublicKey  # noqa: E402
from ckpt.trust.provenance import Origin, Provenance  # noqa: E402
from ckpt.trust.vouch import Vouched  # noqa: E402
from ckpt.trust.vouch import vouch as sign  # noqa: E402
from ckpt.verifying import VerifyReport, verify  # noqa: E402

__all__ = [
    # what a program calls
    "__version__", "scan", "save", "load", "load_checkpoint", "inspect", "verify", "diff", "sign", "dumps", "loads",
    "register", "registered", "unregister", "register_workers", "ray_runtime_env", "resolve",
    # what it gets back
    "ScanReport", "Finding", "SaveReport", "PendingSave", "LoadReport", "Inspection", "GlobalVerdict", "VerifyReport",
    "Diff", "ArrayDiff", "Manifest", "Array", "Substitution", "Provenance", "Origin", "PublicKey", "Vouched",
    # the errors it may catch
    "CkptError", "CheckpointError", "ConfigError", "MalformedPickleError", "MissingFileError", "SaveError",
    "SigningKeyError", "TargetError", "TargetCallError", "UnsafeCheckpointError", "WriteError",
    # what tools built on ckpt use besides (its own command line, pre-commit hooks, CI): `ckpt check` and
    # `[tool.ckpt]`, the hand fix, keys, the catalog of kinds, findings grouped and located, files and URLs
    "check", "CheckReport", "CheckItem", "Config", "read_config", "suggest", "Suggestion", "keys", "KINDS", "Kind",
    "Action", "group", "Group", "finding_location", "Location", "opened", "is_url", "importable_cwd",
    "Argument", "printable", "EXIT_FAILED", "EXIT_USAGE",
]
