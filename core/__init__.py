"""ckpt's library: scan, save, load and verify checkpoints of Python objects.

Never imports click or rich: everything here returns data (frozen
dataclasses) and raises `CkptError`s; the command line renders them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import CkptError
from .scan import Finding, ScanReport, scan

try:
    __version__ = version("ckpt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["CkptError", "Finding", "ScanReport", "__version__", "scan"]
