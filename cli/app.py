"""The click commands. Each parses its options, calls one core function and
renders the result; exit codes come from the result, never from here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ckpt.core import __version__
from ckpt.core.scan import scan as scan_object
from ckpt.core.suggest import suggest as suggest_fixes
from ckpt.core.target import resolve

from . import views
from .text import TextOutput

_state = {"traceback": False}


def wants_traceback() -> bool:
    return _state["traceback"]


def _set_traceback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _state["traceback"] = True


def common(formats: tuple[str, ...] = ("text", "json")) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options every command takes: --format and --traceback."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--traceback",
            is_flag=True,
            expose_value=False,
            callback=_set_traceback,
            help="On error, show the full Python traceback (of the user's code too).",
        )(fn)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(formats),
            default="text",
            show_default=True,
            help="Output format. Text is a rich report on a terminal and plain text when piped or NO_COLOR is set.",
        )(fn)

    return decorate


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="ckpt", message="%(prog)s %(version)s")
def cli() -> None:
    """Checkpoint Python models that plain pickle refuses.

    ckpt finds every object that stops pickle (locks, queues, threads,
    executors, logging handlers, open files, lambdas, ...) by path, rewraps
    the thread primitives into fresh equivalents, and writes checkpoint files
    that are hashed, written atomically and loaded without running code that
    nobody trusted.

    TARGET is package.module:attr, package.module:attr.sub or
    path/to/file.py:attr. A class or function there is called with no
    arguments to build the model; the current directory is importable.

    Exit codes: 0 ok, 1 findings or a failed check, 2 bad input or error.
    """


@cli.command()
@click.argument("target")
@click.option("--suggest", is_flag=True, help="Also print __getstate__/__setstate__ code that fixes each class by hand.")
@common()
@click.pass_context
def scan(ctx: click.Context, target: str, suggest: bool, fmt: str) -> None:
    """Report every object in TARGET that plain pickle refuses.

    Walks the object graph the way pickle.dumps(obj, protocol=5) does and
    lists each unpicklable object with its path (model.steps[1][1].handler.lock),
    its type, its kind and what `ckpt save` will do with it. There are
    findings if and only if plain pickle fails on the object.

    Exit 0 clean, 1 findings, 2 the target could not be built.
    """
    report = scan_object(resolve(target), target=target)
    suggestions = suggest_fixes(report) if suggest else None
    if fmt == "json":
        emit_json(views.scan_json(report, suggestions))
    else:
        views.scan_text(TextOutput(), report, suggestions)
    ctx.exit(report.exit_code)
