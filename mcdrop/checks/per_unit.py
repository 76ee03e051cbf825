"""Per-unit tests: the worst of many units, Bonferroni over the units.

A law that must hold for every element (or unit, or output) is checked by
one test per unit; the check reports the worst unit and its p-value
multiplied by the number of units (Bonferroni), so it keeps its share of the
family's false-alarm bound whatever the layer size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..results import ConfidenceInterval
from ..stats.normal import two_sided_pvalues, z_quantile
from .pending import PendingCheck

__all__ = ["worst", "z_pvalues", "bonferroni_interval", "worst_z_check"]


def worst(pe: np.ndarray) -> tuple[int, float]:
    """Index of the smallest p-value and its Bonferroni-adjusted value."""
    w = int(np.argmin(pe))
    return w, float(min(1.0, pe.size * pe[w]))


def z_pvalues(diff: np.ndarray, se: np.ndarray, exact_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-scores ``diff / se`` and their two-sided normal p-values.

    Where ``se`` is 0 the value is deterministic: z is 0 where ``exact_ok``
    (the difference is allowed) and infinite (p-value 0) elsewhere.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, diff / se, np.where(exact_ok, 0.0, np.inf))
    return z, two_sided_pvalues(z)


def bonferroni_interval(est: float, se: float, n: int, level: float, floor: float | None = None):
    """Normal interval ``est ± z se`` at the level ``level`` shares with ``n`` intervals (Bonferroni)."""
    h = z_quantile(1 - (1 - level) / n) * se
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
    worst unit ``w``; the interval is :func:`bonferroni_interval` (bounded
    below by ``floor``) and ``extra`` is ``{extra_key: w}``.
    """
    est = np.asarray(est, dtype=np.float64)
    expected = np.broadcast_to(np.asarray(expected, dtype=np.float64), est.shape)
    diff = est - expected
    z, pe = z_pvalues(diff, se, np.abs(diff) <= tol)
    w, p_check = worst(pe)
    n = pe.size
    est_w, se_w = float(est[w]), float(se[w])
    return PendingCheck(
        name=name,
        pvalue=p_check,
        estimate=est_w,
        expected=float(expected[w]),
        detail=detail(w),
        interval=lambda level: bonferroni_interval(est_w, se_w, n, level, floor),
        statistic=float(z[w]),
        extra={extra_key: w},
    )
