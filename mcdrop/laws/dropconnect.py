"""DropConnect: a mask per *weight* of a linear layer, ``y = (W ⊙ M / q) x``.

Wan et al. (2013), with inverted scaling; eval ``y = W x``.  Each output
``y_i = Σ_j W_ij x_j M_ij / q`` is a sum of independent scaled Bernoullis:
``E[y_i] = (W x)_i``, ``Var[y_i] = (p/q) Σ_j W_ij² x_j²``, and outputs are
uncorrelated (disjoint masks).  Undefined at ``p = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._validation import check_x
from .base import DropoutLaw, ElementLaw, spacing

__all__ = ["DropConnectLaw", "check_weight"]


def check_weight(weight, x: np.ndarray) -> np.ndarray:
    """Validate DropConnect's weight matrix against the input ``x``.

    ``weight`` must be a finite 2-D array of shape ``(out, in)`` with
    ``in == x.size`` (``x`` is one input vector).
    """
    w = check_x(weight, "weight")
    if w.ndim != 2:
        raise ValueError(
            f"variant 'dropconnect': `weight` must be a 2-D matrix (out, in); got shape {w.shape}."
        )
    if x.ndim != 1 or w.shape[1] != x.size:
        raise ValueError(
            f"variant 'dropconnect': weight/data shape mismatch: `weight` has shape "
            f"{w.shape} (out, in), so `x` must be a vector of length {w.shape[1]}; "
            f"got x.shape={x.shape}."
        )
    return w


@dataclass(frozen=True)
class DropConnectLaw(DropoutLaw):
    """DropConnect with kept weights scaled by ``scale`` (``1/q``).

    Attributes
    ----------
    scale : float
        Factor of kept weights.
    input_mask : bool
        Claim the law of dropout on the layer's *inputs* (one mask entry per
        input, shared by every output) instead of one per weight — a
        negative control: the per-output moments agree, the correlation
        between outputs does not.
    """

    variant: ClassVar[str] = "dropconnect"
    undefined_at_p1: ClassVar[str | None] = "the inverted scale 1/q is infinite"

    scale: float = 1.0
    input_mask: bool = False

    def units(self, shape) -> tuple[int, int]:
        """One unit per weight: ``(out * in, 1)``."""
        return math.prod(shape), 1

    def mean(self, x, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.scale * self.q * (np.asarray(weight) @ x)

    def var(self, x, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(weight)
        return self.scale**2 * self.p * self.q * ((w * w) @ (x * x))

    def eval_output(self, x, weight=None) -> np.ndarray:
        return np.asarray(weight) @ np.asarray(x, dtype=np.float64)

    def layer_var(self, x, weight=None) -> float:
        x = np.asarray(x, dtype=np.float64)
        w = np.asarray(weight)
        n_out = w.shape[0]
        if self.input_mask:  # Σ_i y_i = Σ_j (Σ_i W_ij) x_j m_j / q
            col = w.sum(axis=0) * x
            return float(self.scale**2 * self.p * self.q * np.sum(col * col) / n_out**2)
        v = self.var(x, weight)
        return float(v.sum() / n_out**2)  # outputs use disjoint masks: uncorrelated

    def support(self, x=None, weight=None) -> str:
        return "a subset sum of W_ij x_j / q, inside [Σ min(0, W_ij x_j)/q, Σ max(0, W_ij x_j)/q]"

    def forward(self, x, draws, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        m = np.asarray(draws, dtype=np.float64)
        return np.einsum("soi,oi,i->so", m, np.asarray(weight), x) * self.scale

    def describe(self) -> str:
        return f"{self._name()}: p = {self.p:g}, kept scale {self.scale:.6g}"

    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        """Per-*weight* law: ``xf`` are the products ``x_j W_ij`` of one input row and a weight each.

        An audit feeds a DropConnect layer a diagonal batch (row ``k`` is
        ``v_k e_k``), so output ``(k, i)`` is ``v_k W_ik M_ik scale``: one
        weight's term, kept or dropped — inverted dropout on the products.
        """
        p, q = self.p, self.q
        kept = xf * self.scale
        tol = ulps * spacing(kept, dt)
        return ElementLaw(self.variant, p, q, True, q * kept, np.abs(kept) * math.sqrt(p * q),
                          np.where(xf < 0, -1.0, 1.0), kept, tol, 0.0, 0.0, True, self.scale,
                          (1.0 - 3.0 * p * q) / (p * q))
