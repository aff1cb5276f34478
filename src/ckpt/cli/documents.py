"""Machine output that stays valid: one JSON or SARIF document per run, and only it on stdout.

With `--format json` or `--format sarif`, whatever the user's code prints
while a target is imported or built (a banner, a progress line, a C
library's chatter) would land in front of the document and break every
parser. So for the whole run stdout is stderr, at the file-descriptor level
too (child processes and C code included), and the command's document is
kept instead of printed. At exit exactly one document goes to the real
stdout: the report, or for an error (exit 2 too) an error object (JSON) or
a SARIF run whose invocation carries the error as a tool execution
notification, so a CI step that uploads the file always has one. Only
`--quiet` prints none: the exit code and the error line say it all.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ckpt.cli.render import sarif

SCHEMA_VERSION = 1
"""Of every JSON document ckpt prints (`schema_version`): raised when a field changes meaning or goes away."""

MACHINE = ("json", "sarif")

_kept: list[dict[str, Any]] = []


def requested(args: Sequence[str]) -> str | None:
    """The machine format the command line asks for (`--format json`,
    `--format=sarif`), read before click parses it, so that even a usage
    error is reported as a document. None for text or no `--format`."""
    options = _options(args)
    at = options.index("--format") + 1 if "--format" in options else len(options)
    return options[at] if at < len(options) and options[at] in MACHINE else None


def quiet(args: Sequence[str]) -> bool:
    """`-q`/`--quiet`: no document either (the exit code says it all)."""
    return bool({"-q", "--quiet"} & set(_options(args)))


def _options(args: Sequence[str]) -> list[str]:
    """The arguments before `--`, `--name=value` split in two."""
    out: list[str] = []
    for arg in args:
        if arg == "--":
            break
        out += arg.split("=", 1) if arg.startswith("--") else [arg]
    return out


def keep(document: dict[str, Any]) -> None:
    """The command's document, written once the command has finished (`finish`)."""
    _kept[:] = [document]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """For the block, file descriptor 1 is stderr's, so whatever writes to
    stdout (through sys.stdout, C code or a child process) lands on stderr.
    sys.stdout stays the same object: a model that keeps it (a logging
    handler, a progress bar) is saved as it would be without --format."""
    _kept.clear()
    fd = _stdout_fd()
    if fd is None:  # not a real file (an in-process caller's buffer): nothing to redirect
        yield
        return
    saved = os.dup(fd)
    os.dup2(sys.stderr.fileno(), fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()  # what was printed is still stderr's
        os.dup2(saved, fd)
        os.close(saved)


def _stdout_fd() -> int | None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        return sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def finish(fmt: str, code: int, error: str | None) -> None:
    """Write the one document of this run: the command's, or the error's
    (the caller skips this under --quiet)."""
    if error is not None or not _kept:
        message = (error or f"ckpt exited with code {code} without a report").removeprefix("error: ")
        document = sarif.error_log(message, code) if fmt == "sarif" else {
            "schema_version": SCHEMA_VERSION, "error": {"message": message, "exit_code": code}}
    else:
        document = _kept[0]
    _kept.clear()
    sys.stdout.write(json.dumps(document, indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()
