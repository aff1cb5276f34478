"""`[tool.ckpt]` in pyproject.toml, read with tomllib and checked strictly.

    [tool.ckpt]
    targets = ["mypkg.model:build"]          # must be checkpointable
    checkpoints = ["models/*.ckpt"]          # must verify (globs, relative to this file)
    trust = ["mypkg"]                        # packages (their classes) or module:Name, for files loaded as data
    trusted-keys = ["keys/alice.pub"]        # public keys whose signed files load whole (paths, or OpenSSH lines)
    strip = ["mypkg.model:build=model.log_file"]   # allowed strips, per target
    fail-on = "error"                        # or "any": every finding fails

    [tool.ckpt.storage-options.s3]           # fsspec options per URL scheme, for save, load and inspect
    endpoint_url = "http://127.0.0.1:9000"

The nearest pyproject.toml from the current directory upward is used
(`--config PATH` overrides). Wrong types and malformed strip entries are
configuration errors naming the key and the file. An unknown key (a typo, or
a key of a newer ckpt) is an error only when `strict` (`ckpt check`, which
exists to catch it); otherwise it is kept in `Config.unknown` for the CLI to
warn about, and `save` and `load` go on.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckpt.errors import ConfigError
from ckpt.format.remote import is_url, protocol
from ckpt.objects.paths import STARTS
from ckpt.trust.policy import Trust

FAIL_ON = ("error", "any")
_KEYS = {"targets", "checkpoints", "trust", "trusted-keys", "strip", "fail-on", "storage-options"}


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    targets: tuple[str, ...] = ()
    checkpoints: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()
    trusted_keys: tuple[str, ...] = ()
    """Public keys (OpenSSH lines, or paths made absolute from the file's directory)."""
    strip: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fail_on: str = "error"
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """URL scheme (`s3`) -> the fsspec options for its filesystem."""
    unknown: tuple[str, ...] = ()
    """Keys of [tool.ckpt] that ckpt does not know (ignored)."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """One line per unknown key, naming the nearest valid one."""
        return tuple(f"{_unknown(self.path, key)} (ignored)" for key in self.unknown)

    @property
    def root(self) -> Path:
        """Where relative paths and targets are resolved: the file's directory."""
        return self.path.parent if self.path else Path.cwd()

    def storage_options_for(self, url: str) -> dict[str, Any] | None:
        """The fsspec options this file gives `url`'s scheme (a copy); None
        for a local path, which has none."""
        if not is_url(url):
            return None
        return dict(self.storage_options.get(protocol(url), {}))

    def checkpoint_matches(self) -> dict[str, list[Path]]:
        """Each `checkpoints` pattern with the files it matches (maybe none:
        `ckpt check` reports a pattern that matches nothing)."""
        return {pattern: sorted(p for p in self.root.glob(pattern) if p.is_file()) for pattern in self.checkpoints}


def find(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml at or above `start`."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(path: Path | None = None, *, start: Path | None = None, strict: bool = False) -> Config:
    """Read `[tool.ckpt]` from `path`, or from the nearest pyproject.toml;
    `strict`: an unknown key is an error too."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"no such configuration file: {str(path)!r}")
    path = Path(path) if path is not None else find(start)
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    section = document.get("tool", {}).get("ckpt", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.ckpt] must be a table")
    return _parse(path, section, strict)


def _unknown(path: Path | None, key: str) -> str:
    nearest = difflib.get_close_matches(key, sorted(_KEYS), n=1)
    guess = f"did you mean {nearest[0]!r}?" if nearest else f"known keys: {', '.join(sorted(_KEYS))}"
    return f"{path}: unknown key {key!r} in [tool.ckpt]; {guess}"


def _parse(path: Path, section: dict[str, Any], strict: bool) -> Config:
    unknown = tuple(sorted(set(section) - _KEYS))
    if unknown and strict:
        raise ConfigError(_unknown(path, unknown[0]))
    fail_on = section.get("fail-on", "error")
    if fail_on not in FAIL_ON:
        raise ConfigError(f"{path}: [tool.ckpt] fail-on must be \"error\" or \"any\", not {fail_on!r}")
    return Config(
        path=path,
        targets=_strings(path, section, "targets"),
        checkpoints=_patterns(path, _strings(path, section, "checkpoints")),
        trust=_trust(path, _strings(path, section, "trust")),
        trusted_keys=_keys(path, _strings(path, section, "trusted-keys")),
        strip=_strips(path, _strings(path, section, "strip")),
        fail_on=fail_on,
        storage_options=_storage_options(path, section.get("storage-options", {})),
        unknown=unknown,
    )


def _strings(path: Path, section: dict[str, Any], key: str) -> tuple[str, ...]:
    value = section.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{path}: [tool.ckpt] {key} must be a list of non-empty strings")
    return tuple(value)


def _patterns(path: Path, patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        if Path(pattern).is_absolute():
            raise ConfigError(
                f"{path}: [tool.ckpt] checkpoints pattern {pattern!r} must be relative to the file's directory"
            )
    return patterns


def _trust(path: Path, entries: tuple[str, ...]) -> tuple[str, ...]:
    try:
        Trust.parse(entries)
    except ConfigError as exc:
        raise ConfigError(f"{path}: [tool.ckpt] {exc.message}", hint="write mypkg or mypkg.module:Name") from None
    return entries


def _keys(path: Path, entries: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry an OpenSSH public-key line as it is, or a file relative to the configuration's directory."""
    return tuple(entry if entry.lstrip().startswith("ssh-") else str(path.parent / entry) for entry in entries)


def _strips(path: Path, entries: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    strips: dict[str, list[str]] = {}
    for entry in entries:
        target, sep, object_path = entry.partition("=")
        if not sep or not target.strip() or not object_path.strip().startswith(STARTS):
            raise ConfigError(
                f"{path}: [tool.ckpt] strip entry {entry!r} must be \"TARGET=PATH\"",
                hint='e.g. "mypkg.model:build=model.log_file"',
            )
        strips.setdefault(target.strip(), []).append(object_path.strip())
    return {target: tuple(paths) for target, paths in strips.items()}


def _storage_options(path: Path, value: Any) -> dict[str, dict[str, Any]]:
    """A table of tables: `[tool.ckpt.storage-options.s3]` holds the options for s3:// URLs."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f"{path}: [tool.ckpt] storage-options must be a table of tables, one per URL scheme",
                          hint='e.g. [tool.ckpt.storage-options.s3] with endpoint_url = "http://127.0.0.1:9000"')
    return {scheme.lower(): dict(options) for scheme, options in value.items()}
