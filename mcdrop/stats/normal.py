"""The normal distribution's part: z quantiles and p-values, and the CLT mean test.

One helper each for the z quantile (:func:`z_quantile`), the p-value of a z
statistic (:func:`z_pvalue`), a normal interval (:func:`normal_interval`) and
the power sum ``z_{1-α/2} + z_{power}`` (:func:`z_sum`); every other module
takes its normal quantiles from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

from ..results import ConfidenceInterval, json_number
from ._iv import check_alternative, check_confidence_level, check_real

__all__ = [
    "z_quantile",
    "z_pvalue",
    "two_sided_pvalues",
    "z_tail",
    "z_and_pvalue",
    "z_sum",
    "normal_interval",
    "bonferroni_normal_interval",
    "format_pvalue",
    "mean_test",
    "MeanTestResult",
]


def z_quantile(confidence_level: float) -> float:
    """``z`` with ``P(|Z| <= z) = confidence_level``."""
    return float(_sps.norm.isf((1.0 - confidence_level) / 2.0))


def format_pvalue(pvalue: float | None) -> str:
    return "n/a" if pvalue is None else f"{pvalue:.3g}"


def normal_interval(
    estimate: float, se: float, confidence_level: float, alternative: str
) -> ConfidenceInterval:
    """``estimate +- z * se`` (one-sided bounds for one-sided alternatives)."""
    if alternative == "two-sided":
        h = z_quantile(confidence_level) * se
        return ConfidenceInterval(estimate - h, estimate + h, confidence_level)
    h = float(_sps.norm.isf(1.0 - confidence_level)) * se
    if alternative == "less":
        return ConfidenceInterval(-math.inf, estimate + h, confidence_level)
    return ConfidenceInterval(estimate - h, math.inf, confidence_level)


def z_pvalue(z: float, alternative: str) -> float:
    """Normal p-value of a z statistic (``z`` may be +-inf)."""
    if alternative == "two-sided":
        return float(min(1.0, 2.0 * _sps.norm.sf(abs(z))))
    if alternative == "less":
        return float(_sps.norm.cdf(z))
    return float(_sps.norm.sf(z))


def z_tail(tail: float) -> float:
    """``z`` with ``P(Z > z) = tail`` (the one-sided critical value; ``z_tail(a/2)`` is two-sided)."""
    return float(_sps.norm.isf(tail))


def two_sided_pvalues(z) -> np.ndarray:
    """Two-sided normal p-values ``min(1, 2 Q(|z|))`` of an array of z statistics (inf allowed)."""
    return np.minimum(1.0, 2.0 * _sps.norm.sf(np.abs(z)))


def z_sum(alpha: float, power: float) -> float:
    """``z_{1 - alpha/2} + z_{power}``: the standard errors between a two-sided
    level-``alpha`` test's null and the effect it detects with ``power``."""
    return float(_sps.norm.isf(alpha / 2.0) + _sps.norm.ppf(power))


def bonferroni_normal_interval(estimate: float, se: float, k: int = 1):
    """``level -> estimate +- z se`` with ``z`` two-sided at ``1 - (1 - level)/k``
    (Bonferroni over ``k`` estimates, so that all ``k`` hold at ``level``)."""
    def interval(level: float) -> ConfidenceInterval:
        h = float(_sps.norm.isf((1.0 - level) / (2.0 * k))) * se
        return ConfidenceInterval(estimate - h, estimate + h, level)

    return interval


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
        cl = check_confidence_level(confidence_level)
        return normal_interval(self.estimate, self.standard_error, cl, self.alternative)

    def __str__(self) -> str:
        return (
            f"mean {self.estimate:.9g} +- {self.standard_error:.3g} (se) vs "
            f"expected {self.expected:.9g}: z={self.statistic:.4g} "
            f"({self.alternative}), p={format_pvalue(self.pvalue)}"
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


def z_and_pvalue(diff: float, se: float, alternative: str) -> tuple[float, float]:
    """z statistic and p-value, with the point-mass convention at ``se == 0``."""
    if se == 0.0:
        if diff == 0.0:
            return 0.0, 1.0
        z = math.copysign(math.inf, diff)
        return z, z_pvalue(z, alternative)
    z = diff / se
    return z, z_pvalue(z, alternative)


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
    estimate = check_real(estimate, "estimate")
    standard_error = check_real(standard_error, "standard_error", minimum=0.0)
    expected = check_real(expected, "expected")
    alternative = check_alternative(alternative)
    z, pvalue = z_and_pvalue(estimate - expected, standard_error, alternative)
    return MeanTestResult(
        estimate=estimate,
        standard_error=standard_error,
        expected=expected,
        statistic=z,
        pvalue=pvalue,
        alternative=alternative,
    )
