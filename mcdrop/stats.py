"""Intervals, hypothesis tests, sample-size planning and multiple testing.

Everything here works on *summaries* (counts, sums, moments), never on the
raw samples, so the cost does not grow with the number of mask draws: a keep
count out of ``10**14`` trials is tested as fast as one out of ``100``.

Conventions (see ``DESIGN.md``): ``p`` is the **drop** probability and
``q = 1 - p`` the **keep** probability.  Inverted dropout is
``y = x * m / q`` with ``m ~ Bernoulli(q)``, so ``E[y] = x``,
``Var[y] = x**2 p / q`` and ``y`` takes only the values ``{0, x / q}``.
The ratio ``y / x = m / q`` has mean 1 and variance ``p / q``; the keep
indicator ``m`` has mean ``q`` and variance ``p q``.

Each public function validates its input first (bad input raises
``ValueError``/``TypeError`` naming the argument), then computes, then
returns a frozen result object in the style of :mod:`scipy.stats`:
``.statistic``, ``.pvalue``, ``.confidence_interval(confidence_level=...)``
where meaningful, a readable ``__str__`` and a JSON-ready ``to_dict()``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _sps
from scipy.optimize import brentq as _brentq
from scipy.special import ndtri

from mcdrop._validation import (
    check_alpha,
    check_choice,
    check_positive_int,
    check_probability,
    check_x,
    resolve_pq,
)
from mcdrop.results import ConfidenceInterval, json_number

__all__ = [
    # intervals
    "clopper_pearson",
    "wilson_interval",
    # tests
    "keep_rate_test",
    "mean_test",
    "variance_test",
    "two_point_moments",
    "support_test",
    "equivalence_test",
    "three_zone_verdict",
    "holm",
    "dispersion_test",
    # planning
    "plan",
    "detectable_bias",
    # result types
    "KeepRateTestResult",
    "MeanTestResult",
    "VarianceTestResult",
    "SupportTestResult",
    "EquivalenceTestResult",
    "HolmResult",
    "DispersionTestResult",
    "PlanResult",
]

_ALTERNATIVES = ("two-sided", "less", "greater")

#: How many off-support values :func:`support_test` reports verbatim.
_N_SUPPORT_EXAMPLES = 5

#: Relative slack when checking ``mu4 >= sigma**4`` (rounding in callers'
#: moment formulas, e.g. :func:`two_point_moments` at ``q`` near 1/2 where
#: the two are mathematically equal).
_MU4_RTOL = 1e-9

#: :func:`plan` with ``method="exact"`` refuses to search beyond this many
#: draws (int64 keep counts; beyond it use the normal method).
_EXACT_PLAN_MAX = 2**62


# ---------------------------------------------------------------------------
# small private validators (the shared ones live in mcdrop._validation)
# ---------------------------------------------------------------------------


def _real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float, or raise naming ``name``.

    ``minimum`` with ``strict=False`` means ``value >= minimum``; with
    ``strict=True`` it means ``value > minimum``.  NaN is always refused,
    infinities unless ``allow_inf``.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a real number; got {value!r} of type "
            f"{type(value).__name__}."
        )
    f = float(value)
    if math.isnan(f) or (math.isinf(f) and not allow_inf):
        raise ValueError(f"`{name}` must be a finite real number; got {value!r}.")
    if minimum is not None:
        if strict and not f > minimum:
            raise ValueError(f"`{name}` must be > {minimum:g}; got {value!r}.")
        if not strict and not f >= minimum:
            raise ValueError(f"`{name}` must be >= {minimum:g}; got {value!r}.")
    return f


def _count(k: Any, n: int, name: str = "k", n_name: str = "n") -> int:
    """Return ``k`` as an int in ``[0, n]``."""
    k = check_positive_int(k, name, minimum=0)
    if k > n:
        raise ValueError(
            f"`{name}` must be an integer in [0, `{n_name}`] = [0, {n}]; got {k}."
        )
    return k


def _confidence_level(confidence_level: Any) -> float:
    return check_alpha(confidence_level, "confidence_level")


def _alternative(alternative: Any) -> str:
    return check_choice(alternative, "alternative", _ALTERNATIVES)


def _z_two_sided(confidence_level: float) -> float:
    """``z`` with ``P(|Z| <= z) = confidence_level``."""
    return float(_sps.norm.isf((1.0 - confidence_level) / 2.0))


def _fmt_p(pvalue: float | None) -> str:
    return "n/a" if pvalue is None else f"{pvalue:.3g}"


def _normal_interval(
    estimate: float, se: float, confidence_level: float, alternative: str
) -> ConfidenceInterval:
    """``estimate +- z * se`` (one-sided bounds for one-sided alternatives)."""
    if alternative == "two-sided":
        h = _z_two_sided(confidence_level) * se
        return ConfidenceInterval(estimate - h, estimate + h, confidence_level)
    h = float(_sps.norm.isf(1.0 - confidence_level)) * se
    if alternative == "less":
        return ConfidenceInterval(-math.inf, estimate + h, confidence_level)
    return ConfidenceInterval(estimate - h, math.inf, confidence_level)


def _z_pvalue(z: float, alternative: str) -> float:
    """Normal p-value of a z statistic (``z`` may be +-inf)."""
    if alternative == "two-sided":
        return float(min(1.0, 2.0 * _sps.norm.sf(abs(z))))
    if alternative == "less":
        return float(_sps.norm.cdf(z))
    return float(_sps.norm.sf(z))


# ---------------------------------------------------------------------------
# binomial intervals
# ---------------------------------------------------------------------------


def _binomial_iv(k: Any, n: Any, confidence_level: Any) -> tuple[int, int, float]:
    n = check_positive_int(n, "n")
    k = _count(k, n)
    return k, n, _confidence_level(confidence_level)


def _solve_tail(f, x0: float, step: float) -> float:
    """Root in [0, 1] of a monotone binomial-tail equation ``f(prob) = 0``.

    Brackets the root by expanding ``x0 +- step`` geometrically (``f`` has
    opposite signs at 0 and 1), then runs Brent's method to full double
    precision.
    """
    if not (0.0 < x0 < 1.0) or not math.isfinite(x0):
        a, b = 0.0, 1.0
    else:
        if f(x0) == 0.0:
            return x0
        while True:
            a, b = max(0.0, x0 - step), min(1.0, x0 + step)
            if f(a) * f(b) <= 0.0 or (a == 0.0 and b == 1.0):
                break
            step *= 4.0
    return float(_brentq(f, a, b, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def _clopper_pearson_bounds(
    k: int, n: int, confidence_level: float, alternative: str = "two-sided"
) -> tuple[float, float]:
    a = 1.0 - confidence_level
    if alternative == "two-sided":
        a /= 2.0
    binom = _sps.binom
    if k == 0 or alternative == "less":
        low = 0.0
    else:
        # Start at the beta quantile and polish on the binomial tail itself:
        # boost's beta quantile is off by up to ~1e-10 absolute (a good
        # fraction of the interval's width) for n around 1e14.
        x0 = float(_sps.beta.ppf(a, k, n - k + 1))
        step = 1e-3 * math.sqrt(max(x0 * (1.0 - x0), 0.0) / n) + 8e-16 * x0
        low = _solve_tail(lambda prob: binom.sf(k - 1, n, prob) - a, x0, step)
    if k == n or alternative == "greater":
        high = 1.0
    else:
        x0 = float(_sps.beta.isf(a, k + 1, n - k))
        step = 1e-3 * math.sqrt(max(x0 * (1.0 - x0), 0.0) / n) + 8e-16 * x0
        high = _solve_tail(lambda prob: binom.cdf(k, n, prob) - a, x0, step)
    return low, high


def _wilson_bounds(
    k: int, n: int, confidence_level: float, alternative: str = "two-sided"
) -> tuple[float, float]:
    # Newcombe (1998), the same formula as scipy's binomtest(...).proportion_ci.
    if alternative == "two-sided":
        z = float(ndtri(0.5 + 0.5 * confidence_level))
    else:
        z = float(ndtri(confidence_level))
    phat = k / n
    denom = 2.0 * (n + z * z)
    center = (2.0 * n * phat + z * z) / denom
    delta = z / denom * math.sqrt(4.0 * n * phat * (1.0 - phat) + z * z)
    low = 0.0 if (k == 0 or alternative == "less") else center - delta
    high = 1.0 if (k == n or alternative == "greater") else center + delta
    return low, high


def clopper_pearson(k: int, n: int, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion.

    Parameters
    ----------
    k : int
        Number of successes (for example kept mask entries), ``0 <= k <= n``.
    n : int
        Number of trials, ``n >= 1``.  Counts up to about ``2**53`` are exact
        in the underlying float64 computation; ``10**14`` is fine.
    confidence_level : float, optional
        In the open interval (0, 1).  Default 0.95.

    Returns
    -------
    ConfidenceInterval
        ``[low, high]`` with ``low = 0`` when ``k == 0`` and ``high = 1``
        when ``k == n``.

    Notes
    -----
    The bounds solve ``P(K >= k; n, low) = a/2`` and
    ``P(K <= k; n, high) = a/2`` with ``a = 1 - confidence_level``: the
    interval :func:`scipy.stats.binomtest` computes with
    ``proportion_ci(method="exact")``.  They start from the beta quantiles
    ``B^{-1}(a/2; k, n-k+1)`` and ``B^{-1}(1-a/2; k+1, n-k)`` and are then
    polished by Brent's method on the binomial tails to full double
    precision (the beta quantile alone is off by up to ~1e-10 absolute at
    ``n = 10**14``, which is most of a 1e-7-wide interval's last digits;
    scipy's own root finding stops at an absolute 2e-12).  A call costs
    about a millisecond at any ``n``.  The coverage is at least
    ``confidence_level`` for every true proportion.

    Examples
    --------
    >>> from mcdrop.stats import clopper_pearson
    >>> ci = clopper_pearson(7, 10)
    >>> round(ci.low, 4), round(ci.high, 4)
    (0.3475, 0.9333)
    """
    k, n, cl = _binomial_iv(k, n, confidence_level)
    return ConfidenceInterval(*_clopper_pearson_bounds(k, n, cl), cl)


def wilson_interval(k: int, n: int, confidence_level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for a binomial proportion (no continuity correction).

    Parameters
    ----------
    k : int
        Number of successes, ``0 <= k <= n``.
    n : int
        Number of trials, ``n >= 1``.
    confidence_level : float, optional
        In the open interval (0, 1).  Default 0.95.

    Returns
    -------
    ConfidenceInterval
        The same bounds as ``scipy.stats.binomtest(k, n).proportion_ci(
        confidence_level, method="wilson")``; ``low = 0`` when ``k == 0`` and
        ``high = 1`` when ``k == n``.

    Notes
    -----
    Wilson's interval has coverage close to (not always above) the nominal
    level and is shorter than Clopper–Pearson for small ``n``.  For the large
    counts of a Monte Carlo run the two agree to many digits.
    """
    k, n, cl = _binomial_iv(k, n, confidence_level)
    return ConfidenceInterval(*_wilson_bounds(k, n, cl), cl)


# ---------------------------------------------------------------------------
# keep-rate test (exact binomial)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepRateTestResult:
    """Result of :func:`keep_rate_test`.

    Attributes
    ----------
    kept, trials : int
        Observed keep count and number of Bernoulli draws.
    q : float
        Keep probability under the null hypothesis.
    statistic : float
        Observed keep rate ``kept / trials``.
    pvalue : float
        Exact binomial p-value.
    alternative : {"two-sided", "less", "greater"}
    """

    kept: int
    trials: int
    q: float
    statistic: float
    pvalue: float
    alternative: str

    def confidence_interval(
        self, confidence_level: float = 0.95, method: str = "exact"
    ) -> ConfidenceInterval:
        """Interval for the keep rate.

        Parameters
        ----------
        confidence_level : float, optional
            In the open interval (0, 1).  Default 0.95.
        method : {"exact", "wilson"}, optional
            ``"exact"`` is Clopper–Pearson (default), ``"wilson"`` the Wilson
            score interval.

        Returns
        -------
        ConfidenceInterval
            Two-sided for ``alternative="two-sided"``; for ``"less"`` the
            low end is 0 and for ``"greater"`` the high end is 1 (one-sided
            bounds, as in :mod:`scipy.stats`).
        """
        cl = _confidence_level(confidence_level)
        method = check_choice(method, "method", ("exact", "wilson"))
        bounds = _clopper_pearson_bounds if method == "exact" else _wilson_bounds
        return ConfidenceInterval(
            *bounds(self.kept, self.trials, cl, self.alternative), cl
        )

    def __str__(self) -> str:
        return (
            f"keep rate {self.statistic:.9g} ({self.kept} kept of {self.trials}) "
            f"vs q={self.q:.9g}: exact binomial test ({self.alternative}), "
            f"p={_fmt_p(self.pvalue)}"
        )

    def to_dict(self) -> dict:
        return {
            "test": "keep_rate",
            "kept": int(self.kept),
            "trials": int(self.trials),
            "q": json_number(self.q),
            "statistic": json_number(self.statistic),
            "pvalue": json_number(self.pvalue),
            "alternative": self.alternative,
        }


def _keep_rate_test_iv(kept, trials, q, alternative):
    trials = check_positive_int(trials, "trials")
    kept = _count(kept, trials, "kept", "trials")
    q = check_probability(q, "q")
    return kept, trials, q, _alternative(alternative)


def keep_rate_test(
    kept: int, trials: int, q: float, *, alternative: str = "two-sided"
) -> KeepRateTestResult:
    """Exact binomial test that the keep rate equals ``q``.

    Parameters
    ----------
    kept : int
        Number of kept entries, ``0 <= kept <= trials``.
    trials : int
        Number of Bernoulli mask draws (up to ``10**14`` and beyond).
    q : float
        The **keep** probability under the null hypothesis (``q = 1 - p``
        where ``p`` is the drop probability), in [0, 1].
    alternative : {"two-sided", "less", "greater"}, optional
        ``"less"``: the true keep rate is below ``q``; ``"greater"``: above.

    Returns
    -------
    KeepRateTestResult
        ``statistic`` is ``kept / trials``; ``pvalue`` is exact.

    Notes
    -----
    The p-value is :func:`scipy.stats.binomtest`'s: the two-sided one uses
    the "minlike" definition (the probability of every count no more likely
    than the observed one).  scipy finds the opposite tail by bisection on
    the pmf and sums two tails with ``binom.cdf``/``binom.sf``, so the cost is
    ``O(log trials)``: about a millisecond at ``trials = 10**14``, with tail
    probabilities that agree with the normal approximation to the size of the
    skewness correction (checked in the test suite).

    At ``q = 0`` or ``q = 1`` the count is deterministic under the null: the
    p-value is 1 if ``kept`` is consistent with it (equal to ``trials * q``
    for the two-sided test, on the side allowed by a one-sided alternative)
    and 0 otherwise.
    """
    kept, trials, q, alternative = _keep_rate_test_iv(kept, trials, q, alternative)
    if q in (0.0, 1.0):
        expected = 0 if q == 0.0 else trials
        if alternative == "two-sided":
            pvalue = 1.0 if kept == expected else 0.0
        elif alternative == "less":  # P(K <= kept) with K == expected
            pvalue = 1.0 if kept >= expected else 0.0
        else:
            pvalue = 1.0 if kept <= expected else 0.0
    else:
        pvalue = float(_sps.binomtest(kept, trials, q, alternative=alternative).pvalue)
    return KeepRateTestResult(
        kept=kept,
        trials=trials,
        q=q,
        statistic=kept / trials,
        pvalue=pvalue,
        alternative=alternative,
    )


# ---------------------------------------------------------------------------
# mean test (CLT z-test)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanTestResult:
    """Result of :func:`mean_test`.

    Attributes
    ----------
    estimate, standard_error, expected : float
        The inputs.
    statistic : float
        ``z = (estimate - expected) / standard_error`` (``+-inf`` or 0 when
        the standard error is 0).
    pvalue : float
    alternative : {"two-sided", "less", "greater"}
    """

    estimate: float
    standard_error: float
    expected: float
    statistic: float
    pvalue: float
    alternative: str

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """``estimate +- z * standard_error``.

        One-sided alternatives give a one-sided bound (``-inf`` low end for
        ``"less"``, ``+inf`` high end for ``"greater"``).  With a zero
        standard error the interval is the single point ``estimate``.
        """
        cl = _confidence_level(confidence_level)
        return _normal_interval(self.estimate, self.standard_error, cl, self.alternative)

    def __str__(self) -> str:
        return (
            f"mean {self.estimate:.9g} +- {self.standard_error:.3g} (se) vs "
            f"expected {self.expected:.9g}: z={self.statistic:.4g} "
            f"({self.alternative}), p={_fmt_p(self.pvalue)}"
        )

    def to_dict(self) -> dict:
        return {
            "test": "mean",
            "estimate": json_number(self.estimate),
            "standard_error": json_number(self.standard_error),
            "expected": json_number(self.expected),
            "statistic": json_number(self.statistic),
            "pvalue": json_number(self.pvalue),
            "alternative": self.alternative,
        }


def _z_and_pvalue(diff: float, se: float, alternative: str) -> tuple[float, float]:
    """z statistic and p-value, with the point-mass convention at ``se == 0``."""
    if se == 0.0:
        if diff == 0.0:
            return 0.0, 1.0
        z = math.copysign(math.inf, diff)
        return z, _z_pvalue(z, alternative)
    z = diff / se
    return z, _z_pvalue(z, alternative)


def mean_test(
    estimate: float,
    standard_error: float,
    expected: float,
    *,
    alternative: str = "two-sided",
) -> MeanTestResult:
    """Normal (CLT) z-test that a mean equals ``expected``.

    Parameters
    ----------
    estimate : float
        The sample mean (finite).
    standard_error : float
        Its standard error, ``>= 0``: either from theory (for inverted
        dropout, ``|x| * sqrt(p / (q * N))`` for ``N`` draws) or estimated
        from the sample variance.
    expected : float
        The mean under the null hypothesis.
    alternative : {"two-sided", "less", "greater"}, optional
        ``"less"``: the true mean is below ``expected``; ``"greater"``: above.

    Returns
    -------
    MeanTestResult
        ``statistic`` is ``z = (estimate - expected) / standard_error``.

    Notes
    -----
    With ``standard_error == 0`` the estimate is treated as exact: the
    p-value is 1 if ``estimate == expected``, otherwise 0 for the two-sided
    test (and 0 or 1 by the side for a one-sided one); the confidence
    interval is the single point ``estimate``.
    """
    estimate = _real(estimate, "estimate")
    standard_error = _real(standard_error, "standard_error", minimum=0.0)
    expected = _real(expected, "expected")
    alternative = _alternative(alternative)
    z, pvalue = _z_and_pvalue(estimate - expected, standard_error, alternative)
    return MeanTestResult(
        estimate=estimate,
        standard_error=standard_error,
        expected=expected,
        statistic=z,
        pvalue=pvalue,
        alternative=alternative,
    )


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
        c = _real(c, "c")
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
        cl = _confidence_level(confidence_level)
        s2 = self.sample_variance
        if self.method == "delta":
            h = _z_two_sided(cl) * self.standard_error
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
            f"{name}={self.statistic:.6g}, p={_fmt_p(self.pvalue)}"
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
    s2 = _real(sample_variance, "sample_variance", minimum=0.0)
    n = check_positive_int(n, "n", minimum=2)
    sigma2 = _real(expected_variance, "expected_variance", minimum=0.0)
    method = check_choice(method, "method", ("delta", "chi2"))
    mu4 = None
    if fourth_central_moment is not None:
        mu4 = _real(fourth_central_moment, "fourth_central_moment", minimum=0.0)
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
        z, pvalue = _z_and_pvalue(s2 - sigma2, se, "two-sided")
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


# ---------------------------------------------------------------------------
# support test (exact, no p-value)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SupportTestResult:
    """Result of :func:`support_test`.

    Attributes
    ----------
    n_values : int
        Number of values checked.
    n_off_support : int
        Number of values that are neither 0 nor ``x * scale`` (within
        ``ulps``); also available as ``statistic``.
    examples : list of dict
        Up to five offending values, in C order: ``{"index": [...],
        "value": float, "expected": float}`` (``expected`` is the non-zero
        support point ``x * scale``).  JSON-ready.
    ulps : float
        The tolerance used, in units in the last place of the values' dtype.
    max_ulps : float
        Largest distance, in ulps, between a non-zero value and ``x * scale``
        (0 if every value is 0; inf if a value is not finite).
    dtype : str
        The values' dtype.
    """

    n_values: int
    n_off_support: int
    examples: list
    ulps: float
    max_ulps: float
    dtype: str

    @property
    def statistic(self) -> int:
        """The number of off-support values."""
        return self.n_off_support

    @property
    def pvalue(self) -> None:
        """None: the support check is exact, not statistical."""
        return None

    @property
    def passed(self) -> bool:
        """True when every value is on the support."""
        return self.n_off_support == 0

    def __str__(self) -> str:
        text = (
            f"support {{0, x*scale}}: {self.n_off_support} of {self.n_values} "
            f"values off support (tolerance {self.ulps:g} ulp of {self.dtype}, "
            f"worst non-zero value {self.max_ulps:.3g} ulp)"
        )
        if self.examples:
            e = self.examples[0]
            text += (
                f"; e.g. index {tuple(e['index'])}: {e['value']!r} "
                f"(expected 0 or {e['expected']!r})"
            )
        return text

    def to_dict(self) -> dict:
        return {
            "test": "support",
            "passed": self.passed,
            "statistic": int(self.n_off_support),
            "pvalue": None,
            "n_values": int(self.n_values),
            "n_off_support": int(self.n_off_support),
            "examples": [
                {
                    "index": [int(i) for i in e["index"]],
                    "value": json_number(e["value"]),
                    "expected": json_number(e["expected"]),
                }
                for e in self.examples
            ],
            "ulps": json_number(self.ulps),
            "max_ulps": json_number(self.max_ulps),
            "dtype": self.dtype,
        }


def _support_test_iv(values, x, scale, ulps):
    if isinstance(values, (str, bytes)):
        raise TypeError(f"`values` must be a numeric array-like; got {values!r}.")
    v = np.asarray(values)
    kind = v.dtype.kind
    if kind in "biu":
        work_dtype = np.dtype(np.float64)
    elif kind == "f":
        work_dtype = v.dtype
    else:
        # e.g. ml_dtypes.bfloat16 (kind "V"): usable if numpy can take the
        # spacing in it.
        try:
            np.spacing(np.zeros(1, dtype=v.dtype))
            np.zeros(1, dtype=v.dtype).astype(np.float64)
        except Exception:
            raise TypeError(
                f"`values` must be a real floating-point (or integer) array; "
                f"got dtype {v.dtype}."
            ) from None
        work_dtype = v.dtype
    if v.size == 0:
        raise ValueError(f"`values` must not be empty; got shape {v.shape}.")
    x_arr = np.asarray(x) if not isinstance(x, (str, bytes)) else x
    if isinstance(x_arr, np.ndarray) and x_arr.dtype.kind == "V":
        # e.g. bfloat16 inputs: check_x takes numpy's own dtypes only.
        try:
            x_arr = x_arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    xa = check_x(x_arr, "x")
    try:
        shape = np.broadcast_shapes(v.shape, xa.shape)
    except ValueError:
        shape = None
    if shape != v.shape:
        raise ValueError(
            f"`values` must have shape (..., *x.shape) so that `x` broadcasts "
            f"against it; got values.shape={v.shape} and x.shape={xa.shape}."
        )
    scale = _real(scale, "scale", minimum=0.0, strict=True)
    ulps = _real(ulps, "ulps", minimum=0.0)
    return v, xa, scale, ulps, work_dtype


def support_test(values: Any, x: Any, scale: float, *, ulps: float = 4) -> SupportTestResult:
    """Check that every output is 0 or ``x * scale`` (exact, no p-value).

    Parameters
    ----------
    values : array_like
        Observed outputs, shape ``(..., *x.shape)`` (``x`` broadcasts
        against it), of a floating-point dtype (float16/32/64, bfloat16 via
        ml_dtypes; integers are compared as float64).
    x : array_like
        The inputs (finite).
    scale : float
        The scale of kept entries, ``> 0``: ``1 / q`` for inverted dropout.
    ulps : float, optional
        Tolerance in units in the last place of the *values'* dtype,
        ``>= 0``.  Default 4, which accepts the rounding of ``x / q`` or
        ``x * (1 / q)`` computed in float32 or float16.

    Returns
    -------
    SupportTestResult
        ``statistic`` = number of off-support values; ``pvalue`` is None;
        ``passed`` is True when there are none.

    Notes
    -----
    A value ``v`` at an element with input ``x`` is on the support when
    ``v == 0`` (dropped; ``-0.0`` counts) or
    ``|v - x * scale| <= ulps * spacing(|x * scale|)``, where ``x * scale``
    is computed in float64 and ``spacing`` is :func:`numpy.spacing` in the
    values' dtype.  At ``x == 0`` both support points are 0, so the value
    must be 0 (up to ``ulps`` of the smallest subnormal).  NaN and inf are
    always off support.  The whole array is processed at once (a few
    temporaries of ``values``' size).
    """
    v, xa, scale, ulps, work_dtype = _support_test_iv(values, x, scale, ulps)
    expected = xa * scale  # float64, broadcasts against v
    with np.errstate(over="ignore", invalid="ignore"):
        spacing = np.spacing(np.abs(expected).astype(work_dtype)).astype(np.float64)
        v64 = v.astype(np.float64)
        dropped = v64 == 0.0
        dist = np.abs(v64 - expected) / spacing  # in ulps; nan/inf for bad values
        dist = np.where(np.isnan(dist), np.inf, dist)
        on = dropped | (dist <= ulps)
    off = ~on
    n_off = int(np.count_nonzero(off))
    nonzero = ~dropped
    max_ulps = float(np.max(dist[nonzero])) if np.any(nonzero) else 0.0
    examples = []
    if n_off:
        flat = np.flatnonzero(off.ravel())[:_N_SUPPORT_EXAMPLES]
        exp_full = np.broadcast_to(expected, v.shape)
        for i in flat:
            idx = np.unravel_index(int(i), v.shape)
            examples.append(
                {
                    "index": [int(j) for j in idx],
                    "value": float(v64[idx]),
                    "expected": float(exp_full[idx]),
                }
            )
    return SupportTestResult(
        n_values=int(v.size),
        n_off_support=n_off,
        examples=examples,
        ulps=ulps,
        max_ulps=max_ulps,
        dtype=str(v.dtype),
    )


# ---------------------------------------------------------------------------
# equivalence (TOST) and the three-zone verdict
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EquivalenceTestResult:
    """Result of :func:`equivalence_test`.

    Attributes
    ----------
    estimate, standard_error : float
    low, high : float
        The equivalence band (``low < high``; either may be infinite).
    statistic : float
        ``min((estimate - low) / se, (high - estimate) / se)``: the distance,
        in standard errors, to the nearer edge of the band (negative when
        the estimate is outside the band).
    pvalue : float
        ``max(pvalue_low, pvalue_high)``; small means "equivalent".
    pvalue_low, pvalue_high : float
        One-sided p-values of ``H0: mean <= low`` and ``H0: mean >= high``.
    """

    estimate: float
    standard_error: float
    low: float
    high: float
    statistic: float
    pvalue: float
    pvalue_low: float
    pvalue_high: float

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Two-sided ``estimate +- z * standard_error``.

        The TOST at level ``alpha`` rejects exactly when the interval at
        ``confidence_level = 1 - 2 * alpha`` lies inside ``[low, high]``
        (:func:`three_zone_verdict` gives ``"pass"``), up to the boundary.
        """
        cl = _confidence_level(confidence_level)
        return _normal_interval(self.estimate, self.standard_error, cl, "two-sided")

    def __str__(self) -> str:
        return (
            f"equivalence of {self.estimate:.9g} +- {self.standard_error:.3g} (se) "
            f"to [{self.low:.6g}, {self.high:.6g}]: TOST p={_fmt_p(self.pvalue)}"
        )

    def to_dict(self) -> dict:
        return {
            "test": "equivalence",
            "estimate": json_number(self.estimate),
            "standard_error": json_number(self.standard_error),
            "low": json_number(self.low),
            "high": json_number(self.high),
            "statistic": json_number(self.statistic),
            "pvalue": json_number(self.pvalue),
            "pvalue_low": json_number(self.pvalue_low),
            "pvalue_high": json_number(self.pvalue_high),
        }


def _band_iv(low, high) -> tuple[float, float]:
    low = _real(low, "low", allow_inf=True)
    high = _real(high, "high", allow_inf=True)
    if not low < high:
        raise ValueError(f"`low` must be < `high`; got low={low!r}, high={high!r}.")
    return low, high


def equivalence_test(
    estimate: float, standard_error: float, low: float, high: float
) -> EquivalenceTestResult:
    """Two one-sided tests (TOST) that a mean lies inside ``(low, high)``.

    Parameters
    ----------
    estimate : float
        The estimate (finite).
    standard_error : float
        Its standard error, ``>= 0``.
    low, high : float
        The equivalence band, ``low < high``; ``-inf``/``inf`` give a
        one-sided (non-inferiority) test.

    Returns
    -------
    EquivalenceTestResult
        ``pvalue = max(pvalue_low, pvalue_high)`` with
        ``pvalue_low = P(Z >= (estimate - low) / se)`` and
        ``pvalue_high = P(Z <= (estimate - high) / se)``.  A small p-value
        is evidence that the mean is inside the band.

    Notes
    -----
    With ``standard_error == 0`` the estimate is exact: each one-sided
    p-value is 0 if the estimate is strictly on the inner side of that
    edge and 1 otherwise.
    """
    estimate = _real(estimate, "estimate")
    se = _real(standard_error, "standard_error", minimum=0.0)
    low, high = _band_iv(low, high)
    z_low, p_low = _z_and_pvalue(estimate - low, se, "greater")
    z_high, p_high = _z_and_pvalue(estimate - high, se, "less")
    if se == 0.0:  # a point on an edge is not inside the band
        p_low = 1.0 if estimate <= low else 0.0
        p_high = 1.0 if estimate >= high else 0.0
    return EquivalenceTestResult(
        estimate=estimate,
        standard_error=se,
        low=low,
        high=high,
        statistic=float(min(z_low, -z_high)),
        pvalue=float(max(p_low, p_high)),
        pvalue_low=float(p_low),
        pvalue_high=float(p_high),
    )


def three_zone_verdict(interval: ConfidenceInterval, low: float, high: float) -> str:
    """Compare a confidence interval with a tolerance band ``[low, high]``.

    Parameters
    ----------
    interval : ConfidenceInterval
        The interval for the estimated quantity (no NaN bounds).
    low, high : float
        The harmless band, ``low < high`` (infinite ends allowed).

    Returns
    -------
    {"pass", "fail", "inconclusive"}
        ``"fail"`` if the interval lies entirely outside ``[low, high]``
        (no common point), ``"pass"`` if it lies entirely inside (closed
        band), ``"inconclusive"`` otherwise (it straddles an edge: the data
        cannot tell a harmless deviation from a harmful one).

    Notes
    -----
    With the interval at ``1 - 2 * alpha``, ``"pass"`` is the TOST of
    :func:`equivalence_test` at level ``alpha``; with it at ``1 - alpha``,
    ``"fail"`` rejects every value in the band at level ``alpha``.
    """
    if not isinstance(interval, ConfidenceInterval):
        raise TypeError(
            f"`interval` must be a mcdrop.results.ConfidenceInterval; got "
            f"{interval!r} of type {type(interval).__name__}."
        )
    if math.isnan(interval.low) or math.isnan(interval.high) or interval.low > interval.high:
        raise ValueError(
            f"`interval` must have low <= high and no NaN; got {interval!r}."
        )
    low, high = _band_iv(low, high)
    if interval.high < low or interval.low > high:
        return "fail"
    if low <= interval.low and interval.high <= high:
        return "pass"
    return "inconclusive"


# ---------------------------------------------------------------------------
# Holm–Bonferroni
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HolmResult:
    """Result of :func:`holm`.

    Attributes
    ----------
    rejected : ndarray of bool
        Which null hypotheses are rejected, in the original order
        (``adjusted_pvalues <= alpha``).
    adjusted_pvalues : ndarray of float
        Holm-adjusted p-values in the original order: monotone along the
        sorted p-values and capped at 1.
    alpha : float
        The family-wise error rate controlled.
    pvalues : ndarray of float
        The raw p-values given.
    """

    rejected: np.ndarray
    adjusted_pvalues: np.ndarray
    alpha: float
    pvalues: np.ndarray

    @property
    def n_rejected(self) -> int:
        return int(np.count_nonzero(self.rejected))

    def __str__(self) -> str:
        return (
            f"Holm step-down at family-wise alpha={self.alpha:.3g}: "
            f"{self.n_rejected} of {self.rejected.size} hypotheses rejected"
        )

    def to_dict(self) -> dict:
        return {
            "method": "holm",
            "alpha": json_number(self.alpha),
            "pvalues": [json_number(float(v)) for v in self.pvalues],
            "adjusted_pvalues": [json_number(float(v)) for v in self.adjusted_pvalues],
            "rejected": [bool(r) for r in self.rejected],
        }


def _holm_iv(pvalues, alpha):
    if isinstance(pvalues, (str, bytes)):
        raise TypeError(f"`pvalues` must be a 1-D array of floats; got {pvalues!r}.")
    try:
        raw = np.asarray(pvalues)
    except (TypeError, ValueError):  # ragged nesting
        raw = None
    if raw is None or (raw.size and raw.dtype.kind not in "fiu"):
        raise TypeError(
            f"`pvalues` must be a 1-D array of floats (no None); got {pvalues!r}."
        )
    arr = raw.astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"`pvalues` must be 1-D; got shape {arr.shape}.")
    if np.any(np.isnan(arr)):
        raise ValueError(f"`pvalues` must not contain NaN; got {pvalues!r}.")
    if np.any((arr < 0.0) | (arr > 1.0)):
        bad = arr[(arr < 0.0) | (arr > 1.0)][0]
        raise ValueError(f"`pvalues` must all be in [0, 1]; got {bad!r}.")
    return arr.copy(), check_alpha(alpha)


def holm(pvalues: Any, alpha: float) -> HolmResult:
    """Holm–Bonferroni step-down multiple testing.

    Parameters
    ----------
    pvalues : array_like of float
        1-D, every entry in [0, 1]; NaN or None is an error.  An empty array
        gives empty results.
    alpha : float
        Family-wise error rate, in (0, 1).

    Returns
    -------
    HolmResult
        ``adjusted_pvalues`` and ``rejected`` in the order of ``pvalues``.

    Notes
    -----
    With the p-values sorted ascending, ``p_(1) <= ... <= p_(m)`` (ties kept
    in input order), the adjusted p-values are
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``, and a hypothesis is rejected
    when its adjusted p-value is ``<= alpha`` — the same as rejecting
    ``H_(1), ..., H_(k)`` for the largest ``k`` with
    ``p_(j) <= alpha / (m - j + 1)`` for all ``j <= k``.  This controls the
    family-wise error rate at ``alpha`` under any dependence.
    """
    arr, alpha = _holm_iv(pvalues, alpha)
    m = arr.size
    order = np.argsort(arr, kind="stable")
    factors = np.arange(m, 0, -1, dtype=np.float64)
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(arr[order] * factors))
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = adj_sorted
    return HolmResult(
        rejected=adjusted <= alpha,
        adjusted_pvalues=adjusted,
        alpha=alpha,
        pvalues=arr,
    )


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
        cl = _confidence_level(confidence_level)
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
            f"p={_fmt_p(self.pvalue)} (over {_fmt_p(self.pvalue_over)}, "
            f"under {_fmt_p(self.pvalue_under)})"
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


# ---------------------------------------------------------------------------
# power and sample-size planning
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    """Result of :func:`plan`.

    Attributes
    ----------
    samples : int
        Number of Bernoulli mask draws needed (``int(result)`` gives it).
    p, q : float
        Drop and keep probability.
    bias : float
        Relative bias to detect.
    alpha, power : float
        Two-sided significance level and the power asked for.
    method : {"normal", "exact"}
    """

    samples: int
    p: float
    q: float
    bias: float
    alpha: float
    power: float
    method: str

    def __int__(self) -> int:
        return int(self.samples)

    def __str__(self) -> str:
        return (
            f"{self.samples:,} mask draws detect a relative bias of {self.bias:.3g} "
            f"at p={self.p:.6g} (two-sided alpha={self.alpha:.3g}, "
            f"power {self.power:.3g}, {self.method} method)"
        )

    def to_dict(self) -> dict:
        return {
            "samples": int(self.samples),
            "p": json_number(self.p),
            "q": json_number(self.q),
            "bias": json_number(self.bias),
            "alpha": json_number(self.alpha),
            "power": json_number(self.power),
            "method": self.method,
        }


def _resolve_pq_for_power(p, keep) -> tuple[float, float]:
    p, q = resolve_pq(p, keep)
    if q == 0.0:
        name, value = ("keep", keep) if keep is not None else ("p", p)
        raise ValueError(
            f"`{name}` must give a keep probability > 0 (drop probability "
            f"p < 1): inverted dropout divides by q = 1 - p, so its output is "
            f"undefined at p = 1; got {name}={value!r}."
        )
    return p, q


def _alpha_power_iv(alpha, power) -> tuple[float, float]:
    alpha = check_alpha(alpha)
    power = check_alpha(power, "power")
    if not power > alpha:
        raise ValueError(
            f"`power` must be greater than `alpha` (every test has power >= "
            f"its level); got power={power!r}, alpha={alpha!r}."
        )
    return alpha, power


def _z_sum(alpha: float, power: float) -> float:
    """``z_{1 - alpha/2} + z_{power}``."""
    return float(_sps.norm.isf(alpha / 2.0) + _sps.norm.ppf(power))


def _exact_critical(n: int, q: float, a: float) -> tuple[int, int]:
    """Equal-tailed critical counts of the exact binomial test.

    Returns ``(c_low, c_high)``: reject when ``K <= c_low`` or
    ``K >= c_high`` with ``P(K <= c_low) <= a`` and ``P(K >= c_high) <= a``
    under Binomial(n, q), each as large (small) as possible.
    """
    c = int(_sps.binom.ppf(a, n, q))  # smallest k with cdf(k) >= a
    while c >= 0 and _sps.binom.cdf(c, n, q) > a:
        c -= 1
    while c + 1 <= n and _sps.binom.cdf(c + 1, n, q) <= a:
        c += 1
    u = int(_sps.binom.isf(a, n, q)) + 1  # P(K >= u) = sf(u - 1)
    while u <= n and _sps.binom.sf(u - 1, n, q) > a:
        u += 1
    while u - 1 >= 0 and _sps.binom.sf(u - 2, n, q) <= a:
        u -= 1
    return c, u


def _exact_power(n: int, q: float, q1: float, alpha: float) -> float:
    c, u = _exact_critical(n, q, alpha / 2.0)
    power = 0.0
    if c >= 0:
        power += float(_sps.binom.cdf(c, n, q1))
    if u <= n:
        power += float(_sps.binom.sf(u - 1, n, q1))
    return power


def _plan_iv(p, keep, bias, alpha, power, method):
    p, q = _resolve_pq_for_power(p, keep)
    bias = _real(bias, "bias", minimum=0.0, strict=True)
    alpha, power = _alpha_power_iv(alpha, power)
    method = check_choice(method, "method", ("normal", "exact"))
    if method == "exact" and p > 0.0 and q * (1.0 + bias) > 1.0:
        raise ValueError(
            f"`bias` must satisfy q*(1 + bias) <= 1 for method='exact' (the "
            f"alternative keep rate is a probability); got bias={bias!r} "
            f"with q={q!r}."
        )
    return p, q, bias, alpha, power, method


def plan(
    p: float | None = None,
    *,
    keep: float | None = None,
    bias: float,
    alpha: float = 1e-6,
    power: float = 0.99,
    method: str = "normal",
) -> PlanResult:
    """Number of mask draws needed to detect a relative mean bias.

    Parameters
    ----------
    p : float, optional
        The **drop** probability, in [0, 1).  Give ``p`` or ``keep``, not
        both.
    keep : float, optional
        The **keep** probability ``q = 1 - p``, in (0, 1].
    bias : float
        Relative bias to detect, ``> 0`` (``1e-3`` is 0.1%): the layer's
        mean is ``x (1 + bias)`` instead of ``x``, or equivalently its keep
        rate is ``q (1 + bias)``.
    alpha : float, optional
        Two-sided significance level, in (0, 1).  Default ``1e-6``.
    power : float, optional
        Probability of detecting the bias, in (``alpha``, 1).  Default 0.99.
    method : {"normal", "exact"}, optional
        ``"normal"`` (default): the closed form below.  ``"exact"``: search
        with the exact binomial test of the keep count.

    Returns
    -------
    PlanResult
        ``samples`` is the number of Bernoulli draws per element (an
        ``int``; ``int(result)`` also gives it).

    Raises
    ------
    ValueError
        If ``p == 1`` (``keep == 0``): inverted dropout divides by ``q``;
        if ``bias <= 0``; for ``"exact"``, if ``q (1 + bias) > 1``.

    Notes
    -----
    Normal method: one draw of ``y / x = m / q`` has variance ``p / q``, so
    a two-sided z-test at level ``alpha`` detects a shift ``bias`` with
    power ``power`` after

        N = ceil((z_{1 - alpha/2} + z_{power})**2 (p / q) / bias**2)

    draws.  The keep indicator has relative standard deviation
    ``sqrt(p / q)`` too, so the same ``N`` detects a relative keep-rate
    error ``bias``.

    Exact method: the smallest ``N`` for which the exact binomial test of
    the keep count at level ``alpha`` (equal-tailed critical region, each
    tail ``<= alpha / 2``, from ``binom.ppf``/``binom.isf``) rejects with
    probability ``>= power`` when the true keep rate is ``q (1 + bias)``.
    ``N`` is found by doubling and then bisection.  Because the counts are
    discrete, the exact power is slightly non-monotone in ``N`` (it can dip
    by a fraction of a percent just after a critical value moves); the
    ``N`` returned is the one the bisection converges to, where the power
    first reaches the target on the bisection's path.  The exact and normal
    answers agree within a few percent; the exact one accounts for the
    smaller variance ``q1 (1 - q1)`` under the alternative and for
    skewness.

    At ``p == 0`` there is no randomness and any bias shows in one draw:
    ``samples`` is 1 for both methods.

    Examples
    --------
    >>> from mcdrop.stats import plan
    >>> int(plan(0.5, bias=1e-2, alpha=0.05, power=0.8))
    78489
    """
    p, q, bias, alpha, power, method = _plan_iv(p, keep, bias, alpha, power, method)
    if p == 0.0:
        samples = 1
    elif method == "normal":
        n = _z_sum(alpha, power) ** 2 * (p / q) / (bias * bias)
        if not math.isfinite(n):
            raise ValueError(
                f"`bias` is too small: the sample size overflows; got bias={bias!r}."
            )
        samples = max(1, math.ceil(n))
    else:
        samples = _exact_plan(q, q * (1.0 + bias), alpha, power, bias)
    return PlanResult(
        samples=int(samples),
        p=p,
        q=q,
        bias=bias,
        alpha=alpha,
        power=power,
        method=method,
    )


def _exact_plan(q: float, q1: float, alpha: float, power: float, bias: float) -> int:
    hi = 1
    while _exact_power(hi, q, q1, alpha) < power:
        if hi >= _EXACT_PLAN_MAX:
            raise ValueError(
                f"`bias` is too small for method='exact': more than 2**62 draws "
                f"would be needed; use method='normal'; got bias={bias!r}."
            )
        hi *= 2
    lo = hi // 2  # power(lo) < target (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _exact_power(mid, q, q1, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def detectable_bias(
    p: float | None = None,
    *,
    keep: float | None = None,
    samples: int,
    alpha: float = 1e-6,
    power: float = 0.99,
) -> float:
    """Smallest relative mean bias detectable with ``samples`` draws.

    The inverse of :func:`plan` with ``method="normal"``.

    Parameters
    ----------
    p : float, optional
        The **drop** probability, in [0, 1).  Give ``p`` or ``keep``, not
        both.
    keep : float, optional
        The **keep** probability ``q = 1 - p``, in (0, 1].
    samples : int
        Number of Bernoulli mask draws per element, ``>= 1``.
    alpha : float, optional
        Two-sided significance level, in (0, 1).  Default ``1e-6``.
    power : float, optional
        Detection probability, in (``alpha``, 1).  Default 0.99.

    Returns
    -------
    float
        ``(z_{1 - alpha/2} + z_{power}) sqrt(p / (q samples))``; 0 at
        ``p == 0``.

    Raises
    ------
    ValueError
        If ``p == 1`` (``keep == 0``).
    """
    p, q = _resolve_pq_for_power(p, keep)
    samples = check_positive_int(samples, "samples")
    alpha, power = _alpha_power_iv(alpha, power)
    if p == 0.0:
        return 0.0
    return _z_sum(alpha, power) * math.sqrt(p / (q * samples))
