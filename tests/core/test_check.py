"""`check()`: configured targets must stay checkpointable and configured
checkpoints must keep verifying; anything misconfigured is a ConfigError.

Each test writes a uniquely named package (modules stay imported for the
whole session) and its pyproject.toml, and runs from a different directory,
so targets must resolve from the configuration's directory."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import flip_byte

from ckpt import config as config_module
from ckpt import save
from ckpt.checking import check
from ckpt.config import Config
from ckpt.errors import ConfigError
from ckpt.target import resolve

MODEL = """
import threading


class Model:
    def __init__(self):
        self.weights = [1.0, 2.0]
        self.lock = threading.Lock()


class WithGenerator(Model):
    def __init__(self):
        super().__init__()
        self.scorer = (x * 2 for x in self.weights)


def clean():
    return {"weights": [1.0, 2.0]}


def locked():
    return Model()


def broken():
    return WithGenerator()


def raises():
    raise RuntimeError("weights.bin is missing")
"""

_counter = itertools.count()


class Project:
    """A package `pkg` with `pkg/model.py` and a pyproject.toml beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pkg = f"checkpkg{next(_counter)}"
        (root / self.pkg).mkdir()
        (root / self.pkg / "__init__.py").touch()
        self.model_file = root / self.pkg / "model.py"
        self.model_file.write_text(textwrap.dedent(MODEL))

    def target(self, factory: str) -> str:
        return f"{self.pkg}.model:{factory}"

    def config(self, table: str) -> Config:
        path = self.root / "pyproject.toml"
        path.write_text(f"[tool.ckpt]\n{table.format(pkg=self.pkg)}\n")
        return config_module.load(path)

    def checkpoint(self, name: str = "model.ckpt") -> Path:
        """Save `locked()` as models/NAME (the project becomes importable:
        the fixture restores sys.path afterwards)."""
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        (self.root / "models").mkdir(exist_ok=True)
        path = self.root / "models" / name
        save(resolve(self.target("locked")), path, target=self.target("locked"))
        return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setattr(sys, "path", list(sys.path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


def by_name(report) -> dict:
    return {item.name: item for item in report.items}


def test_clean_and_rewrapped_targets_pass(project: Project) -> None:
    cfg = project.config('targets = ["{pkg}.model:clean", "{pkg}.model:locked"]')
    report = check(cfg)
    assert report.exit_code == 0 and report.ok
    items = by_name(report)
    assert items[project.target("clean")].why == "clean: plain pickle handles it"
    assert items[project.target("locked")].why == "save handles every finding (1 rewrap)"


def test_fail_on_any_fails_every_finding(project: Project) -> None:
    cfg = project.config('targets = ["{pkg}.model:clean", "{pkg}.model:locked"]\nfail-on = "any"')
    report = check(cfg)
    assert report.exit_code == 1
    items = by_name(report)
    assert items[project.target("clean")].ok
    locked = items[project.target("locked")]
    assert not locked.ok and [f.path for f in locked.failing] == ["model.lock"]


def test_unrewrappable_attribute_fails_naming_its_path(project: Project) -> None:
    report = check(project.config('targets = ["{pkg}.model:broken"]'))
    [item] = report.items
    assert report.exit_code == 1 and not item.ok
    assert [(f.path, f.kind) for f in item.failing] == [("model.scorer", "generator")]
    assert "model.scorer" in item.why
    assert {f.path for f in item.scan.findings} == {"model.scorer", "model.lock"}


def test_configured_strip_lets_the_finding_pass(project: Project) -> None:
    cfg = project.config('targets = ["{pkg}.model:broken"]\nstrip = ["{pkg}.model:broken=model.scorer"]')
    [item] = check(cfg).items
    assert item.ok and item.failing == ()


def test_strip_that_matches_no_finding_fails(project: Project) -> None:
    """`ckpt save` refuses a strip path with no finding, so check must too."""
    cfg = project.config('targets = ["{pkg}.model:locked"]\nstrip = ["{pkg}.model:locked=model.gone"]')
    [item] = check(cfg).items
    assert not item.ok and item.stale == ("model.gone",)
    assert "strip model.gone" in item.why


def test_file_target_resolves_relative_to_the_config(project: Project) -> None:
    cfg = project.config('targets = ["{pkg}/model.py:broken"]')
    [item] = check(cfg).items
    assert [f.path for f in item.failing] == ["model.scorer"]


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("{pkg}.model:nope", "has no attribute 'nope'"),
        ("{pkg}.absent:build", "no module named"),
        ("{pkg}.model:raises", "raised RuntimeError: weights.bin is missing"),
        ("{pkg}/absent.py:build", "no such file"),
        ("not a target", "malformed target"),
    ],
)
def test_target_that_does_not_resolve_is_a_config_error(project: Project, target: str, fragment: str) -> None:
    cfg = project.config(f'targets = ["{target}"]')
    with pytest.raises(ConfigError) as caught:
        check(cfg)
    message = str(caught.value)
    assert message.startswith(f"{cfg.path}: [tool.ckpt] targets: {target.format(pkg=project.pkg)!r}")
    assert fragment in message


def test_configured_checkpoints_verify(project: Project) -> None:
    project.checkpoint("a.ckpt")
    project.checkpoint("b.ckpt")
    report = check(project.config('checkpoints = ["models/*.ckpt"]'))
    assert report.exit_code == 0
    assert [item.file.name for item in report.items] == ["a.ckpt", "b.ckpt"]
    assert all(item.verify is not None and item.verify.ok for item in report.items)


def test_a_checkpoint_signed_by_an_untrusted_key_fails_until_the_configuration_trusts_it(
        project: Project, ckpt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI holds no private key: the team's public key in [tool.ckpt] is what makes a checkpoint pass."""
    project.checkpoint()
    public = project.root / "team.pub"
    public.write_text((ckpt_home / "signing-key.pub").read_text())
    monkeypatch.setenv("CKPT_HOME", str(project.root / "ci-home"))
    [item] = check(project.config('checkpoints = ["models/*.ckpt"]')).items
    assert not item.ok and "signature: signed by SHA256:" in item.why and "a key you do not trust" in item.why
    [item] = check(project.config('checkpoints = ["models/*.ckpt"]\ntrusted-keys = ["team.pub"]')).items
    assert item.ok, item.why


def test_tampered_checkpoint_fails(project: Project) -> None:
    path = project.checkpoint()
    flip_byte(path)
    [item] = check(project.config('checkpoints = ["models/*.ckpt"]')).items
    assert not item.ok and "hashes" in item.why


def test_checkpoint_pattern_matching_nothing_fails(project: Project) -> None:
    [item] = check(project.config('checkpoints = ["models/*.ckpt"]')).items
    assert not item.ok and item.name == "models/*.ckpt" and "no file matches" in item.why


def test_given_files_select_what_is_checked(project: Project) -> None:
    """As pre-commit passes them: a target is scanned only if its module
    file is given, and only the given checkpoints are verified."""
    checkpoint = project.checkpoint()
    (project.root / "other.py").write_text("x = 1\n")
    cfg = project.config('targets = ["{pkg}.model:broken"]\ncheckpoints = ["nothing/*.ckpt"]\ntrust = ["{pkg}"]')
    assert check(cfg, [project.root / "other.py"]).items == ()
    [item] = check(cfg, [project.model_file]).items
    assert item.what == "target" and not item.ok
    [item] = check(cfg, [checkpoint]).items
    assert item.what == "checkpoint" and item.ok


def test_given_file_that_does_not_exist_is_an_error(project: Project) -> None:
    cfg = project.config('targets = ["{pkg}.model:clean"]')
    with pytest.raises(ConfigError, match="no such file: 'gone.ckpt'"):
        check(cfg, ["gone.ckpt"])


def test_nothing_configured_is_an_error(project: Project) -> None:
    with pytest.raises(ConfigError, match="nothing to check") as caught:
        check(project.config(""))
    assert str(project.root / "pyproject.toml") in str(caught.value)
