"""The model hubs' pickle scanners pass ckpt's own checkpoints.

Hugging Face runs picklescan on every upload, and Protect AI's modelscan
rates what it finds; a checkpoint they flag cannot be published. So
checkpoints of plain data, numpy arrays, torch tensors and modules, and each
of the catalog's thread kinds are scanned by both tools, for real, and must
show nothing dangerous. A hostile pickle planted beside them shows the
scanners are looking.
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pickle
import shutil
import subprocess
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

import pytest
from conftest import sample

import ckpt

pytestmark = pytest.mark.xdist_group("model-hub")  # one worker builds the module's shared runs once

THREAD_KINDS = ("lock", "rlock", "condition", "semaphore", "event", "barrier", "queue", "simple-queue",
                "thread-pool", "future", "thread-local", "log-handler-stderr")


class Hostile:
    def __reduce__(self) -> Any:
        return os.system, ("true",)


def data_model() -> Any:
    return {"name": "m", "sizes": [1, 2, 3], "shape": (4, 5), "bits": {1, 2}, "raw": b"\x00\x01",
            "when": datetime.datetime(2026, 1, 2), "price": decimal.Decimal("1.5"), "order": OrderedDict(a=1),
            "recent": deque([1, 2], 4)}


def numpy_model() -> Any:
    np = pytest.importorskip("numpy")
    return {"weights": np.ones((300, 300)), "bias": np.zeros(3, dtype=np.float32), "ints": np.arange(5),
            "scalar": np.float64(2.5), "dtype": np.dtype("f4")}


def torch_model() -> Any:
    torch = pytest.importorskip("torch")
    layers = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    big = torch.zeros(100_000)
    optimizer = torch.optim.SGD(layers.parameters(), lr=0.1)
    return {"layers": layers, "big": big, "view": big[10:20], "half": torch.ones(8, dtype=torch.bfloat16),
            "empty": torch.empty(0), "parameter": torch.nn.Parameter(torch.ones(3)),
            "optimizer": optimizer.state_dict()}


def kind_model(kind: str) -> Any:
    if kind == "log-handler-stderr":
        import logging

        return {"handler": logging.StreamHandler()}  # logging's default stream
    return sample(kind)


def scanner(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (a test extra)")
    return exe


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """Every case saved into one directory, then each scanner run once over it."""
    picklescan, modelscan = scanner("picklescan"), scanner("modelscan")
    folder = tmp_path_factory.mktemp("hub")
    models = {"data": data_model, "numpy": numpy_model, "torch": torch_model,
              **{kind: (lambda kind=kind: kind_model(kind)) for kind in THREAD_KINDS}}
    for name, build in models.items():
        ckpt.save(build(), folder / f"{name}.ckpt")
    (folder / "hostile.pkl").write_bytes(pickle.dumps(Hostile()))
    found = subprocess.run([picklescan, "-p", str(folder)], capture_output=True, text=True, timeout=300)
    report = folder / "modelscan.json"
    subprocess.run([modelscan, "-p", str(folder), "-r", "json", "-o", str(report)], capture_output=True, text=True,
                   timeout=300)
    return folder, found.stdout + found.stderr, json.loads(report.read_text())


@pytest.mark.parametrize("name", ["data", "numpy", "torch", *THREAD_KINDS])
def test_picklescan_finds_nothing_dangerous(scanned: tuple[Path, str, dict[str, Any]], name: str) -> None:
    _, output, _ = scanned
    flagged = [line for line in output.splitlines() if f"/{name}.ckpt:" in line and "dangerous" in line.lower()]
    assert not flagged, flagged


@pytest.mark.parametrize("name", ["data", "numpy", "torch", *THREAD_KINDS])
def test_modelscan_finds_no_issue(scanned: tuple[Path, str, dict[str, Any]], name: str) -> None:
    _, _, report = scanned
    assert f"{name}.ckpt:data.pkl" in report["summary"]["scanned"]["scanned_files"], report["summary"]
    issues = [issue for issue in report["issues"] if issue["source"].startswith(f"{name}.ckpt")]
    assert not issues, issues


def test_both_scanners_flag_a_hostile_pickle(scanned: tuple[Path, str, dict[str, Any]]) -> None:
    _, output, report = scanned
    assert "hostile.pkl: dangerous import 'posix system' FOUND" in output
    assert [issue["operator"] for issue in report["issues"] if issue["source"] == "hostile.pkl"] == ["system"]
