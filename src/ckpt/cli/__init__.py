"""The `ckpt` command line: parse options, call one core function, render.

`main()` is the console script. It turns every `CkptError` into one line on
stderr and its exit code, Ctrl-C into exit 130, a reader that closed the
pipe into a quiet exit 0, and anything unexpected into one "internal error"
line (a bug in ckpt); `--traceback` shows the full one. With `--format json`
or `sarif`, stdout carries exactly one document, errors included (`documents`).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from ckpt import EXIT_USAGE, CkptError
from ckpt.cli import documents, flags
from ckpt.cli.app import ReaderGone, cli, wants_traceback

INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    fmt = documents.requested(args)
    if fmt is None or sys.stdout is None:  # text, or no stdout to write a document to
        return _run(args)[0]
    with documents.stdout_to_stderr():  # the user's prints never reach the document's stream
        code, error = _run(args)
    if documents.quiet(args):
        return code
    try:
        documents.finish(fmt, code, error)
    except BrokenPipeError:
        return _reader_gone()
    return code


def _run(args: list[str]) -> tuple[int, str | None]:
    """Run the command: its exit code, and the one-line error (also on stderr) if it failed."""
    try:
        code = cli.main(args=args, prog_name="ckpt", standalone_mode=False)
    except click.exceptions.Abort:
        return _interrupted()
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # `ckpt` alone: the help is the answer
        return exc.exit_code, None
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "ckpt"
        return _fail(f"error: {exc.format_message()} (see '{where} --help')", exc.exit_code)
    except click.ClickException as exc:
        return _fail(f"error: {exc.format_message()}", exc.exit_code)
    except CkptError as exc:
        _show_cause(exc)
        return _fail(f"error: {flags.message(exc)}", exc.exit_code)
    except KeyboardInterrupt:
        return _interrupted()
    except ReaderGone:
        return _reader_gone(), None
    except Exception as exc:
        if wants_traceback():
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        return _fail(
            f"internal error: {type(exc).__name__}: {detail} (this is a bug in ckpt; "
            "run again with --traceback and report it)",
            EXIT_USAGE,
        )
    return code or 0, None


def _reader_gone() -> int:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
    return 0


def _interrupted() -> tuple[int, str]:
    """Exit 130 in one line. What Ctrl-C abandoned mid-request (an upload's
    open connection, its half-run coroutine) reports itself when it is
    collected at exit, through asyncio's logger or as an "Exception
    ignored" traceback, on stderr after that line: both are quieted, as
    nothing is left to do about it."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = _ignore_unraisable
    return _fail("interrupted", INTERRUPTED)


def _ignore_unraisable(_unraisable: object) -> None:
    """Drops what is collected after an interrupt (see `_interrupted`)."""


def _fail(message: str, code: int) -> tuple[int, str]:
    click.echo(f"ckpt: {message}", err=True)
    return code, message


def _show_cause(exc: CkptError) -> None:
    cause = getattr(exc, "cause", None)
    if cause is not None and wants_traceback():
        traceback.print_exception(cause)
