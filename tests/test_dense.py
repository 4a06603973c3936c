"""The dense network against independent references: finite differences, closed-form counts,
bit-identical reruns, and learning a real task."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.optim import MULTS_PER_PARAM, Optimizer


def _net(hidden, *, n_in=7, n_out=4, dtype="float64", **kw):
    cfg = {"n_inputs": n_in, "n_classes": n_out, "hidden": list(hidden), "dtype": dtype, **kw}
    return models.build("dense", cfg)


def _numeric_grad(net, X, y, param, eps=1e-6):
    grad = np.zeros_like(param)
    it = np.nditer(param, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = param[i]
        param[i] = old + eps
        up = net.loss_and_grads(X, y)[0]
        param[i] = old - eps
        down = net.loss_and_grads(X, y)[0]
        param[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("hidden", [(6,), (5, 6, 4)])
@pytest.mark.parametrize("batch", [1, 5])
def test_gradients_match_central_differences(hidden, batch):
    rng = np.random.default_rng(3)
    net = _net(hidden, seed=1)
    # Non-zero biases so that ReLU kinks are unlikely to sit within eps of any sample.
    for b in net.biases_:
        b[...] = rng.normal(0, 0.1, b.shape)
    X = rng.normal(size=(batch, 7))
    y = rng.integers(0, 4, size=batch)
    _, dW, db = net.loss_and_grads(X, y)
    for layer in range(len(hidden) + 1):
        np.testing.assert_allclose(
            dW[layer], _numeric_grad(net, X, y, net.weights_[layer]), rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            db[layer], _numeric_grad(net, X, y, net.biases_[layer]), rtol=1e-5, atol=1e-7
        )


def test_float32_gradients_agree_with_float64():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 7))
    y = rng.integers(0, 4, size=8)
    n64 = _net((9, 9), seed=2)
    n32 = _net((9, 9), seed=2, dtype="float32")
    _, g64, _ = n64.loss_and_grads(X, y)
    _, g32, _ = n32.loss_and_grads(X, y)
    for a, b in zip(g32, g64, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def _dense_formula(sizes, n, batch, optimizer, l2):
    """Closed-form multiplications of one epoch of the dense network."""
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    per_example_layer = sum(a * b for a, b in pairs)
    classes = sizes[-1]
    forward = n * per_example_layer + n * classes  # products + softmax divisions
    # dW for every layer, dA for every layer but the first, and the 1/m scaling of dlogits.
    backward = n * per_example_layer + n * sum(a * b for a, b in pairs[1:]) + n * classes
    n_batches = -(-n // batch)
    n_weights = sum(a * b for a, b in pairs)
    n_biases = sum(b for _, b in pairs)
    if optimizer == "rowwise_adagrad":  # g*g and step*g per weight; mean and step per row
        per_step = 2 * n_weights + 2 * n_biases + 3 * n_biases + (n_weights if l2 else 0)
    else:
        per_step = MULTS_PER_PARAM[optimizer] * (n_weights + n_biases) + (n_weights if l2 else 0)
    return forward, backward, n_batches * per_step


@pytest.mark.parametrize(
    ("sizes", "n", "batch", "optimizer", "l2"),
    [
        ((7, 6, 4), 10, 1, "adagrad_momentum", 0.0),
        ((7, 5, 6, 3, 4), 23, 4, "momentum", 0.003),
        ((12, 30, 2), 17, 17, "sgd", 0.0),
        ((12, 30, 20, 2), 50, 64, "adagrad_momentum", 0.01),
        ((9, 8, 3), 12, 5, "rowwise_adagrad", 0.0),
        ((9, 8, 6, 3), 12, 1, "rowwise_adagrad", 0.02),
    ],
)
def test_counts_match_closed_form(sizes, n, batch, optimizer, l2):
    net = models.build(
        "dense",
        {
            "n_inputs": sizes[0],
            "n_classes": sizes[-1],
            "hidden": list(sizes[1:-1]),
            "batch_size": batch,
            "optimizer": optimizer,
            "l2": l2,
        },
    )
    rng = np.random.default_rng(0)
    X = rng.random((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    stats = net.train_epoch(X, y)
    forward, backward, update = _dense_formula(sizes, n, batch, optimizer, l2)
    assert (stats.mults.forward, stats.mults.backward, stats.mults.update) == (
        forward,
        backward,
        update,
    )
    assert stats.mults.hashing == stats.mults.rebuild == stats.mults.inference == 0
    assert stats.active_fraction == 1.0 and stats.computed_fraction == 1.0
    # Cumulative counts add up over epochs; inference is counted apart.
    net.train_epoch(X, y)
    assert net.mults_.forward == 2 * forward
    net.predict(X[:9])
    per_example = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    assert net.mults_.inference == 9 * per_example


def _train_once(seed, X, y):
    net = models.build("dense", {"n_inputs": 64, "n_classes": 10, "hidden": [32, 16], "seed": seed})
    net.train_epoch(X[:300], y[:300])
    return net


def test_same_seed_is_bit_identical_and_other_seed_differs(digits):
    X, y, _, _ = digits
    a, b, c = _train_once(5, X, y), _train_once(5, X, y), _train_once(6, X, y)
    for wa, wb, wc in zip(a.weights_, b.weights_, c.weights_, strict=True):
        assert np.array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


@pytest.mark.parametrize(
    ("optimizer", "lr", "batch"),
    [("adagrad_momentum", 1e-2, 1), ("momentum", 0.05, 32), ("sgd", 0.1, 16),
     ("rowwise_adagrad", 2e-2, 1)],
)
def test_learns_digits(digits, optimizer, lr, batch):
    X, y, Xt, yt = digits
    net = models.build(
        "dense",
        {
            "n_inputs": 64,
            "n_classes": 10,
            "hidden": [100],
            "optimizer": optimizer,
            "lr": lr,
            "batch_size": batch,
            "seed": 0,
        },
    )
    for _ in range(5):
        net.train_epoch(X, y)
    assert net.score(Xt, yt) >= 0.90


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("active_fraction", 0.0),
        ("active_fraction", 1.5),
        ("optimizer", "adam"),
        ("batch_size", 0),
        ("hidden", []),
        ("lr", -1.0),
        ("dtype", "float16"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(setting, value):
    cfg = {"n_inputs": 4, "n_classes": 3, setting: value}
    with pytest.raises(models.ConfigError, match=setting):
        models.build("dense", cfg)


def test_unknown_model_and_unknown_setting():
    with pytest.raises(models.ConfigError, match="unknown model 'nope'"):
        models.build("nope", {"n_inputs": 4, "n_classes": 3})
    with pytest.raises(models.ConfigError, match="colour"):
        models.build("dense", {"n_inputs": 4, "n_classes": 3, "colour": "red"})


def test_wrong_input_width_is_reported():
    net = _net((3,))
    with pytest.raises(models.ConfigError, match=r"expects \(n, 7\)"):
        net.predict(np.zeros((2, 5)))


def test_rowwise_adagrad_follows_its_formula():
    """Two steps by hand: one squared-gradient sum per row of W (the mean over the row),
    one per bias; no momentum."""
    W = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    b = np.array([0.5, -0.5])
    opt = Optimizer([W, b], "rowwise_adagrad", lr=0.1, momentum=0.9, l2=[0.0, 0.0])
    gw1, gb1 = np.array([[0.3, 0.0, -0.6], [1.0, 2.0, 0.0]]), np.array([0.2, -1.0])
    gw2, gb2 = np.array([[0.0, 0.9, 0.0], [-1.0, 0.0, 0.5]]), np.array([0.1, 0.0])
    W0, b0 = W.copy(), b.copy()
    opt.step([W, b], [gw1.copy(), gb1.copy()])
    opt.step([W, b], [gw2.copy(), gb2.copy()])
    exp_W, exp_b = W0.copy(), b0.copy()
    row_sum, bias_sum = np.zeros(2), np.zeros(2)
    for gw, gb in ((gw1, gb1), (gw2, gb2)):
        for j in range(2):
            row_sum[j] += sum(g * g for g in gw[j]) / 3
            exp_W[j] -= 0.1 / (1e-6 + np.sqrt(row_sum[j])) * gw[j]
            bias_sum[j] += gb[j] ** 2
            exp_b[j] -= 0.1 / (1e-6 + np.sqrt(bias_sum[j])) * gb[j]
    np.testing.assert_allclose(W, exp_W, rtol=1e-12)
    np.testing.assert_allclose(b, exp_b, rtol=1e-12)
    assert opt.velocity == [] and [a.shape for a in opt.sq_sum] == [(2,), (2,)]
