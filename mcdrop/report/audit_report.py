"""The PDF report of ``mcdrop audit``: verdicts first, then the plots.

Pages, in order:

1. summary (implementation, claim, input, budget, versions, overall
   verdict, α, detectable bias and rate error) and the verdict table;
2. what a PASS rules out: each check's smallest detectable effect;
   then failed and inconclusive checks with what their pattern usually means;
3. convergence of the relative mean against the mask draws;
4. keep-count histogram against the binomial pmf, with residuals;
5. per-element relative bias (heat map for 2-D shapes) and its z-scores;
6. QQ plot of the per-element p-values against uniform;
7. independence: mask autocorrelation against memory offset, and the
   correlation of successive calls' masks, each with its bound.

Any of the audit's plot records (``per_element``, ``keep_count_hist``,
``autocorrelation``, ``call_correlation``, ``convergence``) may be ``null``
when its check could not run; the page then says so, and why if a check
recorded the reason.  Nothing is sampled here.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from .effects import effects_page
from .files import atomic_path
from .explain import explain
from .figures import (
    as_floats as _floats,
    plot_convergence,
    plot_correlation,
    plot_error_decay,
    plot_hist_residuals,
    plot_keep_count_hist,
    plot_pvalue_qq,
    plot_relative_bias,
    simultaneous_z,
)
from .style import (
    COLORS,
    date_line,
    finish_page,
    findings_pages,
    grid_page,
    missing_panel,
    pdf_pages,
    table_row,
    text_lines,
    verdict_pages,
    versions_line,
)

__all__ = ["render_audit"]

#: Which checks to look at for the reason a plot record is missing.
_RECORD_CHECKS = {
    "convergence": ("mean",),
    "keep_count_hist": ("keep_count", "keep_rate", "dispersion"),
    "per_element": ("mean_per_element", "mean", "keep_rate"),
    "autocorrelation": ("element_independence",),
    "call_correlation": ("call_independence",),
}
_RECORD_KEYS = {
    "convergence": ("draws", "relative_mean", "se"),
    "keep_count_hist": ("counts", "n", "q"),
    "per_element": ("relative_bias", "relative_bias_se"),
    "autocorrelation": ("offsets", "values", "bound"),
    "call_correlation": ("offsets", "values", "bound"),
}

_LEGEND = ("Red, bold: a failed check.  Amber: inconclusive (with a tolerance band: the interval "
           "straddles the band's edge).  Intervals hold simultaneously for the whole family at level "
           "1 - alpha (Bonferroni); p-values are per check, judged with Holm at family-wise alpha.")


def _first_check(d: dict, prefix: str, *, with_alpha: bool = False) -> dict | None:
    """The first check whose name starts with ``prefix`` (and that records its ``alpha``)."""
    return next((c for c in d["checks"] if str(c["name"]).startswith(prefix)
                 and (c.get("alpha") or not with_alpha)), None)


def _record(d: dict, key: str):
    """(record, reason it is missing or None)."""
    rec = d.get(key)
    if rec is None:
        why = None
        for prefix in _RECORD_CHECKS[key]:
            c = _first_check(d, prefix)
            if c is not None and c.get("detail"):
                why = f"the check '{c['name']}' says: {c['detail']}"
                break
        return None, ("the audit recorded no data for this plot (its check could not run)"
                      + (f"; {why}" if why else "."))
    if not isinstance(rec, dict):
        return None, f"the audit's '{key}' record is not an object ({type(rec).__name__})."
    missing = [k for k in _RECORD_KEYS[key] if k not in rec]
    if missing:
        return None, f"the audit's '{key}' record is incomplete (lacks {missing})."
    return rec, None


def _alpha_for(d: dict, prefix: str) -> float:
    c = _first_check(d, prefix, with_alpha=True)
    if c is not None:
        return float(c["alpha"])
    return float(d["alpha"]) / max(len(d["checks"]), 1)


def _rows(d: dict) -> list[dict]:
    return [table_row(c, expect="pass") for c in d["checks"]]


def _fmt(v, spec: str = ",") -> str:
    if v is None:
        return "?"
    try:
        return format(int(v), spec) if float(v) == int(v) else format(float(v), ".4g")
    except (TypeError, ValueError):
        return str(v)


def _summary_lines(d: dict, timestamp: bool) -> list[tuple[str, str]]:
    env = d.get("environment", {}) or {}
    p = float(d["p"])
    q = float(d.get("q", 1 - p))
    tol = d.get("tolerance")
    m = len(d["checks"])
    power = d.get("power", 0.99)
    det = []
    if d.get("detectable_bias") is not None:
        det.append(f"relative mean bias {float(d['detectable_bias']):.2g}")
    if d.get("detectable_rate_error") is not None:
        det.append(f"relative keep-rate error {float(d['detectable_rate_error']):.2g}")
    date = date_line(d, timestamp)
    shape = d.get("shape")
    return [
        ("Implementation", str(d.get("target", "not recorded"))),
        ("Claim", f"p = {p:g} (drop probability; keep q = {q:g}), variant '{d.get('variant', 'inverted')}', "
         f"mask structure '{d.get('structure', 'element')}'"),
        ("Input", f"shape {tuple(shape) if shape is not None else '?'}, dtype {d.get('dtype', '?')}; "
         f"{_fmt(d.get('calls'))} training-mode calls = {_fmt(d.get('draws'))} mask draws"),
        ("Seed", f"{d.get('seed')} (seeds the inputs fed; the implementation owns its randomness)"),
        ("False alarms", f"alpha = {float(d['alpha']):g} family-wise over {m} checks (Holm); a correct "
         "implementation fails this audit with probability at most alpha."),
        ("Detectable", (", ".join(det) + f", with power {power}") if det else "not recorded"),
        ("Tolerance", "none: point hypotheses (pass / fail)" if not tol else
         f"±{float(tol):g} relative harmless band: pass inside, fail outside, inconclusive across"),
        ("Versions", versions_line(env, others="; framework: ")),
        ("Machine", str(env.get("machine", "not recorded"))),
        ("Date", date),
    ]


def _findings(d: dict) -> list[dict]:
    p = float(d["p"])
    q = float(d.get("q", 1 - p))
    ctx = dict(shape=d.get("shape"), autocorrelation=d.get("autocorrelation"),
               call_correlation=d.get("call_correlation"), keep_count_hist=d.get("keep_count_hist"))
    out = []
    for c in d["checks"]:
        if c["verdict"] == "pass":
            continue
        nums = ""
        if c.get("estimate") is not None:
            nums = f" (estimate {float(c['estimate']):.6g}"
            nums += f" vs expected {float(c['expected']):.6g})" if c.get("expected") is not None else ")"
        if c["verdict"] == "fail":
            text = explain(c, p=p, q=q, **ctx)
            color = COLORS["fail"]
        elif str(c.get("detail", "")).startswith("not run") or not d.get("tolerance"):
            text = "The check could not run (the detail says why), so it neither passed nor failed."
            color = COLORS["inconclusive"]
        else:
            text = ("The interval straddles the edge of the tolerance band: the data cannot tell "
                    "whether the deviation is harmless. More calls narrow the interval.")
            color = COLORS["inconclusive"]
        out.append({"heading": f"{c['name']}: {c['verdict'].upper()}{nums}", "color": color,
                    "explanation": text, "detail": c.get("detail", "")})
    return out


def _missing_page(pdf, fig, axes, title: str, why: str) -> None:
    """Say in the top panel why there is nothing to plot, hide the bottom one, finish the page."""
    missing_panel(axes[0, 0], title, why)
    axes[1, 0].set_visible(False)
    finish_page(pdf, fig)


def _convergence_page(pdf, d: dict) -> None:
    fig, axes = grid_page(
        "Convergence: relative mean against the mask draws",
        "Running relative mean of the outputs (ȳ/x pooled over the elements, law: 1) after n mask "
        "draws. Top: with its 95% band and the target; bottom: the distance to 1 shrinks like "
        "1/√n, and at the full budget it is compared with the smallest bias the audit detects "
        "with power 0.99.",
        2, 1, height_ratios=[1.25, 1.0], hspace=0.32,
    )
    rec, why = _record(d, "convergence")
    if rec is None:
        missing_panel(axes[0, 0], "running relative mean", why)
        missing_panel(axes[1, 0], "distance to the target", why)
        finish_page(pdf, fig)
        return
    n = _floats(rec["draws"])
    m = _floats(rec["relative_mean"])
    se = np.broadcast_to(_floats(np.atleast_1d(rec["se"])), n.shape)
    plot_convergence(
        axes[0, 0], n, m, se, 1.0, ylabel="running relative mean ȳ/x (dimensionless)",
        xlabel="mask draws n (calls × units per call), log scale",
        label="running relative mean of the implementation",
        target_label="law: E[y] = x (relative mean 1)",
    )
    tol = d.get("tolerance")
    if tol:
        axes[0, 0].axhspan(1 - float(tol), 1 + float(tol), color="tab:green", alpha=0.08, lw=0,
                           label=f"tolerance band 1 ± {float(tol):g}")
        axes[0, 0].legend(fontsize=7.5, loc="upper right")
    mc = _first_check(d, "mean", with_alpha=True)
    plot_error_decay(
        axes[1, 0], n, m, se, 1.0, z_check=simultaneous_z(mc["alpha"]) if mc else None,
        detectable=d.get("detectable_bias"), relative=True,
        xlabel="mask draws n, log scale", ylabel="|running relative mean − 1|  (log)",
    )
    fin = np.isfinite(m)
    if fin.any():
        i = np.nonzero(fin)[0][-1]
        axes[0, 0].annotate(
            f"after {int(n[i]):,} draws:\n{m[i]:.6g} ± {1.96 * se[i]:.2g} (95%)",
            xy=(n[i], m[i]), xytext=(0.45, 0.1), textcoords="axes fraction", fontsize=8.5,
            arrowprops=dict(arrowstyle="->", color="gray"),
        )
    finish_page(pdf, fig)


def _hist_page(pdf, d: dict) -> None:
    fig, axes = grid_page(
        "Keep counts per call against Binomial(n, q)",
        "Top: the fraction of calls that kept k of their n units (bars) and the Binomial(n, q) "
        "probability of k (line), which independent masks with the right rate follow. A "
        "histogram narrower than the line means a fixed number kept per call; wider means "
        "correlated units. Bottom: the standardised residual of each count.",
        2, 1, height_ratios=[1.4, 1.0], hspace=0.4,
    )
    rec, why = _record(d, "keep_count_hist")
    if rec is None:
        _missing_page(pdf, fig, axes, "keep-count histogram", why)
        return
    n, q = int(rec["n"]), float(rec["q"])
    # the audit may store only the occupied window [offset, offset + len)
    off = int(rec.get("offset") or 0)
    part = np.asarray(rec["counts"], dtype=float)
    counts = np.zeros(max(n + 1, off + part.size))
    counts[off : off + part.size] = part
    if not 0 < q < 1 or counts.sum() == 0:
        _missing_page(pdf, fig, axes, "keep-count histogram",
                      f"q = {q:g}: the count per call is deterministic (checked exactly)."
                      if counts.sum() else "no calls were recorded.")
        return
    c = _first_check(d, "keep_count") or next(
        (c for c in d["checks"] if "dispersion" in str(c["name"])), None)
    plot_keep_count_hist(axes[0, 0], counts, n, q, unit="call",
                         title=f"{d.get('target', 'implementation')}: n = {n:,} units per call, "
                         f"{int(counts.sum()):,} calls",
                         pvalue=c.get("pvalue") if c else None,
                         pvalue_label=f"p-value of the '{c['name']}' check" if c else "")
    plot_hist_residuals(axes[1, 0], counts, n, q)
    finish_page(pdf, fig)


def _per_element_page(pdf, d: dict) -> None:
    fig, axes = grid_page(
        "Per-element relative bias",
        "Top: each element's relative bias ȳ/x − 1 over all calls, in percent (law: 0). The colour "
        "scale ends at the half-width of the per-element test's simultaneous interval, so an "
        "element at the end of the scale is one the check rejects (ringed). Bottom: the same "
        "biases in units of their standard error, against the standard normal they follow under "
        "the law.",
        2, 1, height_ratios=[1.3, 1.0], hspace=0.45, right=0.95,
    )
    rec, why = _record(d, "per_element")
    if rec is None:
        _missing_page(pdf, fig, axes, "per-element relative bias", why)
        return
    rel = _floats(rec["relative_bias"])
    se_raw = rec["relative_bias_se"]
    se = (_floats(se_raw) if isinstance(se_raw, list) else np.full(rel.shape, float(se_raw)))
    shape = rec.get("shape") or d.get("shape") or [rel.size]
    m = rel.size
    unit = rec.get("unit") or "element"
    trunc = ""
    if rec.get("truncated"):
        trunc = f" (first {m:,} {unit}s of {tuple(rec.get('full_shape') or d.get('shape') or ())})"
    a = _alpha_for(d, "mean")
    se_typ = float(np.nanmedian(se)) if se.size else float("nan")
    h = simultaneous_z(a, m) * se_typ
    plot_relative_bias(
        fig, axes[0, 0], rel, se, shape, h,
        title=f"{d.get('target', 'implementation')}: {unit}s, shape {tuple(shape)}{trunc}, "
              f"p = {float(d['p']):g}",
        level_text=f"the per-{unit} test's simultaneous interval (α = {a:.2g} over {m:,} {unit}s)",
    )
    ax = axes[1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = rel / se
    z = z[np.isfinite(z)]
    if z.size:
        lim = max(5.0, float(np.abs(z).max()) * 1.05)
        bins = np.linspace(-lim, lim, 61)
        ax.hist(z, bins=bins, density=True, color="tab:blue", alpha=0.55, label=f"observed ({z.size:,} elements)")
        xx = np.linspace(-lim, lim, 400)
        ax.plot(xx, norm.pdf(xx), color="black", lw=1.0, label="standard normal (the law)")
        zc = simultaneous_z(a, m)
        for s in (-zc, zc):
            ax.axvline(s, color=COLORS["fail"], lw=1.0, ls=":")
        ax.plot([], [], color=COLORS["fail"], ls=":", label=f"±{zc:.2f}: the check's cut")
        ax.set_xlabel("bias / standard error, z (dimensionless)")
        ax.set_ylabel("density (fraction per unit z)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper right")
    else:
        missing_panel(ax, "z-scores", "no finite standard errors recorded.")
    finish_page(pdf, fig)


def _qq_page(pdf, d: dict) -> None:
    fig, axes = grid_page(
        "Per-element p-values against uniform (QQ plot)",
        "The audit's per-element p-values (for inverted dropout: each element's keep count "
        "against Binomial(calls, q), exact), sorted, against the quantiles of the uniform law "
        "they follow when the implementation is correct. Along the diagonal, inside the grey "
        "band: no element stands out; a bend upwards: more extreme elements than chance allows "
        "(a position-dependent rate). A scale error shared by every element does not show here; "
        "the mean check catches it. Exact p-values of discrete counts are conservative, so a "
        "slight sag below the diagonal is expected. Axes are −log10(p).",
        1, 1, bottom=0.3, left=0.13, right=0.93,
    )
    ax = axes[0, 0]
    rec, why = _record(d, "per_element")
    pv = None if rec is None else rec.get("pvalues")
    if pv is None:
        missing_panel(ax, "QQ plot", why or "the audit recorded no per-element p-values.")
        finish_page(pdf, fig)
        return
    pv = _floats(pv)
    m = pv.size
    a = _alpha_for(d, "mean")
    plot_pvalue_qq(ax, [(str(d.get("target", "implementation")), pv)], threshold=a / m,
                   threshold_label=f"Holm's first cut α_check/m = {a / m:.2g} ({m:,} elements): "
                   "points above it fail")
    fin = pv[np.isfinite(pv)]
    if fin.size:
        text_lines(fig, 0.1, 0.24, f"Smallest p-value {fin.min():.3g} of {fin.size:,}; fraction "
                   f"below 0.05: {np.mean(fin < 0.05):.3f} (uniform: 0.05); fraction below 0.001: "
                   f"{np.mean(fin < 0.001):.4f} (uniform: 0.001).", width=115, fontsize=8.5)
    finish_page(pdf, fig)


def _independence_page(pdf, d: dict) -> None:
    fig, axes = grid_page(
        "Independence of the mask",
        "Top: correlation of the recovered mask (y ≠ 0) with itself shifted by each memory offset, "
        "averaged over calls; bits used twice or repeated blocks show as a peak. Middle: "
        "correlation between the masks of consecutive calls at each offset; a reused, "
        "alternating or shifted mask shows as a peak. Bottom: masks of calls 2 or more apart, "
        "same position. Shaded: the bound a correct implementation stays within at the audit's "
        "α (offsets between the dense range and the extremes are sampled log-uniformly).",
        3, 1, hspace=0.85, bottom=0.1, height_ratios=[1.0, 1.0, 0.7],
    )
    rec_c = None
    for ax, key, title, xlabel in (
        (axes[0, 0], "autocorrelation", "Mask autocorrelation against memory offset",
         "memory offset (elements, flattened C order)"),
        (axes[1, 0], "call_correlation", "Consecutive calls: correlation against offset",
         "offset (elements) between a call's mask and the next call's"),
    ):
        rec, why = _record(d, key)
        if key == "call_correlation":
            rec_c, why_c = rec, why
        if rec is None:
            missing_panel(ax, title, why)
            continue
        plot_correlation(ax, rec["offsets"], rec["values"], rec.get("bound"), title=title,
                         xlabel=xlabel, bound_label="bound for a correct implementation (audit's α)")
    ax = axes[2, 0]
    lags = (rec_c or {}).get("lags") if isinstance(rec_c, dict) else None
    if lags and lags.get("lags"):
        plot_correlation(ax, lags["lags"], lags["values"], rec_c.get("bound"),
                         title="Calls k apart: correlation at the same position (offset 0)",
                         xlabel="calls apart, k", bound_label="bound (audit's α)")
        ax.set_xticks(lags["lags"])
    else:
        missing_panel(ax, "Calls k apart", why_c if rec_c is None else
                      "the audit recorded consecutive calls only.")
    finish_page(pdf, fig)


def render_audit(d: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF report of an audit result.

    Parameters
    ----------
    d : dict
        ``AuditReport.to_dict()``, or the same JSON loaded from disk.
        Plot records that are ``None`` are reported as not available.
    path : str or path-like
        The PDF to write (atomically: never left partial).
    timestamp : bool, default False
        Print the rendering date on page 1 and record it in the metadata.
    """
    rows = _rows(d)
    verdict = d["verdict"]
    n_fail = sum(r["verdict"] == "fail" for r in rows)
    n_inc = sum(r["verdict"] == "inconclusive" for r in rows)
    if verdict == "pass" and not n_fail:
        note = f"no check failed: all {len(rows)} checks passed" + (
            f" ({n_inc} inconclusive)." if n_inc else ".")
    elif n_fail:
        note = (f"{n_fail} of {len(rows)} checks failed (red rows; see 'Failures and what they "
                "usually mean').")
    else:
        note = f"no check failed, but {n_inc} of {len(rows)} were inconclusive (amber rows)."
    entries = _findings(d)
    target = str(d.get("target", "implementation"))
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title="mcdrop audit report", timestamp=timestamp) as pdf:
            verdict_pages(
                pdf, title=f"mcdrop audit: {target}"[:70], verdict=verdict, verdict_note=note,
                lines=_summary_lines(d, timestamp), rows=rows, legend=_LEGEND,
            )
            effects_page(pdf, d)
            if entries:
                findings_pages(
                    pdf, entries,
                    intro="Each check that did not pass, with what its pattern usually means "
                    "(from the estimate against its expected value, or from the correlation peak).",
                )
            _convergence_page(pdf, d)
            _hist_page(pdf, d)
            _per_element_page(pdf, d)
            _qq_page(pdf, d)
            _independence_page(pdf, d)
