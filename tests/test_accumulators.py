"""Exact sums, exact squares and Chan-merged moments."""

import math
from fractions import Fraction

import numpy as np
import pytest

from mcdrop.core.accumulators import EMIN, ExactSum, Moments, exact_mean_var


def _fsum_exact(values):
    return sum((Fraction(float(v)) for v in values), Fraction(0))


def _hard_values(rng):
    # Mixed signs, magnitudes from 1e-300 to 1e300, subnormals and exact cancellations.
    v = np.concatenate(
        [
            rng.normal(size=200) * 10.0 ** rng.integers(-300, 300, size=200),
            [5e-324, -5e-324, 2.2e-308, 1e308, -1e308, 1.0, -1.0, 0.0],
            rng.normal(size=100),
        ]
    )
    rng.shuffle(v)
    return v


def test_exact_sum_matches_fractions():
    rng = np.random.default_rng(20241126)
    v = _hard_values(rng)
    s = ExactSum(v)
    assert s.fraction == _fsum_exact(v)
    # correctly rounded, like math.fsum
    assert float(s) == math.fsum(v)


def test_exact_sum_is_order_and_split_independent():
    rng = np.random.default_rng(31337)
    v = _hard_values(rng)
    whole = ExactSum(v)
    a, b, c = ExactSum(v[:100]), ExactSum(v[100:250]), ExactSum(v[250:])
    assert a.merge(b).merge(c) == whole
    assert a.merge(b.merge(c)) == whole
    assert c.merge(a).merge(b) == whole
    assert ExactSum(v[::-1]) == whole


def test_exact_squares():
    rng = np.random.default_rng(4242)
    v = rng.normal(size=500) * 10.0 ** rng.integers(-100, 100, size=500)
    s = ExactSum().add_squares(v)
    assert s.fraction == sum((Fraction(float(x)) ** 2 for x in v), Fraction(0))
    with pytest.raises(ValueError, match="`values`"):
        ExactSum().add_squares([1e300])


def test_nonfinite_rejected():
    with pytest.raises(ValueError, match="finite"):
        ExactSum([1.0, np.nan])


def test_many_additions_do_not_overflow_limbs():
    # 3e6 additions of the largest mantissa in one limb position.
    v = np.full(3_000_000, 1.0 - 2.0**-53)
    assert ExactSum(v).fraction == 3_000_000 * Fraction(1.0 - 2.0**-53)


def test_rounding_negligible_at_1e10_samples_worst_case():
    """The toolkit's rounding is < 1% of the interval half-width at 10**10 samples.

    Worst case for a streaming mean/variance: a mean 2e8 times the spread
    (per-sample values 1e8 + {0, 1}).  A float64 running sum of 10**10 such
    values keeps ~6 significant digits of the mean and none of the variance;
    exact sums give both correctly rounded.  10**10 samples are built by
    merging one exact block of 10**6 values 10**4 times (merging is integer
    addition, so this is exactly what 10**10 streamed values would give).
    """
    rng = np.random.default_rng(987654321)
    block = 1e8 + (rng.random(10**6) < 0.5)
    s1 = ExactSum(block)
    s2 = ExactSum().add_squares(block)
    reps = 10**4
    n = 10**6 * reps
    z1, z2 = s1.z * reps, s2.z * reps
    mean, var = exact_mean_var(n, z1, z2)

    # truth, in exact rationals
    k = int(np.sum(block > 1e8))
    t_mean = Fraction(10**8) + Fraction(k * reps, n)
    kk = Fraction(k * reps)
    t_var = (kk - kk * kk / n) / (n - 1)
    half_width_mean = 1.96 * math.sqrt(float(t_var) / n)
    # the only rounding is the final conversion to float64: 1/2 ulp of each
    assert abs(Fraction(mean) - t_mean) <= Fraction(math.ulp(float(t_mean)))
    assert abs(Fraction(mean) - t_mean) < 0.01 * Fraction(half_width_mean)
    assert abs(Fraction(var) - t_var) <= Fraction(math.ulp(float(t_var)))
    # a variance interval at n = 1e10 has relative half-width ~ 1.96*sqrt(2/n) = 2.8e-5
    assert abs(var - float(t_var)) < 0.01 * 2.8e-5 * float(t_var)

    # and this is a real worst case: the naive float64 streaming sum is far off
    naive = np.float64(0.0)
    for _ in range(reps):
        naive += np.sum(block)  # 1e4 pairwise block sums, then a plain running sum
    naive_sq = np.float64(0.0)
    for _ in range(reps):
        naive_sq += np.sum(block * block)
    naive_var = (naive_sq - naive * naive / n) / (n - 1)
    assert abs(naive_var - float(t_var)) > 100 * 0.01 * 2.8e-5 * float(t_var)


def test_exact_mean_var_small_n():
    s1 = ExactSum([3.0]).z
    s2 = ExactSum().add_squares([3.0]).z
    mean, var = exact_mean_var(1, s1, s2)
    assert mean == 3.0 and math.isnan(var)
    assert all(math.isnan(v) for v in exact_mean_var(0, 0, 0))
    v = np.array([1.0, 2.0, 4.0])
    mean, var = exact_mean_var(3, ExactSum(v).z, ExactSum().add_squares(v).z)
    assert mean == pytest.approx(7 / 3, rel=1e-15)
    assert var == pytest.approx(np.var(v, ddof=1), rel=1e-15)
    assert EMIN < -1074


def test_moments_chan_merge_matches_two_pass():
    rng = np.random.default_rng(55555)
    data = rng.normal(loc=3.0, scale=2.0, size=(1000, 7))
    m = Moments.empty((7,))
    for chunk in np.array_split(data, 13):
        m.update(chunk)
    # rtol 1e-12: Chan's merge is exact in exact arithmetic; float64 rounding
    # over 13 merges of O(1) values stays near 1e-15 relative.
    np.testing.assert_allclose(m.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.var, data.var(axis=0, ddof=1), rtol=1e-12)
    a = Moments.empty((7,)).update(data[:400])
    b = Moments.empty((7,)).update(data[400:])
    ab = a.merge(b)
    assert ab.count == 1000
    np.testing.assert_allclose(ab.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(ab.var, data.var(axis=0, ddof=1), rtol=1e-12)
    assert np.isnan(Moments.empty((2,)).var).all()
