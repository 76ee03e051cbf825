"""The mean and variance checks of an audit, from the streamed per-element moments.

* ``mean``: the inverse-variance weighted pooled relative bias
  ``sum_e w_e (mean(y_e)/mu_e - 1) / sum_e w_e`` with ``w_e = mu_e**2/sd_e**2``
  (for inverted dropout every ``w_e`` is ``q/p``: the plain average of
  ``y/x - 1``, where a multiplicative bias cannot cancel between signs), a
  test with its exact null law (units sharing one draw add up coherently):
  normal for Gaussian dropout, and for two-point laws a weighted sum of
  independent binomial keep counts (normal where trusted, else its exact-CGF
  Chernoff bound); and per unit, the exact binomial test of its keep count
  (on the two-point support a unit's mean is a function of its keep count)
  or, for Gaussian dropout, the z-test of each element's mean.  Pooled and
  per-unit parts are combined by Bonferroni (``2 min(p)``), the per-unit
  p-values by Bonferroni/Holm.
* ``variance``: the pooled mean of ``z**2 = ((y - mu)/sd)**2`` equals 1:
  exactly an affine function of the number of dropped draws (binomial) for
  two-point laws, ``chi2(N)/N`` for Gaussian dropout.

Both allow a rounding band ``eta`` of the output dtype (e.g. ``1.2e-7``
relative for float32): a correct float32 dropout rounds its scale ``1/q`` to
float32, a real but harmless bias that a large enough budget would
otherwise flag.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ..checks import PendingCheck
from ..stats.binomial import clopper_pearson, two_sided_binom_p
from ..stats.multiple import holm
from ..stats.normal import bonferroni_normal_interval, two_sided_pvalues
from ..stats.tails import BernoulliSum, TailModel, band_z_test

__all__ = ["mean_weights", "check_mean", "check_variance"]


def mean_weights(law, S: int):
    """``(c, v1)``: pooled-bias coefficients ``c_e`` and its null variance per call."""
    sd = law.sd
    w = np.where(sd > 0, (law.mu / np.where(sd > 0, sd, 1.0)) ** 2, 0.0)
    W = float(w.sum())
    c = np.where(law.mu != 0, w / (np.where(law.mu != 0, law.mu, 1.0) * W), 0.0)
    g = (c * sd * law.sign).reshape(-1, S).sum(axis=1)
    return c, float(np.dot(g, g))


def _pooled_mean_pvalue(law, c: np.ndarray, S: int, C: int, delta: float, eta: float) -> tuple[float, str]:
    """P-value of the pooled relative bias of a two-point law, valid for any ``p``.

    On the two-point support ``y_e - mu_e = (kept_e - drop) (m_u - q)`` with
    ``m_u`` the keep indicator of the unit of ``e``, so the pooled bias is
    ``delta = sum_u beta_u (k_u - C q)``, ``beta_u = sum_{e in u} c_e (kept_e -
    drop) / C``: a weighted sum of independent Binomial(C, q) keep counts,
    whose CGF is known exactly.  The normal tail is used where the Edgeworth
    criterion trusts it (exact cumulants); otherwise (few dropped, or few
    kept, draws in all: a Poisson-like count) the exact-CGF Chernoff bound.
    The rounding band ``eta`` is taken off ``|delta|`` first, as in
    :func:`band_z_test`.
    """
    beta = (c * (law.kept_value - law.drop_value)).reshape(-1, S).sum(axis=1) / C
    bs = BernoulliSum.grouped(beta, law.q, C)
    var, k3, k4 = bs.cumulants()
    if var <= 0.0:
        return (1.0 if abs(delta) <= eta else 0.0), "bound"
    neg = bs.negated()
    model = TailModel(var, k3 / var**1.5, k4 / var**2, [bs.tail], [neg.tail])
    return model.pvalue(delta, eta)


def check_mean(st, law, S: int, eta: float, tolerance: float | None, alpha_check: float) -> tuple[PendingCheck, dict]:
    C = st.calls
    md = st.moments.mean
    c, v1 = mean_weights(law, S)
    delta = float(np.dot(c, md))
    se = math.sqrt(v1 / C)
    z, p_pool = band_z_test(delta, se, 0.0, eta)
    pool_method = "normal"
    if law.two_point:
        p_pool, pool_method = _pooled_mean_pvalue(law, c, S, C, delta, eta)
    nu = st.n_units
    if law.two_point:
        pu = two_sided_binom_p(st.ucount, C, law.q)
    else:
        se_e = law.sd / math.sqrt(C)
        ze = md / se_e
        pu = two_sided_pvalues(ze)
    n_tests = pu.size
    worst = int(np.argmin(pu))
    p_unit = float(min(1.0, n_tests * pu[worst]))
    pvalue = float(min(1.0, 2.0 * min(p_pool, p_unit)))
    rel = np.where(law.mu != 0, md / np.where(law.mu != 0, law.mu, 1.0), 0.0)
    rel_u = rel.reshape(nu, S).mean(axis=1)
    coef = np.where(law.mu != 0, law.sd * law.sign / np.where(law.mu != 0, law.mu, 1.0), 0.0)
    se_u = np.abs(coef.reshape(nu, S).mean(axis=1)) / math.sqrt(C)
    if law.two_point:
        worst_rel = float(st.ucount[worst] / (C * law.q) - 1.0)
    else:
        worst_rel = float(rel[worst])

    band = None
    extra_fail = False
    if tolerance:
        tol = max(tolerance, eta)
        band = (1.0 - tol, 1.0 + tol)
        # one unit whose own (Bonferroni) interval lies outside the band fails
        if p_unit <= alpha_check / 2.0:
            lvl = 1.0 - alpha_check / (2.0 * n_tests)
            if law.two_point:
                lo, hi = clopper_pearson(int(st.ucount[worst]), C, lvl)
                lo, hi = lo / law.q - 1.0, hi / law.q - 1.0
            else:
                ci = bonferroni_normal_interval(worst_rel, float(se_u[worst]))(lvl)
                lo, hi = ci.low, ci.high
            extra_fail = hi < -tol or lo > tol
    what = "keep count (exact binomial)" if law.two_point else "mean (z-test)"
    pend = PendingCheck(
        name="mean", pvalue=pvalue, estimate=1.0 + delta, expected=1.0, statistic=z,
        detail=(f"pooled relative mean E[y]/E_law[y] = {1 + delta:.7g} (bias {delta:+.3g}, "
                f"se {se:.2g}; inverse-variance weighted, so signs cannot cancel), "
                f"p={p_pool:.2g}{' (Chernoff bound: sparse mask)' if pool_method == 'bound' else ''}; "
                f"per {'unit' if S > 1 else 'element'} {what}, worst "
                f"#{worst} (relative bias {worst_rel:+.3g}), Bonferroni p={p_unit:.2g} "
                f"over {n_tests}."),
        interval=bonferroni_normal_interval(1.0 + delta, se),
        extra={"relative_bias": delta, "standard_error": se, "pvalue_pooled": p_pool,
               "pooled_method": pool_method,
               "pvalue_per_unit": p_unit, "worst_unit": worst, "rounding_band": eta},
        band=band, extra_fail=extra_fail,
        holm_inside=lambda a: holm(pu, a).n_rejected,
    )
    if np.allclose(se_u, se_u[0], rtol=1e-9, atol=0):
        se_out = float(se_u[0])
    else:
        se_out = se_u
    per = {"relative_bias": rel_u, "relative_bias_se": se_out,
           "keep_rate": (st.ucount / C) if law.two_point else None, "pvalues": pu}
    return pend, per


def _variance_pvalue(law, est: float, N: int, eta: float) -> float:
    """Exact p-value of the pooled ``mean(z**2) = 1`` over ``N`` independent draws.

    Two-point laws: ``z**2`` is ``p/q`` for a kept unit and ``q/p`` for a
    dropped one, so ``est = p/q + (q/p - p/q) D / N`` with ``D ~
    Binomial(N, p)`` the dropped units: the test is an exact binomial tail
    (the normal with the kurtosis' variance is far off when ``N p`` or
    ``N q`` is small).  Gaussian dropout: ``N est ~ chi2(N)`` exactly.  The
    rounding band ``eta`` is taken off ``|est - 1|`` first; two-sided by
    doubling the tail on the observed side.
    """
    e = est - 1.0
    excess = abs(e) - eta
    if not excess > 0.0:
        return 1.0
    p, q = law.p, law.q
    if law.two_point:
        slope = (q / p - p / q) / N  # d est / d D
        if slope == 0.0:  # p = 1/2: every draw has z**2 = 1
            return 0.0
        dD = excess / abs(slope)
        mean = N * p
        if (e > 0) == (slope > 0):
            tail = float(sps.binom.sf(math.ceil(mean + dD - 1e-6) - 1, N, p))
        else:
            tail = float(sps.binom.cdf(math.floor(mean - dD + 1e-6), N, p))
    else:
        if e > 0:
            tail = float(sps.chi2.sf(N * (est - eta), N))
        else:
            tail = float(sps.chi2.cdf(N * (est + eta), N))
    return float(min(1.0, 2.0 * tail))


def check_variance(st, law, eta: float) -> PendingCheck:
    C = st.calls
    sd = law.sd
    ok = sd > 0
    md = st.moments.mean
    m2 = st.moments.m2
    z2 = (m2[ok] / C + md[ok] ** 2) / sd[ok] ** 2
    est = float(np.mean(z2))
    kurt = law.kurtosis
    se = math.sqrt(max(kurt - 1.0, 0.0) / (st.n_units * C))
    z, _ = band_z_test(est, se, 1.0, eta)
    pv = _variance_pvalue(law, est, st.n_units * C, eta)
    law_txt = {"inverted": "x^2 p/q", "alpha": "a^2 p q (x - alpha')^2", "gaussian": "x^2 p/q",
               "standard": "x^2 p q", "dropconnect": "(v_k W_ik)^2 p/q"}[law.variant]
    return PendingCheck(
        name="variance", pvalue=pv, estimate=est, expected=1.0, statistic=z,
        detail=(f"pooled Var[y]/({law_txt}) = {est:.6g} (mean of ((y - E y)/sd)^2 over "
                f"{ok.sum():,} elements x {C:,} calls; null sd {se:.2g} from the kurtosis "
                f"{kurt:.3g} of the law; p={pv:.2g}, "
                + ("exact binomial in the dropped draws" if law.two_point else "exact chi-square")
                + ")."),
        interval=bonferroni_normal_interval(est, se),
        extra={"standard_error": se, "rounding_band": eta},
    )
