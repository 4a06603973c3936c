"""Hash families and tables: LSH finds planted large inner products far better than chance;
bucket overflow follows its documented policy."""

from __future__ import annotations

import numpy as np
import pytest

import models
from models.lsh import kernels
from models.lsh.hashing import pool_rows


def _planted(family: str, selection: str, seed: int = 0) -> tuple[float, float]:
    """20 queries, each with 5 planted neurons of large inner product among 400."""
    d, n, n_q, per = 32, 400, 20, 5
    rng = np.random.default_rng(seed)
    net = models.build("lsh", {
        "n_inputs": d, "n_classes": 2, "hidden": [n], "dtype": "float64", "seed": seed,
        "hash_family": family, "K": 5, "L": 40, "active_fraction": per / n,
        "selection": selection, "pool_input": 1,
    })
    Q = rng.standard_normal((n_q, d))
    W = rng.standard_normal((n, d)) / np.sqrt(d) * rng.uniform(0.5, 1.5, (n, 1))
    planted = rng.permutation(n)[: n_q * per].reshape(n_q, per)
    for q in range(n_q):
        u = Q[q] / np.linalg.norm(Q[q])
        W[planted[q]] = 3.0 * u + 0.3 * rng.standard_normal((per, d)) / np.sqrt(d)
    net.set_params([W, net.weights_[1]], [np.zeros(n), np.zeros(2)])
    sets = net.active_sets(Q)
    lsh_recall = np.mean([np.isin(planted[q], sets[q][0]).mean() for q in range(n_q)])
    rand_recall = np.mean([np.isin(planted[q], rng.choice(n, per, replace=False)).mean()
                           for q in range(n_q)])
    return float(lsh_recall), float(rand_recall)


@pytest.mark.parametrize("selection", ["topk", "hamming", "threshold", "union"])
@pytest.mark.parametrize("family", ["srp", "simple_lsh"])
def test_lsh_beats_random_on_planted_instance(family: str, selection: str) -> None:
    lsh_recall, rand_recall = _planted(family, selection)
    if selection == "union":  # unranked: keeps the first arrivals, still far above chance
        assert lsh_recall >= max(0.12, 4 * rand_recall), lsh_recall
        return
    assert lsh_recall >= 0.6, lsh_recall
    assert lsh_recall >= rand_recall + 0.5


@pytest.mark.parametrize("family", ["srp", "simple_lsh"])
def test_retrieval_recall_against_exact_topk(family: str) -> None:
    rng = np.random.default_rng(1)
    net = models.build("lsh", {"n_inputs": 20, "n_classes": 2, "hidden": [200],
                               "hash_family": family, "K": 4, "L": 30, "pool_input": 1,
                               "active_fraction": 0.1})
    X = rng.random((50, 20)).astype(np.float32)
    rec = net.retrieval_recall(X, n_samples=30, seed=0)
    assert set(rec) == {"layer_0", "mean"}
    # random selection would recall 10%; hashing on a weight-correlated layer does better
    assert 0.25 < rec["layer_0"] <= 1.0


def _buckets(capacity: int, fifo: bool, codes: np.ndarray) -> tuple:
    n = codes.shape[0]
    tab = np.zeros(2 * capacity, np.int32)
    tsize = np.zeros(2, np.int32)
    tseen = np.zeros(2, np.int64)
    old = np.zeros((n, 1), np.int32)
    kernels.table_update(tab, tsize, tseen, old, codes, np.arange(n, dtype=np.int64), 0, 1, 1,
                         capacity, fifo, True, np.uint64(5))
    return tab.reshape(2, capacity), tsize, tseen, old, capacity


def test_fifo_keeps_the_newest_arrivals() -> None:
    codes = np.array([[0], [1], [0], [0], [0], [1], [0]], np.int32)
    tab, tsize, tseen, _, _ = _buckets(2, True, codes)
    assert list(tseen) == [5, 2] and list(tsize) == [2, 2]
    assert sorted(tab[0]) == [4, 6]  # bucket 0 got 0,2,3,4,6: the ring wrapped twice
    assert sorted(tab[1]) == [1, 5]


def test_reservoir_is_bounded_and_uniform() -> None:
    codes = np.zeros((50, 1), np.int32)
    kept = np.zeros(50)
    for seed in range(200):
        tab = np.zeros(10, np.int32)
        tsize = np.zeros(2, np.int32)
        tseen = np.zeros(2, np.int64)
        kernels.table_update(tab, tsize, tseen, np.zeros((50, 1), np.int32), codes,
                             np.arange(50, dtype=np.int64), 0, 1, 1, 5, False, True,
                             np.uint64(seed))
        assert tsize[0] == 5 and tseen[0] == 50 and len(set(tab[:5])) == 5
        kept[tab[:5]] += 1
    # each arrival is kept with probability 5/50: first and second half alike
    assert abs(kept[:25].sum() - kept[25:].sum()) < 0.25 * kept.sum()


def test_incremental_move_between_buckets() -> None:
    codes = np.array([[0], [0], [1]], np.int32)
    tab, tsize, tseen, old, cap = _buckets(4, False, codes)
    flat, ts = tab.ravel(), tsize
    kernels.table_update(flat, ts, tseen, old, np.array([[1]], np.int32),
                         np.array([0], np.int64), 0, 1, 1, cap, False, False, np.uint64(1))
    tab = flat.reshape(2, 4)
    assert sorted(tab[0, : ts[0]]) == [1] and sorted(tab[1, : ts[1]]) == [0, 2]
    assert old[0, 0] == 1


def test_pooling_sums_blocks() -> None:
    W = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(pool_rows(W, 2), [[1, 5, 4], [11, 15, 9]])


@pytest.mark.parametrize("pool", [2, 3, 4, 7, 8, 9, 98])
@pytest.mark.parametrize("d", [28, 30, 1])
def test_pooling_equals_numpy_block_sums(pool: int, d: int) -> None:
    """Strided float32 rows (weights interleaved with optimizer state, as the LSH network
    stores them), widths with and without a padded last block: numpy's padded block sums,
    bit for bit below 8 (numpy sums larger blocks pairwise: equal within rounding)."""
    rng = np.random.default_rng(pool * 100 + d)
    W = rng.standard_normal((37, d, 3)).astype(np.float32)[:, :, 0]
    dp = -(-d // pool)
    padded = np.zeros((37, dp * pool), np.float32)
    padded[:, :d] = W
    ref = padded.reshape(37, dp, pool).sum(axis=2)
    if pool < 8:
        np.testing.assert_array_equal(pool_rows(W, pool), ref)
    else:
        np.testing.assert_allclose(pool_rows(W, pool), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("n_out", "KL", "cap", "distinct"),
                         [(1000, 300, 50, 0), (130, 70, 7, 0), (64, 64, 64, 0), (1, 10, 1, 0),
                          (200, 128, 30, 3), (77, 300, 76, 2)])
def test_hamming_selection_matches_exact_ranking(n_out: int, KL: int, cap: int,
                                                 distinct: int) -> None:
    """The kernel's ranking against numpy's: every neuron strictly closer than the cut is
    kept, the rest of the cap are ties at the cut, nothing twice. ``distinct`` > 0 draws
    the sketches from that few values, so most neurons tie."""
    rng = np.random.default_rng(n_out + KL)
    nw, maxw = (KL + 63) // 64, n_out + 5  # rows longer than the layer, as in a network
    words = rng.integers(0, 2**64, (nw, maxw), dtype=np.uint64, endpoint=False)
    if distinct:
        words = words[:, rng.integers(0, distinct, maxw)]
    words[-1] &= np.uint64((1 << (KL - 64 * (nw - 1))) - 1) if KL % 64 else ~np.uint64(0)
    sk = np.concatenate([np.zeros(nw * maxw, np.uint64), words.ravel()])  # layer 1 of 2
    acc = rng.standard_normal(KL).astype(np.float32)
    dist = np.zeros((maxw + 63) // 64 * 64, np.int32)
    qw = np.zeros(nw + 2 * ((maxw + 63) // 64), np.uint64)
    sel = np.full(maxw, -1, np.int32)
    qbits = (acc > 0).astype(np.uint8)
    nbits = np.unpackbits(words[:, :n_out].T.copy().view(np.uint8), axis=1,
                          bitorder="little")[:, :KL]
    ref = (nbits != qbits).sum(axis=1)
    picked = []
    for seed in range(1, 6):
        n, _ = kernels._select_hamming(acc, 1, n_out, cap, KL, maxw, sk, dist, qw, sel,
                                       np.array([seed], np.uint64))
        s = sel[:n]
        assert n == min(cap, n_out) and len(set(s)) == n and s.min() >= 0 and s.max() < n_out
        cut = np.sort(ref)[n - 1]
        assert set(np.flatnonzero(ref < cut)) <= set(s)
        assert (ref[s] <= cut).all()
        picked.append(frozenset(s))
    if distinct and cap < n_out:
        assert len(set(picked)) > 1  # ties broken from a random start, not always the same
