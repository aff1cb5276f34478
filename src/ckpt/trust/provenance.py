"""Who wrote a checkpoint, and therefore how it loads.

Decided from the manifest's signature before anything is unpickled:

| the file                                      | loads                     |
|-----------------------------------------------|---------------------------|
| signed by your own key                        | whole (plain pickle)      |
| signed by a public key you trust              | whole (plain pickle)      |
| signed by a key you do not trust              | as data only              |
| altered after signing, unsigned, or legacy    | as data only              |

"Altered" means the signature does not verify under the key the manifest
names: the manifest (and so some member's hash) changed after signing. A
member whose bytes differ from the manifest's hash is refused earlier, by
the archive reader, whoever signed it.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from ckpt.errors import CkptError
from ckpt.format.manifest import Manifest
from ckpt.trust.keys import PublicKey, TrustedKeys, parse_public


class Origin(str, enum.Enum):
    OWN = "own"
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"
    ALTERED = "altered"
    UNSIGNED = "unsigned"
    LEGACY = "legacy"
    """Signed with the shared-secret HMAC of ckpt before Ed25519 signatures: not checkable."""


@dataclass(frozen=True)
class Provenance:
    origin: Origin
    signer: PublicKey | None = None
    trusted_by: str = ""
    """Where the signer was trusted: "your own key", "ckpt key trust", a path given."""

    @property
    def whole(self) -> bool:
        """The file loads whole: its signer is trusted."""
        return self.origin in (Origin.OWN, Origin.TRUSTED)

    def describe(self) -> str:
        """One phrase for reports: who signed it, and whether that is trusted."""
        if self.origin is Origin.OWN:
            return f"signed by you ({self.signer.fingerprint})"  # type: ignore[union-attr]
        if self.origin is Origin.TRUSTED:
            return f"signed by {self.signer.describe()}, trusted ({self.trusted_by})"  # type: ignore[union-attr]
        if self.origin is Origin.UNTRUSTED:
            return f"signed by {self.signer.fingerprint}, a key you do not trust"  # type: ignore[union-attr]
        if self.origin is Origin.ALTERED:
            return "altered after it was signed (its signature does not match its manifest)"
        if self.origin is Origin.LEGACY:
            return "signed with an older ckpt's shared key (CKPT_KEY), which this ckpt does not check"
        return "unsigned"

    def way_forward(self, file: str) -> str:
        """How to make the file load whole, if its writer is to be trusted."""
        vouch = f"`ckpt sign {file}` after `ckpt inspect {file}` (vouch for it yourself)"
        if self.origin is Origin.UNTRUSTED:
            return f"`ckpt key trust THEIR_KEY.pub` with the signer's exported public key, or {vouch}"
        if self.origin is Origin.ALTERED:
            return f"get an unaltered copy, or {vouch}"
        return vouch


def provenance(manifest: Manifest, keys: TrustedKeys) -> Provenance:
    """Who signed `manifest`, and whether `keys` trusts them."""
    signature = manifest.signature
    if signature is None:
        return Provenance(Origin.UNSIGNED)
    if signature.alg != "ed25519":
        return Provenance(Origin.LEGACY)
    try:
        signer = parse_public(signature.public_key, "the manifest's signer")
        value = base64.b64decode(signature.value, validate=True)
    except (CkptError, binascii.Error, ValueError):
        return Provenance(Origin.ALTERED)
    if not signer.verifies(value, manifest.canonical()):
        return Provenance(Origin.ALTERED, signer)
    found = keys.find(signer.line)
    if found is None:
        return Provenance(Origin.UNTRUSTED, signer)
    key, where = found
    origin = Origin.OWN if keys.own is not None and key.line == keys.own.line else Origin.TRUSTED
    return Provenance(origin, key, where)
