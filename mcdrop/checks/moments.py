"""Moment checks of a reference run against a law: means, variances, the layer variance.

Every check compares what a :class:`~mcdrop.sampling.Simulation` sampled
(its outputs formed by ``sim.law``) with what a law claims — the correct
one, which must pass, or a wrong one (a negative control), which must fail —
and returns a :class:`~mcdrop.checks.pending.PendingCheck`.

``mean_layer``
    E[layer mean] = mean of the law's ``E[y]`` (CLT z-test).
``mean_relative``
    ``Σ sign(μ) ȳ / Σ |μ| = 1`` pooled over outputs (sign cannot cancel a
    scale error), with the structure's correlations in its standard error.
``mean_per_element`` / ``mean_per_output``
    every output's mean = the law's ``E[y]`` (z-tests, Bonferroni).
``variance_per_element`` / ``variance_per_output``
    two-point laws: the exact test on the keep count (the two-point sample
    variance is a function of it; the delta method breaks down at q = ½);
    Gaussian: delta method with the normal fourth moment; DropConnect:
    delta method with the exact fourth moment of a sum of scaled Bernoullis.
``layer_variance``
    Var[layer mean] = the law's value for its *structure* (independent
    units): where channel/sample masks and DropConnect's per-weight masks
    differ from element-wise dropout.
``second_moment`` (alpha)
    pooled ``E[y²]`` = the law's; with a standardised input this and
    ``mean_layer`` are AlphaDropout's self-normalisation.
"""

from __future__ import annotations

import math

import numpy as np

from ..laws import DropoutLaw
from ..results import ConfidenceInterval
from ..sampling import Simulation
from ..stats.moments import rate_roots, two_point_variance_interval, two_point_variance_pvalues, variance_test
from ..stats.normal import mean_test
from .pending import PendingCheck
from .per_unit import worst, worst_z_check
from .views import linear_var_observed, magnitude, output_name

__all__ = [
    "check_mean_layer",
    "check_mean_relative",
    "check_mean_per_output",
    "check_variance_per_output",
    "check_layer_variance",
    "check_second_moment",
]


def check_mean_layer(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    """E[layer mean] = mean over outputs of the law's ``E[y]`` (CLT z-test)."""
    lm = sim.layer_mean
    expected = float(np.mean(law.mean(sim.x, sim.weight)))
    res = mean_test(lm.mean, lm.standard_error, expected)
    return PendingCheck.from_test(
        "mean_layer",
        res,
        estimate=lm.mean,
        expected=expected,
        detail=(
            f"per-sample layer mean (mean of the {sim.n_outputs} outputs) over {sim.samples} "
            f"samples; CLT z-test of E = {expected:.6g} ({law.describe()})."
        ),
    )


def check_mean_relative(sim: Simulation, law: DropoutLaw) -> PendingCheck | None:
    """``Σ sign(μ) ȳ / Σ|μ| = 1`` pooled over outputs (z-test; None if every μ is 0)."""
    mu = law.mean(sim.x, sim.weight).ravel()
    s = np.sign(mu)
    denom = float(np.sum(np.abs(mu)))
    if denom == 0.0:
        return None
    est = float(np.sum(s * sim.mean.ravel()) / denom)
    se = math.sqrt(max(linear_var_observed(sim, s), 0.0) / sim.samples) / denom
    res = mean_test(est, se, 1.0)
    return PendingCheck.from_test(
        "mean_relative",
        res,
        estimate=est,
        expected=1.0,
        detail=(
            "sign(μ)-weighted mean of y over all outputs and samples, relative to Σ|μ| "
            "(μ = the law's E[y]); CLT z-test of 1, unit correlations included."
        ),
    )


def check_mean_per_output(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    """Every output's ``E[y] = μ`` (z-tests, Bonferroni; exact when the variance is 0)."""
    N = sim.samples
    ybar = sim.mean.ravel()
    var = sim.var.ravel() if N > 1 else np.zeros_like(ybar)
    mu = law.mean(sim.x, sim.weight).ravel()
    se = np.sqrt(np.maximum(var, 0.0) / N)
    out = output_name(sim)
    # Zero variance (p = 0): y is deterministic and must equal μ up to the
    # float64 rounding of forming it (1e-12 of the output's magnitude).
    return worst_z_check(
        f"mean_per_{out}", ybar, mu, se,
        lambda w: (f"worst of {ybar.size} {out}s (#{w}): mean {ybar[w]:.6g} vs law {mu[w]:.6g}; "
                   f"z-tests, Bonferroni over {out}s."),
        tol=1e-12 * magnitude(sim),
    )


def _two_point_variance(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    N = sim.samples
    _, slope, c = sim.law.affine_map(sim.x)
    d_ref = (slope * c).ravel()
    k = np.repeat(sim.keep_counts.ravel(), sim.unit_size)
    s2_law = law.var(sim.x).ravel()
    obs = d_ref**2 * k * (N - k) / (float(N) * (N - 1))
    pe = np.ones(d_ref.size)
    zero = d_ref == 0
    pe[zero] = np.where(s2_law[zero] <= 1e-300, 1.0, 0.0)
    nz = ~zero
    rho = np.zeros(d_ref.size)
    rho[nz] = s2_law[nz] / d_ref[nz] ** 2
    # The law pins the keep rate r to a root of r (1 - r) = rho; the null is
    # composite over the roots (exact two-point test of mcdrop.laws on each).
    key = np.round(rho, 12)
    for val in np.unique(key[nz]):
        sel = nz & (key == val)
        disc = 1.0 - 4.0 * val
        if disc < -1e-12:
            pe[sel] = 0.0
            continue
        pe[sel] = np.max(
            [two_point_variance_pvalues(k[sel], N, 1.0, r, float(val)) for r in rate_roots(disc)],
            axis=0,
        )
    w, p_check = worst(pe)
    n_el = pe.size
    kw, dw = int(k[w]), float(d_ref[w])

    def interval(level: float) -> ConfidenceInterval:
        return two_point_variance_interval(kw, N, n_el, dw * dw, level)

    return PendingCheck(
        name="variance_per_element",
        pvalue=p_check,
        estimate=float(obs[w]),
        expected=float(s2_law[w]),
        detail=(
            f"worst of {n_el} elements (#{w}): Var[y] = {obs[w]:.6g} vs law {s2_law[w]:.6g}; "
            "exact two-point test on the keep count, Bonferroni over elements."
        ),
        interval=interval,
        extra={"worst": w},
    )


def _delta_se(sigma2: np.ndarray, mu4: np.ndarray, N: int) -> np.ndarray:
    return np.sqrt(np.maximum(mu4 - sigma2 * sigma2 * ((N - 3) / (N - 1)), 0.0) / N)


def _variance_z_check(name, obs, s2_law, se, what, detail_tail) -> PendingCheck:
    return worst_z_check(
        name, obs, s2_law, se,
        lambda w: f"worst of {obs.size} {what} (#{w}): {obs[w]:.6g} vs law {s2_law[w]:.6g}; {detail_tail}",
        floor=0.0,
    )


def check_variance_per_output(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    """Every output's ``Var[y]`` = the law's (see the module docstring for the tests)."""
    N = sim.samples
    if law.two_point:
        return _two_point_variance(sim, law)
    if sim.variant == "gaussian":
        obs = sim.noise_sd**2 * sim.noise_var  # Var[y/x] per unit
        s2 = np.full(obs.shape, law.noise_var)
        se = _delta_se(s2, 3.0 * s2 * s2, N)
        return _variance_z_check(
            "variance_per_element", obs, s2, se, "units",
            "Var[y/x] per unit vs the noise variance; delta method with the normal "
            "fourth moment 3σ⁴, Bonferroni over units.",
        )
    c = law.scale * sim.weight * sim.x
    s2 = law.var(sim.x, sim.weight)
    pq = law.p * law.q
    k4 = np.sum(c**4, axis=1) * pq * (1 - 6 * pq)
    se = _delta_se(s2, np.maximum(k4 + 3 * s2 * s2, s2 * s2), N)
    return _variance_z_check(
        "variance_per_output", sim.var, s2, se, "outputs",
        "delta method with the exact fourth moment of a sum of scaled Bernoullis, "
        "Bonferroni over outputs.",
    )


def check_layer_variance(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    """Var[layer mean] = the law's value for its structure (delta method)."""
    lm = sim.layer_mean
    sigma2 = law.layer_var(sim.x, sim.weight)
    pq = law.p * law.q
    n = sim.n_outputs
    if sim.variant == "gaussian":
        mu4 = 3.0 * sigma2**2
    else:
        if sim.variant == "dropconnect":
            c = law.scale * sim.weight * sim.x
            coef = (c.sum(axis=0) if law.input_mask else c.ravel()) / n
        else:
            d = (law.kept_value(sim.x) - law.dropped_value(sim.x)).ravel()
            n_units, g = law.units(sim.x.shape)
            coef = d.reshape(n_units, g).sum(axis=1) / n
        mu4 = float(np.sum(coef**4) * pq * (1 - 6 * pq)) + 3 * sigma2**2
    res = variance_test(
        max(lm.var, 0.0), sim.samples, sigma2, fourth_central_moment=max(mu4, sigma2**2), method="delta"
    )
    unit = "weights" if sim.variant == "dropconnect" and not law.input_mask else (
        "inputs" if sim.variant == "dropconnect" else f"{law.structure}s"
    )
    return PendingCheck.from_test(
        "layer_variance",
        res,
        estimate=float(lm.var),
        expected=sigma2,
        detail=(
            f"variance over samples of the per-sample layer mean vs {sigma2:.6g}, what independent "
            f"{unit} give under the law ({law.describe()}); delta-method z-test."
        ),
    )


def check_second_moment(sim: Simulation, law: DropoutLaw) -> PendingCheck:
    """Alpha: pooled ``E[y²]`` = mean over elements of the law's ``Var + E²``."""
    N = sim.samples
    ref = sim.law
    kv = ref.kept_value(sim.x).ravel()
    dv = ref.dropped_value(sim.x).ravel()
    k = np.repeat(sim.keep_counts.ravel(), sim.unit_size).astype(np.float64)
    r = k / N
    n = sim.n
    est = float(np.mean(kv * kv * r + dv * dv * (1 - r)))
    V = (kv * kv - dv * dv).reshape(sim.n_units, sim.unit_size).sum(axis=1)
    ku = sim.keep_counts.ravel().astype(np.float64)
    var_ps = float(np.sum(V * V * ku * (N - ku)) / (float(N) * (N - 1))) / n**2 if N > 1 else 0.0
    expected = float(np.mean(law.var(sim.x) + law.mean(sim.x) ** 2))
    res = mean_test(est, math.sqrt(max(var_ps, 0.0) / N), expected)
    return PendingCheck.from_test(
        "second_moment",
        res,
        estimate=est,
        expected=expected,
        detail=(
            "pooled mean of y² over elements and samples (exact from the keep counts) vs the law; "
            "with a standardised input this is AlphaDropout's self-normalisation (E[y²] = 1)."
        ),
    )
