"""Signing keys: who wrote a checkpoint.

Every save signs the manifest (which holds the sha256 of every member) with
the user's own Ed25519 key, and a load trusts a file whole only when that
signature verifies under a key the user trusts: their own, or a public key
they chose to trust. Jupyter trusts the notebooks a user produced the same
way; SSH and minisign keys are how people already name a signer.

Where keys live (`home()`): `$CKPT_HOME`, else `$XDG_CONFIG_HOME/ckpt`, else
`~/.config/ckpt`:

    signing-key           the private key (PKCS#8 PEM), mode 0600; made by
                          the first save, never by load, inspect, verify or check
    signing-key.pub       its public key, one OpenSSH line
    trusted-keys/*.pub    public keys trusted with `ckpt key trust FILE`

`CKPT_SIGNING_KEY` (the private key's PEM text, or the path of a file
holding it) replaces the file under the home: for CI and clusters, where
the key comes from a secret store. It is never written anywhere.

Public keys are OpenSSH lines (`ssh-ed25519 AAAA... name`), and fingerprints
are OpenSSH's (`SHA256:...`), so `ssh-keygen -lf key.pub` shows the same one.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckpt.errors import CkptError, ConfigError, SigningKeyError

HOME_VARIABLE = "CKPT_HOME"
KEY_VARIABLE = "CKPT_SIGNING_KEY"
PRIVATE_NAME = "signing-key"
PUBLIC_NAME = "signing-key.pub"
TRUSTED_DIR = "trusted-keys"
ALGORITHM = "ed25519"


def home() -> Path:
    """ckpt's configuration directory (see the module docstring)."""
    explicit = os.environ.get(HOME_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "ckpt"


@dataclass(frozen=True)
class PublicKey:
    """A public key and the name it goes by (its OpenSSH comment)."""

    raw: bytes
    """The 32 bytes of the Ed25519 public key."""
    name: str = ""

    @property
    def line(self) -> str:
        """The OpenSSH line, without the name: what a manifest records."""
        return f"ssh-ed25519 {base64.b64encode(_ssh_blob(self.raw)).decode()}"

    @property
    def fingerprint(self) -> str:
        return _fingerprint(_ssh_blob(self.raw))

    def text(self) -> str:
        """The OpenSSH line with its name: what `ckpt key export` prints."""
        return f"{self.line} {self.name}".rstrip()

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    def describe(self) -> str:
        return f"{self.name} ({self.fingerprint})" if self.name else self.fingerprint


def fingerprint(line: str) -> str:
    """The OpenSSH fingerprint of a public key's OpenSSH line (as a manifest records it)."""
    parts = line.split()
    try:
        return _fingerprint(base64.b64decode(parts[1], validate=True))
    except (IndexError, ValueError):
        return "(not a public key)"


def _fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _ssh_blob(raw: bytes) -> bytes:
    """The key as SSH's wire format writes it (what fingerprints hash)."""
    kind = b"ssh-ed25519"
    return len(kind).to_bytes(4, "big") + kind + len(raw).to_bytes(4, "big") + raw


def parse_public(text: str, source: str) -> PublicKey:
    """A public key from its OpenSSH line (or a PEM `PUBLIC KEY` block);
    a one-line error saying what `source` holds instead."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stripped = text.strip()
    if "PRIVATE KEY" in stripped:
        raise SigningKeyError(f"{source} is a private key: trust its public key instead",
                        hint="`ckpt key export` prints it on the machine that signs")
    try:
        if stripped.startswith("-----BEGIN"):
            key: Any = serialization.load_pem_public_key(stripped.encode())
            name = ""
        else:
            kind, _, rest = stripped.partition(" ")
            blob, _, name = rest.strip().partition(" ")
            key = serialization.load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, TypeError, IndexError):
        raise SigningKeyError(f"{source} is not a public key (expected one line like 'ssh-ed25519 AAAA... name', as "
                        "`ckpt key export` prints)") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm for an RSA or ECDSA key
        raise SigningKeyError(f"{source} is not an Ed25519 public key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{source} is a {type(key).__name__}, not an Ed25519 key: ckpt signs with Ed25519 only")
    return PublicKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw), name.strip())


def read_public(path: str | os.PathLike[str]) -> PublicKey:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read the public key {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_public(text, repr(str(path)))


class SigningKey:
    """The private key save signs with."""

    def __init__(self, private: Any, name: str, source: str) -> None:
        self._private = private
        self.source = source
        """Where it came from (a path, or the environment variable)."""
        from cryptography.hazmat.primitives import serialization

        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = PublicKey(raw, name)

    def sign(self, payload: bytes) -> bytes:
        return self._private.sign(payload)  # type: ignore[no-any-return]


def _load_private(pem: bytes, source: str, name: str) -> SigningKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"the signing key in {source} cannot be read ({exc})",
                        hint="it must be an unencrypted Ed25519 PKCS#8 PEM, as ckpt writes one") from None
    except Exception as exc:
        raise SigningKeyError(f"the signing key in {source} is not supported ({type(exc).__name__})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key in {source} is a {type(private).__name__}, not an Ed25519 key")
    return SigningKey(private, name, source)


def _from_environment() -> SigningKey | None:
    value = os.environ.get(KEY_VARIABLE, "").strip()
    if not value:
        return None
    if value.startswith("-----BEGIN"):
        return _load_private(value.encode(), f"${KEY_VARIABLE}", f"{KEY_VARIABLE}")
    path = Path(value).expanduser()
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"${KEY_VARIABLE} names {value!r}, which cannot be read ({exc.strerror or exc})",
                        hint=f"set {KEY_VARIABLE} to the private key's PEM text, or to the path of a file holding it"
                        ) from None
    return _load_private(pem, str(path), path.name)


def signing_key() -> SigningKey:
    """The key a save signs with: the user's own (`own_key`), made first under
    `home()` if there is none yet."""
    return own_key() or _create(home() / PRIVATE_NAME)


def own_key() -> SigningKey | None:
    """The user's signing key: `$CKPT_SIGNING_KEY`, else the file under
    `home()`; None if there is none (reading never makes one)."""
    key = _from_environment()
    if key is not None:
        return key
    path = home() / PRIVATE_NAME
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {str(path)!r}: {exc.strerror or exc}") from None
    public = home() / PUBLIC_NAME
    name = _name_in(public) if public.is_file() else ""
    return _load_private(pem, str(path), name)


def _name_in(path: Path) -> str:
    with contextlib.suppress(CkptError):
        return read_public(path).name
    return ""


def default_name() -> str:
    """How a new key names its owner: user@host, like ssh-keygen's comment."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "user"
    return f"{user}@{socket.gethostname()}"


def _create(path: Path) -> SigningKey:
    """A new key, written private (0600) and complete before it appears:
    written to a temporary file, then linked into place, which fails if a
    key is there already; two first saves at once never overwrite each
    other's key (the loser uses the winner's)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key = SigningKey(private, default_name(), str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except FileExistsError:
        return signing_key()  # another process made it first: use theirs
    except OSError as exc:
        raise SigningKeyError(f"cannot create the signing key {str(path)!r}: {exc.strerror or exc}",
                              hint=f"set {HOME_VARIABLE} to a writable directory, or {KEY_VARIABLE} to a key") from None
    (path.parent / PUBLIC_NAME).write_text(key.public.text() + "\n", encoding="utf-8")
    return key


# --- trusted public keys ----------------------------------------------------


@dataclass(frozen=True)
class TrustedKeys:
    """Every public key whose signature makes a file load whole."""

    own: PublicKey | None
    """The user's own key (never made by reading: None before the first save)."""
    others: tuple[tuple[PublicKey, str], ...] = ()
    """Each trusted key and where it was trusted (`ckpt key trust`, a flag, [tool.ckpt])."""

    def find(self, line: str) -> tuple[PublicKey, str] | None:
        """The trusted key whose OpenSSH line (without name) is `line`, and where it was trusted."""
        if self.own is not None and self.own.line == line:
            return self.own, "your own key"
        return next(((key, where) for key, where in self.others if key.line == line), None)

    def __iter__(self) -> Iterator[PublicKey]:
        if self.own is not None:
            yield self.own
        yield from (key for key, _ in self.others)


TrustedKey = str | os.PathLike[str] | PublicKey
"""A public key a load trusts: the path of its file, its OpenSSH line, or a PublicKey."""


def trusted_keys(extra: Iterable[TrustedKey] = ()) -> TrustedKeys:
    """The user's own public key, the keys under `trusted-keys/`, and
    `extra` ones: paths of public-key files, OpenSSH lines, or PublicKeys."""
    own = own_key()
    others = [(key, "ckpt key trust") for key in _stored()]
    for item in extra:
        others.append(_extra(item))
    return TrustedKeys(own.public if own else None, tuple(others))


def _extra(item: str | os.PathLike[str] | PublicKey) -> tuple[PublicKey, str]:
    if isinstance(item, PublicKey):
        return item, "given"
    text = os.fspath(item)
    if text.strip().startswith(("ssh-ed25519 ", "-----BEGIN")):
        return parse_public(text, "a trusted key"), "given"
    return read_public(text), text


def _stored() -> list[PublicKey]:
    directory = home() / TRUSTED_DIR
    if not directory.is_dir():
        return []
    return [read_public(path) for path in sorted(directory.glob("*.pub"))]


def trust(path: str | os.PathLike[str], name: str | None = None) -> tuple[PublicKey, Path]:
    """Trust the public key in `path` from now on (copied under `trusted-keys/`)."""
    key = read_public(path)
    if name:
        key = PublicKey(key.raw, name)
    own = own_key()
    if own is not None and own.public.raw == key.raw:
        raise SigningKeyError(f"{str(path)!r} is your own key, which is trusted already")
    directory = home() / TRUSTED_DIR
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = directory / (_file_name(key) + ".pub")
        target.write_text(key.text() + "\n", encoding="utf-8")
    except OSError as exc:
        raise SigningKeyError(f"cannot write under {str(directory)!r}: {exc.strerror or exc}") from None
    return key, target


def _file_name(key: PublicKey) -> str:
    """A file name from the fingerprint (the name may hold anything)."""
    return key.fingerprint.removeprefix("SHA256:").replace("/", "_").replace("+", "-")


def untrust(which: str) -> list[PublicKey]:
    """Stop trusting the stored keys whose fingerprint or name is `which`; the keys removed."""
    removed = []
    directory = home() / TRUSTED_DIR
    for path in sorted(directory.glob("*.pub")) if directory.is_dir() else ():
        key = read_public(path)
        if which in (key.fingerprint, key.fingerprint.removeprefix("SHA256:"), key.name):
            path.unlink()
            removed.append(key)
    if not removed:
        known = ", ".join(k.describe() for k in _stored()) or "none"
        raise ConfigError(f"no trusted key has the fingerprint or name {which!r}", hint=f"trusted keys: {known}")
    return removed
