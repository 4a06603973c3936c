"""Dropout, standout and winner-take-all: with every node kept they are the dense network;
below that, their gates keep the promised fraction, their gradients are right for the mask
they drew, and their counts show that they compute every pre-activation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import models
from models.standout import keep_probabilities

BASELINES = ["dropout", "standout", "wta"]


def _cfg(**kw):
    base = {"n_inputs": 9, "n_classes": 4, "hidden": [12, 10], "dtype": "float64", "seed": 4}
    return {**base, **kw}


def _data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 9)), rng.integers(0, 4, n)


@pytest.mark.parametrize("name", BASELINES)
def test_all_nodes_kept_equals_dense(name):
    X, y = _data()
    dense = models.build("dense", _cfg())
    other = models.build(name, _cfg(active_fraction=1.0, seed=99))
    other.set_params(dense.weights_, dense.biases_)
    np.testing.assert_allclose(other.predict_scores(X), dense.predict_scores(X), rtol=1e-12)
    loss_d, gw_d, gb_d = dense.loss_and_grads(X, y)
    loss_o, gw_o, gb_o = other.loss_and_grads(X, y)
    assert loss_o == pytest.approx(loss_d, rel=1e-12)
    for a, b in zip(gw_o + gb_o, gw_d + gb_d, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", BASELINES)
def test_gradients_match_finite_differences_for_the_drawn_mask(name):
    X, y = _data(n=3, seed=1)
    net = models.build(name, _cfg(active_fraction=0.5))

    def loss_and_grads():
        net.rng_ = np.random.default_rng(7)  # the same mask at every call
        return net.loss_and_grads(X, y)

    _, dW, _ = loss_and_grads()
    for layer, W in enumerate(net.weights_):
        numeric = np.zeros_like(W)
        for i in np.ndindex(W.shape):
            old = W[i]
            W[i] = old + 1e-6
            up = loss_and_grads()[0]
            W[i] = old - 1e-6
            down = loss_and_grads()[0]
            W[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(dW[layer], numeric, rtol=1e-5, atol=1e-7)


def test_wta_keeps_exactly_the_top_k_per_example():
    X, _ = _data(n=5)
    net = models.build("wta", _cfg(active_fraction=0.25))
    Z = X @ net.weights_[0].T + net.biases_[0]
    gate, mults = net._gate(0, Z, training=True)
    k = math.ceil(0.25 * 12)
    assert mults == 0 and gate.sum(axis=1).tolist() == [k] * 5
    for row, keep in zip(Z, gate, strict=True):
        assert set(np.flatnonzero(keep)) == set(np.argsort(row)[-k:])


@pytest.mark.parametrize("target", [0.05, 0.25, 0.75])
def test_standout_keep_probabilities_hit_the_target_and_follow_z(target):
    rng = np.random.default_rng(2)
    Z = rng.normal(0, 3, size=(4, 200))
    p, mults = keep_probabilities(Z, alpha=1.0, target=target)
    np.testing.assert_allclose(p.mean(axis=1), target, atol=1e-6)
    for z_row, p_row in zip(Z, p, strict=True):
        order = np.argsort(z_row)
        assert np.all(np.diff(p_row[order]) >= 0)  # larger pre-activation, likelier kept
    assert mults > Z.size


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_measured_kept_fraction_matches_the_setting(name, fraction):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 9)), rng.integers(0, 4, 400)
    cfg = _cfg(active_fraction=fraction, hidden=[50, 40], batch_size=8)
    stats = models.build(name, cfg).train_epoch(X, y)
    if name == "wta":
        expected = (400 * (math.ceil(fraction * 50) + math.ceil(fraction * 40))) / (400 * 90)
        assert stats.active_fraction == pytest.approx(expected)
    else:
        assert stats.active_fraction == pytest.approx(fraction, abs=0.02)
    assert stats.computed_fraction == 1.0


@pytest.mark.parametrize("name", BASELINES)
def test_counts_are_dense_counts_plus_the_gate(name):
    X, y = _data(n=20)
    fraction = 0.3
    dense = models.build("dense", _cfg(batch_size=4)).train_epoch(X, y).mults
    other = models.build(name, _cfg(batch_size=4, active_fraction=fraction)).train_epoch(X, y)
    hidden_entries = 20 * (12 + 10)
    assert other.mults.update == dense.update
    if name == "wta":  # a boolean gate: comparisons only
        assert other.mults.as_dict() == dense.as_dict()
    elif name == "dropout":  # the 1/p scaling, forward and backward
        assert other.mults.forward == dense.forward + hidden_entries
        assert other.mults.backward == dense.backward + hidden_entries
    else:  # standout's keep probabilities cost multiplications of their own
        assert other.mults.forward > dense.forward + hidden_entries
        assert other.mults.backward == dense.backward


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_learn_digits(digits, name):
    X, y, Xt, yt = digits
    cfg = {
        "n_inputs": 64,
        "n_classes": 10,
        "hidden": [200],
        "active_fraction": 0.5,
        "optimizer": "momentum",
        "lr": 0.05,
        "batch_size": 16,
    }
    net = models.build(name, cfg)
    for _ in range(6):
        net.train_epoch(X, y)
    assert net.score(Xt, yt) >= 0.85


def test_standout_alpha_is_validated():
    with pytest.raises(models.ConfigError, match="standout_alpha"):
        models.build("standout", _cfg(standout_alpha=0.0))
