"""Loading a file from anyone but a trusted signer: as data only.

parse -> audit -> construct, as in skops:

1. parse: `analysis.analyse` reads data.pkl's opcodes and lists every global
   with each use the stream makes of it, and anything no ordinary pickle
   does (state given to a global, a call of a computed object, ...);
2. audit: `policy.judge` resolves each global by exact identity against
   the reviewed table and the user's `trust`; a refusal stops the load
   here, before any array is read, naming every refused global at once,
   why the file is not trusted whole, and both ways forward (trust its
   signer, or trust these exact names);
3. construct: the data-only unpickler (`unpickler`) runs the stream itself,
   checking each call, state and item as it happens, in a sandbox
   (`sandbox`) that refuses what no data load does.

The analysis is the plan and the unpickler the check: where the two could
disagree (the analysis predicts; the unpickler has the real objects), the
unpickler decides, so nothing rests on the prediction being complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ckpt.errors import (
    Argument,
    CheckpointError,
    UnsafeCheckpointError,
    one_line,
    printable,
)
from ckpt.moved import current
from ckpt.trust import sandbox
from ckpt.trust.analysis import CALL, StreamFacts, analyse
from ckpt.trust.entries import CLASS
from ckpt.trust.guards import Context
from ckpt.trust.policy import CODE_BY_VALUE, Judgement, Trust, judge, narrowest
from ckpt.trust.provenance import Origin, Provenance
from ckpt.trust.unpickler import DataUnpickler


@dataclass(frozen=True)
class Loaded:
    obj: Any
    warnings: tuple[str, ...] = ()
    """What the file held that did not come back (a function it named, restored as None)."""


@dataclass(frozen=True)
class Plan:
    """An audited data.pkl, ready to be built."""

    data: Any
    judgement: Judgement
    trust: Trust
    what: str

    @property
    def calls_exact_trust(self) -> bool:
        """Whether the file calls a name the user trusts exactly: its effects
        are the user's to accept, so the kernel's jail, which every thread it
        starts would inherit, is not applied (the audit hook still is)."""
        return any(a.source == f"--trust {current(a.name)}" and a.uses & CALL for a in self.judgement.admissions.values())

    def construct(self, buffers: Iterable[Any] | None = None) -> Loaded:
        buffers = list(buffers) if buffers is not None else None
        limit = max(len(memoryview(self.data)), 1) * 8 + sum(memoryview(b).nbytes for b in (buffers or ()))
        admitted = {id(a.obj) for a in self.judgement.admissions.values() if a.kind == CLASS}
        unpickler = DataUnpickler(self.data, self.judgement.admissions, self.trust, Context(limit, admitted), buffers)
        try:
            obj = sandbox.run(unpickler.load, bytes(self.data), kernel=not self.calls_exact_trust)
        except CheckpointError as exc:
            raise type(exc)(f"cannot load {self.what} as data: {exc.message}", hint=exc.hint,
                            arguments=exc.arguments) from None
        except RecursionError:
            raise CheckpointError(f"cannot load {self.what}: it is nested too deeply") from None
        except MemoryError:
            raise CheckpointError(f"cannot load {self.what}: it needs more memory than is available") from None
        except Exception as exc:
            raise CheckpointError(f"cannot load {self.what} as data: {type(exc).__name__}: "
                                  f"{one_line(str(exc))}") from None
        return Loaded(obj, tuple(unpickler.warnings))


def audit(data: Any, trust: Trust, origin: Provenance, what: str, facts: StreamFacts | None = None) -> Plan:
    """Parse and audit `data` for a data-only load; UnsafeCheckpointError
    (or CheckpointError, for a malformed stream) naming everything refused."""
    judgement = judge(facts or analyse(data), trust, complete=False)
    if not judgement.ok:
        raise refusal(judgement, what, origin)
    return Plan(data, judgement, trust, what)


BYTES = "the pickle"
"""What a refusal calls bytes given to `loads`: they have no file to sign."""


def unpickle(data: Any, *, trust: Trust, buffers: Iterable[Any] | None = None) -> Any:
    """A pickle that comes with no signature (`loads`), as data only."""
    return audit(data, trust, Provenance(Origin.UNSIGNED), BYTES).construct(buffers).obj


def refusal(judgement: Judgement, what: str, origin: Provenance) -> CheckpointError:
    """One line: why the file loads as data only, every refused global, and the ways forward."""
    if judgement.malformed:
        return CheckpointError(f"cannot load {what}: data.pkl {judgement.malformed} (damaged, or not a pickle)")
    why = f"refusing to load {what}: it is {origin.describe()}, so it loads as data only"
    if what == BYTES:
        whole = ("bytes carry no signature, so they load as data only; to load them whole, if you trust whoever "
                 "made them: pickle.loads, or share a signed file (ckpt.save) instead")
    else:
        whole = f"to load it whole, if you trust whoever wrote it: {origin.way_forward(what)}"
    if judgement.code:  # nothing admits it as data: the other refusals would only distract
        return UnsafeCheckpointError(f"{why}, and data.pkl holds {CODE_BY_VALUE}, which loads only from a signer "
                                     "you trust", hint=whole)
    refused = sorted(judgement.refusals, key=lambda r: r.name)
    reasons = [f"data.pkl {p}" for p in judgement.problems]
    if refused:
        reasons.append(f"data.pkl needs {len(refused)} global(s) ckpt does not load as data: "
                       + "; ".join(f"{printable(r.name)} {r.why}" for r in refused))
    flags = narrowest(r.trust for r in refused if r.trust)
    trust = Argument("trust", list(flags))
    liftable = flags and not judgement.problems and all(r.trust for r in refused)  # else trusting them is not enough
    names = f"; or, as data, trust just these names: {trust}" if liftable else ""
    return UnsafeCheckpointError(f"{why}, and " + "; and ".join(reasons), hint=whole + names,
                                 arguments=[trust] if names else ())
