"""The law of a dropout layer: what one variant claims at drop probability ``p``.

:class:`DropoutLaw` is the root of the hierarchy.  A law knows its output
map, moments, support and unit layout; it never samples (the kernels do) and
never tests (the checks do).  Two views of a law are used:

* the *reference* view (float64, exact formulas): :meth:`DropoutLaw.mean`,
  :meth:`~DropoutLaw.var`, :meth:`~DropoutLaw.layer_var`,
  :meth:`~DropoutLaw.forward`, ... — what :func:`mcdrop.verify` compares the
  reference kernels' statistics with;
* the *element* view, :meth:`DropoutLaw.elementwise` → :class:`ElementLaw`:
  per-element arrays (mean, sd, the two support points with a tolerance in
  ulps of an output dtype) — what :func:`mcdrop.audit` compares an
  implementation's outputs with.

A negative control is a correct law with one parameter changed
(:meth:`DropoutLaw.replace`, e.g. inverted dropout with ``scale=1``: "forgot
the 1/q").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .units import UnitLayout, unit_layout

__all__ = ["DropoutLaw", "ElementLaw", "spacing"]


def spacing(values: np.ndarray, dtype) -> np.ndarray:
    """ulp of ``|values|`` in ``dtype``, as float64 (the smallest subnormal at 0)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.spacing(np.abs(values).astype(dtype)).astype(np.float64)


@dataclass(frozen=True, eq=False)
class ElementLaw:
    """Per-element law of one variant at one ``p`` for one input ``x`` (the audit's view).

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
        It matters when several elements share one draw (channel or sample
        structure): it tells how their deviations add up in a pooled statistic.
    kept_value, kept_tol : ndarray
        Two-point variants: the kept value and its tolerance (``ulps`` of the
        dtype).  ``inf`` kept value at ``p = 1`` (nothing may be kept).
    drop_value, drop_tol : float
        The dropped value (0, or ``a q alpha'``) and its tolerance.
    drop_ok : bool
        False at ``p = 0``: a dropped value is off the support.
    grad_kept : float or None
        ``dy/dx`` of a kept element (``1/q`` or ``a``); Gaussian: None.
    kurtosis : float
        ``E[z**4]`` of the standardised output (two-point:
        ``(1 - 3 p q) / (p q)``; Gaussian: 3).
    eval_scale : float
        The evaluation-mode output is ``eval_scale * x``: 1 for every
        variant but standard dropout, whose inference output is ``q x``
        (Paddle's ``downgrade_in_infer``).
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
    eval_scale: float = 1.0

    def eval_value(self, x) -> np.ndarray:
        """The evaluation-mode output for the input values ``x`` (flat float64)."""
        xf = np.ascontiguousarray(x, dtype=np.float64).ravel()
        return xf.copy() if self.eval_scale == 1.0 else self.eval_scale * xf

    @property
    def random(self) -> bool:
        """True when the output is random (``0 < p < 1``)."""
        return 0.0 < self.p < 1.0


@dataclass(frozen=True)
class DropoutLaw:
    """What one dropout variant claims at drop probability ``p`` (keep ``q = 1 - p``).

    Build a correct law with :func:`mcdrop.laws.variant_law`; subclasses
    hold each variant's parameters.

    Attributes
    ----------
    p, q : float
        Drop and keep probability.
    structure : {"element", "channel", "sample"}
        The independent unit (:mod:`mcdrop.laws.units`).
    label : str
        How the law is named in reports (says "wrong" for controls).
    """

    #: The variant's name (``"inverted"``, ``"standard"``, ...).
    variant: ClassVar[str] = ""
    #: Outputs take one of two values per element (a Bernoulli mask).
    two_point: ClassVar[bool] = False
    #: Why the law has no meaning at ``p = 1``, or None where it does.
    undefined_at_p1: ClassVar[str | None] = None

    p: float
    q: float
    structure: str = "element"
    label: str = ""

    def replace(self, **changes) -> "DropoutLaw":
        """A copy with some parameters changed (for negative controls)."""
        return dataclasses.replace(self, **changes)

    # -- structure -----------------------------------------------------------
    def layout(self, shape) -> UnitLayout:
        """The :class:`~mcdrop.laws.units.UnitLayout` of this law over an input of ``shape``."""
        return unit_layout(shape, self.structure)

    def units(self, shape) -> tuple[int, int]:
        """``(n_units, unit_size)`` for an input of ``shape``."""
        lay = self.layout(shape)
        return lay.n_units, lay.unit_size

    def unit_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (shape of ``x``) over each independent unit."""
        n_units, g = self.units(np.shape(values))
        return np.asarray(values, dtype=np.float64).reshape(n_units, g).sum(axis=1)

    # -- the reference view ------------------------------------------------------
    def mean(self, x, weight=None) -> np.ndarray:
        """``E[y]`` per output under this law."""
        raise NotImplementedError

    def var(self, x, weight=None) -> np.ndarray:
        """``Var[y]`` per output under this law."""
        raise NotImplementedError

    def eval_output(self, x, weight=None) -> np.ndarray:
        """The evaluation-mode output (no randomness)."""
        return np.asarray(x, dtype=np.float64).copy()

    def layer_var(self, x, weight=None) -> float:
        """``Var`` of the per-sample mean over outputs, with independent units.

        This is where the structure shows: elements of one unit move
        together, so their deviations add before squaring.
        """
        raise NotImplementedError

    def support(self, x=None, weight=None) -> str:
        """Plain-text support of one output."""
        raise NotImplementedError

    def forward(self, x, draws, weight=None) -> np.ndarray:
        """The training output for given unit-level draws (NumPy reference).

        ``draws`` has shape ``(samples, n_units)``: the keep mask (bool) for
        the Bernoulli laws (DropConnect: ``(samples, out, in)``), the
        standard normal noise ``z`` for Gaussian dropout.  Returns shape
        ``(samples, *x.shape)`` (DropConnect: ``(samples, out)``).
        """
        raise NotImplementedError

    def per_element(self, draws, x) -> np.ndarray:
        """Unit-level ``draws`` ``(samples, n_units)`` repeated over each unit's elements."""
        n_units, g = self.units(np.shape(x))
        d = np.asarray(draws)
        s = d.shape[0]
        return np.repeat(d.reshape(s, n_units), g, axis=1).reshape((s,) + np.shape(x))

    def describe(self) -> str:
        """One line: the law's name and parameters."""
        return f"{self._name()}: p = {self.p:g}"

    def _name(self) -> str:
        return self.label or f"{self.variant} dropout ({self.structure})"

    # -- the element view (audits) -------------------------------------------------
    def elementwise(self, x, dtype, ulps: float) -> ElementLaw:
        """The per-element :class:`ElementLaw` of this law for input ``x``.

        ``x`` is the (float64, dtype-representable) input; ``dtype`` the
        output dtype whose ulp sets the support tolerances; ``ulps`` how
        many ulps.  Every variant is the identity at ``p = 0`` (``y`` must be
        ``x`` exactly) and, where defined at ``p = 1``, returns exact zeros.
        """
        p, q = self.p, self.q
        xf = np.ascontiguousarray(x, dtype=np.float64).ravel()
        n = xf.size
        zeros = np.zeros(n)
        sgn = np.where(xf < 0, -1.0, 1.0)
        es = float(getattr(self, "eval_scale", 1.0))
        if p == 0.0:
            return ElementLaw(self.variant, p, q, True, xf.copy(), zeros, sgn, xf.copy(), zeros.copy(),
                              0.0, 0.0, False, 1.0, math.nan, es)
        if p == 1.0:
            if self.undefined_at_p1 is not None:
                raise ValueError(
                    f"`p` must be < 1 for variant={self.variant!r}: {self.undefined_at_p1}; got p=1.0."
                )
            return ElementLaw(self.variant, p, q, True, zeros.copy(), zeros.copy(), sgn, np.full(n, np.inf),
                              zeros.copy(), 0.0, 0.0, True, 0.0, math.nan, es)
        return self._elementwise(xf, np.dtype(dtype), float(ulps))

    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        raise NotImplementedError(f"variant {self.variant!r} has no per-element law")
