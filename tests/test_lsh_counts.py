"""Counted multiplications equal what a slow pure-Python replay of the same steps (same
active sets, same order) multiplies; the replay's weights equal the kernels' too."""

from __future__ import annotations

import math

import numpy as np
import pytest

import models
from models.lsh import kernels
from models.optim import ADAGRAD_EPS, MULTS_PER_PARAM


def _update(w, v, a, g, cfg, l2):  # type: ignore[no-untyped-def]
    """models.optim's rule on one scalar; returns new (w, v, a) and multiplications."""
    m = 0
    if l2 > 0:
        g = g + l2 * w
        m += 1
    if cfg.optimizer == "rowwise_adagrad":  # only biases come here: each is its own row
        a = a + g * g
        return w - g * (cfg.lr / (ADAGRAD_EPS + math.sqrt(a))), v, a, m + 3
    m += MULTS_PER_PARAM[cfg.optimizer]
    if cfg.optimizer == "sgd":
        return w - cfg.lr * g, v, a, m
    if cfg.optimizer == "momentum":
        v = cfg.momentum * v + cfg.lr * g
        return w - v, v, a, m
    a = a + g * g
    v = cfg.momentum * v + g * (cfg.lr / (ADAGRAD_EPS + math.sqrt(a)))
    return w - v, v, a, m


def _rowwise(W, S, j, dz, cols, cfg, c):  # type: ignore[no-untyped-def]
    """Row-wise Adagrad on row j of W (its row sum kept in S[j, 0]): the mean of the row's
    squared gradient over all n_in entries (untouched ones are zero), then one step. Without
    L2 the kernel factors it as dz^2 * sum(x^2) / n_in and steps by (dz * step) * x."""
    n_in = W.shape[1]
    if cfg.l2 == 0:
        sx2 = sum(v * v for _, v in cols)  # once per layer in the kernel: counted there
        S[j, 0] += dz * dz * sx2 / n_in
        s = dz * (cfg.lr / (ADAGRAD_EPS + math.sqrt(S[j, 0])))
        for i, v in cols:
            W[j, i] -= s * v
        c["backward"] += len(cols)
        c["update"] += 5
        return
    g = {i: dz * v + cfg.l2 * W[j, i] for i, v in cols}
    S[j, 0] += sum(gi * gi for gi in g.values()) / n_in
    step = cfg.lr / (ADAGRAD_EPS + math.sqrt(S[j, 0]))
    for i in g:
        W[j, i] -= step * g[i]
    c["backward"] += len(cols)
    c["update"] += 5 * len(cols) + 2  # l2*w, g*g; dz*x, l2*w, step*g again; mean, step


def _train_recorded(net, X, y):  # type: ignore[no-untyped-def]
    """One epoch through the kernels, keeping each example's active sets: (stats, the
    epoch's order, (sets, sizes) per trained example)."""
    rec = kernels.new_record(X.shape[0], len(net.config.hidden), net._maxw)
    st = net._train_epoch(X, y, rec)
    return st, st.extra["order"], (rec.sets, rec.n)


def _replay(net, X, y, W, B, order, active):  # type: ignore[no-untyped-def]
    cfg = net.config
    KL = cfg.K * cfg.L
    H = len(cfg.hidden)
    VW = [np.zeros_like(w) for w in W]
    AW = [np.zeros_like(w) for w in W]
    VB = [np.zeros_like(b) for b in B]
    AB = [np.zeros_like(b) for b in B]
    c = {"forward": 0, "backward": 0, "update": 0, "hashing": 0, "forward_hidden": 0}
    sets, sizes = active
    for e, ex in enumerate(order):
        x = X[ex]
        nz = [(i, x[i]) for i in range(x.size) if x[i] != 0]
        levels = [nz]
        for h in range(H):
            pool = cfg.pool_input if h == 0 else cfg.pool_hidden
            groups = {}
            for i, v in nz:
                groups[i // pool] = groups.get(i // pool, 0.0) + v
            c["hashing"] += sum(1 for g in groups.values() if g != 0) * KL
            S = sets[e, h, : sizes[e, h]]
            out = []
            for j in S:
                z = B[h][j] + sum(W[h][j, i] * v for i, v in nz)
                c["forward"] += len(nz)
                c["forward_hidden"] += len(nz)
                if z > 0:
                    out.append((int(j), z))
            nz = out
            levels.append(nz)
        logits = np.array([B[H][k] + sum(W[H][k, i] * v for i, v in nz)
                           for k in range(cfg.n_classes)])
        c["forward"] += cfg.n_classes * len(nz)
        p = np.exp(logits - logits.max())
        p = p / p.sum()
        c["forward"] += cfg.n_classes
        p[y[ex]] -= 1.0
        dz_rows = [(k, p[k]) for k in range(cfg.n_classes)]
        for layer in range(H, -1, -1):
            cols = levels[layer]
            dA = [sum(dz * W[layer][j, i] for j, dz in dz_rows) for i, _ in cols]
            if layer > 0:
                c["backward"] += len(dz_rows) * len(cols)
            if cfg.optimizer == "rowwise_adagrad" and cfg.l2 == 0 and dz_rows:
                c["update"] += len(cols)  # the layer's sum(x^2)
            for j, dz in dz_rows:
                if cfg.optimizer == "rowwise_adagrad":
                    _rowwise(W[layer], VW[layer], j, dz, cols, cfg, c)
                else:
                    for i, v in cols:
                        g = dz * v
                        c["backward"] += 1
                        W[layer][j, i], VW[layer][j, i], AW[layer][j, i], m = _update(
                            W[layer][j, i], VW[layer][j, i], AW[layer][j, i], g, cfg, cfg.l2)
                        c["update"] += m
                B[layer][j], VB[layer][j], AB[layer][j], m = _update(
                    B[layer][j], VB[layer][j], AB[layer][j], dz, cfg, 0.0)
                c["update"] += m
            dz_rows = [(j, d) for (j, _), d in zip(cols, dA, strict=True)]
    return c


@pytest.mark.parametrize(
    "extra",
    [
        {"optimizer": "adagrad_momentum", "l2": 0.01, "pool_input": 2},
        {"optimizer": "momentum", "hash_family": "simple_lsh", "selection": "threshold"},
        {"optimizer": "sgd", "pad_random": True, "pool_hidden": 3},
        {"optimizer": "rowwise_adagrad"},
        {"optimizer": "rowwise_adagrad", "l2": 0.01, "selection": "hamming"},
    ],
)
def test_counts_equal_pure_python_replay(extra: dict) -> None:
    cfg = {"n_inputs": 14, "n_classes": 3, "hidden": [10, 8], "dtype": "float64",
           "active_fraction": 0.4, "K": 3, "L": 4, "lr": 0.05, "min_count": 1,
           "rebuild": "fixed", "rebuild_interval": 10**9, **extra}
    net = models.build("lsh", cfg)
    rng = np.random.default_rng(2)
    X = rng.random((12, 14))
    X[X < 0.4] = 0
    y = rng.integers(0, 3, 12)
    W = [w.copy() for w in net.weights_]
    B = [b.copy() for b in net.biases_]
    st, order, active = _train_recorded(net, X, y)
    ref = _replay(net, X, y, W, B, order, active)
    got = {**st.mults.as_dict(), "forward_hidden": st.extra["mults_forward_hidden"]}
    for phase, value in ref.items():
        assert value > 0 and got[phase] == value, phase
    # the initial table build: every neuron projected onto K*L directions
    KL = net.config.K * net.config.L
    reb = 0
    for h, fam in enumerate(net.families_):
        n, d = net.config.hidden[h], fam.dp + 1
        reb += n * d * KL + (n * d + n * KL if fam.name == "simple_lsh" else 0)
    assert got["rebuild"] == reb
    for a, b in zip(net.weights_ + net.biases_, W + B, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert st.active_fraction == pytest.approx(
        active[1].sum() / (12 * sum(net.config.hidden)))
