"""The support test: every output is one of the law's values (exact, no p-value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_x
from ..results import json_number
from ._iv import check_real

__all__ = ["support_test", "SupportTestResult"]

#: How many off-support values :func:`support_test` reports verbatim.
_N_SUPPORT_EXAMPLES = 5


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
    scale = check_real(scale, "scale", minimum=0.0, strict=True)
    ulps = check_real(ulps, "ulps", minimum=0.0)
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
