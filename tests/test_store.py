"""Result storage: atomic writes that never lose what was there, corrupt files detected."""

from __future__ import annotations

import errno
import json
import os

import _records as R
import pytest

from harness.errors import StoreError
from harness.store import (
    ResultStore,
    State,
    atomic_write_json,
    iter_records,
    read_record,
    safe_name,
)


def _record(cell_id="c1", status="ok", machine="m"):
    return R.cell(cell_id, machine_id=machine, status=status, experiment="exp",
                  epochs=[R.epoch(1, wall_s=1.5)])


def test_write_then_read_back(tmp_path):
    store = ResultStore(tmp_path, "my machine/1")
    path = store.write_cell(_record(machine="my machine/1"))
    assert path.parent.parent.name == "my_machine_1"
    assert json.loads(path.read_text())["epochs"][0]["wall_s"] == 1.5
    assert read_record(path) == _record(machine="my machine/1")  # typed, round trip
    assert store.state("exp", "c1")[0] is State.OK
    assert store.state("exp", "other") == (State.MISSING, None)
    assert [(m, p.name) for m, p, _ in iter_records(tmp_path)] == [("my_machine_1", "c1.json")]


def test_failed_or_corrupt_records_do_not_count_as_finished(tmp_path):
    store = ResultStore(tmp_path, "m")
    store.write_cell(_record("bad", status="failed"))
    assert store.state("exp", "bad")[0] is State.FAILED
    store.cell_path("exp", "broken").write_text("{ not json")
    assert store.state("exp", "broken") == (State.UNUSABLE, None)
    # Readers skip the corrupt file instead of failing.
    assert [r.cell_id for _, _, r in iter_records(tmp_path)] == ["bad"]


def test_a_newer_schema_record_is_never_overwritten_and_is_named(tmp_path, caplog):
    store = ResultStore(tmp_path, "m")
    path = store.cell_path("exp", "c1")
    newer = {**_record().to_dict(), "schema_version": 99, "from_the_future": True}
    atomic_write_json(path, newer)
    before = path.read_bytes()
    with caplog.at_level("WARNING"):
        assert store.state("exp", "c1") == (State.NEWER, None)
    assert str(path) in caplog.text and "schema 99" in caplog.text
    with pytest.raises(StoreError, match="schema 99.*not overwritten"):
        store.write_cell(_record())
    assert path.read_bytes() == before


def test_a_record_for_another_machine_is_refused(tmp_path):
    with pytest.raises(ValueError, match="given to"):
        ResultStore(tmp_path, "m").write_cell(_record(machine="other"))


def test_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"v": 1})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreError, match="No space left on device") as info:
        atomic_write_json(path, {"v": 2})
    assert "free disk space" in str(info.value)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_diverged_values_are_stored_as_null_and_numpy_as_plain_json(tmp_path):
    import numpy as np

    path = tmp_path / "x.json"
    atomic_write_json(
        path,
        {
            "loss": float("nan"),
            "acc": np.float32(0.5),
            "w": np.arange(3),
            "inf": [float("inf"), 1.0],
            "p": tmp_path,
        },
    )
    data = json.loads(path.read_text())  # strict JSON: no NaN tokens
    assert data == {
        "loss": None,
        "acc": 0.5,
        "w": [0, 1, 2],
        "inf": [None, 1.0],
        "p": str(tmp_path),
    }
    with pytest.raises(TypeError, match="cannot store object"):
        atomic_write_json(path, {"x": object()})
    assert json.loads(path.read_text())["acc"] == 0.5  # the old record survives


@pytest.mark.parametrize(
    ("raw", "clean"), [("a b/c", "a_b_c"), ("..", "unnamed"), ("ok-1.2", "ok-1.2")]
)
def test_safe_names(raw, clean):
    assert safe_name(raw) == clean
