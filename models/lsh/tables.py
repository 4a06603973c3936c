"""The hash tables of every hidden layer, in flat numba-friendly arrays, and their upkeep.

Storage: ``tab`` int32 (H, L, 2^K, C) of neuron ids, ``tsize`` int32 (H, L, 2^K) slots in
use, ``tseen`` int64 (H, L, 2^K) neurons offered to the bucket since it was last cleared.
Memory is fixed at construction: H*L*2^K*(4C + 12) bytes, plus each layer's last codes
(n_out x L int32) for incremental rehashing and its packed K*L-bit sketches
(ceil(K*L/64) x n_out uint64, word-major) for Hamming ranking.

Overflow (a bucket offered more than C neurons): ``reservoir`` keeps a uniform sample of
what arrived (each with probability C/seen); ``fifo`` keeps the C most recent arrivals.
Overflow counts are reported by ``describe()``.

Upkeep: a full rebuild re-projects every neuron with the same projections and refills the
layer's tables; an incremental rehash re-projects only the neurons marked dirty (their
weights changed since the last upkeep) and moves those whose code changed.
"""

from __future__ import annotations

import numpy as np

from models.lsh import kernels
from models.lsh.hashing import HashFamily


class HashTables:
    def __init__(self, n_out: list[int], K: int, L: int, capacity: int, max_width: int,
                 fifo: bool = False, use_tables: bool = True) -> None:
        """Tables of L x 2^K buckets of ``capacity`` slots per hidden layer (widths
        ``n_out``); ``max_width`` is the sketch array's row stride (the kernels' I_MAX_WIDTH);
        ``fifo`` picks FIFO overflow, else reservoir."""
        self.K, self.L, self.C = K, L, capacity
        self.max_width = max_width
        self.fifo = fifo
        H, nb = len(n_out), 1 << K
        self.n_out = n_out
        # Selections that rank by sketches (hamming) or exactly never probe buckets: then
        # the bucket arrays are not allocated and never filled.
        self.use_tables = use_tables
        if not use_tables:
            H = 0
        self.tab = np.zeros(max(H * L * nb * capacity, 1), np.int32)
        self.tsize = np.zeros(max(H * L * nb, 1), np.int32)
        self.tseen = np.zeros(max(H * L * nb, 1), np.int64)
        H = len(n_out)
        self.codes = [np.zeros((n, L), np.int32) for n in n_out]
        # every neuron's K*L sign bits, packed (selection="hamming" ranks by them), laid
        # out (layer, word, neuron): ranking streams one word over consecutive neurons
        self.n_words = (K * L + 63) // 64
        self.sk = np.zeros(max(H, 1) * max_width * self.n_words, np.uint64)
        self.built = False
        self.n_full = 0
        self.n_incremental = 0
        self.neurons_rehashed = 0

    def update(self, families: list[HashFamily], weights: list[np.ndarray],
               biases: list[np.ndarray], dirty: np.ndarray | None, seed: int) -> int:
        """Full rebuild (``dirty`` None or tables not yet built) or incremental rehash of
        the dirty neurons; returns the multiplications spent (all in the projections)."""
        full = dirty is None or not self.built
        mults = 0
        maxw = self.max_width
        for layer, fam in enumerate(families):
            W, b = weights[layer], biases[layer]
            if full or dirty is None:
                rows = np.arange(W.shape[0], dtype=np.int64)
            else:
                flags = dirty[layer * maxw : layer * maxw + W.shape[0]]
                rows = np.flatnonzero(flags).astype(np.int64)
                if rows.size == 0:
                    continue
            proj, m = fam.neuron_projections(W[rows] if not full else W,
                                             b[rows] if not full else b, full)
            mults += m
            proj = np.ascontiguousarray(proj)
            kernels.pack_sketches(proj, rows, self.sk, layer, maxw)
            if not self.use_tables:
                self.neurons_rehashed += rows.size
                continue
            codes = kernels.pack_codes(proj, self.K, self.L)
            kernels.table_update(self.tab, self.tsize, self.tseen, self.codes[layer],
                                 codes, rows, layer, self.K, self.L, self.C, self.fifo, full,
                                 np.uint64(seed + layer))
            self.neurons_rehashed += rows.size
        if dirty is not None:
            dirty[:] = 0
        if full:
            self.n_full += 1
        else:
            self.n_incremental += 1
        self.built = True
        return mults

    def nbytes(self) -> int:
        return int(self.tab.nbytes + self.tsize.nbytes + self.tseen.nbytes
                   + sum(c.nbytes for c in self.codes) + self.sk.nbytes)

    def describe(self) -> dict:
        nb = 1 << self.K
        H = len(self.n_out)
        common = {
            "table_bytes": self.nbytes(),
            "bucket_tables_used": self.use_tables,
            "sketch_bits": self.K * self.L,
            "full_rebuilds": self.n_full,
            "incremental_rehashes": self.n_incremental,
            "neurons_rehashed": int(self.neurons_rehashed),
        }
        if not self.use_tables:
            return common
        size = self.tsize.reshape(H, self.L, nb)
        seen = self.tseen.reshape(H, self.L, nb)
        return {
            **common,
            "buckets_per_table": nb,
            "bucket_capacity": self.C,
            "empty_bucket_fraction": [float(np.mean(size[h] == 0)) for h in range(H)],
            "mean_bucket_fill": [float(np.mean(size[h])) for h in range(H)],
            "max_bucket_seen": [int(seen[h].max(initial=0)) for h in range(H)],
            "overflowed_buckets": [int(np.sum(seen[h] > self.C)) for h in range(H)],
        }
