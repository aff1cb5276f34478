"""Every path a scan reports is Python: `eval` with `model` bound to the
scanned object gives the very object reported there."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import sample_models
from ckpt.scanning.walk import scan
from sample_models import kinds, nested

_NOT_EXPRESSIONS = "<item "  # a SimpleQueue's items: no expression reaches them without draining it
_THROUGH_A_CALL = "__getstate__()"


def _factories() -> dict[str, Any]:
    """Every factory of the sample models: each module's `build`, nested's and the kinds'."""
    found: dict[str, Any] = {f"kinds:{name}": factory for name, factory in kinds.FACTORIES.items()}
    for name in ("pipeline", "containers", "shared_lock", "cycle", "hidden", "keyed", "store"):
        found[f"nested:{name}"] = getattr(nested, name)
    found["nested:many"] = lambda: nested.many(20)
    for info in pkgutil.iter_modules(sample_models.__path__):
        try:
            module = importlib.import_module(f"sample_models.{info.name}")
        except ImportError:  # an optional dependency (torch) missing
            continue
        if hasattr(module, "build"):
            found[f"{info.name}:build"] = module.build
    return found


@pytest.mark.parametrize("name", sorted(_factories()))
def test_every_reported_path_evaluates_to_the_object(name: str) -> None:
    model = _factories()[name]()
    report = scan(model)
    assert report.findings
    for finding in report.findings:
        for path in finding.paths:
            if _NOT_EXPRESSIONS in path:
                continue
            found = eval(path, {"model": model})  # noqa: S307 - the point of the test
            if _THROUGH_A_CALL in path:  # the call may build its value anew (HiddenState's lock)
                assert type(found) is type(finding.obj), path
            else:
                assert found is finding.obj, path


def test_an_object_key_is_named_by_its_position_the_same_way_every_run() -> None:
    paths = [[f.path for f in scan(nested.keyed()).findings] for _ in range(2)]
    assert paths[0] == paths[1] == [
        "list(model['pools'].values())[1]['lock']",
        "list(model['pools'].values())[2]",
    ]
