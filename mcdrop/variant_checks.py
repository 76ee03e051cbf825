"""Checks of the dropout variants' laws, and ``mcdrop.verify(variant=..., structure=...)``.

Every check compares what a :class:`~mcdrop.variant_sampling.VariantSimulation`
sampled with what a :class:`~mcdrop.variants.VariantLaw` claims, and returns a
:class:`mcdrop.laws.PendingCheck`; a whole run is one Holm family
(:func:`mcdrop.laws.decide`), exactly as in :func:`mcdrop.verify`.  A negative
control is the same sampled data checked against a deliberately wrong law
(AlphaDropout with ``b = 0``, Gaussian variance ``p`` instead of ``p/q``, …):
it must fail, which shows each check can fail.

The checks (names as in the verdict table)
------------------------------------------
mask checks (Bernoulli variants)
    ``keep_rate``, ``keep_rate_per_<unit>``, ``keep_count_distribution``,
    ``<unit>_dispersion`` — the core's tests on the keep counts of the
    independent units (elements, channels, samples or weights).
``mean_layer``
    E[layer mean] = mean of the law's ``E[y]`` (CLT z-test).
``mean_relative``
    ``Σ sign(μ) ȳ / Σ |μ| = 1`` pooled over outputs (sign cannot cancel a
    scale error), with the structure's correlations in its standard error.
``mean_per_element`` / ``mean_per_output``
    every output's mean = the law's ``E[y]`` (z-tests, Bonferroni).
``variance_per_element`` / ``variance_per_output``
    two-point variants: the exact test of :mod:`mcdrop.laws` on the keep
    count; Gaussian: delta method with the normal fourth moment; DropConnect:
    delta method with the exact fourth moment of a sum of scaled Bernoullis.
``layer_variance``
    Var[layer mean] = the law's value for its *structure* (independent
    units): this is where channel/sample masks and DropConnect's per-weight
    masks differ from element-wise dropout.
``support``
    exact, on a materialised batch: two-point outputs are one of the law's
    two values (4 ulp); Gaussian outputs are finite; DropConnect outputs lie
    between the sums of the negative and of the positive ``W_ij x_j / q``.
``unit_coherence`` (channel, sample)
    exact: every element of a unit is kept or dropped together (Gaussian:
    shares one noise value).
``sign_flip_rate``, ``noise_skewness``, ``noise_kurtosis``, ``noise_ks`` (Gaussian)
    ``P(ε < 0) = Φ(−1/σ)``; pooled ``E z³ = 0`` and ``E z⁴ = 3`` of the
    standardised noise (exact sums from the kernel); Kolmogorov–Smirnov
    against N(0, 1) on a materialised batch.
``second_moment`` (alpha)
    pooled ``E[y²]`` = the law's; with a standardised input (mean 0,
    variance 1) this and ``mean_layer`` are AlphaDropout's self-normalisation
    (output mean 0, variance 1).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import stats as sps

from . import laws, stats
from ._validation import (
    check_alpha,
    check_positive_int,
    check_seed,
    check_shape,
    check_threads,
    check_x,
    resolve_pq,
)
from .laws import PendingCheck, _exact, _worst
from .results import ConfidenceInterval
from .rng import child_seed as _child
from .variant_sampling import VariantSimulation, simulate_variant
from .variants import VariantLaw, variant_law

__all__ = [
    "law_checks",
    "keep_count_checks",
    "control_laws",
    "verify_variant",
    "verify_variants",
    "default_inputs",
    "standardise",
    "section_tag",
    "SUITE",
]

POWER = 0.99
CONTROL_P = 0.3
DEFAULT_MAIN_SAMPLES = 2 * 10**6
#: Materialised outputs for the exact checks and the KS test.
MATERIALISE_VALUES = 2**20


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


class _MaskView:
    """The attributes :mod:`mcdrop.laws`' keep-count checks read, for any unit."""

    def __init__(self, keep_counts: np.ndarray, hist: np.ndarray, samples: int, q: float):
        self.keep_counts = np.asarray(keep_counts).ravel()
        self.keep_count_hist = np.asarray(hist)
        self.samples = int(samples)
        self.q = float(q)
        self.n = int(self.keep_counts.size)


def _unit_name(sim: VariantSimulation) -> str:
    return "weight" if sim.variant == "dropconnect" else sim.structure


def _out_name(sim: VariantSimulation) -> str:
    return "output" if sim.variant == "dropconnect" else "element"


def _reference_coefficients(sim: VariantSimulation):
    """``(offset, slope, c)`` of the reference's two-point map."""
    return sim.law.affine_map(sim.x)


def _magnitude(sim: VariantSimulation) -> np.ndarray:
    """Scale of each output, for the rounding tolerance of exact comparisons."""
    if sim.variant == "dropconnect":
        return np.abs(sim.weight * sim.x).sum(axis=1) / sim.q
    if sim.variant == "gaussian":
        return np.abs(sim.x).ravel()
    law = sim.law
    return (np.abs(law.kept_value(sim.x)) + np.abs(law.dropped_value(sim.x))).ravel()


def _linear_var_observed(sim: VariantSimulation, a: np.ndarray) -> float:
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
    _, slope, c = _reference_coefficients(sim)
    D = (a * slope * c.ravel()).reshape(n_units, g).sum(axis=1)
    k = sim.keep_counts.ravel().astype(np.float64)
    return float(np.sum(D * D * k * (N - k)) / (float(N) * (N - 1)))


def _linear_var_law(sim: VariantSimulation, law: VariantLaw, a: np.ndarray) -> float:
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


# ---------------------------------------------------------------------------
# mask checks
# ---------------------------------------------------------------------------


def keep_count_checks(sim: VariantSimulation) -> list[PendingCheck]:
    """The keep-count checks of :mod:`mcdrop.laws` on the independent units."""
    view = _MaskView(sim.keep_counts, sim.keep_count_hist, sim.samples, sim.q)
    unit = _unit_name(sim)
    out = [
        laws.check_keep_rate(view),
        laws.check_keep_rate_per_element(view),
        laws.check_keep_count_distribution(view),
        laws.check_element_dispersion(view),
    ]
    if unit != "element":
        out[1].name = f"keep_rate_per_{unit}"
        out[3].name = f"{unit}_dispersion"
        for pc in out:
            pc.detail = pc.detail.replace("elements", f"{unit}s").replace("element ", f"{unit} ")
    return out


# ---------------------------------------------------------------------------
# means
# ---------------------------------------------------------------------------


def check_mean_layer(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
    """E[layer mean] = mean over outputs of the law's ``E[y]`` (CLT z-test)."""
    lm = sim.layer_mean
    expected = float(np.mean(law.mean(sim.x, sim.weight)))
    res = stats.mean_test(lm.mean, lm.standard_error, expected)
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


def check_mean_relative(sim: VariantSimulation, law: VariantLaw) -> PendingCheck | None:
    """``Σ sign(μ) ȳ / Σ|μ| = 1`` pooled over outputs (z-test; None if every μ is 0)."""
    mu = law.mean(sim.x, sim.weight).ravel()
    s = np.sign(mu)
    denom = float(np.sum(np.abs(mu)))
    if denom == 0.0:
        return None
    est = float(np.sum(s * sim.mean.ravel()) / denom)
    se = math.sqrt(max(_linear_var_observed(sim, s), 0.0) / sim.samples) / denom
    res = stats.mean_test(est, se, 1.0)
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


def check_mean_per_output(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
    """Every output's ``E[y] = μ`` (z-tests, Bonferroni; exact when the variance is 0)."""
    N = sim.samples
    ybar = sim.mean.ravel()
    var = sim.var.ravel() if N > 1 else np.zeros_like(ybar)
    mu = law.mean(sim.x, sim.weight).ravel()
    se = np.sqrt(np.maximum(var, 0.0) / N)
    out = _out_name(sim)
    # Zero variance (p = 0): y is deterministic and must equal μ up to the
    # float64 rounding of forming it (1e-12 of the output's magnitude).
    return laws.worst_z_check(
        f"mean_per_{out}", ybar, mu, se,
        lambda w: (f"worst of {ybar.size} {out}s (#{w}): mean {ybar[w]:.6g} vs law {mu[w]:.6g}; "
                   f"z-tests, Bonferroni over {out}s."),
        tol=1e-12 * _magnitude(sim),
    )


# ---------------------------------------------------------------------------
# variances
# ---------------------------------------------------------------------------


def _two_point_variance(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
    N = sim.samples
    _, slope, c = _reference_coefficients(sim)
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
            [laws._two_point_variance_pvalues(k[sel], N, 1.0, r, float(val)) for r in laws._rate_roots(disc)],
            axis=0,
        )
    w, p_check = _worst(pe)
    n_el = pe.size
    kw, dw = int(k[w]), float(d_ref[w])

    def interval(level: float) -> ConfidenceInterval:
        return laws._two_point_variance_interval(kw, N, n_el, dw * dw, level)

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
    return laws.worst_z_check(
        name, obs, s2_law, se,
        lambda w: f"worst of {obs.size} {what} (#{w}): {obs[w]:.6g} vs law {s2_law[w]:.6g}; {detail_tail}",
        floor=0.0,
    )


def check_variance_per_output(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
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


def check_layer_variance(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
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
    res = stats.variance_test(
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


# ---------------------------------------------------------------------------
# support, structure, distribution
# ---------------------------------------------------------------------------


def _materialised(sim: VariantSimulation):
    return sim.materialise(MATERIALISE_VALUES)


def check_support(sim: VariantSimulation, law: VariantLaw, mat=None) -> PendingCheck:
    """Exact support check on a materialised batch (see the module docstring)."""
    draws, y = mat if mat is not None else _materialised(sim)
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
    return _exact(
        "support", n_off == 0,
        f"{n_off} of {y.size} materialised outputs are not {what}.",
        estimate=float(n_off), expected=0.0, extra={"examples": ex},
    )


def check_unit_coherence(sim: VariantSimulation, law: VariantLaw, mat=None) -> PendingCheck:
    """Channel/sample structure: every element of a unit moves together (exact)."""
    draws, y = mat if mat is not None else _materialised(sim)
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
    return _exact(
        "unit_coherence", bad == 0,
        f"{bad} of {s * sim.n_units} materialised {sim.structure} units have elements that did not "
        f"share one draw ({sim.unit_size} elements per unit).",
        estimate=float(bad), expected=0.0,
    )


def check_zero_output(sim: VariantSimulation, law: VariantLaw, mat=None) -> PendingCheck:
    """p = 1 (inverted, standard): every output is exactly 0, never NaN."""
    _, y = mat if mat is not None else _materialised(sim)
    ok = bool(np.all(y == 0)) and int(sim.keep_counts.sum()) == 0
    return _exact("zero_output", ok, "p = 1: every output must be exactly 0 (not NaN).",
                  estimate=float(np.count_nonzero(y)), expected=0.0)


def check_sign_flip_rate(sim: VariantSimulation, law: VariantLaw, mat=None) -> PendingCheck:
    """Gaussian: ``P(ε < 0) = Φ(−1/σ)`` per unit draw (exact binomial test)."""
    draws, _ = mat if mat is not None else _materialised(sim)
    eps = 1.0 + sim.noise_sd * draws
    k = int(np.count_nonzero(eps < 0))
    n = int(eps.size)
    target = float(sps.norm.cdf(-1.0 / math.sqrt(law.noise_var)))
    res = stats.keep_rate_test(k, n, target)
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


def check_noise_moments(sim: VariantSimulation, law: VariantLaw) -> list[PendingCheck]:
    """Gaussian: pooled ``E z′³ = 0`` and ``E z′⁴ = 3`` of ``z′ = (y/x − 1)/σ_law``."""
    m3, m4 = sim.noise_power_means
    rho = sim.noise_sd / math.sqrt(law.noise_var)
    tot = sim.samples * sim.n_units
    out = []
    for name, est, expected, v, what in (
        ("noise_skewness", rho**3 * m3, 0.0, 15.0, "E z′³ = 0"),
        ("noise_kurtosis", rho**4 * m4, 3.0, 96.0, "E z′⁴ = 3"),
    ):
        res = stats.mean_test(est, math.sqrt(v / tot), expected)
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


def check_noise_ks(sim: VariantSimulation, law: VariantLaw, mat=None) -> PendingCheck:
    """Gaussian: Kolmogorov–Smirnov test of the standardised noise against N(0, 1)."""
    draws, _ = mat if mat is not None else _materialised(sim)
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


def check_second_moment(sim: VariantSimulation, law: VariantLaw) -> PendingCheck:
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
    res = stats.mean_test(est, math.sqrt(max(var_ps, 0.0) / N), expected)
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


# ---------------------------------------------------------------------------
# the battery
# ---------------------------------------------------------------------------


def law_checks(sim: VariantSimulation, law: VariantLaw | None = None, *, mask_checks: bool = True,
               only: set | None = None) -> list[PendingCheck]:
    """All checks of ``law`` (default: the correct one) on ``sim``.

    ``mask_checks=False`` leaves out the keep-count checks (negative
    controls share the reference masks); ``only`` keeps just the named checks.
    """
    law = sim.law if law is None else law
    out: list[PendingCheck] = []
    bernoulli = sim.variant != "gaussian"
    if bernoulli and mask_checks:
        out += keep_count_checks(sim)
    mat = _materialised(sim)
    if sim.q == 0.0:
        out.append(check_zero_output(sim, law, mat))
    elif sim.p == 0.0:
        # p = 0: every variant is the identity (DropConnect: W x); y is
        # deterministic, so the per-output check is exact and pooled float
        # summaries would only add rounding.
        out += [check_mean_per_output(sim, law), check_support(sim, law, mat)]
        if sim.structure != "element":
            out.append(check_unit_coherence(sim, law, mat))
    else:
        out += [check_mean_layer(sim, law)]
        mr = check_mean_relative(sim, law)
        if mr is not None:
            out.append(mr)
        out += [check_mean_per_output(sim, law), check_support(sim, law, mat),
                check_variance_per_output(sim, law)]
        if sim.n_outputs > 1:
            out.append(check_layer_variance(sim, law))
        if sim.structure != "element":
            out.append(check_unit_coherence(sim, law, mat))
        if sim.variant == "gaussian":
            out.append(check_sign_flip_rate(sim, law, mat))
            out += check_noise_moments(sim, law)
            out.append(check_noise_ks(sim, law, mat))
        if sim.variant == "alpha":
            out.append(check_second_moment(sim, law))
    if only is not None:
        out = [pc for pc in out if pc.name in only]
    return out


def control_laws(sim: VariantSimulation) -> list[tuple[str, str, VariantLaw, set]]:
    """Deliberately wrong laws for ``sim``'s variant: ``(key, description, law, checks)``.

    ``checks`` names the checks the wrong law affects: each must fail.
    """
    law = sim.law
    out = []
    q, p = law.q, law.p
    mixed = abs(float(np.mean(sim.x))) < 0.5 * float(np.mean(np.abs(sim.x)))
    if law.variant == "standard":
        names = {"mean_relative", "mean_per_element", "support", "variance_per_element"}
        if not mixed:
            names.add("mean_layer")
        out.append(("inverted_law", "negative control: the inverted law E[y] = x (forgot the test-time "
                    "scaling by q) on standard dropout", law.replace(scale=1.0 / q, eval_scale=1.0,
                    label="inverted law on standard dropout (wrong)"), names))
    elif law.variant == "gaussian":
        out.append(("variance_p", "negative control: Gaussian dropout with noise variance p instead "
                    "of p/q", law.replace(noise_var=p, label="Gaussian dropout, variance p (wrong)"),
                    {"variance_per_element", "layer_variance", "noise_kurtosis", "noise_ks", "sign_flip_rate"}))
    elif law.variant == "alpha":
        out.append(("b_zero", "negative control: AlphaDropout with b = 0 (no shift back to mean 0)",
                    law.replace(b=0.0, label="AlphaDropout, b = 0 (wrong)"),
                    {"mean_layer", "mean_per_element", "support", "second_moment"}))
    elif law.variant == "dropconnect":
        out.append(("input_mask", "negative control: the law of dropout on the layer's inputs (one "
                    "mask per input shared by all outputs) claimed for DropConnect",
                    law.replace(input_mask=True, label="input dropout's law for DropConnect (wrong)"),
                    {"layer_variance"}))
    if law.structure != "element":
        out.append(("elementwise", f"negative control: element-wise independence claimed for "
                    f"{law.structure} masks", law.replace(structure="element", label=(
                        f"element-wise law on {law.structure} masks (wrong)")), {"layer_variance"}))
    return out


#: Short names of the wrong laws, for section titles.
CONTROL_TITLES = {
    "inverted_law": "E[y]=x",
    "variance_p": "Var=p",
    "b_zero": "b=0",
    "input_mask": "in-mask",
    "elementwise": "elemwise",
}
#: Short section-title tags (the verdict table's section column is narrow).
_VTAG = {"inverted": "inv", "standard": "std", "gaussian": "gauss", "alpha": "alpha", "dropconnect": "dropconn"}
_STAG = {"element": "", "channel": "/chan", "sample": "/path"}


def section_tag(variant: str, structure: str) -> str:
    """Short tag of a variant/structure for section titles, e.g. ``gauss/chan``, ``inv/path``."""
    return _VTAG[variant] + _STAG[structure]


# ---------------------------------------------------------------------------
# inputs and verify(variant=...)
# ---------------------------------------------------------------------------


def standardise(x) -> np.ndarray:
    """``(x − mean) / sd`` over all elements (population sd): mean 0, variance 1."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std()


def default_inputs(variant: str, structure: str, *, sweep: bool, shape=None, seed=None):
    """``(x, weight, description)``: the default input of a variant's main or sweep section.

    Element structure: the seed example ``[2, 4, 6, 8]`` (main) or the core's
    (32, 256) mixed-sign sweep input; channel/sample: non-negative
    (post-ReLU-like) inputs, where the structure changes the layer variance
    the most; AlphaDropout: standardised to mean 0 and variance 1 (its
    self-normalising regime); DropConnect: ``W ~ N(0.2, 1)/sqrt(in)`` with a
    non-negative input.
    """
    from .verification import SEED_X, sweep_input

    g = np.random.default_rng(check_seed(seed))
    if variant == "dropconnect":
        o, i = shape if shape is not None else ((32, 256) if sweep else (8, 16))
        w = g.normal(0.2, 1.0, size=(o, i)) / math.sqrt(i)
        x = np.abs(g.normal(size=i)) + 0.05
        return x, w, f"W ~ N(0.2, 1)/sqrt({i}) of shape ({o}, {i}), x = |N(0,1)| + 0.05"
    if structure == "element":
        if sweep:
            shp = shape if shape is not None else (32, 256)
            x = sweep_input(shp, seed)
            desc = f"{shp} mixed-sign input"
        else:
            x = np.array(SEED_X)
            desc = "seed example x = [2, 4, 6, 8]"
    else:
        shp = shape if shape is not None else (
            ((8, 16, 8, 8) if sweep else (2, 4, 3, 3)) if structure == "channel"
            else ((32, 256) if sweep else (8, 16))
        )
        x = np.abs(sweep_input(shp, seed))
        desc = f"{shp} non-negative input"
    if variant == "alpha":
        x = standardise(x)
        desc += ", standardised to mean 0, variance 1"
    return x, None, desc


def _theory_se_relative(sim: VariantSimulation) -> float | None:
    law = sim.law
    mu = law.mean(sim.x, sim.weight).ravel()
    denom = float(np.sum(np.abs(mu)))
    if denom == 0.0 or law.p == 0.0 or law.q == 0.0:
        return None
    return math.sqrt(_linear_var_law(sim, law, np.sign(mu)) / sim.samples) / denom


def _scale_label(law: VariantLaw) -> tuple[float, str]:
    if law.variant == "gaussian":
        return 1.0, "ε ~ N(1, p/q)"
    if law.variant == "alpha":
        return law.a, "a x + b"
    if law.variant == "standard":
        return 1.0, "1 (eval: q)"
    return law.scale, "1/q"


def verify_variant(
    x=None,
    p=None,
    *,
    keep=None,
    variant: str = "inverted",
    structure: str = "element",
    weight=None,
    samples: int | None = None,
    alpha: float = 1e-6,
    seed=0,
    threads: int | None = None,
    sweep: bool = True,
    controls: bool = True,
    sweep_samples: int | None = None,
    sweep_shape=None,
    progress: bool = False,
):
    """Verify a variant's laws on the reference kernels (``mcdrop.verify(variant=...)``).

    Same sections and statistics contract as :func:`mcdrop.verify`: the main
    input, a sweep over :data:`mcdrop.verification.SWEEP_P` (skipping values
    where the law is undefined) and negative controls (wrong laws on the same
    samples, see :func:`control_laws`), all law checks in one Holm family at
    ``alpha``.
    """
    from .verification import SWEEP_P, VerifyResult, VerifyRow, VerifySection, _environment

    ss = check_seed(seed)
    alpha = check_alpha(alpha)
    threads = check_threads(threads)
    p0 = 0.5 if p is None and keep is None else resolve_pq(p, keep)[0]
    # the names, their combination, and p = 1 where the law is undefined -> ValueError
    variant_law(variant, p0, structure=structure)
    if samples is None:
        n0 = DEFAULT_MAIN_SAMPLES // 2 if variant == "dropconnect" else DEFAULT_MAIN_SAMPLES
    else:
        n0 = check_positive_int(samples, "samples")
    structured = structure != "element"
    ns = (5 * 10**5 if structured else 5 * 10**4) if sweep_samples is None else check_positive_int(
        sweep_samples, "sweep_samples")
    if sweep_shape is not None:
        sweep_shape = check_shape(sweep_shape, "sweep_shape")
    if variant == "dropconnect":
        if (x is None) != (weight is None):
            raise ValueError("variant 'dropconnect': give both `x` (input vector) and `weight` "
                             "(out, in), or neither for the default layer.")
    elif weight is not None:
        raise ValueError(f"`weight` is only used by variant 'dropconnect'; got variant {variant!r}.")
    if x is None:
        x0, w0, desc0 = default_inputs(variant, structure, sweep=False, seed=_child(ss, 1))
        is_default = True
    else:
        x0 = check_x(x)
        w0 = weight
        desc0 = "your input"
        is_default = False

    t0 = time.perf_counter()
    sims: dict[str, VariantSimulation] = {}

    def run(name, xx, ww, pp, n, child):
        # only the main section's running mean is plotted: the sweeps skip the trace
        sims[name] = simulate_variant(xx, pp, variant=variant, structure=structure, weight=ww,
                                      samples=n, seed=_child(ss, child), threads=threads,
                                      progress=progress, trace=name == "main")

    run("main", x0, w0, p0, n0, 0)
    sweep_ps = [pp for pp in SWEEP_P if not (pp == 1.0 and variant in ("gaussian", "alpha", "dropconnect"))]
    xs = ws = None
    descs = ""
    if sweep or controls:
        xs, ws, descs = default_inputs(variant, structure, sweep=True, shape=sweep_shape, seed=_child(ss, 1))
    if sweep:
        for i, pp in enumerate(sweep_ps):
            run(f"sweep_p{pp:g}", xs, ws, pp, ns, 2 + i)
    elif controls:
        run(f"sweep_p{CONTROL_P:g}", xs, ws, CONTROL_P, ns, 2 + SWEEP_P.index(CONTROL_P))

    tag = section_tag(variant, structure)
    seed_like = is_default and structure == "element" and variant != "dropconnect"
    main_title = f"{tag}: {'seed example' if seed_like else ('main input' if is_default else 'your input')}"
    m = sims["main"]
    specs = [("main", main_title, f"{desc0}, p = {m.p:g} (keep {m.q:g}), {m.samples:,} samples",
              "main", None, None)]
    if sweep:
        for pp in sweep_ps:
            key = f"sweep_p{pp:g}"
            specs.append((key, f"{tag}: p={pp:g}", f"{descs}, p = {pp:g}, {ns:,} samples", key, None, None))
    if controls:
        ckey = f"sweep_p{CONTROL_P:g}"
        for cname, cdesc, claw, names in control_laws(sims[ckey]):
            specs.append((f"control_{cname}", f"{tag} ctl {CONTROL_TITLES[cname]}",
                          f"{cdesc} (sweep input, p = {CONTROL_P:g})", ckey, claw, names))
        if 0 < m.q < 1 and m.p > 0:
            for cname, cdesc, claw, names in control_laws(m):
                if cname in ("b_zero", "inverted_law", "variance_p"):
                    specs.append((f"control_{cname}_main", f"{tag} main ctl {CONTROL_TITLES[cname]}",
                                  f"{cdesc} (main input)", "main", claw, names))

    pending = []
    for name, _, _, skey, claw, names in specs:
        sim = sims[skey]
        if claw is None:
            pending.append((name, False, law_checks(sim)))
        else:
            pending.append((name, True, law_checks(sim, claw, mask_checks=False, only=names)))
    by_name, m_laws = laws.decide_families(pending, alpha)
    zsum = float(sps.norm.isf(alpha / max(m_laws, 1) / 2) + sps.norm.isf(1 - POWER))
    sections = []
    for spec in specs:
        name, title, desc, skey, claw, _ = spec
        sim = sims[skey]
        control = claw is not None
        law = claw if control else sim.law
        scale, label = _scale_label(law)
        db = None
        if not control:
            se = _theory_se_relative(sim)
            db = 0.0 if sim.p == 0 else (None if se is None else zsum * se)
        shape = tuple(sim.weight.shape) if sim.variant == "dropconnect" else tuple(sim.x.shape)
        sections.append(VerifySection(
            name=name, title=title, description=desc, p=sim.p, q=sim.q, scale=scale,
            scale_label=label, samples=sim.samples, shape=shape, simulation=skey, control=control,
            detectable_bias=db,
            rows=tuple(VerifyRow(title, c, "fail" if control else "pass") for c in by_name[name]),
        ))
    passed = all(s.as_expected for s in sections)
    return VerifyResult(
        passed=passed, alpha=alpha,
        seed=seed if not isinstance(seed, np.random.SeedSequence) else ss.entropy,
        sections=tuple(sections), simulations=sims, elapsed_s=time.perf_counter() - t0,
        environment=_environment(), variant=variant, structure=structure,
    )



# ---------------------------------------------------------------------------
# the variants suite (scripts/verify_variants.py)
# ---------------------------------------------------------------------------

#: (variant, structure) pairs of the suite: every variant element-wise, the
#: two structured masks (Dropout2d-style channels, DropPath), and Gaussian /
#: alpha noise per channel (FeatureAlphaDropout).
SUITE = (
    ("standard", "element"),
    ("gaussian", "element"),
    ("alpha", "element"),
    ("dropconnect", "element"),
    ("inverted", "channel"),
    ("inverted", "sample"),
    ("gaussian", "channel"),
    ("alpha", "channel"),
)


def _row(res, section: str, check: str):
    for s in res.sections:
        if s.name == section:
            for r in s.rows:
                if r.check.name == check:
                    return r.check
    return None


def verify_variants(*, seed=0, alpha: float = 1e-6, threads=None, quick: bool = False, progress=False,
                    suite=SUITE):
    """Every variant/structure of :data:`SUITE` through :func:`verify_variant`, with figure data.

    The family-wise bound ``alpha`` is split equally over the runs
    (Bonferroni), Holm within each run, so the whole table keeps
    ``alpha``.  ``quick=True`` uses small budgets (tests).
    """
    from .law_suite import LawSection, LawSuiteResult
    from .verification import SWEEP_P, _environment

    t0 = time.perf_counter()
    alpha = check_alpha(alpha)
    k = len(suite)
    budget = dict(samples=2 * 10**4, sweep_samples=5 * 10**3) if quick else {}
    sections, notes = [], [f"alpha = {alpha:g} split over {k} variant runs (Bonferroni), Holm within each run."]
    fig = {"combos": [], "gaussian": None, "alpha": None}
    passed = True
    for i, (variant, structure) in enumerate(suite):
        res = verify_variant(variant=variant, structure=structure, alpha=alpha / k, seed=_child(check_seed(seed), i),
                             threads=threads, progress=progress, **budget)
        passed &= res.passed
        tag = variant if structure == "element" else f"{variant}/{structure}"
        for s in res.sections:
            sections.append(LawSection(f"{tag}:{s.name}", s.title, s.description, s.control, s.rows))
        main = next(s for s in res.sections if s.name == "main")
        if main.detectable_bias is not None:
            notes.append(f"{tag}: {main.samples:,} samples x {math.prod(main.shape):,} elements (main); detects a "
                         f"relative mean bias of {main.detectable_bias:.2g} with power {POWER}.")
        m = res.simulations["main"]
        tr = m.trace
        combo = {"variant": variant, "structure": structure, "tag": tag,
                 "trace": {"samples": tr["samples"].tolist(), "mean": tr["mean"].tolist(), "sd": tr["sd"].tolist()},
                 "expected_mean": m.layer_mean.expected,
                 "layer_var": {"p": [], "ratio": [], "ci": [], "wrong": [], "wrong_label": None}}
        for pp in SWEEP_P:
            key = f"sweep_p{pp:g}"
            sim = res.simulations.get(key)
            c = _row(res, key, "layer_variance")
            if sim is None or c is None or c.expected in (None, 0):
                continue
            lv = combo["layer_var"]
            lv["p"].append(pp)
            lv["ratio"].append(c.estimate / c.expected)
            ci = c.confidence_interval
            lv["ci"].append([ci.low / c.expected, ci.high / c.expected])
            wrong = [cl for cl in control_laws(sim) if cl[0] in ("elementwise", "input_mask", "variance_p",
                                                                  "inverted_law")]
            if wrong:
                wl = wrong[0][2]
                lv["wrong"].append(wl.layer_var(sim.x, sim.weight) / c.expected)
                lv["wrong_label"] = wl.label
        fig["combos"].append(combo)
        if (variant, structure) == ("gaussian", "element"):
            g = {"p": [], "flip": [], "flip_ci": [], "flip_law": [], "hist": None}
            for pp in SWEEP_P:
                c = _row(res, f"sweep_p{pp:g}", "sign_flip_rate")
                if c is None:
                    continue
                g["p"].append(pp)
                g["flip"].append(c.estimate)
                g["flip_ci"].append([c.confidence_interval.low, c.confidence_interval.high])
                g["flip_law"].append(c.expected)
            ks = _row(res, "sweep_p0.5", "noise_ks") or _row(res, "main", "noise_ks")
            if ks is not None:
                g["hist"] = {"edges": ks.extra["hist_edges"], "counts": ks.extra["hist_counts"], "n": ks.extra["n"],
                             "ks": ks.estimate, "pvalue": ks.pvalue}
            fig["gaussian"] = g
        if (variant, structure) == ("alpha", "element"):
            a = {"p": [], "mean": [], "mean_ci": [], "m2": [], "m2_ci": [], "b0_mean": [], "b0_m2": []}
            for pp in SWEEP_P:
                key = f"sweep_p{pp:g}"
                cm, c2 = _row(res, key, "mean_layer"), _row(res, key, "second_moment")
                if cm is None or c2 is None:
                    continue
                sim = res.simulations[key]
                b0 = sim.law.replace(b=0.0)
                a["p"].append(pp)
                a["mean"].append(cm.estimate)
                a["mean_ci"].append([cm.confidence_interval.low, cm.confidence_interval.high])
                a["m2"].append(c2.estimate)
                a["m2_ci"].append([c2.confidence_interval.low, c2.confidence_interval.high])
                a["b0_mean"].append(float(np.mean(b0.mean(sim.x))))
                a["b0_m2"].append(float(np.mean(b0.var(sim.x) + b0.mean(sim.x) ** 2)))
            fig["alpha"] = a
    n_checks = sum(len(s.rows) for s in sections if not s.control)
    return LawSuiteResult(
        name="variants", title="mcdrop: dropout variants on the reference kernels", passed=bool(passed),
        alpha=alpha, seed=seed, sections=tuple(sections), figures=fig, notes=tuple(notes),
        family_note=(f"family-wise false-alarm bound alpha = {alpha:g} over {n_checks} law checks "
                     f"(alpha/{k} per variant run, Holm within a run; each run's intervals at its "
                     "simultaneous level)."),
        elapsed_s=time.perf_counter() - t0, environment=_environment(),
    )
