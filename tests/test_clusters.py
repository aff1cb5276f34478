"""Models holding thread primitives travel to real Dask and Ray workers
(processes of local clusters) and back, arriving with working primitives.

Each cluster starts once for the module, and the module runs in one xdist
worker (its group): two Ray clusters at once would only cost time. The
examples of docs/CLUSTERS.md run here too, the Ray one on this cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from docpages import page

import ckpt
from sample_models.parallel import Keeper, Throttle, busy_throttle, exercise

pytestmark = pytest.mark.xdist_group("clusters")

WORKING = {"lock_excludes": True, "lock_shared": True, "jobs": ["resize", "encode"], "free_slots": 2}
"""What `exercise` reports of a throttle whose primitives came through working."""


def working(report: dict[str, Any], elsewhere: bool = True) -> bool:
    """The report says the primitives worked, in another process than this one (unless not `elsewhere`)."""
    pid = report.pop("pid")
    return report == WORKING and (pid != os.getpid()) == elsewhere


@pytest.fixture(scope="module")
def dask() -> Iterator[Any]:
    """A client of a LocalCluster with one worker process (the worker test adds one)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def ray() -> Iterator[Any]:
    """A local Ray cluster whose workers register ckpt as they start (and
    find sample_models). Its own temporary directory, short because Ray's
    sockets live in it, removed afterwards."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ckpt-ray-")
    env = ckpt.ray_runtime_env({"env_vars": {"PYTHONPATH": str(REPO)}})
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _temp_dir=temp, runtime_env=env)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


# --- Dask ------------------------------------------------------------------


def test_dask_arguments_arrive_working(dask) -> None:
    with ckpt.registered():
        report = dask.submit(exercise, busy_throttle()).result()
        scattered = dask.scatter(Throttle())
        again = dask.submit(exercise, scattered).result()
    assert working(report) and working(again)


def test_dask_results_come_back_from_every_worker_even_one_that_joins_later(dask) -> None:
    """Results are pickled in the worker: without register_workers it cannot
    send a throttle back; with it, the worker there and the one added after
    both can."""
    with pytest.raises(TypeError, match="Could not serialize object of type Throttle"):
        dask.submit(busy_throttle, pure=False).result()
    ckpt.register_workers(dask)
    dask.cluster.scale(2)
    dask.wait_for_workers(2)
    workers = list(dask.scheduler_info()["workers"])
    assert len(workers) == 2
    for worker in workers:
        back = dask.submit(busy_throttle, workers=[worker], pure=False).result()
        assert isinstance(back, Throttle) and working(exercise(back), elsewhere=False)
    ckpt.register_workers(dask)  # again: a no-op, not an error


# --- Ray -------------------------------------------------------------------


def test_ray_task_arguments_arrive_working_and_results_come_back(ray) -> None:
    with ckpt.registered():
        report = ray.get(ray.remote(exercise).remote(busy_throttle()))
        stored = ray.get(ray.remote(exercise).remote(ray.put(Throttle())))
    back = ray.get(ray.remote(busy_throttle).remote())
    assert working(report) and working(stored)
    assert working(exercise(back), elsewhere=False)


def test_ray_actor_built_with_a_model_swaps_it_for_another(ray) -> None:
    """An actor built with a throttle, a method given one and returning the
    one held: both directions through a long-lived worker."""
    with ckpt.registered():
        keeper = ray.remote(Keeper).remote(busy_throttle())
        held = ray.get(keeper.swap.remote(busy_throttle()))
    assert working(exercise(held), elsewhere=False)
    assert working(ray.get(keeper.exercise.remote()))
    ray.kill(keeper)


# --- docs/CLUSTERS.md's examples ---------------------------------------------


def run_example(title: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Python blocks of one section of docs/CLUSTERS.md, run as one script from the repository root."""
    blocks = page("CLUSTERS.md").blocks("python", within=title)
    assert blocks, title
    return subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=120)


def test_the_dask_example_runs_as_written() -> None:
    pytest.importorskip("distributed")
    proc = run_example("Shipping a model to Dask", {})
    assert proc.returncode == 0, proc.stderr


def test_the_ray_example_runs_as_written(ray) -> None:
    """On this module's cluster: RAY_ADDRESS makes the example's `ray.init` connect to it."""
    proc = run_example("Shipping a model to Ray", {"RAY_ADDRESS": ray.get_runtime_context().gcs_address})
    assert proc.returncode == 0, proc.stderr


# --- nothing imported unless asked -------------------------------------------


def test_importing_ckpt_or_building_a_runtime_env_imports_neither_dask_nor_ray(tmp_path: Path) -> None:
    code = ("import sys, ckpt; ckpt.ray_runtime_env(); "
            "print(sorted({'dask', 'distributed', 'ray'} & sys.modules.keys()))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc


def test_ray_runtime_env_merges_into_a_base_and_refuses_a_second_hook() -> None:
    base = {"env_vars": {"MODE": "prod"}, "pip": ["numpy"]}
    env = ckpt.ray_runtime_env(base)
    assert env == {**base, "worker_process_setup_hook": "ckpt.ship.register.register"}
    assert env["env_vars"] is not base["env_vars"]  # Ray writes into the env_vars it is given
    assert ckpt.ray_runtime_env(env) == env
    with pytest.raises(ckpt.ConfigError, match="already has a worker_process_setup_hook .'mypkg.setup'. .*"
                                               r"call ckpt.register\(\) from that hook"):
        ckpt.ray_runtime_env({"worker_process_setup_hook": "mypkg.setup"})
