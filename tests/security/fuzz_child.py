"""The loader's fuzzer, run in a child process (a crash must not take pytest with it).

Two passes, each for a share of the time budget:
- structure-aware: hypothesis builds opcode streams from the opcodes and
  the globals a ckpt file may use (reviewed classes and reconstructors,
  memo puts and gets, marks, tuples, calls, state, items);
- mutational: real checkpoints' data.pkl (the samples ckpt writes) with
  bytes flipped, dropped, inserted, duplicated or cut.

The property: `ckpt.core.loads` and `stream.analyse` return or raise a
CkptError, never anything else, save's replay (`reach`) answers alike in C
and in Python, and never crash or hang (the parent kills a
child that overruns its budget; each example is written to `--current`
first, so the one that hung or crashed is known).

    python tests/security/fuzz_child.py --seconds 1800    # the long run (30 minutes)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

import ckpt.core as ckpt
from ckpt.core import reach
from ckpt.core.errors import CkptError
from ckpt.core.stream import analyse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared stream strategy
from opcodes import streams  # noqa: E402

def check(data: bytes, current: Path) -> None:
    current.write_bytes(data)
    analyse(data)  # never raises: problems are data
    replayed(data)
    try:
        ckpt.loads(data)
    except CkptError:
        pass


def replayed(data: bytes) -> None:
    """Save's replay of a stream (core/_reach.c and its Python twin): the
    same answer or both a ReplayError, never a crash."""
    answers: list[Any] = []
    for replay in (reach.replay([0, 3]), reach.Replay([0, 3])):
        try:
            answers.append((replay.feed(data), replay.memo_size))
        except reach.ReplayError:
            answers.append("refused")
    assert answers[0] == answers[1], f"core/_reach.c and core/reach.py disagree: {answers}"


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--current", type=Path, default=Path("fuzz-current.pkl"))
    args = parser.parse_args()

    @settings(max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(streams())
    def structured(data: bytes) -> None:
        check(data, args.current)

    half = time.monotonic() + args.seconds / 2
    batches = 0
    while time.monotonic() < half:
        structured()
        batches += 1
    rng, pool, count = random.Random(), samples(), 0
    end = time.monotonic() + args.seconds / 2
    while time.monotonic() < end:
        check(mutate(rng.choice(pool), rng), args.current)
        count += 1
    print(f"ok: {batches * 500} structured and {count} mutated streams")
    return 0


if __name__ == "__main__":
    sys.exit(main())
