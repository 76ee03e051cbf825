"""Checks of the mask alone: keep rate, per-unit rates, keep-count law, dispersion.

They read integer keep counts: per unit over ``calls`` draws (samples of a
reference run, or training calls of an audit) and the histogram of units
kept per call.  :func:`mcdrop.verify` and :func:`mcdrop.audit` use the same
functions.
"""

from __future__ import annotations

import numpy as np

from ..stats.binomial import binomial_gof, clopper_pearson, keep_rate_test, two_sided_binom_p
from ..stats.dispersion import dispersion_from_counts, dispersion_from_hist
from .pending import PendingCheck, exact
from .per_unit import worst

__all__ = ["check_keep_rate", "check_keep_rate_per_unit", "check_keep_count_distribution", "check_dispersion"]


def check_keep_rate(kept: int, trials: int, q: float, *, what: str = "draws",
                    tolerance: float | None = None) -> PendingCheck:
    """Pooled keep rate = ``q``: exact binomial test of ``kept`` of ``trials``.

    ``what`` names the draws in the detail (e.g. ``"mask units kept
    (recovered from the outputs)"``); ``tolerance`` gives the three-zone
    band ``q (1 ± tolerance)``.
    """
    res = keep_rate_test(kept, trials, q)
    est = kept / trials
    band = None
    if tolerance and 0.0 < q < 1.0:
        band = (q * (1.0 - tolerance), q * (1.0 + tolerance))
    return PendingCheck(
        name="keep_rate", pvalue=res.pvalue, estimate=est, expected=q,
        detail=(f"{kept:,} of {trials:,} {what}; exact binomial test of keep rate = q = {q:g}"
                + (f", relative error {est / q - 1:+.3g}" if q > 0 else "") + "."),
        interval=lambda level: res.confidence_interval(level, method="exact"),
        extra={"kept": kept, "trials": trials, "relative_error": (est / q - 1.0) if q > 0 else None},
        band=band,
    )


def check_keep_rate_per_unit(counts: np.ndarray, calls: int, q: float, unit: str = "element") -> PendingCheck:
    """Every unit's keep rate = ``q`` (exact binomial per unit, Bonferroni over units)."""
    k = np.asarray(counts).ravel()
    n = k.size
    name = f"keep_rate_per_{unit}"
    if q in (0.0, 1.0):
        ok = bool(np.all(k == calls * q))
        return exact(name, ok,
                     f"q = {q:g}: every {unit} must be {'kept' if q else 'dropped'} in every sample.",
                     estimate=float(k.min() / calls if q else k.max() / calls), expected=q)
    pe = two_sided_binom_p(k, calls, q)
    w, p_check = worst(pe)
    kw = int(k[w])
    return PendingCheck(
        name=name, pvalue=p_check, estimate=kw / calls, expected=q,
        detail=f"worst of {n} {unit}s (#{w}): {kw} of {calls} kept; exact binomial, Bonferroni over {unit}s.",
        interval=lambda level: clopper_pearson(kw, calls, 1 - (1 - level) / n),
        extra={"worst_element": w},
    )


def check_keep_count_distribution(hist: np.ndarray, n_units: int, q: float, calls: int) -> PendingCheck:
    """Units kept per call ~ Binomial(n_units, q) (independent units): chi-square goodness of fit."""
    if q in (0.0, 1.0):
        target = n_units if q else 0
        return exact("keep_count_distribution", int(hist[target]) == calls,
                     f"q = {q:g}: every sample keeps exactly {target}.")
    chi2, pv, df = binomial_gof(hist, n_units, q, calls)
    mean_k = float(np.dot(np.arange(hist.size), hist) / calls)
    return PendingCheck(
        name="keep_count_distribution", pvalue=pv, estimate=mean_k, expected=n_units * q, statistic=chi2,
        detail=(f"histogram of the number kept per sample vs Binomial({n_units}, {q:g}); "
                f"chi-square, {df} dof (cells pooled to >= 5 expected)."),
    )


def check_dispersion(name: str, call_hist: np.ndarray, unit_counts: np.ndarray, calls: int,
                     q: float) -> PendingCheck:
    """Binomial dispersion of the kept-per-call counts and of the per-unit keep counts.

    Each is ``D = Σ (k − t q)² / (t p q)`` against the chi-square matched to
    its exact mean and variance, with rigorous bounds where that chi-square
    cannot be trusted (:func:`mcdrop.stats.dispersion.binomial_dispersion`);
    the two p-values are combined by Bonferroni.  Over-dispersion means
    correlated masks or unequal rates; under-dispersion an "exactly k
    kept" sampler.
    """
    unit_counts = np.asarray(unit_counts).ravel()
    nu = unit_counts.size
    if q in (0.0, 1.0):
        ok = bool(np.all(unit_counts == calls * q))
        return exact(name, ok, f"q = {q:g}: every unit must be {'kept' if q else 'dropped'} in every call.")
    a = dispersion_from_hist(call_hist, nu, q)
    b = dispersion_from_counts(unit_counts, calls, q)
    parts = [d for d in (a, b) if d is not None]
    if not parts:
        # One unit per call, or a keep probability so close to 0 or 1 that
        # q(1 - q) rounds to nothing: no spread to compare.  Vacuous, as the
        # independence checks are then, and said so (keep_rate still tests the rate).
        return exact(name, True,
                     f"vacuous: needs at least 2 calls and 2 units with a binomial spread "
                     f"(got {nu} unit(s) per call, q = {q:.6g}); nothing to compare at this budget.")
    pv = min(1.0, len(parts) * min(d.pvalue for d in parts))
    main = a if a is not None else b
    txt = []
    if a is not None:
        txt.append(f"kept per call across {calls:,} calls: index {a.index:.4g} (p={a.pvalue:.2g}"
                   + (", tail bound" if a.method == "bound" else "") + ")")
    if b is not None:
        txt.append(f"keep count per unit across {nu:,} units: index {b.index:.4g} (p={b.pvalue:.2g}"
                   + (", tail bound" if b.method == "bound" else "") + ")")
    return PendingCheck(
        name=name, pvalue=pv, estimate=main.index, expected=1.0,
        detail=("binomial dispersion (1 for independent draws; > 1 correlated masks or unequal "
                "rates, < 1 'exactly k kept' samplers): " + "; ".join(txt) + "."),
        interval=main.interval,
        extra={"per_call": a.to_dict() if a else None, "per_unit": b.to_dict() if b else None},
    )
