"""Experiment grids and the runner: unique cells, the paper's rates, isolation of a crashing
cell, resuming, and rerunning a corrupt record."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import models
from harness.cell import MeterOptions
from harness.errors import UserError
from harness.experiments import Cell, cells_for, paper_lr, profile
from harness.runner import SweepOptions, run_cells
from harness.store import ResultStore, read_record
from models.dense import DenseNet
from models.registry import register


@register
class _ExplodingNet(DenseNet):
    """Fails in its second epoch, like a model with a bug would."""

    name = "test-exploding"

    def train_epoch(self, X, y):
        if self.epochs_done_ >= 1:
            raise FloatingPointError("weights became NaN")
        return super().train_epoch(X, y)


def test_every_profile_has_unique_cell_ids():
    for name in ("smoke", "quick", "paper"):
        cells = cells_for(name, models.available())
        ids = [c.cell_id for c in cells]
        assert len(ids) == len(set(ids)), name
        # Baselines with every node kept would duplicate the dense reference.
        assert not [
            c
            for c in cells
            if c.model in ("dropout", "standout", "wta") and c.settings["active_fraction"] == 1.0
        ]


def test_paper_profile_follows_the_released_code():
    cells = cells_for("paper", models.available(), ("fraction_sweep",))
    assert {c.epochs for c in cells} == {25}
    # Batch 1 everywhere but the mini-batch reference of the standard network.
    assert {c.settings["batch_size"] for c in cells if c.name != "dense-minibatch"} == {1}
    assert {tuple(c.settings["hidden"]) for c in cells} == {(1000, 1000), (1000, 1000, 1000)}
    assert paper_lr("mnist", 0.05) == 1e-2 and paper_lr("mnist", 0.5) == 5e-3
    assert paper_lr("convex", 0.25) == 5e-3 and paper_lr("rectangles-images", 1.0) == 1e-3


def test_unknown_profile_or_experiment_is_a_user_error():
    with pytest.raises(UserError, match="unknown profile 'huge'"):
        profile("huge")
    with pytest.raises(UserError, match="unknown experiment"):
        cells_for("smoke", ["dense"], ("figure9",))


def _cell(model, epochs=2, seed=0):
    settings = {
        "hidden": [16],
        "active_fraction": 1.0,
        "optimizer": "momentum",
        "lr": 0.05,
        "batch_size": 16,
        "seed": seed,
    }
    return Cell("unit", "digits", model, settings, epochs, 300, 100)


ESTIMATE = MeterOptions(include=["cpu-estimate"], cpu_power_w=4.0)


def _run(cells, root, **options):
    """A sweep of ``cells`` into ``root`` as machine "m", each cell in its own process."""
    opts = SweepOptions(profile="unit", idle_s=0, meters=ESTIMATE, **options)
    return run_cells(cells, root, opts, machine_id="m")


def _stored(root, cell):
    return read_record(ResultStore(root, "m").cell_path(cell.experiment, cell.cell_id))


def test_a_crashing_cell_is_stored_as_failed_and_the_sweep_goes_on(tmp_path):
    cells = [_cell("test-exploding"), _cell("dense")]
    summary = _run(cells, tmp_path)
    assert [cid for cid, _ in summary.failed] == [cells[0].cell_id]
    assert "FloatingPointError: weights became NaN" in summary.failed[0][1]
    bad, good = _stored(tmp_path, cells[0]), _stored(tmp_path, cells[1])
    assert bad.status == "failed" and "Traceback" in bad.failure.traceback
    assert good.status == "ok" and len(good.epochs) == 2
    assert good.dataset.n_train == 300 and good.dataset.n_features == 64
    # the code and machine that produced it, in the record itself
    assert good.code.package_version and good.machine_id == "m"
    assert good.machine["cpu"]["logical_cores"] >= 1
    # Times, counts and a labelled estimate in every epoch.
    ep = good.epochs[0]
    assert ep.wall_s > 0 and ep.mults["training"] > 0
    (row,) = ep.energy
    assert (row.mode, row.meter, row.device) == ("estimated", "cpu-estimate", "cpu")
    assert ep.op_energy_j > 0
    # 4 W per logical CPU times the child's CPU seconds (the meter reads its own clock just
    # outside the window's, so allow a few milliseconds of CPU time).
    assert row.gross_j == pytest.approx(4.0 * ep.cpu_s, abs=4.0 * 0.005)


def test_resume_skips_finished_cells_and_reruns_failed_or_corrupt_ones(tmp_path):
    store = ResultStore(tmp_path, "m")
    cells = [_cell("dense", seed=s) for s in range(3)]
    first = _run(cells, tmp_path)
    assert len(first.done) == 3
    before = store.cell_path("unit", cells[0].cell_id).read_text()
    store.cell_path("unit", cells[1].cell_id).write_text("{ truncated")
    second = _run(cells, tmp_path)
    assert second.skipped == [cells[0].cell_id, cells[2].cell_id]
    assert [p.stem for p in second.done] == [cells[1].cell_id]
    assert store.cell_path("unit", cells[0].cell_id).read_text() == before
    assert _stored(tmp_path, cells[1]).status == "ok"


def test_same_cell_twice_gives_the_same_accuracy(tmp_path):
    accs = []
    for sub in ("a", "b"):
        _run([_cell("dense")], tmp_path / sub, in_process=sub == "b")  # either way the same
        accs.append([e.test_accuracy for e in _stored(tmp_path / sub, _cell("dense")).epochs])
    assert accs[0] == accs[1]
    assert accs[0][-1] > 0.5


def test_variants_are_labelled_cells_of_their_model():
    cells = [
        c
        for c in cells_for("paper", models.available(), ("fraction_sweep",))
        if c.name == "lsh-paper"
    ]
    assert cells and {c.model for c in cells} == {"lsh"}
    for c in cells:
        assert c.settings["selection"] == "topk" and c.settings["rebuild"] == "paper"
        assert "lsh-paper" in c.cell_id
        models.build("lsh", {"n_inputs": 784, "n_classes": 10, **c.settings})  # valid settings
    # Without the model installed, its variants are not planned.
    assert not [c for c in cells_for("paper", ["dense", "wta"]) if c.model == "lsh"]


def test_variants_named_explicitly_join_any_profile():
    cells = cells_for("smoke", models.available(), ("fraction_sweep",), variants=("lsh-paper",))
    assert {c.name for c in cells} >= {"lsh-paper", "lsh", "dense"}
    with pytest.raises(UserError, match="unknown variant"):
        cells_for("smoke", models.available(), variants=("lsh-turbo",))


@register
class _DivergingNet(DenseNet):
    """Reports a NaN loss, as a run with too high a learning rate does."""

    name = "test-diverging"

    def train_epoch(self, X, y):
        stats = super().train_epoch(X, y)
        return dataclasses.replace(stats, loss=float("nan"))


def test_a_nan_loss_the_model_let_through_is_stored_as_failed(tmp_path):
    """A finished epoch with a NaN loss is a diverged cell: failed, not "ok" with nulls."""
    cells = [_cell("test-diverging", epochs=1), _cell("dense", epochs=1)]
    summary = _run(cells, tmp_path)
    assert [cid for cid, _ in summary.failed] == [cells[0].cell_id]
    bad = _stored(tmp_path, cells[0])
    assert bad.status == "failed" and not bad.epochs
    assert bad.failure.error.startswith(
        "DivergedError: training diverged at epoch 1: train loss nan"
    )
    assert bad.failure.error.endswith("; lower lr")
    assert _stored(tmp_path, cells[1]).status == "ok"


@pytest.mark.parametrize("batch_size", [1, 16])  # the compiled path and BLAS
def test_a_run_that_diverges_is_a_failed_cell_and_the_sweep_goes_on(tmp_path, batch_size):
    huge = dataclasses.replace(
        _cell("dense", epochs=2),
        settings={**_cell("dense").settings, "optimizer": "sgd", "lr": 1e20,
                  "batch_size": batch_size},
    )
    cells = [huge, _cell("dense", epochs=1)]
    summary = _run(cells, tmp_path)
    assert [cid for cid, _ in summary.failed] == [huge.cell_id]
    bad = _stored(tmp_path, huge)
    assert bad.status == "failed"
    assert bad.failure.error.startswith("DivergedError: training diverged at epoch 1, example")
    assert "of 300 in training order: the loss became non-finite; lower lr (now 1e+20)" in (
        bad.failure.error
    )
    good = _stored(tmp_path, cells[1])
    assert good.status == "ok" and np.isfinite(good.epochs[0].train_loss)


def test_dense_minibatch_reference_runs_once_per_dataset_with_every_node():
    cells = [c for c in cells_for("quick", models.available()) if c.name == "dense-minibatch"]
    p = profile("quick")
    # once per dataset, shape and seed, and once per seed in the deeper check
    assert len(cells) == len(p.seeds) * (len(p.datasets) * len(p.depths) + bool(p.deep_check))
    for c in cells:
        assert c.model == "dense" and c.settings["active_fraction"] == 1.0
        assert c.settings["batch_size"] == 256


def test_quick_profile_checks_a_deeper_network_at_the_lowest_fraction():
    p = profile("quick")
    deep = [
        c
        for c in cells_for("quick", models.available(), ("fraction_sweep",))
        if tuple(c.settings["hidden"]) == p.deep_check
    ]
    assert len(p.deep_check) >= 2
    assert {c.dataset for c in deep} == {p.datasets[0]}
    assert sorted(c.name for c in deep) == sorted(["dense", "dense-minibatch", "lsh"] * 3)
    assert {c.settings["seed"] for c in deep} == set(p.seeds) and len(p.seeds) >= 3
    for c in deep:
        expected = 1.0 if c.model == "dense" else min(p.fractions)
        assert c.settings["active_fraction"] == expected
    assert len({c.cell_id for c in deep}) == len(deep)
