"""PDF sections of the per-law scripts: variants, regularisation, inference gap.

Each renderer reads the ``to_dict()`` of a result (never samples): page 1 is
the overall verdict, what was tested and the start of the verdict table; the
table continues; then the figures, each explaining in its subtitle what it
shows and what the law predicts.

* :func:`render_law_suite` — a :class:`mcdrop.law_suite.LawSuiteResult`
  (``variants``, ``regularization``, ``inference_gap``);
* :func:`render_variant_verify` — the :class:`mcdrop.VerifyResult` of
  ``mcdrop.verify(variant=..., structure=...)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from .files import atomic_path
from .figures import trace_arrays
from .style import (
    COLORS,
    finish_page,
    grid_page,
    pdf_pages,
    section_rows,
    stream_line,
    verdict_pages,
    versions_line,
)

__all__ = ["render_law_suite", "render_variant_verify"]

_Z95 = 1.959963984540054
_BLUE, _RED, _GREY, _GREEN, _ORANGE = "tab:blue", COLORS["fail"], "#57606a", COLORS["pass"], "tab:orange"


def _front(pdf, result: dict, title: str, lines) -> None:
    rows = section_rows(result)
    verdict = result["verdict"]
    n_unexp = sum(r["verdict"] != r["expect"] for r in rows)
    note = ("every law held on the reference kernels and every deliberately wrong law was detected"
            if verdict == "pass" else f"{n_unexp} check(s) did not come out as expected (red rows)")
    verdict_pages(pdf, title=title, verdict=verdict, verdict_note=note, lines=lines, rows=rows)


def _common_lines(result: dict) -> list[tuple[str, str]]:
    env = result.get("environment", {})
    laws = [s for s in result["sections"] if not s["control"]]
    m = sum(len(s["checks"]) for s in laws)
    fam = result.get("family_note") or (
        f"family-wise alpha = {result['alpha']:g} over {m} law checks (Holm); intervals in the table at the "
        f"simultaneous level 1 - alpha/{m}.")
    return [
        ("False alarms", fam),
        ("Controls", f"{sum(1 for s in result['sections'] if s['control'])} sections of deliberately wrong laws; "
                     "each of their checks must FAIL (grey 'FAIL (expected)')."),
        ("Seed", str(result.get("seed"))),
        *([("Streams", stream_line(result))] if stream_line(result) else []),
        ("Versions", versions_line(env)),
        ("Machine", f"{env.get('machine', '?')}, {env.get('cpu_threads', '?')} threads"),
    ]


def _ci_arrays(cis):
    a = np.asarray(cis, dtype=float).reshape(-1, 2)
    return a[:, 0], a[:, 1]


def _errbar(ax, x, est, cis, **kw):
    lo, hi = _ci_arrays(cis)
    est = np.asarray(est, dtype=float)
    ax.errorbar(x, est, yerr=[est - lo, hi - est], fmt="o", ms=4, capsize=3, **kw)


def _measurement_page(pdf, result: dict, title: str, subtitle: str) -> None:
    meas = result.get("measurements") or []
    if not meas:
        return
    fig, axes = grid_page(title, subtitle, 1, 1)
    ax = axes[0, 0]
    ax.axis("off")
    head = f"{'measurement':<44} {'estimate':>11} {'95% interval':>26} {'reference':>11}"
    lines = [head, "-" * len(head)]
    for m in meas:
        ci = m.get("interval")
        cis = "" if not ci else f"[{ci[0]:.5g}, {ci[1]:.5g}]"
        ref = "" if m.get("reference") is None else f"{m['reference']:.5g}"
        lines.append(f"{m['name'][:44]:<44} {m['estimate']:>11.5g} {cis:>26} {ref:>11}")
        if m.get("note"):
            lines.append(f"    {m['note']}")
    ax.text(0.0, 1.0, "\n".join(lines), family="DejaVu Sans Mono", fontsize=7.2, va="top", ha="left",
            transform=ax.transAxes)
    finish_page(pdf, fig)


# ---------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------


def _variant_pages(pdf, result: dict) -> None:
    fig_data = result.get("figures") or {}
    combos = fig_data.get("combos") or []
    if combos:
        n = len(combos)
        fig, axes = grid_page(
            "Layer mean: running Monte Carlo mean against each variant's law",
            "Per-sample layer mean (mean of the outputs) averaged over the first n samples of the main input, "
            "with its pointwise 95% band; dashed: the law's expectation (standard dropout: q mean(x); "
            "AlphaDropout: a(q mean(x) + p a') + b; DropConnect: mean(W x)).",
            max(3, math.ceil(n / 2)), 2, hspace=0.6)
        for ax, c in zip(axes.ravel(), combos):
            ns, m, se = trace_arrays(c["trace"])
            ok = np.isfinite(se) & (ns > 1)
            ax.fill_between(ns[ok], (m - _Z95 * se)[ok], (m + _Z95 * se)[ok], color=_BLUE, alpha=0.25)
            ax.plot(ns, m, color=_BLUE, lw=1.2)
            ax.axhline(c["expected_mean"], color="black", ls="--", lw=0.9)
            ax.set_xscale("log")
            ax.set_title(c["tag"], fontsize=9)
            ax.set_xlabel("samples n", fontsize=8)
            ax.set_ylabel("running layer mean", fontsize=8)
            tail = m[ok][-1] if ok.any() else c["expected_mean"]
            span = max(abs(tail - c["expected_mean"]) * 4, float(np.nanmax(_Z95 * se[ok][-3:])) * 6 if ok.sum() > 3
                       else 1.0, 1e-12)
            ax.set_ylim(c["expected_mean"] - 40 * span, c["expected_mean"] + 40 * span)
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        finish_page(pdf, fig)

        fig, axes = grid_page(
            "Layer variance: the independent unit shows here",
            "Observed variance of the per-sample layer mean divided by the law's, over the p sweep (simultaneous "
            "interval).  1 = the law.  Red x: what a wrong law predicts on the same data — element-wise "
            "independence for channel/sample masks, input dropout's shared mask for DropConnect, variance p for "
            "Gaussian noise, the inverted law for standard dropout.  (b = 0 does not change AlphaDropout's "
            "variance: its control fails on the mean, second moment and support instead.)",
            max(3, math.ceil(n / 2)), 2, hspace=0.6)
        for ax, c in zip(axes.ravel(), combos):
            lv = c["layer_var"]
            if not lv["p"]:
                ax.axis("off")
                continue
            _errbar(ax, lv["p"], lv["ratio"], lv["ci"], color=_BLUE, label="observed / law")
            ax.axhline(1.0, color="black", lw=0.8, ls="--")
            if lv["wrong"]:
                ax.plot(lv.get("wrong_p", lv["p"])[: len(lv["wrong"])], lv["wrong"], "x", color=_RED, ms=7,
                        label="wrong law / law")
                ax.set_yscale("log")  # wrong laws sit decades away; ratios near 1 read better linear
            ax.set_title(c["tag"], fontsize=9)
            ax.set_xlabel("drop probability p", fontsize=8)
            ax.set_ylabel("Var[layer mean] / law", fontsize=8)
            ax.legend(fontsize=6.5, loc="best")
        for ax in axes.ravel()[n:]:
            ax.axis("off")
        finish_page(pdf, fig)

    g = fig_data.get("gaussian")
    a = fig_data.get("alpha")
    if g or a:
        fig, axes = grid_page(
            "Gaussian dropout's noise and AlphaDropout's self-normalisation",
            "Top: the standardised Gaussian noise (y/x - 1)/sqrt(p/q) against the N(0, 1) density (sweep input, "
            "p = 0.5), and the rate of sign flips (noise < -1) against Phi(-sqrt(q/p)).  Bottom: AlphaDropout on a "
            "standardised input keeps the pooled output mean at 0 and second moment at 1 for every p; with b = 0 "
            "(red) it would not.",
            2, 2, hspace=0.5)
        if g and g.get("hist"):
            h = g["hist"]
            edges = np.asarray(h["edges"], dtype=float)
            counts = np.asarray(h["counts"], dtype=float)
            width = np.diff(edges)
            ax = axes[0, 0]
            ax.bar(edges[:-1], counts / (h["n"] * width), width=width, align="edge", color=_BLUE, alpha=0.5,
                   label="observed")
            xs = np.linspace(edges[0], edges[-1], 300)
            ax.plot(xs, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), color="black", lw=1.1, label="N(0, 1)")
            ax.set_yscale("log")
            ax.set_ylim(1e-7, 1)
            ax.set_title(f"noise, n = {h['n']:,} (KS D = {h['ks']:.2g}, p = {h['pvalue']:.2g})", fontsize=9)
            ax.set_xlabel("standardised noise z")
            ax.legend(fontsize=7)
        else:
            axes[0, 0].axis("off")
        if g and g["p"]:
            ax = axes[0, 1]
            _errbar(ax, g["p"], g["flip"], g["flip_ci"], color=_BLUE, label="observed")
            pp = np.linspace(0.02, 0.95, 100)
            ax.plot(pp, norm.cdf(-np.sqrt((1 - pp) / pp)), color="black", lw=1, label="Phi(-sqrt(q/p))")
            ax.set_xlabel("drop probability p")
            ax.set_ylabel("P(output sign flipped)")
            ax.set_title("sign flips of y = x (1 + sigma z)", fontsize=9)
            ax.legend(fontsize=7)
        else:
            axes[0, 1].axis("off")
        if a and a["p"]:
            for ax, key, law, label, ylabel, title in (
                (axes[1, 0], "mean", 0, "observed (b = -a a' p)", "pooled output mean",
                 "AlphaDropout: mean stays 0"),
                (axes[1, 1], "m2", 1, "observed", "pooled E[y^2]",
                 "AlphaDropout: second moment stays 1"),
            ):
                _errbar(ax, a["p"], a[key], a[f"{key}_ci"], color=_BLUE, label=label)
                ax.plot(a["p"], a[f"b0_{key}"], "x--", color=_RED, label="law with b = 0")
                ax.axhline(law, color="black", lw=0.8)
                ax.set_xlabel("drop probability p")
                ax.set_ylabel(ylabel)
                ax.set_title(title, fontsize=9)
                ax.legend(fontsize=7)
        else:
            axes[1, 0].axis("off")
            axes[1, 1].axis("off")
        finish_page(pdf, fig)


# ---------------------------------------------------------------------------
# regularisation
# ---------------------------------------------------------------------------


def _regularization_pages(pdf, result: dict) -> None:
    f = result.get("figures") or {}
    curves = f.get("penalty_vs_p") or []
    if curves:
        fig, axes = grid_page(
            "Dropout penalty vs p: Monte Carlo against Wager et al.",
            "Points: Monte Carlo estimate of E||y - (X*M/q) w||^2 - ||y - Xw||^2 with 95% intervals (log scale). "
            "Black: Wager et al.'s identity (p/q) sum_j w_j^2 sum_i x_ij^2.  Red dashed: the same penalty without the 1/q, which the data "
            "reject.  Left: one mask per example; right: one mask shared by the batch (same mean, different "
            "variance: wider intervals on diabetes).",
            2, 2, hspace=0.45)
        order = {("random", False): (0, 0), ("random", True): (0, 1), ("diabetes", False): (1, 0),
                 ("diabetes", True): (1, 1)}
        for c in curves:
            ax = axes[order[(c["dataset"], c["shared"])]]
            _errbar(ax, c["p"], c["estimate"], c["ci95"], color=_BLUE, label="Monte Carlo")
            pp = np.linspace(0.05, 0.75, 100)
            s = np.asarray(c["theory"]) / (np.asarray(c["p"]) / (1 - np.asarray(c["p"])))
            S = float(np.mean(s))
            ax.plot(pp, pp / (1 - pp) * S, color="black", lw=1, label="(p/q) sum w^2 e")
            ax.plot(pp, pp * S, color=_RED, ls="--", lw=1, label="p sum w^2 e (no 1/q)")
            ax.set_yscale("log")
            ax.set_xlabel("drop probability p")
            ax.set_ylabel("penalty")
            ax.set_title(f"{c['dataset']}, {'shared mask' if c['shared'] else 'per-example masks'}", fontsize=9)
            ax.legend(fontsize=7)
        finish_page(pdf, fig)
    ft = f.get("features")
    if ft:
        fig, axes = grid_page(
            "An L2 penalty weighted by each feature's energy (diabetes, p = 0.5)",
            "Each feature dropped alone: Monte Carlo penalty (95% interval) against (p/q) w_j^2 sum_i x_ij^2 "
            "(black bars).  Red: one ridge lambda for every feature with the same total — it misses by orders "
            "of magnitude because the raw features' energies (bottom) span four decades.",
            2, 1, hspace=0.35, height_ratios=[2, 1])
        names = ft["names"]
        x = np.arange(len(names))
        ax = axes[0, 0]
        ax.bar(x - 0.2, ft["theory"], width=0.4, color="#d0d7de", edgecolor="black", label="(p/q) w_j^2 e_j")
        ax.bar(x + 0.2, ft["ridge"], width=0.4, color=_RED, alpha=0.45, label="plain ridge lambda w_j^2")
        _errbar(ax, x - 0.2, ft["estimate"], ft["ci95"], color=_BLUE, label="Monte Carlo")
        ax.set_yscale("log")
        ax.set_xticks(x, names)
        ax.set_ylabel("penalty of feature j")
        ax.legend(fontsize=7)
        ax = axes[1, 0]
        ax.bar(x, ft["energy"], color=_GREY)
        ax.set_yscale("log")
        ax.set_xticks(x, names)
        ax.set_ylabel("energy sum_i x_ij^2")
        finish_page(pdf, fig)
    var = f.get("variance") or []
    lg = f.get("logistic") or []
    if var or lg:
        fig, axes = grid_page(
            "Shared masks and logistic regression",
            "Top: a mask shared by the batch changes only the variance of the loss — at p = 0.5 (Monte Carlo with 95% interval vs the exact formula), one mask "
            "per example vs one shared by the batch.  Bottom: logistic penalty — Monte Carlo (95% interval), "
            "exact enumeration over the 2^d masks, and Wager et al.'s quadratic approximation "
            "1/2 (p/q) sum_j w_j^2 sum_i s_i(1 - s_i) x_ij^2.",
            2, 2, hspace=0.5)
        for j, dname in enumerate(("random", "diabetes")):
            ax = axes[0, j]
            items = [v for v in var if v["dataset"] == dname]
            if not items:
                ax.axis("off")
                continue
            xs = np.arange(len(items))
            ax.bar(xs, [v["theory"] for v in items], color="#d0d7de", edgecolor="black", label="exact Var[L]")
            _errbar(ax, xs, [v["estimate"] for v in items], [v["ci95"] for v in items], color=_BLUE,
                    label="Monte Carlo")
            ax.set_xticks(xs, ["shared" if v["shared"] else "per-example" for v in items])
            ax.set_yscale("log")
            ax.set_title(f"{dname}: Var of the loss", fontsize=9)
            ax.legend(fontsize=7)
        for j, dname in enumerate(("random", "diabetes")):
            ax = axes[1, j]
            c = next((c for c in lg if c["dataset"] == dname), None)
            if c is None:
                ax.axis("off")
                continue
            _errbar(ax, c["p"], c["estimate"], c["ci95"], color=_BLUE, label="Monte Carlo")
            ax.plot(c["p"], c["exact"], "s-", color="black", ms=3, lw=1, label="exact (enumeration)")
            ax.plot(c["p"], c["quadratic"], "^--", color=_ORANGE, ms=4, lw=1, label="quadratic approx.")
            ax.set_yscale("log")
            ax.set_xlabel("drop probability p")
            ax.set_ylabel("logistic penalty")
            ax.set_title(f"logistic, {dname}", fontsize=9)
            ax.legend(fontsize=7)
        finish_page(pdf, fig)


# ---------------------------------------------------------------------------
# inference gap
# ---------------------------------------------------------------------------


def _inference_pages(pdf, result: dict) -> None:
    f = result.get("figures") or {}
    if not f.get("p"):
        return
    p = np.asarray(f["p"], dtype=float)
    fig, axes = grid_page(
        "No scaling at inference: exact vs approximate",
        "\"No scaling at inference gives a consistent output\" is exact for the layer mean and approximate for the "
        "network output.  Top: gap E[out] - eval output of a 16-32-1 MLP (dropout on input and hidden layer) "
        "with 95% bands as p grows; identity activation (linear network): 0, exactly; ReLU, tanh, sigmoid: a "
        "Jensen gap, up to ~30% of the output here (the ReLU network's gap is negative although every unit's "
        "is >= 0: w2 has mixed signs).  Right: relative to |eval output|.  Bottom: per-unit ReLU "
        "gaps between 0 and L sd(z); the linear layer's worst z-score against W x + b.",
        2, 2, hspace=0.45, height_ratios=[3, 2])
    colors = {"identity": "black", "relu": _BLUE, "tanh": _ORANGE, "sigmoid": _GREEN}
    ax = axes[0, 0]
    for act in f["activations"]:
        gap = np.asarray(f["gap"][act], dtype=float)
        lo, hi = _ci_arrays(f["ci95"][act])
        ax.fill_between(p, lo, hi, color=colors[act], alpha=0.2)
        ax.plot(p, gap, "o-", color=colors[act], ms=3, lw=1.2, label=act)
    ax.axhline(0, color="black", lw=0.7)
    ax.set_xlabel("drop probability p")
    ax.set_ylabel("E[out] - eval output")
    ax.set_title("output gap (95% bands)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for act in f["activations"]:
        ev = abs(f["eval"][act]) or 1.0
        gap = np.asarray(f["gap"][act], dtype=float) / ev
        lo, hi = _ci_arrays(f["ci95"][act])
        ax.fill_between(p, lo / ev, hi / ev, color=colors[act], alpha=0.2)
        ax.plot(p, gap, "o-", color=colors[act], ms=3, lw=1.2, label=act)
    ax.axhline(0, color="black", lw=0.7)
    ax.set_xlabel("drop probability p")
    ax.set_ylabel("gap / |eval output|")
    ax.set_title("relative gap", fontsize=9)
    ax.set_ylim(-1.0, 1.0)
    ax.legend(fontsize=7)
    u = f.get("units")
    ax = axes[1, 0]
    if u:
        sd = np.asarray(u["sd"], dtype=float)
        g = np.asarray(u["gap"], dtype=float)
        lo, hi = _ci_arrays(u["ci95"])
        ax.errorbar(sd, g, yerr=[g - lo, hi - g], fmt="o", ms=3, color=_BLUE, capsize=2,
                    label="E relu(z) - relu(E z)")
        xs = np.linspace(0, sd.max() * 1.05, 10)
        ax.plot(xs, xs, "--", color=_RED, lw=1, label="bound L sd(z)")
        ax.plot(xs, 0 * xs, color="black", lw=0.7)
        ax.set_xlabel("sd(z) (exact)")
        ax.set_ylabel("unit gap")
        ax.set_title(f"ReLU units at p = {u['p']:g}: 0 <= gap <= sd(z)", fontsize=9)
        ax.legend(fontsize=7)
    else:
        ax.axis("off")
    ax = axes[1, 1]
    ax.plot(p, f["linear_dev"], "o-", color="black", ms=3)
    H = len(u["sd"]) if u else 32
    ax.axhline(float(norm.isf(0.025 / H)), color=_RED, ls="--", lw=1,
               label=f"95% limit over the {H} units (per p)")
    ax.set_xlabel("drop probability p")
    ax.set_ylabel("max_k |z-score|")
    ax.set_title("linear layer: MC mean vs W x + b (exact law)", fontsize=9)
    ax.legend(fontsize=7)
    finish_page(pdf, fig)


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------

_WHAT = {
    "variants": ("The variants' laws on mcdrop's reference kernels: standard dropout (test-time scaling by q), "
                 "Gaussian dropout (noise N(1, p/q)), AlphaDropout (SELU constants), DropConnect (mask per "
                 "weight), channel dropout (mask per (n, c)) and DropPath (mask per sample): mean, variance, "
                 "support and the independent unit, each over a p sweep, with wrong laws as negative controls."),
    "regularization": ("Dropout as regularisation (Wager, Wang & Liang 2013): E||y - (X*M/q) w||^2 = "
                       "||y - Xw||^2 + (p/q) sum_j w_j^2 sum_i x_ij^2 by Monte Carlo on random and "
                       "scikit-learn diabetes data, with per-example and shared masks; the exact variance of "
                       "the loss; per-feature penalties; logistic regression against exact enumeration."),
    "inference_gap": ("Weight scaling vs Monte Carlo averaging: the MC mean of a linear layer equals its "
                      "eval output exactly; after a nonlinearity it does not (Jensen gap), with E relu(z) >= "
                      "relu(E z) and |gap| <= L sd(z) checked and the network's gap measured as p grows."),
}


def render_law_suite(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF section of a law-suite result.

    Parameters
    ----------
    result : dict
        ``LawSuiteResult.to_dict()`` of ``variants``, ``regularization`` or
        ``inference_gap`` (or the same JSON loaded from disk).
    path : str or path-like
        The PDF to write (atomically: never left partial).
    timestamp : bool, default False
        Record the rendering date in the metadata.

    Raises
    ------
    ValueError
        If ``result`` is not a LawSuiteResult of one of those names.
    """
    name = result.get("name")
    if result.get("type") != "mcdrop.LawSuiteResult" or name not in _WHAT:
        raise ValueError(f"`result` must be a mcdrop.LawSuiteResult named one of {sorted(_WHAT)}; "
                         f"got type={result.get('type')!r}, name={name!r}.")
    lines = [("What was tested", _WHAT[name])] + [("Note", n) for n in result.get("notes", [])[:3]]
    lines += _common_lines(result)
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title=result["title"], timestamp=timestamp) as pdf:
            _front(pdf, result, result["title"], lines)
            if name == "variants":
                _variant_pages(pdf, result)
            elif name == "regularization":
                _regularization_pages(pdf, result)
                _measurement_page(pdf, result, "Measurements (reported, not judged)",
                                  "Logistic: relative gap of the quadratic approximation against the Monte Carlo "
                                  "penalty (95% interval) and against exact enumeration (reference).  Loss sd: "
                                  "shared vs per-example masks against the exact ratio.")
            else:
                _inference_pages(pdf, result)
                _measurement_page(pdf, result, "Measurements: the size of the inference gap",
                                  "E[out] - eval output of the MLP for each activation and p, with 95% intervals; "
                                  "reference: the Lipschitz bound sum_k |w2_k| L sd(z_k).")


def render_variant_verify(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the report of ``mcdrop.verify(variant=..., structure=...)``.

    Parameters
    ----------
    result : dict
        ``VerifyResult.to_dict()`` of a variant or structure other than
        inverted element-wise dropout (or the same JSON loaded from disk).
    path : str or path-like
        The PDF to write (atomically: never left partial).
    timestamp : bool, default False
        Record the rendering date in the metadata.
    """
    variant, structure = result.get("variant", "inverted"), result.get("structure", "element")
    title = f"mcdrop verify: {variant} dropout, {structure} masks"
    laws = [s for s in result["sections"] if not s["control"]]
    lines = [("What was tested", f"the laws of {variant} dropout with {structure} structure: "
                                 + "; ".join(s["title"] for s in laws[:3]) + ("; ..." if len(laws) > 3 else ""))]
    power = "; ".join(f"{s['title']}: relative mean bias {s['detectable_bias']:.2g}"
                      for s in laws if s.get("detectable_bias"))[:400]
    if power:
        lines += [("Power", power + f" (detectable with power {result.get('power', 0.99)})")]
    lines += _common_lines(result)
    combos = []
    main = result["simulations"].get("main")
    if main is not None:
        tr = main["trace"]
        combos.append({"tag": f"{variant}/{structure}", "trace": tr,
                       "expected_mean": main["layer_mean"]["expected"], "layer_var": {"p": [], "ratio": [],
                                                                                     "ci": [], "wrong": []}})
    for s in laws:
        c = next((c for c in s["checks"] if c["name"] == "layer_variance"), None)
        if c and s["name"].startswith("sweep_p") and c.get("expected"):
            lv = combos[0]["layer_var"] if combos else None
            if lv is not None:
                lv["p"].append(s["p"])
                lv["ratio"].append(c["estimate"] / c["expected"])
                ci = c["confidence_interval"]
                lv["ci"].append([ci["low"] / c["expected"], ci["high"] / c["expected"]])
    if combos:
        lv = combos[0]["layer_var"]
        lv["wrong_p"] = []
        for s in result["sections"]:
            c = next((c for c in s["checks"] if c["name"] == "layer_variance"), None)
            law_row = next((r for r in laws if r["simulation"] == s.get("simulation")), None) if s["control"] else None
            if c is None or law_row is None:
                continue
            lc = next((c2 for c2 in law_row["checks"] if c2["name"] == "layer_variance"), None)
            if lc and lc.get("expected"):
                lv["wrong_p"].append(s["p"])
                lv["wrong"].append(c["expected"] / lc["expected"])
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title=title, timestamp=timestamp) as pdf:
            _front(pdf, result, title, lines)
            if combos:
                _variant_pages(pdf, {"figures": {"combos": combos}})
