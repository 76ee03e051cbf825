"""The variants suite (``scripts/verify_variants.py``): every law through :func:`mcdrop.verify`.

Standard, Gaussian, alpha and DropConnect element-wise; Dropout2d-style
channel and DropPath sample masks; Gaussian and alpha noise per channel.
The family-wise bound is split over the runs (Bonferroni), Holm within each,
and the figure data of ``reports/variants.pdf`` is collected on the way.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._validation import check_alpha, check_seed
from ..checks import controls as negative_controls
from ..core.rng import child_seed
from ..results import software_environment
from ..stats.power import POWER
from .results import LawSection, LawSuiteResult
from .verification import SWEEP_P, verify

__all__ = ["SUITE", "verify_variants"]


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
    """Every variant/structure of :data:`SUITE` through :func:`mcdrop.verify`, with figure data.

    The family-wise bound ``alpha`` is split equally over the runs
    (Bonferroni), Holm within each run, so the whole table keeps
    ``alpha``.  ``quick=True`` uses small budgets (tests).
    """
    t0 = time.perf_counter()
    alpha = check_alpha(alpha)
    k = len(suite)
    budget = dict(samples=2 * 10**4, sweep_samples=5 * 10**3) if quick else {}
    sections, notes = [], [f"alpha = {alpha:g} split over {k} variant runs (Bonferroni), Holm within each run."]
    fig = {"combos": [], "gaussian": None, "alpha": None}
    passed = True
    for i, (variant, structure) in enumerate(suite):
        res = verify(variant=variant, structure=structure, alpha=alpha / k, seed=child_seed(check_seed(seed), i),
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
            wrong = [c for c in negative_controls(sim) if c.key in ("elementwise", "input_mask", "variance_p",
                                                                 "inverted_law")]
            if wrong:
                wl = wrong[0].law
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
                b0 = sim.sampled_law.replace(b=0.0)
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
        elapsed_s=time.perf_counter() - t0, environment=software_environment(),
    )
