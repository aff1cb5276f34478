"""Text output: a rich report on a terminal, plain aligned text otherwise.

Plain text is used when stdout is not a terminal or `NO_COLOR` is set, so
CI logs and pipes get no escape codes and no box drawing. Each command's
view describes its report as tables, fields and lines; this module decides
how they look.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from ckpt.core.errors import printable

_STYLES = {"error": "bold red", "rewrap": "green", "strip": "yellow", "ok": "green", "fail": "bold red", "bold": "bold"}


def safe(text: str) -> str:
    """Text that may come from a checkpoint (a target, a type name, a path)
    printed as it is: control characters escaped, so a hostile file cannot
    send escape sequences to the terminal; rich markup is never interpreted."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


class TextOutput:
    def __init__(self) -> None:
        self.console = Console(highlight=False)
        self.rich = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def heading(self, text: str) -> None:
        self.line(text, "bold")

    def line(self, text: str = "", style: str | None = None) -> None:
        text = safe(text)
        if self.rich and style:
            self.console.print(text, style=_STYLES.get(style, style), markup=False)
        elif self.rich:
            self.console.print(text, markup=False)
        else:
            click.echo(text)

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            self.line(f"  {key + ':':<{width + 1}} {value}")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[str] = ()) -> None:
        """Rows of cells; `styles` (optional, per row) colours the rows on a terminal."""
        if self.rich:
            table = Table(*columns, show_lines=False, header_style="bold")
            for i, row in enumerate(rows):
                style = _STYLES.get(styles[i]) if i < len(styles) else None
                table.add_row(*(Text(safe(cell)) for cell in row), style=style)
            self.console.print(table)
            return
        rows = [[safe(cell) for cell in row] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns[:-1])]
        for row in [list(columns), *rows]:
            cells = [f"{cell:<{w}}" for cell, w in zip(row, widths)] + [row[-1]]
            click.echo("  ".join(cells).rstrip())

    def code(self, source: str) -> None:
        if self.rich:
            self.console.print(Syntax(source, "python", theme="ansi_dark", background_color="default"))
        else:
            click.echo(source)
