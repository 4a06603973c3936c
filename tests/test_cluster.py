"""Cells on a dask.distributed cluster started here: the same cells as the local runner, each
successful and filed under its worker's machine; a cell whose worker dies is stored as failed,
never lost; workers that would run two cells at once are refused."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import models
from harness.cell import MeterOptions
from harness.errors import UserError
from harness.experiments import cells_for
from harness.runner import SweepOptions, run_cells
from harness.store import iter_records
from models.dense import DenseNet
from models.registry import register

distributed = pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
dask = pytest.importorskip("dask")

ESTIMATE = MeterOptions(include=["cpu-estimate"], cpu_power_w=4.0)


@register
class _WorkerKillerNet(DenseNet):
    """Takes its dask worker down with it, as a machine lost mid-cell would."""

    name = "test-kills-worker"

    def train_epoch(self, X, y):
        os.kill(os.getppid(), signal.SIGKILL)  # the child's parent is the worker process


def _stored(root: Path) -> dict[str, tuple[str, str]]:
    return {rec.cell_id: (machine, rec.status) for machine, _, rec in iter_records(root)}


def _options(**kw):
    return SweepOptions(profile="smoke", idle_s=0, meters=ESTIMATE, **kw)


@pytest.fixture(scope="module")
def cluster():
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


def test_the_smoke_grid_on_a_cluster_matches_the_local_runner(cluster, tmp_path):
    cells = [
        c for c in cells_for("smoke", models.available(), ("fraction_sweep",))
        if c.model in ("dense", "dropout", "lsh")
    ]
    local = run_cells(cells, tmp_path / "local", _options(), machine_id="here")
    remote = run_cells(cells, tmp_path / "cluster", _options(scheduler=cluster.scheduler_address))
    assert not local.failed and not remote.failed
    here, there = _stored(tmp_path / "local"), _stored(tmp_path / "cluster")
    assert set(here) == set(there) == {c.cell_id for c in cells}
    assert {status for _, status in there.values()} == {"ok"}
    # filed under the machine of the worker that ran each cell, with its fingerprint
    ((machine, _, record), *_) = iter_records(tmp_path / "cluster")
    assert {m for m, _ in there.values()} == {machine} == remote.machines
    assert record.machine["machine_id"] == machine and record.code.package_version
    # resuming on the cluster trains nothing again
    again = run_cells(cells, tmp_path / "cluster", _options(scheduler=cluster.scheduler_address))
    assert not again.done and len(again.skipped) == len(cells)


def test_a_cell_whose_worker_dies_is_stored_as_failed_not_lost(cluster, tmp_path):
    settings = {"hidden": [8], "batch_size": 16, "seed": 0}
    from harness.experiments import Cell

    cells = [Cell("unit", "digits", "test-kills-worker", settings, 1, 100, 50),
             Cell("unit", "digits", "dense", settings, 1, 100, 50)]
    summary = run_cells(cells, tmp_path, _options(scheduler=cluster.scheduler_address))
    assert [cid for cid, _ in summary.failed] == [cells[0].cell_id]
    assert "its dask worker was lost" in summary.failed[0][1]
    stored = _stored(tmp_path)
    assert stored[cells[0].cell_id][1] == "failed" and stored[cells[1].cell_id][1] == "ok"


def test_workers_running_two_tasks_at_once_are_refused():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as c, pytest.raises(
        UserError, match="--nthreads 1"
    ):
        run_cells([], Path("unused"), _options(scheduler=c.scheduler_address))


def test_an_unreachable_scheduler_is_one_clear_line(tmp_path, monkeypatch):
    from harness import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(UserError, match="cannot reach the dask scheduler at 'tcp://127.0.0.1:9'"):
        run_cells([], tmp_path, _options(scheduler="tcp://127.0.0.1:9"))
