"""The benchmark's models: deterministic factories, importable as ckpt targets.

Each factory builds one model in up to four variants, so every tool is
measured on the same data:

- ``as_is``: what users have — thread primitives inside; plain pickle fails.
- ``fixed``: the same classes with hand-written ``__getstate__`` /
  ``__setstate__`` that drop the primitives and recreate them on load (the
  lower bound a user gets by hand: the plain-pickle baseline).
- ``clean`` (object-heavy only): no primitives at all, for scan's clean case.
- ``weights`` (torch only): just the module's ``state_dict()``, what
  ``torch.load(weights_only=True)`` is made for.

The plain-named callables (``object_heavy``, ``array_heavy``, …) take no
arguments, so ``ckpt scan bench.models:object_heavy`` works from the
repository root; the keyword arguments only shrink models for ``--quick``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

MIB = 1 << 20
_TAGS = ("train", "eval", "serve", "cache", "index", "shard", "user", "item")


class HandFixed:
    """What a user writes by hand: drop the attributes pickle refuses, recreate them on load.

    Subclasses name the attributes and how to make a fresh one in `_recreate`.
    """

    _recreate: dict[str, Callable[[], Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._recreate:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name, make in self._recreate.items():
            setattr(self, name, make())


def _check_variant(variant: str, allowed: tuple[str, ...]) -> None:
    if variant not in allowed:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(allowed)}")


# --- (a) object-heavy ---------------------------------------------------------


class Item:
    """One small record: the bulk of the object-heavy model."""

    def __init__(self, ident: int, score: float, tag: str) -> None:
        self.ident = ident
        self.score = score
        self.tag = tag


class Shard:
    """A group of items guarded by a lock (None in the clean variant)."""

    def __init__(self, items: list[Item], lock: Any) -> None:
        self.items = items
        self.lock = lock
        self.hits = 0


class FixedShard(HandFixed, Shard):
    _recreate = {"lock": threading.Lock}


class Store:
    """The object-heavy model: shards of items, and a name."""

    def __init__(self, shards: list[Shard], name: str) -> None:
        self.shards = shards
        self.name = name


def object_heavy(items: int = 300_000, locks: int = 1_000, seed: int = 0, *, variant: str = "as_is") -> Store:
    """`items` small objects split at random into `locks` shards, one lock each."""
    import random

    _check_variant(variant, ("as_is", "fixed", "clean"))
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, items), locks - 1)) if locks > 1 else []
    shard_cls = FixedShard if variant == "fixed" else Shard
    shards = []
    for start, stop in zip([0, *cuts], [*cuts, items]):
        members = [Item(i, rng.random(), rng.choice(_TAGS)) for i in range(start, stop)]
        shards.append(shard_cls(members, None if variant == "clean" else threading.Lock()))
    return Store(shards, f"store-{seed}")


# --- (b) array-heavy ----------------------------------------------------------


class ArrayModel:
    """Weights in numpy arrays, plus the serving machinery around them."""

    def __init__(self, weights: dict[str, Any]) -> None:
        self.weights = weights
        self.config = {"batch": 32, "labels": list(_TAGS)}
        self.lock = threading.RLock()
        self.requests: queue.Queue[Any] = queue.Queue(maxsize=64)
        self.pool = ThreadPoolExecutor(max_workers=2)


class FixedArrayModel(HandFixed, ArrayModel):
    _recreate = {
        "lock": threading.RLock,
        "requests": functools.partial(queue.Queue, maxsize=64),
        "pool": functools.partial(ThreadPoolExecutor, max_workers=2),
    }


def array_heavy(total_mib: float = 500, arrays: int = 20, seed: int = 0, *, variant: str = "as_is") -> ArrayModel:
    """`arrays` float32 arrays of `total_mib` MiB in all, an RLock, a Queue and an executor."""
    import numpy as np

    _check_variant(variant, ("as_is", "fixed"))
    rng = np.random.default_rng(seed)
    cols = 1024
    rows = max(1, int(total_mib * MIB / arrays / 4 / cols))
    weights = {f"layer{i:02d}": rng.random((rows, cols), dtype=np.float32) for i in range(arrays)}
    model = (FixedArrayModel if variant == "fixed" else ArrayModel)(weights)
    model.requests.put({"request": 1, "features": [0.5] * 8})
    return model


def array_dict(total_mib: float = 1024, arrays: int = 4, seed: int = 0, *, variant: str = "as_is") -> dict[str, Any]:
    """Just (b)'s arrays: a dict of `arrays` float32 arrays, `total_mib` MiB in all. Nothing in it
    needs a hand fix, so both variants are the same dict and every tool saves the same object."""
    return array_heavy(total_mib, arrays, seed, variant="fixed").weights


def tiny(*, variant: str = "as_is") -> dict[str, Any]:
    """A training step's small state: a few numbers and a lock (the hand-fixed variant drops the lock)."""
    _check_variant(variant, ("as_is", "fixed"))
    state: dict[str, Any] = {"step": 1200, "epoch": 3, "loss": 0.25, "lr": 1e-3}
    if variant == "as_is":
        state["lock"] = threading.Lock()
    return state


def many_arrays(count: int = 100_000, *, variant: str = "as_is") -> list[Any]:
    """`count` one-element arrays: as many buffer members as arrays, once saved with every buffer
    out of band (bench/paired.py); nothing here needs a hand fix either."""
    import numpy as np

    _check_variant(variant, ("as_is", "fixed"))
    return [np.arange(i, i + 1) for i in range(count)]


# --- (c) torch ----------------------------------------------------------------


class TorchService:
    """A torch module inside a serving class with a lock and an executor."""

    def __init__(self, module: Any) -> None:
        self.module = module.eval()
        self.config = {"device": "cpu", "batch": 32}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=2)


class FixedTorchService(HandFixed, TorchService):
    _recreate = {"lock": threading.Lock, "pool": functools.partial(ThreadPoolExecutor, max_workers=2)}


def torch_service(param_mib: float = 200, layers: int = 4, seed: int = 0, *, variant: str = "as_is") -> Any:
    """An MLP of `layers` square Linear layers with ~`param_mib` MiB of float32 parameters."""
    import torch

    _check_variant(variant, ("as_is", "fixed", "weights"))
    torch.manual_seed(seed)
    width = int((param_mib * MIB / 4 / layers) ** 0.5)
    blocks: list[Any] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    module = torch.nn.Sequential(*blocks, torch.nn.LayerNorm(width))
    if variant == "weights":
        return module.state_dict()
    return (FixedTorchService if variant == "fixed" else TorchService)(module)


# --- (d) scikit-learn ---------------------------------------------------------


class LoggingStep:
    """A pipeline step that logs what passes through it, through its own handler.

    A plain class (scikit-learn's Pipeline only needs fit/transform), so
    importing this module does not import scikit-learn.
    """

    def __init__(self, name: str = "features") -> None:
        self.name = name
        self.handler = logging.StreamHandler()
        self.log = logging.getLogger(f"bench.{name}")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"name": self.name}

    def fit(self, X: Any, y: Any = None) -> LoggingStep:
        self.log.debug("fit on %d rows", len(X))
        return self

    def transform(self, X: Any) -> Any:
        return X


class FixedLoggingStep(HandFixed, LoggingStep):
    _recreate = {"handler": logging.StreamHandler}


def sklearn_pipeline(samples: int = 5_000, trees: int = 50, seed: int = 0, *, variant: str = "as_is") -> Any:
    """scaler -> logging step (with a StreamHandler) -> random forest, fitted on seeded data."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    _check_variant(variant, ("as_is", "fixed"))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(samples, 20))
    y = (X[:, :3].sum(axis=1) + rng.normal(scale=0.5, size=samples) > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=trees, max_depth=12, random_state=seed, n_jobs=1)
    pipeline = Pipeline([("scale", StandardScaler()), ("log", (FixedLoggingStep if variant == "fixed" else LoggingStep)()),
                         ("forest", forest)])
    return pipeline.fit(X, y)


object_heavy_fixed = functools.partial(object_heavy, variant="fixed")
object_heavy_clean = functools.partial(object_heavy, variant="clean")
array_heavy_fixed = functools.partial(array_heavy, variant="fixed")
torch_service_fixed = functools.partial(torch_service, variant="fixed")
sklearn_pipeline_fixed = functools.partial(sklearn_pipeline, variant="fixed")


# --- the registry the benchmark runs ------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: how to build it (full and --quick) and what loading it needs."""

    name: str
    title: str
    build: Callable[..., Any]
    quick: dict[str, Any]
    """Keyword arguments for the small --quick version."""
    trust: tuple[str, ...]
    """What `ckpt load --trust` needs for it."""
    imports: tuple[str, ...] = ()
    """Modules imported before anything is timed (so no load pays for first imports)."""
    variants: tuple[str, ...] = ("as_is", "fixed")
    big: bool = False
    """Hundreds of MiB: fewer repeats."""
    out_of_band: Callable[[dict[str, Any]], int] | None = None
    """How many arrays/tensors are large enough to go out of band, given the build arguments."""

    def make(self, variant: str, quick: bool) -> Any:
        return self.build(**(self.quick if quick else {}), variant=variant)


def _arg(function: Callable[..., Any], name: str, given: dict[str, Any]) -> Any:
    return given.get(name, inspect.signature(function).parameters[name].default)


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("object_heavy", "(a) object-heavy: 300,000 small objects, 1,000 locks", object_heavy,
              {"items": 3_000, "locks": 10}, ("bench",), variants=("as_is", "fixed", "clean")),
    ModelSpec("array_heavy", "(b) array-heavy: 500 MiB in 20 numpy arrays, an RLock, a Queue, an executor",
              array_heavy, {"total_mib": 4}, ("bench",), ("numpy",), big=True,
              out_of_band=lambda given: _arg(array_heavy, "arrays", given)),
    ModelSpec("torch_service", "(c) torch: a 200 MiB MLP in a serving class with a lock and an executor",
              torch_service, {"param_mib": 2}, ("bench", "torch"), ("torch",), ("as_is", "fixed", "weights"),
              big=True, out_of_band=lambda given: _arg(torch_service, "layers", given)),
    ModelSpec("sklearn_pipeline", "(d) scikit-learn: scaler, logging step with a handler, random forest",
              sklearn_pipeline, {"samples": 500, "trees": 3}, ("bench", "sklearn"),
              ("numpy", "sklearn.pipeline", "sklearn.ensemble", "sklearn.preprocessing")),
)}
