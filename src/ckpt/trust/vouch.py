"""Vouching for a checkpoint: signing a file you did not save with your own key.

`jupyter trust notebook.ipynb` is how a user says "I have looked at this
notebook; run it". `ckpt sign FILE` is the same for a checkpoint written
before ckpt signed files, or by someone whose key you do not hold: after
`ckpt inspect` shows what it names, the file is rewritten (atomically)
with the same members and a manifest signed by your key, so it loads whole
for you, and for whoever trusts your key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ckpt.errors import CheckpointError
from ckpt.format.archive import DATA, ArchiveWriter, open_archive
from ckpt.format.atomic import atomic_write
from ckpt.format.manifest import Manifest
from ckpt.trust.keys import signing_key, trusted_keys
from ckpt.trust.provenance import Provenance, provenance


@dataclass(frozen=True)
class Vouched:
    path: str
    before: Provenance
    """Who had signed it."""
    manifest: Manifest
    """The manifest now, signed by you."""


def vouch(path: str | os.PathLike[str]) -> Vouched:
    """Sign the checkpoint at `path` with your own key (made if you have
    none), keeping every member as it is. Refused if any member does not
    match its hash: vouching never blesses a damaged file."""
    key = signing_key()
    with open_archive(path) as archive:
        damaged = archive.hash_failures()
        if damaged:
            raise CheckpointError(f"refusing to sign {path}: {damaged[0]}",
                                  hint="vouch only for a file that is intact")
        before = provenance(archive.manifest, trusted_keys())
        with atomic_write(Path(path), overwrite=True) as file, ArchiveWriter(file, durable=True) as writer:
            with writer.stream(DATA) as stream:
                stream.write(archive.mapped(DATA))
            for name in archive.buffer_names:
                writer.buffer(name, archive.mapped(name))
            if writer.members != archive.manifest.members:
                raise CheckpointError(f"refusing to sign {path}: its members changed while it was copied")
            manifest = archive.manifest.signed(key)
            writer.finish(manifest)
    return Vouched(str(path), before, manifest)
