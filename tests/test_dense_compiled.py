"""The compiled per-example path (batch size 1) against the BLAS path, which is itself checked
against finite differences and closed-form counts in test_dense.py and test_baselines.py:
same seed and data give the same weights, losses, kept neurons and random stream, and
exactly the same multiplication counts, for every model, optimizer and L2 setting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

import models
from models.optim import OPTIMIZERS
from models.standout import keep_probabilities

GATED = ["dense", "dropout", "standout", "wta"]


def _cfg(name, **kw):
    base = {
        "n_inputs": 9,
        "n_classes": 4,
        "hidden": [12, 10],
        "active_fraction": 1.0 if name == "dense" else 0.3,
        "lr": 0.02,
        "seed": 5,
        "dtype": "float64",
    }
    return {**base, **kw}


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 9))
    X[rng.random(X.shape) < 0.4] = 0.0  # zero inputs, as in images, are multiplied too
    return X, rng.integers(0, 4, n)


def _pair(name, **kw):
    compiled = models.build(name, _cfg(name, **kw))
    blas = models.build(name, _cfg(name, engine="blas", **kw))
    assert compiled.compiled_ and not blas.compiled_
    return compiled, blas


@pytest.mark.parametrize("l2", [0.0, 1e-2])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("name", GATED)
def test_compiled_path_equals_the_blas_path(name, optimizer, l2):
    X, y = _data()
    compiled, blas = _pair(name, optimizer=optimizer, l2=l2)
    for _ in range(2):  # the second epoch starts from state (momentum, sums) the first left
        a, b = compiled.train_epoch(X, y), blas.train_epoch(X, y)
        assert a.mults == b.mults
        assert a.extra["mults_forward_hidden"] == b.extra["mults_forward_hidden"]
        assert a.active_fraction == b.active_fraction  # the same neurons kept
        assert a.loss == pytest.approx(b.loss, rel=1e-10)
    for p, q in zip(compiled._params, blas._params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    for p, q in zip(
        compiled.optimizer_.velocity + compiled.optimizer_.sq_sum,
        blas.optimizer_.velocity + blas.optimizer_.sq_sum,
        strict=True,
    ):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    # both drew the same random numbers: the generators are in the same state
    assert compiled.rng_.random() == blas.rng_.random()
    np.testing.assert_allclose(compiled.predict_scores(X), blas.predict_scores(X), rtol=1e-9)


@pytest.mark.parametrize("name", GATED)
def test_compiled_path_in_float32_agrees_to_float_tolerance(name):
    X, y = _data(n=40, seed=2)
    compiled, blas = _pair(name, dtype="float32", optimizer="adagrad_momentum", l2=1e-3)
    a, b = compiled.train_epoch(X, y), blas.train_epoch(X, y)
    assert a.mults == b.mults
    assert a.loss == pytest.approx(b.loss, rel=1e-5)
    for p, q in zip(compiled._params, blas._params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", GATED)
def test_mini_batches_keep_blas_and_batch_one_compiles(name):
    X, y = _data(n=8)
    assert models.build(name, _cfg(name, batch_size=4)).train_epoch(X, y).extra["engine"] == (
        "blas"
    )
    assert models.build(name, _cfg(name)).train_epoch(X, y).extra["engine"] == (
        "compiled per-example"
    )


@pytest.mark.parametrize("name", GATED)
def test_warmup_changes_nothing(name):
    net = models.build(name, _cfg(name))
    before = [p.copy() for p in net._params]
    state = net.rng_.bit_generator.state
    net.warmup()
    assert net.rng_.bit_generator.state == state
    assert net.mults_.training == 0
    for p, q in zip(before, net._params, strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("fraction", [0.05, 0.25])
def test_compiled_standout_keeps_the_target_fraction(fraction):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(400, 9)), rng.integers(0, 4, 400)
    cfg = _cfg("standout", active_fraction=fraction, hidden=[200, 100], dtype="float32")
    stats = models.build("standout", cfg).train_epoch(X, y)
    # 400 examples x 300 neurons, each kept with mean probability = fraction
    assert stats.active_fraction == pytest.approx(fraction, abs=0.01)


def test_standout_beta_matches_an_independent_root_finder():
    rng = np.random.default_rng(4)
    Z = rng.normal(0, 2, size=(3, 50))
    alpha, target = 1.5, 0.1
    p, _ = keep_probabilities(Z, alpha, target)
    for z, p_row in zip(Z, p, strict=True):
        beta = brentq(lambda b, z=z: np.mean(1 / (1 + np.exp(-(alpha * z + b)))) - target, -40, 40)
        np.testing.assert_allclose(p_row, 1 / (1 + np.exp(-(alpha * z + beta))), atol=1e-7)


def test_unknown_engine_is_refused():
    with pytest.raises(models.ConfigError, match="engine"):
        models.build("dense", _cfg("dense", engine="gpu"))
