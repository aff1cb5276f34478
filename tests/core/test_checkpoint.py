"""Round trips: every rewrapped kind comes back working, under real threads,
and the data comes back equal."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import os
import pickle
import queue
import subprocess
import sys
import textwrap
import threading
import time
import types
import weakref
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, sample

import ckpt
from ckpt.errors import SaveError
from ckpt.kinds import catalog
from ckpt.kinds.catalog import Action
from sample_models import kinds, nested, service

TRUST = ["sample_models", "test_checkpoint"]

SAVEABLE = [k.name for k in catalog.KINDS if k.action is not Action.ERROR]

NOT_AS_DATA = {
    "mp-lock": "multiprocessing", "mp-semaphore": "multiprocessing", "mp-condition": "multiprocessing",
    "mp-event": "multiprocessing", "mp-barrier": "multiprocessing", "mp-queue": "multiprocessing",
    "mp-simple-queue": "multiprocessing", "mp-value": "multiprocessing", "mp-array": "multiprocessing",
    "progress-bar": "tqdm", "db-connection": "ckpt.kinds.lazy:LazyConnection", "log-handler": "logging:FileHandler",
    "duckdb-connection": "ckpt.kinds.lazy:LazyConnection", "read-file": "ckpt.kinds.lazy:LazyFile",
    "connection-pool": "urllib3", "process-pool": "concurrent.futures.process:ProcessPoolExecutor",
    "queued-log-sink": "loguru", "log-file-sink": "loguru", "queue-listener": "logging.handlers:QueueListener.start",
    "local-function": "code saved by value", "local-class": "code saved by value", "code": "code saved by value",
    "module": "importlib:import_module (called) imports a module the file names",
    "lru-cache": "functools:lru_cache (called) is not trusted",
    "torchscript-module": "torch.jit._serialization:load (called) is not trusted",
    "aiohttp-session": "ckpt.kinds.lazy:LazySession",
}
"""Kinds a file from someone else cannot bring back as data, and the name the
refusal gives: making a multiprocessing primitive can start multiprocessing's
resource tracker (a process), a tqdm bar, a queued log sink or a queue
listener starts a thread, a process pool starts processes, an lru_cache
wraps a function and a TorchScript module is code, a restored database
connection or file handler writes where the file says, an aiohttp session
connects where it says and a file read from reads it; a connection pool or
a log file sink is data, once its library is trusted."""

LAZY = {"db-connection", "duckdb-connection", "read-file", "aiohttp-session"}
"""Kinds restored as a ckpt.kinds.lazy stand-in, which opens on first use."""


def round_trip(obj: Any, tmp_path: Path, **save_options: Any) -> Any:
    path = tmp_path / "model.ckpt"
    ckpt.save(obj, path, **save_options)
    return ckpt.load(path)


@pytest.mark.parametrize("kind", SAVEABLE)
def test_every_saveable_kind_round_trips_and_passes_verify(kind: str, tmp_path: Path) -> None:
    model = sample(kind)
    path = tmp_path / f"{kind}.ckpt"
    report = ckpt.save(model, path)
    assert [(s.path, s.kind) for s in report.manifest.substitutions] == [("model.value", kind),
                                                                         *kinds.CARRIED.get(kind, [])]
    result = ckpt.verify(path)  # your own file: no trust to give
    assert result.ok, result.failures
    loaded = ckpt.load(path)
    if catalog.BY_NAME[kind].action is Action.STRIP:
        assert loaded.value is None
    else:  # a type of the same kind again: a database connection or a file read from comes back as the lazy
        # one it is rewrapped as, and an asyncio primitive as one plain pickle handles
        assert catalog.BY_NAME[kind] in catalog.kinds_of_type(type(loaded.value))
        assert type(loaded.value) is type(model.value) or kind in LAZY


@pytest.mark.parametrize("kind", SAVEABLE)
def test_every_kind_from_someone_else_loads_as_working_data_or_is_refused_by_name(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Someone else's file, with the model's own package trusted: the kind
    comes back working, as data, or the refusal names what it would need.
    (Built with pytest's capture off: a standard stream is then the
    process's own, as in any program, not a capturing stand-in.)"""
    path = tmp_path / f"{kind}.ckpt"
    with capsys.disabled():
        ckpt.save(sample(kind), path)
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    if kind in NOT_AS_DATA:
        with pytest.raises(ckpt.UnsafeCheckpointError, match="a key you do not trust") as refused:
            ckpt.load(path, trust=TRUST)
        assert NOT_AS_DATA[kind] in str(refused.value)
        return
    report = ckpt.load_checkpoint(path, trust=TRUST)
    assert not report.provenance.whole
    value = report.obj.value
    if catalog.BY_NAME[kind].action is Action.STRIP:
        assert value is None
        return
    probe = catalog.BY_NAME[kind].probe
    if probe is not None:
        probe(value)


class Node:
    """Weakly referable, trusted through this module."""


def test_weak_kinds_keep_only_what_is_saved_strongly(tmp_path: Path) -> None:
    kept, elsewhere, thread = Node(), Node(), threading.Thread(target=print)
    model = {
        "kept": kept, "thread": thread,
        "values": weakref.WeakValueDictionary({"kept": kept, "elsewhere": elsewhere}),
        "by_class": weakref.WeakKeyDictionary({Node: "a class exists wherever the file loads"}),
        "to_kept": weakref.ref(kept), "to_elsewhere": weakref.ref(elsewhere),
        "to_thread": weakref.ref(thread),  # the thread is stripped: nothing to refer to
    }
    report = ckpt.save(model, tmp_path / "w.ckpt")
    notes = {s.path: s.note for s in report.manifest.substitutions}
    assert notes["model['values']"] == "1 of 2 entries kept, 1 dropped (not saved elsewhere)"
    assert notes["model['to_thread']"] == "restored dead: its referent is not saved"
    loaded = ckpt.load(tmp_path / "w.ckpt")
    assert dict(loaded["values"]) == {"kept": loaded["kept"]} and loaded["to_kept"]() is loaded["kept"]
    assert loaded["to_elsewhere"]() is None and loaded["to_thread"]() is None and loaded["thread"] is None
    assert dict(loaded["by_class"]) == {Node: "a class exists wherever the file loads"}


def test_a_referent_stripped_by_the_user_leaves_a_dead_reference(tmp_path: Path) -> None:
    model = {"file": open(__file__), "ref": None}
    model["ref"] = weakref.ref(model["file"])
    ckpt.save(model, tmp_path / "s.ckpt", strip=["model['file']"])
    model["file"].close()
    assert ckpt.load(tmp_path / "s.ckpt")["ref"]() is None


def test_error_kinds_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    with pytest.raises(SaveError, match=r"model\.value \(open-file\)"):
        ckpt.save(kinds.open_file(), path)
    assert list(tmp_path.iterdir()) == []


def test_strip_saves_the_object_as_none_and_records_it(tmp_path: Path) -> None:
    model = kinds.open_file()
    path = tmp_path / "model.ckpt"
    report = ckpt.save(model, path, strip=["model.value"])
    [sub] = report.manifest.substitutions
    assert (sub.path, sub.kind, sub.action) == ("model.value", "open-file", "strip")
    assert ckpt.load(path).value is None


def test_strip_of_an_unknown_path_is_an_error_listing_findings(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CkptError, match="no finding at that path") as info:
        ckpt.save(kinds.open_file(), tmp_path / "m.ckpt", strip=["model.nope"])
    assert "model.value" in str(info.value)


def test_lock_contention_on_a_restored_lock(tmp_path: Path) -> None:
    model = {"lock": threading.Lock(), "count": 0}
    with model["lock"]:  # held at save: restored unlocked
        ckpt.save(model, tmp_path / "m.ckpt")
    loaded = ckpt.load(tmp_path / "m.ckpt")
    lock = loaded["lock"]
    counter = [0]

    def work() -> None:
        for _ in range(2000):
            with lock:
                value = counter[0]
                time.sleep(0) if value % 500 == 0 else None
                counter[0] = value + 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter[0] == 16000
    assert not lock.locked()


def test_queue_keeps_items_in_order_and_works_producer_consumer(tmp_path: Path) -> None:
    model = {"q": queue.Queue(maxsize=50), "lifo": queue.LifoQueue(), "prio": queue.PriorityQueue()}
    for i in range(5):
        model["q"].put(f"saved-{i}")
        model["lifo"].put(i)
        model["prio"].put((5 - i, i))
    loaded = round_trip(model, tmp_path)
    q = loaded["q"]
    assert q.maxsize == 50 and type(loaded["lifo"]) is queue.LifoQueue
    assert [loaded["lifo"].get_nowait() for _ in range(5)] == [4, 3, 2, 1, 0]
    assert [loaded["prio"].get_nowait()[1] for _ in range(5)] == [4, 3, 2, 1, 0]
    got: list[str] = []

    def consume() -> None:
        while (item := q.get(timeout=5)) != "stop":
            got.append(item)
            q.task_done()
        q.task_done()

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(20):
        q.put(f"new-{i}")
    q.put("stop")
    consumer.join(10)
    q.join()  # every task_done arrived: unfinished_tasks was restored consistently
    assert got == [f"saved-{i}" for i in range(5)] + [f"new-{i}" for i in range(20)]


def test_simple_queue_keeps_items(tmp_path: Path) -> None:
    loaded = round_trip(kinds.simple_queue(), tmp_path)
    q = loaded.value
    assert [q.get_nowait() for _ in range(3)] == ["a", "b", ("c", 3)]
    threading.Thread(target=q.put, args=("late",)).start()
    assert q.get(timeout=5) == "late"


def test_shared_lock_and_condition_stay_one_lock(tmp_path: Path) -> None:
    loaded = round_trip(nested.shared_lock(), tmp_path)
    lock = loaded["first"].lock
    assert loaded["second"].lock is lock
    assert loaded["cond"]._lock is lock
    ready = threading.Event()
    woke = []

    def waiter() -> None:
        with loaded["cond"]:
            ready.set()
            woke.append(loaded["cond"].wait(5))

    t = threading.Thread(target=waiter)
    t.start()
    ready.wait(5)
    with lock:  # the same lock as the condition's: notify under it
        loaded["cond"].notify_all()
    t.join(5)
    assert woke == [True]


def test_semaphore_keeps_value_and_bound(tmp_path: Path) -> None:
    sem = threading.BoundedSemaphore(3)
    sem.acquire()
    loaded = round_trip({"sem": sem}, tmp_path)["sem"]
    assert type(loaded) is threading.BoundedSemaphore
    assert loaded.acquire(blocking=False) and loaded.acquire(blocking=False)
    assert not loaded.acquire(blocking=False)  # value was 2 at save
    loaded.release()
    loaded.release()
    loaded.release()
    with pytest.raises(ValueError):  # the bound (3) is kept
        loaded.release()


def test_barrier_works_for_its_parties(tmp_path: Path) -> None:
    loaded = round_trip(kinds.barrier(), tmp_path).value
    assert loaded.parties == 3
    results = []
    threads = [threading.Thread(target=lambda: results.append(loaded.wait(5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [0, 1, 2]


def test_event_flag_and_executor_config(tmp_path: Path) -> None:
    model = {"event": kinds.event().value, "pool": concurrent.futures.ThreadPoolExecutor(4, "prefix")}
    loaded = round_trip(model, tmp_path)
    assert loaded["event"].is_set()
    pool = loaded["pool"]
    assert pool._max_workers == 4 and pool._thread_name_prefix == "prefix"
    names = list(pool.map(lambda _: threading.current_thread().name, range(8)))
    assert all(n.startswith("prefix") for n in names)
    pool.shutdown()
    model["pool"].shutdown()


def test_pending_future_comes_back_cancelled(tmp_path: Path) -> None:
    pending: concurrent.futures.Future[int] = concurrent.futures.Future()
    done: concurrent.futures.Future[int] = concurrent.futures.Future()
    done.set_result(7)
    loaded = round_trip({"pending": pending, "done": done}, tmp_path)
    assert loaded["pending"].cancelled()
    assert loaded["done"].result(0) == 7


def test_file_handler_reopens_lazily_in_append_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "app.log"
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.emit(logging.makeLogRecord({"msg": "before save", "levelname": "INFO"}))
    handler.flush()
    ckpt.save({"handler": handler}, tmp_path / "m.ckpt")
    handler.close()
    loaded = ckpt.load(tmp_path / "m.ckpt")["handler"]  # your own file: whole, no trust to give
    assert loaded.stream is None  # nothing opened at load
    loaded.emit(logging.makeLogRecord({"msg": "after load", "levelname": "INFO"}))
    loaded.close()
    # From someone else, a file handler writes where their file says: it needs that exact trust.
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"trust=\['logging:FileHandler'\]"):
        ckpt.load(tmp_path / "m.ckpt")
    as_data = ckpt.load(tmp_path / "m.ckpt", trust=["logging:FileHandler"])["handler"]
    assert as_data.stream is None
    as_data.emit(logging.makeLogRecord({"msg": "as data", "levelname": "INFO"}))
    as_data.close()
    assert log_file.read_text().splitlines() == ["INFO before save", "INFO after load", "INFO as data"]


def test_service_sample_round_trips_and_predicts_the_same(tmp_path: Path) -> None:
    model = service.build()
    loaded = round_trip(model, tmp_path)
    assert loaded.predict([1.0] * 8) == model.predict([1.0] * 8)
    assert loaded.worker is None
    assert loaded.requests.qsize() == 2
    loaded.worker = threading.Thread(target=loaded._serve, daemon=True)
    loaded.worker.start()
    loaded.requests.put([2.0] * 8)
    loaded.requests.put(None)
    loaded.worker.join(5)
    assert not loaded.worker.is_alive()


def test_data_pkl_loads_with_plain_pickle_and_no_ckpt(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    ckpt.save(kinds.FACTORIES["simple-queue"](), path)
    with zipfile.ZipFile(path) as archive:
        (tmp_path / "data.pkl").write_bytes(archive.read("data.pkl"))
    code = (
        "import sys, pickle\n"
        "sys.modules['ckpt'] = None  # ckpt cannot be imported\n"
        "obj = pickle.load(open('data.pkl', 'rb'))\n"
        "print([obj.value.get_nowait() for _ in range(3)])\n"
    )
    env_path = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": env_path})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['a', 'b', ('c', 3)]"


def test_dumps_and_loads(tmp_path: Path) -> None:
    data = ckpt.dumps({"lock": threading.RLock(), "n": [1, 2]})
    loaded = ckpt.loads(data)
    assert loaded["n"] == [1, 2] and loaded["lock"].acquire(blocking=False)
    with pytest.raises(SaveError, match=r"model\.value"):
        ckpt.dumps(kinds.generator())


JSON_LOADS = b"\x8c\x04json\x8c\x05loads\x93"
"""A function stored as a value: exact trust lifts it."""
BYTES_IO_CALLED = b"\x8c\x03_io\x8c\x07BytesIO\x93C\x01x\x85R"
"""An in-memory buffer called: ckpt never allows it as data, whatever the trust."""


@pytest.mark.parametrize(("stream", "names"), [(JSON_LOADS, True), (BYTES_IO_CALLED + JSON_LOADS + b"\x86", False)],
                         ids=["liftable", "not-liftable"])
def test_a_refusal_of_bytes_offers_only_ways_forward_that_work(stream: bytes, names: bool) -> None:
    """Bytes have no file to sign: the way to load them whole is said as
    such. Trusting exact names is offered only when that would be enough."""
    with pytest.raises(ckpt.UnsafeCheckpointError) as refused:
        ckpt.loads(b"\x80\x05" + stream + b".")
    hint = refused.value.hint or ""
    assert hint.startswith("bytes carry no signature") and "ckpt sign" not in hint
    assert ("trust just these names: trust=['json:loads']" in hint) is names
    if names:  # and it is enough
        assert ckpt.loads(b"\x80\x05" + stream + b".", trust=["json:loads"]) is json.loads


def _public_key_line(home: Path) -> str:
    return (home / "signing-key.pub").read_text().strip()


def test_who_signed_decides_how_a_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             ckpt_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.ckpt"
    with capsys.disabled():  # its log handler on the process's own stderr, not pytest's stand-in
        ckpt.save(service.build(), path)
    report = ckpt.load_checkpoint(path)  # no trust to give: you signed it
    assert report.provenance.origin is ckpt.Origin.OWN and report.obj.requests.qsize() == 2
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    with pytest.raises(ckpt.UnsafeCheckpointError, match="a key you do not trust, so it loads as data only") as refused:
        ckpt.load(path)
    assert "ckpt key trust" in str(refused.value) and "sample_models.service:InferenceService" in str(refused.value)
    trusted = ckpt.load_checkpoint(path, trusted_keys=[_public_key_line(ckpt_home)])
    assert trusted.provenance.origin is ckpt.Origin.TRUSTED and trusted.obj.requests.qsize() == 2
    as_data = ckpt.load_checkpoint(path, trust=["sample_models"])
    assert not as_data.provenance.whole and as_data.obj.predict([1.0] * 8) == service.build().predict([1.0] * 8)


def test_a_key_from_the_environment_signs_and_is_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI and clusters pass a private key in CKPT_SIGNING_KEY (its PEM text or a file's path)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    home = tmp_path / "ci-home"
    monkeypatch.setenv("CKPT_HOME", str(home))
    monkeypatch.setenv("CKPT_SIGNING_KEY", pem)
    ckpt.save({"lock": threading.Lock()}, tmp_path / "m.ckpt")
    assert not home.exists()  # nothing made, nothing written
    assert ckpt.load_checkpoint(tmp_path / "m.ckpt").provenance.origin is ckpt.Origin.OWN
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    monkeypatch.delenv("CKPT_SIGNING_KEY")
    assert ckpt.load_checkpoint(tmp_path / "m.ckpt", trusted_keys=[public.decode()]).provenance.whole


def test_an_altered_file_loads_as_data_only(tmp_path: Path) -> None:
    """A data.pkl replaced and its hash rewritten in the manifest: intact to
    the archive reader, but the signature no longer matches, so nothing
    beyond data loads, whoever signed it first."""
    import zipfile

    from conftest import rewrite_member

    path = tmp_path / "m.ckpt"
    ckpt.save(service.build(), path)
    with zipfile.ZipFile(path) as archive:
        data = archive.read("data.pkl")
    rewrite_member(path, "data.pkl", data.replace(b"InferenceService", b"Xnference_ervice"))
    report = ckpt.inspect(path)
    assert report.provenance.origin is ckpt.Origin.ALTERED
    with pytest.raises(ckpt.UnsafeCheckpointError, match="altered after it was signed"):
        ckpt.load(path)


def test_an_unsigned_file_loads_as_data_only(tmp_path: Path) -> None:
    import json
    import zipfile

    from conftest import rewrite_member

    path = tmp_path / "m.ckpt"
    ckpt.save({"lock": threading.Lock(), "n": [1, 2]}, path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    del manifest["signature"]
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    report = ckpt.load_checkpoint(path)
    assert report.provenance.origin is ckpt.Origin.UNSIGNED and report.obj["n"] == [1, 2]
    assert report.obj["lock"].acquire(blocking=False)


def test_verify_against_reports_differences(tmp_path: Path) -> None:
    path = tmp_path / "m.ckpt"
    ckpt.save(service.build(), path)
    assert ckpt.verify(path, against=service.build()).ok
    changed = service.build()
    changed.config["labels"].append("bird")
    report = ckpt.verify(path, against=changed)
    [failure] = report.failures
    assert failure.name == "against target" and "model.config['labels']" in failure.detail


def test_out_of_band_arrays_are_aligned_members(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    model = {"w": np.arange(100_000, dtype=np.float64), "small": np.ones(3), "lock": threading.Lock()}
    path = tmp_path / "m.ckpt"
    report = ckpt.save(model, path)
    assert sorted(report.manifest.members) == ["buffers/0", "data.pkl"]
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("buffers/0")
    from ckpt.format.archive import open_archive

    with open_archive(path) as archive:
        assert archive.offset("buffers/0") % 64 == 0
    loaded = ckpt.load(path)
    assert np.array_equal(loaded["w"], model["w"]) and loaded["w"].flags.writeable
    mapped = ckpt.load(path, mmap=True)
    assert np.array_equal(mapped["w"], model["w"]) and mapped["w"].flags.writeable
    before = path.read_bytes()
    mapped["w"][:] = -1  # copy-on-write: the file never changes
    assert path.read_bytes() == before
    assert info.compress_type == zipfile.ZIP_STORED


def test_classes_of_a_script_are_saved_by_value_and_load_without_it(tmp_path: Path) -> None:
    """A class of `__main__` pickled by name would load only where that script
    runs again: it is saved by value, loads in any process you trust it in,
    and as data it is refused, naming what it is."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(
        f"""
        import threading
        import ckpt

        class Model:
            def __init__(self):
                self.lock = threading.Lock()
                self.weights = [1, 2, 3]

            def total(self):
                with self.lock:
                    return sum(self.weights)

        ckpt.save(Model(), {str(tmp_path / 'm.ckpt')!r})
        """
    ))
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path)
    load = f"import ckpt; print(ckpt.load({str(tmp_path / 'm.ckpt')!r}).total())"
    mine = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, cwd=REPO)
    assert mine.returncode == 0 and mine.stdout == "6\n", mine.stderr
    other = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "CKPT_HOME": str(tmp_path / "another-user")})
    assert other.returncode == 1 and "code saved by value (a lambda or local function)" in other.stderr


class Callbacks:
    """Holds a private bound method: pickle writes getattr(obj, '_on_event')."""

    def __init__(self) -> None:
        self.handler = self._on_event
        self.public = self.on_event

    def _on_event(self) -> None:
        pass

    def on_event(self) -> None:
        pass


def test_bound_methods_load_whole_and_never_as_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Save never refuses for the loader's sake: a private bound method is
    yours to load back; from someone else, no bound method reaches a caller."""
    model = {"callbacks": Callbacks(), "lock": threading.Lock()}
    ckpt.save(model, tmp_path / "m.ckpt")
    loaded = ckpt.load(tmp_path / "m.ckpt")
    assert loaded["callbacks"].handler.__self__ is loaded["callbacks"]
    assert loaded["callbacks"].public.__self__ is loaded["callbacks"]
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    with pytest.raises(ckpt.UnsafeCheckpointError, match="private attribute '_on_event' with getattr"):
        ckpt.load(tmp_path / "m.ckpt", trust=["test_checkpoint"])


def _compiled(source: str, name: str) -> Any:
    """A function compiled at run time under a name no module holds, as
    werkzeug compiles a URL rule's builders."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    func = namespace["f"]
    func.__name__ = func.__qualname__ = name
    return func


class CompiledRule:
    """Holds bound methods that `getattr(rule, their name)` cannot find:
    one of a function compiled at run time, one of its own method kept
    under another name in its own dictionary."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._build = types.MethodType(_compiled("def f(self, **values):\n    return self.path.format(**values)\n",
                                                 f"<builder:{path!r}>"), self)
        self.describe = self.explain

    def explain(self) -> str:
        return f"rule {self.path}"


def test_bound_methods_whose_name_finds_nothing_come_back_bound_to_the_restored_object(tmp_path: Path) -> None:
    """Pickle writes a bound method as getattr(object, function name), which
    fails at load for a function compiled at run time: it is written as
    the function (by value when no module holds it) bound to the object."""
    model = {"rule": CompiledRule("/users/{id}"), "lock": threading.Lock()}
    found = {(p, f.kind) for f in ckpt.scan(model).findings for p in f.paths}
    assert ("model['rule']._build.__func__", "local-function") in found  # the scan says what save will do
    report = ckpt.save(model, tmp_path / "m.ckpt")
    assert {(s.path, s.kind) for s in report.manifest.substitutions} == found
    rule = ckpt.load(tmp_path / "m.ckpt")["rule"]
    rule.path = "/people/{id}"
    assert rule._build(id=7) == "/people/7" and rule._build.__self__ is rule
    assert rule.describe() == "rule /people/{id}" and rule.describe.__self__ is rule


class Template:
    """Made by a `__new__` that takes the source, as jinja2's Template is."""

    def __new__(cls, source: str) -> Template:
        template = super().__new__(cls)
        template.source = source
        return template

    def render(self, **values: str) -> str:
        return self.source.format(**values)


def test_an_instance_whose_new_takes_arguments_loads(tmp_path: Path) -> None:
    """Plain pickle writes `cls.__new__(cls)`, which raises at load when
    `__new__` takes arguments: save writes what loads."""
    template = Template("hi {name}")
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        pickle.loads(pickle.dumps(template))
    loaded = round_trip({"template": template, "lock": threading.Lock()}, tmp_path)
    assert loaded["template"].render(name="ann") == "hi ann"


class Lookup:
    """Caches a method of its own, wrapped when it is made (langsmith's client does)."""

    def __init__(self) -> None:
        self.calls = 0
        self.find = functools.lru_cache(maxsize=16)(self._find)

    def _find(self, key: str) -> str:
        self.calls += 1
        return key.upper()


def test_a_cache_made_at_run_time_comes_back_empty_around_the_restored_method(tmp_path: Path) -> None:
    lookup = Lookup()
    lookup.find("a")
    report = ckpt.save({"lookup": lookup}, tmp_path / "c.ckpt")
    assert [(s.path, s.kind) for s in report.manifest.substitutions] == [("model['lookup'].find", "lru-cache")]
    restored = ckpt.load(tmp_path / "c.ckpt")["lookup"]
    assert restored.find.cache_info().currsize == 0 and restored.find.cache_parameters()["maxsize"] == 16
    assert restored.find("b") == "B" and restored.find("b") == "B"
    assert restored.calls == 2 and restored.find.__wrapped__.__self__ is restored


@pytest.mark.parametrize("options", [{"request_class": object}, {"raise_for_status": print},
                                     {"connector": {"resolver": object}}, {"jar": {"quote_cookie": print}}],
                         ids=["a class", "a callback", "a connector's resolver", "a jar's option"])
def test_a_restored_aiohttp_session_takes_only_data(options: dict[str, Any]) -> None:
    """What a file hands the session it makes on first use is data: nothing
    the session would call or instantiate."""
    pytest.importorskip("aiohttp")
    from ckpt.kinds.lazy import LazySession

    with pytest.raises(TypeError, match="does not take"):
        LazySession(options)


def test_a_model_class_defined_in_a_function_keeps_its_validators_in_a_fresh_process(tmp_path: Path) -> None:
    """A pydantic model class written by value holds its validators as
    methods bound to itself: they are written bound to the class as it is
    rebuilt, not looked up on it by name before its attributes are set."""
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):
        name: str

        @pydantic.field_validator("name")
        @classmethod
        def upper(cls, value: str) -> str:
            return value.upper()

    ckpt.save({"user": User(name="ann"), "lock": threading.Lock()}, tmp_path / "m.ckpt")
    load = (f"import ckpt; user = ckpt.load({str(tmp_path / 'm.ckpt')!r})['user']; "
            "print(user.name, type(user)(name='bob').name)")
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, cwd=REPO)
    assert loaded.returncode == 0 and loaded.stdout == "ANN BOB\n", loaded.stderr


class ProxyOwner:
    """Holds a weak proxy to itself, as Flask's JSON provider holds its app."""

    def __init__(self) -> None:
        self.name = "owner"
        self.me = weakref.proxy(self)


def double(x: int) -> int:
    return 2 * x


def test_weak_proxies_stand_for_the_restored_object_not_a_copy(tmp_path: Path) -> None:
    """Plain pickle writes a copy of a proxy's referent in its place (and
    the scan says so): ckpt restores a proxy to the restored referent, or
    a dead one when nothing else holds the referent."""
    owner, elsewhere = ProxyOwner(), Node()
    model = {"owner": owner, "double": weakref.proxy(double), "to_elsewhere": weakref.proxy(elsewhere)}
    copied = pickle.loads(pickle.dumps(owner))
    assert copied.me.__reduce_ex__.__self__ is not copied  # what plain pickle does
    assert {f.kind for f in ckpt.scan(model).findings} == {"weak-proxy"}
    report = ckpt.save(model, tmp_path / "p.ckpt")
    notes = {s.path: s.note for s in report.manifest.substitutions}
    assert notes["model['owner'].me"] == "live: its referent is saved"
    assert notes["model['to_elsewhere']"] == "restored dead: its referent is not saved"
    loaded = ckpt.load(tmp_path / "p.ckpt")
    loaded["owner"].name = "renamed"
    assert loaded["owner"].me.name == "renamed"
    assert loaded["double"](4) == 8
    with pytest.raises(ReferenceError):
        loaded["to_elsewhere"].anything
    assert ckpt.verify(tmp_path / "p.ckpt").ok


def test_a_dotted_exact_name_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--trust sample_models.service.InferenceService (the old spelling) names a
    package, which admits nothing here: the refusal says how to write it."""
    path = tmp_path / "m.ckpt"
    ckpt.save(service.build(), path)
    monkeypatch.setenv("CKPT_HOME", str(tmp_path / "another-user"))
    with pytest.raises(ckpt.UnsafeCheckpointError, match="names a package; one class or function is "
                                                         "sample_models.service:InferenceService"):
        ckpt.load(path, trust=["sample_models.service.InferenceService"])
