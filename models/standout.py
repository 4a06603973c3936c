"""Adaptive dropout, "standout" (Ba and Frey, NIPS 2013), with the layer's own weights.

Each hidden node is kept with probability p_j = sigmoid(alpha * z_j + beta), z_j its
pre-activation. ``standout_alpha`` is a setting; beta is solved per example so that the mean
keep probability over the layer equals ``active_fraction`` exactly (bisection, a fixed number of
steps), which makes the expected kept fraction match the target whatever the scale of z.
Training samples a mask from p; inference uses the expectation, relu(z) * p (as Ba and Frey).

Counted multiplications per hidden entry: alpha * z once, one division per bisection step
(the sigmoid's 1 / (1 + exp(-x))), and at inference the product with p.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models import dense_kernels as dk
from models.base import ConfigError
from models.dense import DenseConfig, DenseNet, KernelGate
from models.registry import register

_BISECTION_STEPS = dk.STANDOUT_BISECTION_STEPS  # beta bracket [-40, 40] narrowed below 1e-7


@dataclass(frozen=True)
class StandoutConfig(DenseConfig):
    standout_alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.standout_alpha > 0:
            raise ConfigError(f"bad setting standout_alpha={self.standout_alpha!r}: must be > 0")


def keep_probabilities(Z: np.ndarray, alpha: float, target: float) -> tuple[np.ndarray, int]:
    """sigmoid(alpha*Z + beta) with beta per row chosen so each row's mean equals ``target``.
    Returns the probabilities and the multiplications spent."""
    a = alpha * Z.astype(np.float64)
    lo = np.full((Z.shape[0], 1), -40.0)
    hi = np.full((Z.shape[0], 1), 40.0)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        mean = (1.0 / (1.0 + np.exp(-(a + mid)))).mean(axis=1, keepdims=True)
        too_high = mean > target
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    p = 1.0 / (1.0 + np.exp(-(a + 0.5 * (lo + hi))))
    # alpha*Z, one division per step and the final one; the halvings are per row (2 per step).
    mults = Z.size * (_BISECTION_STEPS + 2) + Z.shape[0] * (2 * _BISECTION_STEPS + 1)
    return p.astype(Z.dtype), mults


@register
class StandoutNet(DenseNet):
    name = "standout"
    config_class = StandoutConfig
    config: StandoutConfig

    def _gate(self, layer: int, Z: np.ndarray, training: bool) -> tuple[np.ndarray | None, int]:
        target = self.config.active_fraction
        if target >= 1.0:
            return None, 0
        p, mults = keep_probabilities(Z, self.config.standout_alpha, target)
        if training:
            return self.rng_.random(Z.shape) < p, mults
        return p, mults

    def _kernel_gate(self) -> KernelGate:
        target = self.config.active_fraction
        if target >= 1.0:
            return super()._kernel_gate()
        return dk.GATE_STANDOUT, np.array([self.config.standout_alpha, target]), True, 1.0
