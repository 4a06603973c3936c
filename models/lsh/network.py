"""The LSH-sparse network (model name ``"lsh"``): the paper's method, done with care.

Per example and hidden layer: hash the layer's input (its non-zero entries only), probe
the L tables, pick the active set (top-k by collision count, threshold or union, capped at
ceil(active_fraction * width)), compute only active neurons from only the non-zero inputs,
and back-propagate only through active neurons with positive output. Updates touch only
weights that have a gradient: rows of active neurons with positive output, columns of
non-zero inputs (plus the dense softmax layer's columns of non-zero inputs), with
models.optim's rules and costs applied lazily: untouched weights keep their velocity and
receive no L2 decay until they are touched again (as lazy/sparse Adam does).

Training runs through ``kernels.train_segment``: the epoch's examples between two table
rebuilds form one segment, split into ``threads`` chunks trained concurrently without
locks (Hogwild). With threads=1 everything is sequential and bit-for-bit reproducible.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import time
from typing import Any

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from models.base import ConfigError, EpochStats, Model, MultCounts, softmax_xent
from models.lsh import batch, kernels
from models.lsh.config import LSHConfig
from models.lsh.hashing import HashFamily, make_family
from models.lsh.layout import pack
from models.lsh.tables import HashTables
from models.registry import register

log = logging.getLogger(__name__)

_AUX_SEED = 0x5EED_1F5  # fixed stream for inference and loss_and_grads: they never touch rng_
_RECALL_SAMPLES = 256


@register
class LSHNet(Model):
    name = "lsh"
    config_class = LSHConfig
    config: LSHConfig

    def __init__(self, config: LSHConfig) -> None:
        super().__init__(config)
        cfg = config
        sizes = cfg.layer_sizes
        H = len(cfg.hidden)
        pools = [cfg.pool_input] + [cfg.pool_hidden] * (H - 1)
        self.families_: list[HashFamily] = [
            make_family(cfg.hash_family, sizes[i], pools[i], cfg.K, cfg.L, self.rng_,
                        self.dtype_, cfg.projections)
            for i in range(H)
        ]
        self.caps_ = [max(1, math.ceil(cfg.active_fraction * h - 1e-9)) for h in cfg.hidden]
        packed = pack(cfg, self.weights_, self.biases_, self.families_, self.caps_, self.dtype_)
        # weights_[l] / biases_[l] become (strided, for the output layer transposed) views of
        # the packed buffers, so set_params and the kernels see the same memory
        self.weights_, self.biases_ = packed.weights, packed.biases
        self._lay, self._prm, self._P = packed.layout, packed.params, packed.P
        self._slots = packed.slots
        self._n_w = packed.n_weights
        self._maxw = packed.max_width
        self.tables_ = HashTables(list(cfg.hidden), cfg.K, cfg.L, cfg.bucket_capacity,
                                  self._maxw, fifo=cfg.overflow == "fifo",
                                  use_tables=cfg.uses_tables)
        self._dirty = np.zeros(H * self._maxw, np.uint8)
        self._table_seed = int(self.rng_.integers(0, 2**62))
        # schedule state
        self._since_rebuild = 0
        self._n_rebuilds = 0
        self._pad_events = 0
        self._selections = 0

    def _index(self) -> kernels.Index:
        t = self.tables_
        return kernels.Index(self._P, t.tab, t.tsize, t.sk)

    # -- tables ---------------------------------------------------------------------------
    def _ensure_tables(self) -> int:
        if self.tables_.built:
            return 0
        return self._rebuild(full=True)

    def _rebuild(self, full: bool) -> int:
        dirty = None if (full or not self.config.rehash_changed_only) else self._dirty
        seed = self._table_seed + 7919 * (self.tables_.n_full + self.tables_.n_incremental)
        m = self.tables_.update(self.families_, self.weights_, self.biases_, dirty, seed)
        if dirty is None:
            self._dirty[:] = 0
        return m

    def _interval(self, epoch: int, n: int) -> float:
        cfg = self.config
        if cfg.rebuild == "fixed":
            return cfg.rebuild_interval
        if cfg.rebuild == "decay":
            return cfg.rebuild_interval * cfg.rebuild_growth**self._n_rebuilds
        # "paper": the released driver's schedule, ten rebuilds an epoch in epochs 0-10
        # and in the even epochs 12-18, none afterwards.
        if epoch <= 10 or (12 <= epoch <= 18 and epoch % 2 == 0):
            return max(1, math.ceil(n / 10))
        return math.inf

    def set_params(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        super().set_params(weights, biases)
        self.tables_.built = False  # stale: rebuilt before the next use

    # -- training -------------------------------------------------------------------------
    def _set_numba_threads(self) -> int:
        """Set numba's process-wide thread count to the config's ``threads`` (at most
        NUMBA_NUM_THREADS) before a parallel kernel runs; returns ``threads``, the number
        of chunks the kernels split the work into (the one place it is read)."""
        t = self.config.threads
        numba.set_num_threads(max(1, min(t, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
        return t

    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        return self._train_epoch(X, y, None)

    def _train_epoch(self, X: np.ndarray, y: np.ndarray, rec: kernels.Record | None
                     ) -> EpochStats:
        """One epoch; with ``rec`` (kernels.new_record(n, ...)), row e of it receives the
        active sets of the e-th example trained (in the epoch's order, returned in
        extra["order"]): what the tests' pure-Python replay re-computes."""
        X, y = self._as_data(X, y)  # before the kernels: they index by label unchecked
        n = X.shape[0]
        T = self._set_numba_threads()
        counts = MultCounts()
        counts.rebuild += self._ensure_tables()
        order = self.rng_.permutation(n).astype(np.int64)
        H = len(self.config.hidden)
        if self.config.rebuild == "paper":
            self._since_rebuild = 0
        batched = self.config.train_mode == "batch"
        stats = kernels.new_stats(1 if batched else T)
        idx = self._index()
        pos, n_rebuilds, rebuild_s = 0, 0, 0.0
        phase_s: dict[str, float] = {}
        # The rebuilds' projections run on one BLAS thread: OpenBLAS's idle workers spin
        # between calls and took a core from the Hogwild threads (2 threads: 1.1x -> 1.5x).
        # Batch mode's threads are BLAS's.
        with _thread_pools().limit(limits=T if batched else 1, user_api="blas"):
            while pos < n:
                interval = self._interval(self.epochs_done_, n)
                left = interval - self._since_rebuild
                seg = int(min(n - pos, max(1, left)))
                if batched:  # whole batches between rebuilds
                    seg = min(n - pos, -(-seg // self.config.batch_size) * self.config.batch_size)
                seeds = self.rng_.integers(0, 2**63, size=T, dtype=np.uint64)
                seg_rec = (kernels.Record(rec.sets[pos : pos + seg], rec.n[pos : pos + seg])
                           if rec is not None else kernels.empty_record())
                if batched:
                    batch.train_segment(self, X, y, order[pos : pos + seg], int(seeds[0]),
                                        stats, seg_rec if rec is not None else None, phase_s)
                else:
                    kernels.train_segment(X, y, order[pos : pos + seg], self._lay, self._prm,
                                          idx, self._dirty, seeds, T, stats, seg_rec,
                                          rec is not None)
                # Each thread's loss accumulates over the epoch and NaN stays NaN: T floats
                # per segment locate divergence to the segment (not the example).
                if not np.isfinite(stats.loss).all():
                    raise self._diverged(pos, seg, n)
                pos += seg
                self._since_rebuild += seg
                if self._since_rebuild >= interval:
                    t0 = time.perf_counter()
                    counts.rebuild += self._rebuild(full=False)
                    rebuild_s += time.perf_counter() - t0
                    self._since_rebuild = 0
                    self._n_rebuilds += 1
                    n_rebuilds += 1
        tot = stats.cnt.sum(axis=0)
        cyc = tot[kernels.C_HASH :].astype(float)
        prof = {name: float(c / max(cyc.sum(), 1))
                for name, c in zip(("hash_queries", "select", "forward", "backward_update"),
                                   cyc, strict=True)}
        counts.forward += int(tot[kernels.F_FWD])
        counts.backward += int(tot[kernels.F_BWD])
        counts.update += int(tot[kernels.F_UPD])
        counts.hashing += int(tot[kernels.F_HASH])
        self.mults_ = self.mults_ + counts
        self.epochs_done_ += 1
        self._check_params_finite()
        active = int(stats.active.sum())
        pads = int(stats.pad.sum())
        self._pad_events += pads
        self._selections += n * H
        frac = active / max(n * sum(self.config.hidden), 1)
        return EpochStats(
            n_examples=n,
            loss=float(stats.loss.sum()) / max(n, 1),
            mults=counts,
            active_fraction=frac,
            computed_fraction=frac,
            extra={
                "mults_forward_hidden": int(tot[kernels.F_FWD] - tot[kernels.F_FWD_OUT]),
                "rebuilds": n_rebuilds,
                "rebuild_s": rebuild_s,
                # share of the kernels' cycles (all threads) by phase; rebuild is apart
                "kernel_time_shares": prof,
                "padded_selection_fraction": pads / max(n * H, 1),
                "threads": T,
                **({"batch_phase_s": phase_s} if batched else {}),
                **({"order": order} if rec is not None else {}),
            },
        )

    # -- inference and gradients ----------------------------------------------------------
    def _sparse_forward(self, X: np.ndarray, record: bool, seed: int
                        ) -> tuple[np.ndarray, int, kernels.Record]:
        """Logits of every row of X through the tables, the multiplications (forward and
        query hashing), and (``record``) each row's active sets."""
        T = self._set_numba_threads()
        n, H = X.shape[0], len(self.config.hidden)
        out = np.zeros((n, self.config.n_classes), self.dtype_)
        st_cnt = np.zeros((T, kernels.N_SLOTS), np.int64)
        rec = kernels.new_record(n, H, self._maxw) if record else kernels.empty_record()
        seeds = (np.arange(T, dtype=np.uint64) * np.uint64(1_000_003)
                 + np.uint64(seed & (2**63 - 1)))
        kernels.infer(X, self._lay, self._prm, self._index(), seeds, T, out, st_cnt, rec,
                      record)
        tot = st_cnt.sum(axis=0)
        return out, int(tot[kernels.F_FWD] + tot[kernels.F_HASH]), rec

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        X = self._as_input(X)
        if self.config.inference == "dense":
            A = X
            mults = 0
            for layer, (W, b) in enumerate(self.params()):
                Z = A @ W.T
                Z += b
                mults += X.shape[0] * W.shape[0] * W.shape[1]
                A = np.maximum(Z, 0) if layer < len(self.weights_) - 1 else Z
            self.mults_.inference += mults
            return A
        self.mults_.inference += self._ensure_tables()
        out, mults, _ = self._sparse_forward(X, False, self.config.seed ^ _AUX_SEED)
        self.mults_.inference += mults
        return out

    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        X, y = self._as_data(X, y)
        self._ensure_tables()
        GW = np.zeros(self._n_w, self.dtype_)
        GB = np.zeros_like(self._prm.B)
        hp = self._lay.hp.copy()
        hp[kernels.H_INV_M] = 1.0 / max(X.shape[0], 1)  # gradients of the batch's mean loss
        loss = kernels.grad_batch(X, y, self._lay._replace(hp=hp), self._prm, GW, GB,
                                  self._index(), np.uint64(self.config.seed ^ _AUX_SEED))
        sizes = self.config.layer_sizes
        gw, gb, wo, bo = [], [], 0, 0
        for i in range(len(sizes) - 1):
            g = GW[wo : wo + sizes[i] * sizes[i + 1]]
            last = i == len(sizes) - 2  # the output layer is stored input-major
            gw.append(g.reshape(sizes[i], sizes[i + 1]).T if last
                      else g.reshape(sizes[i + 1], sizes[i]))
            gb.append(GB[bo : bo + sizes[i + 1]])
            wo += sizes[i] * sizes[i + 1]
            bo += sizes[i + 1]
        return float(loss), gw, gb

    # -- diagnostics ----------------------------------------------------------------------
    def active_sets(self, X: np.ndarray) -> list[list[np.ndarray]]:
        """Per example, per hidden layer: the active set inference selects (no counting)."""
        X = self._as_input(X)
        self._ensure_tables()
        _, _, rec = self._sparse_forward(X, True, self.config.seed ^ _AUX_SEED)
        return [[rec.sets[e, h, : rec.n[e, h]].copy() for h in range(rec.n.shape[1])]
                for e in range(X.shape[0])]

    def retrieval_recall(self, X: np.ndarray, n_samples: int = 256, seed: int = 0
                         ) -> dict[str, float]:
        """Recall of the hashed active set against the exact top-cap neurons by
        pre-activation, per hidden layer, on ``n_samples`` rows of X drawn with ``seed``.
        Each layer's input is what the sparse network actually feeds it. Diagnostic:
        its multiplications are not counted."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
                or n_samples < 1:
            raise ConfigError(f"bad n_samples={n_samples!r}: must be an integer >= 1")
        X = self._as_input(X)
        rng = np.random.default_rng(seed)
        rows = rng.choice(X.shape[0], size=min(n_samples, X.shape[0]), replace=False)
        Xs = X[np.sort(rows)]
        sets = self.active_sets(Xs)
        H = len(self.config.hidden)
        hits = np.zeros(H)
        A = Xs  # each layer's input for every sampled row, as the sparse network feeds it
        for h in range(H):
            # One product per layer for all rows (in the model's dtype, as training computes
            # it): a product per row would convert and stream the layer once per row, which
            # at width 16,000 is a gigabyte a row.
            Z = A @ self.weights_[h].T + self.biases_[h]
            cap = self.caps_[h]
            A = np.zeros_like(Z)
            for e in range(Xs.shape[0]):
                z = Z[e]
                top = np.argpartition(-z, cap - 1)[:cap] if cap < z.size else np.arange(z.size)
                S = sets[e][h]
                hits[h] += np.intersect1d(S, top).size / cap
                A[e, S] = np.maximum(z[S], 0)
        res = {f"layer_{h}": float(hits[h] / max(Xs.shape[0], 1)) for h in range(H)}
        res["mean"] = float(np.mean(list(res.values()))) if H else 0.0
        return res

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        d = super().describe()
        d.update({
            "active_caps": list(self.caps_),
            "hash_families": [f.describe() for f in self.families_],
            "projection_bytes": int(self._P.nbytes),
            "parameter_and_state_bytes": int(sum(a.nbytes for a in self._prm)),
            "padded_selection_fraction": self._pad_events / max(self._selections, 1),
            "rebuild_schedule": cfg.rebuild,
            "threading_layer": _threading_layer(),
        })
        d.update(self.tables_.describe())
        return d

    def diagnostics(self, X: np.ndarray) -> dict[str, Any]:
        """Retrieval recall of the hashed active sets against the exact top-k, per hidden
        layer, on a fixed sample of X (``retrieval_recall``); builds the tables if they
        are stale. Uncounted, and costs a dense forward pass per sampled row."""
        rec = self.retrieval_recall(X, _RECALL_SAMPLES, 0)
        H = len(self.config.hidden)
        return {"retrieval_recall": [rec[f"layer_{h}"] for h in range(H)],
                "retrieval_recall_mean": rec["mean"],
                "retrieval_recall_samples": min(_RECALL_SAMPLES, len(X))}

    # -- compilation ----------------------------------------------------------------------
    def warmup(self) -> None:
        """Compile every kernel on a tiny copy of this model's kind (own config, own
        state), so nothing of this model changes."""
        cfg = self.config
        tiny = cfg.replace(n_inputs=6, n_classes=2, hidden=(4, 3), K=2, L=2, seed=0,
                           pool_input=min(cfg.pool_input, 2),
                           pool_hidden=min(cfg.pool_hidden, 2), min_count=1,
                           rebuild_interval=3, active_fraction=0.5,
                           lr=1e-3)  # a value only; a diverging lr must not fail here
        net = LSHNet(tiny)
        rng = np.random.default_rng(0)
        X = rng.random((8, 6)).astype(self.dtype_)
        y = np.arange(8) % 2
        net.train_epoch(X, y)
        net.predict_scores(X)
        net.loss_and_grads(X[:2], y[:2])
        net.active_sets(X[:2])
        softmax_xent(np.zeros((1, 2), self.dtype_), np.zeros(1, np.int64))


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's thread pools, found once (a fresh scan costs ~0.25 ms per epoch). Only
    libraries already loaded are seen; numpy's BLAS, which the rebuilds use, always is."""
    return ThreadpoolController()


def _threading_layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return "not initialised"
