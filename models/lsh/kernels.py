"""Numba kernels of the LSH network: pure functions over flat arrays, compiled once (cache=True).

Layout (packed by ``layout.pack``; every index into ``meta``, ``ip`` and ``hp`` is one of the
named module-level constants below, which numba compiles in as constants):

- ``W`` holds each weight with its optimizer state beside it: entry (j, i) of a hidden layer
  is ``W[(woff + j*n_in + i)*st + s]`` (neuron-major; the dense output layer is input-major,
  ``W[(woff + i*n_out + j)*st + s]``) with s = 0 the weight, 1 the velocity, 2 the Adagrad
  sum (``st`` = 1 for sgd and rowwise_adagrad, 2 momentum, 3 adagrad_momentum). A sparse
  update touches one cache line per weight instead of three (measured 3.4x faster on random
  rows than separate arrays).
- ``B`` the biases; ``VB``, ``AB`` per-neuron optimizer state: the bias's velocity and
  Adagrad sum, except for rowwise_adagrad, where ``VB`` holds each neuron's row sum (mean
  squared gradient of its weights, summed over steps) and ``AB`` the bias's sum.
- ``meta`` int64 (n_layers, N_META), one row per weight layer, columns ``M_*``.
- ``ip`` int64 (N_IP,): integer settings, entries ``I_*``; ``hp`` (the weights' dtype,
  (N_HP,)): real settings, entries ``H_*``.
- Tables: ``tab`` int32 (H, L, 2^K, C) flattened, ``tsize`` int32 (H, L, 2^K) slots used;
  ``sk`` uint64 packed sketches (layer, word, neuron).

The kernels take these bundled in NamedTuples (``Layout``, ``Params``, ``Index``) and unpack
them on entry; numba compiles a NamedTuple's fields as separate arguments, at no cost.

Counts: every kernel adds, per example, the number of floating-point multiplications (and
divisions) its loops perform into ``cnt`` (forward, backward, update, hashing): integer sums
of loop trip counts, never per-element increments.

Randomness (probe order, padding, reservoir) comes from a splitmix64 state passed in by the
caller, one per thread chunk: no global generator is used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

_FM = {"reassoc", "contract"}  # reorder sums (SIMD); no unsafe NaN/inf assumptions

# count slots: multiplications (F_FWD_OUT: the part of F_FWD spent in the output layer and
# softmax, so the hidden layers' forward work can be reported apart, as the paper counts),
# then cycles spent hashing queries, selecting, forward, backward + update
F_FWD, F_BWD, F_UPD, F_HASH, F_FWD_OUT = 0, 1, 2, 3, 4
C_HASH, C_SELECT, C_FWD, C_BWD = 5, 6, 7, 8
N_SLOTS = 9
MODE_TRAIN, MODE_GRAD, MODE_INFER = 0, 1, 2

# meta columns, per weight layer: n_in, n_out, offset of the layer's block in W (in weights)
# and in B, pooling block size before hashing, pooled input width dp, offset of the layer's
# query projections ((dp + 1) x K*L, the last row the bias's) in P, active-set cap
M_N_IN, M_N_OUT, M_WOFF, M_BOFF, M_POOL, M_DP, M_POFF, M_CAP = range(8)
N_META = 8
# ip entries: bits per table, tables, bucket capacity, selection (SEL_*), min_count, pad
# (0/1), optimizer (OPT_*), overflow (OVERFLOW_*), max hidden width, hidden layers, st
I_K, I_L, I_CAPACITY, I_SELECTION, I_MIN_COUNT, I_PAD, I_OPTIMIZER, I_OVERFLOW = range(8)
I_MAX_WIDTH, I_HIDDEN, I_STRIDE = 8, 9, 10
N_IP = 11
# hp entries: learning rate, momentum, L2, Adagrad epsilon, and the factor gradients are
# accumulated with in MODE_GRAD (1 / batch size; 1 otherwise)
H_LR, H_MOMENTUM, H_L2, H_EPS, H_INV_M = range(5)
N_HP = 5
SEL_TOPK, SEL_THRESHOLD, SEL_UNION, SEL_EXACT, SEL_HAMMING = range(5)
SELECTION_CODES = {"topk": SEL_TOPK, "threshold": SEL_THRESHOLD, "union": SEL_UNION,
                   "exact": SEL_EXACT, "hamming": SEL_HAMMING}
OVERFLOW_RESERVOIR, OVERFLOW_FIFO = 0, 1
OVERFLOW_CODES = {"reservoir": OVERFLOW_RESERVOIR, "fifo": OVERFLOW_FIFO}
# index in models.optim.OPTIMIZERS (layout.pack checks the order)
OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD_MOMENTUM, OPT_ROWWISE_ADAGRAD = range(4)


class Layout(NamedTuple):
    """What the kernels know of the network: ``meta``, ``ip``, ``hp`` (see above)."""

    meta: np.ndarray
    ip: np.ndarray
    hp: np.ndarray


class Params(NamedTuple):
    """Weights with their interleaved state, biases, the biases' (or rows') state."""

    W: np.ndarray
    B: np.ndarray
    VB: np.ndarray
    AB: np.ndarray


class Index(NamedTuple):
    """The query projections and the tables selection reads."""

    P: np.ndarray
    tab: np.ndarray
    tsize: np.ndarray
    sk: np.ndarray


class Record(NamedTuple):
    """Per example and hidden layer: the active set (``sets``, -1 padded) and its size;
    written when a kernel's ``record`` flag is set (else 1-element placeholders)."""

    sets: np.ndarray
    n: np.ndarray


class ThreadStats(NamedTuple):
    """Per thread chunk (row c): counters (N_SLOTS), summed loss, active nodes, paddings."""

    cnt: np.ndarray
    loss: np.ndarray
    active: np.ndarray
    pad: np.ndarray


class Scratch(NamedTuple):
    """Per-thread working arrays of one example (see ``_scratch``)."""

    aidx: np.ndarray  # (H + 1, maxw) int32: each level's non-zero inputs ...
    aval: np.ndarray  # ... and their values (level 0 the input, level l+1 layer l's output)
    acnt: np.ndarray  # (H + 1,) non-zeros per level
    sel: np.ndarray  # (H, maxw) int32: each layer's active set
    counts: np.ndarray  # (maxw,) collision counts (zero between uses)
    touched: np.ndarray  # neurons with a count; hamming's distances
    hist: np.ndarray  # (L + 2,) histogram of collision counts
    acc: np.ndarray  # (K*L,) the query's projections
    pooled: np.ndarray  # (max dp + 1,) the pooled input
    logits: np.ndarray  # (n_classes,) logits, then probabilities, then dZ
    cstep: np.ndarray  # (n_classes,) row-wise Adagrad's step per class
    dA: np.ndarray  # (maxw,) gradient at the current level's inputs
    dA2: np.ndarray  # (maxw,) ... being accumulated for the level below
    qw: np.ndarray  # hamming's query words, then its two bit masks


def empty_record() -> Record:
    return Record(np.zeros((1, 1, 1), np.int32), np.zeros((1, 1), np.int32))


def new_record(n: int, n_hidden: int, max_width: int) -> Record:
    return Record(np.full((n, n_hidden, max_width), -1, np.int32),
                  np.zeros((n, n_hidden), np.int32))


def new_stats(n_chunks: int) -> ThreadStats:
    return ThreadStats(np.zeros((n_chunks, N_SLOTS), np.int64), np.zeros(n_chunks),
                       np.zeros(n_chunks, np.int64), np.zeros(n_chunks, np.int64))


@njit(cache=True, inline="always")
def _rand(state: np.ndarray) -> np.uint64:
    """splitmix64: next 64-bit value from state[0]."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _randint(state: np.ndarray, n: int) -> int:
    return int((_rand(state) >> np.uint64(11)) % np.uint64(n))


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's ctpop on a uint64 (one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fn = builder.module.declare_intrinsic("llvm.ctpop", [args[0].type])
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _cycles(typingctx):  # type: ignore[no-untyped-def]
    """The CPU's cycle counter (RDTSC): a time profile of the kernels' phases for the cost
    of a few instructions per phase and example."""
    sig = types.int64()

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True)
def pack_sketches(proj: np.ndarray, rows: np.ndarray, sk: np.ndarray, layer: int,
                  maxw: int) -> None:
    """Sign bits of each neuron's K*L projections, 64 to a word, into the flat sketch
    array, word-major: (layer, word, neuron), so that ranking streams each word over
    consecutive neurons (one vector popcount per 8 neurons)."""
    nw = (proj.shape[1] + 63) // 64
    for r in range(rows.shape[0]):
        for w in range(nw):
            word = np.uint64(0)
            for b in range(64 * w, min(64 * w + 64, proj.shape[1])):
                if proj[r, b] > 0:
                    word |= np.uint64(1) << np.uint64(b - 64 * w)
            sk[(layer * nw + w) * maxw + rows[r]] = word


@njit(cache=True, inline="always")
def _emit_bits(words, lo, hi, sel, n_sel, limit):
    """Append to sel the positions j in [lo, hi) whose bit is set in ``words`` (bit j % 64
    of word j // 64), in increasing order, until n_sel reaches ``limit``."""
    one = np.uint64(1)
    b = lo // 64
    while b * 64 < hi and n_sel < limit:
        m = words[b]
        if b * 64 < lo:  # clear the bits below lo
            m &= ~((one << np.uint64(lo - b * 64)) - one)
        if hi - b * 64 < 64:  # and those from hi on
            m &= (one << np.uint64(hi - b * 64)) - one
        while m != 0 and n_sel < limit:
            low = m & (~m + one)  # lowest set bit; its index is popcount(low - 1)
            sel[n_sel] = b * 64 + np.int64(_popcount(low - one))
            n_sel += 1
            m ^= low
        b += 1
    return n_sel


@njit(cache=True, inline="always")
def _select_hamming(acc, layer, n_out, cap, KL, maxw, sk, dist, qw, sel, state):
    """All neurons ranked by how many of the K*L sign bits their sketch shares with the
    query's (SimHash angle estimate); the cap closest are kept, ties from a random start.

    Every step is a branch-free pass over the layer that vectorises: distances by vector
    popcount, the cap-th smallest distance by binary search on vectorised counts, then
    64-neuron bit masks of "closer" and "tied" whose set bits are the selection (only
    ~cap of them, so extracting them costs little). ``dist`` needs room for n_out rounded
    up to 64; ``qw`` holds the query's words, then the two masks."""
    nw = (KL + 63) // 64
    for w in range(nw):  # the query's sign bits, packed without branches
        aw = acc[64 * w : min(64 * w + 64, KL)]
        word = np.uint64(0)
        for b in range(aw.shape[0]):
            word |= np.uint64(aw[b] > 0) << np.uint64(b)
        qw[w] = word
    # word-major sketches: each word's loop runs over consecutive neurons (VPOPCNTQ); each
    # word's row is a slice, so its indices from 0 are provably non-negative and the loop
    # vectorises (no negative-index wraparound)
    base = layer * nw * maxw
    q0 = qw[0]
    s0 = sk[base : base + n_out]
    for j in range(n_out):
        dist[j] = np.int32(_popcount(q0 ^ s0[j]))
    for w in range(1, nw):
        qv = qw[w]
        sw = sk[base + w * maxw : base + w * maxw + n_out]
        for j in range(n_out):
            dist[j] += np.int32(_popcount(qv ^ sw[j]))
    nblk = (n_out + 63) // 64
    for j in range(n_out, nblk * 64):
        dist[j] = np.int32(KL + 1)  # padding: never selected
    # d* = the smallest distance with at least `take` neurons at or below it
    take = min(cap, n_out)
    lo, hi = 0, KL
    while lo < hi:
        mid = np.int32((lo + hi) // 2)
        c = np.int32(0)
        for j in range(n_out):  # int32 throughout: 16 lanes a vector, not 4
            c = np.int32(c + np.int32(dist[j] <= mid))
        if c >= take:
            hi = mid
        else:
            lo = mid + 1
    dstar = np.int32(lo)
    lt = qw[nw : nw + nblk]
    eq = qw[nw + nblk : nw + 2 * nblk]
    for b in range(nblk):
        ml = np.uint64(0)
        me = np.uint64(0)
        db = dist[b * 64 : b * 64 + 64]
        for t in range(64):
            d = db[t]
            ml |= np.uint64(d < dstar) << np.uint64(t)
            me |= np.uint64(d == dstar) << np.uint64(t)
        lt[b] = ml
        eq[b] = me
    # everything closer than d*, then the ties from `start` on, wrapping round
    n_sel = _emit_bits(lt, 0, n_out, sel, 0, take)
    start = _randint(state, n_out)
    n_sel = _emit_bits(eq, start, n_out, sel, n_sel, take)
    n_sel = _emit_bits(eq, 0, start, sel, n_sel, take)
    return n_sel, 0


# -- tables ------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _insert(tab, tsize, tseen, bucket, j, cap, fifo, state) -> None:
    """Put neuron j in a bucket; when full, FIFO overwrites the oldest slot, reservoir
    keeps each of the bucket's arrivals with equal probability cap/seen."""
    s = tsize[bucket]
    seen = tseen[bucket]
    if s < cap:
        tab[bucket * cap + s] = j
        tsize[bucket] = s + 1
    elif fifo:
        tab[bucket * cap + seen % cap] = j
    else:
        r = _randint(state, seen + 1)
        if r < cap:
            tab[bucket * cap + r] = j
    tseen[bucket] = seen + 1


@njit(cache=True, inline="always")
def _remove(tab, tsize, bucket, j, cap) -> None:
    s = tsize[bucket]
    base = bucket * cap
    for p in range(s):
        if tab[base + p] == j:
            tab[base + p] = tab[base + s - 1]
            tsize[bucket] = s - 1
            return


@njit(cache=True, parallel=True)
def pool_blocks(W: np.ndarray, pool: int, out: np.ndarray) -> None:
    """out[r, g] = sum of W[r, g*pool : (g+1)*pool] (zero-padded past the last column),
    added in column order from 0: for pool < 8 the same floats as numpy's
    ``padded.reshape(n, dp, pool).sum(axis=2)`` (its pairwise summation only starts at 8),
    without the padded copy of a strided W. ``out`` must come zeroed. Rows in parallel; the
    inner loop runs over groups, so it vectorises."""
    n, d = W.shape
    full = d // pool  # groups without padding
    for r in prange(n):
        wr = W[r]
        o = out[r]
        for t in range(pool):  # column t of every group, in order: same sums as above
            for g in range(full):
                o[g] += wr[g * pool + t]
        if full < o.shape[0]:  # the last group: its columns, then the zero padding
            for t in range(pool):
                c = full * pool + t
                o[full] += wr[c] if c < d else 0.0


@njit(cache=True)
def pack_codes(proj: np.ndarray, K: int, L: int) -> np.ndarray:
    """(n, K*L) projections -> (n, L) int32 bucket codes (bit k set when projection k > 0)."""
    n = proj.shape[0]
    codes = np.zeros((n, L), np.int32)
    for i in range(n):
        for t in range(L):
            c = 0
            for k in range(K):
                if proj[i, t * K + k] > 0:
                    c |= 1 << k
            codes[i, t] = c
    return codes


@njit(cache=True)
def table_update(tab, tsize, tseen, codes_old, codes_new, neurons, layer, K, L, C, fifo,
                 full, seed):
    """Full rebuild of one layer's L tables of 2^K buckets of C slots (``full``) or move
    the given neurons to their new buckets; ``fifo`` picks the overflow policy (else
    reservoir). Insertion order is neuron order, so results are deterministic."""
    nb = 1 << K
    base = layer * L * nb
    state = np.empty(1, np.uint64)
    state[0] = seed
    if full:
        for q in range(base, base + L * nb):
            tsize[q] = 0
            tseen[q] = 0
    for t in range(L):
        for q in range(neurons.shape[0]):
            j = neurons[q]
            new = codes_new[q, t]
            if full:
                _insert(tab, tsize, tseen, base + t * nb + new, j, C, fifo, state)
            else:
                old = codes_old[j, t]
                if old != new:
                    _remove(tab, tsize, base + t * nb + old, j, C)
                    _insert(tab, tsize, tseen, base + t * nb + new, j, C, fifo, state)
            codes_old[j, t] = new


# -- per-example pieces ------------------------------------------------------------------
@njit(cache=True, fastmath=_FM, inline="always")
def _hash_query(P, poff, dp, pool, KL, idx, val, nnz, acc, pooled):
    """acc = projections of the (pooled) sparse input plus its constant-1 bias coordinate.
    Returns the multiplications done (non-zero pooled coordinates x K*L)."""
    # Each row is taken as a slice: indices from 0 are provably non-negative, so numba's
    # negative-index wraparound folds away and the loops vectorise (2x measured).
    bias_row = poff + dp * KL
    Pb = P[bias_row : bias_row + KL]
    for b in range(KL):
        acc[b] = Pb[b]
    if pool == 1:
        for k in range(nnz):
            v = val[k]
            row = poff + idx[k] * KL
            Pr = P[row : row + KL]
            for b in range(KL):
                acc[b] += v * Pr[b]
        return nnz * KL
    # Block sums (the released code averages; a positive scale does not change any sign).
    for g in range(dp):
        pooled[g] = 0
    for k in range(nnz):
        pooled[idx[k] // pool] += val[k]
    used = 0
    for g in range(dp):
        v = pooled[g]
        if v != 0:
            used += 1
            row = poff + g * KL
            Pr = P[row : row + KL]
            for b in range(KL):
                acc[b] += v * Pr[b]
    return used * KL


@njit(cache=True, inline="always")
def _select(acc, layer, n_out, cap, ip, tab, tsize, counts, touched, hist, sel, state):
    """Active set of one hidden layer from its L probed buckets; returns (size, padded)."""
    K, L, C, kind = ip[I_K], ip[I_L], ip[I_CAPACITY], ip[I_SELECTION]
    min_count, pad = ip[I_MIN_COUNT], ip[I_PAD]
    nb = 1 << K
    ntouch = 0
    t0 = _randint(state, L)  # rotate the probe order: ties do not always favour table 0
    for tt in range(L):
        t = tt + t0
        if t >= L:
            t -= L
        code = 0
        for k in range(K):
            if acc[t * K + k] > 0:
                code |= 1 << k
        bucket = (layer * L + t) * nb + code
        s = tsize[bucket]
        bbase = bucket * C
        for p in range(s):
            j = tab[bbase + p]
            if counts[j] == 0:
                touched[ntouch] = j
                ntouch += 1
            counts[j] += 1
    n_sel = 0
    if kind == SEL_UNION or ntouch <= cap:  # union, or everything fits: keep in arrival order
        for q in range(ntouch):
            j = touched[q]
            if kind == SEL_THRESHOLD and counts[j] < min_count:
                continue
            if n_sel < cap:
                sel[n_sel] = j
                n_sel += 1
    else:
        # Partial selection by counting sort on the collision count (<= L): find the
        # count c* where the top cap is reached; take all above, then ties in order.
        for c in range(L + 1):
            hist[c] = 0
        for q in range(ntouch):
            hist[counts[touched[q]]] += 1
        above = 0
        cstar = L
        while cstar > 0 and above + hist[cstar] < cap:
            above += hist[cstar]
            cstar -= 1
        lo = cstar
        if kind == SEL_THRESHOLD and lo < min_count:
            lo = min_count
        ties_left = cap - above
        for q in range(ntouch):
            j = touched[q]
            c = counts[j]
            if c > cstar and c >= lo:
                sel[n_sel] = j
                n_sel += 1
            elif c == cstar and c >= lo and ties_left > 0:
                sel[n_sel] = j
                n_sel += 1
                ties_left -= 1
    for q in range(ntouch):
        counts[touched[q]] = 0
    padded = 0
    if pad == 1 and n_sel < cap:
        padded = 1
        for q in range(n_sel):
            counts[sel[q]] = 1
        need = cap - n_sel
        free = n_out - n_sel
        if need * 2 > free:  # dense fill: scan from a random start
            start = _randint(state, n_out)
            for q in range(n_out):
                if need == 0:
                    break
                j = start + q
                if j >= n_out:
                    j -= n_out
                if counts[j] == 0:
                    counts[j] = 1
                    sel[n_sel] = j
                    n_sel += 1
                    need -= 1
        else:  # sparse fill: rejection sampling
            while need > 0:
                j = _randint(state, n_out)
                if counts[j] == 0:
                    counts[j] = 1
                    sel[n_sel] = j
                    n_sel += 1
                    need -= 1
        for q in range(n_sel):
            counts[sel[q]] = 0
    return n_sel, padded


@njit(cache=True, fastmath=_FM)
def _exact_topk(W, B, st, woff, boff, n_in, n_out, cap, idx, val, nnz, sel):
    z = np.empty(n_out, W.dtype)
    for j in range(n_out):
        row = woff + j * n_in
        t = B[boff + j]
        for k in range(nnz):
            t += W[(row + idx[k]) * st] * val[k]
        z[j] = -t
    order = np.argsort(z)
    s = min(cap, n_out)
    for q in range(s):
        sel[q] = order[q]
    return s, 0


@njit(cache=True, fastmath=_FM, inline="always")
def _update(W, V, A, i, iv, ia, g, kind, lr, mu, l2, eps) -> None:
    """models.optim's rules on one entry (same operation order, so the same floats): weight
    W[i], velocity V[iv], squared-gradient sum A[ia]."""
    w = W[i]
    if l2 > 0:
        g = g + l2 * w
    if kind == OPT_SGD:
        W[i] = w - lr * g
    elif kind == OPT_MOMENTUM:
        v = mu * V[iv] + lr * g
        V[iv] = v
        W[i] = w - v
    elif kind == OPT_ROWWISE_ADAGRAD:  # row-wise Adagrad on an entry that is its own row (a bias)
        a = A[ia] + g * g
        A[ia] = a
        W[i] = w - g * (lr / (eps + np.sqrt(a)))
    else:
        a = A[ia] + g * g
        A[ia] = a
        v = mu * V[iv] + g * (lr / (eps + np.sqrt(a)))
        V[iv] = v
        W[i] = w - v


@njit(cache=True, fastmath=_FM, inline="always")
def _output_backward(mode, m, W, B, VB, AB, GW, GB, idx, val, nnz, dz, cstep, dA, opt, st,
                     lr, mu, l2, eps, inv_m):
    """Back-propagation through the dense softmax layer, stored input-major (entry (c, i)
    at ``W[(woff + i*n_out + c)*st]``): dA of each active input from the old weights, then
    (training) the optimizer's step on its n_out weights, or (gradients) accumulation into
    GW/GB. ``dz`` holds dZ per class. Returns the update multiplications that the per-entry
    and per-class costs in _example do not cover (row-wise Adagrad's sum of x^2)."""
    n_in, n_out, woff, boff = m[M_N_IN], m[M_N_OUT], m[M_WOFF], m[M_BOFF]
    ust = np.uint64(st)
    extra = 0
    train = mode == MODE_TRAIN
    if train and opt == OPT_ROWWISE_ADAGRAD:  # each class's step from its row's mean g^2
        if l2 == 0:
            sx2 = dz[0] - dz[0]
            for k in range(nnz):
                sx2 += val[k] * val[k]
            extra = nnz
            for c in range(n_out):
                a = VB[boff + c] + dz[c] * dz[c] * sx2 / n_in
                VB[boff + c] = a
                cstep[c] = dz[c] * (lr / (eps + np.sqrt(a)))
        else:  # lazy L2: the touched entries' gradients only
            for c in range(n_out):
                cstep[c] = 0
            for k in range(nnz):
                r = np.uint64(woff + idx[k] * n_out)
                for c in range(n_out):
                    g = dz[c] * val[k] + l2 * W[r + np.uint64(c)]
                    cstep[c] += g * g
            for c in range(n_out):
                a = VB[boff + c] + cstep[c] / n_in
                VB[boff + c] = a
                cstep[c] = lr / (eps + np.sqrt(a))
    for k in range(nnz):
        x = val[k]
        r = np.uint64(woff + idx[k] * n_out)
        d = dz[0] - dz[0]
        for c in range(n_out):  # the layer below's gradient from the old weights first
            d += dz[c] * W[(r + np.uint64(c)) * ust]
        dA[k] = d
        if not train:
            for c in range(n_out):
                GW[r + np.uint64(c)] += dz[c] * x * inv_m
        elif opt == OPT_ROWWISE_ADAGRAD and l2 == 0:
            for c in range(n_out):
                W[r + np.uint64(c)] -= cstep[c] * x
        elif opt == OPT_ROWWISE_ADAGRAD:
            for c in range(n_out):
                wi = r + np.uint64(c)
                W[wi] -= cstep[c] * (dz[c] * x + l2 * W[wi])
        elif opt == OPT_SGD and l2 == 0:
            for c in range(n_out):
                W[r + np.uint64(c)] -= lr * (dz[c] * x)
        else:
            for c in range(n_out):
                wi = (r + np.uint64(c)) * ust
                _update(W, W, W, wi, wi + np.uint64(1), wi + np.uint64(2), dz[c] * x, opt, lr,
                        mu, l2, eps)
    for c in range(n_out):
        if train:
            _update(B, VB, AB, boff + c, boff + c, boff + c, dz[c], opt, lr, mu, l2 - l2, eps)
        else:
            GB[boff + c] += dz[c] * inv_m
    return extra


@njit(cache=True, inline="always")
def _input_nonzeros(x, aidx, aval):
    """Level 0 of the scratch: the input's non-zeros (the first layer exploits sparse
    inputs). Returns how many."""
    n0 = 0
    for i in range(x.shape[0]):
        if x[i] != 0:
            aidx[0, n0] = i
            aval[0, n0] = x[i]
            n0 += 1
    return n0


@njit(cache=True, fastmath=_FM, inline="always")
def _hidden_forward(ly, meta, ip, W, B, P, tab, tsize, sk, aidx, aval, acnt, sel, counts,
                    touched, hist, acc, pooled, qw, cnt, state, rec_sets, rec_n, rec_row):
    """Hidden layer ly: hash its input (level ly), select the active set, compute the
    active neurons from the non-zero inputs; their positive outputs become level ly + 1.
    Returns (active set size, padded 0/1, forward multiplications, hashing ones). Takes
    the scratch arrays one by one, not as the Scratch tuple: each array taken out of a
    tuple costs reference counting, and this runs per layer and example (6% measured)."""
    n_in, n_out = meta[ly, M_N_IN], meta[ly, M_N_OUT]
    woff, boff, cap = meta[ly, M_WOFF], meta[ly, M_BOFF], meta[ly, M_CAP]
    KL = ip[I_K] * ip[I_L]
    st = ip[I_STRIDE]
    ust = np.uint64(st)
    nnz = acnt[ly]
    m_fwd = 0
    t0 = _cycles()
    m_hash = _hash_query(P, meta[ly, M_POFF], meta[ly, M_DP], meta[ly, M_POOL], KL,
                         aidx[ly], aval[ly], nnz, acc, pooled)
    t1 = _cycles()
    cnt[C_HASH] += t1 - t0
    kind = ip[I_SELECTION]
    if kind == SEL_EXACT:  # oracle: exact top-cap by pre-activation (diagnostic upper bound)
        s, pd = _exact_topk(W, B, st, woff, boff, n_in, n_out, cap, aidx[ly], aval[ly], nnz,
                            sel[ly])
        m_fwd += n_out * nnz
    elif kind == SEL_HAMMING:
        s, pd = _select_hamming(acc, ly, n_out, cap, KL, ip[I_MAX_WIDTH], sk, touched, qw,
                                sel[ly], state)
    else:
        s, pd = _select(acc, ly, n_out, cap, ip, tab, tsize, counts, touched, hist, sel[ly],
                        state)
    t2 = _cycles()
    cnt[C_SELECT] += t2 - t1
    if rec_row >= 0:
        rec_n[rec_row, ly] = s
        for q in range(s):
            rec_sets[rec_row, ly, q] = sel[ly, q]
    m_fwd += s * nnz
    nxt = 0
    for q in range(s):
        j = sel[ly, q]
        row = woff + j * n_in
        urow = np.uint64(row)  # unsigned indices: no negative-index wraparound code
        z = B[boff + j]
        if st == 1:
            for k in range(nnz):
                z += W[urow + np.uint64(aidx[ly, k])] * aval[ly, k]
        else:
            for k in range(nnz):
                z += W[(urow + np.uint64(aidx[ly, k])) * ust] * aval[ly, k]
        if z > 0:  # ReLU: only positive outputs feed the next layer
            aidx[ly + 1, nxt] = j
            aval[ly + 1, nxt] = z
            nxt += 1
    acnt[ly + 1] = nxt
    cnt[C_FWD] += _cycles() - t2
    return s, pd, m_fwd, m_hash


@njit(cache=True, fastmath=_FM, inline="always")
def _output_forward(m, W, B, st, idx, val, nnz, logits):
    """Logits of the dense softmax layer (stored input-major) from its nnz non-zero
    inputs; returns the multiplications."""
    n_out, woff, boff = m[M_N_OUT], m[M_WOFF], m[M_BOFF]
    ust = np.uint64(st)
    for c in range(n_out):
        logits[c] = B[boff + c]
    for k in range(nnz):  # input-major: each active input's n_out weights lie together
        v = val[k]
        r = np.uint64(woff + idx[k] * n_out)
        for c in range(n_out):
            logits[c] += W[(r + np.uint64(c)) * ust] * v
    return n_out * nnz


@njit(cache=True, fastmath=_FM, inline="always")
def _softmax_dz(logits, n_out, yv, zero):
    """Logits -> probabilities -> dZ of the output layer (p - onehot(yv)), in place; returns
    the cross-entropy. Its n_out divisions are counted by the caller."""
    zmax = -np.inf
    for c in range(n_out):
        zmax = max(zmax, logits[c])
    tot = zero
    for c in range(n_out):
        e = np.exp(logits[c] - zmax)
        logits[c] = e
        tot += e
    for c in range(n_out):
        logits[c] = logits[c] / tot
    py = logits[yv]
    loss = -np.log(max(float(py), 1e-30))
    logits[yv] = py - 1
    return loss


@njit(cache=True, inline="always")
def _update_costs(opt, l2):
    """Multiplications (per touched weight, per row with its bias) of an optimizer step, as
    models.optim counts them; row-wise Adagrad's per-weight product s_ * x is the
    gradient's, counted as backward."""
    if opt == OPT_ROWWISE_ADAGRAD:
        wper = 5 if l2 > 0 else 0  # l2*w, g*g; then dz*x, l2*w, step*g again
        per = 3 + (2 if l2 > 0 else 5)  # the bias's 3; gg/n_in, step (+ dz*dz*sx2, dz*step)
    else:
        per = (opt + 1 if opt > 0 else 1) + (1 if opt == OPT_ADAGRAD_MOMENTUM else 0)  # 1, 2, 4
        wper = per + (1 if l2 > 0 else 0)
    return wper, per


# error_model="numpy": float division without a zero check (its divisors are never
# zero), so loops with a division vectorise. Its callers pass mode, and any other constant,
# as np.int64(...), never a bare literal: numba compiles one specialisation per literal
# value, and each of this function's costs ~30 s cold (three modes took 95 s, one 33 s;
# measured no faster per epoch).
@njit(cache=True, fastmath=_FM, error_model="numpy")
def _example(mode, x, yv, lay, prm, GW, GB, idx, dirty, sc, cnt, state, rec, rec_row):
    """One example: hash + select + sparse forward; then (MODE_TRAIN) sparse backward with
    in-place updates of the touched weights, or (MODE_GRAD) gradient accumulation into
    GW/GB, or (MODE_INFER) forward only, leaving the logits in ``sc.logits``. Records its
    active sets in row ``rec_row`` of ``rec`` when that is >= 0. Returns (loss, active
    nodes, padded selections)."""
    meta, ip, hp = lay
    W, B, VB, AB = prm
    P, tab, tsize, sk = idx
    rec_sets, rec_n = rec
    (aidx, aval, acnt, sel, counts, touched, hist, acc, pooled, logits, cstep, dA, dA2, qw) = sc
    H = meta.shape[0] - 1
    st = ip[I_STRIDE]
    zero = hp[H_LR] - hp[H_LR]
    acnt[0] = _input_nonzeros(x, aidx, aval)
    active = 0
    padded = 0
    m_fwd = 0
    m_hash = 0
    for ly in range(H):
        s, pd, mf, mh = _hidden_forward(ly, meta, ip, W, B, P, tab, tsize, sk, aidx, aval,
                                        acnt, sel, counts, touched, hist, acc, pooled, qw, cnt,
                                        state, rec_sets, rec_n, rec_row)
        active += s
        padded += pd
        m_fwd += mf
        m_hash += mh
    t3 = _cycles()
    m_out = _output_forward(meta[H], W, B, st, aidx[H], aval[H], acnt[H], logits)
    m_fwd += m_out
    cnt[F_FWD_OUT] += m_out
    cnt[F_HASH] += m_hash
    cnt[C_FWD] += _cycles() - t3
    if mode == MODE_INFER:
        cnt[F_FWD] += m_fwd
        return 0.0, active, padded
    n_cls = meta[H, M_N_OUT]
    loss = _softmax_dz(logits, n_cls, yv, zero)
    m_fwd += n_cls  # the divisions
    cnt[F_FWD_OUT] += n_cls
    cnt[F_FWD] += m_fwd
    # -- backward, top layer first; each weight's old value feeds dA before it changes
    t4 = _cycles()
    opt, maxw, ust = ip[I_OPTIMIZER], ip[I_MAX_WIDTH], np.uint64(st)
    lr, mu, l2, eps, inv_m = hp[H_LR], hp[H_MOMENTUM], hp[H_L2], hp[H_EPS], hp[H_INV_M]
    wper, per = _update_costs(opt, l2)
    nnz = acnt[H]
    m_upd = _output_backward(mode, meta[H], W, B, VB, AB, GW, GB, aidx[H], aval[H], nnz,
                             logits, cstep, dA, opt, st, lr, mu, l2, eps, inv_m)
    m_bwd = n_cls * nnz * 2
    m_upd += n_cls * nnz * wper + n_cls * per
    # The hidden layers' backward stays written out here: as an inlined function of its own
    # it measured ~5% slower per epoch (784-1000-1000-1000-10, 1 thread).
    for ly in range(H - 1, -1, -1):
        n_in, woff, boff = meta[ly, M_N_IN], meta[ly, M_WOFF], meta[ly, M_BOFF]
        nnz = acnt[ly]
        nrows = acnt[ly + 1]
        need_da = ly > 0
        sx2 = zero
        if opt == OPT_ROWWISE_ADAGRAD and l2 == 0 and nrows > 0:
            for k in range(nnz):
                sx2 += aval[ly, k] * aval[ly, k]
            m_upd += nnz
        if need_da:
            for k in range(nnz):
                dA2[k] = zero
        for r in range(nrows):
            j = aidx[ly + 1, r]
            dz = dA[r]
            if mode == MODE_TRAIN and dirty[ly * maxw + j] == 0:
                dirty[ly * maxw + j] = 1  # read first: no writes to shared lines
            row = woff + j * n_in
            urow = np.uint64(row)
            if mode == MODE_TRAIN:
                if need_da:  # gradient of the layer below from the old weights first
                    for k in range(nnz):
                        dA2[k] += dz * W[(urow + np.uint64(aidx[ly, k])) * ust]
                if opt == OPT_ROWWISE_ADAGRAD:  # the row's sum in VB, the step per row
                    if l2 == 0:  # mean of the row's g^2 = dz^2 * sum(x^2) / n_in
                        a = VB[boff + j] + dz * dz * sx2 / n_in
                        VB[boff + j] = a
                        s_ = dz * (lr / (eps + np.sqrt(a)))
                        for k in range(nnz):
                            wi = urow + np.uint64(aidx[ly, k])
                            W[wi] = W[wi] - s_ * aval[ly, k]
                    else:  # lazy L2: only the touched entries' gradients exist
                        gg = zero
                        for k in range(nnz):
                            g = dz * aval[ly, k] + l2 * W[urow + np.uint64(aidx[ly, k])]
                            gg += g * g
                        a = VB[boff + j] + gg / n_in
                        VB[boff + j] = a
                        step = lr / (eps + np.sqrt(a))
                        for k in range(nnz):
                            wi = urow + np.uint64(aidx[ly, k])
                            W[wi] = W[wi] - step * (dz * aval[ly, k] + l2 * W[wi])
                elif opt == OPT_SGD and l2 == 0:  # plain SGD, specialised: one weight per entry
                    for k in range(nnz):
                        wi = urow + np.uint64(aidx[ly, k])
                        W[wi] = W[wi] - lr * (dz * aval[ly, k])
                elif opt == OPT_MOMENTUM and l2 == 0:  # momentum, specialised
                    for k in range(nnz):
                        wi = (urow + np.uint64(aidx[ly, k])) * np.uint64(2)
                        v = mu * W[wi + np.uint64(1)] + lr * (dz * aval[ly, k])
                        W[wi + np.uint64(1)] = v
                        W[wi] = W[wi] - v
                elif opt == OPT_ADAGRAD_MOMENTUM and l2 == 0:  # the paper's rule, specialised
                    for k in range(nnz):
                        wi = (urow + np.uint64(aidx[ly, k])) * np.uint64(3)
                        g = dz * aval[ly, k]
                        a = W[wi + np.uint64(2)] + g * g
                        W[wi + np.uint64(2)] = a
                        v = mu * W[wi + np.uint64(1)] + g * (lr / (eps + np.sqrt(a)))
                        W[wi + np.uint64(1)] = v
                        W[wi] = W[wi] - v
                else:
                    for k in range(nnz):
                        wi = (row + aidx[ly, k]) * st
                        _update(W, W, W, wi, wi + 1, wi + 2, dz * aval[ly, k], opt, lr, mu,
                                l2, eps)
                _update(B, VB, AB, boff + j, boff + j, boff + j, dz, opt, lr, mu, zero, eps)
            else:
                for k in range(nnz):
                    wi = row + aidx[ly, k]
                    if need_da:
                        dA2[k] += dz * W[wi * st]
                    GW[wi] += dz * aval[ly, k] * inv_m
                GB[boff + j] += dz * inv_m
        m_bwd += nrows * nnz * (2 if need_da else 1)
        m_upd += nrows * nnz * wper + nrows * per
        if need_da:
            for k in range(nnz):
                dA[k] = dA2[k]
    if mode == MODE_TRAIN:
        cnt[F_BWD] += m_bwd
        cnt[F_UPD] += m_upd
    cnt[C_BWD] += _cycles() - t4
    return loss, active, padded


_GUARD = 64  # elements of padding around each scratch array: >= 128 bytes for any dtype


@njit(cache=True, inline="always")
def _private(n, dtype):
    """A zeroed 1-D array of n elements with _GUARD unused elements on either side: each
    thread's scratch shares no cache line (nor the adjacent-line prefetcher's pair) with
    another thread's, which would otherwise bounce between cores on every write."""
    return np.zeros(n + 2 * _GUARD, dtype)[_GUARD : _GUARD + n]


@njit(cache=True)
def _scratch(meta, ip, dtype_probe):
    """Per-thread working arrays of _example, each in its own guarded allocation."""
    H = meta.shape[0] - 1
    maxw = ip[I_MAX_WIDTH]
    KL = ip[I_K] * ip[I_L]
    maxdp = 1
    for ly in range(H):
        if meta[ly, M_DP] + 1 > maxdp:
            maxdp = meta[ly, M_DP] + 1
    n_cls = meta[H, M_N_OUT]
    dt = dtype_probe.dtype
    return Scratch(
        _private((H + 1) * maxw, np.int32).reshape((H + 1, maxw)),  # aidx
        _private((H + 1) * maxw, dt).reshape((H + 1, maxw)),  # aval
        _private(H + 1, np.int64),  # acnt
        _private(max(H, 1) * maxw, np.int32).reshape((max(H, 1), maxw)),  # sel
        _private(maxw, np.int32),  # counts
        _private((maxw + 63) // 64 * 64, np.int32),  # touched (and hamming's distances)
        _private(KL + 2, np.int64),  # hist
        _private(KL, dt),  # acc
        _private(maxdp, dt),  # pooled
        _private(n_cls, dt),  # logits
        _private(n_cls, dt),  # cstep
        _private(maxw, dt),  # dA
        _private(maxw, dt),  # dA2
        _private((KL + 63) // 64 + 2 * ((maxw + 63) // 64), np.uint64),  # qw
    )


@njit(cache=True, inline="always")
def _chunk(n, c, n_chunks, seed):
    """Rows [lo, hi) of chunk c of n, and its thread's RNG state and counters."""
    state = _private(1, np.uint64)
    state[0] = seed
    return (n * c) // n_chunks, (n * (c + 1)) // n_chunks, state, _private(N_SLOTS, np.int64)


# The bodies of the parallel loops are functions of their own: numba 0.68's parfor pass
# loses writes made directly in a prange body to arrays reached through a NamedTuple
# (seen here: the counters stayed 0); inside a called function they are ordinary stores.
@njit(cache=True)
def _train_chunk(c, X, y, order, lay, prm, idx, dirty, seeds, n_chunks, stats, rec, record):
    lo, hi, state, cnt = _chunk(order.shape[0], c, n_chunks, seeds[c])
    sc = _scratch(lay.meta, lay.ip, prm.W[:1])
    loss_sum = 0.0
    act = 0
    pad = 0
    for e in range(lo, hi):
        ex = order[e]
        loss, a, p = _example(np.int64(MODE_TRAIN), X[ex], y[ex], lay, prm, prm.W[:0],
                              prm.W[:0], idx, dirty, sc, cnt, state, rec,
                              e if record else -1)
        loss_sum += loss
        act += a
        pad += p
    for q in range(N_SLOTS):
        stats.cnt[c, q] += cnt[q]
    stats.loss[c] += loss_sum
    stats.active[c] += act
    stats.pad[c] += pad


@njit(cache=True, parallel=True)
def train_segment(X, y, order, lay, prm, idx, dirty, seeds, n_chunks, stats, rec, record):
    """Hogwild: chunk c of ``order`` is trained by one thread, example by example, all
    threads writing the shared weights without locks. Stats go to row c of ``stats``;
    with ``record``, example e's active sets to row e of ``rec``."""
    for c in prange(n_chunks):
        _train_chunk(c, X, y, order, lay, prm, idx, dirty, seeds, n_chunks, stats, rec, record)


@njit(cache=True)
def _infer_chunk(c, X, lay, prm, idx, seeds, n_chunks, out, st_cnt, rec, record):
    lo, hi, state, cnt = _chunk(X.shape[0], c, n_chunks, seeds[c])
    sc = _scratch(lay.meta, lay.ip, prm.W[:1])
    logits = sc.logits
    dirty = np.zeros(1, np.uint8)
    for e in range(lo, hi):
        _example(np.int64(MODE_INFER), X[e], np.int64(0), lay, prm, prm.W[:0], prm.W[:0], idx,
                 dirty, sc, cnt, state, rec, e if record else -1)
        for q in range(logits.shape[0]):
            out[e, q] = logits[q]
    for q in range(N_SLOTS):
        st_cnt[c, q] += cnt[q]


@njit(cache=True, parallel=True)
def infer(X, lay, prm, idx, seeds, n_chunks, out, st_cnt, rec, record):
    """Sparse inference (through the tables) of every row of X into ``out`` (logits)."""
    for c in prange(n_chunks):
        _infer_chunk(c, X, lay, prm, idx, seeds, n_chunks, out, st_cnt, rec, record)


@njit(cache=True)
def grad_batch(X, y, lay, prm, GW, GB, idx, seed):
    """Mean loss and gradients (into GW, GB, scaled by hp[H_INV_M]) of a batch, each
    example's computed exactly as a training step computes it (same active sets), with no
    update. Sequential."""
    _, _, state, cnt = _chunk(X.shape[0], 0, 1, seed)
    sc = _scratch(lay.meta, lay.ip, prm.W[:1])
    dirty = np.zeros(1, np.uint8)
    rec = Record(np.zeros((1, 1, 1), np.int32), np.zeros((1, 1), np.int32))
    loss_sum = 0.0
    for e in range(X.shape[0]):
        loss, a, p = _example(np.int64(MODE_GRAD), X[e], y[e], lay, prm, GW, GB, idx, dirty,
                              sc, cnt, state, rec, np.int64(-1))
        loss_sum += loss
    return loss_sum / max(X.shape[0], 1)


@njit(cache=True, inline="always")
def _select_one(ly, qidx, qval, nnz, meta, ip, prm, idx, sc, state, out):
    """Hash one query (its nnz non-zero coordinates qidx/qval of layer ly's input) and
    select layer ly's active set from it into ``out``, as a training example's selection
    does. Returns (set size, padded 0/1, hashing multiplications, forward ones: exact
    selection computes every pre-activation)."""
    KL = ip[I_K] * ip[I_L]
    n_in, n_out = meta[ly, M_N_IN], meta[ly, M_N_OUT]
    m_hash = _hash_query(idx.P, meta[ly, M_POFF], meta[ly, M_DP], meta[ly, M_POOL], KL, qidx,
                         qval, nnz, sc.acc, sc.pooled)
    kind = ip[I_SELECTION]
    m_fwd = 0
    if kind == SEL_EXACT:
        s, pd = _exact_topk(prm.W, prm.B, ip[I_STRIDE], meta[ly, M_WOFF], meta[ly, M_BOFF],
                            n_in, n_out, meta[ly, M_CAP], qidx, qval, nnz, out)
        m_fwd = n_out * nnz
    elif kind == SEL_HAMMING:
        s, pd = _select_hamming(sc.acc, ly, n_out, meta[ly, M_CAP], KL, ip[I_MAX_WIDTH],
                                idx.sk, sc.touched, sc.qw, out, state)
    else:
        s, pd = _select(sc.acc, ly, n_out, meta[ly, M_CAP], ip, idx.tab, idx.tsize, sc.counts,
                        sc.touched, sc.hist, out, state)
    return s, pd, m_hash, m_fwd


@njit(cache=True)
def select_query(ly, qidx, qval, nnz, lay, prm, idx, state, out):
    """One query's active set of layer ly (``_select_one``): batch_sets="shared" hashes
    the batch's mean input once."""
    sc = _scratch(lay.meta, lay.ip, prm.W[:1])
    return _select_one(ly, qidx, qval, nnz, lay.meta, lay.ip, prm, idx, sc, state, out)


@njit(cache=True)
def select_rows(ly, cols, A, lay, prm, idx, state, mark):
    """Each row's own active set of layer ly (batch_sets="per_example"): row r of A holds
    an example's input to the layer on the columns ``cols``; its non-zeros are hashed and
    select its set, exactly as ``_select_one`` does for a training example. Returns (the
    sorted union U of the rows' sets, the 0/1 mask (rows x |U|) of each row's set within
    U, the sets (row r's first sizes[r] entries), sizes, paddings, hashing and forward
    multiplications). ``mark``
    (one int32 per neuron of the layer, all -1) is left as it came."""
    meta, ip = lay.meta, lay.ip
    sc = _scratch(meta, ip, prm.W[:1])
    m, n_out = A.shape[0], meta[ly, M_N_OUT]
    cap = meta[ly, M_CAP]
    sets = np.empty((m, cap), np.int32)
    sizes = np.empty(m, np.int64)
    qidx = np.empty(cols.shape[0], np.int32)
    qval = np.empty(cols.shape[0], A.dtype)
    out = np.empty(ip[I_MAX_WIDTH], np.int32)
    pads = m_hash = m_fwd = 0
    n_u = 0
    for r in range(m):
        nnz = 0
        for k in range(cols.shape[0]):
            if A[r, k] != 0:
                qidx[nnz] = cols[k]
                qval[nnz] = A[r, k]
                nnz += 1
        s, pd, mh, mf = _select_one(ly, qidx, qval, nnz, meta, ip, prm, idx, sc, state, out)
        sizes[r] = s
        pads += pd
        m_hash += mh
        m_fwd += mf
        for q in range(s):
            j = out[q]
            sets[r, q] = j
            if mark[j] < 0:
                mark[j] = 0
                n_u += 1
    U = np.empty(n_u, np.int64)
    u = 0
    for j in range(n_out):  # ascending: the gathers walk rows in order
        if mark[j] >= 0:
            mark[j] = u
            U[u] = j
            u += 1
    mask = np.zeros((m, n_u), A.dtype)
    for r in range(m):
        for q in range(sizes[r]):
            mask[r, mark[sets[r, q]]] = 1
    for q in range(n_u):
        mark[U[q]] = -1
    return U, mask, sets, sizes, pads, m_hash, m_fwd


@njit(cache=True)
def gather_block(M, rows, cols, out):
    """out[i, j] = M[rows[i], cols[j]] for a 2-D view M of any strides (train_mode="batch";
    numpy's M[np.ix_(rows, cols)] took 1.4-2x as long at width 16,000 here, on a noisy
    machine)."""
    for i in range(rows.shape[0]):
        r = M[rows[i]]
        o = out[i]
        for j in range(cols.shape[0]):
            o[j] = r[cols[j]]


@njit(cache=True)
def scatter_block(M, rows, cols, blk):
    """M[rows[i], cols[j]] = blk[i, j] (the inverse of gather_block)."""
    for i in range(rows.shape[0]):
        r = M[rows[i]]
        b = blk[i]
        for j in range(cols.shape[0]):
            r[cols[j]] = b[j]
