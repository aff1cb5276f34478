"""What each command shows: reports turned into text (via TextOutput) or JSON data.

JSON documents are built here field by field, so their schema (documented
in README) is explicit and does not change when a dataclass grows a field.
"""

from __future__ import annotations

from typing import Any

from ckpt.core.paths import shorten
from ckpt.core.scan import Finding, ScanReport
from ckpt.core.suggest import Suggestion

from .text import TextOutput


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "path": f.path,
        "type": f.type,
        "kind": f.kind,
        "action": f.action.value,
        "lost": f.lost,
        "advice": f.advice,
        "note": f.note,
        "also_at": list(f.also_at),
    }


def scan_json(report: ScanReport, suggestions: list[Suggestion] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "target": report.target,
        "root_type": report.root_type,
        "objects": report.objects,
        "seconds": round(report.seconds, 4),
        "findings": [finding_json(f) for f in report.findings],
    }
    if suggestions is not None:
        data["suggestions"] = [{"class": s.cls, "paths": list(s.paths), "code": s.code} for s in suggestions]
    return data


def findings_table(out: TextOutput, findings: tuple[Finding, ...]) -> None:
    rows, styles = [], []
    for f in findings:
        where = shorten(f.path) + "".join(f"\n  also at {shorten(p)}" for p in f.also_at)
        remark = f.advice if f.action.value == "error" else f.lost
        if f.note:
            remark = f"{f.note}; {remark}"
        rows.append([where, f.type, f.kind, f.action.value, remark])
        styles.append(f.action.value)
    if out.rich:
        out.table(["path", "type", "kind", "save will", "lost / advice"], rows, styles)
        return
    for row in rows:
        path, type_name, kind, action, remark = row
        first, *also = path.split("\n")
        out.line(f"{first}: {kind} ({type_name}) -> {action}: {remark}")
        for extra in also:
            out.line(f"  {extra.strip()}")


def summary(report: ScanReport) -> str:
    counts: dict[str, int] = {}
    for f in report.findings:
        counts[f.action.value] = counts.get(f.action.value, 0) + 1
    split = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    found = plural(len(report.findings), "finding") + (f" ({split})" if split else "")
    return f"{plural(report.objects, 'object')} pickled or walked, {found}, {report.seconds:.2f} s"


def scan_text(out: TextOutput, report: ScanReport, suggestions: list[Suggestion] | None) -> None:
    label = f"{report.target} ({report.root_type})" if report.target else report.root_type
    if report.findings:
        out.heading(f"ckpt scan: {label}: plain pickle fails on {plural(len(report.findings), 'object')}")
        findings_table(out, report.findings)
    else:
        out.heading(f"ckpt scan: {label}: clean, plain pickle handles it")
    if suggestions is not None:
        _suggestions_text(out, report, suggestions)
    out.line(summary(report), "fail" if report.severity >= 2 else None)


def _suggestions_text(out: TextOutput, report: ScanReport, suggestions: list[Suggestion]) -> None:
    for s in suggestions:
        out.line()
        out.heading(f"# {s.cls}  ({', '.join(shorten(p, 60) for p in s.paths)})")
        if s.imports:
            out.code("".join(f"import {m}\n" for m in s.imports))
        out.code(s.code)
    orphans = [f for f in report.findings if f.owner is None]
    if orphans:
        out.line()
        out.line("No hand fix to suggest for these (not an attribute of a class instance); `ckpt save` handles "
                 "rewrap kinds, or restructure:")
        for f in orphans:
            out.line(f"  {shorten(f.path)} ({f.kind})")
