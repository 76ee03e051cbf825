"""Dispersion of keep counts: are they as spread as independent Bernoulli draws give?

Two tests of one statistic, ``D = Σ (k − t q)² / (t p q)`` over ``m``
Binomial(t, q) counts:

* :func:`dispersion_test` — the classic index ``D/m`` against chi2(m); the
  scipy-style public test.
* :func:`binomial_dispersion` — ``D`` against the chi-square matched to its
  exact mean and variance (Satterthwaite), and rigorous truncated Chernoff
  bounds where the matched chi-square's tail cannot be trusted (sparse
  masks).  This is the stronger one; :func:`mcdrop.verify` and
  :func:`mcdrop.audit` both use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats as _sps
from scipy.special import logsumexp

from .._validation import check_probability
from ..results import ConfidenceInterval, json_number
from ._iv import check_confidence_level
from .normal import format_pvalue
from .tails import chernoff_tail, normal_trusted

__all__ = [
    "dispersion_test",
    "DispersionTestResult",
    "binomial_dispersion",
    "dispersion_from_hist",
    "dispersion_from_counts",
    "dispersion_bounds",
    "squared_deviation_law",
    "squared_deviation_cumulants",
    "ENUMERATE_MAX",
    "Dispersion",
]


# ---------------------------------------------------------------------------
# dispersion test
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DispersionTestResult:
    """Result of :func:`dispersion_test`.

    Attributes
    ----------
    statistic : float
        Dispersion index ``D / m`` (1 under the null; > 1 over-dispersed,
        < 1 under-dispersed).  NaN when ``q`` is 0 or 1 (undefined).
    chi2 : float
        ``D = sum((k_i - t_i q)**2 / (t_i q (1 - q)))``.
    df : int
        ``m``, the number of counts.
    pvalue : float
        Two-sided: ``min(1, 2 min(pvalue_under, pvalue_over))``.
    pvalue_over, pvalue_under : float
        One-sided ``chi2.sf(D, m)`` (over-dispersion, e.g. correlated
        masks) and ``chi2.cdf(D, m)`` (under-dispersion, e.g. a sampler that
        keeps exactly ``k`` per call).
    q : float
        Keep probability under the null hypothesis.
    """

    statistic: float
    chi2: float
    df: int
    pvalue: float
    pvalue_over: float
    pvalue_under: float
    q: float

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Interval for the dispersion factor ``phi`` in ``D ~ phi chi2(m)``.

        ``[D / chi2.isf(a/2, m), D / chi2.ppf(a/2, m)]``; 1 is inside it
        exactly when the two-sided test does not reject at ``a``.  Degenerate
        ``[nan, nan]`` when ``q`` is 0 or 1.
        """
        cl = check_confidence_level(confidence_level)
        if math.isnan(self.statistic):
            return ConfidenceInterval(math.nan, math.nan, cl)
        a = (1.0 - cl) / 2.0
        return ConfidenceInterval(
            self.chi2 / float(_sps.chi2.isf(a, self.df)),
            self.chi2 / float(_sps.chi2.ppf(a, self.df)),
            cl,
        )

    def __str__(self) -> str:
        return (
            f"dispersion index {self.statistic:.6g} over {self.df} counts "
            f"(chi2={self.chi2:.6g}, df={self.df}) vs 1 at q={self.q:.9g}: "
            f"p={format_pvalue(self.pvalue)} (over {format_pvalue(self.pvalue_over)}, "
            f"under {format_pvalue(self.pvalue_under)})"
        )

    def to_dict(self) -> dict:
        return {
            "test": "dispersion",
            "statistic": json_number(self.statistic),
            "chi2": json_number(self.chi2),
            "df": int(self.df),
            "pvalue": json_number(self.pvalue),
            "pvalue_over": json_number(self.pvalue_over),
            "pvalue_under": json_number(self.pvalue_under),
            "q": json_number(self.q),
        }


def _int_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be an integer array; got {value!r}.")
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(
            f"`{name}` must be an array of integers; got dtype {arr.dtype}."
        )
    return arr.astype(np.int64)


def _dispersion_test_iv(counts, trials, q):
    k = _int_array(counts, "counts").ravel()
    if k.size == 0:
        raise ValueError("`counts` must not be empty; got 0 counts.")
    t = _int_array(trials, "trials")
    if t.ndim == 0:
        t = np.full(k.shape, int(t), dtype=np.int64)
    else:
        t = t.ravel()
        if t.shape != k.shape:
            raise ValueError(
                f"`trials` must be a scalar or have one entry per count; got "
                f"{t.size} trials for {k.size} counts."
            )
    if np.any(t < 1):
        raise ValueError(f"`trials` must be >= 1; got {int(t[t < 1][0])}.")
    bad = (k < 0) | (k > t)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`counts` must be in [0, `trials`]; got counts[{i}]={int(k[i])} "
            f"with trials {int(t[i])}."
        )
    return k, t, check_probability(q, "q")


def dispersion_test(counts: Any, trials: Any, q: float) -> DispersionTestResult:
    """Chi-square test that keep counts vary exactly as binomial counts should.

    Parameters
    ----------
    counts : array_like of int
        Keep counts ``k_i`` (any shape; flattened), each out of ``t_i``
        Bernoulli(``q``) draws, ``0 <= k_i <= t_i``.
    trials : int or array_like of int
        ``t_i >= 1``: a scalar for all counts or one per count.
    q : float
        The **keep** probability under the null hypothesis, in [0, 1].

    Returns
    -------
    DispersionTestResult
        ``statistic`` is the dispersion index ``D / m``; ``pvalue`` is
        two-sided.

    Notes
    -----
    Under independent Bernoulli(``q``) draws each ``k_i`` is
    Binomial(``t_i``, ``q``) and
    ``D = sum_i (k_i - t_i q)**2 / (t_i q (1 - q))`` is approximately
    ``chi2(m)`` with ``m = len(counts)`` (``q`` is known, so no degree of
    freedom is lost).  Both tails are defects: over-dispersion (``D`` too
    large: correlated masks, a shared mask across calls) and
    under-dispersion (``D`` too small: a sampler that keeps exactly
    ``round(t q)`` per call).  ``E[D] = m`` exactly, but
    ``Var[D] = sum(2 + (1 - 6pq) / (t_i p q))``, so the chi-square law is
    accurate only when every ``t_i p q`` is large (say >= 10); for small
    ``t_i`` prefer summing counts into larger groups first.

    For ``q`` equal to 0 or 1 the counts are deterministic: ``pvalue`` is 1
    if every ``k_i == t_i q`` and 0 otherwise (``statistic`` is NaN, since
    the index is undefined).

    The cost is ``O(m)`` in the number of counts, independent of the
    number of draws behind each count.
    """
    k, t, q = _dispersion_test_iv(counts, trials, q)
    m = int(k.size)
    if q in (0.0, 1.0):
        ok = bool(np.all(k == (0 if q == 0.0 else t)))
        pv = 1.0 if ok else 0.0
        return DispersionTestResult(
            statistic=math.nan,
            chi2=0.0 if ok else math.inf,
            df=m,
            pvalue=pv,
            pvalue_over=pv,
            pvalue_under=pv,
            q=q,
        )
    tf = t.astype(np.float64)
    dev = k.astype(np.float64) - tf * q
    d = float(np.sum(dev * dev / (tf * (q * (1.0 - q)))))
    p_under = float(_sps.chi2.cdf(d, m))
    p_over = float(_sps.chi2.sf(d, m))
    return DispersionTestResult(
        statistic=d / m,
        chi2=d,
        df=m,
        pvalue=min(1.0, 2.0 * min(p_under, p_over)),
        pvalue_over=p_over,
        pvalue_under=p_under,
        q=q,
    )


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
        lo_q = float(_sps.chi2.ppf(a, self.df))  # 0 when df is tiny: no upper bound
        return ConfidenceInterval(dg / float(_sps.chi2.isf(a, self.df)),
                                  dg / lo_q if lo_q > 0 else math.inf, level)

    def to_dict(self) -> dict:
        return {"index": self.index, "df": self.df, "pvalue": self.pvalue,
                "pvalue_over": self.pvalue_over, "pvalue_under": self.pvalue_under, "counts": self.m,
                "method": self.method}


def dispersion_from_hist(hist: np.ndarray, trials: int, q: float) -> Dispersion | None:
    """Dispersion of counts given as a histogram ``hist[k]`` over ``k = 0..trials``."""
    kk = np.arange(hist.size, dtype=np.float64)
    m = int(hist.sum())
    return binomial_dispersion(np.sum(hist * (kk - trials * q) ** 2), m, trials, q)


def dispersion_from_counts(counts: np.ndarray, trials: int, q: float) -> Dispersion | None:
    c = counts.astype(np.float64)
    return binomial_dispersion(float(np.sum((c - trials * q) ** 2)), int(c.size), trials, q)


#: Past this many support points the third and fourth cumulants of ``Z`` come
#: from the exact formulas (:func:`squared_deviation_cumulants`), not from
#: enumerating the law (a keep count over 10**8 samples spans ~10**5 points).
ENUMERATE_MAX = 20_000


def _bernoulli_cumulants(q: float, order: int = 8) -> list[float]:
    """Cumulants ``c_1 .. c_order`` of a Bernoulli(q) draw: ``c_{n+1} = q (1 - q) dc_n/dq``, ``c_1 = q``."""
    polys = [np.polynomial.Polynomial([0.0, 1.0])]
    pq = np.polynomial.Polynomial([0.0, 1.0, -1.0])
    for _ in range(order - 1):
        polys.append(pq * polys[-1].deriv())
    return [float(P(q)) for P in polys]


def squared_deviation_cumulants(t: int, q: float) -> tuple[float, float]:
    """Exact third and fourth cumulants of ``Z = (k - t q)**2 / (t p q)``, ``k ~ Binomial(t, q)``.

    From the binomial's cumulants ``t c_n`` (:func:`_bernoulli_cumulants`) to its
    central moments ``mu_2 .. mu_8``, then to the moments ``mu_{2j} / (t p q)**j``
    of ``Z``.  (For a normal ``k`` they are chi2(1)'s: 8 and 48.)
    """
    c = [0.0] + [t * v for v in _bernoulli_cumulants(q)]
    k2, k3, k4, k5, k6, k8 = c[2], c[3], c[4], c[5], c[6], c[8]
    mu4 = k4 + 3 * k2**2
    mu6 = k6 + 15 * k4 * k2 + 10 * k3**2 + 15 * k2**3
    mu8 = k8 + 28 * k6 * k2 + 56 * k5 * c[3] + 35 * k4**2 + 210 * k4 * k2**2 + 280 * k3**2 * k2 + 105 * k2**4
    m2, m3, m4 = mu4 / k2**2, mu6 / k2**3, mu8 / k2**4  # m1 = 1
    return m3 - 3 * m2 + 2, m4 - 4 * m3 - 3 * m2**2 + 12 * m2 - 6


@lru_cache(maxsize=32)
def squared_deviation_law(t: int, q: float, m: int):
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
    lo = max(int(_sps.binom.ppf(eps, t, q)), 0)
    hi = min(int(_sps.binom.isf(eps, t, q)), t)
    k = np.arange(lo, hi + 1, dtype=np.float64)
    logpmf = _sps.binom.logpmf(k, t, q)
    z = (k - t * q) ** 2 / tpq
    out = float(_sps.binom.cdf(lo - 1, t, q) + _sps.binom.sf(hi, t, q)) if (lo > 0 or hi < t) else 0.0
    w = np.exp(logpmf)
    w = w / w.sum()
    mu = float(np.sum(w * z))
    dz = z - mu
    m2, m3, m4 = (float(np.sum(w * dz**j)) for j in (2, 3, 4))
    return logpmf, z, out, m3, m4 - 3.0 * m2 * m2


def dispersion_bounds(d: float, m: int, t: int, q: float) -> tuple[float, float]:
    """Rigorous bounds on ``P(D >= d)`` and ``P(D <= d)`` for ``D = sum of m iid Z``."""
    logpmf, z, out, _, _ = squared_deviation_law(t, q, m)
    zmax = float(z.max()) if z.size else 0.0

    def cgf_up(lam):  # log E[exp(lam (D - m)); no count outside the truncation]
        return m * logsumexp(logpmf[None, :] + np.multiply.outer(lam, z), axis=1) - lam * m

    def cgf_down(lam):  # log E exp(-lam (D - m)), the outside mass bounded by 1 * its probability
        inner = logsumexp(logpmf[None, :] - np.multiply.outer(lam, z), axis=1)
        return m * np.logaddexp(inner, math.log(out) if out > 0 else -np.inf) + lam * m

    over = min(1.0, m * out + chernoff_tail(cgf_up, d - m, 2e3 / max(zmax, 1e-12)))
    under = chernoff_tail(cgf_down, m - d, 1e4)
    return over, under


def binomial_dispersion(ss: float, m: int, t: int, q: float) -> Dispersion | None:
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
    :func:`dispersion_bounds` instead.
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
    if 17.0 * math.sqrt(tpq) > ENUMERATE_MAX:  # the enumerated law would span > ENUMERATE_MAX counts
        k3, k4 = squared_deviation_cumulants(int(t), float(q))
    else:
        _, _, _, k3, k4 = squared_deviation_law(int(t), float(q), int(m))
    dg3 = (m * k3 - 2.0 * var * var / m) / var**1.5
    dg4 = (m * k4 - 6.0 * var**3 / m**2) / var**2
    z = (d - m) / math.sqrt(var)
    if normal_trusted(z, dg3, dg4):
        over = float(_sps.chi2.sf(d / g, h))
        under = float(_sps.chi2.cdf(d / g, h))
        method = "chi2"
    else:
        slack = 1e-9 * (m + abs(d))
        over, _ = dispersion_bounds(d - slack, int(m), int(t), float(q))
        _, under = dispersion_bounds(d + slack, int(m), int(t), float(q))
        method = "bound"
    return Dispersion(index=d / m, df=h, scale=g, pvalue=min(1.0, 2.0 * min(over, under)),
                      pvalue_over=over, pvalue_under=under, m=m, method=method)
