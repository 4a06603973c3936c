"""Update rules shared by all models, with their exact multiplication cost per parameter.

For a parameter w with gradient g (already averaged over the batch):

- ``sgd``:              w -= lr*g                                   1 multiplication
- ``momentum``:         v = mu*v + lr*g; w -= v                     2
- ``adagrad_momentum``: the paper's rule, per parameter:            4
      acc += g*g;  step = lr / (1e-6 + sqrt(acc)) * g;  v = mu*v + step;  w -= v
  (the division counts as one multiplication; sqrt is not counted)

With L2 (weights only, never biases) the gradient first becomes g + l2*w: one more
multiplication per weight. Sparse models apply the same rules to the entries they touch.
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adagrad_momentum")
MULTS_PER_PARAM = {"sgd": 1, "momentum": 2, "adagrad_momentum": 4}
ADAGRAD_EPS = 1e-6


class Optimizer:
    """State (velocity, squared-gradient sums) for a list of dense arrays, updated in place."""

    def __init__(
        self, params: list[np.ndarray], kind: str, lr: float, momentum: float, l2: list[float]
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {OPTIMIZERS}")
        self.kind, self.lr, self.mu = kind, lr, momentum
        self.l2 = l2  # per parameter array: the weight decay, 0 for biases
        self.velocity = [np.zeros_like(p) for p in params] if kind != "sgd" else []
        self.sq_sum = [np.zeros_like(p) for p in params] if kind == "adagrad_momentum" else []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> int:
        """Apply one update; returns the multiplications it performed. ``grads`` is consumed
        (used as scratch space)."""
        mults = 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if self.l2[i] > 0:
                g += self.l2[i] * p
                mults += p.size
            mults += MULTS_PER_PARAM[self.kind] * p.size
            if self.kind == "sgd":
                g *= self.lr
                p -= g
                continue
            v = self.velocity[i]
            v *= self.mu
            if self.kind == "momentum":
                g *= self.lr
            else:
                acc = self.sq_sum[i]
                acc += g * g
                g *= self.lr / (ADAGRAD_EPS + np.sqrt(acc))
            v += g
            p -= v
        return mults
