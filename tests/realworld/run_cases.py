"""The corpus' child process: runs one step for a batch of cases and prints
one result line per case (`MARK` + JSON), so the test process never imports
the libraries and a crash costs only the cases not yet reported.

    python run_cases.py save FOLDER NAME...       build, save to FOLDER/NAME.ckpt; build again and exercise that
    python run_cases.py load FOLDER NAME...       load with no flags, check it loaded whole, verify, exercise
    python run_cases.py refused FOLDER NAME...    load, expecting the data-only tier to refuse it

`load` takes `--trusted-key FILE` before FOLDER (the API's `trusted_keys`).
Run with `tests/realworld` on PYTHONPATH. Exits 0 once every case is
reported, however it went: any other exit is the child's own failure.
"""

from __future__ import annotations

import json
import pickle
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARK = "@@ckpt-realworld "


def report(name: str, **result: Any) -> None:
    print(MARK + json.dumps({"case": name, **result}), flush=True)


def failure(step: str, exc: BaseException) -> dict[str, str]:
    return {"failed": step, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def save(folder: Path, name: str) -> None:
    """Build and save, then build another and exercise it (the saved one's
    files, a database or a log, stay as saved for the load to find).
    Reports which step failed, and what save did."""
    import corpus

    import ckpt

    case = corpus.CASES[name]
    reason = case.unsupported() if case.unsupported else ""
    if reason:
        report(name, skip=reason)
        return
    try:
        obj = case.build()
    except Exception as exc:
        report(name, **failure("build", exc))
        return
    facts: dict[str, Any] = {"plain_pickle_error": plain_pickle_error(obj)}
    try:
        saved = ckpt.save(obj, folder / f"{name}.ckpt")
        facts["lock_rewrapped"] = any(s.kind == "lock" and s.action == "rewrap" for s in saved.manifest.substitutions)
    except Exception as exc:
        facts |= failure("save", exc)
    if case.dispose:
        case.dispose(obj)
    del obj
    try:
        case.exercise(case.build())
    except Exception as exc:
        facts |= {"original": f"{type(exc).__name__}: {exc}", "original_traceback": traceback.format_exc()}
    report(name, **facts)


def plain_pickle_error(obj: Any) -> str:
    try:
        pickle.dumps(obj, protocol=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def load(folder: Path, name: str, trusted_keys: list[str]) -> None:
    """Load as the user would (no trust flags), check that it loaded whole
    and verifies, then exercise the loaded object."""
    import corpus

    import ckpt

    path = folder / f"{name}.ckpt"
    try:
        loaded = ckpt.load_checkpoint(path, trusted_keys=trusted_keys)
        if not loaded.provenance.whole:
            raise AssertionError(f"loaded as data only: {loaded.provenance.describe()}")
        checks = ckpt.verify(path, trusted_keys=trusted_keys, loaded=loaded)
        if not checks.ok:
            raise AssertionError("verify failed: " + "; ".join(f"{c.name}: {c.detail}" for c in checks.failures))
    except Exception as exc:
        report(name, **failure("load", exc))
        return
    try:
        corpus.CASES[name].exercise(loaded.obj)
    except Exception as exc:
        report(name, **failure("exercise", exc))
        return
    report(name, origin=loaded.provenance.origin.value)


def refused(folder: Path, name: str) -> None:
    """Load expecting a refusal: the file is not signed by a key this user trusts."""
    import ckpt

    try:
        ckpt.load(folder / f"{name}.ckpt")
    except ckpt.CkptError as exc:
        report(name, refusal=str(exc))
        return
    report(name, failed="load", error="loaded: nothing was refused", traceback="")


STEPS: dict[str, Callable[..., None]] = {"save": save, "load": load, "refused": refused}


def main(argv: list[str]) -> int:
    step, args = argv[0], argv[1:]
    trusted_keys = []
    while args[0] == "--trusted-key":
        trusted_keys.append(args[1])
        args = args[2:]
    folder, names = Path(args[0]), args[1:]
    extra = (trusted_keys,) if step == "load" else ()
    for name in names:
        STEPS[step](folder, name, *extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
