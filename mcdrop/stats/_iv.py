"""Validation shared by the statistics modules (scipy's ``_<function>_iv`` idea).

Each concern's module validates its own arguments in a ``_<function>_iv``;
the checks they share live here.  Every message names the argument in
backticks, shows the value and states what is allowed.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._validation import check_alpha, check_choice, check_positive_int

__all__ = ["ALTERNATIVES", "check_real", "check_count", "check_confidence_level", "check_alternative"]

ALTERNATIVES = ("two-sided", "less", "greater")


def check_real(
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


def check_count(k: Any, n: int, name: str = "k", n_name: str = "n") -> int:
    """Return ``k`` as an int in ``[0, n]``."""
    k = check_positive_int(k, name, minimum=0)
    if k > n:
        raise ValueError(
            f"`{name}` must be an integer in [0, `{n_name}`] = [0, {n}]; got {k}."
        )
    return k


def check_confidence_level(confidence_level: Any) -> float:
    return check_alpha(confidence_level, "confidence_level")


def check_alternative(alternative: Any) -> str:
    return check_choice(alternative, "alternative", ALTERNATIVES)
