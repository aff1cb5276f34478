"""Every check a checkpoint can pass, as a list of named results.

`verify(path)` never stops at the first failure: it reports each check
(structure, hashes of every member, who signed it, the load, each restored
primitive exercised across threads, stripped objects restored as None,
substitutions against what came back, module versions, and optionally a
structural comparison with a fresh object), so one run tells the whole story.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ckpt.errors import CheckpointError, CkptError
from ckpt.format.archive import Archive
from ckpt.format.files import StorageOptions, is_path, opened
from ckpt.format.modules import version_warnings
from ckpt.kinds import catalog
from ckpt.kinds.catalog import Action
from ckpt.kinds.probes import ProbeFailed
from ckpt.loading import LoadReport, load_checkpoint
from ckpt.objects.paths import follow
from ckpt.scanning.compare import differences
from ckpt.scanning.walk import scan_object
from ckpt.trust import sandbox
from ckpt.trust.keys import TrustedKey
from ckpt.trust.keys import trusted_keys as known_keys
from ckpt.trust.policy import Trust, require_installed
from ckpt.trust.provenance import Provenance, provenance


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    """True passed, False failed, None not applicable (skipped, with why)."""
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    path: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]


def verify(
    path: str | os.PathLike[str] | Archive,
    *,
    trust: Iterable[str] = (),
    trusted_keys: Iterable[TrustedKey] = (),
    against: Any = None,
    strict: bool = False,
    loaded: LoadReport | None = None,
    storage_options: StorageOptions = None,
) -> VerifyReport:
    """Run every check on the checkpoint at `path` (optionally on an
    already-loaded report of it, and against a fresh object). A path or URL
    (downloaded once), or an archive `opened` already; not a stream: the
    checks read the file more than once, and a stream reads once."""
    if not (is_path(path) or isinstance(path, Archive)):
        raise TypeError(f"verify takes the path or URL of a checkpoint, not {type(path).__name__} (it reads the "
                        "file more than once); load_checkpoint and inspect take file objects")
    trust = tuple(trust)
    require_installed(Trust.parse(trust))  # a typo is bad input, not a failed check
    with contextlib.ExitStack() as stack:
        try:
            archive = stack.enter_context(opened(path, storage_options))
        except CkptError as exc:
            return VerifyReport(str(path), (Check("structure", False, str(exc)),))
        name = str(archive.path if isinstance(path, Archive) else path)
        return _verify(archive, name, trust, tuple(trusted_keys), against, strict, loaded)


def _verify(archive: Archive, path: str, trust: Iterable[str], trusted_keys: tuple[TrustedKey, ...], against: Any,
            strict: bool, loaded: LoadReport | None) -> VerifyReport:
    checks: list[Check] = []
    try:
        origin = loaded.provenance if loaded else provenance(archive.manifest, known_keys(trusted_keys))
        checks += _structural_checks(archive, origin, loaded)
    except CkptError as exc:
        return VerifyReport(path, (Check("structure", False, str(exc)),))
    try:
        report = loaded or load_checkpoint(archive, trust=trust, trusted_keys=trusted_keys)
    except CkptError as exc:
        checks.append(Check("load", False, str(exc)))
        return VerifyReport(str(path), tuple(checks))
    how = "whole" if report.provenance.whole else "as data only"
    checks.append(Check("load", True, f"{report.manifest.root_type} loaded {how}"))
    checks += _restored_checks(report)
    warnings = version_warnings(report.manifest)
    checks.append(Check("module versions", not (strict and warnings), "; ".join(warnings) or "as saved"))
    if against is not None:
        stripped = {p for s in report.manifest.substitutions if s.action == Action.STRIP.value
                    for p in (s.path, *s.also_at)}
        stripped |= {s.registry for s in report.manifest.substitutions if s.action == Action.REMOVE.value}
        diffs = differences(report.obj, against, stripped=stripped)
        checks.append(Check("against target", not diffs, "; ".join(diffs) or "structurally equal"))
    return VerifyReport(str(path), tuple(checks))


def _structural_checks(archive: Archive, origin: Provenance, loaded: LoadReport | None) -> list[Check]:
    """Structure, hashes and signature: everything that needs no object
    built. A load that read (not mapped) every member has already compared
    each hash, so they are not hashed twice."""
    hashed_by_load = loaded is not None and not loaded.mapped
    manifest = archive.manifest
    checks = [Check("structure", True, f"{len(manifest.members)} member(s), format {manifest.format_version}")]
    bad = [] if hashed_by_load else archive.hash_failures()
    detail = "; ".join(bad) or f"{len(manifest.members)} sha256 match" + (" (checked by the load)" if hashed_by_load else "")
    checks.append(Check("hashes", not bad, detail))
    checks.append(Check("signature", origin.whole, origin.describe()))
    return checks


def _restored_checks(report: LoadReport) -> list[Check]:
    """The checks of what a load restored. They run the objects' own code
    (probes call what they hold: an executor's initializer, a condition's
    lock; a scan pickles them), and a file loaded as data only chose all of
    it: then they run in the load's sandbox, the threads the probes start
    watched and jailed in turn."""
    if report.provenance.whole:
        return _checks_of_restored(report)
    try:
        return sandbox.run(lambda: _checks_of_restored(report), b"", threads=True, doing="exercised")
    except CheckpointError as exc:
        return [Check("primitives work", False, f"exercising them: {exc.message}")]


def _checks_of_restored(report: LoadReport) -> list[Check]:
    """Restored primitives work, strips came back as None, and what came
    back agrees with the manifest's substitutions. Each is found at the path
    the manifest gives, as a user would reach it: no second scan of the
    model. Only a path that cannot be followed without running code (behind
    a custom `__getstate__`) is looked for by a scan, and only if there is one."""
    rewraps = [s for s in report.manifest.substitutions if s.action == Action.REWRAP.value]
    restored, missing, unreachable = [], [], []
    for sub in rewraps:
        kind = catalog.BY_NAME.get(sub.kind)
        try:
            obj = follow(report.obj, sub.path)
        except LookupError:
            unreachable.append(sub.path)
            continue
        if kind is None or kind not in catalog.kinds_of_type(type(obj)):
            missing.append(sub.path)
        else:
            restored.append((sub.path, obj, kind))
    restored += _found_by_scan(report.obj, unreachable)
    broken = _probed(restored)
    checks = [
        Check("primitives work", not broken, "; ".join(broken) or f"{len(restored)} restored object(s) exercised"),
        Check("substitutions", not missing,
              f"not found after load: {', '.join(missing)}" if missing else f"{len(rewraps)} rewrap(s) accounted for"),
    ]
    not_none = []
    for sub in report.manifest.substitutions:
        if sub.action != Action.STRIP.value:
            continue
        try:
            if follow(report.obj, sub.path) is not None:
                not_none.append(sub.path)
        except LookupError:
            continue  # behind a custom state: not reachable by attribute
    checks.append(Check("stripped", not not_none,
                        f"not None after load: {', '.join(not_none)}" if not_none else "stripped objects are None"))
    return checks


def _probed(restored: list[tuple[str, Any, catalog.Kind]]) -> list[str]:
    """Each restored primitive's probe; what failed."""
    broken = []
    for path, obj, kind in restored:
        try:
            if kind.probe is not None:
                kind.probe(obj)
        except ProbeFailed as exc:
            broken.append(f"{path}: {exc}")
        except Exception as exc:  # what the object held misbehaved: a finding, not a crash of verify
            broken.append(f"{path}: {type(exc).__name__}: {exc}")
    return broken


def _found_by_scan(obj: Any, paths: list[str]) -> list[tuple[str, Any, catalog.Kind]]:
    """The restored objects at `paths` that `follow` cannot reach, found by a
    scan of the loaded model (which names them as save did), where it finds
    them: a primitive plain pickle handles once restored is not a finding,
    and goes unprobed."""
    if not paths:
        return []
    wanted = set(paths)
    return [(f.path, f.obj, catalog.BY_NAME[f.kind]) for f in scan_object(obj).findings if f.path in wanted]
