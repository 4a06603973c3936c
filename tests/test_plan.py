"""The plan printed before a sweep: counts of what will run, the estimate's arithmetic against
a hand-computed total, a real (tiny) calibration, and `run_all.py --plan` writing nothing."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import _records as R
import pytest

import models
from harness import plan
from harness.experiments import Cell, cells_for
from harness.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def _settings(hidden, fraction=1.0, seed=0, **kw):
    return {
        "hidden": list(hidden),
        "active_fraction": fraction,
        "optimizer": "adagrad_momentum",
        "lr": 0.01,
        "batch_size": 1,
        "seed": seed,
        **kw,
    }


# Known contents: 5 cells, 2 experiments, 2 datasets (one at its full size), 3 names.
CELLS = [
    Cell("fraction_sweep", "digits", "dense", _settings([64]), 2, 100, 50),
    Cell("fraction_sweep", "digits", "dense", _settings([64], seed=1), 2, 100, 50),
    Cell("fraction_sweep", "digits", "lsh", _settings([64], 0.1), 3, 100, 50, "lsh-paper"),
    Cell("fraction_sweep", "digits", "lsh", _settings([64], 0.5), 1),  # full digits split
    Cell("thread_scaling", "convex", "lsh", _settings([32, 16], 0.1, threads=2), 4, 200, None),
]


def test_summarise_counts_every_facet_and_uses_real_split_sizes():
    s = plan.summarise(CELLS)
    assert s.n_cells == 5 and s.n_stored == 0
    c = s.counts
    assert c["experiment"] == {"fraction_sweep": 4, "thread_scaling": 1}
    assert c["dataset"] == {"digits": 4, "convex": 1}
    assert c["model"] == {"dense": 2, "lsh-paper": 1, "lsh": 2}
    assert c["hidden"] == {"64": 4, "32x16": 1}
    assert c["fraction"] == {"1": 2, "0.1": 2, "0.5": 1}
    assert c["seed"] == {"0": 4, "1": 1}
    assert c["threads"] == {"1": 4, "2": 1}
    assert c["epochs"] == {"2": 2, "3": 1, "1": 1, "4": 1}
    # None means the full split: digits is a fixed 75/25 split of 1,797; convex's test set is
    # generated at 50,000 (found without generating it).
    assert c["train/test"] == {"100/50": 3, "1347/450": 1, "200/50000": 1}
    assert [(x.n_inputs, x.n_classes) for x in s.shapes] == [(64, 10)] * 4 + [(784, 2)]
    text = plan.format_plan(s)
    assert "Plan: 5 cells (0 already stored)" in text
    assert "lsh-paper: 1" in text


def test_mnist_auto_is_counted_under_the_set_it_resolves_to():
    cell = Cell("fraction_sweep", "mnist-auto", "dense", _settings([10]), 1, 10, 10)
    s = plan.summarise([cell])
    real = s.shapes[0].dataset
    assert real in ("mnist", "mnist-5k")
    assert s.counts["dataset"] == {f"mnist-auto={real}": 1}


def _finished(
    store: ResultStore,
    cell: Cell,
    walls: tuple[float, ...] = (1.0,),
    config: dict | None = None,
    inference_wall_s: float = 0.1,
) -> None:
    rec = R.cell(cell.cell_id, machine_id=store.machine_id, experiment=cell.experiment,
                 model=cell.model, n_train=cell.n_train or 100, n_test=cell.n_test or 50,
                 settings=cell.settings, epochs=[R.epoch(i + 1, wall_s=w)
                                                 for i, w in enumerate(walls)],
                 inference_wall_s=inference_wall_s)
    if config is not None:
        rec = dataclasses.replace(rec, model=dataclasses.replace(rec.model, config=config))
    store.write_cell(rec)


def test_estimate_arithmetic_with_an_injected_rate_table(tmp_path):
    store = ResultStore(tmp_path, "here")
    _finished(store, CELLS[4])  # the thread-scaling cell is already stored: 0 s, not probed
    rate = plan.Rate(train_s=1e-3, infer_s=1e-4, epoch_s=0.5, overhead_s=2.0, source="table")
    probed: list[plan.Probe] = []

    def table(probes):
        probed.extend(probes)
        return {p.key: rate for p in probes}

    est = plan.estimate(CELLS, store=store, calibrate=table)
    # The two dense cells differ only by seed: one calibration serves both.
    assert len(probed) == 3
    assert [p.cell for p in probed] == [CELLS[0], CELLS[2], CELLS[3]]
    by_hand = [
        2.0 + 2 * (100e-3 + 0.5 + 50e-4) + 50e-4,  # 3.215
        2.0 + 2 * (100e-3 + 0.5 + 50e-4) + 50e-4,
        2.0 + 3 * (100e-3 + 0.5 + 50e-4) + 50e-4,  # 3.82
        2.0 + 1 * (1347e-3 + 0.5 + 450e-4) + 450e-4,  # 3.937
        0.0,
    ]
    assert [c.seconds for c in est.cells] == pytest.approx(by_hand)
    assert est.total_s == pytest.approx(3.215 + 3.215 + 3.82 + 3.937)
    assert est.n_stored == 1 and est.cells[4].source == "already stored"

    text = plan.format_plan(plan.summarise(CELLS, store=store), est)
    assert "5 cells (1 already stored) expected to take about 14 s on this machine" in text
    assert "(sequential, one cell at a time); calibration took" in text
    cores = os.cpu_count() or 1
    assert f"This machine has {cores} logical CPUs" in text
    assert "the runner runs one cell at a time" in text and "--scheduler" in text


def test_stored_records_of_the_same_key_replace_calibration(tmp_path):
    store = ResultStore(tmp_path, "here")
    other = ResultStore(tmp_path, "another-machine")
    config = models.config_class("dense").from_dict(
        {"n_inputs": 64, "n_classes": 10, **CELLS[0].settings, "seed": 7}
    )
    cell = Cell("fraction_sweep", "digits", "dense", {**CELLS[0].settings, "seed": 7}, 3, 100, 50)
    _finished(store, cell, (0.9, 0.2, 0.4), config.to_dict(), inference_wall_s=0.01)
    _finished(other, cell, (5.0,), config.to_dict())  # another machine's rate is not ours

    def no_calibration(probes):
        assert [p.cell for p in probes] == [CELLS[2], CELLS[3], CELLS[4]]
        return {}

    est = plan.estimate(CELLS, store=store, calibrate=no_calibration)
    # Median steady epoch 0.3 s over 100 examples; 0.01 s over 50; first epoch 0.6 s above.
    rate = est.rates[plan.cost_key("dense", CELLS[0].settings, 64, 10)]
    assert rate.source == "stored record"
    assert (rate.train_s, rate.infer_s, rate.epoch_s, rate.overhead_s) == pytest.approx(
        (3e-3, 2e-4, 0.0, 0.6)
    )
    assert est.cells[0].seconds == pytest.approx(0.6 + 2 * (0.3 + 0.01) + 0.01)
    assert [c.seconds for c in est.cells[2:]] == [None, None, None]
    assert "3 cells have no estimate" in plan.format_plan(plan.summarise(CELLS), est)


def test_real_calibration_of_the_smoke_profile_gives_finite_positive_rates():
    cells = cells_for("smoke", models.available())
    est = plan.estimate(cells)
    assert est.rates and est.n_calibrated == len(est.rates)
    for rate in est.rates.values():
        for value in (rate.train_s, rate.infer_s, rate.overhead_s):
            assert math.isfinite(value) and value > 0
        assert math.isfinite(rate.epoch_s) and rate.epoch_s >= 0
        assert rate.train_s < 0.1  # seconds per example of a 64-wide network
    assert all(c.seconds is not None and c.seconds > 0 for c in est.cells)
    assert 0 < est.calibration_s < 60


def test_calibration_past_its_budget_borrows_the_most_similar_rate():
    probes = [
        plan.Probe(f"k{i}", cell, plan.summarise([cell]).shapes[0])
        for i, cell in enumerate([CELLS[2], CELLS[0], CELLS[3]])
    ]
    rates = plan.calibrate_rates(probes, budget_s=0.0)
    assert rates["k0"].source == "calibrated"  # the first is always measured
    # The budget is spent at once: the other two borrow the only measured rate.
    assert rates["k1"].source.startswith("borrowed") and rates["k2"].source.startswith("borrowed")
    assert rates["k1"].train_s == rates["k0"].train_s


def test_run_all_plan_prints_the_estimate_and_writes_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_all.py"), "--profile", "smoke", "--plan"]
        + ["--results", str(results), "--machine-id", "test-machine"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Plan: " in proc.stdout
    assert "already stored) expected to take about" in proc.stdout
    assert "calibration took" in proc.stdout
    # every cell's own process is measured, not assumed free (a smoke cell is mostly that)
    m = re.search(r"; ([\d.]+) s of each is its own process starting", proc.stdout)
    assert m and 0.05 < float(m.group(1)) < 60, proc.stdout
    assert not list(results.glob("**/*.json"))
    assert not (tmp_path / "report").exists()
    assert "runs done" not in proc.stdout


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.2 s"), (12, "12 s"), (200, "3 min 20 s"), (7500, "2 h 5 min"),
     (25_178, "7 h 0 min"), (3599.6, "1 h 0 min")],
)
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert plan.duration(seconds) == text
