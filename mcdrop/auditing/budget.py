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
from ..adapters import is_probability
from ..adapters.auto import adapt
from ..laws import STRUCTURES
from ..laws import VARIANTS as LAW_VARIANTS
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
    "adapter_seed",
    "adapted",
    "dropconnect_iv",
    "check_names",
    "default_calls",
    "fft_calls",
    "detectable_effects",
]

#: The laws an audit can test: every law of :mod:`mcdrop.laws` (the same tuple).
VARIANTS = LAW_VARIANTS
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
    #: DropConnect: the layer's weight (out, in); ``shape`` is then the output
    #: shape (in, out) of the diagonal input batch of shape ``in_shape`` (in, in).
    weight: np.ndarray | None = None
    in_shape: tuple | None = None


def describe(fn) -> str:
    """A readable name of ``fn``: its ``name`` attribute, else its qualified name."""
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", type(fn).__name__)
    return f"{mod}.{qual}" if mod else str(qual)


def adapter_seed(seed):
    """The seed an automatically built adapter gets from an audit's ``seed`` (None stays None)."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1)[0])
    return 0


def adapted(arg: str, obj, p=None, **kw):
    """:func:`mcdrop.adapters.adapt` with errors that name the argument (``arg``)."""
    try:
        return adapt(obj, p, **kw)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"`{arg}`: {exc}") from None


def audit_iv(fn, p, keep, shape, calls, variant, structure, alpha, tolerance, seed, dtype, progress, name,
             device=None, weight=None) -> Plan:
    """Validate :func:`mcdrop.audit`'s arguments (each error names the argument) into a :class:`Plan`.

    A framework object is adapted first (:func:`mcdrop.adapters.adapt`).
    """
    p_build = p if p is not None else (1.0 - keep if is_probability(keep) else None)
    fn = adapted("fn", fn, p_build if is_probability(p_build) else None, seed=adapter_seed(seed), device=device,
                 variant=variant if variant in VARIANTS else None,
                 structure=structure if structure in STRUCTURES else None)
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
    if variant == "dropconnect" and p == 1.0:
        raise ValueError(f"`p` must be < 1 for variant={variant!r}: the law is undefined at p = 1; got p=1.0.")
    in_shape = None
    if variant == "dropconnect":
        if structure != "element":
            raise ValueError(f"variant 'dropconnect' draws one mask entry per weight: `structure` must be "
                             f"'element'; got {structure!r}.")
        weight, shape, in_shape = dropconnect_iv(fn, weight, shape)
    elif weight is not None:
        raise ValueError(f"`weight` applies to variant='dropconnect' only; got variant={variant!r}.")
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
    has_grad = callable(getattr(fn, "forward_backward", None)) and variant != "dropconnect"
    return Plan(fn, name or describe(fn), p, q, variant, structure, shape, dt, dtype_name, calls,
                alpha, tolerance, ss, seed_repr, progress, has_grad, weight, in_shape or shape)


def dropconnect_iv(fn, weight, shape) -> tuple[np.ndarray, tuple, tuple]:
    """``(weight, output shape, input shape)`` of a DropConnect audit.

    The implementation is a linear layer with DropConnect, ``fn(x, training)
    -> x @ (W * M / q).T`` on a batch ``x`` of shape ``(N, in)``; the audit
    feeds the diagonal batch ``diag(v)`` (``N = in``), so each output
    ``(k, i) = v_k W_ik M_ik / q`` is one weight's term.  ``weight`` (out,
    in) is given or declared by the adapter (a torch module's ``.weight``);
    it must be finite with no zero (a zero weight hides its mask).
    """
    if weight is None:
        weight = getattr(fn, "weight", None)
    if weight is None:
        raise ValueError("variant 'dropconnect' needs the layer's weight: pass `weight=` (an (out, in) array) "
                         "or audit an adapter that declares one (a torch module's .weight).")
    try:
        w = np.array(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`weight` must be a 2-D array (out, in); got {type(weight).__name__}.") from None
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"`weight` must be a non-empty 2-D array (out, in); got shape {w.shape}.")
    if not np.all(np.isfinite(w)) or np.any(w == 0):
        raise ValueError("`weight` must be finite with no zero entry (a zero weight's term is 0 whether kept "
                         "or dropped, so its mask cannot be seen).")
    n_in, n_out = w.shape[1], w.shape[0]
    if shape is not None and tuple(shape) != (n_in, n_in):
        raise ValueError(f"variant 'dropconnect' feeds the diagonal batch of shape (in, in) = {(n_in, n_in)}; "
                         f"got shape={tuple(shape)} (leave `shape` unset).")
    if n_in * max(n_in, n_out) > MAX_ELEMENTS:
        raise ValueError(f"`weight` of shape {w.shape} is too large for a DropConnect audit (at most "
                         f"{MAX_ELEMENTS:,} elements in the (in, in) input and the (in, out) output).")
    return w, (n_in, n_out), (n_in, n_in)


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
