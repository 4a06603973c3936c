"""Update rules shared by all models, with their exact multiplication cost.

For a parameter w with gradient g (already averaged over the batch):

- ``sgd``:              w -= lr*g                                   1 multiplication
- ``momentum``:         v = mu*v + lr*g; w -= v                     2
- ``adagrad_momentum``: the paper's rule, per parameter:            4
      acc += g*g;  step = lr / (1e-6 + sqrt(acc)) * g;  v = mu*v + step;  w -= v
  (the division counts as one multiplication; sqrt is not counted)
- ``rowwise_adagrad``:  Adagrad with one squared-gradient sum per row of a weight matrix
  (per neuron), as DLRM/FBGEMM train embedding tables:
      acc_j += mean_i(g_ji^2);  w_ji -= lr / (1e-6 + sqrt(acc_j)) * g_ji
  2 per weight and 2 per row (the mean's division, the step); a bias (1-D parameter) is its
  own row: acc += g*g; b -= lr / (1e-6 + sqrt(acc)) * g, 3 per bias. No momentum. Its state
  is one number per neuron, not per weight, so a sparse network's weights stay packed.

With L2 (weights only, never biases) the gradient first becomes g + l2*w: one more
multiplication per weight. Sparse models apply the same rules to the entries they touch.
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adagrad_momentum", "rowwise_adagrad")
MULTS_PER_PARAM = {"sgd": 1, "momentum": 2, "adagrad_momentum": 4}  # element-wise rules
ADAGRAD_EPS = 1e-6


def update_mults(kind: str, shape: tuple[int, ...], l2: float) -> int:
    """Multiplications of one update of a dense parameter array of this shape."""
    size = int(np.prod(shape))
    extra = size if l2 > 0 else 0
    if kind != "rowwise_adagrad":
        return MULTS_PER_PARAM[kind] * size + extra
    if len(shape) == 1:
        return 3 * size + extra
    return 2 * size + 2 * int(shape[0]) + extra


class Optimizer:
    """State (velocity, squared-gradient sums) for a list of dense arrays, updated in place.

    Each kind of state lives in one flat buffer (``velocity_buf``, ``sq_sum_buf``) in the
    order of ``params``; ``velocity[i]`` and ``sq_sum[i]`` are views into it. Compiled
    kernels take the buffers; this class and its callers use the views."""

    def __init__(
        self, params: list[np.ndarray], kind: str, lr: float, momentum: float, l2: list[float]
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {OPTIMIZERS}")
        self.kind, self.lr, self.mu = kind, lr, momentum
        self.l2 = l2  # per parameter array: the weight decay, 0 for biases
        dtype = params[0].dtype if params else np.dtype(np.float64)
        shapes = [p.shape for p in params]
        with_velocity = kind in ("momentum", "adagrad_momentum")
        self.velocity_buf, self.velocity = _flat(shapes if with_velocity else [], dtype)
        if kind == "adagrad_momentum":
            sq_shapes = shapes
        elif kind == "rowwise_adagrad":  # one sum per row; a 1-D parameter's rows are entries
            sq_shapes = [s[:1] for s in shapes]
        else:
            sq_shapes = []
        self.sq_sum_buf, self.sq_sum = _flat(sq_shapes, dtype)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> int:
        """Apply one update; returns the multiplications it performed. ``grads`` is consumed
        (used as scratch space)."""
        mults = 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if self.l2[i] > 0:
                g += self.l2[i] * p
            mults += update_mults(self.kind, p.shape, self.l2[i])
            if self.kind == "sgd":
                g *= self.lr
                p -= g
                continue
            if self.kind == "rowwise_adagrad":
                acc = self.sq_sum[i]
                acc += (g * g).mean(axis=1) if g.ndim == 2 else g * g
                step = self.lr / (ADAGRAD_EPS + np.sqrt(acc))
                g *= step[:, None] if g.ndim == 2 else step
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


def _flat(shapes: list[tuple[int, ...]], dtype: np.dtype) -> tuple[np.ndarray, list[np.ndarray]]:
    """One zeroed buffer holding arrays of these shapes back to back, and views of them
    (a buffer of one element when there are none, so kernels always get an array)."""
    sizes = [int(np.prod(s)) for s in shapes]
    buf = np.zeros(max(sum(sizes), 1), dtype)
    offsets = np.cumsum([0, *sizes])
    views = [buf[o : o + n].reshape(s) for o, n, s in zip(offsets, sizes, shapes, strict=False)]
    return buf, views
