"""Find every object that stops `pickle.dumps(obj, protocol=5)`, by path.

Fidelity is the bar: the report has findings if and only if plain pickle
fails on the object. The walk is iterative (a 100,000-deep chain is fine) and
lets the C pickler do the heavy lifting:

1. Try pickling the whole object (array data discarded). Success: clean.
2. Otherwise take the failing object apart as pickle would (`graph`), find
   which parts fail by pickling them in halves (bisection), and repeat on
   those parts only. Clean subtrees are pickled at C speed and never walked.
3. A catalog kind is a finding as soon as it is met; scan then looks only at
   what the rewrap carries over (queue items, a pool's initializer).
4. If pickle fails on an object but nothing beneath it does (too deep for
   pickle's recursion limit, or a failure the walk cannot pin down), that
   object is the finding, with pickle's own message. So nothing passes by
   accident.

Objects are identified by `id` and kept alive for the walk; each node keeps
its parent and edge, and path strings are built only for findings.
"""

from __future__ import annotations

import copyreg
import enum
import functools
import pickle
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ckpt.kinds import byvalue, catalog, rewrap
from ckpt.kinds.catalog import Action, Kind
from ckpt.kinds.pickler import Tap, memo_size
from ckpt.kinds.registry import Holders, registry_of, strip_effect
from ckpt.kinds.tensors import TensorReducer, tensor_types
from ckpt.objects import stack
from ckpt.objects.collector import collector_paused
from ckpt.objects.decompose import (
    ATOMS,
    OWN_REDUCERS,
    PROTOCOL,
    Children,
    Unpicklable,
    decompose,
)
from ckpt.objects.paths import Edge, format_path, matches
from ckpt.scanning.notices import logger_notices, logger_types
from ckpt.target import resolve

_HOLDERS = 8
"""How far up a finding's containers are kept for a strip (`registry`): a registry sits near its owner."""

_SKIP_LEVELS = 100
"""After pickle runs out of recursion depth on a subtree, walk at least this
many levels in Python before asking the C pickler again (it would fail
again), and more the deeper the walk is (half its depth): a chain too deep
for save is asked about some twenty times, not once per hundred levels."""


class Severity(enum.IntEnum):
    """Ordered: a report's severity is the worst of its findings."""

    CLEAN = 0
    WARNING = 1  # save handles it (rewrap or strip); something may be lost
    ERROR = 2  # save refuses it unless stripped


@dataclass(frozen=True)
class Owner:
    """The instance attribute a finding sits in, for `--suggest`."""

    cls: str
    attribute: str
    path: str
    slots: bool


@dataclass(frozen=True)
class Finding:
    path: str
    type: str
    kind: str
    action: Action
    lost: str
    advice: str
    note: str = ""
    also_at: tuple[str, ...] = ()
    owner: Owner | None = field(default=None, compare=False)
    obj: Any = field(default=None, repr=False, compare=False)
    """The object itself (save strips by identity; verify exercises it)."""
    registry: str = ""
    """The path of the registry it is an entry of (a hook dict, a callback list), if it is a callable in one."""
    holders: Holders = field(default=(), repr=False, compare=False)
    """The containers and owner above it, for a strip that takes it out of its registry."""

    @property
    def object_id(self) -> int:
        return id(self.obj)

    @property
    def severity(self) -> Severity:
        return Severity.ERROR if self.action is Action.ERROR else Severity.WARNING

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.also_at)

    @property
    def strip_effect(self) -> str:
        """What `--strip` of it would do to its owner, for what a user strips."""
        return strip_effect(self.obj, self.registry) if self.action in (Action.ERROR, Action.BY_VALUE) else ""


@dataclass(frozen=True)
class ScanReport:
    target: str
    root_type: str
    objects: int
    findings: tuple[Finding, ...]
    seconds: float
    notices: tuple[str, ...] = ()
    """What plain pickle handles but does not carry over (a logger's handlers): no findings."""

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.CLEAN)

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def at(self, path: str) -> tuple[Finding, ...]:
        """The findings at `path`: a path as the scan prints it, or a pattern
        with `[*]` for like findings (as a refusal prints their group)."""
        return tuple(f for f in self.findings if any(matches(path, p) for p in f.paths))


def qualified_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in (None, "builtins") else f"{module}.{name}"


def scan(obj: Any, target: str = "") -> ScanReport:
    """Scan `obj` and report every object that plain pickle refuses.

    A str is a TARGET, resolved as `ckpt scan` resolves it (imported from
    the current directory, a factory called; TargetError if it does not
    resolve): scanning the string itself would report every target clean.
    """
    if isinstance(obj, str):
        return scan_object(resolve(obj), target or obj)
    return scan_object(obj, target)


Oracle = Callable[[Any], tuple[BaseException | None, int]]
"""What the walk asks of an object (or a tuple of objects): what stops
pickling it (None if nothing does), and how many objects that memoized.
`pickle_error` asks the C pickler; save asks the stream it just wrote
(`replay.StreamOracle`), which answers for the objects it substituted."""


def scan_object(obj: Any, target: str = "", oracle: Oracle | None = None) -> ScanReport:
    """Scan `obj` itself, a str too: for callers that hold the object (save,
    verify, a resolved target), whose str is data, never a target."""
    started = time.perf_counter()
    walker = _Walker(oracle)
    # Paused: a collection started deep in the C pickler's recursion (a deep
    # chain) runs other objects' finalizers there, which then fail for want of stack.
    with collector_paused():
        walker.run(obj)
    findings = tuple(walker.findings())
    objects = walker.objects + len(walker.objs)
    return ScanReport(target, qualified_name(type(obj)), objects, findings, time.perf_counter() - started,
                      logger_notices(walker.loggers.values()))


def _discard(buffer: pickle.PickleBuffer) -> bool:
    return False  # out of band: the array's bytes are never copied


def pickle_error(obj: Any, loggers: dict[int, Any] | None = None) -> tuple[BaseException | None, int]:
    """Try the C pickler on `obj`: (the exception or None, objects memoized);
    the loggers it pickles (by name) go into `loggers`."""
    table = _dispatch_table()
    if loggers is not None:
        table.update(dict.fromkeys(logger_types(), _noting(loggers)))
    error, pickler, tap = _attempt(pickle.Pickler, table, obj)
    if error is None and tap.names_main:  # by name here, but a function or class of __main__ is saved by value
        error, pickler, tap = _attempt(_CodeFinder, table, obj)
    return (error, 0) if error is not None else (None, memo_size(pickler, tap))


def _attempt(kind: type[pickle.Pickler], table: dict[type, Any], obj: Any) -> tuple[BaseException | None, Any, Tap]:
    """Pickle `obj` with a new pickler of `kind`; again on a deep stack if
    it ran out of recursion, as save does (`stack`)."""
    tap = Tap()
    pickler = kind(tap, PROTOCOL, buffer_callback=_discard)
    pickler.dispatch_table = table
    error = _verdict(pickler, obj)
    if isinstance(error, RecursionError) and not stack.levels():
        return stack.run(functools.partial(_attempt, kind, table, obj))
    return error, pickler, tap


def _verdict(pickler: pickle.Pickler, obj: Any) -> BaseException | None:
    try:
        pickler.dump(obj)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # anything pickle raises is a verdict, not a crash
        pickler.clear_memo()
        # The traceback holds this frame, and so the pickler and its memo of
        # everything pickled so far: 43 MiB of the scan's peak on the
        # benchmark's object-heavy model. The verdict is the exception alone.
        return exc.with_traceback(None)
    return None


class CodeByValue(pickle.PicklingError):
    """What the scan's pickle says of a function or class that save writes by value."""


class _CodeFinder(pickle.Pickler):
    """A pickler that stops at the first function or class written by value."""

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is types.FunctionType or isinstance(obj, type)) and byvalue.by_value(obj):
            raise CodeByValue(f"{byvalue.describe(obj)}: saved by value")
        return NotImplemented


def _noting(loggers: dict[int, Any]) -> Any:
    """A reducer that records each logger and reduces it as pickle would (by name)."""

    def reduce(logger: Any) -> Any:
        loggers[id(logger)] = logger
        return logger.__reduce__()

    return reduce


def _dispatch_table() -> dict[type, Any]:
    """copyreg's reducers, minus ckpt's own (`register()`: report what they
    rewrap), plus cloudpickle's for what code by value is made of (as save
    writes it), plus ckpt's torch tensor reducer, which hands storages over
    as out-of-band buffers (discarded here) where torch's own would copy every
    storage into the pickle. Verdicts do not change: torch pickles plain
    tensors either way, and odd ones still go to torch's reduction. Where
    pickle would write something that does not load (a bound method no name
    finds, a weak proxy as a copy of its referent), the table writes what
    save writes instead, or fails, so that the scan reports it."""
    table = {cls: reduce for cls, reduce in copyreg.dispatch_table.items() if cls not in catalog.REGISTERED}
    table.update(_AS_SAVE_WRITES)
    tensors = tensor_types()
    if tensors:
        reducer = TensorReducer()
        table.update({cls: reducer for cls in tensors})
    return table


def _copies_its_referent(proxy: Any) -> Any:
    """A weak proxy hands pickle its referent's own reduction: pickle writes
    a copy of that object in the proxy's place, a silent error the scan
    reports as the proxy it is (a catalog kind)."""
    raise pickle.PicklingError("pickle would write a copy of the proxy's referent in its place")


_AS_SAVE_WRITES: dict[type, Any] = {**byvalue.PARTS, **OWN_REDUCERS,
                                     **dict.fromkeys(rewrap.PROXY_TYPES, _copies_its_referent)}
"""The fixed part of the scan's dispatch table (`_dispatch_table`), built once."""


_EXIT = object()


def locate(obj: Any, oracle: Oracle, stop: Callable[[Any], bool]) -> list[tuple[Any, str, tuple[str, ...]]]:
    """Where each object `stop` picks sits under `obj`: (object, path, also_at).
    The scan's own walk, going down only into what `oracle` says leads to
    one (save's stream oracle for the arrays it wrote out of band), and never
    into a picked object itself."""
    walker = _Walker(oracle, stop)
    with collector_paused():
        walker.run(obj)
    return [(walker.objs[node], walker._path(node), walker._also(node)) for node in walker.stopped]


class _Walker:
    def __init__(self, oracle: Oracle | None = None, stop: Callable[[Any], bool] | None = None) -> None:
        self._oracle = oracle or (lambda obj: pickle_error(obj, self.loggers))
        self._stop = stop
        self.stopped: dict[int, None] = {}  # nodes `stop` picked, in the order met
        self.objs: list[Any] = []  # keeps every walked object (and its id) alive
        self.parents: list[int] = []
        self.edges: list[Edge] = []
        self.visited: dict[int, int] = {}
        self.clean: set[int] = set()  # ids that pickle cleanly on their own
        self.kept: list[Any] = []  # keeps the clean objects (and their ids) alive
        self.found: dict[int, tuple[Kind, str]] = {}
        self.failing: set[int] = set()  # nodes pickle is known (or presumed) to fail on
        self.presumed: set[int] = set()  # ids of lone children presumed to fail as their parent did
        self.events = 0  # findings and references to failing nodes: "something below failed"
        self.also: dict[int, list[tuple[int, Edge]]] = {}
        self.objects = 0  # memoized by the C pickler in clean subtrees (walked nodes come on top)
        self.loggers: dict[int, Any] = {}  # met in the pickle attempts: saved by name

    def run(self, root: Any) -> None:
        error, count = self._oracle(root)
        self.objects += count
        if error is None:
            return
        # stack entries: (obj, parent, edge, depth, known pickle error, walk-only-until depth)
        stack: list[tuple[Any, int, Edge, int, BaseException | None, int]] = [(root, -1, ("root",), 0, error, 0)]
        while stack:
            obj, parent, edge, depth, error, skip = stack.pop()
            if obj is _EXIT:
                self._exit(parent, depth, error)
                continue
            oid = id(obj)
            if oid in self.visited:
                self._revisit(self.visited[oid], parent, edge)
                continue
            if oid in self.clean:
                continue
            kind = catalog.kind_for(obj)
            if error is None and kind is None and depth >= skip:
                error = self._check([obj])
                if error is None:
                    continue
            node = self._add(obj, parent, edge)
            if error is not None:
                self.failing.add(node)
            if self._stop is not None and self._stop(obj):
                self.stopped[node] = None
                self.events += 1
                continue
            if kind is not None:
                self._find(node, kind, kind.remark(obj))
                stack.extend(self._push(list(kind.walk_payload(obj)), node, depth, skip, check=False))
                continue
            if isinstance(error, RecursionError):
                skip = depth + max(_SKIP_LEVELS, depth // 2)
            try:
                children = decompose(obj)
            except Unpicklable as exc:
                self._find(node, catalog.UNPICKLABLE, str(exc))
                continue
            # exit marker, popped after the children: (_EXIT, node, -, events so far, its error, -)
            stack.append((_EXIT, node, ("exit",), self.events, error, 0))
            stack.extend(self._push(children, node, depth, skip, check=depth + 1 >= skip, error=error))

    def _push(self, children: Children, node: int, depth: int, skip: int, check: bool,
              error: BaseException | None = None) -> list[tuple[Any, ...]]:
        """Stack entries for the children worth walking, last child first.

        With `check`, only the children that fail under the C pickler are
        kept, found by pickling them in halves; each carries its error.
        `error` is the parent's, if it failed.
        """
        children = [(e, c) for e, c in children if type(c) not in ATOMS]
        if check:
            entries = [(c, node, e, depth + 1, err, skip) for e, c, err in self._failing(children, error)]
        else:
            entries = [(c, node, e, depth + 1, None, skip) for e, c in children]
        entries.reverse()
        return entries

    def _failing(self, children: Children, parent_error: BaseException | None = None
                 ) -> list[tuple[Edge, Any, BaseException | None]]:
        """The children pickle fails on: asked of the oracle for each at once
        when it can answer so (`verdicts`, save's stream oracle), else found
        by pickling halves. The whole list is not tried first: its parent
        just failed, so it would fail too. Nor is a lone child (`_inherit`)."""
        out: list[tuple[Edge, Any, BaseException | None]] = []
        verdicts = getattr(self._oracle, "verdicts", None)
        if verdicts is not None:
            for (edge, child), error in zip(children, verdicts([c for _, c in children])):
                if error is not None:
                    self._leaf(edge, child, out, error)
            return out
        if len(children) == 1 and parent_error is not None and not isinstance(parent_error, RecursionError):
            self._inherit(*children[0], out, parent_error)
            return out
        half = len(children) // 2
        todo = [(half, len(children)), (0, half)] if half else [(0, len(children))]
        while todo:
            lo, hi = todo.pop()
            if hi - lo == 1:
                self._leaf(*children[lo], out)
            elif self._check([c for _, c in children[lo:hi]]) is not None:
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return out

    def _leaf(self, edge: Edge, child: Any, out: list[tuple[Edge, Any, BaseException | None]],
              error: BaseException | None = None) -> None:
        """One child of a failing object: walked if it fails (`error`, when
        the oracle already said so), or is a catalog kind, or was walked before."""
        if id(child) in self.clean:
            return
        if id(child) in self.visited or catalog.kind_for(child) is not None:
            out.append((edge, child, None))
            return
        error = error or self._check([child])
        if error is not None:
            out.append((edge, child, error))

    def _inherit(self, edge: Edge, child: Any, out: list[tuple[Edge, Any, BaseException | None]],
                 error: BaseException) -> None:
        """The lone child of a failing object fails with its parent's error,
        presumed without pickling it: asking would pickle all that lies
        beneath it again, at every level of a long chain. The presumption is
        checked only if nothing beneath the child fails after all (`_exit`)."""
        if id(child) in self.clean:
            return
        if id(child) not in self.visited and catalog.kind_for(child) is None:
            self.presumed.add(id(child))
        out.append((edge, child, error))

    def _check(self, objs: list[Any]) -> BaseException | None:
        """Pickle `objs` together; remember them as clean if that works."""
        error, count = self._oracle(objs[0] if len(objs) == 1 else tuple(objs))
        if error is None:
            self.objects += count
            self.clean.update(map(id, objs))
            self.kept.extend(objs)
        return error

    def _revisit(self, node: int, parent: int, edge: Edge) -> None:
        """A second reference: pickle's memo would write a reference to it."""
        if node in self.found or node in self.stopped:
            self.also.setdefault(node, []).append((parent, edge))
        if node in self.failing:
            self.events += 1

    def _exit(self, node: int, events_before: int, error: BaseException | None) -> None:
        """Post-order: pickle failed on this object, yet nothing beneath it did.
        Unless it was only presumed to fail, and does not: then its parent is
        the object the walk cannot pin down further."""
        if error is None or self.events > events_before:
            return
        if id(self.objs[node]) in self.presumed:
            error = self._check([self.objs[node]])
            if error is None:
                return
        if isinstance(error, RecursionError):
            depth = self._depth(node)
            message = (
                f"RecursionError: the object graph is too deep for pickle here ({depth} levels from the root; "
                "pickle needs one recursion level or more per level of nesting)"
            )
        else:
            message = f"{type(error).__name__}: {error}"
        self._find(node, catalog.UNPICKLABLE, message)

    def _add(self, obj: Any, parent: int, edge: Edge) -> int:
        node = len(self.objs)
        self.objs.append(obj)
        self.parents.append(parent)
        self.edges.append(edge)
        self.visited[id(obj)] = node
        return node

    def _find(self, node: int, kind: Kind, note: str) -> None:
        self.found[node] = (kind, note)
        self.failing.add(node)
        self.events += 1

    def _depth(self, node: int) -> int:
        depth = 0
        while self.parents[node] >= 0:
            node = self.parents[node]
            depth += 1
        return depth

    def _edges_to(self, node: int) -> list[Edge]:
        edges = []
        while self.parents[node] >= 0:
            edges.append(self.edges[node])
            node = self.parents[node]
        edges.reverse()
        return edges

    def _path(self, parent: int, edge: Edge | None = None) -> str:
        edges = self._edges_to(parent) if parent >= 0 else []
        return format_path(edges + ([edge] if edge is not None else []))

    def findings(self) -> list[Finding]:
        out = []
        for node, (kind, note) in self.found.items():
            obj = self.objs[node]
            also = self._also(node)
            holders = self._holders(node)
            entry = registry_of(obj, holders)
            out.append(
                Finding(
                    path=self._path(node),
                    type=qualified_name(type(obj)),
                    kind=kind.name,
                    action=kind.action,
                    lost=kind.lost,
                    advice=kind.advice,
                    note=note,
                    also_at=also,
                    owner=self._owner(node),
                    obj=obj,
                    registry=self._path(self._ancestor(node, entry[0] + 1)) if entry else "",
                    holders=holders,
                )
            )
        return out

    def _also(self, node: int) -> tuple[str, ...]:
        """The other paths that reach `node`."""
        return tuple(self._path(p, e) for p, e in self.also.get(node, ()))

    def _holders(self, node: int) -> Holders:
        """Each container above `node` with its edge down, up to the first that is no plain dict, list or tuple."""
        out: list[tuple[Any, Edge]] = []
        while self.parents[node] >= 0 and len(out) < _HOLDERS:
            parent = self.parents[node]
            out.append((self.objs[parent], self.edges[node]))
            if type(self.objs[parent]) not in (dict, list, tuple):
                break
            node = parent
        return tuple(out)

    def _ancestor(self, node: int, levels: int) -> int:
        for _ in range(levels):
            node = self.parents[node]
        return node

    def _owner(self, node: int) -> Owner | None:
        parent = self.parents[node]
        edge = self.edges[node]
        if parent < 0 or edge[0] != "attr":
            return None
        holder = self.objs[parent]
        name = edge[1]
        in_dict = name in getattr(holder, "__dict__", {})
        in_slots = not in_dict and any(name in getattr(c, "__slots__", ()) for c in type(holder).__mro__)
        if not (in_dict or in_slots) or catalog.kind_for(holder) is not None:
            return None
        return Owner(qualified_name(type(holder)), name, self._path(parent), in_slots)
