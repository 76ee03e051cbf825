"""The stream-2 mask kernel against a slow, obviously-correct NumPy reference.

``tests/stream2_reference.py`` computes the same layout independently: a
textbook NumPy Philox4x32-10, all 32 bit-planes of every (block, element),
the 64 lanes' 32-bit uniforms assembled from them, ``mask = U < thr``, and
the per-sample layer sums in exact rationals.  The kernel must agree exactly:
keep counts, histogram, ``Σ S``, ``Σ S²`` and the trace, for any thread
count, batch or shard split (including shards that start inside a
64-sample block).
"""

from fractions import Fraction

import numpy as np
import pytest

import mcdrop
import stream2_reference as ref
from mcdrop import rng
from mcdrop.core import bitplane, fixedpoint
from mcdrop.core.accumulators import EMIN
from mcdrop.core.stream import trace_grid

KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_the_reference_philox_is_philox(counter, key, expected):
    # the reference is independent of the Numba Philox: both meet Random123's known answers
    assert [int(v) for v in ref.philox_np(*counter, *key)] == expected
    assert rng.philox4x32(counter, key).tolist() == expected


def _reference(x, q, samples, seed, start=0):
    key = rng.key_from_seed(seed, rng.STREAM_MASK_V2)
    return ref.simulate_reference(x, rng.keep_threshold(q), key, start, samples, trace_grid(start, start + samples))


def _same(sim, want):
    assert (np.asarray(sim.keep_counts).ravel() == want["keep_counts"]).all()
    assert (sim.keep_count_hist == want["keep_count_hist"]).all()
    assert (sim.layer_sum_z, sim.layer_sumsq_z) == (want["layer_sum_z"], want["layer_sumsq_z"])
    assert (tuple(sim.trace_t), tuple(sim.trace_sum_z), tuple(sim.trace_sumsq_z)) == (
        want["trace_t"], want["trace_sum_z"], want["trace_sumsq_z"])


@pytest.mark.parametrize("q", [0.7, 0.3, 0.5, 0.75, 0.999999, 1e-9, 0.0, 1.0, 2**-32, 1 - 2**-32])
def test_masks_equal_the_reference(q):
    # block indices near 2**33: the counter's high word is exercised
    key = rng.key_from_seed(11, rng.STREAM_MASK_V2)
    got = bitplane.stream2_masks(key, q, 45, 6 * 64 - 10, 64 * (2**33 - 3) + 5)
    want = ref.masks_v2(key, rng.keep_threshold(q), 45, 2**33 - 3, 6)  # [block, element, lane]
    want = want.transpose(0, 2, 1).reshape(-1, 45)[5: 5 + 6 * 64 - 10]
    assert np.array_equal(got, want)


def test_plane_masks_stop_after_the_lowest_set_bit():
    assert bitplane.plane_masks(2**31)[1] == 1          # q = 0.5: one plane decides every lane
    assert bitplane.plane_masks(rng.keep_threshold(0.7))[1] == 32
    assert bitplane.plane_masks(0)[1] == 0 and bitplane.plane_masks(2**32)[1] == -1


XS = {
    "seed4": np.array([2.0, 4.0, 6.0, 8.0]),
    "f32_13": np.random.default_rng(1).normal(size=13).astype(np.float32).astype(np.float64),
    "f64_70": np.random.default_rng(2).normal(size=70),  # two fixed-point windows
    "extreme": np.array([1e-100, -1e100, 3.3e50, 0.0, -7e-20, 1.0 + 2**-52, 1e-99]),
    "one": np.array([-1.5]),
}


@pytest.mark.parametrize("name", list(XS))
@pytest.mark.parametrize("start,samples", [(0, 130), (37, 200), (64 * 5 + 63, 66)])
def test_simulate_equals_the_reference_exactly(name, start, samples):
    x = XS[name]
    want = _reference(x, 0.7, samples, 5, start)
    for T in (1, 2):
        _same(mcdrop.simulate(x, p=0.3, samples=samples, seed=5, start=start, threads=T), want)


@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_degenerate_and_one_plane_rates(q):
    x = np.arange(1, 14, dtype=np.float64)
    _same(mcdrop.simulate(x, keep=q, samples=300, seed=1234, start=17), _reference(x, q, 300, 1234, 17))


def test_large_layer_chunks_against_the_reference():
    x = np.random.default_rng(3).normal(size=bitplane.CHUNK + 37)  # several element chunks a block
    _same(mcdrop.simulate(x, p=0.7, samples=100, seed=9, start=10, threads=2), _reference(x, 0.3, 100, 9, 10))


def test_fixed_point_windows_are_exact():
    g = np.random.default_rng(0)
    for x in [g.normal(size=500), g.normal(size=50) * 10.0 ** g.integers(-100, 100, size=50),
              np.array([1e-100, 1e100]), np.zeros(3)]:
        d, E = fixedpoint.split_windows(x, check=True)
        assert d.shape == (len(E), x.size)
    # float32 activations need one window, full float64 data two
    assert len(fixedpoint.split_windows(XS["f32_13"])[1]) == 1
    assert len(fixedpoint.split_windows(XS["f64_70"])[1]) == 2


def test_derived_statistics_match_materialised_outputs():
    x = np.array([2.0, 4.0, 6.0, 8.0])
    sim = mcdrop.simulate(x, keep=0.5, samples=2000, seed=5)
    mask, y = sim.materialise()
    assert mask.shape == (2000, 4) and (mask.sum(axis=0) == sim.keep_counts).all()
    np.testing.assert_array_equal(y, np.where(mask, x / 0.5, 0.0))
    np.testing.assert_allclose(sim.mean, y.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sim.var, y.var(axis=0, ddof=1), rtol=1e-12)
    lm = y.mean(axis=1)
    assert sim.layer_mean.mean == pytest.approx(lm.mean(), rel=1e-14)
    assert sim.layer_mean.var == pytest.approx(lm.var(ddof=1), rel=1e-12)
    tr = sim.trace
    for n_, m_, sd_ in zip(tr["samples"], tr["mean"], tr["sd"]):
        assert m_ == pytest.approx(lm[:n_].mean(), rel=1e-13)
        if n_ > 1:
            assert sd_ == pytest.approx(lm[:n_].std(ddof=1), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("n", [4, 64, 1000, 2100])
def test_threads_batches_and_shards_are_bit_identical(n):
    x = np.random.default_rng(n).normal(size=n)
    S = 20_000 if n <= 64 else 3000
    whole = mcdrop.simulate(x, p=0.3, samples=S, seed=3, threads=1)
    for T in (2,):
        assert mcdrop.simulate(x, p=0.3, samples=S, seed=3, threads=T) == whole
    calls = []  # a progress callback cuts the run into many kernel calls
    assert mcdrop.simulate(x, p=0.3, samples=S, seed=3, threads=2, progress=calls.append) == whole
    for cut in (1, 63, 64, 1000, S - 5):  # shards starting inside a 64-sample block
        a = mcdrop.simulate(x, p=0.3, samples=cut, seed=3, threads=2)
        b = mcdrop.simulate(x, p=0.3, samples=S - cut, seed=3, start=cut, threads=1)
        assert a.merge(b) == whole and b.merge(a) == whole


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
    # layer=False (the benchmark's like-for-like kernel): the same counts and histogram, no sums
    x = np.arange(1, n + 1, dtype=np.float64)
    key = rng.key_from_seed(77, rng.STREAM_MASK_V2)
    plan = bitplane.MaskPlan(x, 0.6)
    out = {layer: bitplane.run_mask_planes(plan, key, 5, 700, 2, layer=layer) for layer in (True, False)}
    want = _reference(x, 0.6, 700, 77, 5)
    for layer in (True, False):
        assert (out[layer]["keep_counts"] == want["keep_counts"]).all()
        assert (out[layer]["keep_count_hist"] == want["keep_count_hist"]).all()
    assert out[True]["layer_sum_z"] == want["layer_sum_z"] and out[False]["layer_sum_z"] == 0


@pytest.mark.parametrize("q,bits", [(0.7, 8.606), (0.5, 2.0)])
def test_random_bits_per_draw(q, bits):
    # the bits the kernel consumes: 128 per Philox call; at q = 0.7 four eager calls per
    # 64 draws (8 bits) plus lazy ones; at q = 0.5 one plane decides every lane
    x = np.ones(1024)
    stats = {}
    bitplane.run_mask_planes(bitplane.MaskPlan(x, q), rng.key_from_seed(1, rng.STREAM_MASK_V2), 0, 64 * 200, 1,
                             trace=False, stats=stats)
    assert stats["philox_calls"] * 128 / (64 * 200 * 1024) == pytest.approx(bits, abs=0.02)


def test_exact_sums_for_a_worst_case_mean():
    # mean 2e8 times the spread: the layer variance is still exact (no rounding anywhere)
    x = np.full(3, 1e8) + np.array([0.0, 0.5, -0.5])
    sim = mcdrop.simulate(x, p=0.5, samples=5000, seed=3)
    mask, _ = sim.materialise()
    S = [sum(Fraction(v) for v in x[row]) for row in mask]
    assert Fraction(sim.layer_sum_z, 1 << -EMIN) == sum(S)
    assert Fraction(sim.layer_sumsq_z, 1 << -EMIN) == sum(s * s for s in S)


def test_canonical_hidden_units_draw_from_the_key_in_every_unit():
    """A model-site unit whose mask the output hides (x = 0 everywhere) gets a fresh
    Bernoulli draw: word u % 4 of Philox block (call, u // 4) under the site's key, for
    every unit, also when units are written as two elements (out_unit_size=2).  A kernel
    that overwrote the key after the first unit drew from another stream from then on."""
    from mcdrop.core.fold_kernels import canonical_two_point
    from mcdrop.core.rng import keep_threshold, philox4x32

    rows, n_units, S = 3, 10, 4
    xs = np.zeros((rows, n_units * S), dtype=np.float32)
    ys = np.zeros_like(xs)
    q, key = 0.5, (0x12345678, 0x9ABCDEF0)
    thr = keep_threshold(q)

    def run(out_unit_size):
        width = n_units * out_unit_size
        out = np.full((rows, width), np.nan)
        stats = np.zeros(3, np.int64)
        canonical_two_point(xs, ys, rows, divide=True, q=q, a=0.0, b=0.0, drop_value=0.0, drop_tol=0.0,
                            drop_ok=True, ulps=4.0, tol_abs=0.0, mantissa=24, min_exponent=-126, unit_size=S,
                            call0=7, threshold=thr, key=key, kept_ref=np.ones(width), drop_ref=0.0, out=out,
                            stats=stats, first=np.full(2, -1, np.int64), first_val=np.zeros(3),
                            out_unit_size=out_unit_size)
        assert stats[2] == 0  # nothing shown
        return out

    expected = np.empty((rows, n_units))
    for r in range(rows):
        for u in range(n_units):
            c = 7 + r
            w = philox4x32([c & 0xFFFFFFFF, c >> 32, (u // 4) & 0xFFFFFFFF, (u // 4) >> 32], key)[u % 4]
            expected[r, u] = 1.0 if int(w) < thr else 0.0
    np.testing.assert_array_equal(run(S), np.repeat(expected, S, axis=1))
    np.testing.assert_array_equal(run(2), np.repeat(expected, 2, axis=1))


@pytest.mark.parametrize("divide", [True, False])
@pytest.mark.parametrize("drop_ok", [True, False])
def test_canonical_element_units_match_a_numpy_reading(divide, drop_ok):
    """Element units (the kernel's fast path): every output read as kept (anything finite but
    the dropped value; off the support unless within the tolerance of its kept value),
    dropped, or hidden (kept and dropped values coincide, or non-finite: then a fresh draw
    from the key), against an independent NumPy reading of the same rule."""
    from mcdrop.core.fold_kernels import canonical_two_point
    from mcdrop.core.rng import keep_threshold, philox4x32

    rng = np.random.default_rng(11)
    rows, n, q, a, b, key, call0 = 5, 64, 0.7, 1.3, 0.1, (5, 6), 3
    xs = rng.normal(size=(rows, n)).astype(np.float32)
    xs[rng.random((rows, n)) < 0.1] = 0
    kv = (xs.astype(np.float64) / q) if divide else (a * xs.astype(np.float64) + b)
    ys = np.where(rng.random((rows, n)) < q, kv, 0.0).astype(np.float32)
    ys[rng.random((rows, n)) < 0.05] *= np.float32(1.001)  # off the support (when nonzero)
    ys[rng.random((rows, n)) < 0.03] = np.nan
    ys[rng.random((rows, n)) < 0.02] = np.inf
    thr = keep_threshold(q)
    out = np.full((rows, n), -7.0)
    stats = np.zeros(3, np.int64)
    first = np.full(2, -1, np.int64)
    fv = np.zeros(3)
    canonical_two_point(xs, ys, rows, divide=divide, q=q, a=a, b=b, drop_value=0.0, drop_tol=0.0, drop_ok=drop_ok,
                        ulps=4.0, tol_abs=1e-7, mantissa=24, min_exponent=-126, unit_size=1, call0=call0,
                        threshold=thr, key=key, kept_ref=np.arange(n) + 1.0, drop_ref=-1.0, out=out, stats=stats,
                        first=first, first_val=fv)

    y = ys.astype(np.float64)
    finite = np.isfinite(y)
    rel, tiny = 2.0**-23, 2.0**-149
    tol = 4.0 * (np.maximum(np.abs(kv) * rel, tiny) if divide else
                 np.maximum.reduce([np.abs(kv) * rel, np.abs(a * xs.astype(np.float64)) * rel,
                                    np.full(kv.shape, 1e-7), np.full(kv.shape, tiny)]))
    is_drop = finite & (y == 0.0)
    is_kept = finite & (np.abs(y - kv) <= tol)
    kept = finite & ~is_drop
    dropped = is_drop & ~is_kept & drop_ok
    off = (kept & ~is_kept) | (is_drop & ~is_kept & (not drop_ok))
    hidden = ~kept & ~dropped
    draw = np.empty((rows, n), dtype=bool)
    for r in range(rows):
        c = call0 + r
        words = [philox4x32([c, 0, u, 0], key) for u in range(n // 4)]
        draw[r] = [int(words[e // 4][e % 4]) < thr for e in range(n)]
    expect_kept = kept | (hidden & draw)
    np.testing.assert_array_equal(out, np.where(expect_kept, np.arange(n) + 1.0, -1.0))
    assert stats.tolist() == [int((~finite).sum()), int(off.sum()), int((kept | dropped).sum())]
    r0, e0 = np.argwhere(off)[0]
    assert first.tolist() == [r0, e0] and fv[0] == y[r0, e0]
    assert off.sum() > 0 and hidden.sum() > 0 and dropped.sum() + (not drop_ok) > 0  # every branch is exercised
