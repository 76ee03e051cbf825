"""The sampling kernel against a slow, obviously-correct NumPy reference."""

from fractions import Fraction

import numpy as np
import pytest

import mcdrop
from mcdrop import rng
from mcdrop.core.accumulators import EMIN


def _reference(x, q, samples, seed, start=0):
    """Everything simulate() accumulates, from the materialised masks."""
    key = rng.key_from_seed(seed)
    xf = np.asarray(x, dtype=np.float64).ravel()
    mask = rng.bernoulli_mask(key, q, xf.size, samples, start)  # samples x n, bool
    keep_counts = mask.sum(axis=0)
    hist = np.bincount(mask.sum(axis=1), minlength=xf.size + 1)
    # per-sample weighted sums, exactly (Fractions: no rounding at all)
    s_exact = [sum((Fraction(v) for v in xf[row]), Fraction(0)) for row in mask]
    return keep_counts, hist, s_exact


@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 13, 64])
@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 1.0])
def test_kernel_matches_reference_integer_inputs(n, q):
    # Small-integer inputs make every per-sample sum exact in any order, so the
    # kernel's sums must equal the reference's exactly.
    x = np.arange(1, n + 1, dtype=np.float64) * np.where(np.arange(n) % 2, -1, 1)
    sim = mcdrop.simulate(x, keep=q, samples=300, seed=1234, start=17)
    kc, hist, s_exact = _reference(x, q, 300, 1234, start=17)
    assert (sim.keep_counts == kc).all()
    assert (sim.keep_count_hist == hist).all()
    assert Fraction(sim.layer_sum_z, 1 << -EMIN) == sum(s_exact)
    assert Fraction(sim.layer_sumsq_z, 1 << -EMIN) == sum(s * s for s in s_exact)


def test_kernel_matches_reference_float_inputs():
    rng_ = np.random.default_rng(8080)
    x = rng_.normal(size=(3, 7)) * 10.0 ** rng_.integers(-3, 4, size=(3, 7))
    sim = mcdrop.simulate(x, p=0.3, samples=500, seed=77)
    kc, hist, s_exact = _reference(x, 0.7, 500, 77)
    assert (sim.keep_counts.ravel() == kc).all()
    assert (sim.keep_count_hist == hist).all()
    # The kernel rounds each per-sample sum once it is formed (vectorised
    # order); each S is within a few ulp of exact, so the totals agree to
    # ~1e-15 relative of sum|S|; 1e-12 leaves a wide margin.
    tot = float(sum(abs(s) for s in s_exact))
    assert abs(float(Fraction(sim.layer_sum_z, 1 << -EMIN) - sum(s_exact))) <= 1e-12 * tot
    sq = float(sum(s * s for s in s_exact))
    assert abs(float(Fraction(sim.layer_sumsq_z, 1 << -EMIN)) - sq) <= 1e-12 * sq


def test_derived_statistics_match_reference():
    x = np.array([2.0, 4.0, 6.0, 8.0])
    sim = mcdrop.simulate(x, keep=0.5, samples=2000, seed=5)
    mask = rng.bernoulli_mask(rng.key_from_seed(5), 0.5, 4, 2000)
    y = x * mask / 0.5
    np.testing.assert_allclose(sim.mean, y.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-12)
    lm = y.mean(axis=1)
    assert sim.layer_mean.mean == pytest.approx(lm.mean(), rel=1e-14)
    assert sim.layer_mean.var == pytest.approx(lm.var(ddof=1), rel=1e-12)
    # the running trace at its recorded points
    tr = sim.trace
    for n_, m_, sd_ in zip(tr["samples"], tr["mean"], tr["sd"]):
        assert m_ == pytest.approx(lm[:n_].mean(), rel=1e-13)
        if n_ > 1:
            assert sd_ == pytest.approx(lm[:n_].std(ddof=1), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n", [4, 9, 1000])
def test_bit_identical_for_1_and_2_threads(n):
    x = np.random.default_rng(n).normal(size=n)
    a = mcdrop.simulate(x, p=0.3, samples=20011, seed=99, threads=1)
    b = mcdrop.simulate(x, p=0.3, samples=20011, seed=99, threads=2)
    assert a == b
    assert a.layer_sum_z == b.layer_sum_z and a.layer_sumsq_z == b.layer_sumsq_z


@pytest.mark.parametrize("a,b", [(1, 1), (1000, 2345), (7, 99993), (50000, 1)])
def test_shards_merge_exactly(a, b):
    x = np.random.default_rng(a + b).normal(size=37)
    whole = mcdrop.simulate(x, p=0.1, samples=a + b, seed=2024)
    first = mcdrop.simulate(x, p=0.1, samples=a, seed=2024, threads=1)
    second = mcdrop.simulate(x, p=0.1, samples=b, seed=2024, start=a, threads=2)
    assert first.merge(second) == whole
    assert second.merge(first) == whole  # commutative


def test_merge_is_associative():
    x = [1.5, -2.0, 3.25]
    parts = [(0, 10), (10, 333), (343, 4000)]
    s = [mcdrop.simulate(x, p=0.4, samples=n, start=st, seed=3) for st, n in parts]
    whole = mcdrop.simulate(x, p=0.4, samples=4343, seed=3)
    assert s[0].merge(s[1]).merge(s[2]) == whole
    assert s[0].merge(s[1].merge(s[2])) == whole


def test_merge_rejects_mismatches():
    a = mcdrop.simulate([1.0, 2.0], p=0.5, samples=10, seed=1)
    with pytest.raises(ValueError, match="adjacent"):
        a.merge(mcdrop.simulate([1.0, 2.0], p=0.5, samples=10, seed=1, start=11))
    with pytest.raises(ValueError, match="`p`"):
        a.merge(mcdrop.simulate([1.0, 2.0], p=0.4, samples=10, seed=1, start=10))
    with pytest.raises(ValueError, match="`key`"):
        a.merge(mcdrop.simulate([1.0, 2.0], p=0.5, samples=10, seed=2, start=10))
    with pytest.raises(ValueError, match="`x`"):
        a.merge(mcdrop.simulate([1.0, 3.0], p=0.5, samples=10, seed=1, start=10))
    with pytest.raises(TypeError, match="`other`"):
        a.merge("nope")


@pytest.mark.parametrize("n", [1, 13, 64])
def test_layer_false_skips_only_the_layer_sums(n):
    # layer=False (the benchmark's like-for-like kernel) gives the same keep counts
    # and histogram as layer=True, and leaves the exact limbs at zero.
    from mcdrop.core import kernels

    x = np.arange(1, n + 1, dtype=np.float64)
    xpad = np.zeros(kernels.padded_length(n))
    xpad[:n] = x
    key, thr = rng.key_from_seed(77), rng.keep_threshold(0.6)
    out = {}
    for layer in (True, False):
        counts, hist, limbs = kernels.new_accumulators(n, 2)
        limbs[:] = 1  # the kernel zeroes them either way
        kernels.run_inverted_batch(xpad, n, thr, key, 5, 700, counts, hist, limbs, layer=layer)
        out[layer] = counts.sum(axis=0)[:n], hist.sum(axis=0), limbs
    kc, hist, _ = _reference(x, 0.6, 700, 77, start=5)
    for layer in (True, False):
        assert (out[layer][0] == kc).all() and (out[layer][1] == hist).all()
    assert out[True][2].any() and not out[False][2].any()


def test_benchmark_kernel_counts_what_simulate_counts():
    # the benchmark's like-for-like timing runs the same stream as simulate()
    from mcdrop.cli.bench import _mcdrop_kernel

    x = np.linspace(-2.0, 3.0, 37)
    keep, mean = _mcdrop_kernel(x, 0.3, 900, 2, 7)()
    sim = mcdrop.simulate(x, 0.3, samples=900, seed=7)
    assert (keep == sim.keep_counts).all()
    assert np.allclose(mean, sim.mean, rtol=1e-12, atol=0)  # the same exact counts, rounding only
