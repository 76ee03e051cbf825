"""Weight scaling vs MC averaging: the MLP kernel against NumPy, exact merges, the laws."""

import numpy as np
import pytest

from mcdrop import rng
from mcdrop.suites.inference_gap import ACTIVATIONS, MLP, default_mlp, simulate_mlp, verify_inference_gap


def _masks(net, x, p, N, seed, start=0):
    d, H = x.size, net.W1.shape[0]
    m = rng.bernoulli_mask(rng.key_from_seed(seed), 1 - p, d + H, N, start).astype(float)
    return m[:, :d], m[:, d:]


@pytest.mark.parametrize("p", [0.0, 0.3, 0.7])
def test_kernel_matches_numpy_reference(p):
    net, x = default_mlp(seed=4, d_in=5, hidden=7)
    N = 300
    sim = simulate_mlp(net, x, p, samples=N, seed=12, start=3)
    m1, m2 = _masks(net, x, p, N, 12, 3)
    zbar, zvar = sim.z_mean_var()
    for act in ACTIVATIONS:
        z, h, out = net.forward(x, m1, m2, act, p)
        # the kernel forms each value in another order: 1e-12 relative (+ tiny absolute)
        np.testing.assert_allclose(zbar, z.mean(0), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(zvar, z.var(0, ddof=1), rtol=1e-9, atol=1e-13)
        hm, hv = sim.h_mean_var(act)
        np.testing.assert_allclose(hm, h.mean(0), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(hv, h.var(0, ddof=1), rtol=1e-9, atol=1e-13)
        om, ov = sim.out_mean_var(act)
        assert om == pytest.approx(out.mean(), rel=1e-12, abs=1e-13)
        assert ov == pytest.approx(out.var(ddof=1), rel=1e-9, abs=1e-13)


def test_bit_identical_threads_and_exact_shards():
    net, x = default_mlp(seed=1, d_in=6, hidden=5)
    a = simulate_mlp(net, x, 0.4, samples=3001, seed=2, threads=1)
    b = simulate_mlp(net, x, 0.4, samples=3001, seed=2, threads=2)
    assert a == b
    s1 = simulate_mlp(net, x, 0.4, samples=1000, seed=2, threads=2)
    s2 = simulate_mlp(net, x, 0.4, samples=2001, seed=2, start=1000, threads=1)
    assert s1.merge(s2) == a and s2.merge(s1) == a
    # shards of other networks, inputs or seeds do not merge
    net2 = MLP(net.W1 * 2, net.b1, net.w2, net.b2)
    with pytest.raises(ValueError, match="`net`"):
        s1.merge(simulate_mlp(net2, x, 0.4, samples=10, seed=2, start=1000))
    with pytest.raises(ValueError, match="`x`"):
        s1.merge(simulate_mlp(net, x + 1, 0.4, samples=10, seed=2, start=1000))
    with pytest.raises(ValueError, match="`key`"):
        s1.merge(simulate_mlp(net, x, 0.4, samples=10, seed=3, start=1000))
    with pytest.raises(ValueError, match="adjacent"):
        s1.merge(simulate_mlp(net, x, 0.4, samples=10, seed=2, start=1001))


def test_linear_exact_relu_jensen_lipschitz():
    net, x = default_mlp(seed=7)
    p, N = 0.5, 40000
    sim = simulate_mlp(net, x, p, samples=N, seed=3)
    mu = net.pre_activation(x)
    zbar, zvar = sim.z_mean_var()
    # linear layer: every unit within 5.5 se of W x + b (Bonferroni over 32 units at ~1e-6)
    assert np.all(np.abs(zbar - mu) <= 5.5 * np.sqrt(zvar / N))
    # the exact sd of z matches the sample sd (relative se sqrt(2/N) ~ 0.7%; 5%)
    np.testing.assert_allclose(np.sqrt(zvar), net.z_sd(x, p), rtol=0.05)
    hm, hv = sim.h_mean_var("relu")
    gap = hm - np.maximum(mu, 0)
    se = np.sqrt(hv / N)
    assert np.all(gap >= -5.5 * se)  # E relu(z) >= relu(E z)
    assert np.any(gap > 10 * se)  # and strictly larger where z straddles 0
    assert np.all(np.abs(gap) <= net.z_sd(x, p) + 5.5 * se)  # |gap| <= 1 * sd(z)
    om, ov = sim.out_mean_var("identity")
    assert abs(om - net.eval_output(x, "identity")) <= 5.5 * np.sqrt(ov / N)


def test_verify_inference_gap_quick():
    # Seeded: deterministic.  Laws at alpha = 1e-6 (Holm), so another seed
    # would fail a correct build with probability <= 1e-6.
    r = verify_inference_gap(seed=99, quick=True, p_grid=(0.1, 0.5))
    assert r.passed, str(r)
    ctrl = [row for s in r.sections if s.control for row in s.rows]
    # quick budget: only the ReLU network's gap is large enough to be a certain control
    assert {row.check.name for row in ctrl} == {"relu: E[out] = eval"}
    assert all(row.check.verdict == "fail" for row in ctrl)
    assert any(m["name"].startswith("relu p=0.5") for m in r.measurements)
    # The Lipschitz bounds are loose (gaps are 1-10% of them), so a wrong bound
    # would still pass the one-sided tests: compare the bounds the checks use
    # with L sd(z) estimated from the sampled pre-activations of the same
    # network (20000 samples: sd to ~0.5%; 3% is > 6 se).
    net, x = default_mlp(rng.child_seed(np.random.SeedSequence(99), 0))
    for p in (0.1, 0.5):
        _, zvar = simulate_mlp(net, x, p, samples=20_000, seed=1).z_mean_var()
        rows = {row.check.name: row.check for s in r.sections if s.name == f"p{p:g}" for row in s.rows}
        for act, L in (("relu", 1.0), ("tanh", 1.0), ("sigmoid", 0.25)):  # sup |f'|
            out = rows[f"{act}: |out gap| <= bound"]
            assert out.expected == pytest.approx(np.sum(np.abs(net.w2) * L * np.sqrt(zvar)), rel=0.03), act
            unit = rows[f"{act}: |unit gap| <= L sd(z)"]
            assert unit.expected == pytest.approx(L * np.sqrt(zvar[unit.extra["worst"]]), rel=0.03), act


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MLP(np.ones(3), np.ones(3), np.ones(3), 0.0), "2-D matrix"),
        (lambda: MLP(np.ones((3, 2)), np.ones(2), np.ones(3), 0.0), "weight shape mismatch"),
        (lambda: MLP(np.ones((3, 2)), np.ones(3), np.ones(3), float("nan")), "`b2` must be finite"),
        (lambda: simulate_mlp(MLP(np.ones((3, 2)), np.ones(3), np.ones(3), 0.0), np.ones(4), 0.5, samples=5),
         "weight/data shape mismatch"),
        (lambda: simulate_mlp(MLP(np.ones((3, 2)), np.ones(3), np.ones(3), 0.0), np.ones(2), 1.0, samples=5),
         "undefined at p = 1"),
        (lambda: simulate_mlp(MLP(np.ones((3, 2)), np.ones(3), np.ones(3), 0.0), [1.0, np.inf], 0.5, samples=5),
         "`x` must be finite"),
    ],
)
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sample_indices_must_stay_below_2_63():
    net, x = default_mlp(seed=4, d_in=5, hidden=7)
    with pytest.raises(ValueError, match=r"`start \+ samples` must be below 2\*\*63"):
        simulate_mlp(net, x, 0.3, samples=10, start=2**63 - 5)
