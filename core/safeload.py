"""Turn checkpoint bytes into objects without running code nobody trusted.

Loading is parse -> audit -> construct (as in skops): the container has
already checked every member's hash; here the C unpickler runs with a
restricted `find_class` that judges every global before it is imported:

- always denied, whatever is trusted: process, file, network and import
  machinery, evaluators, other deserializers (`DENIED`);
- allowed: safe builtins, collections, datetime, decimal, numpy's rebuild
  functions, the catalog's constructors (`ALLOWED` and the catalog rows);
- trusted by the user: `--trust MODULE` (and its submodules), or the
  manifest's globals when its HMAC signature verifies.

A dotted name (`threading:_os.system`) is judged again by what it resolves
to. A module is never returned. Classes and functions handed out (and the
classes `type(x)` and loggers `getLogger` return) are snapshotted, and if
the pickle applied state to one of them (BUILD on a class would mutate the
running process) the change is undone and the file refused. A refusal lists
every global the file needs that is not trusted (found by replaying the
opcodes with stand-ins, which runs nothing from the file) and the exact
`--trust` that would allow it.

Allowed is not unconditional: callables that are safe only with some
arguments are handed out as guarded stand-ins (`guards`). The unpickler
runs on a stack deep enough that hashing deeply nested tuples cannot crash
the interpreter (`audit.crash_proof`). Who may be loaded is `policy`.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .audit import crash_proof, fresh_extension_cache, referenced_globals
from .errors import CheckpointError, UnsafeCheckpointError, one_line
from .graph import global_name
from .guards import construct_only, guard_for
from .policy import CLASS_PREFIXES, Policy, Refusal, refuse


@dataclass
class _Handed:
    """What find_class gave out, to detect state applied to it."""

    objects: dict[int, tuple[Any, Any]] = field(default_factory=dict)

    def remember(self, obj: Any) -> None:
        if id(obj) not in self.objects and isinstance(obj, (type, types.FunctionType, logging.Logger)):
            self.objects[id(obj)] = (obj, _state_of(obj))

    def undo_changes(self) -> list[str]:
        """Put back anything the load changed on what it was handed; name it."""
        changed = []
        for obj, before in self.objects.values():
            if _identities(_state_of(obj)) != _identities(before):
                _restore(obj, before)
                changed.append(global_name(obj) or repr(obj))
        return changed


_FUNCTION_STATE = ("__defaults__", "__kwdefaults__", "__code__", "__closure__")


def _state_of(obj: Any) -> dict[str, Any]:
    """Its attributes (by identity: comparing values could run their __eq__)."""
    state = dict(vars(obj))
    if isinstance(obj, types.FunctionType):
        state.update({name: getattr(obj, name) for name in _FUNCTION_STATE})
    return state


def _identities(state: dict[str, Any]) -> dict[str, int]:
    return {key: id(value) for key, value in state.items()}


def _restore(obj: Any, before: dict[str, Any]) -> None:
    for key in set(vars(obj)) - set(before):
        delattr(obj, key)
    for key, value in before.items():
        if key != "__closure__" and getattr(obj, key, _MISSING) is not value:
            setattr(obj, key, value)


_MISSING = object()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, policy: Policy, buffers: Iterable[Any] | None, limit: int) -> None:
        super().__init__(file, buffers=buffers)
        self.policy = policy
        self.handed = _Handed()
        self.refused: list[Refusal] = []
        self.missing: str | None = None
        self.limit = limit
        """Bytes a single call may allocate: what the file itself could hold, times 8."""
        self._construct_only: dict[int, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        reason = self.policy.verdict(dotted)
        if reason is not None:
            self.refused.append(Refusal(dotted, reason))
            raise _Refused(dotted)
        obj = self._resolve(module, name)
        if dotted.startswith(CLASS_PREFIXES) and not isinstance(obj, type) and not self._trusted(dotted):
            self.refused.append(Refusal(dotted, "untrusted"))
            raise _Refused(dotted)
        if isinstance(obj, types.ModuleType):
            self.refused.append(Refusal(dotted, "denied"))
            raise _Refused(dotted)
        actual = global_name(obj) if hasattr(obj, "__qualname__") else None
        if actual is not None and actual != dotted and (why := self.policy.verdict(actual)) is not None:
            self.refused.append(Refusal(f"{dotted} (= {actual})", why))
            raise _Refused(dotted)
        self.handed.remember(obj)
        guard = guard_for(obj)
        if guard is not None:
            return guard(obj, self)
        if dotted.startswith(CLASS_PREFIXES) and not self._trusted(dotted):
            return self._construct_only_class(obj)
        return obj

    def _trusted(self, dotted: str) -> bool:
        return any(dotted == t or dotted.startswith(t + ".") for t in self.policy.trust)

    def _construct_only_class(self, cls: type) -> type:
        """One stand-in per class and load (see `guards.construct_only`)."""
        if id(cls) not in self._construct_only:
            self._construct_only[id(cls)] = construct_only(cls)
        return self._construct_only[id(cls)]

    def _resolve(self, module: str, name: str) -> Any:
        try:
            found: Any = importlib.import_module(module)
        except ImportError as exc:
            self.missing = exc.name or module
            raise
        for part in name.split("."):
            found = getattr(found, part)
        return found


class _Refused(Exception):
    pass


def unpickle(data: Any, *, policy: Policy, buffers: Iterable[Any] | None = None, what: str = "data.pkl") -> Any:
    """Unpickle `data` under `policy`; raises UnsafeCheckpointError or CheckpointError."""
    limit = max(len(memoryview(data)), 1) * 8 + sum(memoryview(b).nbytes for b in (buffers or ()))
    unpickler = _RestrictedUnpickler(io.BytesIO(data), policy, buffers, limit)
    try:
        with fresh_extension_cache():
            obj = crash_proof(unpickler.load, data)
    except _Refused:
        raise _refusal(data, policy, unpickler.refused, what) from None
    except ImportError:
        raise CheckpointError(
            f"cannot load {what}: it needs module {unpickler.missing!r}, which is not installed here"
        ) from None
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"cannot load {what}: it is nested too deeply") from None
    except MemoryError:
        raise CheckpointError(f"cannot load {what}: it needs more memory than is available") from None
    except Exception as exc:
        raise CheckpointError(f"cannot load {what}: {type(exc).__name__}: {one_line(str(exc))}") from None
    finally:
        changed = unpickler.handed.undo_changes()
    if changed:
        raise UnsafeCheckpointError(
            f"refusing {what}: it tried to change {', '.join(changed)} in the running process (undone)"
        )
    return obj


def _refusal(data: Any, policy: Policy, seen: list[Refusal], what: str) -> UnsafeCheckpointError:
    """Name every global the file needs that the policy refuses, not just the first."""
    static = referenced_globals(data)
    refusals = set(seen)
    for name in static.names:
        reason = policy.verdict(name)
        if reason is not None:
            refusals.add(Refusal(name, reason))
    return refuse(refusals, what)
