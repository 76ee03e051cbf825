"""Two-point laws: a Bernoulli keep mask and one affine map on {0, 1}.

Inverted, standard and alpha dropout give, per element, one value when kept
and another when dropped: ``y = d + (k − d) m`` with ``k``, ``d`` the kept
and dropped values and ``m ~ Bernoulli(q)`` the unit's mask.  Hence
``E[y] = q k + p d``, ``Var[y] = p q (k − d)²``, support ``{d, k}``; every
statistic of a run follows exactly from the integer keep count of each unit
and the per-sample sums ``Σ_u W_u m_u`` with unit weights
``W_u = Σ_{e ∈ u} c_e``, where ``y_e = o_e + s c_e m`` (:meth:`TwoPointLaw.affine_map`).

The three variants are parameters of the one map:

``InvertedLaw``  ``y = x m / q`` (``scale = 1/q``); eval ``y = x``.
``StandardLaw``  ``y = x m`` (``scale = 1``); eval ``y = q x`` (the original
                 paper's test-time weight scaling, Paddle's
                 ``downgrade_in_infer``).
``AlphaLaw``     AlphaDropout (Klambauer et al. 2017): kept ``a x + b``,
                 dropped ``a α′ + b`` with ``α′ = −λα`` (SELU constants),
                 ``a = (q (1 + p α′²))^(−1/2)``, ``b = −a α′ p``; eval
                 ``y = x``.  Undefined at ``p = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._validation import resolve_pq
from .base import DropoutLaw, ElementLaw, spacing

__all__ = [
    "SELU_LAMBDA",
    "SELU_ALPHA",
    "ALPHA_PRIME",
    "alpha_constants",
    "TwoPointLaw",
    "InvertedLaw",
    "StandardLaw",
    "AlphaLaw",
]

#: SELU constants (Klambauer et al. 2017), as in PyTorch and Keras.
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
#: The value AlphaDropout sets dropped units to before the affine map:
#: SELU's negative saturation ``−λα``.
ALPHA_PRIME = -SELU_LAMBDA * SELU_ALPHA

_ALPHA_UNDEFINED = "a = (q (1 + p α′²))^(−1/2) is infinite"


def alpha_constants(p=None, *, keep=None) -> tuple[float, float]:
    """AlphaDropout's affine constants ``(a, b)`` at drop probability ``p``.

    ``a = (q (1 + p α′²))^(−1/2)`` and ``b = −a α′ p`` with ``α′ = −λα``,
    so that an input with mean 0 and variance 1 keeps mean 0 and variance 1.
    Give ``p`` (drop probability) or ``keep`` (``q = 1 − p``), not both.

    Raises
    ------
    ValueError
        At ``p = 1``, where ``a`` is infinite.

    Examples
    --------
    >>> a, b = alpha_constants(0.0)
    >>> (a, b)
    (1.0, 0.0)
    """
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0.0:
        raise ValueError("variant 'alpha' is undefined at p = 1: " + _ALPHA_UNDEFINED + ".")
    a = 1.0 / math.sqrt(q_ * (1.0 + p_ * ALPHA_PRIME**2))
    b = -a * ALPHA_PRIME * p_
    return a, b


@dataclass(frozen=True)
class TwoPointLaw(DropoutLaw):
    """A Bernoulli-mask law whose outputs take two values per element.

    Attributes
    ----------
    scale : float
        Factor applied to kept values (``1/q`` inverted, 1 standard).
    eval_scale : float
        Evaluation-mode factor (``q`` for standard dropout, else 1).
    """

    two_point: ClassVar[bool] = True

    scale: float = 1.0
    eval_scale: float = 1.0

    # -- the output map ---------------------------------------------------------
    def affine_map(self, x) -> tuple[np.ndarray, float, np.ndarray]:
        """``(offset, slope, c)`` with ``y = offset + slope * c * m``.

        ``c`` is what the reference kernel sums per unit: ``x`` for inverted
        and standard dropout (slope ``scale``), ``x − α′`` for AlphaDropout.
        """
        x = np.asarray(x, dtype=np.float64)
        return np.zeros(x.shape), self.scale, x

    def kept_value(self, x) -> np.ndarray:
        """Output of a kept element."""
        off, s, c = self.affine_map(x)
        return off + s * c

    def dropped_value(self, x) -> np.ndarray:
        """Output of a dropped element."""
        off, _, _ = self.affine_map(x)
        return off

    # -- moments -------------------------------------------------------------------
    def mean(self, x, weight=None) -> np.ndarray:
        return self.q * self.kept_value(x) + self.p * self.dropped_value(x)

    def var(self, x, weight=None) -> np.ndarray:
        d = self.kept_value(x) - self.dropped_value(x)
        return self.p * self.q * d * d

    def eval_output(self, x, weight=None) -> np.ndarray:
        return self.eval_scale * np.asarray(x, dtype=np.float64)

    def layer_var(self, x, weight=None) -> float:
        x = np.asarray(x, dtype=np.float64)
        d = self.kept_value(x) - self.dropped_value(x)
        du = self.unit_sums(d)
        return float(self.p * self.q * np.sum(du * du) / x.size**2)

    def forward(self, x, draws, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        per_el = self.per_element(draws, x)
        return np.where(per_el.astype(bool), self.kept_value(x), self.dropped_value(x))

    def describe(self) -> str:
        return f"{self._name()}: p = {self.p:g}, kept scale {self.scale:.6g}"

    # -- the element view ------------------------------------------------------------
    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        p, q = self.p, self.q
        kept = xf * self.scale
        tol = ulps * spacing(kept, dt)
        return ElementLaw(self.variant, p, q, True, q * kept, np.abs(kept) * math.sqrt(p * q),
                          np.where(xf < 0, -1.0, 1.0), kept, tol, 0.0, 0.0, True, self.scale,
                          (1.0 - 3.0 * p * q) / (p * q), self.eval_scale)


@dataclass(frozen=True)
class InvertedLaw(TwoPointLaw):
    """Inverted dropout: ``y = x m / q``, eval ``y = x`` (``E[y] = x``, ``Var[y] = x² p/q``).

    With its own scale ``1/q`` the law's values are formed as an
    implementation forms them (``x / q``) and its moments exactly
    (``E[y] = x``); a control with another scale uses the generic map.
    """

    variant: ClassVar[str] = "inverted"

    @property
    def canonical(self) -> bool:
        """The scale is the inverted scale ``1/q`` (not a control's wrong scale)."""
        return self.q > 0 and self.scale == 1.0 / self.q

    def support(self, x=None, weight=None) -> str:
        return "{0, x/q}"

    def kept_value(self, x) -> np.ndarray:
        if not self.canonical:
            return super().kept_value(x)
        return np.asarray(x, dtype=np.float64) / self.q

    def mean(self, x, weight=None) -> np.ndarray:
        if not self.canonical:
            return super().mean(x, weight)
        return np.asarray(x, dtype=np.float64).copy()

    def var(self, x, weight=None) -> np.ndarray:
        if not self.canonical:
            return super().var(x, weight)
        x = np.asarray(x, dtype=np.float64)
        return x * x * (self.p / self.q)

    def layer_var(self, x, weight=None) -> float:
        if not self.canonical:
            return super().layer_var(x, weight)
        x = np.asarray(x, dtype=np.float64)
        xu = self.unit_sums(x) if self.structure != "element" else x
        return float(np.sum(xu**2) * (self.p / self.q) / x.size**2)

    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        p, q = self.p, self.q
        if self.scale != (1.0 / q):  # a control with another scale: the generic map
            return super()._elementwise(xf, dt, ulps)
        kept = xf / q  # how a float implementation forms it
        tol = ulps * spacing(kept, dt)
        return ElementLaw(self.variant, p, q, True, xf.copy(), np.abs(xf) * math.sqrt(p / q),
                          np.where(xf < 0, -1.0, 1.0), kept, tol, 0.0, 0.0, True, 1.0 / q,
                          (1.0 - 3.0 * p * q) / (p * q))


@dataclass(frozen=True)
class StandardLaw(TwoPointLaw):
    """Standard dropout: ``y = x m`` in training, ``y = q x`` in evaluation."""

    variant: ClassVar[str] = "standard"

    def support(self, x=None, weight=None) -> str:
        return "{0, x}"


@dataclass(frozen=True)
class AlphaLaw(TwoPointLaw):
    """AlphaDropout: kept ``a x + b``, dropped ``a α′ + b`` (see the module docstring).

    Per element ``E[y] = a q x`` (not ``x``: alpha dropout is not mean
    preserving per element) and ``Var[y] = a² p q (x − α′)²``; for an input
    with mean 0 and variance 1 these give mean 0 and variance 1.
    """

    variant: ClassVar[str] = "alpha"
    undefined_at_p1: ClassVar[str | None] = _ALPHA_UNDEFINED

    a: float = 1.0
    b: float = 0.0

    def affine_map(self, x) -> tuple[np.ndarray, float, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        return np.full(x.shape, self.a * ALPHA_PRIME + self.b), self.a, x - ALPHA_PRIME

    def support(self, x=None, weight=None) -> str:
        return "{a x + b (kept), a α′ + b (dropped)}"

    def describe(self) -> str:
        return f"{self._name()}: a = {self.a:.6g}, b = {self.b:.6g}, p = {self.p:g}"

    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        p, q, a, b = self.p, self.q, self.a, self.b
        kept = a * xf + b
        # kept = fl(fl(x*a) + b): the rounding of each term counts.
        tol = ulps * np.maximum(np.maximum(spacing(kept, dt), spacing(a * xf, dt)),
                                float(spacing(np.array([b]), dt)[0]))
        drop = a * q * ALPHA_PRIME
        dtol = ulps * float(np.max(spacing(np.array([drop, a * ALPHA_PRIME, b]), dt)))
        mu = a * q * xf
        sd = a * math.sqrt(p * q) * np.abs(xf - ALPHA_PRIME)
        sgn_a = np.where(xf - ALPHA_PRIME < 0, -1.0, 1.0)
        return ElementLaw(self.variant, p, q, True, mu, sd, sgn_a, kept, tol, drop, dtol, True, a,
                          (1.0 - 3.0 * p * q) / (p * q))
