"""README.md and the pages of docs/, as the tests read them: sections by
heading, fenced blocks by language, the `ckpt` commands of their shell
blocks, and their links. The tests that run what a page shows find it here,
so a paragraph can move between pages without its example going untested."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from conftest import REPO

_FENCE = "```"
_HEADING = re.compile(r"(#{1,6}) (.+)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")  # the target of an inline link, whatever its text holds


@dataclass(frozen=True)
class Page:
    path: Path

    @property
    def name(self) -> str:
        return str(self.path.relative_to(REPO))

    @property
    def text(self) -> str:
        return self.path.read_text()

    def prose(self) -> list[tuple[int, str]]:
        """Numbered lines outside fenced blocks: where headings and links are."""
        lines, fenced = [], False
        for number, line in enumerate(self.text.splitlines()):
            if line.startswith(_FENCE):
                fenced = not fenced
            elif not fenced:
                lines.append((number, line))
        return lines

    def headings(self) -> list[tuple[int, int, str]]:
        """(line number, level, text) of each heading."""
        return [(n, len(m.group(1)), m.group(2)) for n, line in self.prose() if (m := _HEADING.fullmatch(line))]

    def section(self, title: str) -> str:
        """The section whose heading starts with `title`, up to the next heading of its level or above."""
        headings = self.headings()
        [(start, level)] = [(n, lvl) for n, lvl, text in headings if text.startswith(title)]
        end = next((n for n, lvl, _ in headings if n > start and lvl <= level), None)
        return "\n".join(self.text.splitlines()[start:end])

    def blocks(self, *languages: str, within: str | None = None) -> list[str]:
        """The fenced blocks in the given languages ("" for unmarked), of the
        whole page or of one section (`within`: a heading's start)."""
        text = self.section(within) if within else self.text
        blocks, current, language = [], None, ""
        for line in text.splitlines():
            if line.startswith(_FENCE) and current is None:
                current, language = [], line[3:].strip()
            elif line.startswith(_FENCE):
                if language in languages:
                    blocks.append("\n".join(current))
                current = None
            elif current is not None:
                current.append(line)
        return blocks

    def commands(self, urls: bool = False) -> list[str]:
        """The concrete `ckpt` commands in the page's shell blocks, in order
        (not the `$ ` examples of output, not placeholders like mypkg): those
        on local files, or (`urls`) those on URLs, which need a server."""
        commands = []
        for block in self.blocks("bash", ""):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()
                if command.startswith("pip install ") and "&& ckpt " in command:
                    command = command.split("&& ", 1)[1]  # the install itself is what CI does
                if re.match(r"ckpt [a-z]+( |$)", command) and "mypkg" not in command:  # not "ckpt scan: ..." output
                    if ("://" in command) == urls:
                        commands.append(command)
        return commands

    def links(self) -> list[str]:
        """Every link target written in the page's prose."""
        return [target for _, line in self.prose() for target in _LINK.findall(line)]

    def anchors(self) -> set[str]:
        """The `#fragment` each heading gets, as GitHub makes them: lower
        case, punctuation dropped, spaces turned into hyphens, repeats numbered."""
        seen: dict[str, int] = {}
        anchors = set()
        for _, _, text in self.headings():
            slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
        return anchors


README = Page(REPO / "README.md")


@cache
def page(name: str) -> Page:
    """A page of docs/ by its file name ("CLI.md"), or "README.md"."""
    path = REPO / name if name == "README.md" else REPO / "docs" / name
    assert path.is_file(), f"no such page: {path}"
    return Page(path)


def pages() -> list[Page]:
    """README.md and every page of docs/."""
    return [README, *(Page(p) for p in sorted((REPO / "docs").glob("*.md")))]
