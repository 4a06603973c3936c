"""The paper's workloads behind one entry point: ``load(name, split, ...) -> (X, y)``.

X is float32 of shape (n, n_features); y is int64 class labels 0..n_classes-1.
"""

from __future__ import annotations

import numpy as np

from harness.errors import DataError


def _digits(split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, pixels scaled to [0, 1]; a fixed seeded 75/25 split."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(12345).permutation(len(y))
    cut = int(0.75 * len(y))
    idx = order[:cut] if split == "train" else order[cut:]
    return (X[idx] / 16.0).astype(np.float32), y[idx].astype(np.int64)


_LOADERS = {"digits": _digits}


def names() -> list[str]:
    return sorted(_LOADERS)


def load(name: str, split: str, *, n: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {names()}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    X, y = _LOADERS[name](split, seed)
    if n is not None:
        X, y = X[:n], y[:n]
    return X, y
