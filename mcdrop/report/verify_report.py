"""The PDF report of ``mcdrop verify``: verdicts first, then the plots."""

from __future__ import annotations

import math

import numpy as np

from ._io import atomic_path
from .style import new_page, pdf_pages, verdict_table_pages, summary_block

__all__ = ["render_verify"]


def _trace_arrays(sim: dict):
    tr = sim["trace"]
    n = np.asarray(tr["samples"], dtype=float)
    m = np.asarray([np.nan if v is None else v for v in tr["mean"]], dtype=float)
    sd = np.asarray([np.nan if v is None else v for v in tr["sd"]], dtype=float)
    return n, m, sd


def convergence_figure(result: dict):
    """Running layer mean against the sample count, with its 95% band."""
    import matplotlib.pyplot as plt  # noqa: F401

    sim = result["simulations"]["main"]
    sec = next(s for s in result["sections"] if s["name"] == "main")
    x = np.asarray(sim["x"], dtype=float)
    target = float(np.mean(x))
    q = float(sim["q"])
    n, m, sd = _trace_arrays(sim)
    fig, ax = new_page(
        f"Convergence: running layer mean ({sec['title']})",
        "Per-sample layer mean L = mean over elements of y = x*m/q, averaged over the first n "
        "samples. Band: pointwise 95% confidence interval, mean +/- 1.96 sd/sqrt(n).",
    )
    se = sd / np.sqrt(n)
    ok = np.isfinite(se)
    ax.fill_between(n[ok], (m - 1.96 * se)[ok], (m + 1.96 * se)[ok], color="tab:blue",
                    alpha=0.25, label="95% confidence band (inverted, 1/q)")
    ax.plot(n, m, color="tab:blue", lw=1.6, label="running mean, inverted dropout (y = x m / q)")
    ax.axhline(target, color="black", lw=1.0, ls="--", label=f"target mean(x) = {target:g}")
    if 0 < q < 1:
        ax.plot(n, m * q, color="tab:red", lw=1.2,
                label=f"control: no rescaling (y = x m) -> q*mean(x) = {q * target:g}")
        ax.axhline(q * target, color="tab:red", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("number of samples n (masks drawn), log scale")
    ax.set_ylabel("running mean of the layer mean L (same units as x)")
    finite = m[np.isfinite(m)]
    if finite.size:
        lo = min(finite[-1] - 1.0 * abs(target) - 1e-12, q * target - 0.3 * abs(target) if q < 1 else target)
        hi = max(finite[-1] + 1.0 * abs(target) + 1e-12, target * 1.3)
        ax.set_ylim(lo, hi)
    ax.legend(loc="upper right", fontsize=8.5)
    ax.grid(True, which="both", alpha=0.3)
    if n.size:
        last = int(n[-1])
        ax.annotate(
            f"after {last:,} samples:\n{m[-1]:.6g} +/- {1.96 * se[-1]:.2g}",
            xy=(n[-1], m[-1]), xytext=(0.55, 0.12), textcoords="axes fraction",
            fontsize=9, arrowprops=dict(arrowstyle="->", color="gray"),
        )
    return fig


def histogram_figure(result: dict):
    """Keep-count histograms against the binomial law, one panel per simulation."""
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    sims = [(k, v) for k, v in result["simulations"].items()]
    sims = [(k, v) for k, v in sims if 0 < float(v["q"]) < 1][:6]
    ncol = 2 if len(sims) > 1 else 1
    nrow = max(1, math.ceil(len(sims) / ncol))
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.suptitle("Keep counts per sample against Binomial(n, q)", fontsize=14, y=0.99)
    fig.text(
        0.5, 0.962,
        "Bars: observed fraction of samples keeping k of the n elements. Line: Binomial(n, q) pmf.\n"
        "Independent, correctly-rated masks make the two coincide.",
        ha="center", va="top", fontsize=9,
    )
    for i, (name, sim) in enumerate(sims):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        hist = np.asarray(sim["keep_count_hist"], dtype=float)
        n_el = hist.size - 1
        N = float(sim["samples"])
        q = float(sim["q"])
        k = np.arange(n_el + 1)
        pmf = binom.pmf(k, n_el, q)
        sd = math.sqrt(n_el * q * (1 - q))
        lo = max(0, int(n_el * q - 5 * sd) - 1)
        hi = min(n_el, int(n_el * q + 5 * sd) + 1)
        kk = k[lo : hi + 1]
        ax.bar(kk, hist[lo : hi + 1] / N, width=1.0 if n_el > 40 else 0.8, color="tab:blue",
               alpha=0.55, label="observed")
        ax.plot(kk, pmf[lo : hi + 1], color="black", lw=1.2,
                marker="o" if n_el <= 40 else None, ms=3, label="Binomial pmf")
        ax.set_title(f"{name}: n = {n_el}, p = {float(sim['p']):g}, {int(N):,} samples", fontsize=9)
        ax.set_xlabel("elements kept in a sample, k", fontsize=8.5)
        ax.set_ylabel("fraction of samples", fontsize=8.5)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7.5)
    fig.subplots_adjust(left=0.1, right=0.96, top=0.91, bottom=0.06, hspace=0.55, wspace=0.3)
    return fig


def _rows(result: dict):
    rows = []
    for s in result["sections"]:
        for c in s["checks"]:
            rows.append({
                "section": s["title"],
                "check": c["name"],
                "estimate": c.get("estimate"),
                "interval": c.get("confidence_interval"),
                "pvalue": c.get("pvalue"),
                "verdict": c["verdict"],
                "expect": c.get("expect", "pass"),
            })
    return rows


def render_verify(result: dict, path) -> None:
    """Write the verify report for ``result`` (a VerifyResult dict) to ``path``."""
    env = result.get("environment", {})
    law_sections = [s for s in result["sections"] if not s["control"]]
    m = sum(len(s["checks"]) for s in law_sections)
    lines = [
        ("What was tested", "mcdrop's reference inverted dropout (Numba Philox kernels): "
         "y = x*m/q, m ~ Bernoulli(q)."),
        ("Sections", "; ".join(f"{s['title']} ({s['description']})" for s in result["sections"][:1])
         + f"; p sweep: {sum(1 for s in law_sections) - 1} settings; "
         f"{sum(1 for s in result['sections'] if s['control'])} negative controls"),
        ("Seed", str(result.get("seed"))),
        ("False alarms", f"family-wise alpha = {result['alpha']:g} over {m} law checks (Holm); "
         f"intervals at the simultaneous level 1 - alpha/{m}."),
        ("Power", "; ".join(
            f"{s['title']}: relative mean bias {s['detectable_bias']:.2g}"
            for s in law_sections if s.get("detectable_bias")
        ) + f" (detectable with power {result.get('power', 0.99)})"),
        ("Versions", ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("machine", "cpu_threads"))),
        ("Machine", f"{env.get('machine', '?')}, {env.get('cpu_threads', '?')} threads"),
    ]
    verdict = result["verdict"]
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title="mcdrop verify report") as pdf:
            summary_block(
                pdf,
                title="mcdrop verify: inverted dropout on the reference kernels",
                verdict=verdict,
                verdict_note=(
                    "every law held and every negative control was detected"
                    if verdict == "pass" else "some check did not come out as expected (red rows)"
                ),
                lines=lines,
                rows=_rows(result),
            )
            verdict_table_pages(pdf, _rows(result), first_page_done=True)
            fig = convergence_figure(result)
            pdf.savefig(fig)
            _close(fig)
            fig = histogram_figure(result)
            pdf.savefig(fig)
            _close(fig)


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
