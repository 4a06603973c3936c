"""LSH train_mode="batch" (BLAS on a gathered block per mini-batch): with every node
active it is the dense network's mini-batch step, with the dense network's counts. With
batch_sets="shared" the batch shares one set, under selection="exact" the exact top-k of
the batch's mean pre-activation; with "per_example" each example keeps its own, its exact
top-k, and at batch size 1 it trains as the per-example mode does."""

from __future__ import annotations

import math

import numpy as np
import pytest

import models
from models.lsh import kernels
from models.optim import OPTIMIZERS

BASE = {"n_inputs": 12, "n_classes": 3, "hidden": [10, 7], "dtype": "float64", "seed": 3}
BATCH = {"train_mode": "batch", "K": 3, "L": 4}
OWN = {**BATCH, "batch_sets": "per_example"}  # each example's own set, BLAS on the union


def _data(n: int, zeros: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, 12)) + (0.0 if zeros else 0.1)
    if zeros:
        X[X < 0.3] = 0.0
    return X, rng.integers(0, 3, n)


def _pair(n: int, bias: float = 0.01, sets: str = "shared", **extra: object
          ) -> tuple[models.Model, models.Model]:
    """Dense and batch-mode LSH (all nodes active, ``sets`` its batch_sets) on the same
    parameters; a large ``bias`` (with the weights scaled down) keeps every hidden output
    positive."""
    dense = models.build("dense", {**BASE, "batch_size": n, "engine": "blas", **extra})
    lsh = models.build("lsh", {**BASE, **BATCH, "batch_size": n, "active_fraction": 1.0,
                               "pad_random": True, "batch_sets": sets, **extra})
    scale = 0.1 if bias > 1 else 1.0
    lsh.set_params([w * scale for w in dense.weights_], [b + bias for b in dense.biases_])
    dense.set_params(lsh.weights_, lsh.biases_)
    return dense, lsh


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("sets", ["shared", "per_example"])
def test_all_active_step_matches_dense(optimizer: str, l2: float, sets: str) -> None:
    # lazy L2 decays only touched weights: with L2, every hidden output positive (large
    # biases) and no all-zero input column, so every weight is touched, as in dense
    X, y = _data(6, zeros=l2 == 0)
    dense, lsh = _pair(6, bias=5.0 if l2 else 0.01, sets=sets, optimizer=optimizer, lr=0.05,
                       l2=l2)
    sd, sl = dense.train_epoch(X, y), lsh.train_epoch(X, y)  # one batch: one step
    assert sl.loss == pytest.approx(sd.loss, rel=1e-12)
    for a, b in zip(lsh.weights_ + lsh.biases_, dense.weights_ + dense.biases_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_all_active_sgd_epochs_stay_equal_to_dense() -> None:
    # plain SGD: a zero gradient moves nothing, so lazy block updates stay exact over steps
    X, y = _data(8)
    dense, lsh = _pair(4, optimizer="sgd", lr=0.1)
    for _ in range(2):  # two epochs of two batches; the orders differ, so one batch each
        for i in (0, 4):
            dense.train_epoch(X[i : i + 4], y[i : i + 4])
            lsh.train_epoch(X[i : i + 4], y[i : i + 4])
    for a, b in zip(lsh.weights_ + lsh.biases_, dense.weights_ + dense.biases_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad_momentum", "rowwise_adagrad"])
@pytest.mark.parametrize("sets", ["shared", "per_example"])
def test_all_active_counts_equal_dense(optimizer: str, sets: str) -> None:
    """No all-zero input column and every hidden output positive: the blocks are the whole
    matrices, so backward and update count what dense counts, and forward too (plus, for
    per-example sets, the masks' products: one per example and hidden neuron); hashing
    is K*L per non-zero pooled coordinate of each query (the batch mean's, after its
    scalings; or each example's)."""
    X, y = _data(6, zeros=False)
    dense, lsh = _pair(6, bias=5.0, sets=sets, optimizer=optimizer, l2=0.01)
    A = X
    for W, b in dense.params()[:-1]:  # the setting's premise: no hidden output is 0
        A = A @ W.T + b
        assert (A > 0).all()
    sd, sl = dense.train_epoch(X, y), lsh.train_epoch(X, y)
    own = sets == "per_example"
    for phase in ("backward", "update"):
        assert getattr(sl.mults, phase) == getattr(sd.mults, phase), phase
    assert sl.mults.forward == sd.mults.forward + (6 * (10 + 7) if own else 0)
    KL = lsh.config.K * lsh.config.L
    widths = [12, 10]
    pools = [lsh.config.pool_input, lsh.config.pool_hidden]
    assert sl.mults.hashing == sum(6 * math.ceil(w / p) * KL if own
                                   else w + math.ceil(w / p) * KL
                                   for w, p in zip(widths, pools, strict=True))
    assert sl.active_fraction == 1.0


def _exact_batch(extra: dict) -> tuple:
    """One batch of 9 under exact selection (``extra``: the batch settings), biases of the
    size of the pre-activations: the weights and biases before its step, its record,
    stats, and its inputs in training order."""
    X, y = _data(9)
    net = models.build("lsh", {**BASE, **extra, "batch_size": 9, "active_fraction": 0.3,
                               "selection": "exact"})
    rng = np.random.default_rng(5)
    net.set_params(net.weights_, [rng.normal(0, 1.0, b.shape) for b in net.biases_])
    W = [w.copy() for w in net.weights_]
    B = [b.copy() for b in net.biases_]
    rec = kernels.new_record(9, 2, net._maxw)
    st = net._train_epoch(X, y, rec)
    return net, W, B, rec, st, X[st.extra["order"]]


def test_exact_selection_is_top_k_of_the_batch_mean() -> None:
    """The batch's sets, recomputed in numpy: top cap by pre-activation of the batch's mean
    input, layer by layer (the second layer's input: the first's outputs on its set); the
    biases are as large as the pre-activations, so the ranking is by the mean, not sum."""
    net, W, B, rec, st, A = _exact_batch(BATCH)
    for h, cap in enumerate(net.caps_):
        z = W[h] @ A.mean(axis=0) + B[h]
        top = np.sort(np.argsort(-z, kind="stable")[:cap])
        for e in range(9):  # every example of the batch got the same set
            assert np.array_equal(np.sort(rec.sets[e, h, : rec.n[e, h]]), top), (h, e)
        full = np.zeros((9, W[h].shape[0]))
        full[:, top] = np.maximum(A @ W[h][top].T + B[h][top], 0)
        A = full
    assert st.active_fraction == pytest.approx(sum(net.caps_) / 17)


def test_batch_mode_trains_with_hashing_and_rebuilds() -> None:
    X, y = _data(40)
    cfg = {**BASE, **BATCH, "batch_size": 8, "active_fraction": 0.4, "rebuild": "fixed",
           "rebuild_interval": 12, "rehash_changed_only": True}
    a, b = models.build("lsh", cfg), models.build("lsh", cfg)
    for net in (a, b):
        for _ in range(2):
            st = net.train_epoch(X, y)
        assert np.isfinite(st.loss) and 0 < st.active_fraction <= sum(net.caps_) / 17
        assert st.extra["rebuilds"] >= 2 and net.tables_.n_incremental >= 4
        assert set(st.extra["batch_phase_s"]) >= {"gather", "update_scatter"}
    for wa, wb in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        assert np.array_equal(wa, wb)  # seeded: reproducible
    assert a.score(X, y) > 0.0


def test_batch_size_needs_batch_mode() -> None:
    with pytest.raises(models.ConfigError, match="train_mode='batch'"):
        models.build("lsh", {**BASE, "batch_size": 8})
    with pytest.raises(models.ConfigError, match="bad setting train_mode"):
        models.build("lsh", {**BASE, "train_mode": "minibatch"})
    with pytest.raises(models.ConfigError, match="bad setting batch_sets.*unless train_mode"):
        models.build("lsh", {**BASE, "batch_sets": "per_example"})
    with pytest.raises(models.ConfigError, match="bad setting batch_sets"):
        models.build("lsh", {**BASE, **BATCH, "batch_sets": "union"})


# -- batch_sets="per_example": each example its own hashed set, BLAS on their union --------


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise_adagrad", "adagrad_momentum"])
def test_per_example_sets_at_batch_one_train_as_the_example_mode(optimizer: str) -> None:
    """A batch of one is one example: its own set, its own step. So the BLAS path must
    give the per-example kernels' active sets and (to rounding) their weights."""
    X, y = _data(24)
    cfg = {**BASE, "K": 3, "L": 4, "active_fraction": 0.4, "optimizer": optimizer,
           "lr": 0.05, "rebuild": "fixed", "rebuild_interval": 10}
    ref = models.build("lsh", cfg)
    own = models.build("lsh", {**cfg, **OWN, "batch_size": 1})
    recs = [kernels.new_record(24, 2, ref._maxw) for _ in range(2)]
    stats = [net._train_epoch(X, y, rec) for net, rec in zip((ref, own), recs, strict=True)]
    assert np.array_equal(stats[0].extra["order"], stats[1].extra["order"])
    assert np.array_equal(recs[0].n, recs[1].n)
    for e in range(24):
        for h in range(2):
            n = recs[0].n[e, h]
            assert np.array_equal(np.sort(recs[0].sets[e, h, :n]),
                                  np.sort(recs[1].sets[e, h, :n])), (e, h)
    assert stats[1].loss == pytest.approx(stats[0].loss, rel=1e-9)
    for a, b in zip(own.weights_ + own.biases_, ref.weights_ + ref.biases_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_per_example_sets_are_each_examples_exact_top_k() -> None:
    """One batch, exact selection, replayed in numpy: each example's set is the top cap of
    its own pre-activations, layer by layer, its next layer's input its own outputs on its
    own set (zero elsewhere), all from the weights before the batch's step."""
    net, W, B, rec, st, A = _exact_batch(OWN)
    for h, cap in enumerate(net.caps_):
        Z = A @ W[h].T + B[h]
        nxt = np.zeros_like(Z)
        for e in range(9):
            top = np.sort(np.argsort(-Z[e], kind="stable")[:cap])
            assert np.array_equal(np.sort(rec.sets[e, h, : rec.n[e, h]]), top), (h, e)
            nxt[e, top] = np.maximum(Z[e, top], 0)
        A = nxt
    assert st.active_fraction == pytest.approx(sum(net.caps_) / 17)
