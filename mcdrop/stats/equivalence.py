"""Equivalence (TOST) and the three-zone verdict against a harmless band."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..results import ConfidenceInterval, json_number
from ._iv import check_confidence_level, check_real
from .normal import format_pvalue, normal_interval, z_and_pvalue

__all__ = ["equivalence_test", "three_zone_verdict", "EquivalenceTestResult"]


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
        cl = check_confidence_level(confidence_level)
        return normal_interval(self.estimate, self.standard_error, cl, "two-sided")

    def __str__(self) -> str:
        return (
            f"equivalence of {self.estimate:.9g} +- {self.standard_error:.3g} (se) "
            f"to [{self.low:.6g}, {self.high:.6g}]: TOST p={format_pvalue(self.pvalue)}"
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
    low = check_real(low, "low", allow_inf=True)
    high = check_real(high, "high", allow_inf=True)
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
    estimate = check_real(estimate, "estimate")
    se = check_real(standard_error, "standard_error", minimum=0.0)
    low, high = _band_iv(low, high)
    z_low, p_low = z_and_pvalue(estimate - low, se, "greater")
    z_high, p_high = z_and_pvalue(estimate - high, se, "less")
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
