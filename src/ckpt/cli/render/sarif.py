"""SARIF 2.1.0 output, for code-scanning services (GitHub, GitLab, Azure DevOps).

One run. `tool.driver` has one rule per catalog kind, generated from
`catalog.KINDS` (a new kind is a new rule, with nothing to edit here),
plus `check-failed` for what `ckpt check` fails that is not a finding (a
checkpoint that does not verify, a pattern that matches no file, a strip
that matches nothing). Each finding is a result whose level is `error` when
it fails (for `scan`: save refuses it; for `check`: it fails under the
configured fail-on and strips) and `note` otherwise (save rewraps or strips
it: nothing to fix), located at the line that assigns the attribute when it
can be found, else at the target's module. The run's invocation says whether
ckpt ran to the end; a run that could not (`error_log`: a target that does
not import, a bad configuration) has no results and carries its error as a
tool execution notification, so an upload step always gets a valid log.

File URIs are relative to the current directory (`%SRCROOT%`), which in CI is
the repository root, so alerts land on the files in the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ckpt import (
    KINDS,
    Action,
    CheckReport,
    Finding,
    Kind,
    Location,
    ScanReport,
    __version__,
    finding_location,
)

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
CHECK_RULE = "check-failed"
_SRCROOT = "%SRCROOT%"


def scan_log(report: ScanReport) -> dict[str, Any]:
    """A scan's findings; those save refuses are errors."""
    refused = tuple(f for f in report.findings if f.action is Action.ERROR)
    return _log(_finding_results(report, refused, Path.cwd()), {"executionSuccessful": True})


def check_log(report: CheckReport) -> dict[str, Any]:
    """Every finding of every target checked, and every other failed check."""
    results: list[dict[str, Any]] = []
    for item in report.items:
        if item.scan is not None:
            results += _finding_results(item.scan, item.failing, report.root)
            results += [_check_result(f"target {item.name}: strip {p} in [tool.ckpt] matches no finding "
                                      "(ckpt save would refuse it)", report.config) for p in item.stale]
        elif not item.ok:
            results.append(_check_result(f"checkpoint {item.name}: {item.why}", item.file or report.config))
    return _log(results, {"executionSuccessful": True})


def error_log(message: str, code: int) -> dict[str, Any]:
    """A run that ckpt could not complete: no results, and why, as a tool execution notification."""
    notification = {"level": "error", "message": {"text": message}}
    return _log([], {"executionSuccessful": False, "exitCode": code, "toolExecutionNotifications": [notification]})


def _log(results: list[dict[str, Any]], invocation: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": _driver()},
                "invocations": [invocation],
                "originalUriBaseIds": {_SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
                "results": results,
            }
        ],
    }


def _driver() -> dict[str, Any]:
    return {
        "name": "ckpt",
        "version": __version__,
        "semanticVersion": __version__,
        "rules": [_kind_rule(kind) for kind in KINDS] + [_check_rule()],
    }


_VERBS = {Action.REWRAP: "rewraps", Action.BY_VALUE: "saves by value (its code)", Action.STRIP: "strips (saves as None)",
          Action.ERROR: "refuses"}


def _kind_rule(kind: Kind) -> dict[str, Any]:
    what = ", ".join(kind.types) or "an object plain pickle refuses"
    verb = _VERBS[kind.action]
    return _rule(
        kind.name,
        f"{kind.name}: ckpt save {verb} it",
        f"{what}. ckpt save {verb} it. Lost in a checkpoint: {kind.lost}.",
        f"Advice: {kind.advice}.",
        "error" if kind.action is Action.ERROR else "note",
    )


def _check_rule() -> dict[str, Any]:
    return _rule(
        CHECK_RULE,
        "a configured check failed",
        "A checkpoint in [tool.ckpt] does not verify or does not exist, or a configured strip matches no finding.",
        "Run `ckpt check` locally; the message names the failed check.",
        "error",
    )


def _rule(rule_id: str, short: str, full: str, help_text: str, level: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["ckpt", "pickle", "checkpoint"]},
    }


_RULE_INDEX = {kind.name: i for i, kind in enumerate(KINDS)} | {CHECK_RULE: len(KINDS)}


def _finding_results(report: ScanReport, failing: tuple[Finding, ...], root: Path) -> list[dict[str, Any]]:
    return [_finding_result(f, report.target, f in failing, root) for f in report.findings]


def _finding_result(finding: Finding, target: str, fails: bool, root: Path) -> dict[str, Any]:
    also = "".join(f"; also at {p}" for p in finding.also_at)
    remark = finding.advice if finding.action is Action.ERROR else finding.lost
    note = f" ({finding.note})" if finding.note else ""
    message = (
        f"{finding.path}: {finding.kind} ({finding.type}) in {target or 'the object'}{note}: "
        f"ckpt save {_VERBS[finding.action]} it; {remark}{also}"
    )
    result = _result(finding.kind, "error" if fails else "note", message,
                     finding_location(finding, target, root) if target else None)
    result["properties"] = {"target": target, "path": finding.path, "action": finding.action.value}
    return result


def _check_result(message: str, file: Path | None) -> dict[str, Any]:
    return _result(CHECK_RULE, "error", message, Location(file) if file is not None else None)


def _result(rule_id: str, level: str, message: str, location: Location | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": _RULE_INDEX[rule_id],
        "level": level,
        "message": {"text": message},
    }
    if location is not None:
        result["locations"] = [{"physicalLocation": _physical(location)}]
    return result


def _physical(location: Location) -> dict[str, Any]:
    try:
        artifact = {"uri": location.file.resolve().relative_to(Path.cwd()).as_posix(), "uriBaseId": _SRCROOT}
    except ValueError:
        artifact = {"uri": location.file.resolve().as_uri()}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if location.line is not None:
        physical["region"] = {"startLine": location.line}
    return physical
