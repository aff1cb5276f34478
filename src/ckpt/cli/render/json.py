"""`--format json`: each command's report as one JSON document.

Built here field by field, so the schema (documented in docs/CLI.md) is
explicit and does not change when a dataclass grows a field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ckpt
from ckpt.cli.render.text import verdict


def finding_json(f: ckpt.Finding) -> dict[str, Any]:
    return {
        "path": f.path,
        "type": f.type,
        "kind": f.kind,
        "action": f.action.value,
        "lost": f.lost,
        "advice": f.advice,
        "note": f.note,
        "also_at": list(f.also_at),
        **({"strip_effect": f.strip_effect} if f.strip_effect else {}),
    }


def scan_json(report: ckpt.ScanReport, suggestions: list[ckpt.Suggestion] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "target": report.target,
        "root_type": report.root_type,
        "objects": report.objects,
        "seconds": round(report.seconds, 4),
        "findings": [finding_json(f) for f in report.findings],
        "notices": list(report.notices),
    }
    if suggestions is not None:
        data["suggestions"] = [{"class": s.cls, "paths": list(s.paths), "code": s.code} for s in suggestions]
    return data


def substitution_json(s: ckpt.Substitution) -> dict[str, Any]:
    return {"path": s.path, "kind": s.kind, "action": s.action, "lost": s.lost, "note": s.note,
            "also_at": list(s.also_at), **({"registry": s.registry} if s.registry else {})}


def provenance_json(origin: ckpt.Provenance) -> dict[str, Any]:
    return {
        "origin": origin.origin.value,
        "loads": "whole" if origin.whole else "data only",
        "signer": origin.signer.fingerprint if origin.signer else None,
        "signer_name": origin.signer.name if origin.signer and origin.whole else None,
        "trusted_by": origin.trusted_by or None,
        "description": origin.describe(),
    }


def save_json(report: ckpt.SaveReport) -> dict[str, Any]:
    signature = report.manifest.signature
    return {
        "path": report.path,
        "signer": ckpt.keys.fingerprint(signature.public_key) if signature else None,
        "size": report.size,
        "seconds": round(report.seconds, 4),
        "replaced": report.replaced,
        "notices": list(report.notices),
        "manifest": report.manifest.to_dict(),
    }


def check_json(checks: ckpt.VerifyReport) -> dict[str, Any]:
    return {
        "ok": checks.ok,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks.checks],
    }


def load_json(report: ckpt.LoadReport, checks: ckpt.VerifyReport | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": report.path,
        "root_type": report.manifest.root_type,
        "objects": report.manifest.objects,
        "size": report.size,
        "seconds": round(report.seconds, 4),
        "mapped": report.mapped,
        "provenance": provenance_json(report.provenance),
        "warnings": list(report.warnings),
        "substitutions": [substitution_json(s) for s in report.manifest.substitutions],
    }
    if checks is not None:
        data["verify"] = check_json(checks)
    return data


def inspect_json(inspection: ckpt.Inspection) -> dict[str, Any]:
    return {
        "path": inspection.path,
        "size": inspection.size,
        "provenance": provenance_json(inspection.provenance),
        "manifest": inspection.manifest.to_dict(),
        "arrays": [array_json(a) for a in inspection.manifest.arrays],
        "globals": [{"name": v.name, "uses": list(v.uses), "admitted": v.admitted, "why": v.why, "trust": v.trust,
                     "verdict": verdict(v)} for v in inspection.globals],
        "problems": list(inspection.problems),
        "analysis_failed": inspection.analysis_failed,
    }


def array_json(a: ckpt.Array) -> dict[str, Any]:
    return {"path": a.path or None, "also_at": list(a.also_at), "type": a.type, "dtype": a.dtype,
            "shape": list(a.shape), "nbytes": a.nbytes, "member": a.member, "offset": a.offset,
            "strides": list(a.strides)}


def verify_json(reports: Sequence[ckpt.VerifyReport]) -> dict[str, Any]:
    return {"ok": all(r.ok for r in reports), "files": [{"path": r.path, **check_json(r)} for r in reports]}


def _largest(d: ckpt.ArrayDiff) -> float | str | None:
    """JSON has no infinity: a NaN against a number is the string "inf"."""
    return "inf" if d.largest is not None and d.largest == float("inf") else d.largest


def diff_json(result: ckpt.Diff) -> dict[str, Any]:
    def side(a: ckpt.Array | None) -> dict[str, Any] | None:
        return None if a is None else array_json(a)

    def substitution(s: ckpt.Substitution | None) -> dict[str, Any] | None:
        return None if s is None else substitution_json(s)

    return {
        "a": result.a,
        "b": result.b,
        "equal": result.equal,
        "data_same": result.data_same,
        "manifest": [{"field": c.field, "a": c.a, "b": c.b} for c in result.manifest],
        "arrays": [{"path": d.key, "status": d.status, "elements_changed": d.elements,
                    "largest_difference": _largest(d), "note": d.note, "a": side(d.a), "b": side(d.b)}
                   for d in result.arrays],
        "substitutions": [{"path": d.path, "a": substitution(d.a), "b": substitution(d.b)} for d in result.substitutions],
        "notes": list(result.notes),
    }


def check_report_json(report: ckpt.CheckReport) -> dict[str, Any]:
    return {
        "config": str(report.config) if report.config else None,
        "fail_on": report.fail_on,
        "ok": report.ok,
        "items": [_item_json(item) for item in report.items],
    }


def _item_json(item: ckpt.CheckItem) -> dict[str, Any]:
    data: dict[str, Any] = {"what": item.what, "name": item.name, "ok": item.ok, "why": item.why}
    if item.scan is not None:
        data["findings"] = [finding_json(f) for f in item.scan.findings]
        data["failing"] = [f.path for f in item.failing]
        data["stale_strips"] = list(item.stale)
    if item.verify is not None:
        data["verify"] = check_json(item.verify)
    return data


def keys_json(rows: list[tuple[str, str, str]], home: Any) -> dict[str, Any]:
    return {"home": str(home), "keys": [{"role": role, "key": key, "from": where} for role, key, where in rows]}
