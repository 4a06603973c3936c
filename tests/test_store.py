"""Result storage: atomic writes that never lose what was there, corrupt files detected."""

from __future__ import annotations

import errno
import json
import os

import pytest

from harness.errors import StoreError
from harness.store import ResultStore, atomic_write_json, iter_records, safe_name


def _record(cell_id="c1", status="ok"):
    return {"experiment": "exp", "cell_id": cell_id, "status": status, "value": 1.5}


def test_write_then_read_back(tmp_path):
    store = ResultStore(tmp_path, "my machine/1")
    path = store.write_cell(_record())
    assert path.parent.parent.name == "my_machine_1"
    assert json.loads(path.read_text())["value"] == 1.5
    assert store.finished("exp", "c1")
    assert not store.finished("exp", "other")
    assert [p.name for p, _ in iter_records(tmp_path)] == ["c1.json"]


def test_failed_or_corrupt_records_do_not_count_as_finished(tmp_path):
    store = ResultStore(tmp_path, "m")
    store.write_cell(_record("bad", status="failed"))
    assert not store.finished("exp", "bad")
    store.cell_path("exp", "broken").write_text("{ not json")
    assert not store.finished("exp", "broken")
    # Readers skip the corrupt file instead of failing.
    assert [r["cell_id"] for _, r in iter_records(tmp_path)] == ["bad"]


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
