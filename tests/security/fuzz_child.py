"""The loader's fuzzer, run in a child process (a crash must not take pytest with it).

Three passes, each for a share of the time budget:
- structure-aware: hypothesis builds opcode streams from the opcodes and
  the globals a ckpt file may use (reviewed classes and reconstructors,
  memo puts and gets, marks, tuples, calls, state, items);
- mutational: real checkpoints' data.pkl (the samples ckpt writes) with
  bytes flipped, dropped, inserted, duplicated or cut;
- harm (half the budget): hypothesis builds nested programs over the whole
  reviewed table, its rule families, classes of the packages a user
  trusts and names ckpt refuses, with the opcodes that build, call, store,
  fill and remember (`opcodes.data_only_streams`), and each is loaded with
  `ckpt.loads` (at no trust and trusting sklearn, pandas and torch)
  and `ckpt.load` of a checkpoint built around it, under the harm
  oracle (harm.py): an audit hook hearing every thread, canary files and a
  diff of the working directory, and the process's state before and after
  (threads, loggers, sys.modules with every named module imported first,
  os.environ, multiprocessing's settings, sys.path, copyreg, warnings
  filters, cwd...). At the end, what interpreter exit does runs on all that
  loaded. Any effect fails with the example (hypothesis shrinks it).

The crash property: `ckpt.loads` and `stream.analyse` return or raise
a CkptError, never anything else, save's replay (`reach`) answers alike in
C and in Python, and never crash or hang (the parent kills a child that
overruns its budget; each example is written to `--current` first, so the
one that hung or crashed is known).

    python tests/security/fuzz_child.py --seconds 1800               # the long run (30 minutes)
    python tests/security/fuzz_child.py --seconds 1800 --only harm   # the harm oracle only
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

import ckpt
from ckpt.errors import CkptError
from ckpt.scanning import replay as reach
from ckpt.trust.analysis import analyse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared stream strategy
from harm import (  # noqa: E402
    Recorder,
    changes,
    difference,
    exit_as_the_interpreter_does,
    snapshot,
    tree,
)
from opcodes import data_only_streams, streams  # noqa: E402


def check(data: bytes, current: Path) -> None:
    current.write_bytes(data)
    analyse(data)  # never raises: problems are data
    replayed(data)
    try:
        ckpt.loads(data)
    except CkptError:
        pass


def replayed(data: bytes) -> None:
    """Save's replay of a stream (src/ckpt/scanning/_replay.c and its Python twin): the
    same answer or both a ReplayError, never a crash."""
    answers: list[Any] = []
    for replay in (reach.replay([0, 3]), reach.Replay([0, 3])):
        try:
            answers.append((replay.feed(data), replay.memo_size))
        except reach.ReplayError:
            answers.append("refused")
    assert answers[0] == answers[1], f"src/ckpt/scanning/_replay.c and src/ckpt/scanning/replay.py disagree: {answers}"


def samples() -> list[bytes]:
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sample_models import kinds, nested, service

    out = [ckpt.dumps(service.build()), ckpt.dumps({"lock": threading.Lock(), "n": [1, 2.5, "x", None]})]
    for name, factory in kinds.FACTORIES.items():
        try:
            out.append(ckpt.dumps(factory()))
        except (CkptError, ImportError):  # a kind refused, or one whose optional library is absent
            continue
    out.append(ckpt.dumps(nested.shared_lock()))
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how, i = rng.randrange(5), rng.randrange(len(data))
        if how == 0:
            data[i] = rng.randrange(256)
        elif how == 1:
            del data[i]
        elif how == 2:
            data.insert(i, rng.randrange(256))
        elif how == 3:
            j = min(len(data), i + rng.randint(1, 16))
            data[i:i] = data[i:j] * rng.randint(1, 50)
        else:
            del data[i:]
        if not data:
            data = bytearray(b"\x80\x05.")
    return bytes(data)


# --- the harm pass ----------------------------------------------------------------------

RULE_SAMPLES = [
    "numpy:float64", "numpy:int8", "numpy:bool_", "numpy:datetime64", "numpy:add", "numpy:exp",
    "builtins:ValueError", "builtins:OSError", "builtins:SystemExit", "builtins:KeyboardInterrupt",
    "signal:Signals", "http:HTTPStatus", "socket:AddressFamily", "ssl:TLSVersion", "re:RegexFlag",
    "uuid:SafeUUID", "inspect:_ParameterKind",
    "torch.nn.modules.linear:Linear", "torch.nn.modules.container:Sequential", "torch.nn.modules.module:Module",
    "torch.nn.modules.activation:ReLU", "torch.optim.adam:Adam", "torch.optim.lr_scheduler:StepLR",
    "scipy.sparse._csr:csr_matrix", "scipy.sparse._coo:coo_array",
    "pandas._libs.arrays:__pyx_unpickle_NDArrayBacked", "numpy.random.bit_generator:__pyx_unpickle_SeedSequence",
]
"""Members of each rule family of the reviewed table (`reviewed.by_rule`, Cython reconstructors)."""

TRUSTED_SAMPLES = [
    "sklearn.linear_model._logistic:LogisticRegression", "sklearn.utils.parallel:Parallel", "sklearn.utils._bunch:Bunch",
    "pandas.core.frame:DataFrame", "pandas.core.series:Series", "pandas._libs.arrays:NDArrayBacked",
    "torch.utils.data.dataloader:DataLoader", "torch.multiprocessing.pool:Pool",
    "torch.package.package_exporter:PackageExporter", "torch.multiprocessing.reductions:StorageWeakRef",
    "torch.utils.data.datapipes.utils.common:StreamWrapper", "torch._C:Generator",
]
"""Classes of the packages a scikit-learn, pandas or torch user trusts, harmless and not."""

REFUSED = ["posix:system", "builtins:eval", "builtins:exec", "os:remove", "shutil:rmtree", "subprocess:Popen",
           "threading:Thread", "multiprocessing.context:SpawnContext", "logging:FileHandler", "pathlib:Path.touch",
           "builtins:setattr", "_operator:methodcaller", "atexit:register", "weakref:finalize"]
"""Names the data-only tier never admits (or admits only by exact trust)."""

PACKAGES = ("sklearn", "pandas", "torch")
PRECIOUS = "precious"


class HarmOracle:
    """A working directory with canaries, the loader's inputs, and the checks."""

    def __init__(self, current: Path) -> None:
        from ckpt.trust import reviewed

        self.current = current
        self.work = Path(tempfile.mkdtemp(prefix="ckpt-fuzz-work-", dir=current.resolve().parent))
        (self.work / "victim").mkdir()
        (self.work / "victim" / "keep.txt").write_text(PRECIOUS)
        (self.work / "canary").write_text(PRECIOUS)
        self.archive = Path(tempfile.mkdtemp(prefix="ckpt-fuzz-file-", dir=current.resolve().parent)) / "model.ckpt"
        ckpt.save({"weights": [1.0, 2.0]}, self.archive)
        self.names = sorted({entry.name for entry in reviewed.ENTRIES} | set(RULE_SAMPLES) | set(TRUSTED_SAMPLES)
                            | set(REFUSED))
        self.texts = ["append", "extend", "add", "write", "flush", "emit", "handle", "close", "__setstate__",
                      "__reduce__", "__dict__", "__class__", "default_factory", "_initializer", "_initargs", "stream",
                      "handlers", "target", "buffer", "data", "name", "cdata", "_free_weak_ref", "_forward_hooks",
                      "num_workers", "dataset", "n_jobs", "_backend", "baseFilename", "mode", "delay", "directory",
                      "posix", "system", "os", "builtins", "getattr", "w", "x", "", "a|b", "1", "127.0.0.1",
                      str(self.work / "canary"), str(self.work / "sentinel"), str(self.work / "victim"),
                      str(self.work / "victim" / "keep.txt"), "canary", "sentinel"]
        self.kept: collections.deque[Any] = collections.deque(maxlen=2000)
        self.examples = 0
        self._warm_up()
        self.recorder = Recorder()

    def _warm_up(self) -> None:
        """Every module a name names imported, and whatever the loader imports
        lazily on its first loads: none of that is a payload's doing."""
        import os

        os.chdir(self.work)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in self.names:
                try:
                    importlib.import_module(name.partition(":")[0])
                except BaseException:  # noqa: BLE001 - a module that cannot be imported here
                    pass
            for data in (b"\x80\x05}\x94.", b"\x80\x05cposix\nsystem\n.", b"\x80\x05cbuiltins\nlist\n)R."):
                self.plant(data)
                self.attempts(data)
            snapshot()
        gc.collect()
        gc.freeze()  # the libraries' objects: the oracle's collections then see only what loads make

    def plant(self, data: bytes) -> None:
        """`data` as the data.pkl of a checkpoint (written before anything is watched)."""
        from conftest import rewrite_member

        rewrite_member(self.archive, "data.pkl", data)

    def attempts(self, data: bytes) -> list[str]:
        """Each way of loading `data` (planted first); what went wrong other than a refusal."""
        failures = []
        for how, run in (("loads", lambda: ckpt.loads(data)),
                         ("loads trusting sklearn, pandas, torch", lambda: ckpt.loads(data, trust=PACKAGES)),
                         ("load", lambda: ckpt.load(self.archive, trust=PACKAGES))):
            try:
                self.kept.append(run())
            except CkptError:
                pass
            except Exception as exc:  # noqa: BLE001 - anything but a CkptError is a finding
                failures.append(f"{how} raised {type(exc).__name__}: {exc}")
        return failures

    def check(self, data: bytes) -> None:
        self.current.write_bytes(data)
        self.plant(data)
        self.examples += 1
        before, files = snapshot(), tree(self.work)
        with self.recorder as events:
            failures = self.attempts(data)
        failures += events
        diff = difference(before, snapshot())
        if diff:
            failures.append(f"changed the process: {diff}")
        failures += changes(files, tree(self.work))
        assert not failures, "\n".join(failures)

    def at_exit(self) -> None:
        """What interpreter exit does, on everything that loaded."""
        files = tree(self.work)
        with self.recorder as events:
            exit_as_the_interpreter_does(list(self.kept))
            self.kept.clear()
        effects = events + changes(files, tree(self.work))
        assert not effects, f"at exit, after {self.examples} examples (the last is in {self.current}): {effects}"


def harm_pass(seconds: float, current: Path) -> int:
    oracle = HarmOracle(current)

    @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data_only_streams(oracle.names, oracle.texts))
    def harmless(data: bytes) -> None:
        oracle.check(data)

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        harmless()
    oracle.at_exit()
    return oracle.examples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--current", type=Path, default=Path("fuzz-current.pkl"))
    parser.add_argument("--only", choices=["crash", "harm"], default=None)
    args = parser.parse_args()

    @settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(streams())
    def structured(data: bytes) -> None:
        check(data, args.current)

    crash_share = {"crash": 1.0, "harm": 0.0}.get(args.only or "", 0.5)
    started = time.monotonic()
    batches = 0
    while time.monotonic() < started + args.seconds * crash_share / 2:
        structured()
        batches += 1
    rng, pool, count = random.Random(), samples() if crash_share else [], 0
    while pool and time.monotonic() < started + args.seconds * crash_share:
        check(mutate(rng.choice(pool), rng), args.current)
        count += 1
    harm_seconds = args.seconds * (1 - crash_share)
    harmed = harm_pass(harm_seconds, args.current) if harm_seconds else 0
    rate = f" ({harmed / harm_seconds:.0f}/s)" if harm_seconds else ""
    print(f"ok: {batches * 500} structured, {count} mutated and {harmed} harm-checked streams{rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
