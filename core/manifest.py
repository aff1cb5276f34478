"""manifest.json: the checkpoint's description of itself, parsed strictly.

Versions, target and root type, the sha256 and size of every member, what
save did not write as it was (substitutions), the globals the pickle names,
the module versions, the object count, and an optional HMAC-SHA256
signature over all of it (docs/FORMAT.md). Every problem in a manifest read
from a file is a one-line CheckpointError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError

FORMAT = "ckpt"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int


@dataclass(frozen=True)
class Substitution:
    """Something save did not write as it was: a rewrap or a strip."""

    path: str
    kind: str
    action: str
    lost: str
    note: str = ""
    also_at: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    created: str
    ckpt_version: str
    python: str
    target: str
    root_type: str
    members: dict[str, Member]
    substitutions: tuple[Substitution, ...] = ()
    globals: tuple[str, ...] = ()
    modules: dict[str, str] = field(default_factory=dict)
    objects: int = 0
    """Objects in data.pkl's memo: what `load` reports without counting again."""
    trust: tuple[str, ...] = ()
    """The --trust entries loading needs beyond ckpt's reviewed table (what save found)."""
    signature: str | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self, *, signed: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": self.format,
            "format_version": self.format_version,
            "created": self.created,
            "ckpt_version": self.ckpt_version,
            "python": self.python,
            "target": self.target,
            "root_type": self.root_type,
            "members": {name: {"sha256": m.sha256, "size": m.size} for name, m in self.members.items()},
            "substitutions": [
                {"path": s.path, "kind": s.kind, "action": s.action, "lost": s.lost, "note": s.note,
                 "also_at": list(s.also_at)}
                for s in self.substitutions
            ],
            "globals": list(self.globals),
            "modules": dict(self.modules),
            "objects": self.objects,
            "trust": list(self.trust),
        }
        if signed and self.signature is not None:
            data["signature"] = {"alg": "hmac-sha256", "value": self.signature}
        return data

    def canonical(self) -> bytes:
        """The bytes a signature covers: the manifest without its signature."""
        return json.dumps(self.to_dict(signed=False), sort_keys=True, separators=(",", ":")).encode()

    def sign(self, key: bytes) -> Manifest:
        digest = hmac.new(key, self.canonical(), hashlib.sha256).hexdigest()
        return dataclasses.replace(self, signature=digest)

    def signature_valid(self, key: bytes) -> bool:
        if self.signature is None:
            return False
        expected = hmac.new(key, self.canonical(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and validate manifest.json; every problem is a CheckpointError."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError, and integers too long to convert
        raise CheckpointError(f"manifest.json is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError("manifest.json is nested too deeply to be a ckpt manifest") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("manifest.json does not describe a ckpt checkpoint (format is not 'ckpt')")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format_version {version!r} is not supported (this ckpt reads version {FORMAT_VERSION})",
            hint="upgrade ckpt" if isinstance(version, int) and version > FORMAT_VERSION else None,
        )
    try:
        members = {
            _text(name, "member name"): Member(_hex(m["sha256"]), _int(m["size"]))
            for name, m in _typed(data["members"], dict, "members").items()
        }
        substitutions = tuple(
            Substitution(
                _text(s["path"], "path"), _text(s["kind"], "kind"), _text(s["action"], "action"),
                _text(s.get("lost", ""), "lost"), _text(s.get("note", ""), "note"),
                tuple(_text(p, "also_at") for p in _typed(s.get("also_at", []), list, "also_at")),
            )
            for s in _typed(data.get("substitutions", []), list, "substitutions")
        )
        signature = data.get("signature")
        if signature is not None:
            if _typed(signature, dict, "signature").get("alg") != "hmac-sha256":
                raise CheckpointError("manifest.json: unknown signature algorithm")
            signature = _hex(signature.get("value"))
        return Manifest(
            created=_text(data["created"], "created"),
            ckpt_version=_text(data["ckpt_version"], "ckpt_version"),
            python=_text(data["python"], "python"),
            target=_text(data["target"], "target"),
            root_type=_text(data["root_type"], "root_type"),
            members=members,
            substitutions=substitutions,
            globals=tuple(_text(g, "global") for g in _typed(data.get("globals", []), list, "globals")),
            modules={_text(k, "module"): _text(v, "version") for k, v in
                     _typed(data.get("modules", {}), dict, "modules").items()},
            objects=_int(data.get("objects", 0)),
            trust=tuple(_trust_entry(t) for t in _typed(data.get("trust", []), list, "trust")),
            signature=signature,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"manifest.json is missing or mistypes a field ({exc})") from None


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{what} should be a {kind.__name__}")
    return value


def _text(value: Any, what: str) -> str:
    return _typed(value, str, what)


def _trust_entry(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?", value):
        raise TypeError("trust entries should be package or module:qualname names")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError("sizes and counts should be non-negative integers")
    return value


def _hex(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise TypeError("sha256 should be 64 lowercase hex digits")
    return value
