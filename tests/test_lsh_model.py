"""LSH network: equivalence with the dense network when every node is active, settings,
edge cases and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.base import ConfigError
from models.lsh import LSHConfig
from models.optim import OPTIMIZERS

BASE = {"n_inputs": 12, "n_classes": 3, "hidden": [10, 7], "dtype": "float64", "seed": 3}
ALL_ACTIVE = {"active_fraction": 1.0, "pad_random": True, "K": 3, "L": 4}


def _data(n: int = 6, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    X[X < 0.3] = 0.0  # some zeros: exercises the sparse-input path
    return X, rng.integers(0, 3, n)


def _pair(**extra: object) -> tuple[models.Model, models.Model]:
    dense = models.build("dense", {**BASE, **extra})
    lsh = models.build("lsh", {**BASE, **ALL_ACTIVE, **extra})
    lsh.set_params([w * 1.0 for w in dense.weights_], [b + 0.01 for b in dense.biases_])
    dense.set_params(lsh.weights_, lsh.biases_)
    return dense, lsh


def test_registered_with_its_config() -> None:
    assert "lsh" in models.available()
    assert models.config_class("lsh") is LSHConfig


def test_all_active_scores_match_dense() -> None:
    dense, lsh = _pair()
    X, _ = _data(9)
    np.testing.assert_allclose(lsh.predict_scores(X), dense.predict_scores(X), rtol=1e-10,
                               atol=1e-12)
    assert lsh.mults_.inference > 0


def test_all_active_loss_and_grads_match_dense() -> None:
    dense, lsh = _pair()
    X, y = _data(5)
    ld, gwd, gbd = dense.loss_and_grads(X, y)
    ll, gwl, gbl = lsh.loss_and_grads(X, y)
    assert ll == pytest.approx(ld, rel=1e-10)
    for a, b in zip(gwl + gbl, gwd + gbd, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_one_training_step_matches_dense(optimizer: str) -> None:
    dense, lsh = _pair(optimizer=optimizer, lr=0.05)
    X, y = _data(1)
    dense.train_epoch(X, y)
    lsh.train_epoch(X, y)
    for a, b in zip(lsh.weights_ + lsh.biases_, dense.weights_ + dense.biases_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_sgd_steps_stay_equal_to_dense() -> None:
    # With plain SGD a zero gradient moves nothing, so lazy updates are exact over steps.
    dense, lsh = _pair(optimizer="sgd", lr=0.1)
    X, y = _data(5)
    for i in range(5):
        dense.train_epoch(X[i : i + 1], y[i : i + 1])
        lsh.train_epoch(X[i : i + 1], y[i : i + 1])
    for a, b in zip(lsh.weights_, dense.weights_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_float32_runs_and_dense_inference_matches_dense() -> None:
    extra = {"dtype": "float32", "inference": "dense", "active_fraction": 0.3}
    dense = models.build("dense", {**BASE, "dtype": "float32"})
    lsh = models.build("lsh", {**BASE, **extra})
    lsh.set_params(dense.weights_, dense.biases_)
    X, y = _data(8)
    np.testing.assert_allclose(lsh.predict_scores(X), dense.predict_scores(X), rtol=1e-5)
    st = lsh.train_epoch(X.astype(np.float32), y)
    assert np.isfinite(st.loss) and 0 < st.active_fraction <= 0.5
    assert all(w.dtype == np.float32 for w in lsh.weights_)


@pytest.mark.parametrize(
    "bad",
    [
        {"active_fraction": 0.0},
        {"active_fraction": 1.5},
        {"active_fraction": -0.1},
        {"K": 0},
        {"L": 0},
        {"K": 40},
        {"batch_size": 8},
        {"hash_family": "md5"},
        {"selection": "best"},
        {"overflow": "drop"},
        {"rebuild": "never"},
        {"inference": "maybe"},
        {"projections": "uniform"},
        {"min_count": 0},
        {"bucket_capacity": 0},
        {"pool_input": 0},
        {"rebuild_growth": 0.5},
        {"K": 24, "L": 1000, "bucket_capacity": 512, "selection": "topk"},
    ],
)
def test_bad_settings_fail_clearly(bad: dict) -> None:
    with pytest.raises(ConfigError, match="bad setting"):
        models.build("lsh", {**BASE, **bad})


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        models.build("lsh", {**BASE, "tables": 3})


@pytest.mark.parametrize(
    "extra",
    [
        {"hidden": [1], "active_fraction": 0.05},  # width 1: cap is one node
        {"K": 8, "L": 30},  # K*L far larger than the layer; mostly empty buckets
        {"K": 8, "L": 30, "selection": "topk"},
        {"K": 12, "L": 2, "active_fraction": 0.5, "selection": "topk"},  # short sets
        {"selection": "exact"},
        {"projections": "rademacher", "pool_input": 1},
        {"pool_input": 1, "pool_hidden": 1, "hash_family": "simple_lsh"},
        {"K": 1, "L": 3, "bucket_capacity": 1, "overflow": "fifo", "selection": "topk"},
        {"selection": "threshold", "min_count": 2},
        {"selection": "union", "pad_random": True},
        {"hash_family": "simple_lsh", "pool_input": 5, "pool_hidden": 3},
        {"rebuild": "paper"},
        {"rebuild": "fixed", "rebuild_interval": 2, "rehash_changed_only": True},
    ],
)
def test_edge_settings_train_and_predict(extra: dict) -> None:
    net = models.build("lsh", {**BASE, **extra})
    X, y = _data(20)
    st = net.train_epoch(X, y)
    assert np.isfinite(st.loss)
    assert 0.0 <= st.active_fraction <= 1.0
    caps = net.caps_
    assert st.active_fraction <= sum(caps) / sum(net.config.hidden) + 1e-12
    s = net.predict_scores(X)
    assert s.shape == (20, 3) and np.all(np.isfinite(s))
    for sets in net.active_sets(X[:4]):
        for h, S in enumerate(sets):
            assert len(S) <= caps[h] and len(set(S.tolist())) == len(S)
            assert np.all((S >= 0) & (S < net.config.hidden[h]))
    d = net.describe()
    assert d["table_bytes"] > 0 and "retrieval_recall" not in d  # describe stays cheap
    rec = net.diagnostics(X)["retrieval_recall"]
    assert len(rec) == len(net.config.hidden) and all(0.0 <= r <= 1.0 for r in rec)


def test_padding_fills_short_sets_and_is_reported() -> None:
    net = models.build("lsh", {**BASE, "K": 12, "L": 1, "active_fraction": 0.5,
                               "pad_random": True, "selection": "topk"})
    X, y = _data(10)
    st = net.train_epoch(X, y)
    assert st.extra["padded_selection_fraction"] > 0
    assert st.active_fraction == pytest.approx(sum(net.caps_) / 17)


def test_threads1_deterministic_and_seed_dependent() -> None:
    X, y = _data(40)
    cfg = {**BASE, "active_fraction": 0.4, "rebuild": "fixed", "rebuild_interval": 7}
    a = models.build("lsh", cfg)
    b = models.build("lsh", cfg)
    c = models.build("lsh", {**cfg, "seed": 4})
    for net in (a, b, c):
        for _ in range(2):
            net.train_epoch(X, y)
    for wa, wb in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        assert np.array_equal(wa, wb)
    assert not np.array_equal(a.weights_[0], c.weights_[0])
    assert a.mults_ == b.mults_


def test_two_threads_hogwild_trains() -> None:
    X, y = _data(60)
    net = models.build("lsh", {**BASE, "threads": 2, "active_fraction": 0.5})
    st = net.train_epoch(X, y)
    assert st.n_examples == 60 and np.isfinite(st.loss) and st.extra["threads"] == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_neurons_state_has_a_cache_line_of_its_own(dtype: str, optimizer: str) -> None:
    """Hogwild threads write the biases and bias state of different neurons: packed side
    by side they would share 64-byte lines (false sharing). Each neuron's bias, velocity
    and Adagrad sum lie in one 64-byte slot aligned to a line, and the views the model
    hands out are those slots."""
    net = models.build("lsh", {**BASE, "dtype": dtype, "optimizer": optimizer})
    prm = net._prm
    n = sum(BASE["hidden"]) + BASE["n_classes"]
    for a in (prm.B, prm.VB, prm.AB):
        assert a.shape == (n,) and a.strides[0] == 64
    base = prm.B.__array_interface__["data"][0]
    assert base % 64 == 0  # slots aligned to lines, not straddling two
    for k, a in enumerate((prm.VB, prm.AB), start=1):  # the same slot, the next entries
        assert a.__array_interface__["data"][0] - base == k * np.dtype(dtype).itemsize
    assert all(np.shares_memory(b, prm.B) for b in net.biases_)


def test_warmup_touches_nothing() -> None:
    net = models.build("lsh", {**BASE, "active_fraction": 0.4})
    before = [w.copy() for w in net.weights_]
    state = net.rng_.bit_generator.state
    net.warmup()
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights_, strict=True))
    assert net.rng_.bit_generator.state == state
    assert net.mults_.training == 0 and net.mults_.inference == 0


def test_set_params_rebuilds_tables() -> None:
    net = models.build("lsh", {**BASE, "active_fraction": 0.3})
    X, y = _data(5)
    net.train_epoch(X, y)
    assert net.tables_.built
    net.set_params([w * 0.5 for w in net.weights_], net.biases_)
    assert not net.tables_.built
    net.predict_scores(X)
    assert net.tables_.built


def test_diagnostics_report_recall_and_change_nothing() -> None:
    X, y = _data(30)
    net = models.build("lsh", {**BASE, "active_fraction": 0.3})
    net.train_epoch(X, y)
    before = [w.copy() for w in net.weights_]
    counts = net.mults_.as_dict()
    diag = net.diagnostics(X)
    ref = net.retrieval_recall(X, 256, 0)
    assert diag["retrieval_recall"] == [ref["layer_0"], ref["layer_1"]]
    assert diag["retrieval_recall_mean"] == ref["mean"]
    assert net.mults_.as_dict() == counts
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights_, strict=True))
    assert models.build("dense", BASE).diagnostics(X) == {}  # the base class's default
