"""The construct step's sandbox (src/ckpt/trust/sandbox.py) against code the user trusts.

A package the user trusts runs its own `__setstate__` during a data-only
load. Here that package is a module written for the test (`--trust
ckpt_trusted_probe`), each class's `__setstate__` doing one thing no data
load may do, and swallowing whatever it raised (as library code may). In a
fresh interpreter: every load is refused in one line naming what happened,
or, where only the kernel could stop it (a write from C through libc), it
loads and the write never happened; nothing lands on disk, and the process
is as it was (threads, loggers, sys.path, environ, multiprocessing's
settings, exit hooks, warnings filters).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MODULE = '''
import atexit, ctypes, logging, os, sys, threading, warnings, weakref

LIBC = ctypes.CDLL(None, use_errno=True)
WORK = os.environ["PROBE_WORK"]


class Acts:
    """Each subclass's __setstate__ does one thing, and swallows what it raised."""

    def __setstate__(self, state):
        self.__dict__.update(state)
        try:
            self.act()
        except BaseException as exc:
            self.swallowed = repr(exc)


class WritesFromPython(Acts):
    def act(self):
        open(os.path.join(WORK, "python.txt"), "w").write("x")


class WritesFromC(Acts):
    def act(self):
        self.fd = LIBC.open(os.path.join(WORK, "c.txt").encode(), os.O_WRONLY | os.O_CREAT, 0o644)


class MakesADirectoryFromC(Acts):
    def act(self):
        self.rc = LIBC.mkdir(os.path.join(WORK, "c-dir").encode(), 0o755)


class StartsAThread(Acts):
    def act(self):
        threading.Thread(target=lambda: open(os.path.join(WORK, "thread.txt"), "w")).start()


class Forks(Acts):
    def act(self):
        if os.fork() == 0:
            open(os.path.join(WORK, "fork.txt"), "w")
            os._exit(0)


class SpawnsAProcess(Acts):
    def act(self):
        import _posixsubprocess  # what multiprocessing's spawn uses: it raises no audit event
        import multiprocessing.util
        multiprocessing.util.spawnv_passfds(b"/usr/bin/touch", [b"touch", os.path.join(WORK, "spawn.txt").encode()],
                                            [])


class RegistersALogger(Acts):
    def act(self):
        logging.getLogger("ckpt.trusted.probe.new")


class ChangesSysPath(Acts):
    def act(self):
        sys.path.append(WORK)


class SetsTheExecutable(Acts):
    def act(self):
        import multiprocessing
        multiprocessing.set_executable(os.path.join(WORK, "evil.sh"))


class SetsTheStartMethod(Acts):
    def act(self):
        import multiprocessing
        multiprocessing.set_start_method("spawn", force=True)


class ChangesTheEnvironmentQuietly(Acts):
    def act(self):
        os.environ._data[b"CKPT_PROBE"] = b"1"


class RegistersAnExitHook(Acts):
    def act(self):
        atexit.register(open, os.path.join(WORK, "atexit.txt"), "w")


class RegistersAFinalizer(Acts):
    def act(self):
        weakref.finalize(Acts, open, os.path.join(WORK, "finalizer.txt"), "w")


class FiltersWarnings(Acts):
    def act(self):
        warnings.simplefilter("ignore")


class Connects(Acts):
    def act(self):
        import socket
        socket.create_connection(("127.0.0.1", int(os.environ["PROBE_PORT"])), timeout=1)


CLASS_LOOKUPS = []


class NewReturnsAFunction:
    """Its own pickling calls it (it defines __reduce__), and its __new__ hands back something else."""

    def __new__(cls, *args):
        return os.system

    def __reduce__(self):
        return type(self), ()


class ClassProperty:
    """An object that answers a question about its class by running code."""

    @property
    def __class__(self):
        CLASS_LOOKUPS.append(1)
        return tuple


def start_worker(path):
    """A function whose purpose is a thread: trusted by its exact name, the thread is the user's."""
    worker = threading.Thread(target=lambda: open(path, "w").write("the user's worker"))
    worker.start()
    worker.join()
    return path


def write_now(path):
    open(path, "w").write("x")
    return path


class LoadsAnotherFile(Acts):
    def act(self):
        import ckpt
        ckpt.loads(b"\\x80\\x05N.")
'''

CHILD = '''
import json, logging, multiprocessing, multiprocessing.spawn, os, pickle, sys, threading, warnings, atexit
import ckpt
import ckpt_trusted_probe as probe

weakref_hook = __import__("weakref").finalize(ckpt, lambda: None)  # finalize's own exit hook is in place

def state():
    return [sorted(logging.Logger.manager.loggerDict), list(sys.path), dict(os.environ),
            multiprocessing.get_start_method(allow_none=True), str(multiprocessing.spawn.get_executable()),
            sorted(t.name for t in threading.enumerate()), atexit._ncallbacks(), len(warnings.filters)]

results = {}
for name in sys.argv[1:]:
    cls = getattr(probe, name)
    obj = cls.__new__(cls)
    obj.saved = 1
    data = pickle.dumps(obj, protocol=5)
    before = state()
    try:
        loaded = ckpt.loads(data, trust=["ckpt_trusted_probe"])
        outcome = {"loaded": {k: v for k, v in vars(loaded).items() if k != "saved"}}
    except ckpt.CkptError as exc:
        outcome = {"refused": str(exc)}
    outcome["changed"] = [i for i, (a, b) in enumerate(zip(before, state())) if a != b]
    results[name] = outcome

# calling a class must give its own instance; a type check never asks an object for its __class__
returns_function = b"\\x80\\x05cckpt_trusted_probe\\nNewReturnsAFunction\\n)R."
asks_class = b"\\x80\\x05cbuiltins\\nlist\\ncckpt_trusted_probe\\nClassProperty\\n)\\x81R."
for name, data in (("NewReturnsAFunction", returns_function), ("ClassProperty", asks_class)):
    try:
        results[name] = {"loaded": repr(ckpt.loads(data, trust=["ckpt_trusted_probe"]))}
    except ckpt.CkptError as exc:
        results[name] = {"refused": str(exc), "class lookups": len(probe.CLASS_LOOKUPS)}


class Calls:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


for function in (probe.start_worker, probe.write_now):
    name = f"ckpt_trusted_probe:{function.__name__}"
    data = pickle.dumps(Calls(function, os.path.join(os.environ["PROBE_WORK"], "trusted", function.__name__)))
    outcome = {}
    for trust in (["ckpt_trusted_probe"], [name]):
        try:
            outcome[trust[0]] = {"loaded": ckpt.loads(data, trust=trust)}
        except ckpt.CkptError as exc:
            outcome[trust[0]] = {"refused": str(exc)}
    results[name] = outcome
print(json.dumps(results))
'''

REFUSED = {
    "WritesFromPython": "a file was opened for writing",
    "StartsAThread": "a thread was started",
    "Forks": "os.fork was called",
    "SpawnsAProcess": "a process was started",
    "RegistersALogger": "registered loggers",
    "ChangesSysPath": "sys.path",
    "SetsTheExecutable": "multiprocessing executable",
    "SetsTheStartMethod": "multiprocessing start method",
    "ChangesTheEnvironmentQuietly": "os.environ",
    "RegistersAnExitHook": "an exit hook was registered",
    "RegistersAFinalizer": "weakref finalizers",
    "FiltersWarnings": "warnings filters",
    "Connects": "data.pkl: socket.",
    "LoadsAnotherFile": "another file was loaded",
}
"""Refused, and the one line says what happened."""
KERNEL = {"WritesFromC": "fd", "MakesADirectoryFromC": "rc"}
"""Stopped by the kernel only (no Python hook hears libc): they load, and their call failed."""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, dict[str, object]], Path]:
    import socket

    root = tmp_path_factory.mktemp("sandbox")
    (root / "ckpt_trusted_probe.py").write_text(textwrap.dedent(MODULE))
    work = root / "work"
    work.mkdir()
    (work / "trusted").mkdir()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        env = {"PYTHONPATH": str(root), "PROBE_WORK": str(work), "PROBE_PORT": str(listener.getsockname()[1]),
               "PATH": "/usr/bin:/bin"}
        import os

        proc = subprocess.run([sys.executable, "-c", CHILD, *REFUSED, *KERNEL], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=120, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        listener.settimeout(0.5)
        try:
            listener.accept()
            pytest.fail("a payload connected to the listener")
        except OSError:
            pass
    return json.loads(proc.stdout.strip().splitlines()[-1]), work


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_trusted_code_does_during_a_load_refuses_it(name: str,
                                                         outcomes: tuple[dict[str, dict[str, object]], Path]) -> None:
    found, work = outcomes
    outcome = found[name]
    assert REFUSED[name] in str(outcome.get("refused")), outcome
    assert "\n" not in str(outcome["refused"])
    assert outcome["changed"] == [], outcome


@pytest.mark.parametrize("name", sorted(KERNEL))
def test_what_only_the_kernel_sees_fails_there(name: str, outcomes: tuple[dict[str, dict[str, object]], Path]) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the seccomp layer is Linux's")
    found, _ = outcomes
    loaded = found[name]["loaded"]
    assert isinstance(loaded, dict) and loaded[KERNEL[name]] == -1, found[name]


def test_nothing_reached_the_disk(outcomes: tuple[dict[str, dict[str, object]], Path]) -> None:
    _, work = outcomes
    import time

    time.sleep(0.5)  # a thread or process that escaped would have written by now
    assert sorted(p.name for p in work.iterdir()) == ["trusted"]
    assert sorted(p.name for p in (work / "trusted").iterdir()) == ["start_worker"]


def test_calling_a_trusted_class_gives_its_own_instance_and_a_type_check_runs_nothing(
        outcomes: tuple[dict[str, dict[str, object]], Path]) -> None:
    found, _ = outcomes
    assert "instead of its own instance" in str(found["NewReturnsAFunction"]["refused"]), found
    assert "not a tuple" in str(found["ClassProperty"]["refused"]), found
    assert found["ClassProperty"]["class lookups"] == 0


def test_a_function_trusted_by_its_exact_name_may_start_its_thread_but_not_write_itself(
        outcomes: tuple[dict[str, dict[str, object]], Path]) -> None:
    """Trusting a package never admits its functions; trusting
    `module:start_worker` exactly is asking for what it does: its thread
    runs, as the user's (and writes). A write in the loading thread itself
    stays refused, exact trust or not."""
    found, work = outcomes
    worker, writer = found["ckpt_trusted_probe:start_worker"], found["ckpt_trusted_probe:write_now"]
    assert "is not trusted" in str(worker["ckpt_trusted_probe"]["refused"])
    assert str(worker["ckpt_trusted_probe:start_worker"]["loaded"]).endswith("start_worker")
    assert (work / "trusted" / "start_worker").read_text() == "the user's worker"
    assert "a file was opened for writing" in str(writer["ckpt_trusted_probe:write_now"]["refused"])


REGISTERS = {
    "loggers": ("logging.getLogger(f'app.request.{len(made)}')",
                "sum(logging.Logger.manager.loggerDict.get(thing.name) is thing for thing in made)"),
    "weakref finalizers": ("finalizer()",
                           "sum(thing.alive for thing in made)"),
}


@pytest.mark.parametrize("what", list(REGISTERS))
def test_what_another_thread_registers_during_a_data_only_load_stays_registered(tmp_path: Path, what: str) -> None:
    """The state comparison around a build is the file's alone: a thread of
    the program that registers loggers (a module imported on first use does)
    or weakref finalizers (a temporary directory does) meanwhile does not get
    the load refused, nor what it registered undone."""
    register, count = REGISTERS[what]
    saved = tmp_path / "model.ckpt"
    save = f"import ckpt; ckpt.save([{{'weight': i / 3, 'name': str(i)}} for i in range(100_000)], {str(saved)!r})"
    subprocess.run([sys.executable, "-c", save], check=True, timeout=120, env={**os.environ, "CKPT_HOME": str(tmp_path / "a")})
    load = textwrap.dedent(f"""
        import logging, threading, time, weakref, ckpt
        class Owner:
            pass
        owners, loading, made = [], threading.Event(), []
        def finalizer():
            owners.append(Owner())
            return weakref.finalize(owners[-1], len, ())
        def register():
            while loading.is_set() or len(made) < 20:
                made.append({register})
                time.sleep(0.001)
        loading.set()
        thread = threading.Thread(target=register)
        thread.start()
        try:
            report = ckpt.load_checkpoint({str(saved)!r})
        finally:
            loading.clear()
            thread.join()
        assert not report.provenance.whole and len(report.obj) == 100_000
        print(len(made), {count})
    """)
    proc = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CKPT_HOME": str(tmp_path / "b")})
    assert proc.returncode == 0, proc
    made, registered = proc.stdout.split()
    assert made == registered, proc.stdout
