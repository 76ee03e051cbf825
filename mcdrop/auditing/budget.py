"""An audit's plan and budget: validated arguments, the battery's checks, calls and power.

The default budget (``calls=None``) is what the ``mean`` check needs to
detect a relative bias of :data:`DEFAULT_BIAS` with power
:data:`~mcdrop.stats.power.POWER` at its share of ``alpha``, at least
:data:`MIN_DEFAULT_CALLS` calls, capped at :data:`MAX_DEFAULT_CALLS` calls
and :data:`MAX_DEFAULT_DRAWS` mask draws (a capped budget says what it
detects, and warns).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._validation import check_alpha, check_choice, check_positive_int, check_seed, check_shape, resolve_pq
from ..laws import STRUCTURES
from ..stats.normal import z_sum
from ..stats.power import POWER
from ..warnings import LowPowerWarning
from .inputs import DTYPES, MAX_ELEMENTS, np_dtype

__all__ = [
    "VARIANTS",
    "DEFAULT_SHAPE",
    "DEFAULT_BIAS",
    "MIN_DEFAULT_CALLS",
    "MAX_DEFAULT_DRAWS",
    "MAX_DEFAULT_CALLS",
    "FFT_DRAWS",
    "FFT_MIN_CALLS",
    "SUPPORT_ULPS",
    "EVAL_CALLS_BEFORE",
    "GRADIENT_CALLS",
    "MAX_REPORT_UNITS",
    "MAX_HIST_BINS",
    "Plan",
    "describe",
    "audit_iv",
    "check_names",
    "default_calls",
    "fft_calls",
    "detectable_effects",
]

#: The laws an audit can test (those with a per-element law of ``x``).
VARIANTS = ("inverted", "alpha", "gaussian")
DEFAULT_SHAPE = (64, 128)
#: Relative mean bias the default budget detects with power ``POWER``.
DEFAULT_BIAS = 1e-3
#: Fewest training calls of a default budget (the independence and dispersion
#: checks need calls even when the mean needs few, e.g. at small p).
MIN_DEFAULT_CALLS = 100
#: Caps of a default budget (``calls=None``): at most ~1.1e9 mask draws and
#: 131072 calls (seconds for a fast implementation).  Only p close to 1, or a
#: tiny input at large p, hits them; the report's detectable_bias then says
#: what the capped budget can see and a LowPowerWarning is emitted.
MAX_DEFAULT_DRAWS = 2**30
MAX_DEFAULT_CALLS = 2**17
#: Mask draws fed to the FFT checks (element and call independence).
FFT_DRAWS = 2**20
FFT_MIN_CALLS = 64
#: Support tolerance, in ulps of the output dtype.
SUPPORT_ULPS = 4
EVAL_CALLS_BEFORE = 2
GRADIENT_CALLS = 8
#: Sizes of the report's lists (JSON stays well under 1 MB).
MAX_REPORT_UNITS = 8192
MAX_HIST_BINS = 8193


@dataclass
class Plan:
    """What one audit does: the implementation, the law it claims, the input and the budget."""

    fn: Callable
    target: str
    p: float
    q: float
    variant: str
    structure: str
    shape: tuple
    dtype: np.dtype
    dtype_name: str
    calls: int | None
    alpha: float
    tolerance: float | None
    seed_ss: np.random.SeedSequence
    seed_repr: Any
    progress: bool
    has_grad: bool


def describe(fn) -> str:
    """A readable name of ``fn``: its ``name`` attribute, else its qualified name."""
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", type(fn).__name__)
    return f"{mod}.{qual}" if mod else str(qual)


def audit_iv(fn, p, keep, shape, calls, variant, structure, alpha, tolerance, seed, dtype, progress, name) -> Plan:
    """Validate :func:`mcdrop.audit`'s arguments (each error names the argument) into a :class:`Plan`."""
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a callable fn(x, training) -> array (wrap framework objects with "
            f"mcdrop.adapters); got {fn!r} of type {type(fn).__name__}."
        )
    if p is None and keep is None:
        p = getattr(fn, "p", None)
        if p is None:
            p = 0.3
    p, q = resolve_pq(p, keep)
    if variant is None:
        variant = getattr(fn, "variant", None) or "inverted"
    if structure is None:
        structure = getattr(fn, "structure", None) or "element"
    variant = check_choice(variant, "variant", VARIANTS)
    structure = check_choice(structure, "structure", STRUCTURES)
    if variant == "gaussian" and p == 1.0:
        raise ValueError(
            "`p` must be < 1 for variant='gaussian': the noise standard deviation sqrt(p/q) "
            "is infinite at p = 1; got p=1.0."
        )
    if shape is None:
        shape = getattr(fn, "default_shape", None) or DEFAULT_SHAPE
    shape = check_shape(shape, "shape", max_elements=MAX_ELEMENTS)
    if structure == "channel" and len(shape) < 2:
        raise ValueError(
            f"`structure` 'channel' needs an input of at least 2 dimensions (N, C, ...): the "
            f"unit is each (n, c) slice; got shape {shape}."
        )
    if calls is not None:
        calls = check_positive_int(calls, "calls")
    alpha = check_alpha(alpha)
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.floating, np.integer)):
            raise TypeError(f"`tolerance` must be None or a number in [0, 1); got {tolerance!r}.")
        tolerance = float(tolerance)
        if not (0.0 <= tolerance < 1.0):
            raise ValueError(f"`tolerance` must be None or in [0, 1) (relative band); got {tolerance!r}.")
        if tolerance == 0.0:
            tolerance = None
    ss = check_seed(seed)
    seed_repr = int(seed) if isinstance(seed, (int, np.integer)) else (ss.entropy if seed is None else str(seed))
    dtype_name = check_choice(dtype, "dtype", DTYPES)
    dt = np_dtype(dtype_name)
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be a bool; got {progress!r}.")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"`name` must be a string or None; got {name!r}.")
    has_grad = callable(getattr(fn, "forward_backward", None))
    return Plan(fn, name or describe(fn), p, q, variant, structure, shape, dt, dtype_name, calls,
                 alpha, tolerance, ss, seed_repr, progress, has_grad)


def check_names(plan: Plan, two_point: bool) -> list[str]:
    """The checks of the battery, in report order (those that do not apply left out)."""
    names = ["runs", "eval_identity", "input_unchanged", "shape_dtype", "finite"]
    if two_point:
        names.append("support")
    if plan.has_grad:
        names.append("gradient")
    if two_point:
        names.append("keep_rate")
    if plan.p < 1.0:
        names += ["mean", "variance"]
    if two_point:
        names.append("dispersion")
    names += ["element_independence", "call_independence"]
    if two_point and plan.structure != "element":
        names.append("structure")
    return names


def default_calls(plan: Plan, v1: float, n_units: int, a_mean: float) -> int:
    """Training calls of the default budget (see the module docstring); warns when capped.

    ``v1`` is the null variance of one call's pooled relative bias and
    ``a_mean`` the level of the pooled mean test.
    """
    need = math.ceil(z_sum(a_mean, POWER) ** 2 * v1 / DEFAULT_BIAS**2) if v1 > 0 else 0
    cap = max(MIN_DEFAULT_CALLS, min(MAX_DEFAULT_CALLS, MAX_DEFAULT_DRAWS // max(n_units, 1)))
    if need > cap:
        # Near p = 1 the keep indicator's relative variance p/q explodes and
        # a 0.1% bias would need an absurd budget: cap it and say so (the
        # report's detectable_bias states what this budget can see).
        warnings.warn(
            f"the default budget needs {need:,} calls to detect a {DEFAULT_BIAS:g} "
            f"relative mean bias at p={plan.p:g}; capped at {cap:,} calls. "
            f"Pass `calls=` to choose the budget.",
            LowPowerWarning,
            stacklevel=3,
        )
    return min(max(MIN_DEFAULT_CALLS, need), cap)


def fft_calls(calls: int, n_units: int) -> int:
    """Leading calls that feed the FFT checks: about :data:`FFT_DRAWS` draws, at least :data:`FFT_MIN_CALLS`."""
    return min(calls, max(FFT_MIN_CALLS, math.ceil(FFT_DRAWS / n_units)))


def detectable_effects(plan: Plan, law, calls: int, n_units: int, v1: float, a_mean: float,
                       a_check: float) -> tuple[float | None, float | None]:
    """``(detectable_bias, detectable_rate_error)`` of ``calls`` calls with power :data:`POWER`.

    The smallest relative mean bias the pooled ``mean`` test detects at its
    level ``a_mean``, and the smallest relative keep-rate error the exact
    ``keep_rate`` test detects at ``a_check`` (normal approximation); None
    where the check does not apply.
    """
    db = dre = None
    if calls > 0 and plan.p < 1.0:
        db = z_sum(a_mean, POWER) * math.sqrt(v1 / calls) if law.random else 0.0
    if calls > 0 and law.two_point and 0.0 < plan.q < 1.0:
        dre = z_sum(a_check, POWER) * math.sqrt(plan.p / (plan.q * calls * n_units))
    elif calls > 0 and law.two_point and plan.p == 0.0:
        dre = 0.0
    return db, dre
