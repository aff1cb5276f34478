"""Text output: a rich report on a terminal, plain aligned text otherwise.

Plain text is used when stdout is not a terminal or `NO_COLOR` is set (and
not empty, see no-color.org), so CI logs and pipes get no escape codes and
no box drawing; a non-empty `FORCE_COLOR` gives the rich report anywhere.
Each command's view describes its report as tables, fields and lines; this
module decides how they look.

Paths and type names are never cut or broken by ckpt (they are pasted into
`--strip` and into Python): a table's other columns wrap around them, and a
terminal too narrow for that gets one block per row instead, each path on
a line of its own that only the terminal itself may wrap.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ckpt import printable

_STYLES = {"error": "bold red", "rewrap": "green", "by-value": "cyan", "strip": "yellow", "remove": "yellow", "ok": "green", "fail": "bold red", "bold": "bold"}


def _whole_widths(columns: Sequence[str], rows: list[list[str]], whole: Sequence[int]) -> dict[int, int]:
    """The width each `whole` column needs: its longest line."""
    return {i: max(len(line) for cell in [columns[i], *(r[i] for r in rows)] for line in cell.split("\n"))
            for i in whole}


def _table_width(columns: Sequence[str], rows: list[list[str]], widths: dict[int, int]) -> int:
    """The narrowest the table can be with its `widths` columns whole and
    every other column at least `_NARROWEST` wide (or its longest word)."""
    total = 1 + 3 * len(columns)  # the borders and the padding around each cell
    for i, column in enumerate(columns):
        if i in widths:
            total += widths[i]
            continue
        longest = max(len(word) for cell in [column, *(r[i] for r in rows)] for word in [*cell.split(), ""])
        total += min(longest, _NARROWEST)
    return total


def safe(text: str) -> str:
    """Text that may come from a checkpoint (a target, a type name, a path)
    printed as it is: control characters escaped, so a hostile file cannot
    send escape sequences to the terminal; rich markup is never interpreted."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


_NARROWEST = 12
"""A wrapped column is given at least this many characters (or its longest word) before a table turns into blocks."""


class TextOutput:
    def __init__(self) -> None:
        self.console = Console(highlight=False)
        self.rich = self.console.is_terminal and not self.console.no_color

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
        """`key: value` lines; on a terminal a long value wraps under itself, not back to column 0."""
        if not self.rich:
            width = max((len(k) for k, _ in pairs), default=0)
            for key, value in pairs:
                self.line(f"  {key + ':':<{width + 1}} {value}")
            return
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in pairs:
            grid.add_row(Text(f"  {key}:"), Text(safe(value)))
        self.console.print(grid)

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[str] = (),
              whole: Sequence[int] = (0,), title: str = "") -> None:
        """Rows of cells under an optional `title` line; `styles` (optional,
        per row) colours the rows on a terminal; the cells of the `whole`
        columns (paths, types, hashes) are never cut. A first cell may have
        more lines (`also at ...`): they go under it."""
        if title:
            self.heading(title)
        cells = [[safe(cell) for cell in row] for row in rows]
        if not self.rich:
            self._plain_table(columns, cells)
            return
        row_styles = [_STYLES.get(styles[i]) if i < len(styles) else None for i in range(len(cells))]
        widths = _whole_widths(columns, cells, whole)
        if _table_width(columns, cells, widths) <= self.console.width:
            self._rich_table(columns, cells, row_styles, widths)
        else:
            self._blocks(columns, cells, row_styles)

    @staticmethod
    def _plain_table(columns: Sequence[str], rows: list[list[str]]) -> None:
        firsts = [[row[0].split("\n")[0], *row[1:]] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in firsts]) for i, c in enumerate(columns[:-1])]
        for row, first in zip([list(columns), *rows], [list(columns), *firsts]):
            padded = [f"{cell:<{w}}" for cell, w in zip(first, widths)] + [first[-1]]
            click.echo("  ".join(padded).rstrip())
            for more in row[0].split("\n")[1:]:
                click.echo(more)

    def _rich_table(self, columns: Sequence[str], rows: list[list[str]], styles: list[str | None],
                    widths: dict[int, int]) -> None:
        table = Table(show_lines=False, header_style="bold")
        for i, column in enumerate(columns):
            if i in widths:
                table.add_column(column, width=widths[i], no_wrap=True)
            else:
                table.add_column(column, overflow="fold")
        for row, style in zip(rows, styles):
            table.add_row(*(Text(cell) for cell in row), style=style)
        self.console.print(table)

    def _blocks(self, columns: Sequence[str], rows: list[list[str]], styles: list[str | None]) -> None:
        """One block per row: the first cell's lines as they are, then `column: cell` lines."""
        for row, style in zip(rows, styles):
            for line in row[0].split("\n"):
                self.console.print(line, style=style, markup=False, soft_wrap=True)
            for column, cell in zip(columns[1:], row[1:]):
                self.console.print(f"    {column}: {cell}", style=style, markup=False, soft_wrap=True)

    def code(self, source: str) -> None:
        if self.rich:
            # Imported here: it brings pygments, for the source a finding shows only.
            from rich.syntax import Syntax

            self.console.print(Syntax(source, "python", theme="ansi_dark", background_color="default"))
        else:
            click.echo(source)
