"""The contract every network follows.

A model is built from a frozen, typed config (``NetConfig`` or a subclass) through
``models.build(name, config)``. It trains one epoch at a time, predicts labels, and keeps
exact counts of the multiplications it performed, by phase.

What is counted (every model, every phase): each floating-point multiplication the code
performs in a product (an (m x k) . (k x n) product counts m*k*n), each elementwise
multiplication, and each division (counted as one multiplication). Additions, comparisons,
exponentials and square roots are not multiplications and are not counted. Counts are kept
in integer accumulators per call, never per element, so counting costs nothing measurable.

Parameter layout, shared by all models so weights can be compared and copied:
``weights_[l]`` has shape (n_out, n_in): one row per neuron, which is what hashing a neuron's
weight vector wants; ``biases_[l]`` has shape (n_out,). Layer 0 takes the input, the last
layer is the softmax output layer. A model may keep them as strided views into its own
storage (the LSH network interleaves each weight with its optimizer state), so code outside
a model reads and writes them only through indexing or ``set_params``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np

from models.optim import OPTIMIZERS


class ConfigError(ValueError):
    """A model setting is invalid; the message names the setting and what is allowed."""


@dataclass(frozen=True)
class NetConfig:
    """Settings shared by every network. Subclasses add their own fields (with defaults)."""

    n_inputs: int
    n_classes: int
    hidden: tuple[int, ...] = (1000,)
    active_fraction: float = 1.0  # fraction of each hidden layer's nodes kept per example
    optimizer: str = "adagrad_momentum"  # see models.optim
    lr: float = 1e-2
    momentum: float = 0.5
    l2: float = 0.0  # weight decay on weights (not biases), applied in the update step
    batch_size: int = 1  # 1 is the paper's protocol
    init_gain: float = 2.0  # uniform(+-gain*sqrt(6/(fan_in+fan_out))); the paper's code uses 2
    seed: int = 0
    threads: int = 1
    dtype: str = "float32"

    def __post_init__(self) -> None:
        # Tolerate lists (from JSON) for the layer sizes while staying frozen.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        _check(self.n_inputs >= 1, "n_inputs", self.n_inputs, "an integer >= 1")
        _check(self.n_classes >= 2, "n_classes", self.n_classes, "an integer >= 2")
        _check(
            len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
            "hidden",
            self.hidden,
            "one or more layer widths >= 1",
        )
        _check(
            0.0 < self.active_fraction <= 1.0,
            "active_fraction",
            self.active_fraction,
            "a number in (0, 1]",
        )
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check(self.lr > 0, "lr", self.lr, "a number > 0")
        _check(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.l2 >= 0, "l2", self.l2, "a number >= 0")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.init_gain > 0, "init_gain", self.init_gain, "a number > 0")
        _check(self.threads >= 1, "threads", self.threads, "an integer >= 1")
        _check(self.dtype in ("float32", "float64"), "dtype", self.dtype, "float32 or float64")

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (self.n_inputs, *self.hidden, self.n_classes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {unknown} for {cls.__name__}; known: {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"bad setting {name}={value!r}: must be {allowed}")


@dataclass
class MultCounts:
    """Multiplications performed, by phase. ``inference`` is kept apart from training."""

    forward: int = 0
    backward: int = 0
    update: int = 0
    hashing: int = 0
    rebuild: int = 0
    inference: int = 0

    @property
    def training(self) -> int:
        return self.forward + self.backward + self.update + self.hashing + self.rebuild

    def as_dict(self) -> dict[str, int]:
        d = dataclasses.asdict(self)
        d["training"] = self.training
        return d

    def copy(self) -> MultCounts:
        return dataclasses.replace(self)

    def __add__(self, other: MultCounts) -> MultCounts:
        return MultCounts(**{k: getattr(self, k) + getattr(other, k) for k in _COUNT_FIELDS})

    def __sub__(self, other: MultCounts) -> MultCounts:
        return MultCounts(**{k: getattr(self, k) - getattr(other, k) for k in _COUNT_FIELDS})


_COUNT_FIELDS = tuple(f.name for f in dataclasses.fields(MultCounts))


@dataclass(frozen=True)
class EpochStats:
    """What one call of ``train_epoch`` did."""

    n_examples: int
    loss: float  # mean training cross-entropy over the epoch's examples
    mults: MultCounts  # this epoch's training multiplications (inference stays 0)
    active_fraction: float  # mean fraction of hidden nodes whose output was kept
    computed_fraction: float  # mean fraction of hidden pre-activations actually computed
    extra: dict[str, Any] = field(default_factory=dict)  # model-specific figures


class Model(ABC):
    """Base class: parameter initialisation, counting, scoring. Subclasses do the maths."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[NetConfig]] = NetConfig

    def __init__(self, config: NetConfig) -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"model {self.name!r} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config
        self.dtype_ = np.dtype(config.dtype)
        self.rng_ = np.random.default_rng(config.seed)
        self.weights_, self.biases_ = init_params(config, self.rng_)
        self.mults_ = MultCounts()
        self.epochs_done_ = 0

    # -- what every model implements ------------------------------------------------------
    @abstractmethod
    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        """One pass over (X, y) in an order drawn from the model's own generator."""

    @abstractmethod
    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Output-layer scores (logits), shape (n, n_classes); counts ``inference``."""

    @abstractmethod
    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean cross-entropy of the batch and its gradients (per weight, per bias), computed
        the way a training step computes them, without updating anything or counting."""

    # -- shared behaviour -----------------------------------------------------------------
    def warmup(self) -> None:  # noqa: B027  (a hook: most models need no warm-up)
        """Compile or prime whatever the model needs (outside any measured window).
        Must not change parameters, counts or the random stream."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_scores(X), axis=1)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy in [0, 1]."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def set_params(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        """Copy parameters in (tests use this to compare models on the same weights)."""
        if [w.shape for w in weights] != [w.shape for w in self.weights_]:
            raise ConfigError("set_params: weight shapes do not match the model's layers")
        for dst, src in zip(self.weights_, weights, strict=True):
            dst[...] = src
        for dst, src in zip(self.biases_, biases, strict=True):
            dst[...] = src

    def describe(self) -> dict[str, Any]:
        """Model-specific facts worth storing with a result (memory, table sizes, ...)."""
        return {"n_params": int(sum(w.size + b.size for w, b in self.params()))}

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(zip(self.weights_, self.biases_, strict=True))

    def _as_input(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=self.dtype_)
        if X.ndim != 2 or X.shape[1] != self.config.n_inputs:
            raise ConfigError(
                f"input has shape {X.shape}; the model expects (n, {self.config.n_inputs})"
            )
        return X


def init_params(config: NetConfig, rng: np.random.Generator) -> tuple[list, list]:
    """Uniform in +-gain*sqrt(6/(fan_in+fan_out)) (the paper's code uses gain 2); biases 0."""
    dtype = np.dtype(config.dtype)
    sizes = config.layer_sizes
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = config.init_gain * np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, size=(fan_out, fan_in)).astype(dtype))
        biases.append(np.zeros(fan_out, dtype=dtype))
    return weights, biases


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and the softmax probabilities (numerically stable)."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    m = logits.shape[0]
    loss = float(-np.mean(np.log(np.maximum(z[np.arange(m), y], 1e-30))))
    return loss, z
