"""copy.deepcopy inside registered(): copyreg's reducers make a copy with
fresh primitives, shared within the copy as in the original, that work
across real threads; copy.copy stays shallow."""

from __future__ import annotations

import copy
import threading

import pytest
from conftest import sample

import ckpt
from ckpt.kinds import catalog
from ckpt.kinds.catalog import Action
from sample_models.parallel import busy_throttle, exercise

COVERED = [kind for kind in catalog.KINDS if kind.action in (Action.REWRAP, Action.STRIP) and not kind.for_files]
"""The kinds a registered deepcopy handles: rewrapped or stripped (multiprocessing's
are left to it; code, which `copy` never copies, is no concern of it)."""

THE_SAME = {"std-stream", "weakref", "module", "lru-cache"}
"""Kinds whose copy is the original: the process's own stream, a weak
reference (atomic to `copy`: it keeps referring to the original), a
module (imported again by its name: the same one), and an lru_cache
wrapper (its own `__deepcopy__` returns it, as `copy` does any function)."""


def test_deepcopy_fails_without_register() -> None:
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock' object"):
        copy.deepcopy(busy_throttle())


def test_deepcopy_has_fresh_primitives_shared_as_in_the_original() -> None:
    """One lock behind two attributes and a Condition is one new lock behind
    the same three; it is free though the original's is held; the queue and
    the semaphore kept their state; the original is untouched."""
    throttle = busy_throttle()
    with ckpt.registered():
        twin = copy.deepcopy(throttle)
    assert twin.lock is not throttle.lock
    report = exercise(twin)  # two real threads in this process
    report.pop("pid")
    assert report == {"lock_excludes": True, "lock_shared": True, "jobs": ["resize", "encode"], "free_slots": 2}
    assert throttle.lock.locked() and list(throttle.jobs.queue) == ["resize", "encode"]


@pytest.mark.parametrize("kind", COVERED, ids=lambda kind: kind.name)
def test_every_covered_kind_deep_copies_to_a_working_one(kind: catalog.Kind) -> None:
    """The catalog's probe (what verify runs on a loaded checkpoint) passes
    on the copy; a stripped kind is None in it, as in a checkpoint."""
    holder = sample(kind.name)
    with ckpt.registered():
        twin = copy.deepcopy(holder)
    if kind.action is Action.STRIP:
        assert twin.value is None
        return
    assert (twin.value is holder.value) == (kind.name in THE_SAME)
    assert kind.probe is not None
    kind.probe(twin.value)


def test_weak_references_keep_referring_to_the_originals() -> None:
    """Python's own rule for them, which register() leaves alone."""
    ref, container = sample("weakref").value, sample("weak-container").value
    with ckpt.registered():
        twin_ref, twin_container = copy.deepcopy([ref, container])
    assert twin_ref() is ref() is not None
    assert twin_container is not container and list(twin_container.values()) == list(container.values())
    assert all(a is b for a, b in zip(twin_container.values(), container.values()))


@pytest.mark.parametrize("kind", [k for k in catalog.KINDS if k.for_files], ids=lambda kind: kind.name)
def test_multiprocessing_primitives_are_still_refused(kind: catalog.Kind) -> None:
    """multiprocessing refuses to copy its own: register() leaves them to it."""
    with ckpt.registered(), pytest.raises(RuntimeError, match="shared between processes through inheritance"):
        copy.deepcopy(sample(kind.name))


def test_copy_copy_is_shallow_and_a_primitive_alone_comes_back_fresh() -> None:
    throttle = busy_throttle()
    with ckpt.registered():
        shallow = copy.copy(throttle)
        lock = copy.copy(throttle.lock)
        condition = copy.copy(throttle.changed)
    assert shallow is not throttle and shallow.lock is throttle.lock and shallow.jobs is throttle.jobs
    assert type(lock) is type(throttle.lock) and lock.acquire(blocking=False)  # fresh: the original is held
    assert condition is not throttle.changed and condition._lock is throttle.lock  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="cannot pickle"):
        copy.copy(threading.Lock())
