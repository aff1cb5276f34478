"""Deep graphs save and load whole, on a stack sized for them; a recursion
without end is an error, never a crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

import ckpt
from ckpt.objects import stack
from sample_models import nested


def test_a_50000_deep_chain_saves_and_loads_whole(tmp_path: Path) -> None:
    model = nested.deep(50_000)
    assert ckpt.scan(model).findings == ()
    report = ckpt.save(model, tmp_path / "chain.ckpt")
    assert report.manifest.stack == stack.DEEPEST
    loaded, depth = ckpt.load(tmp_path / "chain.ckpt"), 0
    while loaded.children:
        loaded, depth = loaded.children[0], depth + 1
    assert (depth, loaded.name) == (49_999, "49999")
    assert sys.getrecursionlimit() < stack.DEEPEST  # raised only while the deep thread ran


def test_a_shallow_model_is_written_on_the_ordinary_stack(tmp_path: Path) -> None:
    assert ckpt.save(nested.deep(50), tmp_path / "short.ckpt").manifest.stack == 0


def test_a_pymongo_client_with_a_deep_query_loads_whole_in_a_fresh_process(tmp_path: Path) -> None:
    """A service holding a MongoClient (never connected), a collection of it,
    and a cursor whose filter nests 3,000 `$and`s: pickle's default recursion
    limit cannot write the filter, and a plain load of a Database or
    Collection asks the empty object for __setstate__, which its __getattr__
    answers by asking for its own name, without end."""
    pymongo = pytest.importorskip("pymongo")
    import bson

    client = pymongo.MongoClient("mongodb://127.0.0.1:9", connect=False)
    query: dict = {"n": 0}
    for n in range(1, 3000):
        query = bson.SON([("$and", [query, {"n": n}])])
    orders = client.shop.orders
    ckpt.save({"client": client, "orders": orders, "cursor": orders.find(query)}, tmp_path / "svc.ckpt")
    client.close()
    check = textwrap.dedent(
        f"""
        import ckpt
        svc = ckpt.load({str(tmp_path / 'svc.ckpt')!r})
        spec, depth = svc["cursor"]._spec, 0
        while "$and" in spec:
            spec, depth = spec["$and"][0], depth + 1
        print(svc["orders"].full_name, svc["cursor"].collection.database.client is svc["client"], depth)
        """
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout == "shop.orders True 2999\n", done.stderr


def test_a_recursion_without_end_at_load_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A class whose __setstate__ recurses through Python code C calls back
    into: the load runs out of recursion on the ordinary stack, again on the
    deep one, and says so in one line."""
    (tmp_path / "runaway.py").write_text(textwrap.dedent(
        """
        class Runaway:
            def __getattr__(self, name):
                return getattr(self, "_" + name[:8])

            def __setstate__(self, state):
                self.anything
        """
    ))
    code = textwrap.dedent(
        f"""
        import ckpt, runaway
        model = runaway.Runaway()
        model.weights = [1.0]
        ckpt.save(model, {str(tmp_path / 'r.ckpt')!r})
        try:
            ckpt.load({str(tmp_path / 'r.ckpt')!r})
        except ckpt.CheckpointError as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr  # a crash would be -11
    assert "ran out of recursion even on a stack of 262,144 levels" in done.stdout
