"""What the law checks read of a :class:`~mcdrop.sampling.Simulation`, for any law.

Helpers shared by the moment and output checks: the names of a run's units
and outputs, the magnitude of each output (for rounding tolerances) and the
variance of a linear combination of outputs — observed, from the exact
counts and sums, or under a law.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MATERIALISE_VALUES", "unit_name", "output_name", "magnitude", "linear_var_observed",
           "linear_var_law"]

#: Materialised outputs for the exact checks and the KS test.
MATERIALISE_VALUES = 2**20


def unit_name(sim) -> str:
    """``"weight"`` for DropConnect, else the structure's unit (``"element"``, ``"channel"``, ...)."""
    return "weight" if sim.variant == "dropconnect" else sim.structure


def output_name(sim) -> str:
    """``"output"`` for DropConnect (rows of W), else ``"element"``."""
    return "output" if sim.variant == "dropconnect" else "element"


def magnitude(sim) -> np.ndarray:
    """Scale of each output, for the rounding tolerance of exact comparisons."""
    if sim.variant == "dropconnect":
        return np.abs(sim.weight * sim.x).sum(axis=1) / sim.q
    if sim.variant == "gaussian":
        return np.abs(sim.x).ravel()
    law = sim.law
    return (np.abs(law.kept_value(sim.x)) + np.abs(law.dropped_value(sim.x))).ravel()


def linear_var_observed(sim, a: np.ndarray) -> float:
    """Observed per-sample variance of ``Σ_o a_o y_o`` (outputs flattened).

    Units are independent under every law checked here, so the variance is
    the sum over units of each unit's (observed) variance; within a unit the
    elements move together.
    """
    N = sim.samples
    if N < 2:
        return float("nan")
    if sim.variant == "dropconnect":
        return float(np.sum(a * a * sim.var))
    n_units, g = sim.n_units, sim.unit_size
    if sim.variant == "gaussian":
        A = (a * sim.x.ravel()).reshape(n_units, g).sum(axis=1)
        return float(sim.noise_sd**2 * np.sum(A * A * sim.noise_var))
    _, slope, c = sim.law.affine_map(sim.x)
    D = (a * slope * c.ravel()).reshape(n_units, g).sum(axis=1)
    k = sim.keep_counts.ravel().astype(np.float64)
    return float(np.sum(D * D * k * (N - k)) / (float(N) * (N - 1)))


def linear_var_law(sim, law, a: np.ndarray) -> float:
    """Per-sample variance of ``Σ_o a_o y_o`` under ``law`` (independent units)."""
    if sim.variant == "dropconnect":
        return float(np.sum(a * a * law.var(sim.x, sim.weight)))
    n_units, g = sim.n_units, sim.unit_size
    if sim.variant == "gaussian":
        A = (a * sim.x.ravel()).reshape(n_units, g).sum(axis=1)
        return float(law.noise_var * np.sum(A * A))
    d = (law.kept_value(sim.x) - law.dropped_value(sim.x)).ravel()
    D = (a * d).reshape(n_units, g).sum(axis=1)
    return float(law.p * law.q * np.sum(D * D))
