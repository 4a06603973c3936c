"""The standard fully connected network (ReLU hidden layers, softmax output).

The dropout-style baselines reuse it: they differ only in the *gate* applied to each hidden
layer's ReLU output (``_gate``, and ``_kernel_gate`` for the compiled path). Every hidden
pre-activation is computed in full, and the products in forward and backward are dense, so
their counts equal the dense network's plus whatever the gate itself costs: that is exactly
what this code multiplies.

Two paths, the same maths, the same random numbers and the same counts: mini-batches go
through BLAS; at batch size 1 (the paper's protocol) the per-example kernels of
``models.dense_kernels`` train a chunk of examples per call, because numpy's per-call
overhead, not arithmetic, would otherwise set the speed. ``engine="blas"`` forces BLAS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models import dense_kernels as dk
from models.base import ConfigError, EpochStats, Model, MultCounts, NetConfig, softmax_xent
from models.optim import ADAGRAD_EPS, OPTIMIZERS, Optimizer
from models.registry import register

_PREDICT_CHUNK = 4096  # rows per inference product: bounds memory, keeps BLAS efficient
_KERNEL_CHUNK = 1024  # examples per compiled call: bounds the uniforms drawn ahead
ENGINES = ("auto", "blas")

# logits, inputs of each layer, hidden pre-activations, hidden gates, multiplications (all,
# hidden layers only), kept
_Forward = tuple[
    np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray | None], int, int, int
]


@dataclass(frozen=True)
class DenseConfig(NetConfig):
    engine: str = "auto"  # "auto": compiled per-example kernels at batch size 1; "blas": never

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine not in ENGINES:
            raise ConfigError(f"bad setting engine={self.engine!r}: must be one of {ENGINES}")


# What the compiled kernel needs of a gate: its code, float64 parameters, whether it draws
# one uniform per hidden neuron and example, and the dropout scale (1/p) in the model dtype.
KernelGate = tuple[int, np.ndarray, bool, float]


@register
class DenseNet(Model):
    """All hidden nodes computed and updated; mini-batches of any size (1 = the paper's)."""

    name = "dense"
    config_class = DenseConfig
    config: DenseConfig

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        # Parameters in one flat buffer (W0, b0, W1, b1, ...), weights_/biases_ views of it,
        # so the compiled kernels and BLAS work on the same memory.
        pairs = self.params()
        self._P = np.concatenate([a.ravel() for pair in pairs for a in pair])
        params, off = [], 0
        for pair in pairs:
            for a in pair:
                params.append(self._P[off : off + a.size].reshape(a.shape))
                off += a.size
        self.weights_, self.biases_ = params[0::2], params[1::2]
        decay = [config.l2 if i % 2 == 0 else 0.0 for i in range(len(params))]
        self.optimizer_ = Optimizer(params, config.optimizer, config.lr, config.momentum, decay)
        self._params = params
        self._meta = self._kernel_meta()

    def _kernel_meta(self) -> np.ndarray:
        """Per layer: n_in, n_out, weight and bias offsets in the flat buffer, the offset of
        its row-wise optimizer state, and WTA's k (see models.dense_kernels)."""
        sizes = self.config.layer_sizes
        meta = np.zeros((len(sizes) - 1, 6), np.int64)
        off = row = 0
        for ly, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            k = max(1, math.ceil(self.config.active_fraction * n_out - 1e-9))
            meta[ly] = (n_in, n_out, off, off + n_in * n_out, row, k)
            off += n_in * n_out + n_out
            row += 2 * n_out
        return meta

    @property
    def compiled_(self) -> bool:
        """Whether training goes through the compiled per-example kernels."""
        return self.config.engine == "auto" and self.config.batch_size == 1

    # -- the gate hook (identity here) ----------------------------------------------------
    def _gate(self, layer: int, Z: np.ndarray, training: bool) -> tuple[np.ndarray | None, int]:
        """Gate for hidden layer ``layer`` given its pre-activation Z (m x n_out).

        Returns (gate, multiplications spent computing it). ``None`` keeps every node; a
        boolean array keeps the True nodes (no multiplication); a float array scales each
        node's output (one multiplication per entry, forward and backward)."""
        return None, 0

    def _kernel_gate(self) -> KernelGate:
        """The same gate for the compiled kernel (training only)."""
        return dk.GATE_NONE, np.zeros(2), False, 1.0

    # -- forward and backward -------------------------------------------------------------
    def _forward(self, X: np.ndarray, training: bool) -> _Forward:
        """Returns logits, per-layer inputs, pre-activations and gates, mults, kept nodes."""
        m = X.shape[0]
        inputs: list[np.ndarray] = []
        pre: list[np.ndarray] = []
        gates: list[np.ndarray | None] = []
        mults, kept = 0, 0
        A = X
        n_hidden = len(self.config.hidden)
        for layer in range(n_hidden):
            W, b = self.weights_[layer], self.biases_[layer]
            Z = A @ W.T
            Z += b
            mults += m * W.shape[0] * W.shape[1]
            gate, gate_mults = self._gate(layer, Z, training)
            mults += gate_mults
            A_next = np.maximum(Z, 0)
            if gate is None:
                kept += Z.size
            elif gate.dtype == np.bool_:
                A_next[~gate] = 0
                kept += int(np.count_nonzero(gate))
            else:
                A_next *= gate
                mults += gate.size
                kept += int(np.count_nonzero(gate))
            inputs.append(A)
            pre.append(Z)
            gates.append(gate)
            A = A_next
        hidden_mults = mults
        W, b = self.weights_[-1], self.biases_[-1]
        logits = A @ W.T
        logits += b
        mults += m * W.shape[0] * W.shape[1]
        inputs.append(A)
        return logits, inputs, pre, gates, mults, hidden_mults, kept

    def _backward(
        self,
        probs: np.ndarray,
        y: np.ndarray,
        inputs: list[np.ndarray],
        pre: list[np.ndarray],
        gates: list[np.ndarray | None],
    ) -> tuple[list[np.ndarray], int]:
        """Gradients of the mean cross-entropy; returns (grads in parameter order, mults)."""
        m = probs.shape[0]
        dZ = probs
        dZ[np.arange(m), y] -= 1.0
        dZ *= 1.0 / m
        mults = dZ.size
        grads: list[np.ndarray] = [np.empty(0)] * len(self._params)
        for layer in range(len(self.weights_) - 1, -1, -1):
            W, A_in = self.weights_[layer], inputs[layer]
            grads[2 * layer] = dZ.T @ A_in
            grads[2 * layer + 1] = dZ.sum(axis=0)
            mults += m * W.shape[0] * W.shape[1]
            if layer == 0:
                break
            dA = dZ @ W
            mults += m * W.shape[0] * W.shape[1]
            gate = gates[layer - 1]
            if gate is not None:
                if gate.dtype == np.bool_:
                    dA[~gate] = 0
                else:
                    dA *= gate
                    mults += gate.size
            dA[pre[layer - 1] <= 0] = 0  # ReLU derivative
            dZ = dA
        return grads, mults

    # -- the public interface -------------------------------------------------------------
    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        X, y = self._as_data(X, y)
        logits, inputs, pre, gates, *_ = self._forward(X, training=True)
        loss, probs = softmax_xent(logits, y)
        grads, _ = self._backward(probs, y, inputs, pre, gates)
        return loss, grads[0::2], grads[1::2]

    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        X, y = self._as_data(X, y)  # before the kernel: it indexes by label unchecked
        n = X.shape[0]
        order = self.rng_.permutation(n)
        if self.compiled_:
            counts, loss_sum, kept, hidden_fwd = self._train_compiled(X, y, order)
        else:
            counts, loss_sum, kept, hidden_fwd = self._train_blas(X, y, order)
        self.mults_ = self.mults_ + counts
        self.epochs_done_ += 1
        self._check_params_finite()
        hidden_total = n * sum(self.config.hidden)
        return EpochStats(
            n_examples=n,
            loss=loss_sum / max(n, 1),
            mults=counts,
            active_fraction=kept / max(hidden_total, 1),
            computed_fraction=1.0,
            extra={"mults_forward_hidden": hidden_fwd, "engine": self._engine_name()},
        )

    def _engine_name(self) -> str:
        return "compiled per-example" if self.compiled_ else "blas"

    def _train_blas(
        self, X: np.ndarray, y: np.ndarray, order: np.ndarray
    ) -> tuple[MultCounts, float, int, int]:
        counts = MultCounts()
        loss_sum, kept, hidden_fwd = 0.0, 0, 0
        for start in range(0, X.shape[0], self.config.batch_size):
            idx = order[start : start + self.config.batch_size]
            Xb, yb = X[idx], y[idx]
            logits, inputs, pre, gates, f_mults, f_hidden, f_kept = self._forward(Xb, True)
            loss, probs = softmax_xent(logits, yb)
            if not math.isfinite(loss):  # one check per batch: the exact batch is known
                raise self._diverged(start, len(idx), X.shape[0])
            counts.forward += f_mults + probs.size  # + the softmax normalisation (divisions)
            hidden_fwd += f_hidden
            grads, b_mults = self._backward(probs, yb, inputs, pre, gates)
            counts.backward += b_mults
            counts.update += self.optimizer_.step(self._params, grads)
            loss_sum += loss * len(idx)
            kept += f_kept
        return counts, loss_sum, kept, hidden_fwd

    def _train_compiled(
        self, X: np.ndarray, y: np.ndarray, order: np.ndarray
    ) -> tuple[MultCounts, float, int, int]:
        """Chunks of examples through the compiled kernel. Uniforms for the gates are drawn
        from the model's generator per chunk in the order the BLAS path draws them (per
        example, per hidden layer), so both paths see the same random numbers."""
        cfg = self.config
        code, gp, draws, scale = self._kernel_gate()
        hp = np.array(
            [cfg.lr, cfg.momentum, cfg.l2, ADAGRAD_EPS, 1.0, 0.0, scale], dtype=self.dtype_
        )
        kind = OPTIMIZERS.index(cfg.optimizer)
        opt = self.optimizer_
        cnt = np.zeros(dk.N_SLOTS, np.int64)
        no_draws = np.zeros((1, 1))
        loss_sum = 0.0
        for start in range(0, X.shape[0], _KERNEL_CHUNK):
            idx = order[start : start + _KERNEL_CHUNK]
            U = self.rng_.random((len(idx), sum(cfg.hidden))) if draws else no_draws
            chunk_loss = dk.train_chunk(
                X, y, idx, self._meta, self._P, opt.velocity_buf, opt.sq_sum_buf, hp, kind,
                code, gp, U, cnt,
            )
            # The kernel returns only the chunk's summed loss (NaN propagates through it), so
            # divergence is located to the chunk, not the example; nothing per example.
            if not math.isfinite(chunk_loss):
                raise self._diverged(start, len(idx), X.shape[0])
            loss_sum += chunk_loss
        counts = MultCounts(
            forward=int(cnt[dk.F_FWD]), backward=int(cnt[dk.F_BWD]), update=int(cnt[dk.F_UPD])
        )
        return counts, loss_sum, int(cnt[dk.N_KEPT]), int(cnt[dk.F_FWD_HIDDEN])

    def warmup(self) -> None:
        """Compile the per-example kernel (for this dtype) on a tiny copy of this model's
        kind, so nothing of this model changes."""
        if not self.compiled_:
            return
        # lr only enters as a value; a tiny lr keeps a diverging setting from failing here.
        tiny = type(self)(
            self.config.replace(n_inputs=3, n_classes=2, hidden=(4, 3), seed=0, lr=1e-3)
        )
        rng = np.random.default_rng(0)
        tiny.train_epoch(rng.random((4, 3)).astype(self.dtype_), np.arange(4) % 2)

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        X = self._as_input(X)
        out = np.empty((X.shape[0], self.config.n_classes), dtype=self.dtype_)
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            logits, *_, mults, _, _ = self._forward(X[start : start + _PREDICT_CHUNK], False)
            self.mults_.inference += mults
            out[start : start + _PREDICT_CHUNK] = logits
        return out
