"""Compiled per-example training of the fully connected network and its gated baselines.

The paper's protocol trains one example at a time. Through BLAS that costs a handful of
numpy calls per layer and example, and their overhead, not the arithmetic, sets the speed.
These kernels run the same maths in one compiled loop per chunk of examples: the same
layout (``weights_[l]`` is (n_out, n_in), row-major), the same order of operations per
example (forward, softmax, backward with the weights as they were, then every parameter's
update), the same optimizer rules (models.optim) and the same random numbers, which the
caller draws from the model's generator exactly as the BLAS path would.

The network stays dense: every weight is multiplied in forward, backward and update, zero
inputs and inactive neurons included, as BLAS would, and each loop counts what it
multiplies (slots ``F_FWD``, ``F_BWD``, ``F_UPD``). Fused loops read each weight once for
the backward product and its update, so the update of layer l never feeds layer l's own
backward product, exactly as when all gradients are computed before any step.

Parameters and optimizer state live in flat buffers (``P``, ``V``, ``S``); ``meta`` gives
each layer's (n_in, n_out, weight offset, bias offset, row-state offset, k for WTA).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FM = {"reassoc", "contract"}  # reorder sums (SIMD); no unsafe NaN/inf assumptions
# error_model="numpy" everywhere: a division by zero gives inf as numpy does, and no check
# per division stops the update loops vectorising (15x slower with Adagrad's divisions)

# optimizer codes (order of models.optim.OPTIMIZERS)
SGD, MOMENTUM, ADAGRAD_MOMENTUM, ROWWISE_ADAGRAD = 0, 1, 2, 3
# gate codes
GATE_NONE, GATE_DROPOUT, GATE_STANDOUT, GATE_WTA = 0, 1, 2, 3
# count slots
F_FWD, F_BWD, F_UPD, F_FWD_HIDDEN, N_KEPT, N_SLOTS = 0, 1, 2, 3, 4, 5
# meta columns
M_IN, M_OUT, M_W, M_B, M_ROW, M_K = 0, 1, 2, 3, 4, 5
STANDOUT_BISECTION_STEPS = 30  # as models.standout: beta bracket [-40, 40] below 1e-7


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _standout_keep(z, alpha, target, u, keep, steps):  # type: ignore[no-untyped-def]
    """keep[j] = u[j] < sigmoid(alpha z_j + beta), beta bisected so the mean keep
    probability equals ``target``, in float64 and in the same steps as
    models.standout.keep_probabilities. Returns (mults spent, neurons kept)."""
    n = z.shape[0]
    e = np.empty(n, np.float64)
    for j in range(n):
        e[j] = np.exp(-(alpha * np.float64(z[j])))
    lo, hi = -40.0, 40.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        c = np.exp(-mid)
        s = 0.0
        for j in range(n):
            s += 1.0 / (1.0 + e[j] * c)
        if s / n > target:
            hi = mid
        else:
            lo = mid
    c = np.exp(-0.5 * (lo + hi))
    kept = 0
    for j in range(n):
        p = np.float32(1.0 / (1.0 + e[j] * c))  # the BLAS path's cast to the model dtype
        keep[j] = u[j] < np.float64(p)
        kept += keep[j]
    return n * (1 + 2 * steps + 2) + 2 * steps + 1, kept


@njit(cache=True, error_model="numpy")
def _wta_keep(z, k, keep):  # type: ignore[no-untyped-def]
    """keep the k largest entries of z (ties broken towards lower indices)."""
    n = z.shape[0]
    thr = np.partition(z.copy(), n - k)[n - k]
    above = 0
    for j in range(n):
        keep[j] = z[j] > thr
        above += keep[j]
    for j in range(n):
        if above >= k:
            break
        if z[j] == thr:
            keep[j] = True
            above += 1


@njit(cache=True, fastmath=_FM, error_model="numpy")
def train_chunk(X, y, idx, meta, P, V, S, hp, kind, gate, gp, U, cnt):  # type: ignore[no-untyped-def]
    """Train on examples X[idx[0]], X[idx[1]], ... in that order; returns the summed loss.

    hp: (lr, momentum, l2, eps, 1, 0, 1/keep probability) in the parameters' dtype, so all
    arithmetic stays in it. gp: gate parameters in float64 (keep probability for dropout;
    alpha and target for standout). U: uniforms in [0, 1), one row
    per example, one column per hidden neuron (layer 0 first), drawn as the BLAS path draws
    them; unused for dense and WTA."""
    D = meta.shape[0]
    H = D - 1
    lr, mu, l2, eps, one, zero, scale = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5], hp[6]
    width = 0
    hsum = 0
    for ly in range(D):
        width = max(width, meta[ly, M_IN], meta[ly, M_OUT])
        if ly < H:
            hsum += meta[ly, M_OUT]
    acts = np.zeros((D + 1, width), P.dtype)  # input of each layer, then the logits
    pre = np.zeros((H + 1, width), P.dtype)  # hidden pre-activations
    gval = np.ones((H + 1, width), P.dtype)  # gate per hidden neuron (1, 0, or 1/p)
    dz = np.zeros(width, P.dtype)
    da = np.zeros(width, P.dtype)
    keep = np.zeros(width, np.bool_)
    gsq = np.zeros(width, P.dtype)
    # The first layer's pre-activations for the next example, computed while each updated
    # row is still in L1 (the same products the forward pass would do, not a second read of
    # the largest weight matrix from memory).
    pre0_next = np.zeros(width, P.dtype)
    have_next = False
    loss_sum = 0.0
    for e in range(idx.shape[0]):
        ex = idx[e]
        n0 = meta[0, M_IN]
        for i in range(n0):
            acts[0, i] = X[ex, i]
        # -- forward: every pre-activation, then the gate, then ReLU
        ucol = 0
        for ly in range(D):
            n_in, n_out = meta[ly, M_IN], meta[ly, M_OUT]
            wo, bo = meta[ly, M_W], meta[ly, M_B]
            a = acts[ly, :n_in]
            if ly == 0 and have_next:
                pre[0, :n_out] = pre0_next[:n_out]
            else:
                for j in range(n_out):
                    row = P[wo + j * n_in : wo + (j + 1) * n_in]
                    z = P[bo + j]
                    for i in range(n_in):
                        z += row[i] * a[i]
                    pre[ly, j] = z
            cnt[F_FWD] += n_out * n_in
            if ly == H:
                break
            cnt[F_FWD_HIDDEN] += n_out * n_in
            z = pre[ly, :n_out]
            g = gval[ly, :n_out]
            nxt = acts[ly + 1, :n_out]
            if gate == GATE_NONE or (gate == GATE_WTA and meta[ly, M_K] >= n_out):
                cnt[N_KEPT] += n_out
                for j in range(n_out):
                    nxt[j] = max(z[j], zero)
            elif gate == GATE_DROPOUT:
                for j in range(n_out):
                    kj = U[e, ucol + j] < gp[0]
                    g[j] = scale if kj else zero
                    nxt[j] = max(z[j], zero) * g[j]
                    cnt[N_KEPT] += kj
                cnt[F_FWD] += n_out  # applying the float gate
                cnt[F_FWD_HIDDEN] += n_out
            else:
                if gate == GATE_STANDOUT:
                    m, kept = _standout_keep(
                        z, gp[0], gp[1], U[e, ucol : ucol + n_out], keep,
                        STANDOUT_BISECTION_STEPS,
                    )
                    cnt[F_FWD] += m
                    cnt[F_FWD_HIDDEN] += m
                    cnt[N_KEPT] += kept
                else:
                    _wta_keep(z, meta[ly, M_K], keep)
                    cnt[N_KEPT] += meta[ly, M_K]
                for j in range(n_out):
                    g[j] = one if keep[j] else zero
                    nxt[j] = max(z[j], zero) if keep[j] else zero
            ucol += n_out
        # -- softmax and cross-entropy (the divisions count in forward)
        n_cls = meta[H, M_OUT]
        logit = pre[H, :n_cls]
        zmax = logit[0]
        for c in range(n_cls):
            zmax = max(zmax, logit[c])
        tot = zero
        for c in range(n_cls):
            dz[c] = np.exp(logit[c] - zmax)
            tot += dz[c]
        for c in range(n_cls):
            dz[c] = dz[c] / tot
        cnt[F_FWD] += n_cls
        yv = y[ex]
        loss_sum += -np.log(max(np.float64(dz[yv]), 1e-30))
        dz[yv] -= one
        for c in range(n_cls):
            dz[c] *= one  # the mean over a batch of one (the BLAS path's 1/m)
        cnt[F_BWD] += n_cls
        # -- backward and update, top layer first; each weight's old value feeds dA
        for ly in range(D - 1, -1, -1):
            n_in, n_out = meta[ly, M_IN], meta[ly, M_OUT]
            wo, bo, ro = meta[ly, M_W], meta[ly, M_B], meta[ly, M_ROW]
            a = acts[ly, :n_in]
            back = ly > 0
            if back:
                da[:n_in] = 0.0
            dav = da[:n_in]
            cnt[F_BWD] += n_out * n_in * (2 if back else 1)
            fuse = ly == 0 and e + 1 < idx.shape[0]
            xn = X[idx[e + 1]] if fuse else X[ex]
            for j in range(n_out):
                d = dz[j]
                lo, hi = wo + j * n_in, wo + (j + 1) * n_in
                w = P[lo:hi]
                if back:
                    for i in range(n_in):
                        dav[i] += w[i] * d
                if kind == SGD:
                    if l2 > 0:
                        for i in range(n_in):
                            w[i] -= lr * (d * a[i] + l2 * w[i])
                    else:
                        for i in range(n_in):
                            w[i] -= lr * (d * a[i])
                elif kind == MOMENTUM:
                    v = V[lo:hi]
                    for i in range(n_in):
                        gi = d * a[i]
                        if l2 > 0:
                            gi += l2 * w[i]
                        v[i] = mu * v[i] + lr * gi
                        w[i] -= v[i]
                elif kind == ADAGRAD_MOMENTUM:
                    v = V[lo:hi]
                    s = S[lo:hi]
                    for i in range(n_in):
                        gi = d * a[i]
                        if l2 > 0:
                            gi += l2 * w[i]
                        s[i] += gi * gi
                        v[i] = mu * v[i] + lr / (eps + np.sqrt(s[i])) * gi
                        w[i] -= v[i]
                else:  # row-wise Adagrad: the row's mean squared gradient first
                    q = zero
                    gr = gsq[:n_in]
                    for i in range(n_in):
                        gi = d * a[i]
                        if l2 > 0:
                            gi += l2 * w[i]
                        gr[i] = gi
                        q += gi * gi
                    S[ro + j] += q / n_in
                    step = lr / (eps + np.sqrt(S[ro + j]))
                    for i in range(n_in):
                        w[i] -= step * gr[i]
                if fuse:  # the next example's forward product with the updated row
                    t = zero
                    for i in range(n_in):
                        t += w[i] * xn[i]
                    pre0_next[j] = t
            # biases: their own rule, no L2
            for j in range(n_out):
                d = dz[j]
                k = bo + j
                if kind == SGD:
                    P[k] -= lr * d
                elif kind == MOMENTUM:
                    V[k] = mu * V[k] + lr * d
                    P[k] -= V[k]
                elif kind == ADAGRAD_MOMENTUM:
                    S[k] += d * d
                    V[k] = mu * V[k] + lr / (eps + np.sqrt(S[k])) * d
                    P[k] -= V[k]
                else:
                    r = ro + n_out + j
                    S[r] += d * d
                    P[k] -= lr / (eps + np.sqrt(S[r])) * d
            cnt[F_UPD] += _update_mults(kind, n_out, n_in, l2 > 0)
            if not back:
                have_next = fuse
                if fuse:
                    for j in range(n_out):
                        pre0_next[j] += P[bo + j]
                break
            # dZ of the layer below: gate, then the ReLU derivative
            n_below = n_in
            g = gval[ly - 1, :n_below]
            zb = pre[ly - 1, :n_below]
            if gate == GATE_DROPOUT:  # a float gate multiplies
                cnt[F_BWD] += n_below
                for i in range(n_below):
                    dz[i] = dav[i] * g[i] if zb[i] > 0 else zero
            else:  # a kept-or-not mask selects
                for i in range(n_below):
                    dz[i] = dav[i] if zb[i] > 0 and g[i] != zero else zero
    return loss_sum


@njit(cache=True, inline="always", error_model="numpy")
def _update_mults(kind, n_out, n_in, l2):  # type: ignore[no-untyped-def]
    """What the update loops above multiply for one layer (models.optim's table)."""
    extra = n_out * n_in if l2 else 0
    if kind == SGD:
        return n_out * n_in + n_out + extra
    if kind == MOMENTUM:
        return 2 * (n_out * n_in + n_out) + extra
    if kind == ADAGRAD_MOMENTUM:
        return 4 * (n_out * n_in + n_out) + extra
    return 2 * n_out * n_in + 2 * n_out + 3 * n_out + extra
