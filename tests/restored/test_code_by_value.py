"""Code by value comes back working: each case saved by a script (its
functions are `__main__`'s), loaded in a fresh process with no flags, and
exercised; refused in one line as another user. The cases and the two
processes are bench/carried.py's, which also puts dill and cloudpickle
through the same cases (the comparison table, bench/CARRIED.md)."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

import ckpt
from bench import carried
from ckpt.kinds.catalog import Action

pytestmark = pytest.mark.xdist_group("carried")  # one worker builds the saved cases once, for every test here

REFUSED = "refused: data.pkl holds code saved by value (a lambda or local function), which loads only from a signer you trust"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    return carried.run(tmp_path_factory.mktemp("carried"))


def test_every_case_comes_back_working_in_a_fresh_process(results: dict[str, dict[str, str]]) -> None:
    assert results, "no case ran"
    assert {name: r["ckpt"] for name, r in results.items()} == dict.fromkeys(results, "works")


def test_as_another_user_each_is_refused_in_one_line_saying_why(results: dict[str, dict[str, str]]) -> None:
    assert {name: r["as another user"] for name, r in results.items()} == dict.fromkeys(results, REFUSED)


def test_ckpt_carries_whatever_dill_or_cloudpickle_carries(results: dict[str, dict[str, str]]) -> None:
    for name, r in results.items():
        assert set(r) == {*carried.TOOLS, "as another user"}, name
    assert any(r["cloudpickle"] != "works" for r in results.values())  # a lock in a closure, for one


def test_scan_reports_a_lambda_as_saved_by_value_saying_what_is_kept() -> None:
    model = {"factory": collections.defaultdict(lambda: 0)}
    [finding] = ckpt.scan(model).findings
    assert (finding.path, finding.kind, finding.action) == ("model['factory'].default_factory", "local-function",
                                                            Action.BY_VALUE)
    assert finding.note.startswith("a lambda defined inside test_scan_reports")
    assert "code, defaults, closure and the globals it reads are saved by value" in finding.lost
    assert "a signer you trust" in finding.lost
    assert finding.strip_effect.startswith("--strip leaves None where a callable was")


def test_functions_importable_by_name_stay_by_reference(tmp_path: Path) -> None:
    model = {"key": len, "module_level": carried.by_length, "partial": carried.record}
    assert ckpt.scan(model).findings == ()
    report = ckpt.save(model, tmp_path / "named.ckpt")
    assert report.manifest.substitutions == ()
    assert ckpt.load(tmp_path / "named.ckpt") == model


def test_a_save_with_code_by_value_lists_it_and_loads_in_a_script_that_never_defined_it(tmp_path: Path) -> None:
    """The save report and the manifest say what went by value; the script's
    own class loads where the script is not, with the state it had."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(
        f"""
        import threading
        import ckpt

        def scale(x):
            return 2 * x

        class Model:
            def __init__(self):
                self.lock = threading.Lock()
                self.head = lambda x: scale(x) + 1

        report = ckpt.save(Model(), {str(tmp_path / 'm.ckpt')!r})
        for s in report.manifest.substitutions:
            print(s.path, s.action)
        """
    ))
    saved = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, check=True)
    substitutions = dict(line.rsplit(" ", 1) for line in saved.stdout.splitlines())
    [scale] = [path for path in substitutions if path.endswith(".__globals__['scale']")]  # read by the lambda
    assert substitutions == {"model.lock": "rewrap", "model.head": "by-value", "type(model)": "by-value",
                             scale: "by-value"}
    load = f"import ckpt; m = ckpt.load({str(tmp_path / 'm.ckpt')!r}); print(m.head(3), m.lock.locked())"
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, cwd=REPO)
    assert loaded.returncode == 0 and loaded.stdout == "7 False\n", loaded.stderr
