"""A strip never breaks its owner, and a refusal says everything at once,
with paths that stay the same from run to run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RunCkpt

import ckpt
from ckpt.objects.paths import follow

torch = pytest.importorskip("torch")


def double(module: Any, args: Any, out: Any) -> Any:
    return out * 2


class Trainer:
    """Calls every callback it holds."""

    def __init__(self, callbacks: list[Callable[[int], None]]) -> None:
        self.callbacks = callbacks
        self.steps: list[int] = []

    def step(self, n: int) -> None:
        self.steps.append(n)
        for callback in self.callbacks:
            callback(n)


class Receivers:
    """Django's signal keeps `((receiver id, sender id), receiver)` pairs and calls each receiver."""

    def __init__(self) -> None:
        self.receivers: list[tuple[tuple[int, int], Callable[..., Any]]] = []
        self.heard: list[str] = []

    def connect(self, receiver: Callable[..., Any]) -> None:
        self.receivers.append(((id(receiver), 0), receiver))

    def send(self) -> None:
        for _, receiver in self.receivers:
            receiver(self)


def heard(signal: Receivers) -> None:
    signal.heard.append("named")


def strip_all(model: Any, path: Path, kind: str = "local-function") -> ckpt.SaveReport:
    """Save `model` stripping every finding of `kind` (what a user does for a file others load as data)."""
    return ckpt.save(model, path, strip=[f.path for f in ckpt.scan(model).findings if f.kind == kind])


def test_stripped_hooks_leave_the_hook_dict_and_the_forward_pass_runs(tmp_path: Path) -> None:
    layer = torch.nn.Linear(2, 2)
    layer.register_forward_hook(lambda module, args, out: out * 0)
    layer.register_forward_hook(double)
    layer.register_forward_pre_hook(lambda module, args: None)
    report = strip_all(layer, tmp_path / "hooks.ckpt")
    assert {s.action for s in report.manifest.substitutions} == {"remove"}
    assert {s.registry for s in report.manifest.substitutions} == {"model._forward_hooks", "model._forward_pre_hooks"}
    assert all("whose owner calls every entry" in s.lost for s in report.manifest.substitutions)
    loaded = ckpt.load(tmp_path / "hooks.ckpt")
    assert list(loaded._forward_hooks.values()) == [double] and not loaded._forward_pre_hooks
    x = torch.ones(1, 2)
    assert torch.equal(loaded(x), torch.nn.functional.linear(x, loaded.weight, loaded.bias) * 2)
    assert len(layer._forward_hooks) == 2  # the live model is never changed
    assert ckpt.verify(tmp_path / "hooks.ckpt").ok


def test_stripped_callbacks_leave_the_list_and_a_plain_root_list(tmp_path: Path) -> None:
    calls: list[int] = []
    trainer = Trainer([calls.append, lambda n: calls.append(-n)])
    model = {"trainer": trainer, "hooks": [print, lambda: None]}
    report = strip_all(model, tmp_path / "callbacks.ckpt")
    assert sorted(s.registry for s in report.manifest.substitutions) == ["model['hooks']", "model['trainer'].callbacks"]
    loaded = ckpt.load(tmp_path / "callbacks.ckpt")
    loaded["trainer"].step(3)
    assert loaded["trainer"].steps == [3] and loaded["hooks"] == [print]
    assert len(trainer.callbacks) == 2 and len(model["hooks"]) == 2


def test_django_style_receiver_pairs_and_blinker_receivers_are_left_out(tmp_path: Path) -> None:
    blinker = pytest.importorskip("blinker")
    django_style = Receivers()
    django_style.connect(heard)
    django_style.connect(lambda signal: signal.heard.append("lambda"))
    ready = blinker.Signal("ready")
    ready.connect(lambda sender: None, weak=False)
    ready.connect(heard, weak=False)
    report = strip_all({"django": django_style, "blinker": ready}, tmp_path / "signals.ckpt")
    assert sorted(s.registry for s in report.manifest.substitutions) == ["model['blinker'].receivers",
                                                                         "model['django'].receivers"]
    loaded = ckpt.load(tmp_path / "signals.ckpt")
    loaded["django"].send()
    assert loaded["django"].heard == ["named"]
    assert list(loaded["blinker"].receivers.values()) == [heard]
    loaded["blinker"].send(loaded["django"])
    assert loaded["django"].heard == ["named", "named"]


def test_the_scan_says_what_a_strip_would_do_before_any_save() -> None:
    model = Trainer([print, lambda n: None])
    model.on_error = lambda exc: None  # type: ignore[attr-defined]
    effects = {f.path: f.strip_effect for f in ckpt.scan(model).findings}
    assert effects == {
        "model.callbacks[1]": "--strip removes it from model.callbacks, whose owner calls every entry",
        "model.on_error": "--strip leaves None where a callable was: its owner fails when it calls it",
    }


def test_a_callable_under_a_name_is_saved_as_none_as_the_scan_said(tmp_path: Path) -> None:
    model = {"named": {"on_start": lambda: 1}}
    [finding] = ckpt.scan(model).findings
    assert finding.strip_effect.startswith("--strip leaves None")
    report = ckpt.save(model, tmp_path / "named.ckpt", strip=[finding.path])
    assert [s.action for s in report.manifest.substitutions] == ["strip"]
    assert ckpt.load(tmp_path / "named.ckpt") == {"named": {"on_start": None}}


# --- say it once ----------------------------------------------------------------------


@pytest.fixture
def unsaveable() -> Iterator[dict[str, Any]]:
    socks = [socket.socket() for _ in range(6)]
    with open(os.devnull, "rb") as file:
        yield {"socks": socks, "gen": (n for n in range(3)), "file": file}
    for sock in socks:
        sock.close()


def test_a_refusal_lists_every_blocking_path_grouped_with_one_strip(unsaveable: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    with pytest.raises(ckpt.SaveError) as refused:
        ckpt.save(unsaveable, tmp_path / "m.ckpt")
    message = str(refused.value)
    assert "8 object(s) ckpt cannot rewrap: model['socks'][*] (socket, 6 objects); model['gen'] (generator); " \
           "model['file'] (open-file)" in message
    assert "more" not in message and "\n" not in message
    [strip] = refused.value.arguments
    assert strip.value == ["model['socks'][*]", "model['gen']", "model['file']"]
    report = ckpt.save(unsaveable, tmp_path / "m.ckpt", strip=strip.value)
    assert len(report.manifest.substitutions) == 8
    assert ckpt.load(tmp_path / "m.ckpt") == {"socks": [None] * 6, "gen": None, "file": None}


def test_the_command_line_refusal_pastes_back_as_it_is(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        "import socket\n\ndef build():\n    return {'socks': [socket.socket() for _ in range(5)], "
        "'gen': (n for n in range(3))}\n")
    refused = run_ckpt("save", "svc:build", "-o", str(tmp_path / "m.ckpt"), cwd=tmp_path)
    assert refused.code == 1 and len(refused.err.strip().splitlines()) == 1, refused
    flags = refused.err.split("or pass ", 1)[1].split(" to save each", 1)[0]
    assert flags == "--strip model['socks'][*] --strip model['gen']"
    strips = [part for part in flags.split() if part != "--strip"]
    saved = run_ckpt("save", "svc:build", "-o", str(tmp_path / "m.ckpt"),
                     *[arg for path in strips for arg in ("--strip", path)], cwd=tmp_path)
    assert saved.code == 0, saved


def _by_runtime_keys() -> dict[str, Any]:
    """Dicts keyed by what changes every run: a thread's id, an object's address, text holding one."""
    worker = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    worker.start()
    handler = object()
    return {"threads": {worker.ident: worker}, "by_address": {id(handler): (n for n in range(1))},
            "by_repr": {repr(handler): (n for n in range(1))}}


def test_paths_hold_no_thread_id_or_address_and_still_lead_to_the_object() -> None:
    model = _by_runtime_keys()
    report = ckpt.scan(model)
    assert sorted(f.path for f in report.findings) == [
        "list(model['by_address'].values())[0]", "list(model['by_repr'].values())[0]",
        "list(model['threads'].values())[0]",
    ]
    for finding in report.findings:
        assert follow(model, finding.path) is finding.obj


def test_paths_are_the_same_in_another_run() -> None:
    """A pid-keyed dict as ProcessPoolExecutor keeps its workers, scanned in two processes."""
    code = ("import multiprocessing as mp, ckpt\n"
            "if __name__ == '__main__':\n"
            "    p = mp.get_context('fork').Process(target=print); p.start(); p.join()\n"
            "    print(sorted(f.path for f in ckpt.scan({'processes': {p.pid: p}}).findings))\n")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1 and "list(model['processes'].values())[0]" in runs.pop()


def test_a_strip_pattern_in_tool_ckpt_covers_a_group_by_position(tmp_path: Path) -> None:
    """What a refusal prints goes into [tool.ckpt] as it is: a pattern with
    [*], and a path that names entries by position."""
    from ckpt.checking import check
    from ckpt.config import load

    (tmp_path / "pattern_svc.py").write_text(
        "import socket\n\ndef build():\n    return {'socks': [socket.socket() for _ in range(5)], "
        "'by_id': {id(object()) * 16: socket.socket()}}\n")
    (tmp_path / "pyproject.toml").write_text(
        "[tool.ckpt]\ntargets = [\"pattern_svc:build\"]\n"
        "strip = [\"pattern_svc:build=model['socks'][*]\", \"pattern_svc:build=list(model['by_id'].values())[0]\"]\n")
    [item] = check(load(tmp_path / "pyproject.toml")).items
    assert item.ok and not item.failing and not item.stale, item.why
