"""Vanilla dropout: each hidden node kept with probability = active_fraction, whatever the input.

Inverted dropout: kept outputs are scaled by 1/p during training so that inference uses the
plain network. The full pre-activation is computed first, so nothing is saved in forward.
"""

from __future__ import annotations

import numpy as np

from models import dense_kernels as dk
from models.dense import DenseNet, KernelGate
from models.registry import register


@register
class DropoutNet(DenseNet):
    name = "dropout"

    def _gate(self, layer: int, Z: np.ndarray, training: bool) -> tuple[np.ndarray | None, int]:
        p = self.config.active_fraction
        if not training or p >= 1.0:
            return None, 0
        keep = self.rng_.random(Z.shape) < p
        # A float gate (0 or 1/p): applying it is one multiplication per entry, which the
        # caller counts in forward and backward; building it with `where` multiplies nothing.
        return np.where(keep, Z.dtype.type(1.0 / p), Z.dtype.type(0.0)), 0

    def _kernel_gate(self) -> KernelGate:
        p = self.config.active_fraction
        if p >= 1.0:
            return super()._kernel_gate()
        return dk.GATE_DROPOUT, np.array([p, 0.0]), True, float(self.dtype_.type(1.0 / p))
