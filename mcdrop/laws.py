"""Checks of inverted dropout's laws on a :class:`~mcdrop.Simulation`.

Each ``check_*`` function looks at one law and returns a :class:`PendingCheck`:
the estimate, its p-value under the law, and how to build its interval at a
given confidence.  The verdicts are only decided once the whole family is
known (:func:`decide`, Holm at the family-wise ``alpha``), which is how
:func:`mcdrop.verify` keeps its false-alarm bound.

``scale`` is the factor the implementation multiplies kept values by; the
correct inverted scale is ``1/q``.  Passing another scale (``1`` for "no
rescaling", ``1/p`` for "divided by p") gives the classic mistakes the same
masks, so a difference in verdict is the scale alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats as sps

from . import rng, stats
from .results import CheckResult, ConfidenceInterval
from .sampling import Simulation

__all__ = [
    "PendingCheck",
    "decide",
    "law_checks",
    "SUPPORT_SAMPLE_VALUES",
]

#: Output values materialised for the support check (samples x elements).
SUPPORT_SAMPLE_VALUES = 2**20


@dataclass
class PendingCheck:
    """A check whose verdict waits for the family's multiple-testing split."""

    name: str
    pvalue: float
    estimate: float | None
    expected: float | None
    detail: str
    interval: Callable[[float], ConfidenceInterval] | None = None
    statistic: float | None = None
    exact: bool = False  # an exact check: pvalue is 0 (violated) or 1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_test(cls, name: str, res, *, estimate, expected, detail: str, extra: dict | None = None):
        """The check of a test result ``res`` (:mod:`mcdrop.stats`): its p-value, statistic and interval."""
        return cls(
            name=name, pvalue=res.pvalue, estimate=estimate, expected=expected, detail=detail,
            interval=res.confidence_interval, statistic=res.statistic, extra=extra or {},
        )

    def finish(self, rejected: bool, alpha_check: float) -> CheckResult:
        ci = None
        if self.interval is not None:
            ci = self.interval(1.0 - alpha_check)
        return CheckResult(
            name=self.name,
            verdict="fail" if rejected else "pass",
            statistic=self.statistic if self.statistic is not None else self.estimate,
            pvalue=self.pvalue,
            confidence_interval=ci,
            detail=self.detail,
            estimate=self.estimate,
            expected=self.expected,
            alpha=alpha_check,
            extra=self.extra,
        )


def decide(pending: list[PendingCheck], alpha: float) -> list[CheckResult]:
    """Holm-correct a family of checks at family-wise level ``alpha``.

    Intervals are reported at the Bonferroni level ``1 - alpha/m`` (they hold
    simultaneously for the whole family).
    """
    if not pending:
        return []
    pv = np.array([pc.pvalue for pc in pending], dtype=np.float64)
    h = stats.holm(pv, alpha)
    alpha_check = alpha / len(pending)
    return [pc.finish(bool(r), alpha_check) for pc, r in zip(pending, h.rejected)]


def decide_families(groups, alpha: float) -> tuple[dict[str, list[CheckResult]], int]:
    """Decide named groups of checks: the laws as one family, the controls as another.

    ``groups`` is ``[(name, control, [PendingCheck, ...]), ...]``; the groups
    with ``control=False`` form one Holm family at ``alpha`` (:func:`decide`),
    those with ``control=True`` another (each control check is expected to
    fail).  Returns ``{name: [CheckResult, ...]}`` and the number of law
    checks.
    """
    decided: dict[str, list[CheckResult]] = {}
    m_laws = 0
    for control in (False, True):
        family = [(name, pcs) for name, c, pcs in groups if bool(c) == control]
        flat = [pc for _, pcs in family for pc in pcs]
        done = decide(flat, alpha)
        i = 0
        for name, pcs in family:
            decided[name] = done[i: i + len(pcs)]
            i += len(pcs)
        if not control:
            m_laws = len(flat)
    return decided, m_laws


def _z(level: float) -> float:
    return float(sps.norm.isf((1.0 - level) / 2.0))


def _two_sided_binom_p(k: np.ndarray, n: int, q: float) -> np.ndarray:
    """Central two-sided exact binomial p-values, vectorised."""
    lo = sps.binom.cdf(k, n, q)
    hi = sps.binom.sf(k - 1, n, q)
    return np.minimum(1.0, 2.0 * np.minimum(lo, hi))


def _exact(name: str, ok: bool, detail: str, estimate=None, expected=None, extra=None) -> PendingCheck:
    return PendingCheck(
        name=name,
        pvalue=1.0 if ok else 0.0,
        estimate=estimate,
        expected=expected,
        detail=detail,
        exact=True,
        extra=extra or {},
    )


# ---------------------------------------------------------------------------
# per-element tests: the worst element, Bonferroni over elements
# ---------------------------------------------------------------------------


def _worst(pe: np.ndarray) -> tuple[int, float]:
    """Index of the smallest p-value and its Bonferroni-adjusted value."""
    w = int(np.argmin(pe))
    return w, float(min(1.0, pe.size * pe[w]))


def _z_pvalues(diff: np.ndarray, se: np.ndarray, exact_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scores ``diff / se`` and their two-sided normal p-values.

    Where ``se`` is 0 the value is deterministic: z is 0 where ``exact_ok``
    (the difference is allowed) and infinite (p-value 0) elsewhere.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, np.where(exact_ok, 0.0, np.inf))
    return z, np.minimum(1.0, 2.0 * sps.norm.sf(np.abs(z)))


def _bonferroni_interval(est: float, se: float, n: int, level: float, floor: float | None = None):
    """Normal interval ``est ± z se`` at the level ``level`` shares with ``n`` intervals (Bonferroni)."""
    h = _z(1 - (1 - level) / n) * se
    low = est - h if floor is None else max(floor, est - h)
    return ConfidenceInterval(low, est + h, level)


def worst_z_check(
    name: str,
    est: np.ndarray,
    expected,
    se: np.ndarray,
    detail: Callable[[int], str],
    *,
    tol: float = 0.0,
    floor: float | None = None,
    extra_key: str = "worst",
) -> PendingCheck:
    """One check from per-unit z-tests of ``est = expected``: the worst unit, Bonferroni over units.

    ``se`` is each unit's standard error; where it is 0 the unit is exact
    (passes iff ``|est - expected| <= tol``).  ``detail(w)`` describes the
    worst unit ``w``; the interval is :func:`_bonferroni_interval` (bounded
    below by ``floor``) and ``extra`` is ``{extra_key: w}``.
    """
    est = np.asarray(est, dtype=np.float64)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), est.shape)
    diff = est - expected
    z, pe = _z_pvalues(diff, se, np.abs(diff) <= tol)
    w, p_check = _worst(pe)
    n = pe.size
    est_w, se_w = float(est[w]), float(se[w])
    return PendingCheck(
        name=name,
        pvalue=p_check,
        estimate=est_w,
        expected=float(expected[w]),
        detail=detail(w),
        interval=lambda level: _bonferroni_interval(est_w, se_w, n, level, floor),
        statistic=float(z[w]),
        extra={extra_key: w},
    )


def _rate_roots(disc: float) -> set[float]:
    """The keep rates r in [0, 1] with ``1 - 4 r (1 - r) = disc`` (the roots of a two-point variance law)."""
    sq = math.sqrt(max(disc, 0.0))
    return {min(max((1 - sq) / 2, 0.0), 1.0), min(max((1 + sq) / 2, 0.0), 1.0)}


def _two_point_variance_interval(k: int, N: int, n: int, c2: float, level: float) -> ConfidenceInterval:
    """Image of the keep rate's Clopper-Pearson interval (Bonferroni over ``n``) under ``v(r) = c2 r (1 - r)``."""
    lo_r, hi_r = stats.clopper_pearson(k, N, 1 - (1 - level) / n)
    vals = [c2 * r * (1 - r) for r in (lo_r, hi_r)]
    hi = c2 / 4 if lo_r <= 0.5 <= hi_r else max(vals)
    return ConfidenceInterval(min(vals), hi, level)


# ---------------------------------------------------------------------------
# keep rate
# ---------------------------------------------------------------------------


def check_keep_rate(sim: Simulation) -> PendingCheck:
    """Pooled keep rate over all draws: exact binomial test of rate = q."""
    kept = int(sim.keep_counts.sum())
    trials = sim.samples * sim.n
    res = stats.keep_rate_test(kept, trials, sim.q)
    return PendingCheck(
        name="keep_rate",
        pvalue=res.pvalue,
        estimate=res.statistic,
        expected=sim.q,
        detail=f"{kept} of {trials} draws kept; exact binomial test of rate = q = {sim.q:g}.",
        interval=lambda level: res.confidence_interval(level, method="exact"),
    )


def check_keep_rate_per_element(sim: Simulation) -> PendingCheck:
    """Every element's keep rate = q (exact binomial, Bonferroni over elements)."""
    k = sim.keep_counts.ravel()
    n_el = k.size
    N = sim.samples
    if sim.q in (0.0, 1.0):
        ok = bool(np.all(k == N * sim.q))
        return _exact(
            "keep_rate_per_element",
            ok,
            f"q = {sim.q:g}: every element must be {'kept' if sim.q else 'dropped'} in every sample.",
            estimate=float(k.min() / N if sim.q else k.max() / N),
            expected=sim.q,
        )
    pe = _two_sided_binom_p(k, N, sim.q)
    worst, p_check = _worst(pe)
    kw = int(k[worst])
    return PendingCheck(
        name="keep_rate_per_element",
        pvalue=p_check,
        estimate=kw / N,
        expected=sim.q,
        detail=(
            f"worst of {n_el} elements (#{worst}): {kw} of {N} kept; "
            f"exact binomial, Bonferroni over elements."
        ),
        interval=lambda level: stats.clopper_pearson(kw, N, 1 - (1 - level) / n_el),
        extra={"worst_element": worst},
    )


# ---------------------------------------------------------------------------
# mean
# ---------------------------------------------------------------------------


def _ratio_moments(sim: Simulation, scale: float):
    """Per-element mean and unbiased variance of ``y/x = scale * m``."""
    N = sim.samples
    k = sim.keep_counts.ravel().astype(np.float64)
    mean = scale * k / N
    var = scale**2 * k * (N - k) / (N * (N - 1.0)) if N > 1 else np.full_like(k, np.nan)
    return mean, var


def check_mean_layer(sim: Simulation, scale: float) -> PendingCheck:
    """Mean over samples of the per-sample layer mean = mean(x) (CLT z-test)."""
    lm = sim.layer_mean
    factor = scale * sim.q if sim.q > 0 else 0.0  # sim's layer stats use scale 1/q
    est = lm.mean * factor
    se = lm.standard_error * abs(factor)
    expected = float(np.mean(sim.x))
    res = stats.mean_test(est, se, expected)
    return PendingCheck.from_test(
        "mean_layer",
        res,
        estimate=est,
        expected=expected,
        detail=(
            f"per-sample layer mean (mean over the {sim.n} outputs) averaged over "
            f"{sim.samples} samples; CLT z-test of E = mean(x)."
        ),
    )


def check_mean_relative(sim: Simulation, scale: float) -> PendingCheck:
    """Pooled relative bias ``Σ|x| (ȳ/x) / Σ|x|`` = 1 (CLT z-test).

    Weighting by |x| (not summing y - x) keeps a multiplicative bias from
    cancelling between positive and negative inputs.
    """
    mean, var = _ratio_moments(sim, scale)
    w = np.abs(sim.x.ravel())
    w = w / w.sum()
    est = float(np.sum(w * mean))
    se = float(math.sqrt(np.sum(w * w * var) / sim.samples))
    res = stats.mean_test(est, se, 1.0)
    return PendingCheck.from_test(
        "mean_relative",
        res,
        estimate=est,
        expected=1.0,
        detail="|x|-weighted mean of y/x over all elements and samples; CLT z-test of E[y/x] = 1.",
    )


def check_mean_per_element(sim: Simulation, scale: float) -> PendingCheck:
    """Every element's mean ``E[y_e] = x_e`` (z-tests on y/x, Bonferroni)."""
    mean, var = _ratio_moments(sim, scale)
    n_el = mean.size
    N = sim.samples
    return worst_z_check(
        "mean_per_element", mean, 1.0, np.sqrt(var / N),
        lambda w: (
            f"worst of {n_el} elements (#{w}): mean of y/x = {mean[w]:.6g}; "
            f"z-test of E[y/x] = 1, Bonferroni over elements."
        ),
        extra_key="worst_element",
    )


# ---------------------------------------------------------------------------
# variance
# ---------------------------------------------------------------------------


def _two_point_variance_pvalues(k: np.ndarray, N: int, scale: float, q: float, sigma2: float) -> np.ndarray:
    """Exact p-values of the sample variance of a two-point variable.

    For ``y/x = scale * m`` the unbiased sample variance is a function of the
    keep count alone, ``f(K) = c K (N - K)`` with ``c = scale² / (N (N-1))``,
    and ``E[f(K)] = sigma2`` under the law.  The p-value is
    ``P(|f(K) - sigma2| >= |f(k) - sigma2|)`` for ``K ~ Binomial(N, q)``:
    exact, and right even at q = 1/2 where the delta method breaks down
    (the first-order term of ``r (1 - r)`` vanishes there).
    """
    c = scale * scale / (N * (N - 1.0))
    kf = k.astype(np.float64)
    d = np.abs(c * kf * (N - kf) - sigma2)

    def cdf(x):  # P(K <= x), x float
        return sps.binom.cdf(np.floor(x), N, q)

    def sf(x):  # P(K >= x)
        return sps.binom.sf(np.ceil(x) - 1, N, q)

    # f(K) >= sigma2 + d  <=>  K in [r1, r2] (roots of c K (N-K) = A)
    a_hi = sigma2 + d
    disc = N * N - 4.0 * a_hi / c
    sq = np.sqrt(np.maximum(disc, 0.0))
    r1, r2 = (N - sq) / 2.0, (N + sq) / 2.0
    slack = 1e-9 * N  # roots are rounded; count the boundary count as "as extreme"
    p_mid = np.where(disc >= 0, np.clip(cdf(r2 + slack) - cdf(r1 - slack - 1), 0.0, 1.0), 0.0)
    # f(K) <= sigma2 - d  <=>  K <= r3 or K >= r4
    a_lo = sigma2 - d
    disc2 = N * N - 4.0 * a_lo / c
    sq2 = np.sqrt(np.maximum(disc2, 0.0))
    r3, r4 = (N - sq2) / 2.0, (N + sq2) / 2.0
    p_tails = np.where(a_lo >= 0, cdf(r3 + slack) + sf(r4 - slack), 0.0)
    return np.minimum(1.0, p_mid + p_tails)


def check_variance_per_element(sim: Simulation, scale: float) -> PendingCheck:
    """Every element's ``Var[y_e] = x_e² p/q`` (exact two-point test on y/x, Bonferroni)."""
    _, var = _ratio_moments(sim, scale)
    p, q, N = sim.p, sim.q, sim.samples
    sigma2 = p / q
    k = sim.keep_counts.ravel()
    n_el = var.size
    # Outputs are two-point {0, scale*x}; the law Var = p/q then pins the keep
    # rate r to the roots of scale² r (1 - r) = p/q (r = q or p for the correct
    # scale).  The null is composite: take the largest exact p-value over the
    # roots; with no root the law cannot hold at this scale (p-value 0).
    disc = 1.0 - 4.0 * sigma2 / scale**2
    if disc < 0:
        pe = np.zeros(n_el)
    else:
        pe = np.max([_two_point_variance_pvalues(k, N, scale, r, sigma2) for r in _rate_roots(disc)], axis=0)
    worst, p_check = _worst(pe)
    v_w = float(var[worst])
    kw = int(k[worst])

    def interval(level: float) -> ConfidenceInterval:
        return _two_point_variance_interval(kw, N, n_el, scale**2, level)

    return PendingCheck(
        name="variance_per_element",
        pvalue=p_check,
        estimate=v_w,
        expected=sigma2,
        detail=(
            f"worst of {n_el} elements (#{worst}): Var[y/x] = {v_w:.6g} vs p/q = {sigma2:.6g}; "
            "exact test (the two-point sample variance is a function of the keep count), "
            "Bonferroni over elements."
        ),
        interval=interval,
        extra={"worst_element": worst},
    )


def check_layer_variance(sim: Simulation, scale: float) -> PendingCheck:
    """``Var[L] = Σ x² (p/q) / n²`` for the per-sample layer mean L (independent masks)."""
    lm = sim.layer_mean
    factor = scale * sim.q
    est = lm.var * factor**2
    p, q, n = sim.p, sim.q, sim.n
    c = sim.x.ravel() / (q * n)  # L = Σ c_e m_e
    sigma2 = float(np.sum(c * c) * p * q)
    # fourth central moment of a sum of independent scaled Bernoullis, via cumulants
    k4 = float(np.sum(c**4) * q * p * (1 - 6 * q * p))
    mu4 = k4 + 3 * sigma2**2
    res = stats.variance_test(
        est, sim.samples, sigma2, fourth_central_moment=max(mu4, sigma2**2), method="delta"
    )
    return PendingCheck.from_test(
        "layer_variance",
        res,
        estimate=est,
        expected=sigma2,
        detail=(
            "variance over samples of the per-sample layer mean vs "
            "sum(x^2) (p/q) / n^2 (what independent masks give); delta-method z-test."
        ),
    )


# ---------------------------------------------------------------------------
# support, distribution, dispersion
# ---------------------------------------------------------------------------


def materialised_outputs(sim: Simulation, scale: float, values: int = SUPPORT_SAMPLE_VALUES):
    """Outputs ``y = x * m * scale`` for the first samples of the stream.

    With the correct scale this is exactly what the reference computes,
    ``y = x * m / q`` (float64).  Returns an array of shape
    ``(samples, *x.shape)`` with at most ``values`` entries.
    """
    n_s = max(1, min(sim.samples, values // max(sim.n, 1)))
    key = np.array(sim.key, dtype=np.uint32)
    mask = rng.bernoulli_mask(key, sim.q, sim.n, n_s, sim.start).reshape((n_s,) + sim.x.shape)
    if scale == (1.0 / sim.q if sim.q else 0.0):
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(mask, sim.x / sim.q, 0.0) if sim.q else np.zeros(mask.shape)
    else:
        y = sim.x * mask * scale
    return y


def check_support(sim: Simulation, scale: float) -> PendingCheck:
    """Every output is 0 or ``x/q`` (within 4 ulp); exact check on a batch."""
    y = materialised_outputs(sim, scale)
    target = 1.0 / sim.q if sim.q else 0.0
    res = stats.support_test(y, sim.x, target, ulps=4)
    ok = res.n_off_support == 0 and bool(np.all(np.isfinite(y)))
    return PendingCheck(
        name="support",
        pvalue=1.0 if ok else 0.0,
        estimate=float(res.n_off_support),
        expected=0.0,
        detail=(
            f"{res.n_off_support} of {res.n_values} materialised outputs are neither 0 "
            f"nor x/q (4-ulp tolerance)."
        ),
        exact=True,
        statistic=float(res.n_off_support),
        extra={"examples": res.examples} if hasattr(res, "examples") else {},
    )


def _binom_gof(hist: np.ndarray, n: int, q: float, samples: int) -> tuple[float, float, int]:
    """Chi-square goodness of fit of a keep-count histogram to Binomial(n, q).

    Cells with expected count < 5 are pooled into their neighbours (tails).
    Returns (statistic, p-value, degrees of freedom).
    """
    kk = np.arange(n + 1)
    pmf = sps.binom.pmf(kk, n, q)
    exp = pmf * samples
    # pool tails from both ends until each pooled cell expects >= 5
    cells_obs, cells_exp = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(hist.tolist(), exp.tolist()):
        acc_o += o
        acc_e += e
        if acc_e >= 5:
            cells_obs.append(acc_o)
            cells_exp.append(acc_e)
            acc_o = acc_e = 0.0
    if cells_obs:
        cells_obs[-1] += acc_o
        cells_exp[-1] += acc_e
    else:
        return 0.0, 1.0, 0
    o = np.array(cells_obs)
    e = np.array(cells_exp)
    if len(o) < 2:
        return 0.0, 1.0, 0
    chi2 = float(np.sum((o - e) ** 2 / e))
    df = len(o) - 1
    return chi2, float(sps.chi2.sf(chi2, df)), df


def check_keep_count_distribution(sim: Simulation) -> PendingCheck:
    """Per-sample keep count ~ Binomial(n, q) (independent elements)."""
    hist = sim.keep_count_hist
    if sim.q in (0.0, 1.0):
        target = sim.n if sim.q else 0
        ok = int(hist[target]) == sim.samples
        return _exact(
            "keep_count_distribution", ok, f"q = {sim.q:g}: every sample keeps exactly {target}."
        )
    chi2, pv, df = _binom_gof(hist, sim.n, sim.q, sim.samples)
    mean_k = float(np.dot(np.arange(hist.size), hist) / sim.samples)
    return PendingCheck(
        name="keep_count_distribution",
        pvalue=pv,
        estimate=mean_k,
        expected=sim.n * sim.q,
        statistic=chi2,
        detail=(
            f"histogram of the number kept per sample vs Binomial({sim.n}, {sim.q:g}); "
            f"chi-square, {df} dof (cells pooled to >= 5 expected)."
        ),
    )


def check_element_dispersion(sim: Simulation) -> PendingCheck:
    """Keep counts across elements are binomially dispersed (no rate heterogeneity)."""
    k = sim.keep_counts.ravel()
    if sim.q in (0.0, 1.0) or k.size < 2:
        ok = bool(np.all(k == sim.samples * sim.q)) if sim.q in (0.0, 1.0) else True
        return _exact("element_dispersion", ok, "dispersion of keep counts across elements.")
    res = stats.dispersion_test(k, sim.samples, sim.q)
    return PendingCheck.from_test(
        "element_dispersion",
        res,
        estimate=res.statistic,
        expected=1.0,
        detail=(
            f"dispersion index of the {k.size} per-element keep counts "
            "(1 for independent Bernoulli draws); chi-square, two-sided."
        ),
    )


def check_zero_output(sim: Simulation, scale: float) -> PendingCheck:
    """p = 1: every output is exactly 0 (and finite)."""
    y = materialised_outputs(sim, scale)
    ok = bool(np.all(y == 0)) and bool(np.all(np.isfinite(y)))
    return _exact(
        "zero_output",
        ok and int(sim.keep_counts.sum()) == 0,
        "p = 1: every output must be exactly 0 (not NaN); E[y] = x cannot hold.",
        estimate=float(np.count_nonzero(y)),
        expected=0.0,
    )


def law_checks(sim: Simulation, scale: float | None = None, *, mask_checks: bool = True) -> list[PendingCheck]:
    """All law checks of inverted dropout on ``sim``, with output ``scale``.

    ``mask_checks=False`` leaves out the checks that look only at the masks
    (keep rate, distribution, dispersion) — for negative controls, which
    share the reference masks and differ only in the scale.
    """
    if scale is None:
        scale = sim.scale
    out: list[PendingCheck] = []
    if mask_checks:
        out += [
            check_keep_rate(sim),
            check_keep_rate_per_element(sim),
            check_keep_count_distribution(sim),
            check_element_dispersion(sim),
        ]
    if sim.q == 0.0:
        out.append(check_zero_output(sim, scale))
        return out
    if sim.q == 1.0:
        # p = 0: every mask keeps everything, so y must equal x exactly; the
        # per-element check is exact here (zero variance) and the pooled
        # float summaries would only add rounding.
        out += [check_mean_per_element(sim, scale), check_support(sim, scale)]
        return out
    out += [
        check_mean_layer(sim, scale),
        check_mean_relative(sim, scale),
        check_mean_per_element(sim, scale),
        check_support(sim, scale),
        check_variance_per_element(sim, scale),
    ]
    if sim.n > 1:  # with one element L is y itself: already covered above
        out.append(check_layer_variance(sim, scale))
    return out
