"""Adaptive dropout, "standout" (Ba and Frey, NIPS 2013), with the layer's own weights.

Each hidden node is kept with probability p_j = sigmoid(alpha * z_j + beta), z_j its
pre-activation. ``standout_alpha`` is a setting; beta is solved per example so that the mean
keep probability over the layer equals ``active_fraction`` exactly (bisection, a fixed number of
steps), which makes the expected kept fraction match the target whatever the scale of z.
Training samples a mask from p; inference uses the expectation, relu(z) * p (as Ba and Frey).

Counted multiplications per hidden entry: alpha * z once, a product and a division per
bisection step and for the final probabilities (see ``keep_probabilities``), and at inference
the product with p.
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
    Returns the probabilities and the multiplications spent.

    sigmoid(a + beta) = 1 / (1 + exp(-a) * exp(-beta)): exp(-a) is taken once per entry and
    each bisection step costs a multiplication and a division per entry, not an exponential
    (which compiled code cannot vectorise here). Where exp(-a) overflows, p is 0 either way.
    """
    a = alpha * Z.astype(np.float64)
    with np.errstate(over="ignore"):
        e = np.exp(-a)
    lo = np.full((Z.shape[0], 1), -40.0)
    hi = np.full((Z.shape[0], 1), 40.0)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        mean = (1.0 / (1.0 + e * np.exp(-mid))).mean(axis=1, keepdims=True)
        too_high = mean > target
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    p = 1.0 / (1.0 + e * np.exp(-0.5 * (lo + hi)))
    return p.astype(Z.dtype), standout_mults(Z.shape[0], Z.shape[1])


def standout_mults(rows: int, width: int) -> int:
    """alpha*z, then a product and a division per entry in each step and in the final
    probabilities; per row, a halving and the mean's division per step, one final halving."""
    return rows * width * (1 + 2 * _BISECTION_STEPS + 2) + rows * (2 * _BISECTION_STEPS + 1)


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
