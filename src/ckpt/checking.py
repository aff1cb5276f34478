"""`ckpt check`: what `[tool.ckpt]` asks for, as one pass/fail report for CI.

Each configured target must still be checkpointable and each configured
checkpoint must still verify, so that a change which breaks either is
stopped before it is merged. Targets are resolved with the configuration
file's directory importable (and relative file targets relative to it), so
the result does not depend on where the command runs. Given files (what
pre-commit passes), only the `.ckpt` files among them are verified and only
the targets whose module file is among them are scanned.

A target passes under `fail-on = "error"` if `ckpt save` would write it:
every finding is rewrapped or stripped by save, or listed in `strip` for
that target. Under `fail-on = "any"` every finding fails. A configured
strip that matches no finding fails too (save would refuse it). A
configured checkpoint pattern that matches no file fails: nothing passes
because nothing was looked at.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ckpt.config import Config
from ckpt.errors import ConfigError, TargetError
from ckpt.kinds.catalog import Action
from ckpt.objects.paths import matches
from ckpt.scanning.groups import group
from ckpt.scanning.locate import module_file
from ckpt.scanning.walk import Finding, ScanReport, scan_object
from ckpt.target import importable_cwd, parse, resolve
from ckpt.verifying import VerifyReport, verify


@dataclass(frozen=True)
class CheckItem:
    """One thing that was checked: a target or a checkpoint file."""

    what: str
    """"target" or "checkpoint"."""
    name: str
    """The target as configured, or the checkpoint's path (or pattern)."""
    ok: bool
    why: str
    scan: ScanReport | None = None
    failing: tuple[Finding, ...] = ()
    """The findings that make a target fail (all of them under fail-on "any")."""
    stale: tuple[str, ...] = ()
    """Strips configured for the target that match no finding."""
    verify: VerifyReport | None = None
    file: Path | None = None
    """The checkpoint file, when there is one."""


@dataclass(frozen=True)
class CheckReport:
    config: Path | None
    root: Path
    fail_on: str
    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    @property
    def failures(self) -> list[CheckItem]:
        return [item for item in self.items if not item.ok]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class TargetConfigError(ConfigError):
    """A configured target does not resolve; keeps the user's exception for --traceback."""

    def __init__(self, message: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause


def check(config: Config, files: Sequence[str | Path] = (), trusted_keys: Sequence[str] = ()) -> CheckReport:
    """Scan the configured targets and verify the configured checkpoints, or,
    given files, only those that concern the files. Checkpoints verify when
    signed by a key the configuration (`trusted-keys`), `trusted_keys` or
    the user trusts."""
    if trusted_keys:
        config = dataclasses.replace(config, trusted_keys=(*config.trusted_keys, *trusted_keys))
    root = config.root.resolve()
    _importable(root)
    if files:
        given = [_given(f) for f in files]
        sources = {p for p in given if p.suffix != ".ckpt"}
        targets = [t for t in config.targets if _module_file(t, config, root) in sources]
        checkpoints = [_checkpoint(p, config) for p in given if p.suffix == ".ckpt"]
    else:
        _require_something(config)
        targets = list(config.targets)
        checkpoints = _configured_checkpoints(config)
    items = [_target(t, config, root) for t in targets] + checkpoints
    return CheckReport(config.path, root, config.fail_on, tuple(items))


def _importable(root: Path) -> None:
    """The configuration's directory first on sys.path, ahead of the current
    directory, so targets import from the project the file describes."""
    importable_cwd()
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))


def _given(file: str | Path) -> Path:
    path = Path(file)
    if not path.exists():
        raise ConfigError(f"no such file: {str(file)!r}")
    if path.is_dir():
        raise ConfigError(f"{str(file)!r} is a directory; ckpt check takes files (.ckpt and Python sources)")
    return path.resolve()


def _require_something(config: Config) -> None:
    if config.targets or config.checkpoints:
        return
    where = f"{config.path} has no [tool.ckpt] targets or checkpoints" if config.path else (
        "no pyproject.toml found in this directory or above")
    raise ConfigError(f"nothing to check: {where}", hint="add targets = [...] or checkpoints = [...] to [tool.ckpt]")


def _module_file(text: str, config: Config, root: Path) -> Path | None:
    try:
        return module_file(text, root)
    except TargetError as exc:
        raise TargetConfigError(_unresolved(text, config, exc), getattr(exc, "cause", None)) from None


def _unresolved(text: str, config: Config, exc: TargetError) -> str:
    return f"{config.path}: [tool.ckpt] targets: {text!r} does not resolve: {exc}"


def _target(text: str, config: Config, root: Path) -> CheckItem:
    try:
        target = parse(text)
        located = f"{root / target.file}:{target.attr}" if target.file else text
        report = scan_object(resolve(located), target=text)
    except TargetError as exc:
        raise TargetConfigError(_unresolved(text, config, exc), getattr(exc, "cause", None)) from None
    allowed = config.strip.get(text, ())
    failing = tuple(f for f in report.findings if _fails(f, config.fail_on, allowed))
    stale = tuple(p for p in allowed if not report.at(p))
    why = _target_why(report, failing, stale)
    return CheckItem("target", text, not failing and not stale, why, report, failing, stale)


def _fails(finding: Finding, fail_on: str, allowed: tuple[str, ...]) -> bool:
    if fail_on == "any":
        return True
    return finding.action is Action.ERROR and not any(matches(a, p) for a in allowed for p in finding.paths)


def _target_why(report: ScanReport, failing: tuple[Finding, ...], stale: tuple[str, ...]) -> str:
    reasons = []
    if failing:
        listed = ", ".join(f"{g.pattern} ({g.first.kind}, {g.first.action.value}"
                           + (f", {len(g.members):,} objects)" if g.grouped else ")")
                           for g in group(failing, lambda f: (f.kind, f.action)))
        reasons.append(f"{len(failing)} failing: {listed}")
    reasons += [f"strip {p} in [tool.ckpt] matches no finding (save would refuse it)" for p in stale]
    if reasons:
        return "; ".join(reasons)
    if not report.findings:
        return "clean: plain pickle handles it"
    counts: dict[str, int] = {}
    for f in report.findings:
        counts[f.action.value] = counts.get(f.action.value, 0) + 1
    split = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    return f"save handles every finding ({split})"


def _configured_checkpoints(config: Config) -> list[CheckItem]:
    items = []
    for pattern, files in config.checkpoint_matches().items():
        if not files:
            items.append(CheckItem("checkpoint", pattern, False, f"no file matches {pattern!r} (in {config.root})"))
        items += [_checkpoint(file, config) for file in files]
    return items


def _checkpoint(file: Path, config: Config) -> CheckItem:
    report = verify(file, trust=config.trust, trusted_keys=config.trusted_keys)
    if report.ok:
        why = f"{sum(c.ok is True for c in report.checks)} checks passed"
    else:
        why = "; ".join(f"{c.name}: {c.detail}" for c in report.failures)
    return CheckItem("checkpoint", _display(file), report.ok, why, verify=report, file=file.resolve())


def _display(path: Path) -> str:
    """Relative to the current directory when under it, as the user typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())
