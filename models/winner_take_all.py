"""Winner-take-all (Makhzani and Frey): per example and hidden layer, only the k largest
pre-activations pass, k = ceil(active_fraction * width).

The rule is part of the network, so it applies at inference too. The full pre-activation is
computed first; selection costs comparisons, not multiplications.
"""

from __future__ import annotations

import math

import numpy as np

from models import dense_kernels as dk
from models.dense import DenseNet, KernelGate
from models.registry import register


@register
class WinnerTakeAllNet(DenseNet):
    name = "wta"

    def _gate(self, layer: int, Z: np.ndarray, training: bool) -> tuple[np.ndarray | None, int]:
        width = Z.shape[1]
        k = max(1, math.ceil(self.config.active_fraction * width - 1e-9))
        if k >= width:
            return None, 0
        top = np.argpartition(Z, width - k, axis=1)[:, width - k :]
        keep = np.zeros(Z.shape, dtype=bool)
        np.put_along_axis(keep, top, True, axis=1)
        return keep, 0

    def _kernel_gate(self) -> KernelGate:  # k per layer is in the kernel's layer table
        return dk.GATE_WTA, np.zeros(2), False, 1.0
