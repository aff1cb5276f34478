"""Real models from real libraries: scan names the right paths, save + load
--verify --against round-trips through the installed CLI, and the loaded
model predicts exactly what the original does: loaded whole by its own
signer with no flags, and as data by someone else who trusts what a user of
those libraries trusts."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCkpt

import ckpt

pytestmark = pytest.mark.slow  # started early, so the two workers finish together (conftest.py)

CASES = {
    "sklearn_pipeline": (["sklearn"], {"model.steps[0][1].lock_": "rlock", "model.steps[0][1].handler_": "log-handler"}),
    "torch_service": (["torch"], {"model.lock": "lock", "model.pool": "thread-pool", "model.pending": "queue"}),
    "logging_model": ([], {"model.handlers[0]": "log-handler", "model.handlers[1]": "log-handler"}),
    "numpy_model": (["numpy"], {"model.lock": "lock"}),
}


def sample(name: str) -> Any:
    for library in CASES[name][0]:
        pytest.importorskip(library)
    return importlib.import_module(f"sample_models.{name}")


def trust(name: str) -> list[str]:
    """What someone else loading a sample as data trusts: its package, the
    libraries, and the file handlers it holds."""
    extra = {"sklearn_pipeline": ["sklearn", "logging:FileHandler"], "logging_model": ["logging:FileHandler"]}
    return ["sample_models", *extra.get(name, [])]


def predictions(name: str, model: Any) -> Any:
    module = sample(name)
    if name == "sklearn_pipeline":
        X, _ = module.data()
        return model.predict_proba(X).tolist()
    if name == "torch_service":
        import torch

        torch.manual_seed(1)
        return model.predict(torch.randn(5, 16)).tolist()
    if name == "numpy_model":
        import numpy as np

        return model.predict(np.ones((3, 256), dtype=np.float32)).tolist()
    return [model.predict(x) for x in (0.0, 1.5, -2.0)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_scan_save_and_verify_against(run_ckpt: RunCkpt, tmp_path: Path, name: str) -> None:
    sample(name)
    target = f"sample_models.{name}:build"
    scanned = run_ckpt("scan", target, "--format", "json")
    assert scanned.code == 1, scanned
    assert {f["path"]: f["kind"] for f in scanned.json()["findings"]} == CASES[name][1]
    path = tmp_path / f"{name}.ckpt"
    assert run_ckpt("save", target, "-o", str(path)).code == 0
    loaded = run_ckpt("load", str(path), "--verify", "--against", target, "--format", "json")
    assert loaded.code == 0, loaded
    checks = {c["name"]: c["ok"] for c in loaded.json()["verify"]["checks"]}
    assert checks["against target"] is True and checks["primitives work"] is True
    flags = [arg for t in trust(name) for arg in ("--trust", t)]
    as_data = run_ckpt("load", str(path), *flags, "--against", target, "--format", "json",
                       env={"CKPT_HOME": str(tmp_path / "another-user")})
    checks = {c["name"]: c["ok"] for c in as_data.json()["verify"]["checks"]}
    failed = [name for name, ok in checks.items() if ok is False]
    assert as_data.code == 1 and failed == ["signature"], as_data  # loaded and working as data; the signer is not trusted
    assert as_data.json()["provenance"]["loads"] == "data only" and checks["against target"] is True


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_model_predicts_the_same(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"{name}.ckpt"
    with capsys.disabled():  # log handlers on the process's own stderr, not pytest's capturing stand-in
        original = sample(name).build()
        ckpt.save(original, path)
    assert predictions(name, ckpt.load(path)) == predictions(name, original)
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    assert predictions(name, ckpt.load(path, trust=trust(name))) == predictions(name, original)


def test_torch_layers_from_someone_else_need_no_trust_but_the_users_class_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample("torch_service")
    import torch

    layers = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
    ckpt.save({"layers": layers}, tmp_path / "layers.ckpt")
    ckpt.save(sample("torch_service").build(), tmp_path / "service.ckpt")
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    assert isinstance(ckpt.load(tmp_path / "layers.ckpt")["layers"], torch.nn.Sequential)
    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"trust=\['sample_models'\]"):  # two classes of one package
        ckpt.load(tmp_path / "service.ckpt")


def test_logger_is_the_loading_process_logger(tmp_path: Path) -> None:
    original = sample("logging_model").build()
    ckpt.save(original, tmp_path / "m.ckpt")
    loaded = ckpt.load(tmp_path / "m.ckpt")
    assert loaded.log is logging.getLogger("sample_models.logged")
    file_handler, stream_handler = loaded.handlers
    assert file_handler.stream is None and file_handler.mode == "a"
    assert stream_handler.stream is not None
