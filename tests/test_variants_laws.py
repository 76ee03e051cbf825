"""verify(variant=...): every law passes on the reference, every wrong law fails,
and every check has been seen to fail."""

import dataclasses

import numpy as np
import pytest

import mcdrop
from mcdrop.checks import controls, decide, law_checks
from mcdrop.checks.outputs import check_noise_moments, check_support, check_unit_coherence
from mcdrop import simulate as simulate_variant
from mcdrop.laws import variant_law

COMBOS = [
    ("standard", "element"),
    ("gaussian", "element"),
    ("alpha", "element"),
    ("dropconnect", "element"),
    ("inverted", "channel"),
    ("inverted", "sample"),
    ("gaussian", "channel"),
    ("alpha", "sample"),
    ("standard", "channel"),
]


@pytest.mark.parametrize("variant,structure", COMBOS)
def test_verify_variant_passes_and_controls_fail(variant, structure):
    # Small, seeded budget: deterministic outcome.  Laws at alpha = 1e-6
    # (verify's default, Holm), so another seed fails a correct build with
    # probability <= 1e-6.  The controls run on the sweep input at p = 0.3 and
    # on the main input.
    r = mcdrop.verify(variant=variant, structure=structure, samples=2 * 10**5, sweep=False,
                      sweep_samples=2 * 10**4, seed=20240607)
    assert r.passed, str(r)
    law_rows = [row for s in r.sections if not s.control for row in s.rows]
    ctrl_rows = [row for s in r.sections if s.control for row in s.rows]
    assert law_rows and all(row.check.verdict == "pass" for row in law_rows)
    assert ctrl_rows and all(row.check.verdict == "fail" for row in ctrl_rows)
    m = r.n_law_checks
    assert all(row.check.alpha == pytest.approx(r.alpha / m) for row in law_rows)
    # each law section states its power
    assert all(s.detectable_bias is not None for s in r.sections if not s.control)
    d = r.to_dict()
    assert d["variant"] == variant and d["structure"] == structure


def test_verify_default_is_unchanged():
    r = mcdrop.verify(samples=10**4, sweep=False, controls=False, seed=3)
    assert "variant" not in r.to_dict() and r.variant == "inverted"
    assert [s.name for s in r.sections] == ["main"]


def test_named_wrong_laws_fail_by_a_wide_margin():
    # The examples: AlphaDropout with b = 0; Gaussian variance p
    # instead of p/q (DropConnect: input dropout's law; structure: element-wise).
    # Seeded; alpha = 1e-6 (Holm) for the reference's passes.
    x = np.random.default_rng(5).normal(size=256)
    x = (x - x.mean()) / x.std()
    a = simulate_variant(x, p=0.3, variant="alpha", samples=2 * 10**4, seed=1)
    wrong = variant_law("alpha", 0.3).replace(b=0.0)
    done = {c.name: c for c in decide(law_checks(a, wrong), 1e-6)}
    assert done["mean_layer"].verdict == "fail" and done["mean_layer"].pvalue < 1e-100
    assert done["second_moment"].verdict == "fail"
    right = {c.name: c for c in decide(law_checks(a), 1e-6)}
    assert all(c.verdict == "pass" for c in right.values())
    g = simulate_variant(x, p=0.3, variant="gaussian", samples=2 * 10**4, seed=2)
    done = {c.name: c for c in decide(law_checks(g, g.law.replace(noise_var=0.3)), 1e-6)}
    for name in ("variance_per_element", "layer_variance", "noise_kurtosis", "noise_ks", "sign_flip_rate"):
        assert done[name].verdict == "fail", name
    # the interval of the variance excludes p by far: p/q = 0.4286 vs p = 0.3
    ci = done["layer_variance"].confidence_interval
    assert g.law.layer_var(x) in ci and 0.3 / 0.4286 * g.law.layer_var(x) not in ci


def _tamper(sim, **changes):
    return dataclasses.replace(sim, **changes)


def test_every_check_can_fail():
    """Each check fails on the broken input designed to break it (not just somewhere)."""
    failed: set[str] = set()
    seen: set[str] = set()

    def run(sim, law=None, must_fail=()):
        # seeded data and alpha = 1e-6 (Holm): the reference passes and every
        # tamper fails by a wide margin, deterministically
        pcs = law_checks(sim, law)
        seen.update(pc.name for pc in pcs)
        bad = {c.name for c in decide(pcs, 1e-6) if c.verdict == "fail"}
        missing = set(must_fail) - bad
        assert not missing, f"{sim.variant}/{sim.structure}: {sorted(missing)} did not fail"
        failed.update(bad)
        return bad

    x = np.abs(np.random.default_rng(9).normal(size=(4, 6, 3))) + 0.1
    for variant, structure in [("standard", "element"), ("alpha", "channel"), ("gaussian", "sample"),
                               ("dropconnect", "element")]:
        # W with a clear positive mean: input dropout's shared mask would correlate the outputs
        w = np.random.default_rng(1).normal(1.0, 1, size=(8, 12)) if variant == "dropconnect" else None
        xx = np.abs(np.random.default_rng(2).normal(size=12)) + 0.1 if w is not None else x
        sim = simulate_variant(xx, p=0.3, variant=variant, structure=structure, weight=w,
                               samples=2 * 10**4, seed=3)
        unit = "weight" if w is not None else structure
        out = "output" if w is not None else "element"
        assert not run(sim)  # the reference: nothing fails
        for c in controls(sim):
            if c.side == "implementation":  # the wrong law's outputs on the same draws
                run(sim.with_law(c.law), None, c.checks)
            else:  # the correct outputs against the wrong law
                run(sim, c.law, c.checks)
        if sim.keep_counts is not None:
            # a kernel whose keep rate is 0.6% too low, and one with correlated counts
            kc = sim.keep_counts.copy()
            kc = np.round(kc * 0.994).astype(np.int64)
            run(_tamper(sim, keep_counts=kc), must_fail={"keep_rate"})
            hist = np.zeros_like(sim.keep_count_hist)
            hist[[0, -1]] = sim.samples // 2
            hist[0] += sim.samples - hist.sum()
            run(_tamper(sim, keep_count_hist=hist), must_fail={"keep_count_distribution"})
            kc2 = sim.keep_counts.copy().ravel()
            kc2[::2] += 150
            kc2[1::2] -= 150
            run(_tamper(sim, keep_counts=kc2.reshape(sim.keep_counts.shape)), must_fail={f"{unit}_dispersion"})
            kc3 = sim.keep_counts.copy()
            kc3.ravel()[0] = int(0.8 * sim.q * sim.samples)  # one unit kept 20% too rarely
            # two-point variants: Var = 0.56 * 0.44 instead of 0.7 * 0.3, a real-root
            # case of the exact variance test (a wrong scale only reaches complex roots)
            run(_tamper(sim, keep_counts=kc3), must_fail={f"keep_rate_per_{unit}"} | (
                {"variance_per_element"} if sim.law.two_point else set()))
        else:
            run(_tamper(sim, noise_pow_z=(sim.noise_pow_z[0] + (1 << 1126) * sim.samples * sim.n_units // 10,
                                          sim.noise_pow_z[1])), must_fail={"noise_skewness"})
            run(sim, sim.law.replace(noise_var=sim.law.noise_var * 1.2),
                must_fail={"variance_per_element", "layer_variance", "noise_kurtosis"})
        if variant in ("standard", "dropconnect"):
            # a wrong kept value: means and variances
            run(sim, sim.law.replace(scale=2.0), must_fail={
                "mean_layer", "mean_relative", f"mean_per_{out}", f"variance_per_{out}"})
    # The support check of Gaussian outputs fails on non-finite outputs; the
    # unit-coherence check fails when a unit's elements were drawn separately.
    g = simulate_variant(x, p=0.3, variant="gaussian", structure="sample", samples=100, seed=4)
    draws, y = g.materialise(4000)
    y_bad = y.copy()
    y_bad[0, 0, 0, 0] = np.nan
    assert check_support(g, g.law, (draws, y_bad)).pvalue == 0.0
    y_el = y.copy()
    y_el[:, 0, 0, 0] *= 1.5
    assert check_unit_coherence(g, g.law, (draws, y_el)).pvalue == 0.0
    failed |= {"unit_coherence"}
    # noise skewness: a skewed noise (tampered third-moment sum) is caught
    assert any(pc.name == "noise_skewness" and pc.pvalue < 1e-9 for pc in check_noise_moments(
        _tamper(g, noise_pow_z=(g.noise_pow_z[0] + (1 << 1126) * g.samples * g.n_units * 2,
                                g.noise_pow_z[1])), g.law))
    failed.add("noise_skewness")
    assert seen <= failed, f"checks never seen failing: {sorted(seen - failed)}"


def _se(pc):
    """Standard error of a z-test check, from its two-sided 95% interval."""
    ci = pc.interval(0.95)
    return (ci.high - ci.low) / (2 * 1.959963984540054)


def test_pooled_standard_errors_match_the_spread_of_materialised_samples():
    # The pooled z-tests take their standard errors from formulas (keep counts,
    # unit structure, normal-law moments 15 and 96).  Compare each with the
    # spread of the same per-sample statistic over materialised samples of the
    # same stream: >= 4096 samples give its sd to ~1.1% (1 se) and >= 131072
    # draws the sd of z**4 to ~2%, so 15% is > 7 se (and seeded: deterministic),
    # while a wrong formula (a missing factor or moment) is off by far more.
    g = np.random.default_rng(21)
    for variant, structure, shape in (("alpha", "element", (256,)), ("alpha", "channel", (4, 8, 4, 4)),
                                      ("gaussian", "channel", (4, 8, 4, 4))):
        x = g.normal(size=shape)
        x = (x - x.mean()) / x.std() + (0.0 if variant == "alpha" else 1.0)
        sim = simulate_variant(x, p=0.3, variant=variant, structure=structure, samples=2 * 10**4, seed=5)
        checks = {pc.name: pc for pc in law_checks(sim)}
        draws, y = sim.materialise(2**21)
        y = y.reshape(y.shape[0], -1)
        assert y.shape[0] >= 4096 and draws.size >= 131072
        mu = sim.law.mean(sim.x).ravel()
        per_sample = {"mean_layer": y.mean(axis=1),
                      "mean_relative": y @ np.sign(mu) / np.abs(mu).sum()}
        if variant == "alpha":
            per_sample["second_moment"] = (y * y).mean(axis=1)
        for name, v in per_sample.items():
            assert _se(checks[name]) * np.sqrt(sim.samples) == pytest.approx(v.std(ddof=1), rel=0.15), (
                variant, structure, name)
        if variant == "gaussian":
            z = draws.ravel()
            tot = sim.samples * sim.n_units
            for name, v in (("noise_skewness", z**3), ("noise_kurtosis", z**4)):
                assert _se(checks[name]) * np.sqrt(tot) == pytest.approx(v.std(ddof=1), rel=0.15), name


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(variant="gaussian", p=1.0), "variant 'gaussian' is undefined at p = 1"),
        (dict(variant="dropconnect", x=[1.0, 2.0]), "give both `x`"),
        (dict(variant="dropconnect", x=[1.0, 2.0], weight=np.ones((3, 3))), "weight/data shape mismatch"),
        (dict(variant="standard", weight=np.ones((3, 3))), "only used by variant 'dropconnect'"),
        (dict(variant="inverted", structure="channel", x=[1.0, 2.0]), "structure 'channel'"),
        (dict(variant="alpha", x=[1.0, np.inf]), "`x` must be finite"),
        (dict(variant="bogus"), "`variant` must be one of"),
        (dict(structure="pixel"), "`structure` must be one of"),
    ],
)
def test_verify_variant_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mcdrop.verify(samples=100, sweep=False, controls=False, **kwargs)
