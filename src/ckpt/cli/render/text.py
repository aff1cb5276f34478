"""Text output: what each command shows a person, through TextOutput (a
rich report on a terminal, plain aligned text otherwise)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ckpt import (
    Array,
    ArrayDiff,
    CheckReport,
    Diff,
    Finding,
    GlobalVerdict,
    Group,
    Inspection,
    LoadReport,
    Provenance,
    SaveReport,
    ScanReport,
    Substitution,
    Suggestion,
    VerifyReport,
    group,
    keys,
)
from ckpt.cli.render.terminal import TextOutput


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _where(g: Group[Any]) -> str:
    """A path cell: the path and where else the object is, or a group's pattern and its size."""
    if g.grouped:
        return f"{g.pattern}\n  {len(g.members):,} objects (--all lists each)"
    return g.first.path + "".join(f"\n  also at {p}" for p in g.first.also_at)


def _groups(items: Sequence[Any], same: Callable[[Any], Hashable], every: bool, **how: Any) -> list[Group[Any]]:
    """Like items grouped, or (`every`, as `--all` asks) each on its own."""
    return group(items, same, least=len(items) + 1, **how) if every else group(items, same, **how)


def _common(g: Group[Any], text: Callable[[Any], str]) -> str:
    return g.common(text) or "differs between them (--all lists each)"


def _phrase(note: str, lost: str) -> str:
    """What happens to one object, said once: its note (the specific fact: a
    held lock, the file a handler reopens) and what its kind loses, without
    the kind's generic parenthesis the note has just made specific."""
    return f"{note}; lost: {lost.split(' (')[0]}" if note else lost


def _remark(f: Finding) -> str:
    if f.action.value == "error":
        remark = f"{f.note}; {f.advice}" if f.note else f.advice
    else:
        remark = _phrase(f.note, f.lost)
    return f"{remark}; {f.strip_effect}" if f.strip_effect else remark


def findings_table(out: TextOutput, findings: tuple[Finding, ...], every: bool = False) -> None:
    """One row per finding, or per group of like findings unless `every`."""
    rows, styles = [], []
    for g in _groups(findings, lambda f: (f.type, f.kind, f.action), every):
        f = g.first
        rows.append([_where(g), f.type, f.kind, f.action.value, _common(g, _remark)])
        styles.append(f.action.value)
    if out.rich:
        out.table(["path", "type", "kind", "save will", "lost / advice"], rows, styles, whole=(0, 1))
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
    split = ", ".join(f"{n:,} {action}" for action, n in sorted(counts.items()))
    found = plural(len(report.findings), "finding") + (f" ({split})" if split else "")
    return f"{plural(report.objects, 'object')} pickled or walked, {found}, {report.seconds:.2f} s"


def scan_text(out: TextOutput, report: ScanReport, suggestions: list[Suggestion] | None, every: bool = False) -> None:
    label = f"{report.target} ({report.root_type})" if report.target else report.root_type
    if report.findings:
        out.heading(f"ckpt scan: {label}: plain pickle fails on {plural(len(report.findings), 'object')}")
        findings_table(out, report.findings, every)
    else:
        out.heading(f"ckpt scan: {label}: clean, plain pickle handles it")
    if suggestions is not None:
        _suggestions_text(out, report, suggestions, every)
    notices_text(out, report.notices)
    out.line(summary(report), "fail" if report.severity >= 2 else None)


def notices_text(out: TextOutput, notices: tuple[str, ...]) -> None:
    for notice in notices:
        out.line(f"note: {notice}", "strip")


def _at(paths: Sequence[str], every: bool) -> str:
    """Where a suggestion's class sits: each path, or the pattern of many alike."""
    groups = _groups(paths, lambda path: None, every, path=str)
    return ", ".join(g.pattern + (f" ({len(g.members):,} objects)" if g.grouped else "") for g in groups)


def _suggestions_text(out: TextOutput, report: ScanReport, suggestions: list[Suggestion], every: bool) -> None:
    for s in suggestions:
        out.line()
        out.heading(f"# {s.cls}  ({_at(s.paths, every)})")
        if s.imports:
            out.code("".join(f"import {m}\n" for m in s.imports))
        out.code(s.code)
    orphans = [f for f in report.findings if f.owner is None]
    if orphans:
        out.line()
        out.line("No hand fix to suggest for these (not an attribute of a class instance); `ckpt save` handles "
                 "rewrap kinds, or restructure:")
        for g in _groups(orphans, lambda f: f.kind, every):
            where, *alike = _where(g).split("\n")
            out.line(f"  {where} ({g.first.kind})" + "".join(f";{more}" for more in alike))


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _happens(s: Substitution) -> str:
    return _phrase(s.note, s.lost)


def _substitutions_text(out: TextOutput, substitutions: tuple[Substitution, ...], every: bool) -> None:
    """One row per substitution, or per group of like ones unless `every`."""
    if not substitutions:
        return
    groups = _groups(substitutions, lambda s: (s.kind, s.action), every)
    rows = [[_where(g), g.first.kind, g.first.action, _common(g, _happens)] for g in groups]
    out.table(["path", "kind", "action", "what happens"], rows, [g.first.action for g in groups],
              title="substitutions (what save did not write as it was)")


def _counts(substitutions: tuple[Substitution, ...]) -> str:
    rewrapped = sum(s.action == "rewrap" for s in substitutions)
    stripped = sum(s.action == "strip" for s in substitutions)
    code = sum(s.action == "by-value" for s in substitutions)
    removed = sum(s.action == "remove" for s in substitutions)
    return (f"{rewrapped:,} rewrapped, {stripped:,} stripped" + (f", {removed:,} removed from registries" if removed
            else "") + (f", {code:,} saved by value" if code else ""))


def _loads_as(origin: Provenance) -> str:
    if origin.whole:
        return "whole, as plain pickle would (its signer is trusted here)"
    return "as data only: nothing it names runs (trust its signer to load it whole)"


def save_text(out: TextOutput, report: SaveReport, every: bool = False) -> None:
    m = report.manifest
    verb = "replaced" if report.replaced else "wrote"
    out.heading(f"ckpt save: {verb} {report.path} ({human_size(report.size)}, {report.seconds:.2f} s)")
    out.fields([
        ("root", m.root_type),
        ("members", f"{len(m.members)} ({sum(x.size for x in m.members.values()):,} bytes)"),
        ("substitutions", _counts(m.substitutions)),
        ("signed", f"by you ({keys.fingerprint(m.signature.public_key)}): it loads whole for you and for whoever "
                   "trusts your key (ckpt key export)" if m.signature else "no"),
        ("load with", f"ckpt load {report.path}"),
    ])
    _substitutions_text(out, m.substitutions, every)
    notices_text(out, report.notices)


def load_text(out: TextOutput, report: LoadReport, checks: VerifyReport | None, every: bool = False) -> None:
    m = report.manifest
    out.heading(f"ckpt load: {report.path}: {m.root_type}")
    out.fields([
        ("objects", f"{report.manifest.objects:,}"),
        ("substitutions", _counts(m.substitutions) + " (restored as listed)"),
        ("size", human_size(report.size) + (" (arrays memory-mapped)" if report.mapped else "")),
        ("time", f"{report.seconds:.2f} s"),
        ("signature", report.provenance.describe()),
        ("loaded", _loads_as(report.provenance).replace("as data only: nothing it names runs", "as data only")),
        ("saved", f"{m.created} by ckpt {m.ckpt_version}, Python {m.python}" + (f", from {m.target}" if m.target else "")),
    ])
    for warning in report.warnings:
        out.line(f"warning: {warning}", "strip")
    _substitutions_text(out, m.substitutions, every)
    if checks is not None:
        checks_text(out, checks)


def checks_text(out: TextOutput, checks: VerifyReport) -> None:
    marks = {True: "ok", False: "FAIL", None: "skip"}
    rows = [[c.name, marks[c.ok], c.detail] for c in checks.checks]
    out.table(["check", "result", "detail"], rows, [{True: "ok", False: "fail", None: ""}[c.ok] for c in checks.checks])
    failed = checks.failures
    out.line(f"verify: {'all checks passed' if not failed else f'{len(failed)} check(s) failed'}",
             "ok" if not failed else "fail")


def verdict(v: GlobalVerdict) -> str:
    """One global's verdict in words (JSON carries it too)."""
    if v.admitted:
        return f"allowed: {v.why}"
    if v.trust:
        return f"needs --trust {v.trust}"
    return f"REFUSED: {v.why}"


def inspect_text(out: TextOutput, inspection: Inspection, every: bool = False) -> None:
    m = inspection.manifest
    out.heading(f"ckpt inspect: {inspection.path} ({human_size(inspection.size)}); nothing in it was run")
    out.fields([
        ("format", f"{m.format} {m.format_version}"),
        ("created", f"{m.created} by ckpt {m.ckpt_version}, Python {m.python}"),
        ("target", m.target or "(none)"),
        ("root", m.root_type),
        ("signature", inspection.provenance.describe()),
        ("would load", _loads_as(inspection.provenance)),
        ("modules", ", ".join(f"{k} {v}" for k, v in m.modules.items()) or "(standard library only)"),
    ])
    out.table(["member", "size", "sha256"], [[n, f"{x.size:,}", x.sha256] for n, x in m.members.items()],
              whole=(0, 2), title="members (each checked against its sha256 in the manifest)")
    if m.arrays:
        out.table(["path", "type", "dtype", "shape", "size", "member"],
                  [[_array_where(a), a.type, a.dtype, _shape(a.shape), human_size(a.nbytes), a.member]
                   for a in m.arrays], title="arrays (written out of band, listed by the manifest)")
    _substitutions_text(out, m.substitutions, every)
    out.table(["global", "used as", "as data"], [[v.name, ", ".join(v.uses) or "-", verdict(v)]
                                                 for v in inspection.globals],
              title="globals data.pkl refers to (read from its opcodes), judged as the data-only loader would")
    if inspection.analysis_failed:
        out.line(f"cannot analyse data.pkl: it {inspection.analysis_failed}", "fail")
    for problem in inspection.problems:
        out.line(f"problem: {problem}", "fail")
    if not inspection.problems:
        out.line("intact: every member matches the manifest" + ("" if inspection.provenance.whole else
                 ", and nothing in data.pkl is refused outright"), "ok")


def _array_where(a: Array) -> str:
    if not a.path:
        return "(not placed in the model)"
    return a.path + "".join(f"\n  also at {p}" for p in a.also_at)


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def verify_text(out: TextOutput, reports: Sequence[VerifyReport]) -> None:
    for report in reports:
        failed = report.failures
        verdict = "ok" if not failed else f"FAIL ({len(failed)} of {len(report.checks)} checks failed)"
        out.heading(f"ckpt verify: {report.path}: {verdict}")
        checks_text(out, report)
    if len(reports) > 1:
        bad = sum(not r.ok for r in reports)
        out.line(f"ckpt verify: {plural(len(reports), 'file')}, {'all passed' if not bad else f'{bad} failed'}",
                 "ok" if not bad else "fail")


def _described(a: Array | None) -> str:
    return "-" if a is None else f"{a.dtype} {_shape(a.shape)}"


def _sides(d: ArrayDiff) -> str:
    """Its dtype and shape, once if both files agree on them."""
    left, right = _described(d.a), _described(d.b)
    return left if left == right else f"{left} -> {right}"


def _how_much(d: ArrayDiff) -> str:
    if d.note:
        return d.note
    if d.elements is None or d.same or d.a is None:
        return ""
    largest = "" if d.largest is None else f"; largest |a-b| {d.largest:.6g}"
    return f"{d.elements:,} of {math.prod(d.a.shape):,} elements{largest}"


def diff_text(out: TextOutput, result: Diff) -> None:
    changed = [d for d in result.arrays if not d.same]
    if result.equal:
        verdict = f"same content ({plural(len(result.arrays), 'array')} and data.pkl)"
    else:
        parts = [f"{len(changed)} of {plural(len(result.arrays), 'array')} differ"] if changed else []
        parts += [] if result.data_same else ["data.pkl differs"]
        parts += [plural(len(result.substitutions), "substitution") + " differ"] if result.substitutions else []
        parts += ["root type differs"] if any(c.field == "root type" for c in result.manifest) else []
        verdict = "different: " + ", ".join(parts)
    out.heading(f"ckpt diff: {result.a} -> {result.b}: {verdict}")
    if result.manifest:
        out.fields([(c.field, f"{c.a} -> {c.b}") for c in result.manifest])
    out.fields([("data.pkl", "same bytes" if result.data_same else
                 "differs (objects besides the listed arrays changed, or were written in another order)")])
    if result.arrays:
        rows = [[d.key, d.status, _sides(d), _how_much(d)] for d in result.arrays]
        out.table(["path", "status", "dtype shape", "difference"], rows,
                  ["ok" if d.same else "fail" for d in result.arrays], title="arrays")
    if result.substitutions:
        out.table(["path", "in A", "in B"],
                  [[d.path, _substituted(d.a), _substituted(d.b)] for d in result.substitutions],
                  title="substitutions that differ")
    for note in result.notes:
        out.line(f"note: {note}", "strip")


def _substituted(s: Substitution | None) -> str:
    return "-" if s is None else f"{s.kind} {s.action}" + (f" ({s.note})" if s.note else "")


def check_report_text(out: TextOutput, report: CheckReport) -> None:
    out.heading(f"ckpt check: {report.config or 'no pyproject.toml'} (fail-on = {report.fail_on})")
    if not report.items:
        out.line("nothing among the given files is a configured target's module or a .ckpt file", "ok")
        return
    rows = [[f"{item.what} {item.name}", "ok" if item.ok else "FAIL", item.why] for item in report.items]
    out.table(["checked", "result", "why"], rows, ["ok" if item.ok else "fail" for item in report.items])
    failed = len(report.failures)
    verdict = "all passed" if not failed else f"{failed} failed"
    out.line(f"ckpt check: {plural(len(report.items), 'check')}, {verdict}", "ok" if not failed else "fail")


def keys_text(out: TextOutput, rows: list[tuple[str, str, str]], home: Any) -> None:
    out.heading(f"ckpt keys ({home})")
    if not rows:
        out.line("no key yet: the first `ckpt save` (or `ckpt key export`) makes yours")
        return
    out.table(["role", "key", "from"], [list(row) for row in rows], whole=(1,))
