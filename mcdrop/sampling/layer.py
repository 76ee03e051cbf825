"""The per-sample layer mean of a run: :class:`LayerMean`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..results import ConfidenceInterval, json_number
from ..stats.normal import z_quantile

__all__ = ["LayerMean"]


@dataclass(frozen=True)
class LayerMean:
    """Summary of the per-sample layer mean ``L = mean_e(y_e)`` over the samples.

    For x = [2, 4, 6, 8] and keep probability 0.5 a mask [1, 0, 1, 0] gives
    y = [4, 0, 12, 0] and L = 4; ``mean`` converges to ``mean(x) = 5``.

    Attributes
    ----------
    mean, var : float
        Sample mean and unbiased variance of L (from exact sums).
    samples : int
        Number of samples (masks) L was computed on.
    expected : float
        The law's ``E[L]`` (``mean(x)`` for inverted dropout).
    expected_var : float
        The law's ``Var[L]`` with independent units (inverted, element-wise:
        ``Σ_e x_e² (p/q) / n²``).
    """

    mean: float
    var: float
    samples: int
    expected: float
    expected_var: float

    @property
    def standard_error(self) -> float:
        if self.samples < 2:
            return float("nan")
        return math.sqrt(max(self.var, 0.0) / self.samples)

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Normal (CLT) interval for the expected layer mean."""
        if not 0 < confidence_level < 1:
            raise ValueError(
                f"`confidence_level` must be in the open interval (0, 1); got {confidence_level!r}."
            )
        h = z_quantile(confidence_level) * self.standard_error
        return ConfidenceInterval(self.mean - h, self.mean + h, confidence_level)

    def __str__(self) -> str:
        ci = self.confidence_interval(0.95)
        return (
            f"layer mean {self.mean:.8g} (95% CI {ci}; expected {self.expected:.8g}) "
            f"over {self.samples} samples"
        )

    def to_dict(self) -> dict:
        return {
            "mean": json_number(self.mean),
            "var": json_number(self.var),
            "samples": self.samples,
            "expected": json_number(self.expected),
            "expected_var": json_number(self.expected_var),
            "standard_error": json_number(self.standard_error),
        }
