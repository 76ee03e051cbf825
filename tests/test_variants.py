"""Variant kernels against slow NumPy references; exact merges; theory; bad input."""

import dataclasses
import math
from fractions import Fraction

import numba as nb
import numpy as np
import pytest

import mcdrop
from mcdrop.core.bitplane import stream2_masks
from mcdrop.core import rng, noise_kernel as vk
from mcdrop.core.accumulators import EMIN
from mcdrop import Simulation as VariantSimulation, simulate as simulate_variant
from mcdrop.laws import ALPHA_PRIME, alpha_constants, variant_law


def _exact(z):
    return Fraction(z, 1 << -EMIN)


def _structured_x(structure, seed):
    g = np.random.default_rng(seed)
    shape = {"element": (3, 5), "channel": (2, 3, 2, 2), "sample": (3, 4)}[structure]
    return g.normal(size=shape) * 10.0 ** g.integers(-2, 3, size=shape)


# ---------------------------------------------------------------------------
# theory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_alpha_dropout_self_normalises(p):
    a, b = alpha_constants(p)
    q = 1 - p
    assert a == pytest.approx((q * (1 + p * ALPHA_PRIME**2)) ** -0.5, rel=1e-15)
    assert b == pytest.approx(-a * ALPHA_PRIME * p, rel=1e-15)
    # an input with mean 0 and variance 1 keeps mean 0 and second moment 1
    x = np.random.default_rng(41).normal(size=1000)
    x = (x - x.mean()) / x.std()
    law = variant_law("alpha", p)
    # exact algebra up to float64 rounding of a few thousand terms
    assert np.mean(law.mean(x)) == pytest.approx(0.0, abs=1e-13)
    assert np.mean(law.var(x) + law.mean(x) ** 2) == pytest.approx(1.0, rel=1e-13)
    # and b = 0 would not: the mean moves to a p α′
    wrong = law.replace(b=0.0)
    assert np.mean(wrong.mean(x)) == pytest.approx(a * p * ALPHA_PRIME, rel=1e-12)


@pytest.mark.parametrize("variant", ["inverted", "standard", "alpha"])
def test_two_point_moments_match_forward_enumeration(variant):
    x = np.array([-2.0, 0.5, 3.0])
    law = variant_law(variant, 0.3)
    y1 = law.forward(x, np.ones((1, 3), dtype=bool))[0]
    y0 = law.forward(x, np.zeros((1, 3), dtype=bool))[0]
    # E and Var of a two-point variable, by enumeration (rounding only: 1e-14)
    np.testing.assert_allclose(law.mean(x), 0.7 * y1 + 0.3 * y0, rtol=1e-14)
    np.testing.assert_allclose(law.var(x), 0.21 * (y1 - y0) ** 2, rtol=1e-14)
    assert np.allclose(law.eval_output(x), {"inverted": x, "standard": 0.7 * x, "alpha": x}[variant])


def test_gaussian_and_dropconnect_moments():
    x = np.array([1.0, -2.0])
    g = variant_law("gaussian", 0.2)
    np.testing.assert_allclose(g.var(x), 0.25 * x**2, rtol=1e-15)
    w = np.array([[1.0, 2.0], [3.0, -1.0]])
    d = variant_law("dropconnect", 0.5)
    np.testing.assert_allclose(d.mean(x, w), w @ x, rtol=1e-15)
    np.testing.assert_allclose(d.var(x, w), (w**2) @ (x**2), rtol=1e-15)  # p/q = 1
    # uncorrelated outputs vs input dropout's shared mask
    assert d.layer_var(x, w) == pytest.approx(np.sum((w**2) @ (x**2)) / 4)
    assert d.replace(input_mask=True).layer_var(x, w) == pytest.approx(np.sum((w.sum(0) * x) ** 2) / 4)


# ---------------------------------------------------------------------------
# two-point kernels (the core kernel on unit weights)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["inverted", "standard", "alpha"])
@pytest.mark.parametrize("structure", ["element", "channel", "sample"])
def test_two_point_kernel_matches_reference(variant, structure):
    x = _structured_x(structure, 7)
    N = 400
    sim = simulate_variant(x, p=0.3, variant=variant, structure=structure, samples=N, seed=99, start=5)
    law = variant_law(variant, 0.3, structure=structure)
    n_units, g = law.units(x.shape)
    # the two-point laws draw stream-2 masks (independent reference: tests/test_kernels.py)
    mask = stream2_masks(rng.key_from_seed(99, rng.STREAM_MASK_V2), 0.7, n_units, N, 5)  # N x units
    y = law.forward(x, mask)  # the variant's outputs, materialised
    assert sim.keep_counts.shape == law.layout(x.shape).unit_shape
    assert (sim.keep_counts.ravel() == mask.sum(axis=0)).all()
    assert (sim.keep_count_hist == np.bincount(mask.sum(axis=1), minlength=n_units + 1)).all()
    # Per-element moments: the simulation forms them from the exact keep
    # counts; NumPy from the outputs (rounding of y and of the sums only).
    np.testing.assert_allclose(sim.mean, y.mean(axis=0), rtol=1e-12, atol=1e-12 * np.abs(y).max())
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-9, atol=1e-12 * np.abs(y).max() ** 2)
    lm = y.reshape(N, -1).mean(axis=1)
    # The kernel rounds each per-sample sum once (vectorised order) and the
    # unit weights once; 1e-11 relative covers both with a wide margin.
    assert sim.layer_mean.mean == pytest.approx(lm.mean(), rel=1e-11, abs=1e-11 * np.abs(lm).max())
    assert sim.layer_mean.var == pytest.approx(lm.var(ddof=1), rel=1e-9)


def test_units_of_size_one_are_the_element_run_bit_for_bit():
    # channel structure on (N, C) and sample structure on (N,): one element a
    # unit, the same draws and sums as element-wise dropout
    x = np.random.default_rng(3).normal(size=(4, 9))
    a = mcdrop.simulate(x, p=0.25, samples=5000, seed=11)
    b = simulate_variant(x, p=0.25, structure="channel", samples=5000, seed=11)
    assert (a.keep_counts == b.keep_counts).all() and b.unit_size == 1
    assert (a.layer_sum_z, a.layer_sumsq_z) == (b.layer_sum_z, b.layer_sumsq_z)
    assert a.trace_sum_z == b.trace_sum_z
    assert a.layer_mean.mean == b.layer_mean.mean and a.layer_mean.var == b.layer_mean.var
    c = simulate_variant(x[0], p=0.25, structure="sample", samples=5000, seed=11)
    assert (c.keep_counts == mcdrop.simulate(x[0], p=0.25, samples=5000, seed=11).keep_counts).all()


# ---------------------------------------------------------------------------
# Gaussian kernel
# ---------------------------------------------------------------------------


def _numpy_box_muller(key, units, samples, start):
    """The documented noise layout with NumPy's log/cos/sin (slow reference)."""
    npairs = (units + 1) // 2
    ncalls = (npairs + 1) // 2
    # one Philox call = 4 words = 2 pairs of (radius word, angle word)
    w = rng.uniforms(key, 4 * ncalls, samples, start).astype(np.float64).reshape(samples, 2 * ncalls, 2)
    u1 = (2 * w[..., 0] + 1) * 2.0**-33
    theta = 2 * np.pi * (w[..., 1] + 0.5) * 2.0**-32
    r = np.sqrt(-2 * np.log(u1))
    z = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1).reshape(samples, 4 * ncalls)
    return z[:, :units]


def test_gaussian_noise_matches_numpy_box_muller():
    key = rng.key_from_seed(2024, rng.STREAM_NOISE)
    z_ref = _numpy_box_muller(key, 37, 300, start=12345)
    Z = vk.gaussian_noise(key, 37, 300, start=12345)
    # The kernel's polynomial ln/sin/cos agree with NumPy's to 2e-14
    # (|z| <= 6.8, so ~2e-13 absolute); on the 2**-26 grid that changes Z
    # only when z sits within 2e-13 of a rounding boundary (p ~ 1e-5 each).
    assert np.abs(Z - np.rint(z_ref * 2**26)).max() <= 1
    assert np.mean(Z != np.rint(z_ref * 2**26)) <= 1e-3
    np.testing.assert_allclose(Z * vk.NOISE_GRID, z_ref, rtol=0, atol=2.0**-26)


def test_noise_polynomials_match_numpy():
    # The vectorised ln and sin/cos behind the Gaussian kernel, over their whole
    # input ranges (random integers, the radius words actually used, the ends).
    from mcdrop.core.noise_kernel import _ln_2m53, _sincos_small

    @nb.njit
    def ln_all(v):
        out = np.empty(v.shape[0])
        for i in range(v.shape[0]):
            out[i] = _ln_2m53(v[i])
        return out

    @nb.njit
    def sincos_all(psi):
        s = np.empty(psi.shape[0])
        c = np.empty(psi.shape[0])
        for i in range(psi.shape[0]):
            s[i], c[i] = _sincos_small(psi[i])
        return s, c

    g = np.random.default_rng(1)
    words = g.integers(0, 2**32, 200_000, dtype=np.uint64)
    v = np.concatenate([
        g.integers(1, 2**53, 200_000, dtype=np.uint64),
        ((2 * words + 1) << np.uint64(20)),
        np.array([1, 2, 2**52, 2**53 - 1], dtype=np.uint64),
    ])
    ref = np.log(v.astype(np.float64)) - 53 * np.log(2.0)
    assert np.abs(ln_all(v) - ref).max() < 5e-14
    psi = np.concatenate([np.linspace(-np.pi / 4, np.pi / 4, 200_001), [-np.pi / 4, np.pi / 4]])
    s, c = sincos_all(psi)
    assert np.abs(s - np.sin(psi)).max() < 5e-14
    assert np.abs(c - np.cos(psi)).max() < 5e-14


@pytest.mark.parametrize("units", [1, 2, 5, 8])
def test_gaussian_kernel_matches_reference(units):
    x = np.linspace(-2.0, 3.0, units) + 0.25
    N = 600
    sim = simulate_variant(x, p=0.4, variant="gaussian", samples=N, seed=5, start=77)
    Z = vk.gaussian_noise(rng.key_from_seed(5, rng.STREAM_NOISE), units, N, 77)
    # integer sums: exactly equal
    assert (sim.noise_sum == Z.sum(axis=0)).all()
    sq = [int(v) for v in (Z.astype(object) ** 2).sum(axis=0)]
    assert [int(h) * 2**32 + int(lo) for h, lo in zip(sim.noise_sumsq_hi, sim.noise_sumsq_lo)] == sq
    z = Z * vk.NOISE_GRID
    y = x * (1 + math.sqrt(0.4 / 0.6) * z)
    np.testing.assert_allclose(sim.mean, y.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-9)
    # per-sample Σ w z is rounded once per sample in the kernel: 1e-11 relative
    t_ref = z @ x
    assert float(_exact(sim.layer_sum_z)) == pytest.approx(t_ref.sum(), rel=1e-11, abs=1e-11 * np.abs(t_ref).sum())
    assert float(_exact(sim.layer_sumsq_z)) == pytest.approx((t_ref**2).sum(), rel=1e-11)
    m3, m4 = sim.noise_power_means
    assert m3 == pytest.approx(np.mean(z**3), rel=1e-11, abs=1e-13)
    assert m4 == pytest.approx(np.mean(z**4), rel=1e-11)


def test_gaussian_noise_is_standard_normal_in_bulk():
    # 4e6 draws: the sample mean/variance have se 5e-4 / 7e-4; 6 se bands
    # (seeded; another seed leaves them with probability ~4e-9).
    Z = vk.gaussian_noise(rng.key_from_seed(8, rng.STREAM_NOISE), 4000, 1000)
    z = Z * vk.NOISE_GRID
    assert abs(z.mean()) < 6 * 5e-4
    assert abs(z.var() - 1) < 6 * 7.1e-4
    assert np.abs(z).max() < 6.77  # the 32-bit radius bounds |z| by sqrt(66 ln 2) = 6.764


# ---------------------------------------------------------------------------
# DropConnect kernel
# ---------------------------------------------------------------------------


def test_dropconnect_kernel_matches_reference_integers():
    # Small integers: every per-row sum is exact in any order.
    w = np.array([[1.0, -2.0, 3.0, 4.0, -5.0], [2.0, 2.0, -1.0, 0.0, 7.0], [-3.0, 1.0, 1.0, 1.0, 1.0]])
    x = np.array([1.0, 2.0, -1.0, 3.0, 1.0])
    N = 300
    sim = simulate_variant(x, p=0.4, variant="dropconnect", weight=w, samples=N, seed=31, start=9)
    m = rng.bernoulli_mask(rng.key_from_seed(31), 0.6, w.size, N, 9).reshape(N, 3, 5)
    g = np.einsum("soi,oi,i->so", m.astype(float), w, x)  # N x out, integers
    assert (sim.keep_counts == m.sum(axis=0)).all()
    assert (sim.keep_count_hist == np.bincount(m.reshape(N, -1).sum(axis=1), minlength=16)).all()
    assert [_exact(z) for z in sim.output_sum_z] == [Fraction(int(v)) for v in g.sum(axis=0)]
    assert [_exact(z) for z in sim.output_sumsq_z] == [Fraction(int(v)) for v in (g**2).sum(axis=0)]
    assert _exact(sim.layer_sum_z) == int(g.sum())
    y = variant_law("dropconnect", 0.4).forward(x, m, w)
    np.testing.assert_allclose(sim.mean, y.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-12)


def test_per_sample_squares_are_summed_exactly():
    # Integer inputs make every per-sample value exact in float64 in any
    # summation order, but its square needs more than 53 bits: the sums of
    # squares equal the exact integers only if the kernels add v*v exactly
    # (Dekker's TwoProduct), not the rounded float64 square.
    g_ = np.random.default_rng(77)
    w = g_.integers(-(2**30), 2**30, size=(3, 5)).astype(np.float64)
    x = g_.integers(1, 8, size=5).astype(np.float64)
    N = 200
    sim = simulate_variant(x, p=0.4, variant="dropconnect", weight=w, samples=N, seed=6)
    m = rng.bernoulli_mask(rng.key_from_seed(6), 0.6, w.size, N).reshape(N, 3, 5)
    gi = np.einsum("soi,oi,i->so", m.astype(np.int64), w.astype(np.int64), x.astype(np.int64)).astype(object)
    assert [_exact(z) for z in sim.output_sumsq_z] == [Fraction(int(v)) for v in (gi**2).sum(axis=0)]
    assert _exact(sim.layer_sumsq_z) == int((gi.sum(axis=1) ** 2).sum())
    # Gaussian: per-sample Σ_u x_u z_u with z = Z 2**-26 on the grid
    xg = np.array([3.0, -5.0, 7.0])
    sg = simulate_variant(xg, p=0.3, variant="gaussian", samples=N, seed=6)
    Z = vk.gaussian_noise(rng.key_from_seed(6, rng.STREAM_NOISE), 3, N)
    t = (Z @ xg.astype(np.int64)).astype(object)  # per-sample sums in units of 2**-26
    assert _exact(sg.layer_sum_z) == Fraction(int(t.sum()), 2**26)
    assert _exact(sg.layer_sumsq_z) == Fraction(int((t**2).sum()), 2**52)


def test_dropconnect_kernel_matches_reference_floats():
    g_ = np.random.default_rng(12)
    w = g_.normal(size=(4, 37))
    x = g_.normal(size=37) * 10.0 ** g_.integers(-3, 3, size=37)
    N = 500
    sim = simulate_variant(x, p=0.2, variant="dropconnect", weight=w, samples=N, seed=4)
    m = rng.bernoulli_mask(rng.key_from_seed(4), 0.8, w.size, N).reshape(N, 4, 37)
    y = variant_law("dropconnect", 0.2).forward(x, m, w)
    # each per-row sum is rounded once in a vectorised order: 1e-12 relative
    # to sum |W x| is a wide margin
    tol = 1e-12 * np.abs(w * x).sum(axis=1) / 0.8
    assert np.all(np.abs(sim.mean - y.mean(axis=0)) <= tol)
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-9)


# ---------------------------------------------------------------------------
# bit-identical threads and exact shard merges
# ---------------------------------------------------------------------------

_CASES = [
    ("standard", "element", None),
    ("alpha", "channel", None),
    ("inverted", "sample", None),
    ("gaussian", "element", None),
    ("gaussian", "channel", None),
    ("dropconnect", "element", (6, 29)),
]


def _case_input(variant, structure, wshape, seed=17):
    g = np.random.default_rng(seed)
    if variant == "dropconnect":
        return g.normal(size=wshape[1]), g.normal(size=wshape)
    shape = {"element": (5, 41), "channel": (3, 4, 5), "sample": (6, 7)}[structure]
    return g.normal(size=shape), None


@pytest.mark.parametrize("variant,structure,wshape", _CASES)
def test_bit_identical_for_1_and_2_threads(variant, structure, wshape):
    x, w = _case_input(variant, structure, wshape)
    kw = dict(p=0.35, variant=variant, structure=structure, weight=w, samples=20011, seed=123)
    a = simulate_variant(x, threads=1, **kw)
    b = simulate_variant(x, threads=2, **kw)
    assert a == b


@pytest.mark.parametrize("variant,structure,wshape", _CASES)
@pytest.mark.parametrize("split", [(1, 999), (4000, 2345)])
def test_shards_merge_exactly(variant, structure, wshape, split):
    x, w = _case_input(variant, structure, wshape)
    a, b = split
    kw = dict(p=0.2, variant=variant, structure=structure, weight=w, seed=2024)
    whole = simulate_variant(x, samples=a + b, **kw)
    first = simulate_variant(x, samples=a, threads=1, **kw)
    second = simulate_variant(x, samples=b, start=a, threads=2, **kw)
    assert first.merge(second) == whole
    assert second.merge(first) == whole
    # ...and a tampered shard is caught by ==
    if whole.keep_counts is not None:
        kc = whole.keep_counts.copy()
        kc.ravel()[0] += 1
        assert dataclasses.replace(whole, keep_counts=kc) != whole
    else:
        assert dataclasses.replace(whole, layer_sum_z=whole.layer_sum_z + 1) != whole


def test_merge_rejects_mismatches():
    a = simulate_variant([1.0, 2.0], p=0.5, variant="gaussian", samples=10, seed=1)
    with pytest.raises(ValueError, match="adjacent"):
        a.merge(simulate_variant([1.0, 2.0], p=0.5, variant="gaussian", samples=10, seed=1, start=11))
    with pytest.raises(ValueError, match="`p`"):
        a.merge(simulate_variant([1.0, 2.0], p=0.4, variant="gaussian", samples=10, seed=1, start=10))
    with pytest.raises(ValueError, match="`variant`"):
        a.merge(simulate_variant([1.0, 2.0], p=0.5, variant="standard", samples=10, seed=1, start=10))


def test_to_dict_round_trip_is_exact():
    for variant, structure, wshape in _CASES:
        x, w = _case_input(variant, structure, wshape)
        s = simulate_variant(x, p=0.3, variant=variant, structure=structure, weight=w, samples=300, seed=2)
        assert VariantSimulation.from_dict(s.to_dict()) == s


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(x=[1.0, 2.0], variant="gaussian", p=1.0), "variant 'gaussian' is undefined at p = 1.*p/q"),
        (dict(x=[1.0, 2.0], variant="alpha", keep=0.0), "variant 'alpha' is undefined at p = 1"),
        (dict(x=[1.0, 2.0], variant="dropconnect", p=1.0, weight=np.ones((2, 2))), "variant 'dropconnect' is undefined"),
        (dict(x=[1.0, 2.0], variant="dropconnect", p=0.5, weight=np.ones((2, 3))), "weight/data shape mismatch"),
        (dict(x=[1.0, 2.0], variant="dropconnect", p=0.5, weight=np.ones(2)), "2-D matrix"),
        (dict(x=[1.0, 2.0], variant="dropconnect", p=0.5), "needs `weight`"),
        (dict(x=[1.0, 2.0], variant="dropconnect", p=0.5, weight=[[1.0, np.inf]]), "`weight` must be finite"),
        (dict(x=[1.0, np.nan], variant="gaussian", p=0.5), "`x` must be finite"),
        (dict(x=[1.0, 2.0], variant="standard", p=0.5, weight=np.ones((1, 2))), "only used by variant 'dropconnect'"),
        (dict(x=np.ones(3), variant="inverted", structure="channel", p=0.5), "structure 'channel'"),
        (dict(x=np.float64(2.0), variant="gaussian", structure="sample", p=0.5), "structure 'sample'"),
        (dict(x=np.ones(3), variant="dropconnect", structure="channel", p=0.5, weight=np.ones((1, 3))),
         "variant 'dropconnect' draws one mask entry per weight"),
        (dict(x=[1.0], variant="concrete", p=0.5), "`variant` must be one of"),
        (dict(x=[1.0], variant="gaussian", p=0.5, keep=0.5), "not both"),
    ],
)
def test_bad_input(kwargs, match):
    x = kwargs.pop("x")
    with pytest.raises(ValueError, match=match):
        simulate_variant(x, samples=10, seed=0, **kwargs)


def test_p0_and_p1_edges():
    x = np.array([1.5, -2.0])
    for v in ("standard", "gaussian", "alpha"):
        s = simulate_variant(x, p=0.0, variant=v, samples=50, seed=0)
        np.testing.assert_array_equal(s.mean, x)  # every variant is the identity at p = 0
        assert np.all(s.var == 0)
    s = simulate_variant(x, p=1.0, variant="standard", samples=50, seed=0)
    assert np.all(s.mean == 0) and s.keep_counts.sum() == 0
