"""mcdrop.verify: the laws pass on the reference, the classic mistakes are caught."""

import dataclasses
import json

import numpy as np
import pytest

import mcdrop
from mcdrop import checks
from mcdrop.checks.moments import check_variance_per_output
from mcdrop import VerifyResult


@pytest.fixture(scope="module")
def small_verify() -> VerifyResult:
    # Small budget (1e6 seed samples, 2e4 per sweep point): every law check
    # has a fixed seed, so the outcome is deterministic.
    return mcdrop.verify(samples=10**6, sweep_samples=2 * 10**4, seed=20241126)


def test_passes_and_controls_fail(small_verify):
    r = small_verify
    assert r.passed, str(r)
    laws_rows = [row for s in r.sections if not s.control for row in s.rows]
    ctrl_rows = [row for s in r.sections if s.control for row in s.rows]
    assert laws_rows and all(row.check.verdict == "pass" for row in laws_rows)
    assert ctrl_rows and all(row.check.verdict == "fail" for row in ctrl_rows)
    names = {s.name for s in r.sections}
    assert {"main", "control_no_rescale", "control_divide_by_p", "control_no_rescale_main"} <= names
    assert {f"sweep_p{p:g}" for p in mcdrop.suites.verification.SWEEP_P} <= names


def test_seed_example_numbers(small_verify):
    main = small_verify.simulations["main"]
    assert main.x.tolist() == [2.0, 4.0, 6.0, 8.0] and main.q == 0.5
    row = next(r for r in small_verify.rows if r.section == "seed example" and r.check.name == "mean_layer")
    assert row.check.expected == 5.0
    assert 5.0 in row.check.confidence_interval
    ctrl = next(r for r in small_verify.rows
                if r.section.endswith("no rescale") and r.section.startswith("seed") and r.check.name == "mean_layer")
    # without rescaling the layer mean converges to q * 5 = 2.5
    assert ctrl.check.estimate == pytest.approx(2.5, abs=0.02)


def test_family_wise_alpha_split(small_verify):
    r = small_verify
    m = r.n_law_checks
    for row in r.rows:
        if row.expect == "pass":
            assert row.check.alpha == pytest.approx(r.alpha / m)
    assert all(s.detectable_bias is not None for s in r.sections if not s.control and 0 < s.q)


def test_same_seed_same_result():
    a = mcdrop.verify(samples=10**5, sweep_samples=10**4, seed=7, threads=1).to_dict()
    b = mcdrop.verify(samples=10**5, sweep_samples=10**4, seed=7, threads=2).to_dict()
    for d in (a, b):
        d.pop("elapsed_s")
        for s in d["simulations"].values():
            s["info"] = {}
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_user_input_and_keep():
    r = mcdrop.verify(x=[1.0, -3.0, 0.5], keep=0.8, samples=10**5, sweep=False, controls=False, seed=1)
    assert r.passed
    assert r.sections[0].title == "your input" and r.simulations["main"].q == 0.8


def test_p1_is_checked_as_zero_output():
    r = mcdrop.verify(x=[1.0, 2.0], p=1.0, samples=1000, sweep=False, controls=False, seed=1)
    names = [c.name for c in r.checks]
    assert "zero_output" in names and "mean_layer" not in names
    assert r.passed


def _tampered(sim, factor):
    # a "kernel" whose keep counts are off by `factor` (rounded to integers)
    kc = np.round(sim.keep_counts * factor).astype(np.int64)
    return dataclasses.replace(sim, keep_counts=kc)


@pytest.mark.parametrize("factor", [0.995, 1.005])
def test_a_biased_keep_rate_fails(factor):
    sim = mcdrop.simulate(np.linspace(1, 2, 64), p=0.3, samples=10**5, seed=5)
    done = checks.decide(checks.law_checks(_tampered(sim, factor)), 1e-6)
    by = {c.name: c for c in done}
    # 0.5% of 6.4e6 draws at q=0.7: z ~ 28 -> certain rejection at 1e-6
    assert by["keep_rate"].verdict == "fail"
    assert by["mean_relative"].verdict == "fail"
    clean = {c.name: c for c in checks.decide(checks.law_checks(sim), 1e-6)}
    assert all(c.verdict == "pass" for c in clean.values())


def test_a_wrong_variance_law_fails():
    # Gaussian-dropout-style mistake: claim Var[y/x] = p (not p/q)
    sim = mcdrop.simulate(np.ones(16), p=0.3, samples=10**5, seed=6)
    good = check_variance_per_output(sim, sim.sampled_law)
    assert good.pvalue > 1e-6
    # a scale so that the two-point variance cannot equal p/q at all: no root, p-value 0
    bad = check_variance_per_output(sim.with_law(sim.sampled_law.replace(scale=1.0)), sim.sampled_law)
    assert bad.pvalue == 0.0


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(alpha=0.0), ValueError, "`alpha`"),
        (dict(alpha=1.0), ValueError, "`alpha`"),
        (dict(samples=0), ValueError, "`samples`"),
        (dict(p=2.0), ValueError, "`p`"),
        (dict(p=0.2, keep=0.8), ValueError, "not both"),
        (dict(x=[]), ValueError, "`x`"),
        (dict(x=[1.0, float("nan")]), ValueError, "`x`"),
        (dict(threads=0), ValueError, "`threads`"),
        (dict(sweep_samples=-1), ValueError, "`sweep_samples`"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mcdrop.verify(**kwargs)


def test_str_and_json(small_verify, tmp_path):
    text = str(small_verify)
    assert "PASS" in text and "keep_rate" in text and "detects a relative mean bias" in text
    out = tmp_path / "v.json"
    small_verify.to_json(out)
    d = json.loads(out.read_text())
    assert d["type"] == "mcdrop.VerifyResult" and d["verdict"] == "pass"
    assert d["environment"]["mcdrop"] == mcdrop.__version__ and d["environment"]["cpu_threads"] >= 1
    assert {"numpy", "numba", "scipy", "python", "machine"} <= set(d["environment"])
    assert mcdrop.Simulation.from_dict(d["simulations"]["main"]) == small_verify.simulations["main"]
    # every section's record: its verdict (controls are as expected when they fail) and rows
    assert any(s["control"] for s in d["sections"])
    for rec, sec in zip(d["sections"], small_verify.sections, strict=True):
        assert rec["name"] == sec.name and rec["as_expected"] is sec.as_expected is True
        assert [c["verdict"] for c in rec["checks"]] == [r.check.verdict for r in sec.rows]
    assert "fail" in [c["verdict"] for s in d["sections"] if s["control"] for c in s["checks"]]
    # a section with one row against its expectation records as_expected False
    sec = small_verify.sections[0]
    flipped = dataclasses.replace(sec.rows[0], expect="fail")
    assert dataclasses.replace(sec, rows=(flipped, *sec.rows[1:])).to_dict()["as_expected"] is False
