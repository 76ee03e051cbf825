"""Gaussian dropout: multiplicative noise ``y = x ε`` with ``ε ~ N(1, p/q)``.

Srivastava et al. (2014, §10): the noise has the mean and variance of
inverted dropout's ``m/q``, so ``E[y] = x`` and ``Var[y] = x² p/q``; eval
``y = x``.  Undefined at ``p = 1`` (infinite noise variance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import DropoutLaw, ElementLaw

__all__ = ["GaussianLaw"]


@dataclass(frozen=True)
class GaussianLaw(DropoutLaw):
    """Gaussian dropout with noise variance ``noise_var`` (``p/q`` for the correct law)."""

    variant: ClassVar[str] = "gaussian"
    undefined_at_p1: ClassVar[str | None] = "the noise variance p/q is infinite"

    noise_var: float = 0.0

    def mean(self, x, weight=None) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).copy()

    def var(self, x, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.noise_var * x * x

    def layer_var(self, x, weight=None) -> float:
        x = np.asarray(x, dtype=np.float64)
        w = self.unit_sums(x)
        return float(self.noise_var * np.sum(w * w) / x.size**2)

    def support(self, x=None, weight=None) -> str:
        return "the real line (every output finite; sign flips when ε < 0)"

    def forward(self, x, draws, weight=None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return x * (1.0 + math.sqrt(self.noise_var) * self.per_element(draws, x))

    def describe(self) -> str:
        return f"{self._name()}: noise variance {self.noise_var:.6g}, p = {self.p:g}"

    def _elementwise(self, xf: np.ndarray, dt: np.dtype, ulps: float) -> ElementLaw:
        n = xf.size
        return ElementLaw(self.variant, self.p, self.q, False, xf.copy(),
                          np.abs(xf) * math.sqrt(self.noise_var), np.where(xf < 0, -1.0, 1.0),
                          np.full(n, np.nan), np.zeros(n), math.nan, 0.0, True, None, 3.0)
