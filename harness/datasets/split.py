"""Seeded, stratified selection of examples: subsets (``n=``) and train/test splits."""

from __future__ import annotations

import numpy as np

from harness.errors import DataError


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Per-class sizes summing to ``n``, proportional to ``counts`` (largest remainder)."""
    exact = counts * (n / counts.sum())
    take = np.floor(exact).astype(np.int64)
    short = n - int(take.sum())
    # Ties in the remainder go to the lower class index, so the result is deterministic.
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:short]] += 1
    return np.minimum(take, counts)


def stratified_subset(y: np.ndarray, n: int, seed: int, what: str = "split") -> np.ndarray:
    """Indices of ``n`` examples keeping each class's share; in their original order."""
    y = np.asarray(y)
    if n < 1:
        raise DataError(f"n={n} for {what}: ask for at least 1 example")
    if n > len(y):
        raise DataError(f"n={n} for {what}: it holds only {len(y)} examples; ask for fewer")
    if n == len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    take = _allocate(counts, n)
    rng = np.random.default_rng([seed, 0x5B5E7])  # its own stream: subsetting never shifts others
    chosen = [
        rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def stratified_split(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), test stratified; both shuffled by the seed."""
    rng = np.random.default_rng([seed, 0x5B117])
    classes, counts = np.unique(y, return_counts=True)
    take = _allocate(counts, n_test)
    test = np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), size=int(k), replace=False)
            for c, k in zip(classes, take, strict=True)
        ]
    )
    train = np.setdiff1d(np.arange(len(y)), test)
    return rng.permutation(train), rng.permutation(test)


def balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly balanced labels (counts differ by at most one), in random order."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)
