"""The statistical checks of :func:`mcdrop.audit`, computed from an :class:`AuditStream`.

Each ``check_*`` function returns a :class:`Pending` check (estimate,
p-value, how to build its interval) whose verdict is decided later for the
whole family (:func:`decide`): Holm at the family-wise ``alpha`` over every
check, exact checks carrying p-value 0 (violated) or 1.  With a tolerance
band the ``mean`` and ``keep_rate`` checks are judged by the three-zone
verdict instead, each with a Bonferroni share ``alpha / m`` of the budget,
and Holm runs over the others with what is left.

Null distributions used (all under "the implementation is the variant's law
with independent draws"):

* ``keep_rate``: exact binomial (:func:`mcdrop.stats.keep_rate_test`).
* ``mean``: the inverse-variance weighted pooled relative bias
  ``sum_e w_e (mean(y_e)/mu_e - 1) / sum_e w_e`` with ``w_e = mu_e**2/sd_e**2``
  (for inverted dropout every ``w_e`` is ``q/p``: the plain average of
  ``y/x - 1``, where a multiplicative bias cannot cancel between signs), a
  z-test with its exact null standard error (units sharing one draw add up
  coherently); and per unit, the exact binomial test of its keep count (on
  the two-point support a unit's mean is a function of its keep count) or,
  for Gaussian dropout, the z-test of each element's mean.  Pooled and
  per-unit parts are combined by Bonferroni (``2 min(p)``), the per-unit
  p-values by Bonferroni/Holm.
* ``variance``: the pooled mean of ``z**2 = ((y - mu)/sd)**2`` equals 1, with
  null variance ``(kurtosis - 1)`` per independent draw.
* ``dispersion``: binomial dispersion of the kept-per-call counts (across
  calls) and of the per-unit keep counts (across units), each a chi-square
  matched to the exact mean and variance of the statistic (Satterthwaite),
  which stays right when the counts are small.
* ``element_independence`` / ``call_independence``: Bonferroni over the
  offsets of z statistics with the exact permutation moments.

The mean and variance tests allow a rounding band ``eta`` of the output
dtype (e.g. ``1.2e-7`` relative for float32): a correct float32 dropout
rounds its scale ``1/q`` to float32, a real but harmless bias that a large
enough budget would otherwise flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as sps

from . import stats
from .laws import PendingCheck
from .results import CheckResult, ConfidenceInterval

__all__ = ["Pending", "decide", "exact", "not_run"]


@dataclass
class Pending(PendingCheck):
    """A :class:`~mcdrop.laws.PendingCheck` with an optional tolerance band.

    ``band = (low, high)`` switches the verdict to
    :func:`mcdrop.stats.three_zone_verdict` on the interval;
    ``extra_fail`` forces a fail whatever the band says (e.g. one unit far
    outside it).  ``verdict`` set means the check is already decided (e.g.
    ``"inconclusive"`` because it could not run).
    """

    band: tuple | None = None
    extra_fail: bool = False
    verdict: str | None = None
    holm_inside: Callable[[float], int] | None = None


def exact(name: str, ok: bool, detail: str, *, estimate=None, expected=None, extra=None) -> Pending:
    return Pending(name=name, pvalue=1.0 if ok else 0.0, estimate=estimate, expected=expected,
                   detail=detail, exact=True, statistic=estimate, extra=extra or {})


def not_run(name: str, reason: str) -> Pending:
    return Pending(name=name, pvalue=math.nan, estimate=None, expected=None,
                   detail=f"not run: {reason}", verdict="inconclusive")


def decide(pending: list[Pending], alpha: float) -> list[CheckResult]:
    """Decide a family of checks at family-wise level ``alpha``.

    Checks with a ``band`` get ``alpha/m`` each (Bonferroni) and the
    three-zone verdict on their interval at ``1 - alpha/m``; the others are
    Holm-corrected at ``alpha * (m - k)/m``.  Intervals are at the
    simultaneous level ``1 - alpha/m``.
    """
    m = len(pending)
    if m == 0:
        return []
    a_check = alpha / m
    out: list[CheckResult | None] = [None] * m
    holm_idx = [i for i, pc in enumerate(pending) if pc.band is None and pc.verdict is None]
    k_band = sum(1 for pc in pending if pc.band is not None and pc.verdict is None)
    if holm_idx:
        a_holm = alpha * (m - k_band) / m
        res = stats.holm(np.array([pending[i].pvalue for i in holm_idx]), a_holm)
        for i, rej in zip(holm_idx, res.rejected):
            out[i] = _finish(pending[i], "fail" if rej else "pass", a_check)
    for i, pc in enumerate(pending):
        if pc.verdict is not None:
            out[i] = _finish(pc, pc.verdict, None)
        elif pc.band is not None:
            ci = pc.interval(1.0 - a_check)
            v = stats.three_zone_verdict(ci, pc.band[0], pc.band[1])
            if pc.extra_fail:
                v = "fail"
            out[i] = _finish(pc, v, a_check)
    return out  # type: ignore[return-value]


def _finish(pc: Pending, verdict: str, a_check: float | None) -> CheckResult:
    ci = None
    extra = dict(pc.extra)
    if pc.interval is not None and a_check is not None:
        ci = pc.interval(1.0 - a_check)
    if pc.holm_inside is not None and a_check is not None:
        extra["units_rejected"] = int(pc.holm_inside(a_check / 2.0))
    if pc.band is not None:
        extra["band"] = [float(pc.band[0]), float(pc.band[1])]
    pvalue = None if (pc.pvalue is None or math.isnan(pc.pvalue)) else pc.pvalue
    return CheckResult(
        name=pc.name, verdict=verdict,
        statistic=pc.statistic if pc.statistic is not None else pc.estimate,
        pvalue=pvalue, confidence_interval=ci, detail=pc.detail, estimate=pc.estimate,
        expected=pc.expected, alpha=a_check, extra=_jsonable(extra),
    )


def _jsonable(d):
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, (np.integer,)):
        return int(d)
    if isinstance(d, (np.floating, float)):
        f = float(d)
        return f if math.isfinite(f) else None
    if isinstance(d, np.bool_):
        return bool(d)
    return d


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _zcrit(level: float) -> float:
    return float(sps.norm.isf((1.0 - level) / 2.0))


def band_z_test(estimate: float, se: float, expected: float, eta: float) -> tuple[float, float]:
    """Two-sided z-test of ``|estimate - expected| <= eta`` (a rounding band).

    The z statistic is the distance to the nearer edge of the band in
    standard errors (0 inside the band).  With ``se == 0`` the p-value is 1
    inside the band and 0 outside.
    """
    diff = estimate - expected
    excess = max(0.0, abs(diff) - eta)
    if se <= 0.0:
        return (0.0 if excess == 0 else math.copysign(math.inf, diff)), (1.0 if excess == 0 else 0.0)
    z = math.copysign(excess / se, diff)
    return z, float(min(1.0, 2.0 * sps.norm.sf(abs(z))))


def two_sided_binom_p(k: np.ndarray, n: int, q: float) -> np.ndarray:
    """Central two-sided exact binomial p-values, vectorised.

    Keep counts of many units take few distinct values (a few hundred around
    ``n q``), so the tails are computed once per distinct count.
    """
    u, inv = np.unique(np.asarray(k), return_inverse=True)
    lo = sps.binom.cdf(u, n, q)
    hi = sps.binom.sf(u - 1, n, q)
    return np.minimum(1.0, 2.0 * np.minimum(lo, hi))[inv.reshape(np.shape(k))]


@dataclass(frozen=True)
class Dispersion:
    """Binomial dispersion of counts with a Satterthwaite-matched chi-square."""

    index: float
    df: float
    scale: float
    pvalue: float
    pvalue_over: float
    pvalue_under: float
    m: int

    def interval(self, level: float) -> ConfidenceInterval:
        """Interval for the dispersion factor ``phi`` (1 under the null) in ``D ~ phi g chi2(h)``."""
        a = (1.0 - level) / 2.0
        dg = self.index * self.m / self.scale
        return ConfidenceInterval(dg / float(sps.chi2.isf(a, self.df)),
                                  dg / float(sps.chi2.ppf(a, self.df)), level)

    def to_dict(self) -> dict:
        return {"index": self.index, "df": self.df, "pvalue": self.pvalue,
                "pvalue_over": self.pvalue_over, "pvalue_under": self.pvalue_under, "counts": self.m}


def dispersion_from_hist(hist: np.ndarray, trials: int, q: float) -> Dispersion | None:
    """Dispersion of counts given as a histogram ``hist[k]`` over ``k = 0..trials``."""
    kk = np.arange(hist.size, dtype=np.float64)
    m = int(hist.sum())
    return _dispersion(np.sum(hist * (kk - trials * q) ** 2), m, trials, q)


def dispersion_from_counts(counts: np.ndarray, trials: int, q: float) -> Dispersion | None:
    c = counts.astype(np.float64)
    return _dispersion(float(np.sum((c - trials * q) ** 2)), int(c.size), trials, q)


def _dispersion(ss: float, m: int, t: int, q: float) -> Dispersion | None:
    """``D = sum (k - t q)**2 / (t p q)`` over ``m`` Binomial(t, q) counts.

    ``E[D] = m`` and ``Var[D] = m (2 + (1 - 6 p q)/(t p q))`` exactly; ``D``
    is referred to ``g chi2(h)`` with the same two moments
    (``g = Var/(2m)``, ``h = 2 m**2 / Var``), which is chi2(m) when
    ``t p q`` is large and stays calibrated when it is not.
    """
    p = 1.0 - q
    if m < 2 or not (0.0 < q < 1.0):
        return None
    tpq = t * p * q
    d = float(ss) / tpq
    var = m * (2.0 + (1.0 - 6.0 * p * q) / tpq)
    var = max(var, 1e-12 * m)
    g = var / (2.0 * m)
    h = 2.0 * m * m / var
    over = float(sps.chi2.sf(d / g, h))
    under = float(sps.chi2.cdf(d / g, h))
    return Dispersion(index=d / m, df=h, scale=g, pvalue=min(1.0, 2.0 * min(over, under)),
                      pvalue_over=over, pvalue_under=under, m=m)


# ---------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------


def check_keep_rate(st, law, tolerance: float | None) -> Pending:
    kept = int(st.ucount.sum())
    trials = st.calls * st.n_units
    res = stats.keep_rate_test(kept, trials, law.q)
    est = kept / trials
    band = None
    if tolerance and 0.0 < law.q < 1.0:
        band = (law.q * (1.0 - tolerance), law.q * (1.0 + tolerance))
    unit = "units" if st.S > 1 else "draws"
    return Pending(
        name="keep_rate", pvalue=res.pvalue, estimate=est, expected=law.q,
        detail=(f"{kept:,} of {trials:,} mask {unit} kept (recovered from the outputs); "
                f"exact binomial test of keep rate = q = {law.q:g}"
                + (f", relative error {est / law.q - 1:+.3g}" if law.q > 0 else "") + "."),
        interval=lambda level: res.confidence_interval(level, method="exact"),
        extra={"kept": kept, "trials": trials,
               "relative_error": (est / law.q - 1.0) if law.q > 0 else None},
        band=band,
    )


def mean_weights(law, S: int):
    """``(c, v1)``: pooled-bias coefficients ``c_e`` and its null variance per call."""
    sd = law.sd
    w = np.where(sd > 0, (law.mu / np.where(sd > 0, sd, 1.0)) ** 2, 0.0)
    W = float(w.sum())
    c = np.where(law.mu != 0, w / (np.where(law.mu != 0, law.mu, 1.0) * W), 0.0)
    g = (c * sd * law.sign).reshape(-1, S).sum(axis=1)
    return c, float(np.dot(g, g))


def check_mean(st, law, S: int, eta: float, tolerance: float | None, alpha_check: float) -> tuple[Pending, dict]:
    C = st.calls
    md = st.moments.mean
    c, v1 = mean_weights(law, S)
    delta = float(np.dot(c, md))
    se = math.sqrt(v1 / C)
    z, p_pool = band_z_test(delta, se, 0.0, eta)
    nu = st.n_units
    if law.two_point:
        pu = two_sided_binom_p(st.ucount, C, law.q)
    else:
        se_e = law.sd / math.sqrt(C)
        ze = md / se_e
        pu = np.minimum(1.0, 2.0 * sps.norm.sf(np.abs(ze)))
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

    def interval(level: float) -> ConfidenceInterval:
        h = _zcrit(level) * se
        return ConfidenceInterval(1.0 + delta - h, 1.0 + delta + h, level)

    band = None
    extra_fail = False
    if tolerance:
        tol = max(tolerance, eta)
        band = (1.0 - tol, 1.0 + tol)
        # one unit whose own (Bonferroni) interval lies outside the band fails
        if p_unit <= alpha_check / 2.0:
            lvl = 1.0 - alpha_check / (2.0 * n_tests)
            if law.two_point:
                lo, hi = stats.clopper_pearson(int(st.ucount[worst]), C, lvl)
                lo, hi = lo / law.q - 1.0, hi / law.q - 1.0
            else:
                h = _zcrit(lvl) * float(se_u[worst])
                lo, hi = worst_rel - h, worst_rel + h
            extra_fail = hi < -tol or lo > tol
    what = "keep count (exact binomial)" if law.two_point else "mean (z-test)"
    pend = Pending(
        name="mean", pvalue=pvalue, estimate=1.0 + delta, expected=1.0, statistic=z,
        detail=(f"pooled relative mean E[y]/E_law[y] = {1 + delta:.7g} (bias {delta:+.3g}, "
                f"se {se:.2g}; inverse-variance weighted, so signs cannot cancel), "
                f"p={p_pool:.2g}; per {'unit' if S > 1 else 'element'} {what}, worst "
                f"#{worst} (relative bias {worst_rel:+.3g}), Bonferroni p={p_unit:.2g} "
                f"over {n_tests}."),
        interval=interval,
        extra={"relative_bias": delta, "standard_error": se, "pvalue_pooled": p_pool,
               "pvalue_per_unit": p_unit, "worst_unit": worst, "rounding_band": eta},
        band=band, extra_fail=extra_fail,
        holm_inside=lambda a: stats.holm(pu, a).n_rejected,
    )
    if np.allclose(se_u, se_u[0], rtol=1e-9, atol=0):
        se_out = float(se_u[0])
    else:
        se_out = se_u
    per = {"relative_bias": rel_u, "relative_bias_se": se_out,
           "keep_rate": (st.ucount / C) if law.two_point else None, "pvalues": pu}
    return pend, per


def check_variance(st, law, eta: float) -> Pending:
    C = st.calls
    sd = law.sd
    ok = sd > 0
    md = st.moments.mean
    m2 = st.moments.m2
    z2 = (m2[ok] / C + md[ok] ** 2) / sd[ok] ** 2
    est = float(np.mean(z2))
    kurt = law.kurtosis
    se = math.sqrt(max(kurt - 1.0, 0.0) / (st.n_units * C))
    z, pv = band_z_test(est, se, 1.0, eta)
    law_txt = {"inverted": "x^2 p/q", "alpha": "a^2 p q (x - alpha')^2", "gaussian": "x^2 p/q"}[law.variant]
    return Pending(
        name="variance", pvalue=pv, estimate=est, expected=1.0, statistic=z,
        detail=(f"pooled Var[y]/({law_txt}) = {est:.6g} (mean of ((y - E y)/sd)^2 over "
                f"{ok.sum():,} elements x {C:,} calls; null sd {se:.2g} from the kurtosis "
                f"{kurt:.3g} of the law)."),
        interval=lambda level: ConfidenceInterval(est - _zcrit(level) * se, est + _zcrit(level) * se, level),
        extra={"standard_error": se, "rounding_band": eta},
    )


def check_dispersion(st, law) -> Pending:
    C, nu, q = st.calls, st.n_units, law.q
    a = dispersion_from_hist(st.call_hist, nu, q)
    b = dispersion_from_counts(st.ucount, C, q)
    parts = [d for d in (a, b) if d is not None]
    if not parts:
        return not_run("dispersion", "needs at least 2 calls and 2 units")
    pv = min(1.0, len(parts) * min(d.pvalue for d in parts))
    main = a if a is not None else b
    txt = []
    if a is not None:
        txt.append(f"kept per call across {C:,} calls: index {a.index:.4g} (p={a.pvalue:.2g})")
    if b is not None:
        txt.append(f"keep count per unit across {nu:,} units: index {b.index:.4g} (p={b.pvalue:.2g})")
    return Pending(
        name="dispersion", pvalue=pv, estimate=main.index, expected=1.0,
        detail=("binomial dispersion (1 for independent draws; > 1 correlated masks or unequal "
                "rates, < 1 'exactly k kept' samplers): " + "; ".join(txt) + "."),
        interval=main.interval,
        extra={"per_call": a.to_dict() if a else None, "per_unit": b.to_dict() if b else None},
    )


def check_structure(st, law, structure: str, S: int, G: int) -> Pending:
    unit = "(n, c) slice" if structure == "channel" else "sample row"
    group = "sample row (kept channels)" if structure == "channel" else "call (kept rows)"
    partial = st.partial_units
    disp = dispersion_from_hist(st.group_hist, G, law.q) if law.random else None
    if partial:
        pv = 0.0
    elif disp is not None:
        pv = disp.pvalue
    else:
        pv = 1.0
    detail = (f"the unit is the {unit} ({S} elements): {partial:,} unit-calls partly kept "
              f"(must be 0: all kept or all dropped)")
    if disp is not None:
        detail += (f"; kept units per {group} dispersion index {disp.index:.4g} (p={disp.pvalue:.2g}; "
                   f"> 1 means a bigger unit is dropped together)")
    return Pending(
        name="structure", pvalue=pv, estimate=float(partial), expected=0.0, detail=detail + ".",
        interval=None, exact=disp is None,
        extra={"partial_unit_calls": partial, "unit_size": S,
               "group_dispersion": disp.to_dict() if disp else None},
    )


def _pick_offsets(offsets: np.ndarray, z: np.ndarray, dense: int, n_log: int = 96, n_top: int = 16) -> np.ndarray:
    """Indices to report: every offset with |offset| <= dense, log-spaced others, the extremes."""
    absoff = np.abs(offsets)
    keep = absoff <= dense
    mx = int(absoff.max()) if absoff.size else 0
    if mx > dense:
        grid = np.unique(np.round(np.geomspace(dense + 1, mx, n_log)).astype(np.int64))
        keep |= np.isin(absoff, grid)
    idx = np.flatnonzero(keep)
    top = np.argsort(-np.abs(z), kind="stable")[:n_top]
    return np.unique(np.concatenate([idx, top]))


def check_element_independence(st, law, shape, S: int, alpha_check: float):
    auto = st.autocorrelation()
    if auto is None:
        return not_run("element_independence",
                       f"needs at least 4 units per call with varying masks; got {st.n_units}"), None
    offsets, corr, z, sd = auto
    pk = np.minimum(1.0, 2.0 * sps.norm.sf(np.abs(z)))
    K = offsets.size
    w = int(np.argmin(pk))
    pv = float(min(1.0, K * pk[w]))
    c_w, sd_w, k_w = float(corr[w]), float(sd[w]), int(offsets[w])
    where = _offset_text(k_w * S, shape)
    pend = Pending(
        name="element_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=float(z[w]),
        detail=(f"mask autocorrelation at every offset 1..{K} ({'units' if S > 1 else 'elements'}, "
                f"circular, FFT per call, {st.auto_calls:,} calls); worst offset {k_w} ({where}): "
                f"mean correlation {c_w:+.3g} (z={float(z[w]):.3g}), Bonferroni p={pv:.2g}."),
        interval=lambda level: ConfidenceInterval(
            c_w - float(sps.norm.isf((1 - level) / (2 * K))) * sd_w,
            c_w + float(sps.norm.isf((1 - level) / (2 * K))) * sd_w, level),
        extra={"worst_offset": k_w, "worst_offset_elements": k_w * S, "calls": st.auto_calls,
               "offsets_tested": K},
    )
    sel = _pick_offsets(offsets, z, 256)
    bound = float(sps.norm.isf(alpha_check / (2 * K))) * float(np.median(sd))
    plot = {"offsets": offsets[sel].tolist(), "values": corr[sel].tolist(),
            "z": z[sel].tolist(), "bound": bound, "unit_size": S, "calls": st.auto_calls}
    return pend, plot


def _offset_text(k_elem: int, shape) -> str:
    if len(shape) >= 2:
        row = int(np.prod(shape[1:]))
        if k_elem % row == 0:
            return f"{k_elem} elements = {k_elem // row} along axis 0"
    return f"{k_elem} elements"


def check_call_independence(st, law, alpha_check: float):
    cc = st.cross_correlation()
    lg = st.lag_statistics()
    if cc is None:
        return not_run("call_independence",
                       "needs at least 2 calls and 2 units per call with varying masks"), None
    offsets, corr, z, sd = cc
    pk = np.minimum(1.0, 2.0 * sps.norm.sf(np.abs(z)))
    K = offsets.size
    lags_p = np.zeros(0)
    if lg is not None:
        lags, lcorr, lz = lg
        lags_p = np.minimum(1.0, 2.0 * sps.norm.sf(np.abs(lz)))
    tot = K + lags_p.size
    w = int(np.argmin(pk))
    best = float(pk[w])
    what = f"consecutive calls at offset {int(offsets[w])}"
    c_w, z_w = float(corr[w]), float(z[w])
    if lags_p.size and float(lags_p.min()) < best:
        j = int(np.argmin(lags_p))
        best = float(lags_p[j])
        what = f"calls {int(lags[j])} apart at offset 0"
        c_w, z_w = float(lcorr[j]), float(lz[j])
    pv = float(min(1.0, tot * best))
    sd_pair = sd  # per-offset sd of the mean correlation (consecutive calls)
    pend = Pending(
        name="call_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=z_w,
        detail=(f"correlation of consecutive calls' masks at all {K} offsets ({st.cross_pairs:,} "
                f"pairs) and of calls 2..{max(lags) if lg is not None else 1} apart at offset 0; "
                f"worst: {what}, mean correlation {c_w:+.3g} (z={z_w:.3g}), Bonferroni p={pv:.2g}."),
        interval=lambda level: ConfidenceInterval(
            c_w - float(sps.norm.isf((1 - level) / (2 * tot))) * sd_pair,
            c_w + float(sps.norm.isf((1 - level) / (2 * tot))) * sd_pair, level),
        extra={"pairs": st.cross_pairs, "offsets_tested": K, "lags_tested": int(lags_p.size)},
    )
    sel = _pick_offsets(offsets, z, 128)
    plot = {"offsets": offsets[sel].tolist(), "values": corr[sel].tolist(), "z": z[sel].tolist(),
            "bound": float(sps.norm.isf(alpha_check / (2 * tot))) * sd, "pairs": st.cross_pairs}
    if lg is not None:
        plot["lags"] = {"lags": lags.tolist(), "values": lcorr.tolist(), "z": lz.tolist()}
    return pend, plot
