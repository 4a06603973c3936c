"""LSH's retrieval-recall diagnostic against a row-by-row recomputation in float64 (the
reference), and exactly 1 where every neuron is active."""

from __future__ import annotations

import numpy as np
import pytest

import models


def _reference(net, X):
    """Recall per layer, one row at a time in float64, feeding each layer what the sparse
    network feeds it (the ReLU of its active neurons only)."""
    sets = net.active_sets(X)
    H = len(net.config.hidden)
    hits = np.zeros(H)
    for e in range(X.shape[0]):
        a = X[e].astype(np.float64)
        for h in range(H):
            z = net.weights_[h].astype(np.float64) @ a + net.biases_[h]
            top = set(np.argsort(-z, kind="stable")[: net.caps_[h]].tolist())
            hits[h] += len(top & set(sets[e][h].tolist())) / net.caps_[h]
            a = np.zeros_like(z)
            a[sets[e][h]] = np.maximum(z[sets[e][h]], 0)
    return hits / X.shape[0]


@pytest.mark.parametrize("fraction", [0.1, 1.0])
def test_recall_matches_a_row_by_row_float64_recomputation(fraction):
    rng = np.random.default_rng(3)
    net = models.build("lsh", {"n_inputs": 30, "n_classes": 3, "hidden": [120, 80],
                               "K": 4, "L": 20, "active_fraction": fraction, "seed": 1})
    X = rng.random((60, 30)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    net.train_epoch(X, y)  # trained weights, tables as training left them
    got = net.retrieval_recall(X, n_samples=60, seed=0)
    want = _reference(net, X)
    assert [got["layer_0"], got["layer_1"]] == pytest.approx(want.tolist(), abs=1e-9)
    if fraction == 1.0:
        assert got["mean"] == 1.0
