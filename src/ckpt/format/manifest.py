"""manifest.json: the checkpoint's description of itself, parsed strictly.

Versions, target and root type, the sha256 and size of every member, what
save did not write as it was (substitutions), the versions of the packages
the pickled objects come from, the object count, the arrays written out of
band (by path, dtype and shape: optional), and the Ed25519 signature
over all of it that says who wrote the file (`provenance`; docs/FORMAT.md).
Every problem in a manifest read from a file is a one-line CheckpointError.

Format 2 signs with Ed25519; format 1 (read, never written) signed with an
HMAC of a shared secret and listed the globals and trust the pickle needed.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckpt.errors import CheckpointError, printable

if TYPE_CHECKING:
    from ckpt.trust.keys import SigningKey

FORMAT = "ckpt"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Member:
    sha256: str
    size: int


@dataclass(frozen=True)
class Substitution:
    """Something save did not write as it was: a rewrap, code by value, a strip."""

    path: str
    kind: str
    action: str
    lost: str
    note: str = ""
    also_at: tuple[str, ...] = ()
    registry: str = ""
    """For a strip that took the entry out of its registry: that registry's path."""


@dataclass(frozen=True)
class Array:
    """An array or tensor whose bytes save wrote out of band, described as a
    safetensors header describes one: read without unpickling anything.
    Its elements are `member`'s bytes from `offset` on, laid out by `shape`
    and `strides` (in bytes); tensors that are views of one storage share
    its member."""

    path: str
    """Where it sits in the model, as scan prints paths; "" if save could not place it."""
    type: str
    """Its class: numpy.ndarray, torch.Tensor, torch.nn.parameter.Parameter, ..."""
    dtype: str
    """In its library's spelling: float32, bfloat16, >f4 (a byte order other than this machine's)."""
    shape: tuple[int, ...]
    member: str
    offset: int
    strides: tuple[int, ...]
    nbytes: int
    """Bytes its elements take (a view shows fewer than its member holds)."""
    also_at: tuple[str, ...] = ()


@dataclass(frozen=True)
class Signature:
    """Who signed the manifest: their public key (an OpenSSH line) and the
    signature of `Manifest.canonical()`, base64. `alg` "hmac-sha256" is a
    format-1 signature, kept only to be reported."""

    public_key: str
    value: str
    alg: str = "ed25519"


@dataclass(frozen=True)
class Manifest:
    created: str
    ckpt_version: str
    python: str
    target: str
    root_type: str
    members: dict[str, Member]
    substitutions: tuple[Substitution, ...] = ()
    modules: dict[str, str] = field(default_factory=dict)
    objects: int = 0
    """Objects in data.pkl's memo: what `load` reports without counting again."""
    arrays: tuple[Array, ...] = ()
    """The arrays and tensors in buffer members, by path (optional: older files list none)."""
    stack: int = 0
    """Recursion levels data.pkl was written with, when its graph was too deep for the
    default (`ckpt.objects.stack`): a whole load gives itself as many; 0 otherwise."""
    signature: Signature | None = None
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    as_read: bytes | None = field(default=None, compare=False, repr=False)
    """`canonical()` of the manifest as a file holds it, fields this ckpt does
    not know included (a newer ckpt's): what its signature covers."""

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
                 "also_at": list(s.also_at), **({"registry": s.registry} if s.registry else {})}
                for s in self.substitutions
            ],
            "modules": dict(self.modules),
            "objects": self.objects,
            **({"stack": self.stack} if self.stack else {}),
        }
        if self.arrays:  # absent, not empty, when there are none: the signed bytes of files without it stay as they were
            data["arrays"] = [
                {"path": a.path, "type": a.type, "dtype": a.dtype, "shape": list(a.shape), "member": a.member,
                 "offset": a.offset, "strides": list(a.strides), "nbytes": a.nbytes, "also_at": list(a.also_at)}
                for a in self.arrays
            ]
        if signed and self.signature is not None:
            data["signature"] = {"alg": self.signature.alg, "public_key": self.signature.public_key,
                                 "value": self.signature.value}
        return data

    def canonical(self) -> bytes:
        """The bytes a signature covers: the manifest without its signature,
        as read from a file (`as_read`), else as this ckpt writes it."""
        return self.as_read if self.as_read is not None else _canonical(self.to_dict(signed=False))

    def signed(self, key: SigningKey) -> Manifest:
        """This manifest with `key`'s signature (of everything but the signature)."""
        unsigned = dataclasses.replace(self, signature=None, format_version=FORMAT_VERSION, as_read=None)
        value = base64.b64encode(key.sign(unsigned.canonical())).decode()
        return dataclasses.replace(unsigned, signature=Signature(key.public.line, value))


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
    if version not in READABLE_VERSIONS:
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
                _text(s.get("registry", ""), "registry"),
            )
            for s in _typed(data.get("substitutions", []), list, "substitutions")
        )
        return Manifest(
            created=_text(data["created"], "created"),
            ckpt_version=_text(data["ckpt_version"], "ckpt_version"),
            python=_text(data["python"], "python"),
            target=_text(data["target"], "target"),
            root_type=_text(data["root_type"], "root_type"),
            members=members,
            substitutions=substitutions,
            modules={_text(k, "module"): _text(v, "version") for k, v in
                     _typed(data.get("modules", {}), dict, "modules").items()},
            objects=_int(data.get("objects", 0)),
            arrays=tuple(_array(a, members) for a in _typed(data.get("arrays", []), list, "arrays")),
            stack=_int(data.get("stack", 0)),
            signature=_signature(data.get("signature")),
            format_version=version,
            as_read=_canonical({key: value for key, value in data.items() if key != "signature"}),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"manifest.json is missing or mistypes a field ({exc})") from None


def _canonical(data: dict[str, Any]) -> bytes:
    """What a signature covers: JSON with sorted keys and no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{what} should be a {kind.__name__}")
    return value


def _text(value: Any, what: str) -> str:
    return _typed(value, str, what)


def _array(value: Any, members: dict[str, Member]) -> Array:
    entry = _typed(value, dict, "array")
    member = _text(entry["member"], "member")
    if member not in members:
        raise TypeError(f"an array's member {printable(member)!r} is not one of the file's members")
    shape = tuple(_int(n) for n in _typed(entry["shape"], list, "shape"))
    strides = tuple(_int(n) for n in _typed(entry["strides"], list, "strides"))
    if len(strides) != len(shape):
        raise TypeError("an array's strides and shape differ in length")
    return Array(
        _text(entry["path"], "path"), _text(entry["type"], "type"), _text(entry["dtype"], "dtype"), shape, member,
        _int(entry["offset"]), strides, _int(entry["nbytes"]),
        tuple(_text(p, "also_at") for p in _typed(entry.get("also_at", []), list, "also_at")),
    )


def _signature(value: Any) -> Signature | None:
    if value is None:
        return None
    alg = _typed(value, dict, "signature").get("alg")
    if alg == "hmac-sha256":
        return Signature("", _hex(value.get("value")), alg)
    if alg != "ed25519":
        raise CheckpointError(f"manifest.json: unknown signature algorithm {printable(str(alg))!r}")
    return Signature(_text(value.get("public_key"), "public_key"), _text(value.get("value"), "signature"))


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError("sizes and counts should be non-negative integers")
    return value


def _hex(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise TypeError("sha256 should be 64 lowercase hex digits")
    return value
