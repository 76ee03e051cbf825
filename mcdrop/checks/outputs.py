"""Checks of materialised outputs: support, unit coherence, zero output, the noise's law.

Exact checks on a materialised batch of the stream (the first samples,
at most :data:`~mcdrop.checks.views.MATERIALISE_VALUES` outputs):

``support``
    two-point outputs are one of the law's two values (4 ulp); Gaussian
    outputs are finite; DropConnect outputs lie between the sums of the
    negative and of the positive ``W_ij x_j / q``.
``unit_coherence`` (channel, sample)
    every element of a unit is kept or dropped together (Gaussian: shares
    one noise value).
``zero_output`` (p = 1)
    every output exactly 0, never NaN.
``sign_flip_rate``, ``noise_skewness``, ``noise_kurtosis``, ``noise_ks`` (Gaussian)
    ``P(ε < 0) = Φ(−1/σ)``; pooled ``E z³ = 0`` and ``E z⁴ = 3`` of the
    standardised noise (exact sums from the kernel); Kolmogorov–Smirnov
    against N(0, 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from ..laws import DropoutLaw
from ..sampling import Simulation
from ..stats.binomial import keep_rate_test
from ..stats.normal import mean_test
from .pending import PendingCheck, exact
from .views import MATERIALISE_VALUES

__all__ = [
    "materialised",
    "check_support",
    "check_unit_coherence",
    "check_zero_output",
    "check_sign_flip_rate",
    "check_noise_moments",
    "check_noise_ks",
]


def materialised(sim: Simulation):
    """``(draws, y)`` of the first samples of ``sim`` (at most :data:`MATERIALISE_VALUES` outputs)."""
    return sim.materialise(MATERIALISE_VALUES)


def check_support(sim: Simulation, law: DropoutLaw, mat=None) -> PendingCheck:
    """Exact support check on a materialised batch (see the module docstring)."""
    draws, y = mat if mat is not None else materialised(sim)
    finite = np.isfinite(y)
    if law.two_point:
        kv = law.kept_value(sim.x)
        dv = law.dropped_value(sim.x)
        tk = 4 * np.spacing(np.abs(kv))
        td = 4 * np.spacing(np.abs(dv))
        on = (np.abs(y - kv) <= tk) | (np.abs(y - dv) <= td)
        what = f"one of the law's two values {law.support(sim.x)} (4-ulp tolerance)"
    elif sim.variant == "gaussian":
        on = np.ones(y.shape, dtype=bool)
        what = "finite (support: the real line)"
    else:
        c = law.scale * sim.weight * sim.x
        lo = np.minimum(c, 0).sum(axis=1)
        hi = np.maximum(c, 0).sum(axis=1)
        tol = 1e-12 * np.abs(c).sum(axis=1)
        on = (y >= lo - tol) & (y <= hi + tol)
        what = "between Σ min(0, W_ij x_j/q) and Σ max(0, W_ij x_j/q)"
    off = ~(on & finite)
    n_off = int(np.count_nonzero(off))
    ex = []
    if n_off:
        for i in np.flatnonzero(off.ravel())[:3]:
            ex.append({"index": [int(j) for j in np.unravel_index(int(i), y.shape)], "value": float(y.ravel()[i])})
    return exact(
        "support", n_off == 0,
        f"{n_off} of {y.size} materialised outputs are not {what}.",
        estimate=float(n_off), expected=0.0, extra={"examples": ex},
    )


def check_unit_coherence(sim: Simulation, law: DropoutLaw, mat=None) -> PendingCheck:
    """Channel/sample structure: every element of a unit moves together (exact)."""
    draws, y = mat if mat is not None else materialised(sim)
    s = y.shape[0]
    g = sim.unit_size
    x = sim.x.ravel()
    if law.two_point:
        # per element: was it kept?  (elements whose two values coincide carry no information)
        ref = sim.law
        kv = ref.kept_value(sim.x).ravel()
        informative = (kv != ref.dropped_value(sim.x).ravel()).reshape(sim.n_units, g)
        state = (np.abs(y.reshape(s, -1) - kv) <= 4 * np.spacing(np.abs(kv))).astype(np.float64)
    else:
        informative = (x != 0).reshape(sim.n_units, g)
        with np.errstate(divide="ignore", invalid="ignore"):
            state = y.reshape(s, -1) / x
    state = state.reshape(s, sim.n_units, g)
    bad = 0
    for u in range(sim.n_units):
        cols = state[:, u, informative[u]]
        if cols.shape[1] > 1:
            spread = cols.max(axis=1) - cols.min(axis=1)
            bad += int(np.count_nonzero(spread > 1e-12 * np.abs(cols).max(axis=1)))
    return exact(
        "unit_coherence", bad == 0,
        f"{bad} of {s * sim.n_units} materialised {sim.structure} units have elements that did not "
        f"share one draw ({sim.unit_size} elements per unit).",
        estimate=float(bad), expected=0.0,
    )


def check_zero_output(sim: Simulation, law: DropoutLaw, mat=None) -> PendingCheck:
    """p = 1 (inverted, standard): every output is exactly 0, never NaN."""
    _, y = mat if mat is not None else materialised(sim)
    ok = bool(np.all(y == 0)) and int(sim.keep_counts.sum()) == 0
    return exact("zero_output", ok, "p = 1: every output must be exactly 0 (not NaN).",
                  estimate=float(np.count_nonzero(y)), expected=0.0)


def check_sign_flip_rate(sim: Simulation, law: DropoutLaw, mat=None) -> PendingCheck:
    """Gaussian: ``P(ε < 0) = Φ(−1/σ)`` per unit draw (exact binomial test)."""
    draws, _ = mat if mat is not None else materialised(sim)
    eps = 1.0 + sim.noise_sd * draws
    k = int(np.count_nonzero(eps < 0))
    n = int(eps.size)
    target = float(sps.norm.cdf(-1.0 / math.sqrt(law.noise_var)))
    res = keep_rate_test(k, n, target)
    return PendingCheck(
        name="sign_flip_rate",
        pvalue=res.pvalue,
        estimate=k / n,
        expected=target,
        detail=(
            f"{k} of {n} materialised noise draws have ε = 1 + σz < 0 (output sign flipped); "
            f"exact binomial test of Φ(−1/σ) = {target:.6g}."
        ),
        interval=lambda level: res.confidence_interval(level, method="exact"),
    )


def check_noise_moments(sim: Simulation, law: DropoutLaw) -> list[PendingCheck]:
    """Gaussian: pooled ``E z′³ = 0`` and ``E z′⁴ = 3`` of ``z′ = (y/x − 1)/σ_law``."""
    m3, m4 = sim.noise_power_means
    rho = sim.noise_sd / math.sqrt(law.noise_var)
    tot = sim.samples * sim.n_units
    out = []
    for name, est, expected, v, what in (
        ("noise_skewness", rho**3 * m3, 0.0, 15.0, "E z′³ = 0"),
        ("noise_kurtosis", rho**4 * m4, 3.0, 96.0, "E z′⁴ = 3"),
    ):
        res = mean_test(est, math.sqrt(v / tot), expected)
        out.append(PendingCheck.from_test(
            name,
            res,
            estimate=est,
            expected=expected,
            detail=(
                f"pooled over {tot:,} noise draws (exact sums from the kernel); z-test of {what} "
                f"for the noise standardised by the law's σ (normal-law variance {v:g})."
            ),
        ))
    return out


def check_noise_ks(sim: Simulation, law: DropoutLaw, mat=None) -> PendingCheck:
    """Gaussian: Kolmogorov–Smirnov test of the standardised noise against N(0, 1)."""
    draws, _ = mat if mat is not None else materialised(sim)
    zs = (sim.noise_sd / math.sqrt(law.noise_var)) * draws.ravel()
    res = sps.kstest(zs, "norm")
    edges = np.linspace(-5, 5, 51)
    hist, _ = np.histogram(zs, bins=edges)
    return PendingCheck(
        name="noise_ks",
        pvalue=float(res.pvalue),
        estimate=float(res.statistic),
        expected=0.0,
        detail=(
            f"Kolmogorov–Smirnov distance of {zs.size} materialised standardised noise draws "
            "from N(0, 1)."
        ),
        statistic=float(res.statistic),
        extra={"hist_edges": edges.tolist(), "hist_counts": hist.tolist(), "n": int(zs.size)},
    )
