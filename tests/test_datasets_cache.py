"""The .npz cache: reused when intact, rebuilt when corrupt, stale or tampered with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import datasets
from harness.datasets import cache, registry
from harness.errors import DataError


def _builder(counter: list[int], value: int = 7):
    def build() -> dict[str, np.ndarray]:
        counter.append(1)
        return {"X": np.full((4, 3), value, np.uint8), "y": np.arange(4)}

    return build


def test_reused_when_intact(tmp_path: Path) -> None:
    calls: list[int] = []
    key = {"size": 4, "seed": 0, "version": 1}
    a = cache.cached("toy", key, _builder(calls), tmp_path)
    b = cache.cached("toy", key, _builder(calls), tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(a["X"], b["X"])
    files = list((tmp_path / "datasets").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temporary files left behind
    # Another key (seed, size or version) is another file.
    cache.cached("toy", {**key, "seed": 1}, _builder(calls), tmp_path)
    assert len(calls) == 2 and len(list((tmp_path / "datasets").iterdir())) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "stale_key", "tampered"])
def test_rebuilt_when_damaged(tmp_path: Path, damage: str) -> None:
    calls: list[int] = []
    key = {"size": 4, "seed": 0, "version": 1}
    cache.cached("toy", key, _builder(calls), tmp_path)
    path = cache.cache_path("toy", key, tmp_path)
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-50])
    elif damage == "stale_key":  # a file under this name, built for another key
        np.savez(
            path,
            X=np.zeros((4, 3), np.uint8),
            y=np.arange(4),
            __key__=np.array(cache.key_text("toy", {**key, "version": 0})),
            __checksum__=np.array("0"),
        )
    elif damage == "tampered":  # right key, wrong content
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["X"] = arrays["X"] + 1
        np.savez(path, **arrays)
    out = cache.cached("toy", key, _builder(calls), tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(out["X"], np.full((4, 3), 7, np.uint8))
    # The rebuilt file is trusted again.
    cache.cached("toy", key, _builder(calls), tmp_path)
    assert len(calls) == 2


def test_unwritable_cache_still_returns_data(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    calls: list[int] = []
    out = cache.cached("toy", {"k": 1}, _builder(calls), blocker)
    assert out["X"].shape == (4, 3) and len(calls) == 1


def test_env_var_and_dataset_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        registry, "SPLIT_SIZES", {k: {"train": 40, "test": 20} for k in registry.SPLIT_SIZES}
    )
    monkeypatch.setenv("HASHSPARSE_CACHE_DIR", str(tmp_path))
    assert cache.cache_root() == tmp_path / "datasets"
    X, y = datasets.load("rectangles", "train", seed=0)
    files = list((tmp_path / "datasets").glob("rectangles-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"corrupt")
    X2, y2 = datasets.load("rectangles", "train", seed=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    with np.load(files[0]) as z:  # rebuilt and valid again
        assert z["X"].shape == (40, 784)


def _float_builder(counter: list[int]):
    def build() -> dict[str, np.ndarray]:
        counter.append(1)
        return {"X": np.full((4, 3), 0.5, np.float32), "y": np.arange(4)}

    return build


def test_non_finite_cached_values_are_rebuilt_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []
    key = {"size": 4, "seed": 0, "version": 1}
    cache.cached("toy", key, _float_builder(calls), tmp_path)
    path = cache.cache_path("toy", key, tmp_path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["X"][1, 2] = np.nan  # consistent checksum, impossible content
    data = {k: v for k, v in arrays.items() if not k.startswith("__")}
    arrays["__checksum__"] = np.array(cache.checksum(data))
    np.savez(path, **arrays)
    with caplog.at_level("WARNING", logger="harness.datasets.cache"):
        out = cache.cached("toy", key, _float_builder(calls), tmp_path)
    assert len(calls) == 2 and np.isfinite(out["X"]).all()
    warned = [r.getMessage() for r in caplog.records]
    assert any("non-finite" in m and str(path) in m for m in warned), warned


def test_cache_from_another_layout_is_rebuilt(tmp_path: Path) -> None:
    """A file with this name and key but not the arrays this version stores (an older
    layout): rebuilt, never handed back with a missing array."""
    calls: list[int] = []
    key = {"size": 4, "seed": 0, "version": 1}
    path = cache.cache_path("toy", key, tmp_path)
    path.parent.mkdir(parents=True)
    old = {"images": np.zeros((4, 3), np.uint8)}
    np.savez(
        path,
        **old,
        __key__=np.array(cache.key_text("toy", key)),
        __checksum__=np.array(cache.checksum(old)),
    )
    out = cache.cached("toy", key, _builder(calls), tmp_path, expect=("X", "y"))
    assert len(calls) == 1 and set(out) == {"X", "y"}


def test_non_finite_loaded_values_are_an_error_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(split, n, data_dir, seed, cache_dir):
        X = np.zeros((5, 4), np.float32)
        X[3, 1] = np.inf
        return X, np.arange(5)

    monkeypatch.setattr(registry, "loader", lambda name: broken)
    monkeypatch.setattr(datasets, "_loader", lambda name: broken)
    with pytest.raises(DataError) as err:
        datasets.load("convex", "train", cache_dir=tmp_path)
    msg = str(err.value)
    assert "convex train" in msg and "1 non-finite value" in msg and "example 3" in msg
    assert str(tmp_path / "datasets") in msg and "rebuilt" in msg
