"""The PDF report of ``mcdrop verify``: verdicts first, then the plots.

Pages, in order:

1. summary (what was tested, versions, overall verdict, α and detectable
   bias) and the start of the verdict table; the table continues as needed;
2. failures (and negative controls) with what their pattern usually means;
3. convergence of the seed example (running mean with its band, and the
   error shrinking like 1/√n), then of the p sweep;
4. keep-count histograms against the binomial pmf;
5. per-element relative bias (heat maps for 2-D inputs);
6. QQ plot of the per-element keep-count p-values against uniform;
7. independence: what the saved counts say about correlation within and
   across samples.

Everything is computed from the result dictionary; nothing is sampled.
"""

from __future__ import annotations

import math

import numpy as np

from .files import atomic_path
from .explain import explain
from .figures import (
    midp_binom_pvalues,
    plot_convergence,
    plot_error_decay,
    plot_hist_residuals,
    plot_keep_count_hist,
    plot_pvalue_qq,
    plot_relative_bias,
    simultaneous_z,
    trace_arrays,
)
from .style import (
    COLORS,
    date_line as _date_line,
    finish_page,
    findings_pages,
    grid_page,
    missing_panel,
    pdf_pages,
    section_rows,
    text_lines,
    verdict_pages,
    stream_line,
    versions_line,
)

__all__ = ["render_verify"]


# ---------------------------------------------------------------------------
# reading the result dict
# ---------------------------------------------------------------------------


def _check(section: dict, name: str) -> dict | None:
    return next((c for c in section["checks"] if c["name"] == name), None)


def _law_sections(result: dict) -> list[dict]:
    return [s for s in result["sections"] if not s["control"]]


def _n_law_checks(result: dict) -> int:
    return sum(len(s["checks"]) for s in _law_sections(result))


def _alpha_check(result: dict, section: dict | None, name: str) -> float:
    c = _check(section, name) if section else None
    if c is not None and c.get("alpha"):
        return float(c["alpha"])
    return float(result["alpha"]) / max(_n_law_checks(result), 1)


def _sim_sections(result: dict) -> list[tuple[str, dict, dict]]:
    """(simulation key, simulation, its law section) in section order."""
    out, seen = [], set()
    for s in _law_sections(result):
        key = s["simulation"]
        if key not in seen:
            seen.add(key)
            out.append((key, result["simulations"][key], s))
    return out


def _random_sims(result: dict) -> list[tuple[str, dict, dict]]:
    """The :func:`_sim_sections` with 0 < p < 1 (random masks; p = 0 or 1 is checked exactly)."""
    return [(k, s, sec) for k, s, sec in _sim_sections(result) if 0 < float(s["q"]) < 1]


def _label(section: dict, sim: dict) -> str:
    return f"{section['title']} (p = {float(sim['p']):g})" if "p=" not in section["title"] else section["title"]


def _pct(v) -> str:
    return f"{100 * float(v):.2g}%"


# ---------------------------------------------------------------------------
# pages
# ---------------------------------------------------------------------------


def _summary_lines(result: dict, timestamp: bool) -> list[tuple[str, str]]:
    env = result.get("environment", {}) or {}
    laws = _law_sections(result)
    ctrls = [s for s in result["sections"] if s["control"]]
    first = result["sections"][0]
    sweep = [s for s in laws if s["name"].startswith("sweep")]
    runs = [f"{first['title']}: {first.get('description', '')}".rstrip(": ")]
    if sweep:
        ps = ", ".join(f"{float(s['p']):g}" for s in sweep)
        runs.append(
            f"p sweep: p in {{{ps}}} on a {tuple(sweep[0]['shape'])} mixed-sign input, "
            f"{int(sweep[0]['samples']):,} samples each"
        )
    if ctrls:
        runs.append("negative controls (must FAIL): " + "; ".join(s["title"] for s in ctrls))
    m = _n_law_checks(result)
    power = result.get("power", 0.99)
    det = "; ".join(
        f"{s['title']}: {_pct(s['detectable_bias'])}" for s in laws if s.get("detectable_bias")
    )
    date = _date_line(result, timestamp)
    lines = [
        ("What was tested", "mcdrop's reference inverted dropout (Numba Philox-4x32-10 kernels): "
         "y = x·m/q with m ~ Bernoulli(q) i.i.d., q = 1 - p; p is the drop probability."),
        ("Runs", "\n".join(runs)),
        ("Seed", str(result.get("seed"))),
        *([("Streams", stream_line(result))] if stream_line(result) else []),
        ("False alarms", f"alpha = {float(result['alpha']):g} family-wise over {m} law checks (Holm); "
         f"intervals hold simultaneously at level 1 - alpha/{m} (Bonferroni)."),
        ("Detectable bias", f"smallest relative mean bias detected with power {power}: {det}."
         if det else "n/a"),
        ("Versions", versions_line(env)),
        ("Machine", f"{env.get('machine', 'not recorded')}, {env.get('cpu_threads', '?')} threads"),
        ("Date", date),
    ]
    return lines


def _nums(c: dict) -> str:
    est = c.get("estimate")
    if est is None:
        return ""
    out = f"{float(est):.6g}"
    if c.get("expected") is not None:
        out += f" vs {float(c['expected']):.6g}"
    return out


def _findings(result: dict) -> list[dict]:
    """Unexpected outcomes one by one; detected negative controls one per section."""
    entries = []
    for s in result["sections"]:
        sim = result["simulations"][s["simulation"]]
        p, q = float(sim["p"]), float(sim["q"])
        expected_fails = []
        for c in s["checks"]:
            expect = c.get("expect", "fail" if s["control"] else "pass")
            if c["verdict"] == expect:
                if c["verdict"] == "fail":
                    expected_fails.append(c)
                continue
            nums = _nums(c)
            head = (f"{s['title']} · {c['name']}: {c['verdict'].upper()}, UNEXPECTED"
                    + (f" (estimate {nums})" if nums else ""))
            if c["verdict"] == "fail":
                text = explain(c, p=p, q=q, shape=s.get("shape"))
            else:
                text = ("A negative control was not detected: at this sample budget the check "
                        "lacks the power to see this scale error (increase the samples). At p = 0.5 "
                        "dividing by p is the same as dividing by q and cannot be detected.")
            entries.append({"heading": head, "color": COLORS["fail"], "explanation": text,
                            "detail": c.get("detail", "")})
        if expected_fails:
            names = ", ".join(f"{c['name']} ({_nums(c)})" if _nums(c) else c["name"]
                              for c in expected_fails)
            readings = []
            for c in expected_fails:
                t = explain(c, p=p, q=q, shape=s.get("shape"))
                if t and t not in readings:
                    readings.append(t)
            # the readings that name a pattern (≈) first: they say what the mistake is
            readings.sort(key=lambda t: "≈" not in t)
            entries.append({
                "heading": f"Negative control '{s['title']}': {len(expected_fails)} checks FAIL, as expected",
                "color": COLORS["expected"],
                "explanation": " ".join(readings[:2]),
                "detail": f"{s.get('description', '')}. Failed: {names}.",
                "detail_label": "",
            })
    return entries


def _convergence_page(pdf, result: dict) -> None:
    first = _law_sections(result)[0]
    key = first["simulation"]
    sim = result["simulations"][key]
    x = np.asarray(sim["x"], dtype=float)
    q = float(sim["q"])
    target = float(np.mean(x)) if q > 0 else 0.0
    n, m, se = trace_arrays(sim["trace"])
    fig, axes = grid_page(
        f"Convergence: running layer mean ({first['title']})",
        f"{first.get('description', '')}. L is the per-sample layer mean (mean over the "
        f"{x.size} elements of y = x·m/q); the curve is the average of L over the first n samples, "
        "which converges to mean(x). Top: with its 95% band and the target; bottom: the distance "
        "to the target shrinks like 1/√n, inside the band.",
        2, 1, height_ratios=[1.25, 1.0], hspace=0.32,
    )
    extra = []
    for s in result["sections"]:
        if s["control"] and s["simulation"] == key and q > 0:
            factor = float(s["scale"]) * q
            extra.append((n, m * factor, f"negative control '{s['title']}' (scale {s.get('scale_label', '')}) "
                          f"→ {target * factor:g}", COLORS["fail"]))
    plot_convergence(
        axes[0, 0], n, m, se, target, ylabel="running mean of L (units of x)",
        xlabel="samples n (masks drawn), log scale",
        label="running mean, inverted dropout y = x·m/q",
        target_label=f"target mean(x) = {target:g}", extra_lines=extra,
    )
    mc = _check(first, "mean_layer")
    z_check = simultaneous_z(mc["alpha"]) if mc and mc.get("alpha") else None
    rel = bool(target)
    plot_error_decay(
        axes[1, 0], n, m, se, target, z_check=z_check,
        detectable=first.get("detectable_bias") if rel else None, relative=rel,
        xlabel="samples n (masks drawn), log scale",
        ylabel="|running mean − mean(x)| / |mean(x)|  (relative, log)" if rel
        else "|running mean − mean(x)|  (units of x, log)",
    )
    if n.size and np.isfinite(m[-1]):
        axes[0, 0].annotate(
            f"after {int(n[-1]):,} samples:\n{m[-1]:.6g} ± {1.96 * se[-1]:.2g} (95%)",
            # above the curves when a control line runs along the bottom
            xy=(n[-1], m[-1]), xytext=(0.3, 0.74) if extra else (0.45, 0.1),
            textcoords="axes fraction", fontsize=8.5,
            arrowprops=dict(arrowstyle="->", color="gray"),
        )
    finish_page(pdf, fig)


def _sweep_convergence_page(pdf, result: dict) -> None:
    sims = _sim_sections(result)[1:]
    if not sims:
        return
    sims = sims[:6]
    ncol = 2 if len(sims) > 1 else 1
    nrow = math.ceil(len(sims) / ncol)
    fig, axes = grid_page(
        "Convergence across the p sweep",
        "Running layer mean minus its target mean(x), against the sample count, for each drop "
        "probability p (same input for every p). Blue line: running mean − mean(x); shaded: its "
        "95% confidence band ± 1.96·sd/√n; dashed: the target 0. The line must settle inside "
        "the band around 0.",
        nrow, ncol, hspace=0.55, wspace=0.32,
    )
    for ax in axes.ravel()[len(sims):]:
        ax.set_visible(False)
    for ax, (key, sim, sec) in zip(axes.ravel(), sims):
        x = np.asarray(sim["x"], dtype=float)
        q = float(sim["q"])
        target = float(np.mean(x)) if q > 0 else 0.0
        n, m, se = trace_arrays(sim["trace"])
        plot_convergence(
            ax, n, m - target, se, 0.0, ylabel="running mean − mean(x) (units of x)",
            xlabel="samples n, log scale", label="running mean − mean(x)", target_label="target 0",
            legend=False,
        )
        if q == 1:
            ax.set_ylim(-1, 1)
        ax.set_title(f"p = {float(sim['p']):g} (keep {q:g}), {x.size:,} elements"
                     + (": y = x exactly" if q == 1 else ""), fontsize=9)
    finish_page(pdf, fig)


def _hist_page(pdf, result: dict) -> None:
    sims = _random_sims(result)[:6]
    single = len(sims) == 1
    ncol = 2 if len(sims) > 1 else 1
    nrow = 2 if single else max(1, math.ceil(len(sims) / ncol))
    fig, axes = grid_page(
        "Keep counts per sample against Binomial(n, q)",
        "Bars: observed fraction of samples that kept k of their n elements. Line: the "
        "Binomial(n, q) probability of k, which independent masks with the right rate follow. A "
        "histogram narrower than the line means a fixed number kept per sample; wider means "
        "correlated elements. The p-value is the keep_count_distribution check's (chi-square)."
        + (" Bottom: standardised residuals per k." if single else ""),
        nrow, ncol, hspace=0.6 if not single else 0.35, wspace=0.32,
        height_ratios=[1.4, 1.0] if single else None,
    )
    if single:
        key, sim, sec = sims[0]
        n_el = len(sim["keep_count_hist"]) - 1
        plot_hist_residuals(axes[1, 0], sim["keep_count_hist"], n_el, float(sim["q"]))
        axes = axes[:1]
    if not sims:
        missing_panel(axes[0, 0], "keep-count histogram", "every run has p = 0 or p = 1; the "
                      "counts are deterministic and checked exactly in the table.")
    for ax in axes.ravel()[len(sims):]:
        if sims:
            ax.set_visible(False)
    for ax, (key, sim, sec) in zip(axes.ravel(), sims):
        c = _check(sec, "keep_count_distribution")
        n_el = len(sim["keep_count_hist"]) - 1
        plot_keep_count_hist(
            ax, sim["keep_count_hist"], n_el, float(sim["q"]),
            title=f"{_label(sec, sim)}: n = {n_el:,}, {int(sim['samples']):,} samples",
            pvalue=c.get("pvalue") if c else None,
        )
    finish_page(pdf, fig)


def _bias_page(pdf, result: dict) -> None:
    sims = _random_sims(result)
    skipped = [sec["title"] for k, s, sec in _sim_sections(result) if not 0 < float(s["q"]) < 1]
    sub = ("Relative bias of each element's mean, ȳ/x − 1 = k/(N·q) − 1 from its keep count k over N "
           "samples, in percent (law: 0). The colour scale (or shaded band) ends at the half-width "
           "of the per-element check's simultaneous interval, so an element at the end of the "
           "scale is one the check rejects; those are ringed.")
    if skipped:
        sub += f" Not shown (p = 0 or 1, checked exactly): {', '.join(skipped)}."
    per_page = 3
    chunks = [sims[i : i + per_page] for i in range(0, len(sims), per_page)] or [[]]
    for j, chunk in enumerate(chunks):
        title = "Per-element relative bias" + (f" ({j + 1}/{len(chunks)})" if len(chunks) > 1 else "")
        rows = max(len(chunk), 2)  # one panel: half a page, not a sliver
        fig, axes = grid_page(title, sub if j == 0 else "", rows, 1, hspace=0.7,
                              left=0.1, right=0.95)
        if not chunk:
            missing_panel(axes[0, 0], "per-element relative bias", "no run with 0 < p < 1.")
        for ax in axes.ravel()[max(len(chunk), 1):]:
            ax.set_visible(False)
        for ax, (key, sim, sec) in zip(axes.ravel(), chunk):
            q, p, N = float(sim["q"]), float(sim["p"]), int(sim["samples"])
            k = np.asarray(sim["keep_counts"], dtype=float)
            rel = k / (N * q) - 1.0
            se = math.sqrt(p / (q * N))
            a = _alpha_check(result, sec, "mean_per_element")
            h = simultaneous_z(a, k.size) * se
            plot_relative_bias(
                fig, ax, rel, se, sim["shape"], h,
                title=f"{_label(sec, sim)}: shape {tuple(sim['shape'])}, {N:,} samples",
                level_text=f"the check's simultaneous interval (α = {a:.2g} over {k.size:,} elements)",
            )
        finish_page(pdf, fig)


def _qq_page(pdf, result: dict) -> None:
    sims = _random_sims(result)
    fig, axes = grid_page(
        "Per-element p-values against uniform (QQ plot)",
        "For every element, the two-sided exact binomial mid-p value of its keep count k out of N "
        "samples under keep probability q. Under the law these p-values are uniform, so the points "
        "follow the diagonal, inside the grey band; a bend upwards means more extreme counts than "
        "chance allows (a position-dependent rate). Axes are −log10(p): the right end is the "
        "smallest p-values.",
        1, 1, bottom=0.3, left=0.13, right=0.93,
    )
    ax = axes[0, 0]
    if not sims:
        missing_panel(ax, "QQ plot", "no run with 0 < p < 1 (counts are deterministic).")
        finish_page(pdf, fig)
        return
    series = []
    for key, sim, sec in sims:
        pv = midp_binom_pvalues(sim["keep_counts"], int(sim["samples"]), float(sim["q"]))
        series.append((sec["title"], pv))
    big_key, big_sim, big_sec = max(sims, key=lambda t: len(t[1]["keep_counts"]))
    m = len(big_sim["keep_counts"])
    a = _alpha_check(result, big_sec, "keep_rate_per_element")
    plot_pvalue_qq(ax, series, threshold=a / m,
                   threshold_label=f"Bonferroni cut α_check/m = {a / m:.2g} ({m:,} elements): "
                   "points above it fail keep_rate_per_element")
    rows = []
    for (label, pv), (key, sim, sec) in zip(series, sims):
        rows.append(f"{label}: smallest p-value {np.min(pv):.3g} of {pv.size:,}; "
                    f"fraction below 0.05: {np.mean(pv < 0.05):.3f} (uniform: 0.05)")
    text_lines(fig, 0.1, 0.24, "\n".join(rows), width=115, fontsize=8.5)
    finish_page(pdf, fig)


def _interval_panel(ax, labels, est, lo, hi, *, color, marker, label, zero_label, ylabel, title):
    """Estimates with intervals per run; the scale follows the typical interval, and
    every point is also written out, so one wide interval does not flatten the rest."""
    xs = np.arange(len(labels))
    lo = np.where(np.isfinite(lo), lo, est)
    hi = np.where(np.isfinite(hi), hi, est)
    err = np.vstack([np.maximum(est - lo, 0), np.maximum(hi - est, 0)])
    ax.errorbar(xs, est, yerr=err, fmt=marker, color=color, capsize=4, label=label)
    bad = (lo > 0) | (hi < 0)
    if bad.any():
        ax.plot(xs[bad], est[bad], marker, mfc="none", mec=COLORS["fail"], ms=10,
                label="interval excludes 0")
    ax.axhline(0, color="black", lw=0.8, ls="--", label=zero_label)
    half = np.abs(np.r_[hi - est, est - lo])
    half = half[np.isfinite(half) & (half > 0)]
    scale = float(np.median(half)) if half.size else 1.0
    fin = np.abs(est[np.isfinite(est)])
    lim = 1.6 * max(scale, float(fin.max()) if fin.size else 0.0, 1e-12)
    ax.set_ylim(-lim, 1.6 * lim)
    ticks = [f"{lab}\n{e:.2g}\n[{l:.2g}, {h:.2g}]" if np.isfinite(e) else f"{lab}\nn/a"
             for lab, e, l, h in zip(labels, est, lo, hi)]
    ax.set_xticks(xs, ticks, fontsize=6.8)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")


def _independence_page(pdf, result: dict) -> None:
    sims = _random_sims(result)
    fig, axes = grid_page(
        "Independence of the mask",
        "A verify result stores counts, not masks, so the autocorrelation of the mask against "
        "memory offset cannot be drawn from it (`mcdrop audit` computes it for any "
        "implementation). What the counts do pin down is plotted here, each with its interval at "
        "the check's level (numbers under each run: estimate and interval); independent masks "
        "give 0.",
        2, 1, hspace=0.75, bottom=0.32, left=0.13,
    )
    ax1, ax2 = axes[0, 0], axes[1, 0]
    labels, r1, e1, r2, lo2, hi2 = [], [], [], [], [], []
    for key, sim, sec in sims:
        hist = np.asarray(sim["keep_count_hist"], dtype=float)
        n_el = hist.size - 1
        N = hist.sum()
        q, p = float(sim["q"]), float(sim["p"])
        kk = np.arange(hist.size)
        mk = float(np.dot(kk, hist) / N)
        vk = float(np.dot((kk - mk) ** 2, hist) / (N - 1)) if N > 1 else float("nan")
        a = _alpha_check(result, sec, "keep_count_distribution")
        z = simultaneous_z(a)
        labels.append(f"{sec['title']}\n(n = {n_el:,})")
        if n_el >= 2:
            ratio = vk / (n_el * p * q)
            se_ratio = math.sqrt(2.0 / max(N - 1, 1) + (1 - 6 * p * q) / (n_el * p * q) / N)
            r1.append((ratio - 1) / (n_el - 1))
            e1.append(z * se_ratio / (n_el - 1))
        else:
            r1.append(np.nan)
            e1.append(np.nan)
        c = _check(sec, "element_dispersion")
        d = c.get("estimate") if c else None
        ci = (c or {}).get("confidence_interval") or {}
        if d is not None:
            r2.append((float(d) - 1) / 2)
            lo2.append((float(ci["low"]) - 1) / 2 if ci.get("low") is not None else np.nan)
            hi2.append((float(ci["high"]) - 1) / 2 if ci.get("high") is not None else np.nan)
        else:
            r2.append(np.nan)
            lo2.append(np.nan)
            hi2.append(np.nan)
    if not sims:
        missing_panel(ax1, "within a sample", "no run with 0 < p < 1.")
        missing_panel(ax2, "across samples", "no run with 0 < p < 1.")
    else:
        r1, e1 = np.asarray(r1), np.asarray(e1)
        _interval_panel(
            ax1, labels, r1, r1 - e1, r1 + e1, color="tab:blue", marker="o",
            label="estimate with its interval at the check's level", zero_label="independent elements: 0",
            ylabel="mean correlation of two mask\nelements of one sample (−1 to 1)",
            title="Within a sample: ρ̄ = (Var[k]/(n·p·q) − 1)/(n − 1) from the keep-count histogram",
        )
        _interval_panel(
            ax2, labels, np.asarray(r2), np.asarray(lo2), np.asarray(hi2), color="tab:green", marker="s",
            label="estimate with the element_dispersion check's interval",
            zero_label="independent samples: 0",
            ylabel="Σ over sample lags of an element's\nmask autocorrelation (≈ (D − 1)/2)",
            title="Across samples: from the dispersion index D of the per-element keep counts",
        )
    text_lines(
        fig, 0.1, 0.235,
        "How to read this. Top: if the n elements of one mask were correlated on average by ρ̄, "
        "the number kept per sample would vary by Var[k] = n·p·q·(1 + (n − 1)·ρ̄); the histogram "
        "gives Var[k], hence ρ̄ (blocks or rows that share a random draw push it up; a sampler "
        "that keeps a fixed count pushes it down). Bottom: an element's count over N samples varies "
        "by N·p·q·(1 + 2·Σ_l ρ(l)) when its masks are correlated at sample lag l, so the dispersion "
        "index D across elements estimates 1 + 2·Σ_l ρ(l) (a rate that differs between elements "
        "also raises D). The reference kernels' generator is known-answer tested against the "
        "Philox-4x32-10 test vectors (tests/test_rng.py), and each (key, counter) gives one "
        "independent 32-bit draw per element and sample.",
        width=118, fontsize=8.3,
    )
    finish_page(pdf, fig)


def render_verify(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF report of a :func:`mcdrop.verify` result.

    Parameters
    ----------
    result : dict
        ``VerifyResult.to_dict()``, or the same JSON loaded from disk
        (validated with :func:`mcdrop.report.loading.validate_result`).
    path : str or path-like
        The PDF to write.  It is written to a temporary file first and moved
        into place, so a failed render never leaves a partial PDF.
    timestamp : bool, default False
        Print the rendering date on page 1 and record it in the metadata.
        Without it the same result always gives the same bytes.
    """
    rows = section_rows(result)
    verdict = result["verdict"]
    n_unexp = sum(r["verdict"] != r["expect"] for r in rows)
    if verdict == "pass":
        note = (f"all {len(rows)} checks came out as expected: every law held and every "
                "negative control was detected.")
    else:
        note = (f"{n_unexp} of {len(rows)} checks did not come out as expected (red rows; "
                "see 'Failures and what they usually mean').")
    entries = _findings(result)
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title="mcdrop verify report", timestamp=timestamp) as pdf:
            verdict_pages(
                pdf,
                title="mcdrop verify: inverted dropout on the reference kernels",
                verdict=verdict,
                verdict_note=note,
                lines=_summary_lines(result, timestamp),
                rows=rows,
            )
            if entries:
                findings_pages(
                    pdf, entries,
                    intro="Each check that failed, and each negative control, with what its pattern "
                    "usually means. Negative controls apply a deliberately wrong scale to the "
                    "reference masks; they must fail, and the reading of the pattern names the "
                    "mistake they model.",
                )
            _convergence_page(pdf, result)
            _sweep_convergence_page(pdf, result)
            _hist_page(pdf, result)
            _bias_page(pdf, result)
            _qq_page(pdf, result)
            _independence_page(pdf, result)
