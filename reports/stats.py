"""Intervals over seeds, in one place: the figures' error bars and the claims table use these.

- ``mean_ci``: Student-t interval of a mean, ``t(0.975, n-1) * sd / sqrt(n)``.
- ``diff_ci``: Welch interval of a difference of means (Welch–Satterthwaite degrees of freedom).
- ``mean_diff_ci``: the same for the mean of several such differences (one per dataset): the
  variances of every mean involved are combined with their weights and the degrees of freedom
  come from the general Welch–Satterthwaite formula.
- ``positive_mean_ci``: interval of the mean of a positive quantity (seconds, joules) on
  the log scale, ``mean * exp(+-t(0.975, n-1) * sd / (sqrt(n) mean))``: the delta method of
  ``ratio_ci`` with an exact denominator, so it never reaches below zero, which a t-interval
  of two or three seeds' times easily does.
- ``ratio_ci``: interval of ``mean(a) / mean(b)`` by the delta method on the log scale:
  ``var(log mean) ~= sd^2 / (n mean^2)`` for each side, summed, Welch–Satterthwaite degrees of
  freedom, and the interval of the log ratio mapped back through ``exp`` (so it stays positive
  and is symmetric in ``a/b`` against ``b/a``).

A side with one value has no variance estimate: the interval is NaN (no interval), never a
zero-width one. Sides whose values are all equal (exact counts) add no variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float  # NaN where no interval can be formed
    high: float
    dof: float

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))


def t_halfwidth(sd: np.ndarray, n: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Half-width of the t-interval of a mean, elementwise; NaN where n < 2."""
    sd = np.asarray(sd, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n >= 2, n - 1, np.nan)
        return st.t.ppf(0.5 + level / 2, dof) * sd / np.sqrt(n)


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Interval:
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan)
    half = float(t_halfwidth(np.array(v.std(ddof=1)), np.array(n), level))
    return Interval(mean, mean - half, mean + half, n - 1.0)


def positive_mean_ci(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Interval of the mean of positive values, on the log scale (see the module's notes);
    ``mean_ci`` where some value is not positive (nothing to take the log of)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0 or not (v > 0).all():
        return mean_ci(v.tolist(), level)
    mean = float(v.mean())
    if len(v) < 2:
        return Interval(mean, math.nan, math.nan, math.nan)
    half = float(t_halfwidth(np.array(v.std(ddof=1) / mean), np.array(len(v)), level))
    return Interval(mean, mean * math.exp(-half), mean * math.exp(half), len(v) - 1.0)


def _welch(parts: Sequence[tuple[float, Sequence[float]]], level: float) -> Interval:
    """Interval of ``sum(w * mean(values))`` over independent samples ``(w, values)``."""
    arrays = [(w, np.asarray(v, dtype=float)) for w, v in parts]
    if any(len(v) == 0 for _, v in arrays):
        return Interval(math.nan, math.nan, math.nan, math.nan)
    estimate = float(sum(w * v.mean() for w, v in arrays))
    if any(len(v) < 2 for _, v in arrays):
        return Interval(estimate, math.nan, math.nan, math.nan)
    # each mean's share of the variance of the sum
    half, dof = _halfwidth([w * w * v.var(ddof=1) / len(v) for w, v in arrays], arrays, level)
    return Interval(estimate, estimate - half, estimate + half, dof)


def _halfwidth(
    comps: Sequence[float], arrays: Sequence[tuple[float, np.ndarray]], level: float
) -> tuple[float, float]:
    """t half-width of a sum of independent variance components, Welch–Satterthwaite dof."""
    var = float(sum(comps))
    if var == 0:  # every side exact: the interval is the point
        return 0.0, math.inf
    dof = var**2 / sum(c * c / (len(v) - 1) for c, (_, v) in zip(comps, arrays, strict=True))
    return float(st.t.ppf(0.5 + level / 2, dof)) * math.sqrt(var), float(dof)


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Welch interval of ``mean(a) - mean(b)``."""
    return _welch([(1.0, a), (-1.0, b)], level)


def mean_diff_ci(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]], level: float = LEVEL
) -> Interval:
    """Interval of the mean over groups of ``mean(a_i) - mean(b_i)`` (independent samples)."""
    k = len(pairs)
    if k == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    parts = [(sign / k, v) for a, b in pairs for sign, v in ((1.0, a), (-1.0, b))]
    return _welch(parts, level)


def ratio_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Interval of ``mean(a) / mean(b)`` (delta method on logs; both means must be > 0)."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(va) == 0 or len(vb) == 0 or va.mean() <= 0 or vb.mean() <= 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    ratio = float(va.mean() / vb.mean())
    if len(va) < 2 or len(vb) < 2:
        return Interval(ratio, math.nan, math.nan, math.nan)
    arrays = [(1.0, va), (-1.0, vb)]
    half, dof = _halfwidth(
        [v.var(ddof=1) / (len(v) * v.mean() ** 2) for _, v in arrays], arrays, level
    )
    return Interval(ratio, ratio * math.exp(-half), ratio * math.exp(half), dof)


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda x, t: x <= t,
    "<": lambda x, t: x < t,
    ">=": lambda x, t: x >= t,
    ">": lambda x, t: x > t,
}
_NEGATION = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}


def threshold_verdict(ci: Interval, op: str, threshold: float) -> tuple[str, str]:
    """Met when the whole interval satisfies ``x op threshold``, not met when none of it does."""
    if math.isnan(ci.estimate):
        return "not tested", "no estimate could be formed"
    if not ci.defined:
        return "inconclusive", "one seed on a side: no interval, so no verdict"
    worst = ci.high if op in ("<=", "<") else ci.low  # the end furthest from meeting it
    best = ci.low if op in ("<=", "<") else ci.high
    if _OPS[op](worst, threshold):
        return "met", f"the whole interval is {op} {threshold:g}"
    if _OPS[_NEGATION[op]](best, threshold):
        return "not met", f"the whole interval is {_NEGATION[op]} {threshold:g}"
    return "inconclusive", "the interval straddles the threshold"
