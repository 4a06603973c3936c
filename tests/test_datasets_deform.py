"""MNIST8M-style deformations: close to the source, not equal to it, deterministic by index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import datasets
from harness.datasets import deform, mnist


@pytest.fixture(scope="module")
def source() -> dict[str, np.ndarray]:
    return mnist.load_mnist5k(seed=0)


def _best_shift_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of b with a, maximised over the one-pixel shifts the procedure may apply."""
    best = -1.0
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            shifted = np.roll(np.roll(a, sy, axis=0), sx, axis=1)
            best = max(best, float(np.corrcoef(shifted.ravel(), b.ravel())[0, 1]))
    return best


def test_copies_differ_but_stay_close(source: dict[str, np.ndarray]) -> None:
    X = source["train_X"]
    n = len(X)
    idx = np.arange(n, n + 200)  # copy 1 of digits 0..199
    out = deform.examples(X, idx, seed=0).reshape(-1, 28, 28)
    assert out.dtype == np.uint8
    corrs = []
    for i in range(200):
        assert not np.array_equal(out[i], X[i])
        corrs.append(_best_shift_corr(X[i].astype(float), out[i].astype(float)))
    assert min(corrs) > 0.6 and np.mean(corrs) > 0.8
    # Typical change is a few grey levels per pixel on average, not a different picture.
    mean_abs = np.abs(out.astype(float) - X[:200]).mean()
    assert 3 < mean_abs < 60


def test_same_index_same_image(source: dict[str, np.ndarray]) -> None:
    X = source["train_X"]
    n = len(X)
    t = np.array([3 * n + 17, n + 5, 2 * n + 5])
    a = deform.examples(X, t, seed=4)
    # Generated alone, in another order, in other chunks: identical.
    b = deform.examples(X, t[::-1], seed=4, chunk=1)[::-1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], deform.examples(X, t[:1], seed=4)[0])
    assert not np.array_equal(a[1], a[2])  # copies 1 and 2 of one digit differ
    assert not np.array_equal(a, deform.examples(X, t, seed=5))
    # Copy 0 is the digit itself.
    np.testing.assert_array_equal(deform.examples(X, np.array([7]), seed=4)[0], X[7].ravel())


def test_streaming_matches_indexed(source: dict[str, np.ndarray]) -> None:
    X, y = source["train_X"][:50], source["train_y"][:50]
    chunks = list(deform.iter_chunks(X, y, copies=2, seed=1, chunk=40))
    Xs = np.concatenate([c[0] for c in chunks])
    ys = np.concatenate([c[1] for c in chunks])
    assert Xs.shape == (150, 784) and Xs.dtype == np.float32
    np.testing.assert_array_equal(ys, deform.labels(y, 2))
    ref = deform.examples(X, np.arange(150), seed=1).astype(np.float32) / 255
    np.testing.assert_array_equal(Xs, ref)


def test_load_mnist8m(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHSPARSE_MNIST_DIR", raising=False)
    monkeypatch.delenv("HASHSPARSE_DATA_DIR", raising=False)
    X, y = datasets.load(
        "mnist8m-k3", "train", n=400, seed=0, data_dir=tmp_path, cache_dir=tmp_path
    )
    assert X.shape == (400, 784) and np.all(np.bincount(y) == 40)
    assert 0.0 <= X.min() and X.max() <= 1.0
    X2, _ = datasets.load(
        "mnist8m-k3", "train", n=400, seed=0, data_dir=tmp_path, cache_dir=tmp_path / "b"
    )
    np.testing.assert_array_equal(X, X2)
    Xt, yt = datasets.load("mnist8m", "test", data_dir=tmp_path)
    Xr, yr = datasets.load("mnist-5k", "test")
    np.testing.assert_array_equal(Xt, Xr)  # the test set is the source's, undeformed
    assert datasets.info("mnist8m-k3")["method"]["copies"] == "3"


def test_mnist8m_uses_full_mnist_when_supplied(tmp_path: Path) -> None:
    from harness.datasets import idx

    rng = np.random.default_rng(0)
    for stem, n in (("train", 20), ("t10k", 10)):
        idx.write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        idx.write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    X, y = datasets.load("mnist8m-k2", "train", data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert X.shape == (60, 784)
    np.testing.assert_array_equal(y, np.tile(np.arange(20) % 10, 3))
    Xm, _ = datasets.load("mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(X[:20], Xm)  # copy 0 is the source itself
    assert (
        "resolves to 'mnist'"
        in {r.name: r for r in datasets.available(tmp_path)}["mnist-auto"].detail
    )
