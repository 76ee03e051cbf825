"""What each dropout variant claims, element by element, for :func:`mcdrop.audit`.

An audit compares an implementation's outputs with the *law* of the variant
it claims to be.  This module turns ``(variant, p, x, dtype)`` into the
per-element arrays the streaming kernels and the checks need:

``"inverted"`` (``torch.nn.Dropout``, ``keras.layers.Dropout``, ...)
    ``y = x m / q`` with ``m ~ Bernoulli(q)``.  Two-point support
    ``{0, x/q}``, ``E[y] = x``, ``Var[y] = x**2 p / q``.  Gradient
    ``dy/dx = m / q``.
``"alpha"`` (``torch.nn.AlphaDropout`` / ``FeatureAlphaDropout``)
    Dropped units are set to SELU's negative saturation value
    ``alpha' = -lambda * alpha`` and an affine map ``a (.) + b`` restores
    zero mean and unit variance for standardised inputs:
    ``a = (q (1 + p alpha'**2))**-1/2`` and ``b = -a alpha' p``.  Kept:
    ``a x + b``; dropped: ``a alpha' + b = a q alpha'``.  Per element
    ``E[y] = a q x`` (not ``x``: alpha dropout is not mean preserving per
    element) and ``Var[y] = a**2 p q (x - alpha')**2``; for an input with
    mean 0 and variance 1 these give mean 0 and variance 1.  Gradient
    ``dy/dx = a m``.
``"gaussian"`` (``keras.layers.GaussianDropout``)
    ``y = x g`` with ``g ~ N(1, p/q)``: ``E[y] = x``, ``Var[y] = x**2 p/q``,
    no mask.  Gradient ``dy/dx = g = y/x``.

Every variant at ``p = 0`` must return ``x`` exactly; at ``p = 1`` the
two-point variants must return exact zeros (never NaN); ``"gaussian"`` has
no law at ``p = 1`` (infinite noise) and refuses it.

The standardised deviation of an element, ``(y - E[y]) / sd(y)``, is the
unit's shared random draw times a sign ``s_e`` (``sign(x)`` for inverted and
Gaussian dropout, ``sign(x - alpha')`` for alpha dropout).  The sign matters
when several elements share one draw (channel or sample structure): it tells
how their deviations add up in a pooled statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# AlphaDropout's constants and law are defined once, with the variants' theory.
from .variants import ALPHA_PRIME, alpha_constants

__all__ = ["VARIANTS", "Law", "make_law"]

#: The variants an audit can test (those with a per-element law of ``x``;
#: the structures are :data:`mcdrop.variants.STRUCTURES`).
VARIANTS = ("inverted", "alpha", "gaussian")


def _spacing(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ulp of ``|values|`` in ``dtype``, as float64 (the smallest subnormal at 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.spacing(np.abs(values).astype(dtype)).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Law:
    """Per-element law of one variant at one ``p`` for one input ``x``.

    All arrays are flat float64 of ``x.size`` entries.

    Attributes
    ----------
    variant : str
    p, q : float
    two_point : bool
        Outputs take two values per element (a recoverable keep mask).
    mu, sd : ndarray
        ``E[y]`` and ``sd(y)`` under the law (``sd`` is 0 at ``p`` in {0, 1}).
    sign : ndarray
        ``s_e``: ``y - mu = sd * s_e * (the unit's standardised draw)``.
    kept_value, kept_tol : ndarray
        Two-point variants: the kept value and its tolerance (``ulps`` of the
        dtype).  ``inf`` kept value at ``p = 1`` (nothing may be kept).
    drop_value, drop_tol : float
        The dropped value (0, or ``a q alpha'``) and its tolerance.
    drop_ok : bool
        False at ``p = 0``: a dropped value is off the support.
    grad_kept : float
        ``dy/dx`` of a kept element (``1/q`` or ``a``); Gaussian: None.
    kurtosis : float
        ``E[z**4]`` of the standardised output (two-point:
        ``(1 - 3 p q) / (p q)``; Gaussian: 3).
    """

    variant: str
    p: float
    q: float
    two_point: bool
    mu: np.ndarray
    sd: np.ndarray
    sign: np.ndarray
    kept_value: np.ndarray
    kept_tol: np.ndarray
    drop_value: float
    drop_tol: float
    drop_ok: bool
    grad_kept: float | None
    kurtosis: float

    @property
    def random(self) -> bool:
        """True when the output is random (``0 < p < 1``)."""
        return 0.0 < self.p < 1.0


def make_law(variant: str, p: float, x: np.ndarray, dtype, ulps: float) -> Law:
    """Build the :class:`Law` of ``variant`` at drop probability ``p``.

    ``x`` is the (float64, dtype-representable) input; ``dtype`` the output
    dtype whose ulp sets the support tolerances; ``ulps`` how many ulps.
    """
    q = 1.0 - p
    xf = np.ascontiguousarray(x, dtype=np.float64).ravel()
    dt = np.dtype(dtype)
    n = xf.size
    zeros = np.zeros(n)
    sgn = np.where(xf < 0, -1.0, 1.0)
    if p == 0.0:
        # Every variant is the identity at p = 0: y must be x exactly.
        return Law(variant, p, q, True, xf.copy(), zeros, sgn, xf.copy(), zeros.copy(),
                   0.0, 0.0, False, 1.0, math.nan)
    if p == 1.0:
        if variant == "gaussian":
            raise ValueError(
                "`p` must be < 1 for variant='gaussian': the noise standard deviation "
                "sqrt(p/q) is infinite at p = 1; got p=1.0."
            )
        # Nothing is kept; every output must be exactly 0 (never NaN).
        return Law(variant, p, q, True, zeros.copy(), zeros.copy(), sgn, np.full(n, np.inf),
                   zeros.copy(), 0.0, 0.0, True, 0.0, math.nan)
    two_point_kurtosis = (1.0 - 3.0 * p * q) / (p * q)
    if variant == "inverted":
        kept = xf / q
        tol = ulps * _spacing(kept, dt)
        return Law(variant, p, q, True, xf.copy(), np.abs(xf) * math.sqrt(p / q), sgn,
                   kept, tol, 0.0, 0.0, True, 1.0 / q, two_point_kurtosis)
    if variant == "alpha":
        a, b = alpha_constants(p)
        kept = a * xf + b
        # kept = fl(fl(x*a) + b): the rounding of each term counts.
        tol = ulps * np.maximum(np.maximum(_spacing(kept, dt), _spacing(a * xf, dt)),
                                float(_spacing(np.array([b]), dt)[0]))
        drop = a * q * ALPHA_PRIME
        dtol = ulps * float(np.max(_spacing(np.array([drop, a * ALPHA_PRIME, b]), dt)))
        mu = a * q * xf
        sd = a * math.sqrt(p * q) * np.abs(xf - ALPHA_PRIME)
        sgn_a = np.where(xf - ALPHA_PRIME < 0, -1.0, 1.0)
        return Law(variant, p, q, True, mu, sd, sgn_a, kept, tol, drop, dtol, True, a,
                   two_point_kurtosis)
    if variant == "gaussian":
        return Law(variant, p, q, False, xf.copy(), np.abs(xf) * math.sqrt(p / q), sgn,
                   np.full(n, np.nan), zeros.copy(), math.nan, 0.0, True, None, 3.0)
    raise ValueError(f"`variant` must be one of {VARIANTS}; got {variant!r}.")
