"""Multiple testing: Holm's step-down procedure over one family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_alpha
from ..results import json_number

__all__ = ["holm", "HolmResult"]


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
