"""The loader's fuzzer, run in a child process (a crash must not take pytest with it).

Two passes, each for a share of the time budget:
- structure-aware: hypothesis builds opcode streams from the opcodes and
  the globals a ckpt file may use (reviewed classes and reconstructors,
  memo puts and gets, marks, tuples, calls, state, items);
- mutational: real checkpoints' data.pkl (the samples ckpt writes) with
  bytes flipped, dropped, inserted, duplicated or cut.

The property: `ckpt.core.loads` and `stream.analyse` return or raise a
CkptError, never anything else, and never crash or hang (the parent kills a
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
from hypothesis import strategies as st

import ckpt.core as ckpt
from ckpt.core.errors import CkptError
from ckpt.core.stream import analyse

GLOBALS = [
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "deque"), ("builtins", "slice"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "int"), ("builtins", "bytes"), ("builtins", "getattr"),
    ("builtins", "type"), ("builtins", "iter"), ("builtins", "next"), ("builtins", "map"), ("fractions", "Fraction"),
    ("decimal", "Decimal"), ("re", "_compile"), ("functools", "partial"), ("_thread", "allocate_lock"),
    ("threading", "Condition"), ("types", "SimpleNamespace"), ("datetime", "timedelta"), ("uuid", "UUID"),
    ("_io", "StringIO"), ("logging", "getLogger"), ("logging", "StreamHandler"), ("queue", "Queue"),
    ("posix", "system"), ("builtins", "eval"),
]

OPS: list[bytes] = [
    b"(", b")", b"]", b"}", b"N", b"\x88", b"\x89", b"t", b"\x85", b"\x86", b"\x87", b"l", b"d", b"a", b"e", b"s",
    b"u", b"b", b"R", b"\x81", b"\x92", b"0", b"1", b"2", b"\x94", b"\x8f", b"\x90", b"\x91", b"\x93",
]


def _op(draw: Any) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return draw(st.sampled_from(OPS))
    if kind == 4:
        module, name = draw(st.sampled_from(GLOBALS))
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    if kind == 5:
        text = draw(st.sampled_from(["a", "x", "1.5", "append", "keys", "__init__", "_private", "a|b", "posix"]))
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw
    if kind == 6:
        return b"K" + bytes([draw(st.integers(0, 255))])
    if kind == 7:
        return draw(st.sampled_from([b"q", b"h"])) + bytes([draw(st.integers(0, 8))])
    if kind == 8:
        return b"\x8a\x10" + (draw(st.integers(0, 2**60)) * (2**61 - 1)).to_bytes(16, "little")  # colliding hashes
    return b"G" + draw(st.binary(min_size=8, max_size=8))


@st.composite
def streams(draw: Any) -> bytes:
    return b"\x80\x05" + b"".join(_op(draw) for _ in range(draw(st.integers(1, 60)))) + b"."


def check(data: bytes, current: Path) -> None:
    current.write_bytes(data)
    analyse(data)  # never raises: problems are data
    try:
        ckpt.loads(data)
    except CkptError:
        pass


def samples() -> list[bytes]:
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sample_models import kinds, nested, service

    out = [ckpt.dumps(service.build()), ckpt.dumps({"lock": threading.Lock(), "n": [1, 2.5, "x", None]})]
    for name, factory in kinds.FACTORIES.items():
        try:
            out.append(ckpt.dumps(factory()))
        except CkptError:
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
