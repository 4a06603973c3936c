"""A model on a GPU: its windows synchronise the device before they close, and the NVML energy
of its own GPU (and only that one) is stored as its cost; another GPU's draw is kept apart as
idle. Checked with a stand-in GPU model and replayed NVML counters (no GPU needed)."""

from __future__ import annotations

import itertools

from test_energy_nvml import ReplayNvml

import harness.cell
from harness.cell import CellTask, MeterOptions, run_task
from harness.experiments import Cell
from models.dense import DenseNet
from models.registry import register


@register
class _OnSecondGpu(DenseNet):
    """Stands for torch-dense on cuda:1: the harness reads ``device_index_`` and calls
    ``synchronize()`` around every window."""

    name = "test-on-gpu1"
    device_index_ = 1
    syncs = 0

    def synchronize(self) -> None:
        type(self).syncs += 1


def test_the_models_gpu_is_its_cost_and_the_other_is_idle_draw(monkeypatch):
    ticks = itertools.count(0, 5)  # mJ: each read a little more than the last
    nv = ReplayNvml([{"energy_mj": [next(ticks) for _ in range(10_000)]},
                     {"energy_mj": [next(ticks) for _ in range(10_000)]}])
    real = harness.cell.select_meters
    monkeypatch.setattr(harness.cell, "select_meters", lambda **kw: real(
        **kw, nvml_adapter=nv, sysfs_root="/nonexistent"))
    cell = Cell("unit", "digits", "test-on-gpu1", {"hidden": [8], "batch_size": 16}, 2, 100, 50)
    measured = run_task(CellTask(cell, MeterOptions(exclude=["cpu-estimate"]), {}, None,
                                 __name__))
    assert _OnSecondGpu.syncs == 2 * (2 + 1)  # both ends of 2 epochs and the inference
    for window in [*measured.epochs, measured.inference]:
        rows = {r.domain: r for r in window.energy}
        assert set(rows) == {"gpu-0", "gpu-1"}
        assert rows["gpu-1"].attributable and rows["gpu-1"].meter == "nvml"
        assert not rows["gpu-0"].attributable
        assert "idle: model ran on GPU [1]" in rows["gpu-0"].reason
        assert rows["gpu-1"].mode == "measured" and rows["gpu-1"].gross_j > 0
