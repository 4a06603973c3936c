"""A malformed record is skipped with one warning naming its file; the rest still report."""

from __future__ import annotations

import logging

import pytest

from harness.store import ResultStore
from reports.frame import load_results


def _good(cell_id: str = "good", wall_s: float = 2.0) -> dict:
    epoch = {
        "epoch": 1,
        "wall_s": wall_s,
        "cpu_s": wall_s,
        "energy": [],
        "train_loss": 0.5,
        "test_accuracy": 0.9,
        "active_fraction": 1.0,
        "computed_fraction": 1.0,
        "mults": {"forward": 1000, "training": 1000, "inference": 0},
    }
    return {
        "experiment": "fraction_sweep",
        "cell_id": cell_id,
        "status": "ok",
        "dataset": {"name": "toy", "n_train": 100, "n_test": 10},
        "model": {"name": "dense", "config": {"hidden": [10], "seed": 0}},
        "epochs": [epoch],
        "inference": {"n_examples": 10, "wall_s": 0.1, "mults": 100},
    }


def _without(key: str) -> dict:
    rec = _good(f"no-{key}")
    del rec[key]
    return rec


def _with(key: str, value: object, sub: str | None = None) -> dict:
    rec = _good(f"bad-{key}-{sub or ''}-{type(value).__name__}")
    if sub is None:
        rec[key] = value
    else:
        rec[key][sub] = value
    return rec


def _epoch_without(field: str) -> dict:
    rec = _good(f"epoch-no-{field}")
    del rec["epochs"][0][field]
    return rec


BAD = [
    _without("model"),
    _without("dataset"),
    _without("epochs"),
    _with("model", "dense"),
    _with("dataset", ["toy"]),
    _with("epochs", 3),
    _with("epochs", [1, 2]),
    _with("model", None, "name"),
    _with("model", "fast", "config"),
    _with("dataset", "100", "n_train"),
    _epoch_without("wall_s"),
    _epoch_without("mults"),
    _epoch_without("test_accuracy"),
]


@pytest.fixture
def results(tmp_path):
    store = ResultStore(tmp_path, "box")
    store.write_machine({"cpu": {"model": "x"}})
    store.write_cell(_good("good", 2.0))
    store.write_cell(_good("also-good", 4.0))
    for rec in BAD:
        store.write_cell(rec)
    # a failed cell needs no epochs, only what names it
    store.write_cell(
        {
            "experiment": "fraction_sweep",
            "cell_id": "crashed",
            "status": "failed",
            "error": "ValueError: boom",
            "dataset": {"name": "toy"},
            "model": {"name": "dense"},
        }
    )
    return tmp_path, store


def test_malformed_records_are_skipped_with_one_warning_each(results, caplog):
    root, store = results
    with caplog.at_level(logging.WARNING, logger="reports.frame"):
        res = load_results(root)
    assert sorted(res.cells["cell_id"]) == ["also-good", "good"]
    assert sorted(res.cells["epoch_wall_s"]) == [2.0, 4.0]
    assert list(res.failed["cell_id"]) == ["crashed"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(BAD)
    for rec in BAD:
        path = store.cell_path(rec["experiment"], rec["cell_id"])
        (hit,) = [w for w in warnings if str(path) in w]
        assert "skipping" in hit and "\n" not in hit


def test_report_still_builds_from_the_rest(results, tmp_path):
    from reports.html import build_report

    root, _ = results
    index = build_report([root], tmp_path / "report")
    assert index.exists() and "dense" in index.read_text()
