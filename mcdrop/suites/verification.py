"""``mcdrop.verify``: the main job — check a dropout law on the reference kernels.

One flow for every law of :mod:`mcdrop.laws`.  With no arguments it

(a) reproduces the seed example: x = [2, 4, 6, 8] with keep probability 0.5;
    per-sample layer means such as y = [4, 0, 12, 0] -> 4 average to 5 =
    mean(x), shown with its confidence band out to 10**8 samples;
(b) sweeps p in {0, 0.1, 0.3, 0.5, 0.7, 0.9} on a larger, mixed-sign input;
(c) runs negative controls — the same law with a wrong parameter, e.g. the
    classic mistakes "no rescaling" and "dividing by p instead of q"
    (:func:`mcdrop.checks.controls`) — which must be detected.

It passes only when every check is as expected: each law holds on the
reference (family-wise false-alarm rate <= ``alpha``, Holm) and each control
fails.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._validation import (
    check_alpha,
    check_positive_int,
    check_seed,
    check_shape,
    check_x,
    resolve_pq,
)
from ..checks import control_checks, decide_families, law_checks
from ..checks import controls as negative_controls
from ..checks.views import linear_var_law
from ..core.progress import make_bar
from ..core.stream import check_threads
from ..core.rng import child_seed
from ..laws import variant_law
from ..results import software_environment
from ..sampling import Simulation, simulate
from ..stats.normal import z_sum
from ..stats.power import POWER
from .results import VerifyResult, VerifyRow, VerifySection

__all__ = ["verify", "sweep_input", "standardise", "default_inputs", "section_tag", "SWEEP_P",
           "SEED_X", "CONTROL_P"]

SEED_X = (2.0, 4.0, 6.0, 8.0)
SEED_KEEP = 0.5
SWEEP_P = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
#: The sweep point whose simulation the negative controls reuse.
CONTROL_P = 0.3
DEFAULT_SWEEP_SHAPE = (32, 256)
#: Default budgets: inverted element-wise dropout, the main job (10**8 masks
#: of the seed example, 10**6 per sweep point) ...
DEFAULT_SAMPLES = 10**8
DEFAULT_SWEEP_SAMPLES = 10**6
#: ... and every other law (DropConnect's main section: half).
DEFAULT_VARIANT_SAMPLES = 2 * 10**6
DEFAULT_VARIANT_SWEEP_SAMPLES = {True: 5 * 10**5, False: 5 * 10**4}  # structured?

#: Short section-title tags (the verdict table's section column is narrow).
_VTAG = {"inverted": "inv", "standard": "std", "gaussian": "gauss", "alpha": "alpha", "dropconnect": "dropconn"}
_STAG = {"element": "", "channel": "/chan", "sample": "/path"}


def section_tag(variant: str, structure: str) -> str:
    """Short tag of a law for section titles, e.g. ``gauss/chan``, ``inv/path`` (``""`` for inverted element-wise)."""
    if (variant, structure) == ("inverted", "element"):
        return ""
    return _VTAG[variant] + _STAG[structure]


def sweep_input(shape=DEFAULT_SWEEP_SHAPE, seed=None) -> np.ndarray:
    """The sweep's input: nonzero, mixed sign, magnitudes over three decades.

    Values are float32-representable, so a float32 implementation sees the
    same numbers.
    """
    g = np.random.default_rng(check_seed(seed))
    mag = np.exp(g.uniform(np.log(1e-1), np.log(1e2), size=shape))
    sign = np.where(g.random(shape) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float32).astype(np.float64)


def standardise(x) -> np.ndarray:
    """``(x − mean) / sd`` over all elements (population sd): mean 0, variance 1."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std()


def default_inputs(variant: str, structure: str, *, sweep: bool, shape=None, seed=None):
    """``(x, weight, description)``: the default input of a law's main or sweep section.

    Element structure: the seed example ``[2, 4, 6, 8]`` (main) or the
    (32, 256) mixed-sign sweep input; channel/sample: non-negative
    (post-ReLU-like) inputs, where the structure changes the layer variance
    the most; AlphaDropout: standardised to mean 0 and variance 1 (its
    self-normalising regime); DropConnect: ``W ~ N(0.2, 1)/sqrt(in)`` with a
    non-negative input.
    """
    g = np.random.default_rng(check_seed(seed))
    if variant == "dropconnect":
        o, i = shape if shape is not None else ((32, 256) if sweep else (8, 16))
        w = g.normal(0.2, 1.0, size=(o, i)) / math.sqrt(i)
        x = np.abs(g.normal(size=i)) + 0.05
        return x, w, f"W ~ N(0.2, 1)/sqrt({i}) of shape ({o}, {i}), x = |N(0,1)| + 0.05"
    if structure == "element":
        if sweep:
            shp = shape if shape is not None else DEFAULT_SWEEP_SHAPE
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


def _verify_iv(x, p, keep, variant, structure, weight, samples, alpha, seed, threads, sweep_samples,
               sweep_shape):
    ss = check_seed(seed)
    alpha = check_alpha(alpha)
    threads = check_threads(threads)
    p0 = 1.0 - SEED_KEEP if p is None and keep is None else resolve_pq(p, keep)[0]
    # the names, their combination, and p = 1 where the law is undefined -> ValueError
    variant_law(variant, p0, structure=structure)
    plain = (variant, structure) == ("inverted", "element")
    if samples is None:
        n0 = DEFAULT_SAMPLES if plain else (
            DEFAULT_VARIANT_SAMPLES // 2 if variant == "dropconnect" else DEFAULT_VARIANT_SAMPLES)
    else:
        n0 = check_positive_int(samples, "samples")
    if sweep_samples is not None:
        ns = check_positive_int(sweep_samples, "sweep_samples")
    else:
        ns = DEFAULT_SWEEP_SAMPLES if plain else DEFAULT_VARIANT_SWEEP_SAMPLES[structure != "element"]
    if sweep_shape is not None:
        sweep_shape = check_shape(sweep_shape, "sweep_shape")
    if variant == "dropconnect":
        if (x is None) != (weight is None):
            raise ValueError("variant 'dropconnect': give both `x` (input vector) and `weight` "
                             "(out, in), or neither for the default layer.")
    elif weight is not None:
        raise ValueError(f"`weight` is only used by variant 'dropconnect'; got variant {variant!r}.")
    if x is None:
        x0, w0, desc0 = default_inputs(variant, structure, sweep=False, seed=child_seed(ss, 1))
    else:
        x0, w0 = check_x(x), weight
        desc0 = (f"x = {np.array2string(x0.ravel()[:8], precision=4, separator=', ')}"
                 f"{'...' if x0.size > 8 else ''}")
    return ss, alpha, threads, p0, n0, ns, sweep_shape, x0, w0, desc0


def verify(
    x=None,
    p=None,
    *,
    keep=None,
    samples: int | None = None,
    alpha: float = 1e-6,
    seed=0,
    threads: int | None = None,
    sweep: bool = True,
    controls: bool = True,
    sweep_samples: int | None = None,
    sweep_shape=None,
    progress: bool = False,
    variant: str = "inverted",
    structure: str = "element",
    weight=None,
    client=None,
) -> VerifyResult:
    """Verify a dropout law (inverted dropout by default) on the reference kernels.

    Parameters
    ----------
    x : array_like, optional
        Input of the first section (default: the seed example [2, 4, 6, 8],
        or the law's default input, :func:`default_inputs`).
    p, keep : float, optional
        Drop probability ``p`` or keep probability ``keep`` (not both) of the
        first section (default keep 0.5).
    samples : int, optional
        Masks drawn in the first section (default 10**8 for inverted
        element-wise dropout, 2·10**6 for the other laws).
    alpha : float, default 1e-6
        Family-wise false-alarm bound of all law checks (Holm).
    seed : int, SeedSequence or None, default 0
        Every section's stream derives from it; same seed, same result.
    threads : int, optional
        Numba threads (results do not depend on it).
    sweep : bool, default True
        Also sweep p over ``SWEEP_P`` on the law's sweep input (inverted:
        a (32, 256) mixed-sign input), skipping p where the law is undefined.
    controls : bool, default True
        Also run the negative controls: the law with a wrong parameter
        (:func:`mcdrop.checks.controls`), each of which must fail.
    sweep_samples : int, optional
        Masks per sweep point (default 10**6 inverted; 5·10**4 element-wise
        or 5·10**5 structured for the other laws).
    sweep_shape : tuple, optional
        Shape of the sweep input.
    progress : bool, default False
        Show a progress bar (stderr, TTY only).
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}, default "inverted"
        The law whose claims are checked (:mod:`mcdrop.laws`).
    structure : {"element", "channel", "sample"}, default "element"
        The independent unit of the mask: per element, per ``(n, c)`` channel
        (``x`` of shape ``(N, C, *spatial)``) or per sample (DropPath, ``x``
        of shape ``(N, *rest)``).
    weight : array_like, optional
        DropConnect only: the ``(out, in)`` weight matrix (give ``x`` too).
    client : distributed.Client, optional
        Run every simulation on a Dask cluster (:func:`mcdrop.simulate`'s
        ``client``): the same result, bit for bit, as the local run.

    Returns
    -------
    VerifyResult
        ``passed`` is True when every law check passed and every negative
        control was detected.

    Examples
    --------
    >>> import mcdrop
    >>> res = mcdrop.verify(samples=10**6, sweep=False)
    >>> res.passed
    True
    """
    ss, alpha, threads, p0, n0, ns, sweep_shape, x0, w0, desc0 = _verify_iv(
        x, p, keep, variant, structure, weight, samples, alpha, seed, threads, sweep_samples, sweep_shape
    )
    do_controls = controls
    t0 = time.perf_counter()
    sweep_ps = [pp for pp in SWEEP_P if not (pp == 1.0 and variant in ("gaussian", "alpha", "dropconnect"))]
    xs = ws = None
    descs = ""
    if sweep or do_controls:
        xs, ws, descs = default_inputs(variant, structure, sweep=True, shape=sweep_shape, seed=child_seed(ss, 1))
    runs = [("main", x0, w0, p0, n0, 0)]
    if sweep:
        runs += [(f"sweep_p{pp:g}", xs, ws, pp, ns, 2 + i) for i, pp in enumerate(sweep_ps)]
    elif do_controls:
        runs.append((f"sweep_p{CONTROL_P:g}", xs, ws, CONTROL_P, ns, 2 + SWEEP_P.index(CONTROL_P)))
    total = sum(n * (w.size if w is not None else xx.size) for _, xx, w, _, n, _ in runs)
    sims: dict[str, Simulation] = {}
    bar = make_bar(total=total, desc="verify", unit="draw", enabled=None if progress else False)
    try:
        for name, xx, ww, pp, n, child in runs:
            size = ww.size if ww is not None else xx.size
            sims[name] = simulate(xx, pp, variant=variant, structure=structure, weight=ww, samples=n,
                                  seed=child_seed(ss, child), threads=threads, client=client,
                                  progress=lambda k, size=size: bar.update(k * size))
    finally:
        bar.close()

    tag = section_tag(variant, structure)
    main = sims["main"]
    name0 = ("seed example" if x is None and structure == "element" and variant != "dropconnect"
             else ("main input" if x is None else "your input"))
    main_title = f"{tag}: {name0}" if tag else name0
    # (section key, title, description, simulation key, control or None)
    specs = [("main", main_title, f"{desc0}, p = {main.p:g} (keep {main.q:g}), {main.samples:,} samples",
              "main", None)]
    if sweep:
        for pp in sweep_ps:
            key = f"sweep_p{pp:g}"
            specs.append((key, f"{tag}: p={pp:g}" if tag else f"sweep p={pp:g}",
                          f"{descs}, p = {pp:g}, {ns:,} samples", key, None))
    if do_controls:
        if 0 < main.q < 1 and main.p > 0:
            for c in negative_controls(main):
                if c.key in _MAIN_CONTROLS:
                    specs.append((f"control_{c.key}_main", f"{tag} main ctl {c.title}" if tag else
                                  f"{main_title}: {c.title}", f"{c.description} (main input)", "main", c))
        ckey = f"sweep_p{CONTROL_P:g}"
        for c in negative_controls(sims[ckey]):
            specs.append((f"control_{c.key}", f"{tag} ctl {c.title}" if tag else
                          f"control p={CONTROL_P:g}: {c.title}",
                          f"{c.description} (sweep input, p = {CONTROL_P:g})", ckey, c))

    pending = []
    for name, _, _, skey, c in specs:
        sim = sims[skey]
        pending.append((name, c is not None, law_checks(sim) if c is None else control_checks(sim, c)))
    by_name, m_laws = decide_families(pending, alpha)
    zs = z_sum(alpha / max(m_laws, 1), POWER)
    sections = []
    for name, title, desc, skey, c in specs:
        sim = sims[skey]
        law = sim.sampled_law if c is None else c.law
        scale, label = _scale_label(law, c)
        db = None
        if c is None:
            se = _theory_se_relative(sim)
            db = 0.0 if sim.p == 0 else (None if se is None else zs * se)
        shape = tuple(sim.weight.shape) if sim.variant == "dropconnect" else tuple(sim.x.shape)
        sections.append(VerifySection(
            name=name, title=title, description=desc, p=sim.p, q=sim.q, scale=scale,
            scale_label=label, samples=sim.samples, shape=shape, simulation=skey, control=c is not None,
            detectable_bias=db,
            rows=tuple(VerifyRow(title, r, "fail" if c is not None else "pass") for r in by_name[name]),
        ))
    return VerifyResult(
        passed=all(s.as_expected for s in sections), alpha=alpha,
        seed=seed if not isinstance(seed, np.random.SeedSequence) else ss.entropy,
        sections=tuple(sections), simulations=sims, elapsed_s=time.perf_counter() - t0,
        environment=software_environment(), variant=variant, structure=structure,
    )


#: Controls also run on the main section (the variant's own parameter; the
#: structural and DropConnect controls need the sweep's larger input).
_MAIN_CONTROLS = {"no_rescale", "inverted_law", "variance_p", "b_zero"}


def _theory_se_relative(sim: Simulation) -> float | None:
    """Standard error of ``mean_relative`` under the law (what its detectable bias scales)."""
    law = sim.sampled_law
    mu = law.mean(sim.x, sim.weight).ravel()
    denom = float(np.sum(np.abs(mu)))
    if denom == 0.0 or law.p == 0.0 or law.q == 0.0:
        return None
    return math.sqrt(linear_var_law(sim, law, np.sign(mu)) / sim.samples) / denom


def _scale_label(law, control) -> tuple[float, str]:
    if law.variant == "gaussian":
        return 1.0, "ε ~ N(1, p/q)"
    if law.variant == "alpha":
        return law.a, "a x + b"
    if law.variant == "standard":
        return 1.0, "1 (eval: q)"
    if control is not None and control.side == "implementation":
        return law.scale, {"no_rescale": "1", "divide_by_p": "1/p"}.get(control.key, f"{law.scale:.4g}")
    return law.scale, "1/q"
