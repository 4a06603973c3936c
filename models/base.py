"""The contract every network follows.

A model is built from a frozen, typed config (``NetConfig`` or a subclass) through
``models.build(name, config)``. It trains one epoch at a time, predicts labels, and keeps
exact counts of the multiplications it performed, by phase.

What is counted (every model, every phase): each floating-point multiplication the code
performs in a product (an (m x k) . (k x n) product counts m*k*n), each elementwise
multiplication, and each division (counted as one multiplication). Additions, comparisons,
exponentials and square roots are not multiplications and are not counted. Counts are kept
in integer accumulators per call, never per element, so counting costs nothing measurable.

Inputs are checked once per call of the public methods (``train_epoch``, ``predict_scores``,
``predict``, ``score``, ``loss_and_grads``), before any kernel runs, by the base class's
``_as_input`` and ``_as_data``: X numeric, finite, of shape (n >= 1, n_inputs); y one integer
label in [0, n_classes) per row (the compiled kernels index by label without bounds checks).
A bad input raises ``InputError`` naming the problem and the fix. Training raises
``DivergedError`` when the loss or the weights become non-finite. Both are ``ConfigError``s.

Parameter layout, shared by all models so weights can be compared and copied:
``weights_[l]`` has shape (n_out, n_in): one row per neuron, which is what hashing a neuron's
weight vector wants; ``biases_[l]`` has shape (n_out,). Layer 0 takes the input, the last
layer is the softmax output layer. A model may keep them as strided views into its own
storage (the LSH network interleaves each weight with its optimizer state), so code outside
a model reads and writes them only through indexing or ``set_params``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from models.optim import OPTIMIZERS


class ConfigError(ValueError):
    """A model setting is invalid; the message names the setting and what is allowed."""


class InputError(ConfigError):
    """Data handed to a model is unusable; the message names the problem and the fix."""


class DivergedError(ConfigError):
    """Training produced a non-finite loss or weights; lowering lr is the usual fix."""


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
        # Whole numbers may come as floats (JSON, arithmetic); store them as ints, frozen.
        for name, low in _INT_MINIMA.items():
            object.__setattr__(self, name, _integer(name, getattr(self, name), low))
        object.__setattr__(self, "hidden", _widths(self.hidden))
        for name, (ok, allowed) in _REAL_RULES.items():
            value = getattr(self, name)
            _check(_is_real(value) and ok(value), name, value, allowed)
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
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


def _is_real(value: object) -> bool:
    """A finite real number; bools are flags, not numbers."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


_REAL_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "active_fraction": (lambda v: 0.0 < v <= 1.0, "a number in (0, 1]"),
    "lr": (lambda v: v > 0, "a finite number > 0"),
    "momentum": (lambda v: 0.0 <= v < 1.0, "a number in [0, 1)"),
    "l2": (lambda v: v >= 0, "a finite number >= 0"),
    "init_gain": (lambda v: v > 0, "a finite number > 0"),
}
_INT_MINIMA = {"n_inputs": 1, "n_classes": 2, "batch_size": 1, "seed": 0, "threads": 1}


def _whole(value: object, low: int) -> int | None:
    """value as an int if it is a whole number >= low: an int (kept exact, seeds may be
    large), or a float with no fractional part, as JSON or arithmetic may give."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        whole = int(value)
    else:
        v = float(value)
        if not (math.isfinite(v) and v.is_integer()):
            return None
        whole = int(v)
    return whole if whole >= low else None


def _integer(name: str, value: object, low: int) -> int:
    whole = _whole(value, low)
    if whole is None:
        raise ConfigError(f"bad setting {name}={value!r}: must be an integer >= {low}")
    return whole


def _widths(hidden: object) -> tuple[int, ...]:
    allowed = "a list of layer widths >= 1, e.g. [1000]"
    widths = [_whole(h, 1) for h in hidden] if isinstance(hidden, list | tuple) else []
    ok = bool(widths) and None not in widths
    _check(ok, "hidden", hidden, allowed)
    return tuple(w for w in widths if w is not None)


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

    def __add__(self, other: MultCounts) -> MultCounts:
        return MultCounts(**{k: getattr(self, k) + getattr(other, k) for k in _COUNT_FIELDS})


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
    # Each starts with ``self._as_input(X)`` or ``self._as_data(X, y)``, so bad data never
    # reaches a kernel; train_epoch ends with ``self._check_params_finite()``.
    @abstractmethod
    def train_epoch(self, X: np.ndarray, y: np.ndarray) -> EpochStats:
        """One pass over (X, y) in an order drawn from the model's own generator. Raises
        InputError for unusable data, DivergedError when the loss or weights turn non-finite."""

    @abstractmethod
    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        """Output-layer scores (logits), shape (n, n_classes); counts ``inference``."""

    @abstractmethod
    def loss_and_grads(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean cross-entropy of the batch and its gradients (per weight, per bias), computed
        the way a training step computes them, without updating anything or counting."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_scores(X), axis=1)

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy in [0, 1]. (predict_scores checks the converted X again: no copy, one
        min and max.)"""
        X, y = self._as_data(X, y)
        return float(np.mean(self.predict(X) == y))

    # -- shared behaviour -----------------------------------------------------------------
    def warmup(self) -> None:  # noqa: B027  (a hook: most models need no warm-up)
        """Compile or prime whatever the model needs (outside any measured window).
        Must not change parameters, counts or the random stream."""

    def set_params(self, weights: list[np.ndarray], biases: list[np.ndarray]) -> None:
        """Copy parameters in (tests use this to compare models on the same weights)."""
        for what, new, own in (("weights", weights, self.weights_), ("biases", biases,
                                                                      self.biases_)):
            want, got = [a.shape for a in own], [np.shape(a) for a in new]
            if got != want:
                raise InputError(
                    f"set_params {what}: shapes {want} expected, got {got}; pass one array "
                    "per layer of those shapes"
                )
            for i, a in enumerate(new):
                if not _all_finite(np.asarray(a)):
                    raise InputError(f"set_params {what}[{i}] holds {_first_bad(a)[0]}: "
                                     "pass finite parameters")
        for dst, src in zip(self.weights_, weights, strict=True):
            dst[...] = src
        for dst, src in zip(self.biases_, biases, strict=True):
            dst[...] = src

    def describe(self) -> dict[str, Any]:
        """Model-specific facts worth storing with a result (memory, table sizes, ...)."""
        return {"n_params": int(sum(w.size + b.size for w, b in self.params()))}

    def diagnostics(self, X: np.ndarray) -> dict[str, Any]:
        """Measurements about the trained model that cost real time (unlike ``describe``),
        taken by the harness after training, outside measured windows, on X (the test
        set). Must not change parameters or counts. Default: none."""
        return {}

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(zip(self.weights_, self.biases_, strict=True))

    def _as_input(self, X: ArrayLike) -> np.ndarray:
        """X as a C-contiguous array of the model's dtype, or an InputError naming the problem:
        not numeric, not (n, n_inputs), no rows, or a non-finite value (NaN, inf, or a
        number the dtype cannot hold)."""
        n_in = self.config.n_inputs
        try:
            raw = np.asarray(X)
        except (TypeError, ValueError) as exc:  # ragged nested lists
            raise InputError(
                f"X cannot be read as an array ({exc}); pass a 2-D numeric array of shape "
                f"(n, {n_in})"
            ) from None
        if raw.dtype.kind not in "biufO":
            raise InputError(f"X has dtype {raw.dtype}; pass numbers (a float or integer array)")
        if raw.ndim != 2 or raw.shape[1] != n_in:
            hint = " (one example: X[None, :])" if raw.shape == (n_in,) else ""
            raise InputError(
                f"X has shape {raw.shape}; the model expects (n, {n_in}): pass a 2-D array, "
                f"one row per example{hint}"
            )
        if raw.shape[0] == 0:
            raise InputError("X has no rows; pass at least one example")
        try:
            with np.errstate(over="ignore"):  # a value too large for the dtype is named below
                out = np.ascontiguousarray(raw, dtype=self.dtype_)
        except (TypeError, ValueError) as exc:  # an object array holding non-numbers
            raise InputError(f"X holds values that are not numbers ({exc}); pass a numeric "
                             "array") from None
        if not _all_finite(out):
            value, (r, c) = _first_bad(out)
            orig = raw[r, c]
            if _finite_number(orig):  # finite before the cast: too large for the dtype
                raise InputError(
                    f"X holds {float(orig)!r} at row {r}, column {c}, which overflows "
                    f"{self.dtype_}; scale the inputs or use dtype='float64'"
                )
            raise InputError(
                f"X holds {value} at row {r}, column {c}; replace or drop non-finite values "
                "before training or predicting"
            )
        return out

    def _as_data(self, X: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) checked: X as ``_as_input`` gives it, y as int64 labels, one per row."""
        X = self._as_input(X)
        return X, self._as_labels(y, X.shape[0])

    def _as_labels(self, y: ArrayLike, n_rows: int) -> np.ndarray:
        """y as int64 labels, one per row of X and each in [0, n_classes), or an InputError
        naming the first bad label, its row and the fix. The kernels index by label without
        bounds checks, so nothing else may reach them."""
        C = self.config.n_classes
        allowed = f"labels must be 0..{C - 1}"
        try:
            raw = np.asarray(y)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"y cannot be read as an array ({exc}); pass one integer label per row of X"
            ) from None
        if raw.ndim != 1:
            raise InputError(f"y has shape {raw.shape}: pass a 1-D array of labels, one per "
                             "row of X (y.ravel() for a column)")
        if raw.shape[0] != n_rows:
            raise InputError(
                f"y has {raw.shape[0]} labels but X has {n_rows} rows; pass one label per row"
            )
        if raw.dtype.kind == "O":
            try:
                raw = raw.astype(np.float64)
            except (TypeError, ValueError):
                raise InputError(f"y holds values that are not numbers; {allowed}") from None
        if raw.dtype.kind not in "biuf":
            raise InputError(f"y has dtype {raw.dtype}; {allowed} (integers)")
        if raw.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(raw) & (raw == np.round(raw))
            if not whole.all():
                i = int(np.argmin(whole))
                raise InputError(f"y holds label {float(raw[i])!r} at row {i}, which is not an "
                                 f"integer; {allowed}")
        if raw.min() < 0:
            i = int(np.argmax(raw < 0))
            raise InputError(f"y holds label {int(raw[i])} at row {i}; {allowed}: fix the labels")
        top = int(raw.max())
        if top >= C:
            i = int(np.argmax(raw >= C))
            raise InputError(
                f"y holds label {int(raw[i])} at row {i}, but n_classes={C}: {allowed}; "
                f"pass n_classes={top + 1} or fix the labels"
            )
        return np.ascontiguousarray(raw, dtype=np.int64)

    # -- divergence -------------------------------------------------------------------------
    def _diverged(self, first: int, count: int, n: int) -> DivergedError:
        """The error for a non-finite loss in examples first..first+count-1 (0-based positions
        in this epoch's order) of n; the epoch counts from 1, as the runner's records do."""
        where = f"example {first + 1}" if count == 1 else f"examples {first + 1}-{first + count}"
        return DivergedError(
            f"training diverged at epoch {self.epochs_done_ + 1}, {where} of {n} in training "
            f"order: the loss became non-finite; lower lr (now {self.config.lr:g})"
        )

    def _check_params_finite(self) -> None:
        """After an epoch: weights can overflow while the loss stays finite (a dead ReLU
        row, say), and then every later use of them is wrong. One pass over the parameters
        per epoch."""
        if not all(_all_finite(w) and _all_finite(b) for w, b in self.params()):
            raise DivergedError(
                f"training diverged at epoch {self.epochs_done_}: the weights became "
                f"non-finite (the loss stayed finite); lower lr (now {self.config.lr:g})"
            )


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or inf: NaN propagates through min and max, inf is one of them, and two
    reductions allocate nothing (np.isfinite(a).all() would allocate a mask of a's size)."""
    if a.size == 0:
        return True
    if a.dtype.kind in "biu":
        return True
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def _first_bad(a: ArrayLike) -> tuple[str, tuple[int, ...]]:
    """The first non-finite value of a and its index (only on the error path)."""
    arr = np.asarray(a, dtype=np.float64)
    idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    return repr(float(arr[idx])), idx


def _finite_number(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


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
