"""Second moments: the two-point moments and the variance test (delta method or chi-square)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps

from .._validation import check_choice, check_positive_int, check_probability, check_x
from ..results import ConfidenceInterval, json_number
from ._iv import check_confidence_level, check_real
from .binomial import clopper_pearson
from .normal import format_pvalue, z_and_pvalue, z_quantile

__all__ = [
    "two_point_moments",
    "variance_test",
    "VarianceTestResult",
    "two_point_variance_pvalues",
    "two_point_variance_interval",
    "rate_roots",
]

#: Relative slack when checking ``mu4 >= sigma**4`` (rounding in callers'
#: moment formulas, e.g. :func:`two_point_moments` at ``q`` near 1/2 where
#: the two are mathematically equal).
_MU4_RTOL = 1e-9


# ---------------------------------------------------------------------------
# variance test
# ---------------------------------------------------------------------------


def two_point_moments(c: Any, q: float) -> tuple[Any, Any, Any]:
    """Mean, variance and fourth central moment of a two-point variable.

    The variable is ``c`` with probability ``q`` and 0 with probability
    ``p = 1 - q``.  For inverted dropout of an input ``x`` use ``c = x / q``:
    the output then has mean ``x``, variance ``x**2 p / q`` and fourth
    central moment ``x**4 p (p**3 + q**3) / q**3``.

    Parameters
    ----------
    c : float or array_like
        The non-zero value (finite).  Arrays are handled element-wise.
    q : float
        Probability of the value ``c``, in [0, 1].

    Returns
    -------
    mean, variance, mu4 : float or ndarray
        ``c q``, ``c**2 p q`` and ``c**4 p q (p**3 + q**3)``; floats for a
        scalar ``c``, float64 arrays of ``c``'s shape otherwise.

    Notes
    -----
    ``mu4 / variance**2 = (p**3 + q**3) / (p q) = (1 - 3 p q) / (p q)``,
    which is at least 1 (equality at ``q = 1/2``) and grows without bound as
    ``q`` approaches 0 or 1: dropout outputs are far from normal, which is
    why :func:`variance_test` uses the delta method with this ``mu4``.
    """
    scalar = np.ndim(c) == 0
    if scalar:
        c = check_real(c, "c")
        carr = np.float64(c)
    else:
        carr = check_x(c, "c")
    q = check_probability(q, "q")
    p = 1.0 - q
    mean = carr * q
    c2 = carr * carr
    var = c2 * (p * q)
    mu4 = (c2 * c2) * (p * q * (p**3 + q**3))
    if scalar:
        return float(mean), float(var), float(mu4)
    return mean, var, mu4


@dataclass(frozen=True)
class VarianceTestResult:
    """Result of :func:`variance_test`.

    Attributes
    ----------
    sample_variance : float
        The unbiased sample variance ``s**2`` (divisor ``n - 1``).
    n : int
        Sample size.
    expected_variance : float
        ``sigma**2`` under the null hypothesis.
    fourth_central_moment : float or None
        ``mu4`` under the null hypothesis (used by ``method="delta"``).
    method : {"delta", "chi2"}
    statistic : float
        ``"delta"``: ``z = (s**2 - sigma**2) / standard_error``;
        ``"chi2"``: ``(n - 1) s**2 / sigma**2``.
    pvalue : float
        Two-sided.
    standard_error : float
        Standard error of ``s**2`` under the null hypothesis:
        ``sqrt((mu4 - sigma**4 (n-3)/(n-1)) / n)`` for ``"delta"`` and the
        normal-theory ``sigma**2 sqrt(2 / (n - 1))`` for ``"chi2"``.
    """

    sample_variance: float
    n: int
    expected_variance: float
    fourth_central_moment: float | None
    method: str
    statistic: float
    pvalue: float
    standard_error: float

    @property
    def ratio(self) -> float:
        """``s**2 / sigma**2`` (1 under the null; inf/nan if ``sigma**2 == 0``)."""
        if self.expected_variance == 0.0:
            return math.nan if self.sample_variance == 0.0 else math.inf
        return self.sample_variance / self.expected_variance

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Two-sided interval for the variance.

        ``"delta"``: ``s**2 +- z * standard_error`` (the standard error under
        the null hypothesis), with the low end clipped at 0 because a
        variance is never negative (clipping keeps the coverage).
        ``"chi2"``: the normal-theory pivot interval
        ``[(n-1) s**2 / chi2.isf(a/2), (n-1) s**2 / chi2.ppf(a/2)]``,
        valid only for normal data.
        """
        cl = check_confidence_level(confidence_level)
        s2 = self.sample_variance
        if self.method == "delta":
            h = z_quantile(cl) * self.standard_error
            return ConfidenceInterval(max(0.0, s2 - h), s2 + h, cl)
        a = (1.0 - cl) / 2.0
        df = self.n - 1
        return ConfidenceInterval(
            df * s2 / float(_sps.chi2.isf(a, df)),
            df * s2 / float(_sps.chi2.ppf(a, df)),
            cl,
        )

    def __str__(self) -> str:
        name = "z" if self.method == "delta" else "chi2"
        return (
            f"variance {self.sample_variance:.9g} (n={self.n}) vs expected "
            f"{self.expected_variance:.9g} [{self.method}]: "
            f"{name}={self.statistic:.6g}, p={format_pvalue(self.pvalue)}"
        )

    def to_dict(self) -> dict:
        return {
            "test": "variance",
            "sample_variance": json_number(self.sample_variance),
            "n": int(self.n),
            "expected_variance": json_number(self.expected_variance),
            "fourth_central_moment": json_number(self.fourth_central_moment),
            "method": self.method,
            "statistic": json_number(self.statistic),
            "pvalue": json_number(self.pvalue),
            "standard_error": json_number(self.standard_error),
            "ratio": json_number(self.ratio),
        }


def _variance_test_iv(sample_variance, n, expected_variance, fourth_central_moment, method):
    s2 = check_real(sample_variance, "sample_variance", minimum=0.0)
    n = check_positive_int(n, "n", minimum=2)
    sigma2 = check_real(expected_variance, "expected_variance", minimum=0.0)
    method = check_choice(method, "method", ("delta", "chi2"))
    mu4 = None
    if fourth_central_moment is not None:
        mu4 = check_real(fourth_central_moment, "fourth_central_moment", minimum=0.0)
        if mu4 < sigma2 * sigma2 * (1.0 - _MU4_RTOL):
            raise ValueError(
                "`fourth_central_moment` must be >= `expected_variance`**2 = "
                f"{sigma2 * sigma2!r} (every distribution has mu4 >= sigma**4); "
                f"got {fourth_central_moment!r}."
            )
    elif method == "delta":
        raise ValueError(
            "`fourth_central_moment` is required for method='delta' (use "
            "two_point_moments() for dropout outputs), or pass "
            "method='chi2' for normal data; got None."
        )
    return s2, n, sigma2, mu4, method


def variance_test(
    sample_variance: float,
    n: int,
    expected_variance: float,
    *,
    fourth_central_moment: float | None = None,
    method: str = "delta",
) -> VarianceTestResult:
    """Two-sided test that a variance equals ``expected_variance``.

    Parameters
    ----------
    sample_variance : float
        The unbiased sample variance ``s**2`` (divisor ``n - 1``), ``>= 0``.
    n : int
        Sample size, ``>= 2``.
    expected_variance : float
        ``sigma**2`` under the null hypothesis, ``>= 0``.
    fourth_central_moment : float, optional
        ``mu4 = E[(X - mu)**4]`` under the null hypothesis.  Required for
        ``method="delta"``; accepted and ignored by ``"chi2"``.  Must be at
        least ``sigma**4`` (true of every distribution).
    method : {"delta", "chi2"}, optional
        ``"delta"`` (default): asymptotic z-test with the exact variance of
        ``s**2``, ``Var(s**2) = (mu4 - sigma**4 (n-3)/(n-1)) / n``, valid for
        any distribution with a finite fourth moment.  ``"chi2"``: the
        normal-theory test ``(n-1) s**2 / sigma**2 ~ chi2(n-1)``.

    Returns
    -------
    VarianceTestResult

    Notes
    -----
    Use ``"delta"`` for dropout outputs.  They take two values
    (``0`` and ``x / q``), so their kurtosis ``mu4 / sigma**4 =
    (1 - 3pq) / (pq)`` is 1 at ``q = 1/2`` and about 18 at ``q = 0.95``,
    not the 3 of a normal law that ``"chi2"`` assumes: the chi-square test is
    then badly mis-calibrated (too conservative at ``q = 1/2``, far too many
    false alarms at ``q`` near 0 or 1) and no amount of data fixes it.
    :func:`two_point_moments` gives ``sigma**2`` and ``mu4``.

    The two-sided ``"chi2"`` p-value is ``2 min(cdf, sf)`` capped at 1.
    When the null variance of ``s**2`` is 0 (``sigma**2 = 0``), the p-value
    is 1 if ``sample_variance`` equals ``expected_variance`` and 0 otherwise.
    """
    s2, n, sigma2, mu4, method = _variance_test_iv(
        sample_variance, n, expected_variance, fourth_central_moment, method
    )
    if method == "delta":
        var_s2 = (mu4 - sigma2 * sigma2 * ((n - 3) / (n - 1))) / n
        se = math.sqrt(max(var_s2, 0.0))
        z, pvalue = z_and_pvalue(s2 - sigma2, se, "two-sided")
        statistic = z
    else:
        df = n - 1
        se = sigma2 * math.sqrt(2.0 / df)
        if sigma2 == 0.0:
            statistic = math.nan if s2 == 0.0 else math.inf
            pvalue = 1.0 if s2 == 0.0 else 0.0
        else:
            statistic = df * s2 / sigma2
            lower = float(_sps.chi2.cdf(statistic, df))
            upper = float(_sps.chi2.sf(statistic, df))
            pvalue = min(1.0, 2.0 * min(lower, upper))
    return VarianceTestResult(
        sample_variance=s2,
        n=n,
        expected_variance=sigma2,
        fourth_central_moment=mu4,
        method=method,
        statistic=float(statistic),
        pvalue=float(pvalue),
        standard_error=float(se),
    )


def rate_roots(disc: float) -> set[float]:
    """The keep rates r in [0, 1] with ``1 - 4 r (1 - r) = disc`` (the roots of a two-point variance law)."""
    sq = math.sqrt(max(disc, 0.0))
    return {min(max((1 - sq) / 2, 0.0), 1.0), min(max((1 + sq) / 2, 0.0), 1.0)}


def two_point_variance_interval(k: int, N: int, n: int, c2: float, level: float) -> ConfidenceInterval:
    """Image of the keep rate's Clopper-Pearson interval (Bonferroni over ``n``) under ``v(r) = c2 r (1 - r)``."""
    lo_r, hi_r = clopper_pearson(k, N, 1 - (1 - level) / n)
    vals = [c2 * r * (1 - r) for r in (lo_r, hi_r)]
    hi = c2 / 4 if lo_r <= 0.5 <= hi_r else max(vals)
    return ConfidenceInterval(min(vals), hi, level)


def two_point_variance_pvalues(k: np.ndarray, N: int, scale: float, q: float, sigma2: float) -> np.ndarray:
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
        return _sps.binom.cdf(np.floor(x), N, q)

    def sf(x):  # P(K >= x)
        return _sps.binom.sf(np.ceil(x) - 1, N, q)

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
