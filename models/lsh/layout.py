"""Packing an LSH network's parameters and settings into the flat arrays the kernels read
(see ``kernels``' docstring for the layout and the meaning of every index)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.lsh import kernels as k
from models.lsh.config import LSHConfig
from models.lsh.hashing import HashFamily
from models.optim import ADAGRAD_EPS, OPTIMIZERS

# the kernels' optimizer codes are indices in OPTIMIZERS
assert OPTIMIZERS.index("sgd") == k.OPT_SGD and OPTIMIZERS.index("momentum") == k.OPT_MOMENTUM
assert OPTIMIZERS.index("adagrad_momentum") == k.OPT_ADAGRAD_MOMENTUM
assert OPTIMIZERS.index("rowwise_adagrad") == k.OPT_ROWWISE_ADAGRAD

# entries per weight in W: the weight, then its velocity and Adagrad sum where the
# optimizer keeps them per weight (rowwise_adagrad keeps its state per neuron, in VB)
STRIDE = {"sgd": 1, "momentum": 2, "adagrad_momentum": 3, "rowwise_adagrad": 1}


@dataclass(frozen=True)
class Packed:
    """The kernels' arrays, and views of the weights and biases into them (the output
    layer's transposed: it is stored input-major)."""

    layout: k.Layout
    params: k.Params
    P: np.ndarray  # every hidden layer's query projections, one after the other
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    n_weights: int
    max_width: int  # the widest layer input (the scratch arrays' length)
    # slots[s][l]: (n_out, n_in) views of entry s of layer l's weights (0 the weights, 1 the
    # velocity, 2 the Adagrad sum, as the optimizer keeps them): train_mode="batch" gathers
    # and scatters blocks of them
    slots: list[list[np.ndarray]]


def pack(cfg: LSHConfig, weights: list[np.ndarray], biases: list[np.ndarray],
         families: list[HashFamily], caps: list[int], dtype: np.dtype) -> Packed:
    """All weights in one flat buffer, each followed by its optimizer state: a sparse
    update then touches one cache line per weight, not three. Hidden layers are stored
    neuron-major (a row of incoming weights per neuron); the dense output layer
    input-major, so an active input's n_out weights share one or two cache lines instead
    of n_out."""
    sizes = cfg.layer_sizes
    D = len(sizes) - 1
    H = D - 1
    st = STRIDE[cfg.optimizer]
    n_w = sum(w.size for w in weights)
    W = np.zeros(n_w * st, dtype)
    grid = W.reshape(n_w, st)
    grid[:, 0] = np.concatenate([w.ravel() for w in weights[:-1]] + [weights[-1].T.ravel()])
    # Each neuron's bias and optimizer state share one 64-byte line of their own (B, VB
    # and AB are strided views of it): Hogwild threads update the biases of different
    # neurons, which packed 16 to a line would bounce between cores on every write.
    n_b = sum(b.size for b in biases)
    per_line = max(3, 64 // dtype.itemsize)
    raw = np.zeros((n_b + 1) * per_line, dtype)  # one slot spare: aligned to 64 bytes
    skip = (-raw.__array_interface__["data"][0] % 64) // dtype.itemsize
    neuron_state = raw[skip : skip + n_b * per_line]
    B = neuron_state[0::per_line]
    B[:] = np.concatenate(biases)
    woff = np.cumsum([0] + [w.size for w in weights])
    boff = np.cumsum([0] + [b.size for b in biases])
    slots = []
    for s in range(st):
        views = [grid[woff[i] : woff[i + 1], s].reshape(sizes[i + 1], sizes[i])
                 for i in range(H)]
        views.append(grid[woff[H] :, s].reshape(sizes[H], sizes[H + 1]).T)
        slots.append(views)
    wviews = slots[0]
    bviews = [B[boff[i] : boff[i + 1]] for i in range(D)]
    assert all(np.shares_memory(w, W) for w in wviews)  # views, not copies
    # the bias's velocity (rowwise_adagrad: the row's squared-gradient sum) and Adagrad sum;
    # always views of the same kind, so the kernels compile once for every optimizer
    VB, AB = neuron_state[1::per_line], neuron_state[2::per_line]

    KL = cfg.K * cfg.L
    meta = np.zeros((D, k.N_META), np.int64)
    poff = 0
    pblocks = []
    for i in range(D):
        meta[i, k.M_N_IN], meta[i, k.M_N_OUT] = sizes[i], sizes[i + 1]
        meta[i, k.M_WOFF], meta[i, k.M_BOFF] = woff[i], boff[i]
        if i < H:
            fam = families[i]
            meta[i, k.M_POOL], meta[i, k.M_DP] = fam.pool, fam.dp
            meta[i, k.M_POFF], meta[i, k.M_CAP] = poff, caps[i]
            pblocks.append(fam.query_matrix().ravel())
            poff += (fam.dp + 1) * KL
    P = np.concatenate(pblocks).astype(dtype) if pblocks else np.zeros(1, dtype)
    max_width = int(max(sizes[:-1]))
    ip = np.zeros(k.N_IP, np.int64)
    ip[k.I_K], ip[k.I_L], ip[k.I_CAPACITY] = cfg.K, cfg.L, cfg.bucket_capacity
    ip[k.I_SELECTION] = k.SELECTION_CODES[cfg.selection]
    ip[k.I_MIN_COUNT], ip[k.I_PAD] = cfg.min_count, int(cfg.pad_random)
    ip[k.I_OPTIMIZER] = OPTIMIZERS.index(cfg.optimizer)
    ip[k.I_OVERFLOW] = k.OVERFLOW_CODES[cfg.overflow]
    ip[k.I_MAX_WIDTH], ip[k.I_HIDDEN], ip[k.I_STRIDE] = max_width, H, st
    hp = np.zeros(k.N_HP, dtype)
    hp[k.H_LR], hp[k.H_MOMENTUM], hp[k.H_L2] = cfg.lr, cfg.momentum, cfg.l2
    hp[k.H_EPS], hp[k.H_INV_M] = ADAGRAD_EPS, 1.0
    return Packed(layout=k.Layout(meta, ip, hp), params=k.Params(W, B, VB, AB), P=P,
                  weights=wviews, biases=bviews, n_weights=n_w, max_width=max_width,
                  slots=slots)
