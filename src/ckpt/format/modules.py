"""The packages a checkpoint needs: their versions recorded at save, compared at load."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Iterable

from ckpt.errors import CheckpointError
from ckpt.format.manifest import Manifest


def module_versions(modules: Iterable[str]) -> dict[str, str]:
    """Version of each top-level package of `modules` (not the standard library)."""
    versions = {}
    for top in sorted({name.split(".")[0] for name in modules}):
        if top in sys.stdlib_module_names or top.startswith("_"):
            continue
        version = installed_version(top)
        if version:
            versions[top] = version
    return versions


def installed_version(module: str) -> str | None:
    loaded = sys.modules.get(module)
    with warnings.catch_warnings():  # some packages deprecate __version__ (markupsafe, itsdangerous)
        warnings.simplefilter("ignore")
        version = getattr(loaded, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        return dist_version(module)
    except (PackageNotFoundError, ValueError):
        return None


def require_modules(manifest: Manifest, what: str) -> None:
    """Refuse up front, naming the version it was saved with, a checkpoint
    that needs a package this environment does not have."""
    for module, version in sorted(manifest.modules.items()):
        if module not in sys.modules and importlib.util.find_spec(module) is None:
            raise CheckpointError(
                f"cannot load {what}: it needs {module} (saved with version {version}), which is not installed here",
                hint=f"pip install '{module}=={version}'",
            )


def version_warnings(manifest: Manifest) -> list[str]:
    """Modules whose installed version differs from the one the checkpoint was saved with."""
    warnings = []
    for module, saved in sorted(manifest.modules.items()):
        here = installed_version(module)
        if here != saved:
            warnings.append(f"{module} was {saved} when saved and is {here or 'not installed'} here")
    return warnings
