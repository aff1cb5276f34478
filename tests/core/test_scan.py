"""Scan fidelity: findings if and only if plain pickle fails (or writes what
does not load back: tests/core/test_checkpoint.py has those), each at a path
that evaluates to the object, on every sample model and on random graphs."""

from __future__ import annotations

import collections
import dataclasses
import pickle
import queue
import sys
import threading
import weakref
from typing import Any, NamedTuple

import pytest
from conftest import sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt.kinds import catalog
from ckpt.kinds.catalog import Action
from ckpt.scanning.walk import scan, scan_object
from sample_models import kinds, nested, service


def pickles(obj: Any) -> bool:
    try:
        pickle.dumps(obj, protocol=5)
    except Exception:
        return False
    return True


def evaluate(path: str, model: Any) -> Any:
    """Paste the path into Python, as a user would (test-only: our own paths)."""
    return eval(path, {"__builtins__": {"list": list, "type": type, "getattr": getattr}}, {"model": model})


def assert_paths_point_at_findings(model: Any, report) -> None:
    for finding in report.findings:
        for path in finding.paths:
            if "<item" in path or "__reduce_ex__" in path or "__getstate__" in path:
                continue  # not re-evaluable without re-reducing: checked elsewhere
            assert id(evaluate(path, model)) == finding.object_id, path


EXPECTED: dict[str, dict[str, str]] = {
    "service:build": {
        "model.requests": "queue",
        "model._stats_lock": "lock",
        "model.pool": "thread-pool",
        "model.handler": "log-handler",
        "model.ready": "event",
        "model.worker": "thread",
    },
    "nested:pipeline": {"model.steps[1][1].handler": "log-handler"},
    "nested:containers": {
        "model['layers'][0]['lock']": "lock",
        "model['slots'].guard": "rlock",
        "model['tuple'][1][1]": "event",
    },
    "nested:shared_lock": {"model['first'].lock": "lock", "model['cond']": "condition"},
    "nested:cycle": {"model.children[0].limit": "semaphore"},
    "nested:clean": {},
    "nested:hidden": {
        "model['state'].__getstate__()['_lock']": "lock",
        "model['partial'].args[0]": "rlock",
        "model['counts'].default_factory.keywords['guard']": "lock",
        "model['callback']": "local-function",
        "model['callback'].__closure__[0].cell_contents": "lock",
    },
}
MODULES = {"service": service, "nested": nested}


def build(name: str) -> Any:
    module, attr = name.split(":")
    return getattr(MODULES[module], attr)()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_models_report_exactly_the_expected_paths(name: str) -> None:
    model = build(name)
    report = scan(model)
    assert {f.path: f.kind for f in report.findings} == EXPECTED[name]
    assert (report.exit_code == 0) == pickles(model)
    assert_paths_point_at_findings(model, report)


def test_unpicklable_defaultdict_factory_is_found() -> None:
    model = collections.defaultdict(lambda: 0)
    assert [(f.path, f.kind) for f in scan(model).findings] == [("model.default_factory", "local-function")]


def test_shared_object_lists_its_other_paths() -> None:
    report = scan(nested.shared_lock())
    lock = next(f for f in report.findings if f.kind == "lock")
    assert lock.also_at == ("model['second'].lock",)


@pytest.mark.parametrize("kind", [k.name for k in catalog.ALL_KINDS])
def test_every_catalog_kind_is_found_at_its_path(kind: str) -> None:
    model = sample(kind)
    report = scan(model)
    assert not pickles(model)
    assert [(f.path, f.kind) for f in report.findings] == [("model.value", kind), *kinds.CARRIED.get(kind, [])]
    expected_action = catalog.BY_NAME[kind].action
    assert report.findings[0].action is expected_action


def test_every_catalog_kind_has_a_sample_factory() -> None:
    assert set(kinds.FACTORIES) == {k.name for k in catalog.ALL_KINDS}


class HandlesItsLock(queue.Queue):
    """A Queue subclass that pickles itself: not a finding."""

    def __getstate__(self) -> dict[str, Any]:
        return {"maxsize": self.maxsize, "items": list(self.queue)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["maxsize"])  # type: ignore[misc]
        for item in state["items"]:
            self.put(item)


def test_subclass_that_pickles_itself_is_clean() -> None:
    q = HandlesItsLock()
    q.put(1)
    assert pickles(q)
    assert scan({"q": q}).findings == ()


class Worker(threading.Thread):
    pass


def test_subclass_that_does_not_is_its_kind() -> None:
    report = scan({"w": Worker()})
    assert [(f.path, f.kind, f.type) for f in report.findings] == [
        ("model['w']", "thread", f"{__name__}.Worker")
    ]


def test_copyreg_reducer_makes_a_type_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    lock_type = type(threading.Lock())
    monkeypatch.setitem(__import__("copyreg").dispatch_table, lock_type, lambda lock: (threading.Lock, ()))
    assert scan({"lock": threading.Lock()}).findings == ()


class RaisesOddly:
    def __reduce_ex__(self, protocol: int) -> Any:
        raise ZeroDivisionError("odd reduce")


class BadReduce:
    def __reduce__(self) -> Any:
        return (42, ())


def test_reduce_that_raises_is_a_finding_with_its_message() -> None:
    report = scan({"odd": RaisesOddly(), "bad": BadReduce()})
    notes = {f.path: (f.kind, f.note) for f in report.findings}
    assert notes == {
        "model['odd']": ("unpicklable", "ZeroDivisionError: odd reduce"),
        "model['bad']": ("unpicklable", "first item of the tuple returned by __reduce__ must be callable"),
    }


def test_deep_chain_is_clean_since_save_pickles_it_on_a_deep_stack() -> None:
    model = nested.deep(50_000)
    assert not pickles(model)  # past the default recursion limit
    assert scan(model).findings == ()


def test_moderately_deep_clean_chain_is_clean() -> None:
    model = nested.deep(50)
    assert pickles(model) and scan(model).findings == ()


def test_held_lock_is_noted() -> None:
    lock = threading.Lock()
    with lock:
        report = scan({"lock": lock})
    assert "held at save time" in report.findings[0].note


# --- random graphs ----------------------------------------------------------


class Plain:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


class Slots:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


@dataclasses.dataclass
class Record:
    x: Any
    y: Any


class Pair(NamedTuple):
    left: Any
    right: Any


PLANTS = [threading.Lock, threading.RLock, threading.Event, threading.Condition, queue.Queue,
          lambda: threading.Semaphore(3), threading.local]


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    pairs = st.tuples(children, children)
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=3), children, max_size=4),
        st.tuples(children, children).map(tuple),
        pairs.map(lambda p: Plain(a=p[0], b=p[1])),
        pairs.map(lambda p: Slots(*p)),
        pairs.map(lambda p: Record(*p)),
        pairs.map(lambda p: Pair(*p)),
        pairs.map(lambda p: collections.OrderedDict([("l", p[0]), ("r", p[1])])),
        children.map(lambda c: collections.deque([c, 1])),
    )


LEAVES = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats(allow_nan=False), st.just("PLANT"))
GRAPHS = st.recursive(LEAVES, _containers, max_leaves=25)


def plant(graph: Any, factories: st.DataObject) -> tuple[Any, list[Any]]:
    """Replace each "PLANT" leaf with a fresh thread object; return (graph, planted)."""
    planted: list[Any] = []

    def replace(node: Any) -> Any:
        if node == "PLANT" and isinstance(node, str):
            obj = factories.draw(st.sampled_from(PLANTS))()
            planted.append(obj)
            return obj
        if isinstance(node, Plain):
            node.__dict__.update({k: replace(v) for k, v in node.__dict__.items()})
        elif isinstance(node, Slots):
            node.a, node.b = replace(node.a), replace(node.b)
        elif isinstance(node, Record):
            node.x, node.y = replace(node.x), replace(node.y)
        elif isinstance(node, Pair):
            return Pair(replace(node.left), replace(node.right))
        elif isinstance(node, (collections.OrderedDict, dict)):
            for key in list(node):
                node[key] = replace(node[key])
        elif isinstance(node, list):
            node[:] = [replace(v) for v in node]
        elif isinstance(node, collections.deque):
            items = [replace(v) for v in node]
            node.clear()
            node.extend(items)
        elif isinstance(node, tuple):
            return tuple(replace(v) for v in node)
        return node

    return replace(graph), planted


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=GRAPHS, data=st.data())
def test_random_graphs_find_exactly_the_planted_objects(graph: Any, data: st.DataObject) -> None:
    clean_report = scan_object(graph)  # a graph may be a bare string: data, not a target
    assert clean_report.findings == ()
    assert pickles(graph)
    model, planted = plant(graph, data)
    report = scan_object(model)
    assert sorted(f.object_id for f in report.findings) == sorted(id(p) for p in planted)
    assert all(f.action is Action.REWRAP for f in report.findings)
    assert (not report.findings) == pickles(model)
    assert_paths_point_at_findings(model, report)



def test_weak_containers_are_one_finding_each_not_their_remove_callbacks() -> None:
    model = {"set": weakref.WeakSet(), "values": weakref.WeakValueDictionary(), "keys": weakref.WeakKeyDictionary()}
    found = sorted((f.path, f.kind) for f in scan(model).findings)
    assert found == [("model['keys']", "weak-container"), ("model['set']", "weak-container"),
                     ("model['values']", "weak-container")]


def test_a_library_s_weak_registries_are_weak_containers() -> None:
    orm = pytest.importorskip("sqlalchemy.orm")
    kinds_found = {f.kind for f in scan(orm.registry()).findings}
    assert kinds_found == {"weak-container"}  # was: four `_remove` local functions


class PicklesItsEntries(weakref.WeakValueDictionary):
    """A weak mapping that pickles itself (as a plain dict): not a finding."""

    def __reduce__(self) -> Any:
        return dict, (dict(self),)


def test_weak_container_that_pickles_itself_is_clean() -> None:
    assert scan({"cache": PicklesItsEntries()}).findings == ()


def test_standard_streams_are_rebound_files_read_from_reopen_other_open_files_are_refused(tmp_path: Any) -> None:
    with open(__file__) as read, open(tmp_path / "out.txt", "w") as written, open(tmp_path / "both", "w+b") as both:
        model = {"out": sys.__stdout__, "err": sys.__stderr__, "read": read, "written": written, "both": both}
        found = {f.path: (f.kind, f.action) for f in scan(model).findings}
    assert found == {"model['out']": ("std-stream", Action.REWRAP), "model['err']": ("std-stream", Action.REWRAP),
                     "model['read']": ("read-file", Action.REWRAP), "model['written']": ("open-file", Action.ERROR),
                     "model['both']": ("open-file", Action.ERROR)}


def test_a_file_read_from_is_reopened_only_while_its_path_names_it(tmp_path: Any) -> None:
    """Replaced since it was opened: its path names another file now, which a reopen would read."""
    path = tmp_path / "data.txt"
    path.write_text("saved\n")
    with open(path) as read:
        path.unlink()
        path.write_text("another file\n")
        assert [(f.path, f.kind) for f in scan({"f": read}).findings] == [("model['f']", "open-file")]


def test_sqlite_connection_to_a_file_is_rewrapped_in_memory_is_stripped(tmp_path: Any) -> None:
    import sqlite3

    model = {"file": sqlite3.connect(tmp_path / "a.db"), "memory": sqlite3.connect(":memory:")}
    found = {f.path: (f.kind, f.action) for f in scan(model).findings}
    assert found == {"model['file']": ("db-connection", Action.REWRAP), "model['memory']": ("memory-db", Action.STRIP)}


def _chain_with_lock_at_the_end(depth: int) -> nested.Node:
    root = nested.deep(depth)
    node = root
    while node.children:
        node = node.children[0]
    node.guard = threading.Lock()
    return root


def test_lock_at_the_end_of_a_long_chain_is_found_by_its_full_path() -> None:
    report = scan(_chain_with_lock_at_the_end(30_000))
    (finding,) = report.findings
    assert finding.kind == "lock"
    assert finding.path == "model" + ".children[0]" * 29_999 + ".guard"


def test_chain_too_deep_even_for_save_is_one_finding_with_its_depth() -> None:
    report = scan(nested.deep(100_000))
    (finding,) = report.findings
    assert finding.kind == "unpicklable" and finding.note.startswith("RecursionError: the object graph is too deep")
    depth = finding.path.count(".children[0]")
    assert f"({2 * depth} levels from the root" in finding.note  # each level: an attribute, then an item
    assert 0 < depth < 100_000


class FailsOnce:
    """A reducer that fails the first time only: pickle fails, yet a second look finds nothing."""

    calls = 0

    def __init__(self, child: Any) -> None:
        self.child = child

    def __reduce_ex__(self, protocol: int) -> Any:
        FailsOnce.calls += 1
        if FailsOnce.calls == 1:
            raise TypeError("failed the first time")
        return (FailsOnce, (self.child,))


def test_failure_nothing_beneath_explains_is_reported_where_pickle_failed() -> None:
    report = scan({"x": FailsOnce([[1, 2]])})
    assert [(f.path, f.note) for f in report.findings] == [("model", "TypeError: failed the first time")]


def test_a_local_dataclass_beside_an_unpicklable_object_is_one_finding_not_its_builtin_parts() -> None:
    """A field's metadata is a mappingproxy, whose type cloudpickle writes by
    name: walking the dataclass (because something else fails) finds the
    class and its default factory, and the one object nothing can save."""
    import contextvars

    @dataclasses.dataclass
    class Config:
        layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2])

    report = scan_object({"config": Config(), "var": contextvars.ContextVar("v")})
    errors = [f.paths[0] for f in report.findings if f.action is Action.ERROR]
    assert errors == ["model['var']"]
    assert not [p for f in report.findings for p in f.paths if "__class_getitem__" in p or ".__new__" in p]
