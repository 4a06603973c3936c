"""The standard fully connected network (ReLU hidden layers, softmax output), through BLAS.

The dropout-style baselines reuse it: they differ only in the *gate* applied to each hidden
layer's ReLU output (``_gate``). Every hidden pre-activation is computed in full, and the
products in forward and backward are dense, so their counts equal the dense network's plus
whatever the gate itself costs: that is exactly what this code multiplies.
"""

from __future__ import annotations

import numpy as np

from models.base import EpochStats, Model, MultCounts, NetConfig, softmax_xent
from models.optim import Optimizer
from models.registry import register

_PREDICT_CHUNK = 4096  # rows per inference product: bounds memory, keeps BLAS efficient

# logits, inputs of each layer, hidden pre-activations, hidden gates, multiplications, kept
_Forward = tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray | None], int, int]


@register
class DenseNet(Model):
    """All hidden nodes computed and updated; mini-batches of any size (1 = the paper's)."""

    name = "dense"

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        params = [p for pair in self.params() for p in pair]
        decay = [config.l2 if i % 2 == 0 else 0.0 for i in range(len(params))]
        self.optimizer_ = Optimizer(params, config.optimizer, config.lr, config.momentum, decay)
        self._params = params

    # -- the gate hook (identity here) ----------------------------------------------------
    def _gate(self, layer: int, Z: np.ndarray, training: bool) -> tuple[np.ndarray | None, int]:
        """Gate for hidden layer ``layer`` given its pre-activation Z (m x n_out).

        Returns (gate, multiplications spent computing it). ``None`` keeps every node; a
        boolean array keeps the True nodes (no multiplication); a float array scales each
        node's output (one multiplication per entry, forward and backward)."""
        return None, 0

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
        W, b = self.weights_[-1], self.biases_[-1]
        logits = A @ W.T
        logits += b
        mults += m * W.shape[0] * W.shape[1]
        inputs.append(A)
        return logits, inputs, pre, gates, mults, kept

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
        X = self._as_input(X)
        y = np.asarray(y)
        logits, inputs, pre, gates, _, _ = self._forward(X, training=True)
        loss, probs = softmax_xent(logits, y)
        grads, _ = self._backward(probs, y, inputs, pre, gates)
        return loss, grads[0::2], grads[1::2]

    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        X = self._as_input(X)
        y = np.asarray(y, dtype=np.int64)
        n, bs = X.shape[0], self.config.batch_size
        order = self.rng_.permutation(n)
        counts = MultCounts()
        loss_sum, kept = 0.0, 0
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            Xb, yb = X[idx], y[idx]
            logits, inputs, pre, gates, f_mults, f_kept = self._forward(Xb, training=True)
            loss, probs = softmax_xent(logits, yb)
            counts.forward += f_mults + probs.size  # + the softmax normalisation (divisions)
            grads, b_mults = self._backward(probs, yb, inputs, pre, gates)
            counts.backward += b_mults
            counts.update += self.optimizer_.step(self._params, grads)
            loss_sum += loss * len(idx)
            kept += f_kept
        self.mults_ = self.mults_ + counts
        self.epochs_done_ += 1
        hidden_total = n * sum(self.config.hidden)
        return EpochStats(
            n_examples=n,
            loss=loss_sum / max(n, 1),
            mults=counts,
            active_fraction=kept / max(hidden_total, 1),
            computed_fraction=1.0,
        )

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        X = self._as_input(X)
        out = np.empty((X.shape[0], self.config.n_classes), dtype=self.dtype_)
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            logits, *_, mults, _ = self._forward(X[start : start + _PREDICT_CHUNK], False)
            self.mults_.inference += mults
            out[start : start + _PREDICT_CHUNK] = logits
        return out
