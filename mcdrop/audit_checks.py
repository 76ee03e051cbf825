"""The statistical checks of :func:`mcdrop.audit`, computed from an :class:`AuditStream`.

Each ``check_*`` function returns a :class:`Pending` check (estimate,
p-value, how to build its interval) whose verdict is decided later for the
whole family (:func:`decide`): Holm at the family-wise ``alpha`` over every
check, exact checks carrying p-value 0 (violated) or 1.  With a tolerance
band the ``mean`` and ``keep_rate`` checks are judged by the three-zone
verdict instead, each with a Bonferroni share ``alpha / m`` of the budget,
and Holm runs over the others with what is left.

Null distributions used (all under "the implementation is the variant's law
with independent draws").  A p-value must be valid (false-alarm probability
at most its level) for every ``p`` and input size, including sparse masks
(``p`` near 0 or 1, or a few units) where a check's statistic is a count of
rare events and a normal tail at the z's an audit rejects at (6 to 8) is off
by orders of magnitude.  So each tail is either exact, or the normal (or
matched chi-square) tail where an Edgeworth criterion trusts it
(:func:`edgeworth_error` at the tested z, with the statistic's exact or
approximate third and fourth cumulants, relative error at most
``EDGEWORTH_TOL``), and otherwise a rigorous Chernoff or Bennett bound
(:func:`chernoff_tail`, :class:`BernoulliSum`, :func:`bennett_tail`): a
dense mask keeps the normal's power, a sparse one gets a valid p-value.

* ``keep_rate``: exact binomial (:func:`mcdrop.stats.keep_rate_test`).
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
* ``dispersion``: binomial dispersion of the kept-per-call counts (across
  calls) and of the per-unit keep counts (across units), each a chi-square
  matched to the exact mean and variance of the statistic (Satterthwaite)
  where its mismatched third and fourth cumulants allow, else a truncated
  Chernoff bound with the exact law of each count.
* ``element_independence`` / ``call_independence``: Bonferroni over the
  offsets (and call lags) of sums over calls of correlations with the exact
  permutation variance; tails as above, the bounds conditional on each
  call's values: for 0/1 masks hypergeometric coincidence counts dominated
  by binomials (calls) and, within a call, the exact conditional CGF of the
  coincidence count (transfer matrix) or a negative-association bound;
  Bennett's bound for any signal.

The mean and variance tests allow a rounding band ``eta`` of the output
dtype (e.g. ``1.2e-7`` relative for float32): a correct float32 dropout
rounds its scale ``1/q`` to float32, a real but harmless bias that a large
enough budget would otherwise flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
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


def _normal_interval(estimate: float, se: float, k: int = 1) -> Callable[[float], ConfidenceInterval]:
    """``level -> estimate +- z se``, ``z`` two-sided at ``1 - (1 - level)/k``
    (Bonferroni over ``k`` estimates, so that all ``k`` hold at ``level``)."""
    def interval(level: float) -> ConfidenceInterval:
        h = float(sps.norm.isf((1.0 - level) / (2.0 * k))) * se
        return ConfidenceInterval(estimate - h, estimate + h, level)

    return interval


# ---------------------------------------------------------------------------
# tails: an approximation where it can be trusted, a rigorous bound elsewhere
# ---------------------------------------------------------------------------

#: Largest relative error of a normal (or moment-matched chi-square) tail a
#: check accepts, as estimated by the Edgeworth terms at the z being tested
#: (:func:`edgeworth_error`); beyond it the check uses a rigorous bound.
EDGEWORTH_TOL = 0.1
#: Chernoff bounds are minimised over ``lam`` on this many log-spaced points
#: of ``[lam_max 1e-12, lam_max]``, then refined by Brent's method.
_LAM_GRID = 49
#: Float32 slack of the FFT sums, per summed term (each term is at most 1 in
#: absolute value and carries a rounding error of ~1e-7): the observed sum is
#: moved this much towards 0 before its tail is bounded, so that a value on
#: the edge of the support (e.g. a correlation of exactly 1) is not taken for
#: an impossible one.
_FFT_TOL = 4e-6


def edgeworth_error(z, g3: float, g4: float):
    """Relative error of the normal tail ``Q(|z|)`` estimated by the Edgeworth terms.

    ``g3``, ``g4`` are the standardised third and fourth cumulants of the
    statistic.  The Edgeworth correction to ``P(Z > z)`` is
    ``phi(z) [g3 He2(z)/6 + g4 He3(z)/24 + g3**2 He5(z)/72]``; divided by
    ``Q(z)`` (the Mills ratio ``phi/Q`` is about ``z``) it grows like
    ``g3 z**3 / 6``, the first term of Cramer's series for the log tail
    ratio.  For a dense mask the statistics are sums of many nearly normal
    terms and this is tiny at the z's a check rejects at; for a sparse mask
    a correlation is a Poisson-like coincidence count whose skewness does not
    average away, and the normal tail is wrong by orders of magnitude there
    (e.g. the +1 correlation of one pair of calls, each dropping one of 64
    units, has probability 1/64, not the normal's 1e-15).  Absolute values
    are used, so both tails are covered.
    """
    z = np.abs(np.asarray(z, dtype=np.float64))
    if not (math.isfinite(g3) and math.isfinite(g4)):
        return np.full(z.shape, np.inf) if z.ndim else math.inf
    with np.errstate(over="ignore", invalid="ignore"):
        mills = np.exp(sps.norm.logpdf(z) - sps.norm.logsf(z))
        he2, he3, he5 = z * z - 1.0, z**3 - 3.0 * z, z**5 - 10.0 * z**3 + 15.0 * z
        err = mills * (abs(g3) * np.abs(he2) / 6.0 + abs(g4) * np.abs(he3) / 24.0 + g3 * g3 * np.abs(he5) / 72.0)
    err = np.where(np.isfinite(err), err, np.inf)
    return err if err.ndim else float(err)


def normal_trusted(z, g3: float, g4: float):
    """The normal tail at ``|z|`` is within ``EDGEWORTH_TOL`` (relative) of the truth."""
    return edgeworth_error(z, g3, g4) <= EDGEWORTH_TOL


def chernoff_tail(cgf: Callable[[np.ndarray], np.ndarray], t: float, lam_max: float,
                  lam_guess: float | None = None) -> float:
    """``min(1, inf over 0 <= lam <= lam_max of exp(K(lam) - lam t))``, a bound on ``P(S >= t)``.

    ``cgf`` maps an array of ``lam >= 0`` to upper bounds ``K(lam)`` of
    ``log E exp(lam S)`` (for a sub-probability, e.g. the part of ``S``
    outside a truncated tail, ``log E[exp(lam S); A]``).  Every ``lam``
    gives a valid bound (Markov's inequality on ``exp(lam S)``), so an
    inexact minimisation only makes the bound conservative, never invalid.
    With ``lam_guess`` (e.g. the Gaussian optimum ``t / var``, for a costly
    ``cgf``) the first grid is 13 points within a factor 1000 of it.
    """
    if not t > 0.0:
        return 1.0
    from scipy.optimize import minimize_scalar

    if lam_guess is not None and lam_guess > 0:
        grid = np.minimum(lam_guess * np.logspace(-3.0, 3.0, 13), lam_max)
    else:
        grid = lam_max * np.logspace(-12.0, 0.0, _LAM_GRID)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.asarray(cgf(grid), dtype=np.float64) - grid * t
    vals = np.where(np.isnan(vals), np.inf, vals)
    i = int(np.argmin(vals))
    best = float(vals[i])
    lo = float(grid[i - 1]) if i > 0 else 0.0
    hi = float(grid[min(i + 1, grid.size - 1)])

    def f(lam):
        with np.errstate(over="ignore", invalid="ignore"):
            v = float(np.asarray(cgf(np.array([lam])))[0]) - lam * t
        return v if math.isfinite(v) else 1e100  # a plateau, not inf: Brent's steps stay finite

    if hi > lo and math.isfinite(best):
        xatol = (1e-9 if lam_guess is None else 1e-3) * hi
        with np.errstate(all="ignore"):
            res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
        if math.isfinite(res.fun) and res.fun < 1e99:
            best = min(best, float(res.fun))
    return float(min(1.0, math.exp(min(best, 0.0))))


def _log_bern_mgf(s: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``log(1 - pi + pi exp(s))`` without overflow or cancellation."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = np.log1p(pi * np.expm1(np.minimum(s, 30.0)))
        b = s + np.log(pi + (1.0 - pi) * np.exp(-np.maximum(s, 30.0)))
    return np.where(s < 30.0, a, b)


@dataclass(frozen=True)
class BernoulliSum:
    """``S = sum over groups g of count_g copies of beta_g (B - pi_g)``, ``B ~ Bernoulli(pi_g)``.

    The copies are independent (or, for the FFT checks, a martingale whose
    conditional CGFs are bounded by these).  ``beta`` may be an interval
    ``[beta_lo, beta_hi]`` per group: each copy's CGF is convex in ``beta``
    and 0 at ``beta = 0``, so its largest value on the interval is at an
    end, and :meth:`cgf` takes it there (how many nearly equal weights are
    grouped without losing rigour).  ``count`` may be fractional (a CGF
    raised to a power, as in the Holder step of the autocorrelation bound).
    """

    beta_lo: np.ndarray
    beta_hi: np.ndarray
    pi: np.ndarray
    count: np.ndarray

    @staticmethod
    def make(beta, pi, count, beta_hi=None) -> "BernoulliSum":
        beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
        hi = beta if beta_hi is None else np.atleast_1d(np.asarray(beta_hi, dtype=np.float64))
        pi = np.broadcast_to(np.asarray(pi, dtype=np.float64), beta.shape)
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), beta.shape)
        keep = (count > 0) & (pi > 0) & (pi < 1) & ((beta != 0) | (hi != 0))
        return BernoulliSum(beta[keep].copy(), hi[keep].copy(), pi[keep].copy(), count[keep].copy())

    @staticmethod
    def grouped(beta: np.ndarray, pi: float, count: float, max_groups: int = 2048) -> "BernoulliSum":
        """Many copies with weights ``beta`` (one each), as at most ``max_groups`` intervals."""
        b = np.sort(np.asarray(beta, dtype=np.float64).ravel())
        u, c = np.unique(b, return_counts=True)
        if u.size <= max_groups:
            return BernoulliSum.make(u, pi, c * count)
        edges = np.linspace(0, b.size, max_groups + 1).astype(np.int64)
        lo, hi = b[edges[:-1]], b[edges[1:] - 1]
        return BernoulliSum.make(lo, pi, np.diff(edges) * count, beta_hi=hi)

    @property
    def empty(self) -> bool:
        return self.pi.size == 0

    def negated(self) -> "BernoulliSum":
        return BernoulliSum(-self.beta_hi, -self.beta_lo, self.pi, self.count)

    def cgf(self, lam) -> np.ndarray:
        lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))[:, None]
        out = None
        for b in (self.beta_lo, self.beta_hi):
            sv = lam * b[None, :]
            v = _log_bern_mgf(sv, self.pi[None, :]) - sv * self.pi[None, :]
            out = v if out is None else np.maximum(out, v)
        return (out * self.count[None, :]).sum(axis=1)

    def lam_max(self, t: float) -> float:
        """Upper end of the ``lam`` search: far past every jump's saturation,
        short of float cancellation in ``K(lam) - lam t``."""
        mags = np.abs(np.concatenate([self.beta_lo, self.beta_hi]))
        mags = mags[mags > 0]
        return float(min(1e3 / mags.min(), 1e8 / max(mags.max(), abs(t), 1e-300)))

    def tail(self, t: float) -> float:
        """Chernoff bound on ``P(S >= t)``."""
        if self.empty:
            return 1.0 if t <= 0 else 0.0
        return chernoff_tail(self.cgf, t, self.lam_max(t))

    def cumulants(self) -> tuple[float, float, float]:
        """``(variance, kappa3, kappa4)`` (exact for single-valued weights)."""
        b = 0.5 * (self.beta_lo + self.beta_hi)
        pq = self.pi * (1.0 - self.pi)
        c = self.count
        return (float(np.sum(c * b**2 * pq)), float(np.sum(c * b**3 * pq * (1.0 - 2.0 * self.pi))),
                float(np.sum(c * b**4 * pq * (1.0 - 6.0 * pq))))


def bennett_tail(var: float, b: float, t: float) -> float:
    """Bennett's bound on ``P(S >= t)`` for a sum of martingale differences ``<= b``
    with predictable variances summing to ``var``: ``log E e^{lam X} <= v (e^{lam b} - 1 - lam b)/b**2``."""
    if not t > 0.0:
        return 1.0
    if var <= 0.0:
        return 0.0
    u = b * t / var
    return float(min(1.0, math.exp(-(var / (b * b)) * ((1.0 + u) * math.log1p(u) - u))))


@dataclass
class TailModel:
    """Null law of a centred sum ``S``: its variance and standardised cumulants for
    the Edgeworth criterion, and rigorous bounds on each tail."""

    var: float
    g3: float
    g4: float
    upper: list  # callables t -> bound on P(S >= t)
    lower: list  # callables t -> bound on P(S <= -t)

    def pvalue(self, t: float, tol: float = 0.0) -> tuple[float, str]:
        """Two-sided p-value of ``|S| >= |t|`` (``|t|`` first moved ``tol`` towards 0) and
        its method: the normal tail where :func:`normal_trusted`, else the smallest bound."""
        p, _, method = self.min_pvalue(np.array([t], dtype=np.float64), np.array([tol], dtype=np.float64))
        return p, method

    def min_pvalue(self, t: np.ndarray, tol: np.ndarray) -> tuple[float, int, str]:
        """Smallest of the two-sided p-values of several observed sums of this law
        (e.g. one per offset), its index and its method.

        Each p-value is the normal tail if trusted at its z, else the best
        rigorous bound.  The bounds decrease with ``|t|``, so among untrusted
        values the largest ``|t|`` has the smallest; likewise among trusted
        ones: two evaluations give the exact minimum.
        """
        a = np.maximum(np.abs(np.asarray(t, dtype=np.float64)) - np.asarray(tol, dtype=np.float64), 0.0)
        if self.var > 0.0:
            z = a / math.sqrt(self.var)
            trusted = np.asarray(normal_trusted(z, self.g3, self.g4)) & (a > 0)
        else:
            z = np.full(a.shape, np.inf)
            trusted = np.zeros(a.shape, dtype=bool)
        best, j, method = 1.0, int(np.argmax(a)), "normal"
        if np.any(trusted):
            jj = int(np.flatnonzero(trusted)[np.argmax(a[trusted])])
            pn = float(min(1.0, 2.0 * sps.norm.sf(z[jj])))
            best, j, method = pn, jj, "normal"
        untrusted = ~trusted & (a > 0)
        if np.any(untrusted):
            ju = int(np.flatnonzero(untrusted)[np.argmax(a[untrusted])])
            x = float(a[ju])
            pu = min([1.0] + [f(x) for f in self.upper])
            pl = min([1.0] + [f(x) for f in self.lower])
            pb = float(min(1.0, pu + pl))
            if pb < best or not np.any(trusted):
                best, j, method = pb, ju, "bound"
        return best, j, method


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
    """Binomial dispersion of counts: a Satterthwaite-matched chi-square where the
    Edgeworth criterion trusts it, a truncated Chernoff bound elsewhere."""

    index: float
    df: float
    scale: float
    pvalue: float
    pvalue_over: float
    pvalue_under: float
    m: int
    method: str = "chi2"

    def interval(self, level: float) -> ConfidenceInterval:
        """Interval for the dispersion factor ``phi`` (1 under the null) in ``D ~ phi g chi2(h)``."""
        a = (1.0 - level) / 2.0
        dg = self.index * self.m / self.scale
        lo_q = float(sps.chi2.ppf(a, self.df))  # 0 when df is tiny: no upper bound
        return ConfidenceInterval(dg / float(sps.chi2.isf(a, self.df)),
                                  dg / lo_q if lo_q > 0 else math.inf, level)

    def to_dict(self) -> dict:
        return {"index": self.index, "df": self.df, "pvalue": self.pvalue,
                "pvalue_over": self.pvalue_over, "pvalue_under": self.pvalue_under, "counts": self.m,
                "method": self.method}


def dispersion_from_hist(hist: np.ndarray, trials: int, q: float) -> Dispersion | None:
    """Dispersion of counts given as a histogram ``hist[k]`` over ``k = 0..trials``."""
    kk = np.arange(hist.size, dtype=np.float64)
    m = int(hist.sum())
    return _dispersion(np.sum(hist * (kk - trials * q) ** 2), m, trials, q)


def dispersion_from_counts(counts: np.ndarray, trials: int, q: float) -> Dispersion | None:
    c = counts.astype(np.float64)
    return _dispersion(float(np.sum((c - trials * q) ** 2)), int(c.size), trials, q)


@lru_cache(maxsize=32)
def _sqdev_law(t: int, q: float, m: int):
    """Law of ``Z = (k - t q)**2 / (t p q)``, ``k ~ Binomial(t, q)``, truncated to the
    counts whose two tails outside hold at most ``1e-16 / m`` each.

    Returns ``(logpmf, Z, outside_mass, kappa3, kappa4)`` (cumulants of ``Z``).
    ``Z`` is a squared count: its exponential moments are ruled by the most
    extreme counts (for a sparse mask, ``E exp(lam Z)`` is astronomically
    large for any useful ``lam``), so a Chernoff bound must leave those out
    and pay for them with their probability, ``m`` times the outside mass
    (a union bound over the ``m`` counts).
    """
    p = 1.0 - q
    tpq = t * p * q
    eps = 1e-16 / max(m, 1)
    lo = max(int(sps.binom.ppf(eps, t, q)), 0)
    hi = min(int(sps.binom.isf(eps, t, q)), t)
    k = np.arange(lo, hi + 1, dtype=np.float64)
    logpmf = sps.binom.logpmf(k, t, q)
    z = (k - t * q) ** 2 / tpq
    out = float(sps.binom.cdf(lo - 1, t, q) + sps.binom.sf(hi, t, q)) if (lo > 0 or hi < t) else 0.0
    w = np.exp(logpmf)
    w = w / w.sum()
    mu = float(np.sum(w * z))
    dz = z - mu
    m2, m3, m4 = (float(np.sum(w * dz**j)) for j in (2, 3, 4))
    return logpmf, z, out, m3, m4 - 3.0 * m2 * m2


def _dispersion_bounds(d: float, m: int, t: int, q: float) -> tuple[float, float]:
    """Rigorous bounds on ``P(D >= d)`` and ``P(D <= d)`` for ``D = sum of m iid Z``."""
    from scipy.special import logsumexp

    logpmf, z, out, _, _ = _sqdev_law(t, q, m)
    zmax = float(z.max()) if z.size else 0.0

    def cgf_up(lam):  # log E[exp(lam (D - m)); no count outside the truncation]
        return m * logsumexp(logpmf[None, :] + np.multiply.outer(lam, z), axis=1) - lam * m

    def cgf_down(lam):  # log E exp(-lam (D - m)), the outside mass bounded by 1 * its probability
        inner = logsumexp(logpmf[None, :] - np.multiply.outer(lam, z), axis=1)
        return m * np.logaddexp(inner, math.log(out) if out > 0 else -np.inf) + lam * m

    over = min(1.0, m * out + chernoff_tail(cgf_up, d - m, 2e3 / max(zmax, 1e-12)))
    under = chernoff_tail(cgf_down, m - d, 1e4)
    return over, under


def _dispersion(ss: float, m: int, t: int, q: float) -> Dispersion | None:
    """``D = sum (k - t q)**2 / (t p q)`` over ``m`` Binomial(t, q) counts.

    ``E[D] = m`` and ``Var[D] = m (2 + (1 - 6 p q)/(t p q))`` exactly; ``D``
    is referred to ``g chi2(h)`` with the same two moments
    (``g = Var/(2m)``, ``h = 2 m**2 / Var``), which is chi2(m) when
    ``t p q`` is large.  When ``t p q`` is small (a sparse mask: most counts
    are ``t`` or ``t - 1``) ``D`` is a sum of rare large jumps whose third
    and fourth cumulants the chi-square gets wrong; where those mismatches
    make the chi-square tail untrustworthy at the observed ``D``
    (:func:`edgeworth_error` on the mismatched standardised cumulants) the
    p-values are the rigorous truncated Chernoff bounds of
    :func:`_dispersion_bounds` instead.
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
    _, _, _, k3, k4 = _sqdev_law(int(t), float(q), int(m))
    dg3 = (m * k3 - 2.0 * var * var / m) / var**1.5
    dg4 = (m * k4 - 6.0 * var**3 / m**2) / var**2
    z = (d - m) / math.sqrt(var)
    if normal_trusted(z, dg3, dg4):
        over = float(sps.chi2.sf(d / g, h))
        under = float(sps.chi2.cdf(d / g, h))
        method = "chi2"
    else:
        slack = 1e-9 * (m + abs(d))
        over, _ = _dispersion_bounds(d - slack, int(m), int(t), float(q))
        _, under = _dispersion_bounds(d + slack, int(m), int(t), float(q))
        method = "bound"
    return Dispersion(index=d / m, df=h, scale=g, pvalue=min(1.0, 2.0 * min(over, under)),
                      pvalue_over=over, pvalue_under=under, m=m, method=method)


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


def check_mean(st, law, S: int, eta: float, tolerance: float | None, alpha_check: float) -> tuple[Pending, dict]:
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
                ci = _normal_interval(worst_rel, float(se_u[worst]))(lvl)
                lo, hi = ci.low, ci.high
            extra_fail = hi < -tol or lo > tol
    what = "keep count (exact binomial)" if law.two_point else "mean (z-test)"
    pend = Pending(
        name="mean", pvalue=pvalue, estimate=1.0 + delta, expected=1.0, statistic=z,
        detail=(f"pooled relative mean E[y]/E_law[y] = {1 + delta:.7g} (bias {delta:+.3g}, "
                f"se {se:.2g}; inverse-variance weighted, so signs cannot cancel), "
                f"p={p_pool:.2g}{' (Chernoff bound: sparse mask)' if pool_method == 'bound' else ''}; "
                f"per {'unit' if S > 1 else 'element'} {what}, worst "
                f"#{worst} (relative bias {worst_rel:+.3g}), Bonferroni p={p_unit:.2g} "
                f"over {n_tests}."),
        interval=_normal_interval(1.0 + delta, se),
        extra={"relative_bias": delta, "standard_error": se, "pvalue_pooled": p_pool,
               "pooled_method": pool_method,
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
    z, _ = band_z_test(est, se, 1.0, eta)
    pv = _variance_pvalue(law, est, st.n_units * C, eta)
    law_txt = {"inverted": "x^2 p/q", "alpha": "a^2 p q (x - alpha')^2", "gaussian": "x^2 p/q"}[law.variant]
    return Pending(
        name="variance", pvalue=pv, estimate=est, expected=1.0, statistic=z,
        detail=(f"pooled Var[y]/({law_txt}) = {est:.6g} (mean of ((y - E y)/sd)^2 over "
                f"{ok.sum():,} elements x {C:,} calls; null sd {se:.2g} from the kurtosis "
                f"{kurt:.3g} of the law; p={pv:.2g}, "
                + ("exact binomial in the dropped draws" if law.two_point else "exact chi-square")
                + ")."),
        interval=_normal_interval(est, se),
        extra={"standard_error": se, "rounding_band": eta},
    )


def check_dispersion(st, law) -> Pending:
    C, nu, q = st.calls, st.n_units, law.q
    a = dispersion_from_hist(st.call_hist, nu, q)
    b = dispersion_from_counts(st.ucount, C, q)
    parts = [d for d in (a, b) if d is not None]
    if not parts:
        # One unit per call, or a keep probability so close to 0 or 1 that
        # q(1 - q) rounds to nothing: no spread to compare.  Vacuous, as the
        # independence checks are then, and said so (keep_rate still tests the rate).
        return exact("dispersion", True,
                     f"vacuous: needs at least 2 calls and 2 units with a binomial spread "
                     f"(got {nu} unit(s) per call, q = {q:.6g}); nothing to compare at this budget.")
    pv = min(1.0, len(parts) * min(d.pvalue for d in parts))
    main = a if a is not None else b
    txt = []
    if a is not None:
        txt.append(f"kept per call across {C:,} calls: index {a.index:.4g} (p={a.pvalue:.2g}"
                   + (", tail bound" if a.method == "bound" else "") + ")")
    if b is not None:
        txt.append(f"keep count per unit across {nu:,} units: index {b.index:.4g} (p={b.pvalue:.2g}"
                   + (", tail bound" if b.method == "bound" else "") + ")")
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


def _minority(kept: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Minority counts of 0/1 masks with ``kept`` ones out of ``n``, and their
    sign (+1 where the kept units are the minority, -1 where the dropped are)."""
    kept = np.asarray(kept, dtype=np.int64)
    return np.minimum(kept, n - kept), np.where(kept <= n - kept, 1, -1)


#: Largest number of units for which the exact conditional CGF of the
#: autocorrelation's coincidence count is computed (one FFT of this size per
#: Chernoff step); above it only the negative-association bound is used.
_EXACT_AUTO_MAX_UNITS = 2**18
#: The exact path is skipped when the weight-spread part ``V`` of
#: _ExactAutoCGF has more than this fraction of the sum's variance (a sparse
#: mask: the Holder split would cost more than the exact CGF gains, and the
#: negative-association bound is the better one there).
_EXACT_AUTO_MAX_SPREAD = 0.05


def _cycle_log_mgf(n: int, L: int, s: float, mus: np.ndarray) -> np.ndarray:
    """``log E[exp(s A) | mu]`` for each ``mu`` in ``mus`` (``+inf`` where not accurate).

    ``A`` counts the pairs ``{i, i + k}`` (``k = n/2``: each pair twice)
    inside a uniformly random ``mu``-subset of ``Z_n``; the pairs form
    ``n/L`` cycles of length ``L``.  Transfer matrix: a cycle's generating
    function ``sum over subsets of x**size y**pairs`` is ``tr(M**L)`` with
    ``M = [[1, x], [1, x y]]``, so ``E[y**A | mu] = [x**mu] tr(M**L)**(n/L) /
    C(n, mu)``.  The coefficients are read, all ``mu`` at once, by one FFT of
    the function on the circle ``|x| = r`` through the saddle point at the
    mean ``mu`` (there the wanted coefficients are the largest, relative to
    the rounding of the FFT); a coefficient below 1e-9 of the total is
    refused (``+inf``: that ``lam`` is then not used), and each is padded by
    ten times its relative rounding error, so the values are upper bounds.
    """
    import scipy.fft as sfft
    from scipy.special import gammaln

    g = n // L
    y = math.exp(s)

    def log_g(x):
        T = 1.0 + x * y
        D = x * (y - 1.0)
        disc = np.sqrt(T * T - 4.0 * D + 0j)
        r1, r2 = (T + disc) / 2.0, (T - disc) / 2.0
        swap = np.abs(r2) > np.abs(r1)
        r1, r2 = np.where(swap, r2, r1), np.where(swap, r1, r2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return g * (L * np.log(r1) + np.log1p((r2 / r1) ** L))

    def mean_size(u):  # d log G / d log r, increasing in u = log r
        h = 1e-5
        return (log_g(np.exp(u + h)).real - log_g(np.exp(u - h)).real) / (2 * h)

    # the saddle point r (mean size = the calls' mean mu), on two vectorised
    # grids; it need not be exact, only close enough for the FFT's accuracy
    target = float(np.mean(mus))
    u = np.linspace(-40.0, 40.0, 161)
    for _ in range(3):
        ms = mean_size(u)
        i = int(np.clip(np.searchsorted(ms, target), 1, u.size - 1))
        u = np.linspace(u[i - 1], u[i], 33)
    r = math.exp(float(u[16]))
    N = sfft.next_fast_len(n + 1)
    x = r * np.exp(2j * np.pi * np.arange(N) / N)
    lg0 = float(log_g(r).real)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.exp(log_g(x) - lg0)
    vals = np.where(np.isfinite(vals), vals, 0.0)
    prob = sfft.fft(vals).real / N
    pm = prob[mus]
    err = 1e-13 * math.sqrt(N)
    ok = pm > max(1e-9, 1e3 * err)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (lg0 - mus * math.log(r) + np.log(np.where(ok, pm, 1.0)) + 10.0 * err / np.where(ok, pm, 1.0)
               - (gammaln(n + 1.0) - gammaln(mus + 1.0) - gammaln(n - mus + 1.0)))
    return np.where(ok, out, np.inf)


class _ExactAutoCGF:
    """CGF bounds for the autocorrelation sum ``S = sum_c w_c (A_c - E A_c)`` of 0/1 masks.

    Split ``S = U + V`` with ``U = wbar sum_c (A_c - E A_c)`` (one common
    weight: its CGF is a product of exact conditional CGFs evaluated at one
    point, :func:`_cycle_log_mgf`) and ``V = sum_c (w_c - wbar)(A_c - E
    A_c)`` (small: the weights of calls differ little unless the mask is
    sparse); Holder's inequality gives ``log E e^{lam S} <= K_U(p lam)/p +
    K_V(p' lam)/p'`` with ``1/p + 1/p' = 1``, ``K_V`` from the
    negative-association bound.  Each ``p`` gives a valid bound; the
    smallest is used.
    """

    def __init__(self, n: int, L: int, mus: np.ndarray, v_sum: "BernoulliSum", wbar: float, var: float):
        self.n, self.L, self.var = n, L, var
        self.mu, self.cnt = np.unique(mus, return_counts=True)
        self.e_a = self.mu * (self.mu - 1.0) / (n - 1.0)
        self.v = v_sum
        self.wbar = wbar

    def _k_u(self, theta: float) -> float:
        phi = _cycle_log_mgf(self.n, self.L, theta * self.wbar, self.mu)
        return float(np.sum(self.cnt * (phi - theta * self.wbar * self.e_a)))

    def tail(self, t: float, sign: float) -> float:
        if not t > 0:
            return 1.0
        v = self.v if sign > 0 else self.v.negated()
        # near-optimal Holder exponent for Gaussian-like parts: the effective
        # variance p Var U + p' Var V is smallest at p = 1 + sqrt(Var V / Var U)
        rho = math.sqrt(max(self.v.cumulants()[0], 0.0) / self.var) if not v.empty else 0.0
        ps = (1.0,) if v.empty else (1.0 + rho, 1.0 + 2.5 * rho)
        best = 1.0
        lam_max = 60.0 / self.wbar
        for p in ps:
            q = p / (p - 1.0) if p > 1.0 else math.inf

            def cgf(lam, p=p, q=q, v=v):
                lam = np.atleast_1d(lam)
                ku = np.array([self._k_u(sign * p * l_) for l_ in lam]) / p
                kv = v.cgf(q * lam) / q if not v.empty else 0.0
                return ku + kv

            best = min(best, chernoff_tail(cgf, t, lam_max, lam_guess=t / self.var))
        return best


def _autocorr_model(info, n: int, var: float, L: int) -> TailModel:
    """Null law of the autocorrelation sum over calls at offsets of one cycle length ``L``.

    Under the null, given each call's values, their arrangement is uniformly
    random and independent between calls; the sum's exact variance ``var``
    comes from :func:`~mcdrop.audit_stream.autocorr_null_moments`.
    ``L = n / gcd(n, k)`` is the length of the cycles ``i -> i + k`` (2 at
    the offset ``n/2``); offsets with the same ``L`` have the same law.

    * Edgeworth criterion: third and fourth cumulants of each call's
      ``R_k``, treating its values as independent draws from the call's own
      (the permutation corrections are O(1/n); checked by simulation to
      over-estimate both, so the criterion errs towards the bound):
      ``kappa3 = A3**2/n``, ``kappa4 = A4**2/n + 6 A4/n**2 - 9/n**3``
      (``A_j = sum a**j``); at ``n/2`` the ``n/2`` disjoint pairs counted
      twice give ``4 A3**2/n`` and ``8 (A4**2 - 3/n**2)/n``.
    * Any signal: Bennett's bound, ``R_k`` minus its mean being at most
      ``1 + 1/(n-1)`` (``|R_k| <= 1``, Cauchy-Schwarz).
    * A 0/1 mask with ``mu`` units in its minority (kept or dropped; the
      formula is symmetric): ``R_k = w (A - E A)``, ``w = n / (mu (n - mu))``
      and ``A`` the number of pairs ``{i, i + k}`` inside the minority, a
      uniformly random ``mu``-subset.  ``mu <= 1``: ``R_k`` is constant.
      ``mu = 2``: ``A`` is exactly Bernoulli(2/(n-1)) (or twice a
      Bernoulli(1/(n-1)) at ``n/2``).  ``mu >= 3``: the indicators of a
      uniformly random subset are negatively associated (Joag-Dev & Proschan
      1983), hence so are the products over a matching (disjoint pairs), and
      ``E exp(lam A_M) <= (1 + pi (e**lam - 1))**|M|`` with ``pi = mu (mu -
      1)/(n (n - 1))``.  The ``n`` pairs ``{i, i + k}`` form the cycles of
      length ``L``: two matchings of ``n/2`` pairs if ``L`` is even, three
      classes if odd, and Holder's inequality gives ``log E exp(lam A) <=
      (n/J) log(1 + pi (e**(J lam) - 1))``, ``J = 2`` or ``3`` (at ``n/2``
      the ``n/2`` pairs are one matching counted twice: ``J = 2`` exactly).
      These are :class:`BernoulliSum` CGFs; the Chernoff bound of their sum
      keeps the Poisson shape of a sparse mask's coincidence count, but the
      Holder step doubles the jumps, so for denser masks (up to
      ``_EXACT_AUTO_MAX_UNITS`` units) the exact conditional CGF of
      :class:`_ExactAutoCGF` is used too (the smaller bound wins).
    """
    kind = "half" if L == 2 else ("even" if L % 2 == 0 else "odd")
    valid = info.valid
    a3, a4 = info.a3[valid], info.a4[valid]
    nf = float(n)
    if kind == "half":
        k3 = 4.0 * float(np.sum(a3 * a3)) / nf
        k4 = 8.0 * float(np.sum(a4 * a4 - 3.0 / nf**2)) / nf
    else:
        k3 = float(np.sum(a3 * a3)) / nf
        k4 = float(np.sum(a4 * a4 / nf + 6.0 * a4 / nf**2 - 9.0 / nf**3))
    g3 = k3 / var**1.5 if var > 0 else math.inf
    g4 = k4 / var**2 if var > 0 else math.inf
    b_up, b_dn = 1.0 + 1.0 / (nf - 1.0), 1.0 - 1.0 / (nf - 1.0)
    upper = [lambda t: bennett_tail(var, b_up, t)]
    lower = [lambda t: bennett_tail(var, b_dn, t)]
    if info.binary:
        mu, _ = _minority(info.kept[valid], n)
        u, cnt = np.unique(mu[mu >= 2], return_counts=True)
        if u.size:
            uf = u.astype(np.float64)
            w = nf / (uf * (nf - uf))
            two = u == 2
            J = 3.0 if kind == "odd" else 2.0
            if kind == "half":
                b2, p2 = 2.0 * w, 1.0 / (nf - 1.0)
            else:
                b2, p2 = w, 2.0 / (nf - 1.0)
            pis = np.where(two, p2, uf * (uf - 1.0) / (nf * (nf - 1.0)))
            counts = np.where(two, cnt, cnt * nf / J)
            bs = BernoulliSum.make(np.where(two, b2, J * w), pis, counts)
            upper.append(bs.tail)
            lower.append(bs.negated().tail)
            if n <= _EXACT_AUTO_MAX_UNITS:
                wbar = float(np.sum(cnt * w) / np.sum(cnt))
                dw = w - wbar
                vs = BernoulliSum.make(np.where(two, dw * (b2 / w), J * dw), pis, counts)
                if vs.empty or vs.cumulants()[0] <= _EXACT_AUTO_MAX_SPREAD * var:
                    ex = _ExactAutoCGF(n, int(L), mu[mu >= 2], vs, wbar, var)
                    upper.append(lambda t: ex.tail(t, 1.0))
                    lower.append(lambda t: ex.tail(t, -1.0))
    return TailModel(var, g3, g4, upper, lower)


def check_element_independence(st, law, shape, S: int, alpha_check: float):
    auto = st.autocorrelation()
    if auto is None:
        # Nothing to correlate (fewer than 4 units, or no call whose mask
        # varied, e.g. p within 1e-6 of 1 on a small input): vacuous, like
        # p = 0 and p = 1, and said so; not a failure of the implementation.
        return exact("element_independence", True,
                     f"vacuous: needs at least 4 units per call and calls whose mask varies "
                     f"(got {st.n_units} units); nothing to correlate at this budget."), None
    offsets, corr, z, sd, sums, var = auto
    nu = st.n_units
    info = st.fft_call_info()
    K = offsets.size
    tol = _FFT_TOL * (st.auto_calls + np.abs(sums))
    L = nu // np.gcd(nu, offsets)
    best, w, method = math.inf, 0, "normal"
    for cyc in np.unique(L):
        idx = np.flatnonzero(L == cyc)
        model = _autocorr_model(info, nu, float(var[idx[0]]), int(cyc))
        pj, j, mj = model.min_pvalue(sums[idx], tol[idx])
        if pj < best:
            best, w, method = pj, int(idx[j]), mj
    pv = float(min(1.0, K * best))
    c_w, sd_w, k_w = float(corr[w]), float(sd[w]), int(offsets[w])
    where = _offset_text(k_w * S, shape)
    how = "" if method == "normal" else " (tail bound: sparse masks make the normal tail unreliable)"
    pend = Pending(
        name="element_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=float(z[w]),
        detail=(f"mask autocorrelation at every offset 1..{K} ({'units' if S > 1 else 'elements'}, "
                f"circular, FFT per call, {st.auto_calls:,} calls); worst offset {k_w} ({where}): "
                f"mean correlation {c_w:+.3g} (z={float(z[w]):.3g}), Bonferroni p={pv:.2g}{how}."),
        interval=_normal_interval(c_w, sd_w, K),
        extra={"worst_offset": k_w, "worst_offset_elements": k_w * S, "calls": st.auto_calls,
               "offsets_tested": K, "tail_method": method},
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


def _pair_model(info, n: int, lag: int, var: float) -> TailModel:
    """Null law of the sum over call pairs ``(c - lag, c)`` of their cross-correlation
    at one offset (every offset has the same law).

    Given every earlier call, call ``c``'s arrangement is uniformly random,
    so each pair's term has conditional mean 0 and variance ``1/(n-1)``
    whatever the earlier calls were (the terms form a martingale; at a fixed
    offset they are even independent), and conditional CGF bounds multiply.

    * Edgeworth criterion: ``kappa3 = A3 A3' / n`` and ``kappa4 = A4 (A4' -
      3/n) / n`` per pair (values as independent draws).
    * Any signal: Bennett, each term in ``[-1, 1]``.
    * 0/1 masks with minorities of ``u`` and ``v`` units: the term is
      ``+-w (C - u v / n)``, ``w = (u (1 - u/n) v (1 - v/n))**-1/2``, with
      ``C`` hypergeometric (the coincidences of a random ``v``-subset with a
      fixed ``u``-set), which is smaller in the convex order than
      Binomial(min(u, v), max(u, v)/n) (Hoeffding 1963, Theorem 4): a
      :class:`BernoulliSum`, sign ``+`` when both minorities are of the same
      kind.
    """
    kept, valid = info.kept, info.valid
    i = np.arange(lag, kept.size)
    ok = valid[i] & valid[i - lag] if i.size else np.zeros(0, dtype=bool)
    b = i[ok]
    a = b - lag
    nf = float(n)
    k3 = float(np.sum(info.a3[a] * info.a3[b])) / nf
    k4 = float(np.sum(info.a4[a] * (info.a4[b] - 3.0 / nf))) / nf
    g3 = k3 / var**1.5 if var > 0 else math.inf
    g4 = k4 / var**2 if var > 0 else math.inf
    upper = [lambda t: bennett_tail(var, 1.0, t)]
    lower = [lambda t: bennett_tail(var, 1.0, t)]
    if info.binary and b.size:
        mu_a, s_a = _minority(kept[a], n)
        mu_b, s_b = _minority(kept[b], n)
        lo, hi = np.minimum(mu_a, mu_b), np.maximum(mu_a, mu_b)
        key = (lo * (n + 1) + hi) * 2 + (s_a * s_b > 0)
        uk, cnt = np.unique(key, return_counts=True)
        pos = (uk % 2) == 1
        rest = uk // 2
        hi_u, lo_u = (rest % (n + 1)).astype(np.float64), (rest // (n + 1)).astype(np.float64)
        w = 1.0 / np.sqrt(lo_u * (1.0 - lo_u / nf) * hi_u * (1.0 - hi_u / nf))
        bs = BernoulliSum.make(np.where(pos, w, -w), hi_u / nf, lo_u * cnt)
        upper.append(bs.tail)
        lower.append(bs.negated().tail)
    return TailModel(var, g3, g4, upper, lower)


def check_call_independence(st, law, alpha_check: float):
    cc = st.cross_correlation()
    lg = st.lag_statistics()
    if cc is None:
        return exact("call_independence", True,
                     "vacuous: needs at least 2 calls and 2 units per call whose masks vary; "
                     "nothing to correlate at this budget."), None
    offsets, corr, z, sd, sums = cc
    nu = st.n_units
    info = st.fft_call_info()
    K = offsets.size
    model = _pair_model(info, nu, 1, st.cross_pairs / (nu - 1.0))
    best, w, method = model.min_pvalue(sums, _FFT_TOL * (st.cross_pairs + np.abs(sums)))
    what = f"consecutive calls at offset {int(offsets[w])}"
    c_w, z_w = float(corr[w]), float(z[w])
    n_lags = 0
    if lg is not None:
        lags, lcorr, lz, lsums, lpairs = lg
        n_lags = lags.size
        for j in range(n_lags):
            mj = _pair_model(info, nu, int(lags[j]), float(lpairs[j]) / (nu - 1.0))
            pj, _, meth = mj.min_pvalue(lsums[j:j + 1], _FFT_TOL * (float(lpairs[j]) + np.abs(lsums[j:j + 1])))
            if pj < best:
                best, method = pj, meth
                what = f"calls {int(lags[j])} apart at offset 0"
                c_w, z_w = float(lcorr[j]), float(lz[j])
    tot = K + n_lags
    pv = float(min(1.0, tot * best))
    how = "" if method == "normal" else " (tail bound: sparse masks make the normal tail unreliable)"
    pend = Pending(
        name="call_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=z_w,
        detail=(f"correlation of consecutive calls' masks at all {K} offsets ({st.cross_pairs:,} "
                f"pairs) and of calls 2..{max(lags) if lg is not None else 1} apart at offset 0; "
                f"worst: {what}, mean correlation {c_w:+.3g} (z={z_w:.3g}), Bonferroni p={pv:.2g}{how}."),
        interval=_normal_interval(c_w, sd, tot),
        extra={"pairs": st.cross_pairs, "offsets_tested": K, "lags_tested": int(n_lags),
               "tail_method": method},
    )
    sel = _pick_offsets(offsets, z, 128)
    plot = {"offsets": offsets[sel].tolist(), "values": corr[sel].tolist(), "z": z[sel].tolist(),
            "bound": float(sps.norm.isf(alpha_check / (2 * tot))) * sd, "pairs": st.cross_pairs}
    if lg is not None:
        plot["lags"] = {"lags": lags.tolist(), "values": lcorr.tolist(), "z": lz.tolist()}
    return pend, plot
