"""The kinds real services hold: each round-trips through the
installed `ckpt save` and `ckpt load --verify`, and the restored object is
exercised in a fresh interpreter."""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, RunCkpt, assert_one_line_error, rewrite_member

from ckpt.kinds.rewrap import Call

SERVICE = "sample_models.http_service:build"
TRUST = ("sample_models", "ckpt.kinds.lazy:LazyConnection")
SERVICE_TRUST = tuple(arg for entry in TRUST for arg in ("--trust", entry))


def in_fresh_process(path: Path, trust: tuple[str, ...], check: str) -> subprocess.CompletedProcess[str]:
    """Load `path` with ckpt in a new interpreter as `model` and run `check` (asserts) on it."""
    code = f"import ckpt, sqlite3, ssl, sys, weakref\nmodel = ckpt.load({str(path)!r}, trust={trust!r})\n"
    proc = subprocess.run([sys.executable, "-c", code + textwrap.dedent(check)], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def save_and_verify(run_ckpt: RunCkpt, target: str, path: Path, *trust: str) -> dict[str, str]:
    """`ckpt save` then `ckpt load --verify`; the substitution notes by path."""
    saved = run_ckpt("save", target, "-o", str(path), "--format", "json", cwd=path.parent,
                     env={"PYTHONPATH": str(REPO)})
    assert saved.code == 0, saved
    verified = run_ckpt("load", str(path), *trust, "--verify", "--format", "json")
    assert verified.code == 0 and verified.json()["verify"]["ok"], verified
    return {s["path"]: s["note"] for s in saved.json()["manifest"]["substitutions"]}


@pytest.fixture
def service(run_ckpt: RunCkpt, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The HTTP-client sample saved and verified: its file and its substitution notes."""
    path = tmp_path / "service.ckpt"
    return path, save_and_verify(run_ckpt, SERVICE, path, *SERVICE_TRUST)


def test_std_stream_is_rebound_to_the_loading_process(service: tuple[Path, dict[str, str]]) -> None:
    path, notes = service
    assert notes["model.client.progress.out"] == "rebound to the loading process's sys.stdout"
    in_fresh_process(path, TRUST, """
        assert model.client.progress.out is sys.stdout
        model.client.progress.line("restored")
    """)


def test_weak_containers_keep_the_entries_saved_anyway(service: tuple[Path, dict[str, str]]) -> None:
    path, notes = service
    assert notes["model.client.live"] == "2 of 3 entries kept, 1 dropped (not saved elsewhere)"
    assert notes["model.client.owner"] == "live: its referent is saved"
    assert notes["model.client.last_peer"] == "restored dead: its referent is not saved"
    in_fresh_process(path, TRUST, """
        client = model.client
        assert isinstance(client.live, weakref.WeakValueDictionary)
        assert sorted(client.live) == ["example.com", "example.org"]
        assert [client.live[s.host] for s in client.sessions] == client.sessions  # the very objects
        assert client.owner() is model and client.last_peer() is None
        del client.sessions[:]
        assert len(client.live) == 0  # still weak
    """)


def test_ssl_context_keeps_its_verification(service: tuple[Path, dict[str, str]]) -> None:
    path, _ = service
    in_fresh_process(path, TRUST, """
        ctx = model.client.ssl_context
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.protocol == ssl.PROTOCOL_TLS_CLIENT and ctx.cert_store_stats()["x509_ca"] > 0
    """)


def test_unverified_ssl_context_stays_unverified(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import ssl, types\n\ndef build():\n"
                                       "    return types.SimpleNamespace(ctx=ssl._create_unverified_context())\n")
    path = tmp_path / "m.ckpt"
    save_and_verify(run_ckpt, "model.py:build", path)
    in_fresh_process(path, (), """
        assert model.ctx.verify_mode == ssl.CERT_NONE and not model.ctx.check_hostname
    """)


def test_sqlite_file_reopens_lazily_and_reads_its_rows(service: tuple[Path, dict[str, str]]) -> None:
    path, notes = service
    assert notes["model.client.cache"].endswith("ckpt-sample-http-cache.db reopened lazily, on first use")
    in_fresh_process(path, TRUST, """
        cache = model.client.cache
        assert not cache.opened  # nothing opened at load
        assert model.client.cached("https://example.com/") == "hello"
        with cache:
            cache.execute("insert or replace into responses values ('u', 'v')")
        assert sqlite3.connect(cache.database).execute("select body from responses where url = 'u'").fetchone() == ("v",)
    """)


def test_sqlite_connection_from_someone_else_needs_trust_to_load(run_ckpt: RunCkpt, service: tuple[Path, dict[str, str]],
                                                                 tmp_path: Path) -> None:
    """A restored connection writes where the file says as soon as the model
    uses it: from someone else, only with that exact name trusted."""
    path, _ = service
    refused = run_ckpt("load", str(path), "--trust", "sample_models", env={"CKPT_HOME": str(tmp_path / "another")})
    assert refused.code == 1 and "--trust ckpt.kinds.lazy:LazyConnection" in refused.err, refused


def test_in_memory_database_is_stripped_with_advice(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import sqlite3, types\n\ndef build():\n"
                                       "    return types.SimpleNamespace(db=sqlite3.connect(':memory:'))\n")
    path = tmp_path / "m.ckpt"
    scanned = run_ckpt("scan", "model.py:build", "--format", "json", cwd=tmp_path)
    [finding] = scanned.json()["findings"]
    assert (finding["kind"], finding["action"]) == ("memory-db", "strip") and "serialize()" in finding["advice"]
    save_and_verify(run_ckpt, "model.py:build", path)
    in_fresh_process(path, (), "assert model.db is None")


def test_suggest_writes_the_fix_for_each_new_kind(run_ckpt: RunCkpt) -> None:
    result = run_ckpt("scan", SERVICE, "--suggest")
    assert result.code == 1, result
    for line in ("self.ssl_context = ssl.create_default_context()", "self.cache = sqlite3.connect(state[\"cache\"])",
                 "self.live = weakref.WeakValueDictionary(state[\"live\"])",
                 "self.out = {\"stdin\": sys.stdin, \"stdout\": sys.stdout, \"stderr\": sys.stderr}[state[\"out\"]]"):
        assert line in result.out, result.out


CACHED = """\
import functools, weakref


class Service:
    def __init__(self):
        self.find = functools.lru_cache(maxsize=3)(self._find)
        self.me = weakref.proxy(self)

    def _find(self, key):
        return key.upper()


def build():
    return Service()
"""


def test_suggested_code_rebuilds_a_run_time_cache_with_its_size(run_ckpt: RunCkpt, tmp_path: Path) -> None:
    """Pasted into the class, the suggestion makes plain pickle work: the
    cache comes back around the restored method with its maxsize, the proxy
    as the comment says."""
    (tmp_path / "cached.py").write_text(CACHED)
    [suggestion] = run_ckpt("scan", "cached:build", "--suggest", "--format", "json", cwd=tmp_path).json()["suggestions"]
    namespace: dict[str, Any] = {}
    exec(CACHED + suggestion["code"], namespace)
    fixed = type("Fixed", (namespace["Service"],), {"__getstate__": namespace["__getstate__"],
                                                    "__setstate__": namespace["__setstate__"], "__module__": __name__})
    globals()["Fixed"] = fixed  # where pickle finds it by name
    restored = pickle.loads(pickle.dumps(fixed()))
    assert restored.find.cache_parameters() == {"maxsize": 3, "typed": False}
    assert restored.find("a") == "A" and restored.find.__wrapped__.__self__ is restored and restored.me is None


BARS = """\
import sys, tqdm, tqdm.auto


def build():
    train = tqdm.tqdm(total=10, desc="train", unit="step", file=sys.stdout, delay=60)  # not into save's JSON
    train.update(4)
    return {"train": train, "eval": tqdm.auto.tqdm(total=5, desc="eval", ncols=60, ascii=True, leave=False)}
"""


@pytest.fixture
def bars(run_ckpt: RunCkpt, tmp_path: Path) -> Path:
    """A model holding two tqdm bars (stdout, and stderr through tqdm.auto), saved and verified."""
    pytest.importorskip("tqdm")
    (tmp_path / "bars.py").write_text(BARS)
    path = tmp_path / "bars.ckpt"
    notes = save_and_verify(run_ckpt, "bars.py:build", path)
    assert notes == {"model['train']": "at 4/10, on the loading process's stdout",
                     "model['eval']": "at 0/5, on the loading process's stderr"}
    return path


def test_progress_bar_is_found_and_suggested(run_ckpt: RunCkpt, bars: Path) -> None:
    scanned = run_ckpt("scan", "bars.py:build", "--format", "json", cwd=bars.parent)
    assert [(f["path"], f["kind"]) for f in scanned.json()["findings"]] == [
        ("model['train']", "progress-bar"), ("model['eval']", "progress-bar")]
    (bars.parent / "trainer.py").write_text("import sys, tqdm\n\nclass Trainer:\n    def __init__(self):\n"
                                            "        self.bar = tqdm.tqdm(total=3, file=sys.stdout, delay=60)\n")
    suggested = run_ckpt("scan", "trainer.py:Trainer", "--suggest", cwd=bars.parent)
    assert 'self.bar = tqdm.std.tqdm(**state["bar"])' in suggested.out, suggested


def test_progress_bar_verifies_quietly(run_ckpt: RunCkpt, bars: Path) -> None:
    verified = run_ckpt("load", str(bars), "--verify")
    assert verified.code == 0 and "%|" not in verified.out + verified.err, verified


def test_progress_bar_works_in_a_fresh_process_and_prints_nothing_at_load(bars: Path) -> None:
    proc = in_fresh_process(bars, (), """
        print("loaded", flush=True)
        import tqdm.asyncio
        train, eval_ = model["train"], model["eval"]
        assert (train.n, train.total, train.desc, train.unit, train.fp._wrapped) == (4, 10, "train", "step", sys.stdout)
        assert type(eval_) is tqdm.asyncio.tqdm_asyncio and eval_.fp._wrapped is sys.stderr
        assert (eval_.ncols, eval_.ascii, eval_.leave, eval_.delay, train.delay) == (60, True, False, 0.001, 60)
        train.update(3)
        assert train.n == 7
        train.close()
        assert train.disable
    """)
    assert proc.stdout.startswith("loaded") and "%|" not in proc.stderr, proc


@pytest.mark.parametrize("keywords", [{}, {"lock_args": (False,)}, {"delay": 0}])
def test_a_progress_bar_from_someone_else_is_refused(run_ckpt: RunCkpt, bars: Path, keywords: dict[str, object]) -> None:
    """Making a tqdm bar starts tqdm's monitor thread: none loads as data,
    however plain its arguments (a file the user signed loads whole)."""
    import tqdm

    hostile = Call(functools.partial(tqdm.tqdm, **{"total": 3, "delay": 1.0, **keywords}))
    rewrite_member(bars, "data.pkl", pickle.dumps(hostile, protocol=5))
    assert_one_line_error(run_ckpt("load", str(bars)), 1, "altered after it was signed", "tqdm.std:tqdm")


