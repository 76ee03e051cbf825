"""Tests of mcdrop.stats against scipy, exact enumeration and theory.

Every random test is seeded with a large literal, so the suite is
deterministic; where a simulated count is compared with theory, the bound is
a binomial (or normal) tail of probability ~1e-9 under a correct
implementation, so a different seed would not make it flaky either.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from mcdrop.results import ConfidenceInterval
from mcdrop.stats import (
    clopper_pearson,
    detectable_bias,
    dispersion_test,
    equivalence_test,
    holm,
    keep_rate_test,
    mean_test,
    plan,
    support_test,
    three_zone_verdict,
    two_point_moments,
    variance_test,
    wilson_interval,
)
import mcdrop.stats as mstats

# Deterministic hypothesis runs that write nothing to disk.
HYP = settings(max_examples=150, deadline=None, derandomize=True, database=None)

# A tail probability so small that a correct implementation never crosses the
# bound built from it (used to turn "simulation agrees with theory" into an
# assertion that cannot flake).
TINY = 1e-9


def binomial_band(n, prob, tail=TINY):
    """Counts [lo, hi] that Binomial(n, prob) leaves with probability <= 2*tail."""
    return stats.binom.ppf(tail, n, prob), stats.binom.isf(tail, n, prob)


def json_roundtrip(obj):
    # allow_nan=False: to_dict must already have turned nan/inf into None.
    return json.loads(json.dumps(obj.to_dict(), allow_nan=False))


# ---------------------------------------------------------------------------
# binomial intervals
# ---------------------------------------------------------------------------

CASES = [
    (0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (7, 10), (1, 50), (25, 50),
    (49, 50), (123, 1000), (500, 1000), (999, 1000), (314159, 10**6),
    (3 * 10**8 + 12345, 10**9),
]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("cl", [0.5, 0.95, 0.999999])
def test_clopper_pearson_matches_scipy(k, n, cl):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=cl, method="exact")
    ci = clopper_pearson(k, n, cl)
    # scipy finds the bounds with brentq (xtol=2e-12, absolute); we use beta
    # quantiles directly, so the two agree to brentq's tolerance.
    assert_allclose([ci.low, ci.high], [ref.low, ref.high], rtol=0, atol=1e-11)
    assert ci.confidence_level == cl
    if k == 0:
        assert ci.low == 0.0
    if k == n:
        assert ci.high == 1.0


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("cl", [0.5, 0.95, 0.999999])
def test_wilson_matches_scipy(k, n, cl):
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=cl, method="wilson")
    ci = wilson_interval(k, n, cl)
    # Same closed form as scipy: only rounding differs (a few ulps).
    assert_allclose([ci.low, ci.high], [ref.low, ref.high], rtol=1e-13, atol=1e-15)


@HYP
@given(n=st.integers(1, 10**12), frac=st.floats(0, 1), cl=st.floats(0.01, 0.999999))
def test_intervals_contain_the_estimate(n, frac, cl):
    k = int(round(frac * n))
    for ci in (clopper_pearson(k, n, cl), wilson_interval(k, n, cl)):
        # Both intervals contain k/n; 1e-15 absolute slack for rounding of k/n.
        assert 0.0 <= ci.low <= k / n + 1e-15
        assert k / n - 1e-15 <= ci.high <= 1.0
    # Clopper-Pearson is wider than a slightly lower-confidence version of itself.
    lo = clopper_pearson(k, n, cl * 0.99)
    assert lo.low >= clopper_pearson(k, n, cl).low - 1e-15


def exact_miss_probability(n, q, interval):
    """P(q not in interval(K, n)) for K ~ Binomial(n, q), by enumeration."""
    miss = np.array([q not in interval(k, n) for k in range(n + 1)])
    return float(np.sum(stats.binom.pmf(np.arange(n + 1), n, q)[miss]))


@pytest.mark.parametrize("interval", [clopper_pearson, wilson_interval])
def test_binomial_interval_coverage_simulation(interval):
    n, q, reps = 50, 0.3, 2000
    rng = np.random.default_rng(240_617_883_915)
    k = rng.binomial(n, q, size=reps)
    misses = sum(q not in interval(int(ki), n) for ki in k)
    # The exact miss probability by enumeration over the 51 possible counts;
    # the number of misses in `reps` independent repetitions is then exactly
    # Binomial(reps, pi), so it lies in the 1e-9 tail band unless the
    # interval code (or this reasoning) is wrong.  A 90% interval, or the
    # Wald interval (miss rate ~0.07 here), would land far outside it.
    pi = exact_miss_probability(n, q, interval)
    lo, hi = binomial_band(reps, pi)
    assert lo <= misses <= hi
    if interval is clopper_pearson:
        assert pi <= 0.05  # Clopper-Pearson is conservative for every q.
    else:
        assert abs(pi - 0.05) < 0.02  # Wilson: close to nominal, not always above.


# ---------------------------------------------------------------------------
# keep-rate test
# ---------------------------------------------------------------------------


def minlike_pvalue(k, n, q):
    """Brute-force two-sided 'minlike' p-value (scipy's definition, rerr 1e-7)."""
    pmf = stats.binom.pmf(np.arange(n + 1), n, q)
    return min(1.0, float(np.sum(pmf[pmf <= pmf[k] * (1 + 1e-7)])))


@pytest.mark.parametrize(
    "k,n,q",
    [(3, 10, 0.5), (0, 10, 0.3), (10, 10, 0.3), (27, 100, 0.3), (41, 100, 0.3),
     (290, 1000, 0.3), (350, 1000, 0.3), (5, 2000, 0.001), (1930, 2000, 0.95)],
)
def test_keep_rate_pvalue_matches_scipy_and_brute_force(k, n, q):
    res = keep_rate_test(k, n, q)
    # Same algorithm as scipy, so agreement to rounding (1e-12).
    assert_allclose(res.pvalue, stats.binomtest(k, n, q).pvalue, rtol=1e-12)
    # Against summing the full pmf: tail sums via cdf/sf vs direct summation
    # differ only by accumulated rounding, far below 1e-9 relative.
    assert_allclose(res.pvalue, minlike_pvalue(k, n, q), rtol=1e-9)
    for alt in ("less", "greater"):
        one = keep_rate_test(k, n, q, alternative=alt)
        assert_allclose(
            one.pvalue, stats.binomtest(k, n, q, alternative=alt).pvalue, rtol=1e-12
        )
    assert res.statistic == k / n
    assert (res.kept, res.trials, res.q, res.alternative) == (k, n, q, "two-sided")


@pytest.mark.parametrize("q", [0.5, 0.3, 0.9])
@pytest.mark.parametrize("z", [-8.0, -5.0, -2.0, 0.5, 2.0, 5.0, 8.0])
def test_keep_rate_at_1e14_trials_is_fast_and_accurate(q, z):
    n = 10**14
    sd = math.sqrt(n * q * (1 - q))
    kept = int(round(n * q + z * sd))
    t0 = time.perf_counter()
    res = keep_rate_test(np.int64(kept), np.int64(n), q)
    ci = res.confidence_interval()
    ciw = res.confidence_interval(0.999, method="wilson")
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    # Reference: normal tails with continuity correction.  The binomial tail
    # differs from it by the skewness term, relative size ~ |g| z**3 / 6 with
    # g = (1 - 2q) / sd (Edgeworth), ~1e-7 * z**3 here; allow twice that plus
    # 1e-6 for the continuity correction and the rest of the series.
    zz = (abs(kept - n * q) - 0.5) / sd
    ref = 2 * stats.norm.sf(zz)
    g = abs(1 - 2 * q) / sd
    assert_allclose(res.pvalue, ref, rtol=2 * g * abs(z) ** 3 / 6 + 1e-6)
    # At n = 1e14 the exact interval's width is the Wald width to
    # O((1 + |z|) / sd) ~ 1e-7 relative; 1e-6 leaves room, and would catch
    # the ~7e-4 relative error of raw beta quantiles at this n.
    phat = kept / n
    half = stats.norm.isf(0.025) * math.sqrt(phat * (1 - phat) / n)
    assert_allclose(ci.high - ci.low, 2 * half, rtol=1e-6)
    # The bounds solve their defining tail equations.  A 1-ulp change of the
    # bound moves the tail by n * pmf * ulp ~ 3e-11, so 1e-8 relative is
    # float64 precision with a margin.
    assert_allclose(stats.binom.sf(kept - 1, n, ci.low), 0.025, rtol=1e-8)
    assert_allclose(stats.binom.cdf(kept, n, ci.high), 0.025, rtol=1e-8)
    assert ci.low < res.statistic < ci.high
    assert ciw.low < res.statistic < ciw.high


def test_keep_rate_degenerate_q():
    assert keep_rate_test(0, 100, 0.0).pvalue == 1.0
    assert keep_rate_test(1, 100, 0.0).pvalue == 0.0
    assert keep_rate_test(100, 100, 1.0).pvalue == 1.0
    assert keep_rate_test(99, 100, 1.0).pvalue == 0.0
    # One-sided: "less" asks whether the rate is below q.
    assert keep_rate_test(99, 100, 1.0, alternative="less").pvalue == 0.0
    assert keep_rate_test(99, 100, 1.0, alternative="greater").pvalue == 1.0
    assert keep_rate_test(3, 100, 0.0, alternative="less").pvalue == 1.0
    assert keep_rate_test(3, 100, 0.0, alternative="greater").pvalue == 0.0
    assert keep_rate_test(10**14, 10**14, 1.0).pvalue == 1.0


def test_keep_rate_result_interface():
    res = keep_rate_test(290, 1000, 0.3)
    ci = res.confidence_interval(0.9)
    ref = stats.binomtest(290, 1000, 0.3).proportion_ci(0.9)
    assert_allclose([ci.low, ci.high], [ref.low, ref.high], atol=1e-11)
    assert isinstance(ci, ConfidenceInterval) and ci.confidence_level == 0.9
    # One-sided alternatives give one-sided bounds, like scipy.
    for alt in ("less", "greater"):
        r = keep_rate_test(290, 1000, 0.3, alternative=alt)
        for method in ("exact", "wilson"):
            ci = r.confidence_interval(0.95, method=method)
            ref = stats.binomtest(290, 1000, 0.3, alternative=alt).proportion_ci(
                0.95, method=method
            )
            assert_allclose([ci.low, ci.high], [ref.low, ref.high], atol=1e-11)
    d = json_roundtrip(res)
    assert d["kept"] == 290 and d["trials"] == 1000 and d["alternative"] == "two-sided"
    assert "290 kept of 1000" in str(res)


# ---------------------------------------------------------------------------
# mean test
# ---------------------------------------------------------------------------


def test_mean_test_against_normal():
    res = mean_test(1.012, 0.005, 1.0)
    assert_allclose(res.statistic, 2.4, rtol=1e-12)  # (1.012 - 1) / 0.005
    assert_allclose(res.pvalue, 2 * stats.norm.sf(2.4), rtol=1e-12)
    assert_allclose(
        mean_test(1.012, 0.005, 1.0, alternative="greater").pvalue,
        stats.norm.sf(2.4), rtol=1e-12,
    )
    assert_allclose(
        mean_test(1.012, 0.005, 1.0, alternative="less").pvalue,
        stats.norm.cdf(2.4), rtol=1e-12,
    )
    ci = res.confidence_interval(0.99)
    h = stats.norm.isf(0.005) * 0.005
    assert_allclose([ci.low, ci.high], [1.012 - h, 1.012 + h], rtol=1e-14)
    lo = mean_test(1.012, 0.005, 1.0, alternative="less").confidence_interval()
    assert lo.low == -math.inf
    assert_allclose(lo.high, 1.012 + stats.norm.isf(0.05) * 0.005, rtol=1e-14)
    d = json_roundtrip(mean_test(1.0, 0.0, 2.0))
    assert d["statistic"] is None and d["pvalue"] == 0.0  # -inf -> None in JSON


def test_mean_test_zero_standard_error():
    same = mean_test(2.0, 0.0, 2.0)
    assert same.pvalue == 1.0 and same.statistic == 0.0
    ci = same.confidence_interval()
    assert ci.low == ci.high == 2.0
    diff = mean_test(2.0, 0.0, 2.5)
    assert diff.pvalue == 0.0 and diff.statistic == -math.inf
    assert mean_test(2.0, 0.0, 2.5, alternative="less").pvalue == 0.0
    assert mean_test(2.0, 0.0, 2.5, alternative="greater").pvalue == 1.0


def test_mean_test_coverage_of_inverted_dropout_mean():
    # Mean of N inverted-dropout outputs at input x: x * K / (N q) with
    # K ~ Binomial(N, q), theoretical se = |x| sqrt(p / (q N)).
    x, q, n, reps = 2.0, 0.3, 10_000, 2000
    p = 1 - q
    se = abs(x) * math.sqrt(p / (q * n))
    rng = np.random.default_rng(918_273_645_506)
    k = rng.binomial(n, q, size=reps)
    misses = sum(x not in mean_test(x * ki / (n * q), se, x).confidence_interval() for ki in k)
    # Exact miss probability: |K - nq| > 1.96 sqrt(npq), summed over the pmf;
    # misses ~ Binomial(reps, pi) exactly, so the 1e-9 band cannot flake.
    kk = np.arange(n + 1)
    outside = np.abs(kk - n * q) > stats.norm.isf(0.025) * math.sqrt(n * p * q)
    pi = float(np.sum(stats.binom.pmf(kk, n, q)[outside]))
    assert abs(pi - 0.05) < 0.005  # CLT at npq = 2100: discreteness only
    lo, hi = binomial_band(reps, pi)
    assert lo <= misses <= hi


# ---------------------------------------------------------------------------
# two-point moments and the variance test
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("c,q", [(1.0, 0.5), (1 / 0.7, 0.7), (-3.5, 0.05), (2.0, 0.0), (2.0, 1.0)])
def test_two_point_moments_direct(c, q):
    vals, probs = np.array([c, 0.0]), np.array([q, 1 - q])
    mean = np.sum(vals * probs)
    var = np.sum((vals - mean) ** 2 * probs)
    mu4 = np.sum((vals - mean) ** 4 * probs)
    got = two_point_moments(c, q)
    # A handful of flops each way: agreement to a few ulps.
    assert_allclose(got, (mean, var, mu4), rtol=1e-13, atol=1e-300)
    assert all(isinstance(v, float) for v in got)
    # Inverted dropout output: mean x, variance x^2 p/q.
    if 0 < q < 1:
        xx = c * q
        assert_allclose(got[1], xx**2 * (1 - q) / q, rtol=1e-13)


def test_two_point_moments_arrays():
    c = np.array([[1.0, -2.0], [0.0, 3.0]])
    m, v, m4 = two_point_moments(c, 0.3)
    assert m.shape == v.shape == m4.shape == c.shape
    for idx in np.ndindex(c.shape):
        assert_allclose((m[idx], v[idx], m4[idx]), two_point_moments(float(c[idx]), 0.3), rtol=1e-15)


def s2_of_count(k, n, c):
    """Unbiased sample variance of n two-point values with k of them equal to c."""
    return c * c * k * (n - k) / (n * (n - 1))


@pytest.mark.parametrize("q", [0.5, 0.7, 0.95])
def test_delta_variance_formula_exact_enumeration(q):
    # s^2 of a two-point sample depends only on the count K ~ Binomial(n, q),
    # so its exact mean and variance follow by summing over the pmf.
    n, c = 200, 1 / q
    kk = np.arange(n + 1)
    pmf = stats.binom.pmf(kk, n, q)
    s2 = s2_of_count(kk, n, c)
    mean_s2 = np.sum(pmf * s2)
    var_s2 = np.sum(pmf * (s2 - mean_s2) ** 2)
    _, sigma2, mu4 = two_point_moments(c, q)
    res = variance_test(sigma2, n, sigma2, fourth_central_moment=mu4)
    # (mu4 - sigma^4 (n-3)/(n-1)) / n is exact for the unbiased s^2; the sums
    # over 201 pmf terms are accurate to ~1e-13 relative.
    assert_allclose(mean_s2, sigma2, rtol=1e-12)
    assert_allclose(res.standard_error**2, var_s2, rtol=1e-10)
    assert res.pvalue == 1.0 and res.statistic == 0.0


@pytest.mark.parametrize("q,seed", [(0.7, 506_172_839_401), (0.95, 771_204_938_115)])
def test_delta_variance_test_simulation(q, seed):
    n, c, reps, alpha = 200, 1 / q, 4000, 0.05
    _, sigma2, mu4 = two_point_moments(c, q)
    rng = np.random.default_rng(seed)
    s2 = s2_of_count(rng.binomial(n, q, size=reps), n, c)
    delta = [variance_test(v, n, sigma2, fourth_central_moment=mu4).pvalue for v in s2]
    chi2 = [variance_test(v, n, sigma2, method="chi2").pvalue for v in s2]
    rej_delta = int(np.sum(np.array(delta) <= alpha))
    rej_chi2 = int(np.sum(np.array(chi2) <= alpha))
    # Exact size of each test by enumeration over K; the simulated rejection
    # count is then Binomial(reps, size) and must sit in the 1e-9 band.
    kk = np.arange(n + 1)
    pmf = stats.binom.pmf(kk, n, q)
    s2_all = s2_of_count(kk, n, c)
    size_delta = sum(
        pk for pk, v in zip(pmf, s2_all)
        if variance_test(v, n, sigma2, fourth_central_moment=mu4).pvalue <= alpha
    )
    size_chi2 = sum(
        pk for pk, v in zip(pmf, s2_all)
        if variance_test(v, n, sigma2, method="chi2").pvalue <= alpha
    )
    lo, hi = binomial_band(reps, size_delta)
    assert lo <= rej_delta <= hi
    lo, hi = binomial_band(reps, size_chi2)
    assert lo <= rej_chi2 <= hi
    # The documented claim: delta is calibrated for two-point data (size near
    # 0.05; discreteness of K moves it a little), chi2 is not.
    assert abs(size_delta - alpha) < 0.02
    if q == 0.95:  # kurtosis 18: chi2 raises false alarms most of the time
        assert size_chi2 > 0.3


def test_variance_test_chi2_against_scipy():
    n, s2, sigma2 = 51, 1.3, 1.0
    res = variance_test(s2, n, sigma2, method="chi2")
    stat = (n - 1) * s2 / sigma2
    assert_allclose(res.statistic, stat, rtol=1e-15)
    ref = 2 * min(stats.chi2.cdf(stat, n - 1), stats.chi2.sf(stat, n - 1))
    assert_allclose(res.pvalue, ref, rtol=1e-12)
    ci = res.confidence_interval(0.95)
    assert_allclose(
        [ci.low, ci.high],
        [stat / stats.chi2.isf(0.025, n - 1), stat / stats.chi2.ppf(0.025, n - 1)],
        rtol=1e-12,
    )
    # For normal data chi2 and delta (mu4 = 3 sigma^4) agree asymptotically.
    big = 10**8
    a = variance_test(1.0002, big, 1.0, method="chi2").pvalue
    b = variance_test(1.0002, big, 1.0, fourth_central_moment=3.0).pvalue
    assert_allclose(a, b, rtol=0.02)  # O(1/sqrt(n)) skew of chi2 at z ~ 1.4
    d = variance_test(1.1, 100, 1.0, fourth_central_moment=3.0)
    ci = d.confidence_interval(0.9)
    h = stats.norm.isf(0.05) * d.standard_error
    assert_allclose([ci.low, ci.high], [1.1 - h, 1.1 + h], rtol=1e-14)
    assert variance_test(0.0, 10, 1.0, fourth_central_moment=1.0).confidence_interval().low == 0.0
    assert json_roundtrip(d)["method"] == "delta"
    assert_allclose(d.ratio, 1.1)


def test_variance_test_zero_variance():
    assert variance_test(0.0, 10, 0.0, fourth_central_moment=0.0).pvalue == 1.0
    assert variance_test(0.1, 10, 0.0, fourth_central_moment=0.0).pvalue == 0.0
    assert variance_test(0.0, 10, 0.0, method="chi2").pvalue == 1.0
    assert variance_test(0.1, 10, 0.0, method="chi2").pvalue == 0.0
    assert json_roundtrip(variance_test(0.1, 10, 0.0, method="chi2"))["ratio"] is None


# ---------------------------------------------------------------------------
# support test
# ---------------------------------------------------------------------------


def dropout_float32(rng, shape, q, batch):
    x = rng.standard_normal(shape).astype(np.float32)
    m = rng.random((batch, *shape)) < q
    y_div = np.where(m, x / np.float32(q), np.float32(0))
    y_mul = np.where(m, x * np.float32(1 / q), np.float32(0))
    return x, y_div.astype(np.float32), y_mul.astype(np.float32)


def test_support_accepts_float32_rounding_and_catches_1e6_error():
    q = 0.7
    rng = np.random.default_rng(777_013_245_889)
    x, y_div, y_mul = dropout_float32(rng, (32, 64), q, batch=20)
    for y in (y_div, y_mul):
        res = support_test(y, x, 1 / q)
        assert res.passed and res.n_off_support == 0 and res.statistic == 0
        assert res.pvalue is None
        assert res.n_values == y.size
        # float32(q) and float32(1/q) are within 2**-24 relative, plus <= 0.5
        # ulp for the final rounding: at most ~2.5 ulp, inside the default 4.
        assert res.max_ulps <= 3.0
    # One kept value off by 1e-6 relative: >= 7.9 float32 ulps, caught.
    bad = y_div.copy()
    idx = tuple(int(i) for i in np.argwhere(bad != 0)[17])
    bad[idx] = np.float32(float(bad[idx]) * (1 + 1e-6))
    res = support_test(bad, x, 1 / q)
    assert not res.passed and res.n_off_support == 1
    ex = res.examples[0]
    assert tuple(ex["index"]) == idx
    assert ex["value"] == float(bad[idx])
    assert_allclose(ex["expected"], float(x[idx[1:]]) / q, rtol=1e-15)
    d = json_roundtrip(res)
    assert d["passed"] is False and d["n_off_support"] == 1
    assert "1 of" in str(res)


def test_support_float64_and_special_values():
    x = np.array([1.0, -2.0, 0.0, 3.0])
    q = 0.9
    y = np.array([[1 / q, 0.0, 0.0, -0.0], [0.0, -2.0 / q, 0.0, 3.0 / q]])
    assert support_test(y, x, 1 / q).passed
    y2 = y.copy()
    y2[0, 0] *= 1 + 1e-6  # ~4.5e9 float64 ulps
    y2[1, 2] = 1e-30  # x == 0 must give exactly 0
    y2[1, 3] = np.nan
    res = support_test(y2, x, 1 / q)
    assert res.n_off_support == 3
    assert [e["index"] for e in res.examples] == [[0, 0], [1, 2], [1, 3]]
    assert res.max_ulps == math.inf
    assert json_roundtrip(res)["examples"][2]["value"] is None  # nan -> None
    # The eval-mode output x itself is off the {0, x/q} support.
    assert support_test(x, x, 1 / q).n_off_support == 3
    # ulps=0 asks for exact equality with x*scale computed in float64.
    assert support_test(np.array([1 / q]), [1.0], 1 / q, ulps=0).passed


def test_support_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = ml_dtypes.bfloat16
    x = np.array([1.0, 2.0, 3.0, -0.5], dtype=bf16)
    q = 0.7
    y = (x.astype(np.float32) / np.float32(q)).astype(bf16)
    assert support_test(y, x, 1 / q).passed
    y[1] = bf16(float(y[1]) * 1.02)  # 2% is ~5 bfloat16 ulps (eps 2**-7)
    res = support_test(y, x, 1 / q)
    assert res.n_off_support == 1 and res.dtype == "bfloat16"


def test_support_float16_and_integers():
    x = np.array([1.0, 2.0, 3.0], dtype=np.float16)
    q = 0.75
    y = (x / np.float16(q)).astype(np.float16)
    assert support_test(y, x, 1 / q).passed
    assert support_test(np.array([0, 2, 4]), [1, 1, 2], 2.0).passed
    assert not support_test(np.array([0, 2, 5]), [1, 1, 2], 2.0).passed


# ---------------------------------------------------------------------------
# equivalence and three-zone verdict
# ---------------------------------------------------------------------------


def test_equivalence_test_tost():
    res = equivalence_test(1.0002, 0.0001, 0.999, 1.001)
    p_low = stats.norm.sf((1.0002 - 0.999) / 0.0001)
    p_high = stats.norm.cdf((1.0002 - 1.001) / 0.0001)
    assert_allclose([res.pvalue_low, res.pvalue_high], [p_low, p_high], rtol=1e-9)
    assert res.pvalue == max(res.pvalue_low, res.pvalue_high)
    assert_allclose(res.statistic, 8.0, rtol=1e-9)  # nearer edge 8 se away
    assert res.pvalue < 1e-6
    outside = equivalence_test(1.003, 0.0001, 0.999, 1.001)
    assert outside.pvalue > 0.99 and outside.statistic < 0
    # TOST at alpha  <=>  the 1 - 2 alpha interval lies inside the band.
    for est in np.linspace(0.998, 1.002, 41):
        r = equivalence_test(est, 0.0003, 0.999, 1.001)
        verdict = three_zone_verdict(r.confidence_interval(1 - 2 * 0.05), 0.999, 1.001)
        assert (r.pvalue <= 0.05) == (verdict == "pass")
    # One-sided band and zero standard error.
    assert equivalence_test(5.0, 1.0, -math.inf, 10.0).pvalue_low == 0.0
    assert equivalence_test(1.0, 0.0, 0.0, 2.0).pvalue == 0.0
    assert equivalence_test(2.0, 0.0, 0.0, 2.0).pvalue == 1.0
    assert json_roundtrip(equivalence_test(5.0, 1.0, -math.inf, 10.0))["low"] is None


def test_three_zone_verdict_all_zones():
    band = (0.99, 1.01)
    assert three_zone_verdict(ConfidenceInterval(0.995, 1.005, 0.95), *band) == "pass"
    assert three_zone_verdict(ConfidenceInterval(0.99, 1.01, 0.95), *band) == "pass"
    assert three_zone_verdict(ConfidenceInterval(1.02, 1.03, 0.95), *band) == "fail"
    assert three_zone_verdict(ConfidenceInterval(0.95, 0.98, 0.95), *band) == "fail"
    assert three_zone_verdict(ConfidenceInterval(1.005, 1.02, 0.95), *band) == "inconclusive"
    assert three_zone_verdict(ConfidenceInterval(0.9, 1.1, 0.95), *band) == "inconclusive"
    # Touching an edge shares a point: not entirely outside.
    assert three_zone_verdict(ConfidenceInterval(1.01, 1.02), *band) == "inconclusive"


# ---------------------------------------------------------------------------
# Holm
# ---------------------------------------------------------------------------


def test_holm_hand_computed():
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> cummax
    # 0.02, 0.03, 0.06, 0.06.  Step-down at 0.05: reject the first two.
    res = holm([0.01, 0.04, 0.03, 0.005], 0.05)
    assert_allclose(res.adjusted_pvalues, [0.03, 0.06, 0.06, 0.02], rtol=1e-15)
    assert_array_equal(res.rejected, [True, False, False, True])
    assert res.alpha == 0.05 and res.n_rejected == 2


@pytest.mark.parametrize(
    "pvals,adjusted",
    [
        # The values statsmodels' multipletests(method="holm") gives, worked
        # out by hand: factors m, m-1, ..., 1 on the sorted p-values, running
        # maximum, cap at 1.
        ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05, 0.08, 0.09, 0.09, 0.09]),
        ([0.5, 0.001, 0.3, 0.001], [0.6, 0.004, 0.6, 0.004]),  # ties
        ([0.9, 0.8], [1.0, 1.0]),  # 0.8*2 = 1.6 capped, then running max
        ([0.6, 0.7, 0.01], [1.0, 1.0, 0.03]),  # 0.6*2 = 1.2 capped at 1
        ([0.0, 1.0], [0.0, 1.0]),
        ([0.02], [0.02]),
    ],
)
def test_holm_known_values(pvals, adjusted):
    res = holm(pvals, 0.05)
    assert_allclose(res.adjusted_pvalues, adjusted, rtol=1e-14)  # a product and a max
    assert_array_equal(res.rejected, np.array(adjusted) <= 0.05)
    assert_array_equal(res.pvalues, pvals)
    assert json_roundtrip(res)["rejected"] == [bool(a <= 0.05) for a in adjusted]


def test_holm_empty():
    res = holm([], 0.05)
    assert res.rejected.size == 0 and res.adjusted_pvalues.size == 0


@HYP
@given(
    pvals=st.lists(st.floats(0, 1), min_size=1, max_size=30),
    alpha=st.floats(1e-6, 0.5),
)
def test_holm_matches_step_down(pvals, alpha):
    res = holm(pvals, alpha)
    p = np.array(pvals)
    order = np.argsort(p, kind="stable")
    m = len(p)
    # Textbook step-down: stop at the first sorted p above alpha/(m - j).
    expected = np.zeros(m, dtype=bool)
    for j, i in enumerate(order):
        if p[i] * (m - j) > alpha:
            break
        expected[i] = True
    assert_array_equal(res.rejected, expected)
    adj = res.adjusted_pvalues
    assert np.all(adj >= p) and np.all(adj <= 1.0)
    assert np.all(np.diff(adj[order]) >= 0)


# ---------------------------------------------------------------------------
# dispersion test
# ---------------------------------------------------------------------------


def test_dispersion_null_pvalues_are_uniform():
    m, t, q, reps = 100, 10**5, 0.3, 300
    rng = np.random.default_rng(330_219_876_554)
    pv = np.array([dispersion_test(rng.binomial(t, q, size=m), t, q).pvalue for _ in range(reps)])
    # tpq = 21000: chi2(m) is an excellent approximation, so the p-values
    # are ~Uniform(0,1).  Under that null the KS p-value is itself uniform;
    # the seeded run is deterministic and a threshold of 1e-3 would be
    # crossed by only 1 seed in 1000.
    assert stats.kstest(pv, "uniform").pvalue > 1e-3
    assert pv.min() > 1e-6  # the audit's default alpha: no false alarm


def test_dispersion_single_run_statistic():
    m, t, q = 1000, 10**6, 0.7
    rng = np.random.default_rng(118_442_907_635)
    res = dispersion_test(rng.binomial(t, q, size=m), t, q)
    # Var[D] = m (2 + (1 - 6pq)/(tpq)); the index D/m is 1 +- that / m.
    sd = math.sqrt(m * (2 + (1 - 6 * q * (1 - q)) / (t * q * (1 - q)))) / m
    assert abs(res.statistic - 1.0) < 6 * sd
    assert res.df == m and res.pvalue > 1e-6
    assert 1.0 in res.confidence_interval(0.999999)


def test_dispersion_detects_exactly_k_kept():
    t, q, m = 10_000, 0.3, 100
    res = dispersion_test(np.full(m, round(t * q)), t, q)  # no variance at all
    assert res.pvalue < 1e-6 and res.pvalue_under < 1e-6 and res.statistic < 0.01
    # Non-integer t*q: the sampler keeps round(t_i q); still tiny D.
    tt = np.arange(5000, 5000 + m)
    res = dispersion_test(np.round(tt * 0.37).astype(int), tt, 0.37)
    assert res.pvalue < 1e-6


def test_dispersion_detects_over_dispersion():
    # Correlated masks: each call's keep probability wobbles (sd 0.003)
    # around q, adding t^2 * 9e-6 = 9e4 to a binomial variance of 2.1e4.
    t, q, m = 10**5, 0.3, 100
    rng = np.random.default_rng(902_118_374_650)
    qi = q + 0.003 * rng.standard_normal(m)
    res = dispersion_test(rng.binomial(t, qi), t, q)
    assert res.pvalue < 1e-6 and res.pvalue_over < 1e-6 and res.statistic > 2


def test_dispersion_large_counts_and_degenerate_q():
    rng = np.random.default_rng(645_003_112_987)
    t, q = 10**14, 0.3
    counts = (t * q + math.sqrt(t * q * (1 - q)) * rng.standard_normal(50)).astype(np.int64)
    res = dispersion_test(counts, t, q)
    assert res.pvalue > 1e-6  # normal deviates of the right size
    assert dispersion_test([0, 0], 10, 0.0).pvalue == 1.0
    assert dispersion_test([0, 1], 10, 0.0).pvalue == 0.0
    ok = dispersion_test([10, 20], [10, 20], 1.0)
    assert ok.pvalue == 1.0 and math.isnan(ok.statistic)
    assert json_roundtrip(ok)["statistic"] is None


# ---------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------


def test_plan_formula():
    z = stats.norm.isf(0.5e-6) + stats.norm.ppf(0.99)
    for p, bias in [(0.1, 1e-3), (0.5, 1e-2), (0.3, 1e-3), (0.9, 0.05)]:
        res = plan(p, bias=bias)
        assert res.samples == math.ceil(z**2 * (p / (1 - p)) / bias**2)
        assert int(res) == res.samples and isinstance(res.samples, int)
        assert (res.p, res.q, res.bias, res.method) == (p, 1 - p, bias, "normal")
    # keep= is the same question asked with q.
    assert plan(keep=0.7, bias=1e-3).samples == plan(0.3, bias=1e-3).samples
    # DESIGN.md: "about 2*10^7 mask draws at p = 0.3" for 0.1% at power 0.99.
    assert 1.5e7 < plan(0.3, bias=1e-3).samples < 2.5e7
    r = plan(0.1, bias=1e-3)
    assert str(r).count("\n") == 0 and f"{r.samples:,}" in str(r)
    assert json_roundtrip(r)["samples"] == r.samples


@pytest.mark.parametrize("p,bias", [(0.1, 1e-2), (0.5, 1e-2), (0.3, 3e-3), (0.01, 1e-3)])
def test_plan_exact_agrees_with_normal(p, bias):
    exact = plan(p, bias=bias, method="exact").samples
    normal = plan(p, bias=bias).samples
    # The normal formula ignores the smaller variance under the alternative
    # and the skewness of the count: a few percent.
    assert abs(exact / normal - 1) < 0.05


def brute_force_power(n, q, q1, alpha):
    """Power of the equal-tailed exact test, critical values by full search."""
    k = np.arange(n + 1)
    low = k[stats.binom.cdf(k, n, q) <= alpha / 2]
    high = k[stats.binom.sf(k - 1, n, q) <= alpha / 2]
    power = 0.0
    if low.size:
        power += stats.binom.cdf(low.max(), n, q1)
    if high.size:
        power += stats.binom.sf(high.min() - 1, n, q1)
    return power


def test_plan_exact_is_the_first_sufficient_n():
    p, bias, alpha, pw = 0.1, 1e-2, 1e-6, 0.99
    n = plan(p, bias=bias, alpha=alpha, power=pw, method="exact").samples
    q = 1 - p
    assert brute_force_power(n, q, q * (1 + bias), alpha) >= pw
    assert brute_force_power(n - 1, q, q * (1 + bias), alpha) < pw
    # The equal-tailed region is the minlike test's region at this N (within
    # the rounding of the tail sums): the critical count's p-value is <= alpha.
    k = np.arange(n + 1)
    c_high = k[stats.binom.sf(k - 1, n, q) <= alpha / 2].min()
    assert stats.binomtest(int(c_high), n, q).pvalue <= alpha * (1 + 1e-6)
    assert stats.binomtest(int(c_high) - 2, n, q).pvalue > alpha


def test_plan_monotone():
    for method in ("normal", "exact"):
        ns = [plan(0.3, bias=b, method=method).samples for b in (3e-2, 1e-2, 3e-3)]
        assert ns[0] < ns[1] < ns[2]
        ns = [plan(0.3, bias=1e-2, alpha=a, method=method).samples for a in (1e-2, 1e-4, 1e-6)]
        assert ns[0] < ns[1] < ns[2]
        ns = [plan(0.3, bias=1e-2, power=w, method=method).samples for w in (0.5, 0.9, 0.999)]
        assert ns[0] < ns[1] < ns[2]
        ns = [plan(pp, bias=1e-2, method=method).samples for pp in (0.1, 0.3, 0.6)]
        assert ns[0] < ns[1] < ns[2]


def test_plan_edges():
    assert plan(0.0, bias=1e-3).samples == 1
    assert plan(0.0, bias=1e-3, method="exact").samples == 1
    assert plan(keep=1.0, bias=0.5, method="exact").samples == 1
    # A tiny bias needs more draws than int64 holds: still a Python int.
    assert plan(0.5, bias=1e-12).samples > 2**63
    # bias reaching q1 = 1: deterministic alternative, found quickly.
    assert plan(0.5, bias=1.0, method="exact").samples >= 1


def test_detectable_bias_inverts_plan():
    for p in (0.05, 0.3, 0.8):
        for n in (10**3, 10**8, 10**12):
            b = detectable_bias(p, samples=n)
            z = stats.norm.isf(0.5e-6) + stats.norm.ppf(0.99)
            assert_allclose(b, z * math.sqrt(p / ((1 - p) * n)), rtol=1e-14)
            # ceil() of n * (1 +- a few ulps): n or n + 1.
            assert plan(p, bias=b).samples - n in (0, 1)
        planned = plan(p, bias=1e-3, alpha=1e-4, power=0.9)
        b = detectable_bias(p, samples=planned.samples, alpha=1e-4, power=0.9)
        assert 1e-3 * (1 - 1e-6) <= b <= 1e-3 * (1 + 1e-12)
    assert detectable_bias(0.0, samples=10) == 0.0
    assert detectable_bias(keep=0.7, samples=10**6) == detectable_bias(0.3, samples=10**6)


# ---------------------------------------------------------------------------
# input validation: every documented error names its argument
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,exc,arg",
    [
        (lambda: clopper_pearson(11, 10), ValueError, "k"),
        (lambda: clopper_pearson(-1, 10), ValueError, "k"),
        (lambda: clopper_pearson(1.5, 10), TypeError, "k"),
        (lambda: clopper_pearson(1, 0), ValueError, "n"),
        (lambda: clopper_pearson(1, 10, 1.5), ValueError, "confidence_level"),
        (lambda: wilson_interval(1, 10, 0.0), ValueError, "confidence_level"),
        (lambda: wilson_interval(1, "10"), TypeError, "n"),
        (lambda: keep_rate_test(11, 10, 0.5), ValueError, "kept"),
        (lambda: keep_rate_test(1, 0, 0.5), ValueError, "trials"),
        (lambda: keep_rate_test(1, 10, 1.2), ValueError, "q"),
        (lambda: keep_rate_test(1, 10, 0.5, alternative="both"), ValueError, "alternative"),
        (lambda: keep_rate_test(1, 10, 0.5).confidence_interval(method="wald"), ValueError, "method"),
        (lambda: keep_rate_test(1, 10, 0.5).confidence_interval(1.0), ValueError, "confidence_level"),
        (lambda: mean_test(1.0, -1.0, 1.0), ValueError, "standard_error"),
        (lambda: mean_test(math.nan, 1.0, 1.0), ValueError, "estimate"),
        (lambda: mean_test("1", 1.0, 1.0), TypeError, "estimate"),
        (lambda: mean_test(1.0, 1.0, math.inf), ValueError, "expected"),
        (lambda: mean_test(1.0, 1.0, 1.0, alternative="two_sided"), ValueError, "alternative"),
        (lambda: mean_test(1.0, 1.0, 1.0).confidence_interval(2), ValueError, "confidence_level"),
        (lambda: variance_test(1.0, 1, 1.0, fourth_central_moment=3.0), ValueError, "n"),
        (lambda: variance_test(-1.0, 10, 1.0, fourth_central_moment=3.0), ValueError, "sample_variance"),
        (lambda: variance_test(1.0, 10, -1.0, fourth_central_moment=3.0), ValueError, "expected_variance"),
        (lambda: variance_test(1.0, 10, 1.0), ValueError, "fourth_central_moment"),
        (lambda: variance_test(1.0, 10, 2.0, fourth_central_moment=3.0), ValueError, "fourth_central_moment"),
        (lambda: variance_test(1.0, 10, 1.0, method="normal"), ValueError, "method"),
        (lambda: two_point_moments(1.0, 2.0), ValueError, "q"),
        (lambda: two_point_moments(math.nan, 0.5), ValueError, "c"),
        (lambda: two_point_moments([1.0, math.nan], 0.5), ValueError, "c"),
        (lambda: support_test(np.zeros((3, 2)), np.zeros(3), 2.0), ValueError, "values"),
        (lambda: support_test(np.zeros(3), np.zeros((2, 3)), 2.0), ValueError, "values"),
        (lambda: support_test(np.zeros(0), np.zeros(1), 2.0), ValueError, "values"),
        (lambda: support_test(np.zeros(3, complex), np.zeros(3), 2.0), TypeError, "values"),
        (lambda: support_test(np.zeros(3), [0.0, math.nan, 1.0], 2.0), ValueError, "x"),
        (lambda: support_test(np.zeros(3), np.zeros(3), 0.0), ValueError, "scale"),
        (lambda: support_test(np.zeros(3), np.zeros(3), 2.0, ulps=-1), ValueError, "ulps"),
        (lambda: equivalence_test(1.0, 1.0, 2.0, 1.0), ValueError, "low"),
        (lambda: equivalence_test(1.0, -1.0, 0.0, 2.0), ValueError, "standard_error"),
        (lambda: equivalence_test(1.0, 1.0, math.nan, 2.0), ValueError, "low"),
        (lambda: three_zone_verdict((0.0, 1.0), 0.0, 1.0), TypeError, "interval"),
        (lambda: three_zone_verdict(ConfidenceInterval(math.nan, 1.0), 0.0, 1.0), ValueError, "interval"),
        (lambda: three_zone_verdict(ConfidenceInterval(0.0, 1.0), 1.0, 1.0), ValueError, "low"),
        (lambda: holm([0.1, math.nan], 0.05), ValueError, "pvalues"),
        (lambda: holm([0.1, None], 0.05), TypeError, "pvalues"),
        (lambda: holm([[0.1, 0.2]], 0.05), ValueError, "pvalues"),
        (lambda: holm([0.1, 1.5], 0.05), ValueError, "pvalues"),
        (lambda: holm([0.1], 0.0), ValueError, "alpha"),
        (lambda: dispersion_test([1.0, 2.0], 10, 0.5), TypeError, "counts"),
        (lambda: dispersion_test([1, 11], 10, 0.5), ValueError, "counts"),
        (lambda: dispersion_test([-1, 1], 10, 0.5), ValueError, "counts"),
        (lambda: dispersion_test([], 10, 0.5), ValueError, "counts"),
        (lambda: dispersion_test([1, 1], 0, 0.5), ValueError, "trials"),
        (lambda: dispersion_test([1, 1], [10, 10, 10], 0.5), ValueError, "trials"),
        (lambda: dispersion_test([1, 1], 10, -0.1), ValueError, "q"),
        (lambda: plan(1.0, bias=1e-3), ValueError, "p"),
        (lambda: plan(keep=0.0, bias=1e-3), ValueError, "keep"),
        (lambda: plan(1.5, bias=1e-3), ValueError, "p"),
        (lambda: plan(0.3, keep=0.7, bias=1e-3), ValueError, "p"),
        (lambda: plan(bias=1e-3), TypeError, "p="),
        (lambda: plan(0.3, bias=0.0), ValueError, "bias"),
        (lambda: plan(0.3, bias=-1e-3), ValueError, "bias"),
        (lambda: plan(0.3, bias=math.inf), ValueError, "bias"),
        (lambda: plan(0.5, bias=1.5, method="exact"), ValueError, "bias"),
        (lambda: plan(0.3, bias=1e-3, alpha=0.0), ValueError, "alpha"),
        (lambda: plan(0.3, bias=1e-3, power=1.0), ValueError, "power"),
        (lambda: plan(0.3, bias=1e-3, alpha=0.1, power=0.05), ValueError, "power"),
        (lambda: plan(0.3, bias=1e-3, method="magic"), ValueError, "method"),
        (lambda: detectable_bias(1.0, samples=10), ValueError, "p"),
        (lambda: detectable_bias(0.3, samples=0), ValueError, "samples"),
        (lambda: detectable_bias(0.3, samples=1.5), TypeError, "samples"),
    ],
)
def test_bad_input_names_the_argument(call, exc, arg):
    with pytest.raises(exc, match=f"`{arg}`"):
        call()


def test_public_api():
    for name in mstats.__all__:
        obj = getattr(mstats, name)
        assert obj.__doc__ and obj.__doc__.strip(), name


def test_check_result_compares_to_a_verdict_string():
    # `assert check == "pass"` compares the verdict (the pytest plugin explains a failure)
    from mcdrop.results import CheckResult

    c = CheckResult("keep_rate", "fail", pvalue=1e-9, extra={"k": 1})
    assert c == "fail" and c != "pass"
    assert c == CheckResult("keep_rate", "fail", pvalue=1e-9, extra={"k": 1})
    assert c != CheckResult("keep_rate", "fail", pvalue=0.5, extra={"k": 1})
    assert c.__eq__(3) is NotImplemented
    with pytest.raises(TypeError, match="CheckResult"):
        hash(c)


@pytest.mark.parametrize("t,q", [(5000, 0.3), (300, 0.9), (20000, 0.5), (1000, 0.01)])
def test_squared_deviation_cumulants_match_the_enumerated_law(t, q):
    # the exact formulas (used past ENUMERATE_MAX support points) against the enumerated
    # law (truncated at 1e-17 tails: differences ~1e-11 relative)
    from mcdrop.stats.dispersion import squared_deviation_cumulants, squared_deviation_law

    _, _, _, k3, k4 = squared_deviation_law(t, q, 10)
    assert squared_deviation_cumulants(t, q) == pytest.approx((k3, k4), rel=1e-9)
    # a large count approaches chi2(1): k3 = 8, k4 = 48
    assert squared_deviation_cumulants(10**8, 0.5) == pytest.approx((8.0, 48.0), rel=1e-6)
