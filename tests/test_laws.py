"""The law checks' multiple-testing plumbing against slow, obviously-correct references.

Per-element checks judge the worst element with a Bonferroni factor (number of
elements) and report a simultaneous interval; ``decide_families`` keeps the
laws and the negative controls in separate Holm families.  Everything here is
a deterministic function of a seeded simulation: no assertion can flake.
"""

import numpy as np
import pytest
from scipy import stats as sps

import mcdrop
from mcdrop.checks import PendingCheck, decide_families
from mcdrop.checks.masks import check_keep_rate_per_unit
from mcdrop.checks.moments import check_mean_per_output
from mcdrop.checks.per_unit import worst_z_check

N_EL, SAMPLES, SEED = 16, 2000, 90210


@pytest.fixture(scope="module")
def sim():
    x = np.linspace(-3.0, 5.0, N_EL) + 0.25  # nonzero
    return mcdrop.simulate(x, p=0.3, samples=SAMPLES, seed=SEED)


def test_mean_per_element_is_bonferroni_over_elements(sim):
    # reference: y/x = m / q per sample, z-test of mean 1 per element, by hand
    k = sim.keep_counts.ravel().astype(float)
    q, N = sim.q, sim.samples
    mean = k / (N * q)
    se = np.sqrt(k * (N - k) / (N * (N - 1.0)) / q**2 / N)
    pe = 2 * sps.norm.sf(np.abs((mean - 1) / se))
    w = int(np.argmin(pe))
    pc = check_mean_per_output(sim, sim.sampled_law)
    # the check tests y = x (y/x): the same z per element; rtol: float64 rounding only
    xw = float(sim.x.ravel()[w])
    assert pc.pvalue == pytest.approx(min(1.0, N_EL * pe[w]), rel=1e-9)
    assert pc.extra["worst"] == w and pc.estimate == pytest.approx(xw * mean[w], rel=1e-12)
    level = 0.95
    h = sps.norm.ppf(1 - (1 - level) / (2 * N_EL)) * se[w] * abs(xw)  # simultaneous over N_EL elements
    ci = pc.interval(level)
    assert (ci.low, ci.high) == pytest.approx((xw * mean[w] - h, xw * mean[w] + h), rel=1e-9)


def test_keep_rate_per_element_is_bonferroni_over_elements(sim):
    k = sim.keep_counts.ravel()
    N, q = sim.samples, sim.q
    pe = np.minimum(1, 2 * np.minimum(sps.binom.cdf(k, N, q), sps.binom.sf(k - 1, N, q)))
    w = int(np.argmin(pe))
    pc = check_keep_rate_per_unit(sim.keep_counts, sim.samples, sim.q)
    assert pc.pvalue == pytest.approx(min(1.0, N_EL * pe[w]), rel=1e-9)
    assert pc.extra["worst_element"] == w
    # Clopper-Pearson at the simultaneous level 1 - (1 - 0.95) / N_EL
    lvl = 1 - 0.05 / N_EL
    lo = sps.beta.ppf((1 - lvl) / 2, k[w], N - k[w] + 1)
    hi = sps.beta.isf((1 - lvl) / 2, k[w] + 1, N - k[w])
    ci = pc.interval(0.95)
    assert (ci.low, ci.high) == pytest.approx((lo, hi), rel=1e-7)


def test_zero_variance_elements_are_exact():
    # p = 0: every y equals x, se = 0; the right scale passes (p = 1), a wrong one fails (p = 0)
    s0 = mcdrop.simulate([1.0, -2.0, 3.0], p=0.0, samples=50, seed=1)
    law = s0.sampled_law
    assert check_mean_per_output(s0, law).pvalue == 1.0
    assert check_mean_per_output(s0.with_law(law.replace(scale=2.0)), law).pvalue == 0.0


def _pc(name, pvalue):
    return PendingCheck(name=name, pvalue=pvalue, estimate=None, expected=None, detail="")


def test_decide_families_keeps_laws_and_controls_apart():
    groups = [
        ("a", False, [_pc("a1", 1e-9), _pc("a2", 0.5)]),
        ("ctrl", True, [_pc("c1", 1e-9), _pc("c2", 0.02), _pc("c3", 0.9)]),
        ("b", False, [_pc("b1", 0.02)]),
    ]
    decided, m_laws = decide_families(groups, 0.05)
    assert m_laws == 3 and list(decided) == ["a", "b", "ctrl"]
    # laws: Holm over 3 -> 1e-9 <= 0.05/3, then 0.02 <= 0.05/2, then 0.5 > 0.05.
    # (Pooled with the controls, m = 6: 0.02 > 0.05/4 and both 0.02 checks would pass.)
    assert [c.verdict for c in decided["a"]] == ["fail", "pass"]
    assert [c.verdict for c in decided["b"]] == ["fail"]
    assert all(c.alpha == pytest.approx(0.05 / 3) for c in decided["a"] + decided["b"])
    # controls: their own family of 3 at the same alpha
    assert [c.verdict for c in decided["ctrl"]] == ["fail", "fail", "pass"]
    assert all(c.alpha == pytest.approx(0.05 / 3) for c in decided["ctrl"])
    assert [c.name for c in decided["ctrl"]] == ["c1", "c2", "c3"]


def test_worst_z_check_tolerance_floor_and_worst_unit():
    est = np.array([1.0, 1.0 + 1e-13, 0.5, 2.0])
    se = np.array([0.0, 0.0, 0.25, 1.0])
    pc = worst_z_check("v", est, [1.0, 1.0, 1.0, 1.5], se, lambda w: f"#{w}", tol=1e-12, floor=0.0)
    # exact units within tol pass; z = -2 (unit 2) beats z = 0.5 (unit 3)
    assert pc.extra == {"worst": 2} and pc.detail == "#2" and pc.statistic == pytest.approx(-2.0)
    assert pc.pvalue == pytest.approx(4 * 2 * sps.norm.sf(2.0), rel=1e-12)
    assert pc.interval(0.9).low == 0.0  # 0.5 - z * 0.25 < 0, floored
    # without the tolerance the 1e-13 deviation of an exact unit is a certain failure
    strict = worst_z_check("v", est, [1.0, 1.0, 1.0, 1.5], se, lambda w: "")
    assert strict.extra == {"worst": 1} and strict.pvalue == 0.0
