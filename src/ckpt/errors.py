"""The errors ckpt raises on purpose.

Every error a user can cause (a wrong target, a bad file, an untrusted global)
is a `CkptError`: its message is one line saying what went wrong and what to
do, and it carries the exit code the command line uses. Anything else that
escapes is a bug in ckpt, and the CLI says so.
"""

from __future__ import annotations

import errno
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

USAGE = 2
"""Exit code for bad input: a target that does not resolve, a missing or
unreadable file, a configuration error."""

FAILED = 1
"""Exit code for "the check ran and failed": findings, a refused or damaged
checkpoint, a verification that did not pass."""


@dataclass(frozen=True)
class Argument:
    """A keyword argument an error tells the caller to pass. Messages spell
    it as Python (`overwrite=True`), for the library's callers; the command
    line, whose users pass flags, respells each one as its flag."""

    name: str
    value: Any

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


class CkptError(Exception):
    """Base of every error ckpt raises on purpose. `arguments` are the
    keyword arguments its message names (each spelled as `str(argument)`)."""

    exit_code = USAGE

    def __init__(self, message: str, *, hint: str | None = None, arguments: Iterable[Argument] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.arguments = tuple(arguments)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class MissingFileError(CkptError, FileNotFoundError):
    """A checkpoint that does not exist: also a FileNotFoundError, so code
    written for open(), torch.load or joblib.load catches it unchanged."""

    def __init__(self, message: str, filename: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOENT
        self.filename = filename


class TargetError(CkptError):
    """The TARGET could not be turned into an object."""


class ConfigError(CkptError):
    """`[tool.ckpt]` or a command-line option is not valid."""


class CheckpointError(CkptError):
    """A checkpoint file is unreadable, damaged, or does not match its manifest."""

    exit_code = FAILED


class MalformedPickleError(CheckpointError, pickle.UnpicklingError):
    """A stream that breaks the pickle format: also pickle's own
    UnpicklingError, so code written for pickle.load catches it unchanged."""


class UnsafeCheckpointError(CheckpointError):
    """Loading would need a global that is denied or not trusted."""


class SaveError(CkptError):
    """The object cannot be written as a checkpoint (nothing was written)."""

    exit_code = FAILED


class SigningKeyError(CkptError):
    """A signing key or public key that cannot be read, made or used."""


class WriteError(CkptError):
    """The destination cannot be written (permissions, disk full)."""


def one_line(message: str) -> str:
    """An error message from a library, on one line (pickle's own span two)."""
    return printable(" ".join(message.split()))


def printable(text: str) -> str:
    """Text from a file, safe on one terminal line: control characters escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
