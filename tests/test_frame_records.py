"""A malformed record (corrupt, incomplete, older or newer schema) is skipped with one warning
naming its file; the rest still report."""

from __future__ import annotations

import logging

import _records as R
import pytest

from harness.store import ResultStore, atomic_write_json
from reports.frame import load_results


def _good(cell_id: str = "good", wall_s: float = 2.0) -> dict:
    rec = R.cell(cell_id, machine_id="box", epochs=[R.epoch(1, wall_s=wall_s)])
    return rec.to_dict()


def _without(key: str) -> dict:
    rec = _good(f"no-{key}")
    del rec[key]
    return rec


def _with(key: str, value: object, sub: str | None = None) -> dict:
    rec = _good(f"bad-{key}-{sub or ''}-{type(value).__name__}-{str(value)[:8]}")
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
    _with("schema_version", 1),  # older code's: not migrated (see harness/record.py)
    _with("schema_version", 99),  # newer code's: never read as ours
    _with("status", "done"),
    _with("code", {"commit": "abc"}),  # no package version
]


@pytest.fixture
def results(tmp_path):
    store = ResultStore(tmp_path, "box")
    for rec in [_good("good", 2.0), _good("also-good", 4.0), *BAD]:
        atomic_write_json(store.cell_path(rec["experiment"], rec["cell_id"]), rec)
    # a failed cell needs no epochs, only what names it and why it failed
    store.write_cell(R.cell("crashed", machine_id="box", status="failed"))
    return tmp_path, store


def test_malformed_records_are_skipped_with_one_warning_each(results, caplog):
    root, store = results
    with caplog.at_level(logging.WARNING, logger="harness.store"):
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
    newer = [w for w in warnings if "schema 99" in w]
    assert newer and "written by newer code" in newer[0] and "upgrade" in newer[0]


def test_report_still_builds_from_the_rest(results, tmp_path):
    from reports.html import build_report

    root, _ = results
    index = build_report([root], tmp_path / "report")
    assert index.exists() and "dense" in index.read_text()
