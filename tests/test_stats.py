"""Intervals over seeds against numbers worked out by hand and scipy's own Welch interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from reports.stats import (
    Interval,
    diff_ci,
    mean_ci,
    mean_diff_ci,
    positive_mean_ci,
    ratio_ci,
    threshold_verdict,
)


def test_mean_ci_is_the_student_t_interval():
    ci = mean_ci([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert ci.estimate == 2.0
    assert ci.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
    assert ci.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6)
    one = mean_ci([0.7])
    assert one.estimate == 0.7 and not one.defined  # one run: no interval, not a zero one
    exact = mean_ci([5.0, 5.0])
    assert (exact.low, exact.high) == (5.0, 5.0)


def test_diff_ci_matches_scipys_welch_interval():
    a = [0.90, 0.92, 0.91, 0.95]
    b = [0.88, 0.86, 0.90]
    ci = diff_ci(a, b)
    ref = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert ci.estimate == pytest.approx(np.mean(a) - np.mean(b))
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high))
    assert not diff_ci(a, [0.9]).defined


def test_mean_of_differences_combines_the_variances():
    a1, b1 = [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]  # var of mean 1/3, dof 2
    a2, b2 = [2.0, 4.0], [1.0, 1.0]  # var of mean 1, dof 1
    assert mean_diff_ci([(a1, b1)]) == diff_ci(a1, b1)
    ci = mean_diff_ci([(a1, b1), (a2, b2)])
    # estimate (2 + 2) / 2; variance (1/3 + 1) / 4; Welch-Satterthwaite over both components
    var = (1 / 3 + 1) / 4
    dof = var**2 / ((1 / 12) ** 2 / 2 + (1 / 4) ** 2 / 1)
    half = st.t.ppf(0.975, dof) * math.sqrt(var)
    assert ci.estimate == 2.0
    assert (ci.low, ci.high) == pytest.approx((2 - half, 2 + half))


def test_ratio_ci_is_the_delta_method_on_logs():
    ci = ratio_ci([2.0, 4.0], [1.0, 1.0, 1.0])
    # var(log mean a) = sd^2 / (n mean^2) = 2 / (2 * 9); b is exact; dof = n_a - 1 = 1
    half = 12.706205 * math.sqrt(1 / 9)
    assert ci.estimate == 3.0
    assert ci.low == pytest.approx(3 * math.exp(-half), rel=1e-6)
    assert ci.high == pytest.approx(3 * math.exp(half), rel=1e-6)
    flipped = ratio_ci([1.0, 1.0, 1.0], [2.0, 4.0])  # b/a is the reciprocal interval
    assert (flipped.low, flipped.high) == pytest.approx((1 / ci.high, 1 / ci.low))
    assert not ratio_ci([1.0], [2.0, 2.1]).defined


def test_positive_mean_ci_stays_above_zero_on_the_log_scale():
    times = [0.4, 0.25]  # two seeds: the t-interval of the mean reaches below zero
    assert mean_ci(times).low < 0
    ci = positive_mean_ci(times)
    # mean 0.325, sd / mean = 0.10607 / 0.325, t(0.975, 1) = 12.706205
    half = 12.706205 * (0.1060660 / 0.325) / math.sqrt(2)
    assert ci.estimate == pytest.approx(0.325)
    assert (ci.low, ci.high) == pytest.approx((0.325 * math.exp(-half), 0.325 * math.exp(half)),
                                              rel=1e-6)
    assert ci.low > 0
    # the same as ratio_ci against an exact denominator of 1
    for v in ([0.4, 0.25], [3.0, 3.3, 2.9, 4.1]):
        r = ratio_ci(v, [1.0, 1.0])
        p = positive_mean_ci(v)
        assert (p.estimate, p.low, p.high, p.dof) == pytest.approx(
            (r.estimate, r.low, r.high, r.dof))
    assert not positive_mean_ci([0.7]).defined
    assert positive_mean_ci([0.0, 1.0]) == mean_ci([0.0, 1.0])  # no log of zero


@pytest.mark.parametrize("low, high, op, verdict", [
    (5.2, 7.0, ">=", "met"), (5.0, 7.0, ">=", "met"), (2.0, 4.9, ">=", "not met"),
    (4.0, 6.0, ">=", "inconclusive"), (0.1, 0.9, "<", "met"), (1.0, 2.0, "<", "not met"),
    (0.5, 1.5, "<=", "inconclusive"),
])
def test_a_verdict_needs_the_whole_interval_on_one_side(low, high, op, verdict):
    threshold = 5.0 if op == ">=" else 1.0
    ci = Interval((low + high) / 2, low, high, 2.0)
    assert threshold_verdict(ci, op, threshold)[0] == verdict


def test_no_interval_gives_no_verdict():
    assert threshold_verdict(Interval(9.0, math.nan, math.nan, math.nan), ">=", 5)[0] == \
        "inconclusive"
    assert threshold_verdict(Interval(math.nan, math.nan, math.nan, math.nan), ">=", 5)[0] == \
        "not tested"
