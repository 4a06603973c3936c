"""``train_mode="batch"``: mini-batches trained through BLAS on a gathered sub-network.
New here, not the paper's method.

For each batch of ``batch_size`` examples and each hidden layer, ``batch_sets`` picks the
neurons S of the block:

- ``shared``: the layer's input, averaged over the batch, is hashed once and selects S (by
  the configured selection, as one example would), so S holds the neurons whose mean
  pre-activation over the batch the hashes rank highest; every example uses all of S.
- ``per_example``: each example's own input is hashed and selects its own set, exactly as
  in the per-example mode (``kernels.select_rows``); S is their union, and each example's
  pre-activations outside its own set are masked to zero, so every example computes the
  sparse network the paper's protocol gives it, and only the weights are shared for the
  batch's one step. The union grows with the batch: it pays the gather for neurons that
  few examples use.

The layer's input columns C are those non-zero for some example of the batch (for a hidden
layer: the previous block's neurons with a positive output somewhere in the batch). The
block W[S, C] is gathered once and the batch goes through it as one dense product;
backward computes the batch-mean gradients of the touched block (rows: the block's neurons
with a positive output somewhere in the batch), and the optimizer's rule (models.optim's,
in the same operation order) updates only that block, lazily as the per-example mode does.
The gather costs one random access per weight of the block per batch instead of one per
weight per example, which is what the per-example mode pays at width.

With every neuron active (active_fraction 1) on inputs with no all-zero column this is
the dense network's mini-batch step, and its counts are the dense network's counts (plus
hashing): the tests check both.

``loss_and_grads`` and inference stay per example (each example's own hashed set): the
batch's block exists only while it trains.

Counts (exact, of what runs here): a product (m x k)(k x n) counts m*k*n; the masks count
one product per example and neuron of S, as forward; the shared batch mean of the query
counts its |C| scalings as hashing, plus what each query's hashing kernel counts; the
optimizer's rules count as models.optim.update_mults on the block's shape.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from models.base import softmax_xent
from models.lsh import kernels
from models.optim import ADAGRAD_EPS, update_mults

if TYPE_CHECKING:
    from models.lsh.network import LSHNet


def _step_block(kind: str, lr: float, mu: float, l2: float, rows: np.ndarray,
                cols: np.ndarray | None, g: np.ndarray, slots: list[np.ndarray],
                row_acc: np.ndarray | None, n_in: int) -> int:
    """models.optim.Optimizer.step on the block (rows x cols) of a weight matrix whose
    entries are ``slots`` (weight, velocity, Adagrad sum views), or (cols None) on the
    ``rows`` entries of a bias vector (``slots``: bias, its velocity, its sum). ``row_acc``
    holds rowwise_adagrad's per-row sums; untouched entries of a row count as zero
    gradients in its mean over all ``n_in`` columns. ``g`` is consumed."""
    def get(a: np.ndarray) -> np.ndarray:
        if cols is None:
            return a[rows]
        return _gather(a, rows, cols)

    def put(a: np.ndarray, v: np.ndarray) -> None:
        if cols is None:
            a[rows] = v
        else:
            kernels.scatter_block(a, rows, cols, v)

    p = get(slots[0])
    if l2 > 0:
        g += l2 * p
    mults = update_mults(kind, g.shape, l2)
    if kind == "sgd":
        g *= lr
        p -= g
    elif kind == "rowwise_adagrad":
        if cols is not None:
            assert row_acc is not None
            acc = row_acc[rows] + (g * g).sum(axis=1) / n_in
            row_acc[rows] = acc
            step = lr / (ADAGRAD_EPS + np.sqrt(acc))
            g *= step[:, None]
        else:
            acc = slots[1][rows] + g * g
            slots[1][rows] = acc
            g *= lr / (ADAGRAD_EPS + np.sqrt(acc))
        p -= g
    else:
        v = get(slots[1])
        v *= mu
        if kind == "momentum":
            g *= lr
        else:
            acc = get(slots[2]) + g * g
            put(slots[2], acc)
            g *= lr / (ADAGRAD_EPS + np.sqrt(acc))
        v += g
        p -= v
        put(slots[1], v)
    put(slots[0], p)
    return mults


def _gather(M: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.empty((rows.size, cols.size), M.dtype)
    kernels.gather_block(M, rows, cols, out)
    return out


def _bounds(lay: kernels.Layout, layer: int) -> slice:
    """The layer's neurons in B, VB and AB."""
    lo = int(lay.meta[layer, kernels.M_BOFF])
    return slice(lo, lo + int(lay.meta[layer, kernels.M_N_OUT]))


def _bias_slots(net: LSHNet, layer: int) -> list[np.ndarray]:
    """The bias of a layer and its optimizer state, as views (see kernels' layout)."""
    prm, b = net._prm, _bounds(net._lay, layer)
    kind = net.config.optimizer
    if kind == "sgd":
        return [prm.B[b]]
    if kind == "momentum":
        return [prm.B[b], prm.VB[b]]
    if kind == "rowwise_adagrad":  # VB holds the weights' row sums, AB the bias's
        return [prm.B[b], prm.AB[b]]
    return [prm.B[b], prm.VB[b], prm.AB[b]]


def _shared_set(ly: int, cols: np.ndarray, Ac: np.ndarray, inv_m: float, net: LSHNet,
                idx: kernels.Index, state: np.ndarray, sel: np.ndarray, cnt: np.ndarray
                ) -> tuple[np.ndarray, int, int, int]:
    """batch_sets="shared": layer ly's active set selected by hashing the batch's mean
    input (``Ac``, the batch's inputs on ``cols``), sorted (the gather walks rows in
    order); with its paddings, hashing and forward multiplications. The mean's scalings
    are counted as hashing here."""
    q = Ac.sum(axis=0)
    q *= inv_m  # the batch's mean input (the bias coordinate stays 1)
    cnt[kernels.F_HASH] += cols.size
    nz = np.flatnonzero(q)
    s, pd, m_hash, m_ex = kernels.select_query(
        ly, cols[nz].astype(np.int32), np.ascontiguousarray(q[nz]), nz.size, net._lay,
        net._prm, idx, state, sel)
    return np.sort(sel[:s]).astype(np.int64), pd, m_hash, m_ex


def train_segment(net: LSHNet, X: np.ndarray, y: np.ndarray, order: np.ndarray, seed: int,
                  stats: kernels.ThreadStats, rec: kernels.Record | None,
                  times: dict[str, float]) -> None:
    """Train the examples ``order`` of X in batches of ``batch_size``; counts, loss sum,
    active nodes and paddings go to row 0 of ``stats`` (F_* slots; the C_* slots get
    nanoseconds by phase), phase seconds to ``times``; with ``rec``, row e the active
    sets of example order[e]."""
    cfg = net.config
    H = len(cfg.hidden)
    lay, prm, idx = net._lay, net._prm, net._index()
    slots = net._slots
    kind, lr, mu, l2 = cfg.optimizer, cfg.lr, cfg.momentum, cfg.l2
    maxw = net._maxw
    one = net.dtype_.type(1.0)
    state = np.array([seed], np.uint64)
    sel = np.empty(maxw, np.int32)
    cnt = stats.cnt[0]
    row_acc: list[np.ndarray | None] = (
        [prm.VB[_bounds(lay, ly)] for ly in range(H + 1)] if kind == "rowwise_adagrad"
        else [None] * (H + 1))
    bslots = [_bias_slots(net, ly) for ly in range(H + 1)]
    bs = cfg.batch_size
    own = cfg.batch_sets == "per_example"
    mark = np.full(maxw, -1, np.int32)  # select_rows' scratch
    clock = time.perf_counter
    for start in range(0, order.shape[0], bs):
        batch = order[start : start + bs]
        m = batch.shape[0]
        inv_m = one / m
        A = X[batch]
        cols = np.flatnonzero(np.any(A != 0, axis=0))
        Ac = A[:, cols]
        t_sel = t_gather = t_fwd = 0.0
        # per hidden layer: its input columns, its input block, active set, weight block,
        # and which of the active neurons had a positive output somewhere in the batch
        layers = []
        for ly in range(H):
            ta = clock()
            if own:  # each example's own set; the block spans their union
                S, mask, sets, sizes, pd, m_hash, m_ex = kernels.select_rows(
                    ly, cols, Ac, lay, prm, idx, state, mark)
                stats.active[0] += int(sizes.sum())
                if rec is not None:
                    rec.n[start : start + m, ly] = sizes
                    rec.sets[start : start + m, ly, : sets.shape[1]] = sets
            else:
                S, pd, m_hash, m_ex = _shared_set(ly, cols, Ac, inv_m, net, idx, state, sel,
                                                  cnt)
                mask = None
                stats.active[0] += m * S.size
                if rec is not None:
                    rec.n[start : start + m, ly] = S.size
                    rec.sets[start : start + m, ly, : S.size] = S
            cnt[kernels.F_HASH] += m_hash
            cnt[kernels.F_FWD] += m_ex
            stats.pad[0] += pd
            s = S.size
            tb = clock()
            Wb = _gather(slots[0][ly], S, cols)
            tc = clock()
            Z = Ac @ Wb.T
            Z += prm.B[int(lay.meta[ly, kernels.M_BOFF]) + S]
            cnt[kernels.F_FWD] += m * cols.size * s
            if mask is not None:  # outside an example's own set its neurons are off
                Z *= mask
                cnt[kernels.F_FWD] += mask.size
            np.maximum(Z, 0, out=Z)
            live = np.flatnonzero(np.any(Z > 0, axis=0))
            layers.append((cols, Ac, Wb, live))
            cols, Ac = S[live], Z[:, live]
            t_sel += tb - ta
            t_gather += tc - tb
            t_fwd += clock() - tc
        tb = clock()
        Wo = slots[0][H][:, cols]
        tc = clock()
        logits = Ac @ Wo.T
        logits += bslots[H][0]
        n_cls = cfg.n_classes
        cnt[kernels.F_FWD] += m * cols.size * n_cls
        cnt[kernels.F_FWD_OUT] += m * cols.size * n_cls
        loss, dZ = softmax_xent(logits, y[batch])
        if not np.isfinite(loss):
            stats.loss[0] += loss  # the caller locates divergence to the segment
            return
        stats.loss[0] += loss * m
        cnt[kernels.F_FWD] += dZ.size  # the softmax's divisions
        cnt[kernels.F_FWD_OUT] += dZ.size
        t_gather += tc - tb
        t_fwd += clock() - tc
        # -- backward: the batch mean's gradients; each block's dA from its old weights
        td = clock()
        t_upd = 0.0
        dZ[np.arange(m), y[batch]] -= 1.0
        dZ *= inv_m
        cnt[kernels.F_BWD] += dZ.size
        rows = np.arange(n_cls)
        block = Wo
        for ly in range(H, -1, -1):
            cin, Ain = (cols, Ac) if ly == H else layers[ly][:2]
            G = dZ.T @ Ain
            gb = dZ.sum(axis=0)
            cnt[kernels.F_BWD] += m * rows.size * cin.size
            if ly > 0:
                dA = dZ @ block
                cnt[kernels.F_BWD] += m * rows.size * cin.size
            te = clock()
            cnt[kernels.F_UPD] += _step_block(kind, lr, mu, l2, rows, cin, G,
                                              [v[ly] for v in slots], row_acc[ly],
                                              cfg.layer_sizes[ly])
            cnt[kernels.F_UPD] += _step_block(kind, lr, mu, 0.0, rows, None, gb, bslots[ly],
                                              None, 1)
            if ly < H:
                net._dirty[ly * maxw + rows] = 1
            t_upd += clock() - te
            if ly == 0:
                break
            # the layer below's rows: its neurons with a positive output (this block's
            # input columns), their weights already gathered in its forward block
            dA[Ain <= 0] = 0  # ReLU derivative
            dZ = dA
            _, _, Wb_below, live_below = layers[ly - 1]
            rows, block = cin, Wb_below[live_below]
        t_end = clock()
        cnt[kernels.C_SELECT] += int(t_sel * 1e9)
        cnt[kernels.C_FWD] += int((t_fwd + t_gather) * 1e9)
        cnt[kernels.C_BWD] += int((t_end - td) * 1e9)
        for key, v in (("select", t_sel), ("gather", t_gather), ("forward_blas", t_fwd),
                       ("backward_blas", t_end - td - t_upd), ("update_scatter", t_upd)):
            times[key] = times.get(key, 0.0) + v
