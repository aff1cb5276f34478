"""Inspect a checkpoint: who signed it, so how it would load, and what a
load as data would admit, read from the stream's opcodes. Nothing in the
file is built, imported or run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ckpt.format.archive import DATA
from ckpt.format.files import Readable, StorageOptions, display_name, opened
from ckpt.format.manifest import Manifest
from ckpt.trust.analysis import StreamFacts, analyse
from ckpt.trust.keys import TrustedKey
from ckpt.trust.keys import trusted_keys as known_keys
from ckpt.trust.policy import Judgement, Trust, judge, require_installed
from ckpt.trust.provenance import Origin, Provenance, provenance


@dataclass(frozen=True)
class GlobalVerdict:
    """What the loader would do with one global of data.pkl."""

    name: str
    uses: tuple[str, ...]
    admitted: bool
    why: str
    """The reviewed reason or trust entry that admits it, or why it is refused."""
    trust: str | None = None
    """For a refused global: the narrowest --trust that admits it."""


@dataclass(frozen=True)
class Inspection:
    path: str
    size: int
    manifest: Manifest
    provenance: Provenance
    globals: tuple[GlobalVerdict, ...]
    """What data.pkl names, each judged as the data-only unpickler would (a
    file from a trusted signer loads whole, and its verdicts are only advice)."""
    problems: tuple[str, ...]
    """Integrity problems; for a file that would load as data only, also what
    no pickle of ordinary objects does and globals ckpt would never load."""
    untrusted: tuple[str, ...]
    """Globals that need --trust to load as data."""
    analysis_failed: str | None = None
    """Why data.pkl could not be read opcode by opcode (then nothing about it is known for sure)."""

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def inspect(path: Readable, *, trust: Iterable[str] = (), trusted_keys: Iterable[TrustedKey] = (),
            storage_options: StorageOptions = None) -> Inspection:
    """Describe a checkpoint (at a path or URL, or in a file object, as
    `load` reads one): who signed it, so how it would load, and what
    loading it as data under `trust` would admit, without running anything
    in it: the data-only loader's own analysis; nothing from the file is
    built or imported."""
    given = Trust.parse(trust)
    require_installed(given)
    with opened(path, storage_options) as archive:
        problems = archive.hash_failures()
        origin = provenance(archive.manifest, known_keys(trusted_keys))
        if origin.origin is Origin.ALTERED:
            problems.append(f"it was {origin.describe()}")
        data = bytes(archive.mapped(DATA))  # as stored: inspect shows damaged files too
        facts = analyse(data)
        verdicts = _verdicts(facts, judge(facts, given, imports=False))
        if facts.malformed:
            problems.append(f"data.pkl {facts.malformed}")
        elif not origin.whole:
            problems += [f"data.pkl {p}" for p in facts.problems]
            problems += [f"{v.name} {v.why}, and ckpt never loads it as data" for v in verdicts
                         if not v.admitted and not v.trust]
        untrusted = tuple(v.name for v in verdicts if v.trust)
        return Inspection(display_name(path), archive.size, archive.manifest, origin, verdicts, tuple(problems), untrusted,
                          facts.malformed)


def _verdicts(facts: StreamFacts, judgement: Judgement) -> tuple[GlobalVerdict, ...]:
    refused = {r.name: r for r in judgement.refusals}
    verdicts = []
    for name in facts.globals:
        uses = tuple(facts.uses(name))
        if name in judgement.admissions:
            verdicts.append(GlobalVerdict(name, uses, True, judgement.admissions[name].source))
        else:
            verdicts.append(GlobalVerdict(name, uses, False, refused[name].why, refused[name].trust))
    return tuple(verdicts)
