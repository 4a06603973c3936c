"""The paper's workloads, offline, behind one entry point.

>>> from harness import datasets
>>> X, y = datasets.load("convex", "train", n=1000, seed=0)

``load(name, split, *, n=None, data_dir=None, seed=0, cache_dir=None)`` returns X float32 of
shape (n, n_features) and y int64 labels 0..n_classes-1. Value ranges: [0, 1] for every image
set except smallNORB, which is in [-1, 1] (``info(name)["value_range"]``).

Names: "digits", "mnist", "fashion-mnist", "mnist-5k", "mnist-auto" (= ``resolve_mnist``),
"mnist8m" (or "mnist8m-k<N>" for N deformed copies per digit), "smallnorb" (alias "norb"),
"convex", "rectangles", "rectangles-images". ``available()`` says which this machine can load
and why not (checking file headers, sizes and labels, not just presence); ``info(name)`` gives
features, classes, value range, the paper's split sizes, the source and every choice a
generator makes. ``provenance(name, data_dir)`` says, for a run's record, what the data were
loaded from and whether the files matched their published checksums (``verified``: True or
"unverified: <reason>"); MNIST files offered as Fashion-MNIST (or the reverse) are refused.

``n`` takes a class-stratified subset drawn from ``seed``. ``seed`` also fixes everything random
about the data itself: generated sets, the mnist-5k train/test split, which 20,000 smallNORB
training pairs are used, and the MNIST8M deformations. Generated and parsed sets are cached as
``.npz`` (see ``harness.datasets.cache``: ``cache_dir`` or ``$HASHSPARSE_CACHE_DIR``).
"""

from __future__ import annotations

import os

import numpy as np

from harness.datasets.cache import cache_root
from harness.datasets.mnist import resolve_mnist
from harness.datasets.registry import (
    Availability,
    DatasetInfo,
    available,
    canonical,
    info,
    names,
    provenance,
)
from harness.datasets.registry import loader as _loader
from harness.datasets.stats import class_summary
from harness.errors import DataError

__all__ = [
    "Availability",
    "DatasetInfo",
    "available",
    "class_summary",
    "info",
    "load",
    "names",
    "provenance",
    "resolve_mnist",
]


def load(
    name: str,
    split: str,
    *,
    n: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, n_features), y int64 (n,)) of ``split`` ("train" or "test")."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    real = canonical(name, data_dir)
    X, y = _loader(real)(split, n, data_dir, seed, cache_dir)
    X = np.ascontiguousarray(X, dtype=np.float32)
    _check_finite(X, f"{real} {split}", cache_dir)
    return X, np.ascontiguousarray(y, dtype=np.int64)


def _check_finite(X: np.ndarray, what: str, cache_dir: str | os.PathLike[str] | None) -> None:
    """No NaN or infinity may reach a model. The sum is one cheap pass (values are bounded,
    so it cannot overflow in float64); only when it is not finite are the rows searched."""
    if np.isfinite(np.sum(X, dtype=np.float64)):
        return
    bad = ~np.isfinite(X)
    count, first = int(bad.sum()), int(np.flatnonzero(bad.any(axis=1))[0])
    raise DataError(
        f"{what}: {count} non-finite value{'s' if count != 1 else ''} (first in example "
        f"{first}); remove the cache folder {cache_root(cache_dir)} (it will be rebuilt) and "
        "load again; if it persists, report it as a bug"
    )
