"""Whether the dense reference had levelled off, from records whose accuracy curves are known."""

from __future__ import annotations

import _records as R

from harness.store import ResultStore
from reports import tables
from reports.frame import load_results
from reports.html import _limitations


def _record(dataset, seed, curve, machine="m"):
    return R.cell(
        f"{dataset}-dense-s{seed}",
        epochs=[R.epoch(e, accuracy=acc, mults=10) for e, acc in enumerate(curve, start=1)],
        machine_id=machine,
        dataset=dataset,
        n_train=10,
        n_test=10,
        settings={"seed": seed},
    )


def test_a_flat_curve_has_levelled_off_and_a_rising_one_has_not(tmp_path):
    store = ResultStore(tmp_path, "m")
    for seed in (0, 1):
        # flat: the last three epochs' means span 0.6 points; rising: 6 points
        R.put(store, _record("flat", seed, [0.70, 0.80, 0.852, 0.855, 0.858]))
        R.put(store, _record("rising", seed, [0.50, 0.60, 0.70, 0.73, 0.76]))
    res = load_results(tmp_path)
    conv = tables.dense_convergence(res).set_index("dataset")
    assert bool(conv.loc["flat", "levelled_off"]) is True
    assert abs(conv.loc["flat", "last_epochs_range_pp"] - 0.6) < 1e-9
    assert bool(conv.loc["rising", "levelled_off"]) is False
    assert abs(conv.loc["rising", "last_epochs_range_pp"] - 6.0) < 1e-9
    notes = " ".join(_limitations(res))
    assert "had levelled off" in notes and "flat (10, 5 epochs)" in notes
    assert "had not levelled off on rising (10, 5 epochs: 6.0 points)" in notes


def test_two_epochs_are_too_few_to_call_it_levelled(tmp_path):
    store = ResultStore(tmp_path, "m")
    R.put(store, _record("short", 0, [0.80, 0.80]))
    conv = tables.dense_convergence(load_results(tmp_path))
    assert not conv["levelled_off"].any()
