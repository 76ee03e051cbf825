"""The power report (``reports/power.pdf``): what a PASS rules out, and the curves that show it.

Pages, in order:

1. in plain words, what a PASS of the audit at the measured budget rules
   out, check by check, with the stated smallest detectable effect beside
   the measured 0.99 crossing;
2. one panel per check (four to a page): the measured detection rate against
   the effect size with 95% Clopper-Pearson intervals, the stated effect,
   the power line and the family-wise alpha line, on a logit axis so that
   both lines are visible.

It renders ``PowerStudy.to_dict()`` (or the same JSON); nothing is sampled.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .files import atomic_path
from .style import A4, COLORS, date_line, finish_page, grid_page, header, pdf_pages, text_lines, versions_line

__all__ = ["render_power", "plain_summary"]

_LO, _HI = 1e-7, 1.0 - 1e-4  # logit axis limits: the alpha line and the 0.99 line both show
_PANELS = 4


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "none"
    v = float(v)
    if unit in ("ulp",) or (v == int(v) and abs(v) < 1e4 and unit not in ("correlation",)
                            and "relative" not in unit and "rms" not in unit):
        return f"{int(v)}" if v == int(v) else f"{v:.3g}"
    return f"{v:.2g}"


def plain_summary(d: dict) -> list[str]:
    """Paragraphs telling a user what a PASS at the measured budget rules out."""
    curves = {c["check"]: c for c in d["curves"]}
    first = d["curves"][0]
    budget = (f"{'the default budget' if first.get('default_budget') else 'a budget'} of "
              f"{first['calls']:,} training calls of a {tuple(first['shape'])} float32 input at p = "
              f"{first['p']:g}")
    paras = [
        f"mcdrop's audit judges all its checks together so that a correct dropout fails at most alpha = "
        f"{float(d['alpha']):g} of the time. A PASS does not prove an implementation right: it rules out "
        f"every defect large enough to be caught with probability {d['power']} or more. At {budget} "
        f"these are:",
    ]

    def val(name):
        c = curves.get(name)
        return None if c is None else c.get("stated")

    items = []
    if val("keep_rate") is not None:
        items.append(f"a keep rate off by {val('keep_rate'):.2g} (relative) or more, e.g. 0.70 instead of "
                     f"{0.7 * (1 - val('keep_rate')):.5f};")
    if val("mean") is not None:
        items.append(f"a mean output biased by {val('mean'):.2g} (relative) or more;")
    if val("variance") is not None:
        items.append(f"a variance of the output off by {val('variance'):.2g} (relative) or more "
                     "(Gaussian dropout; for a two-point mask this is a keep-rate error);")
    if val("dispersion") is not None:
        items.append(f"keep rates that differ between elements by {val('dispersion'):.2g} (rms, relative) "
                     "or more, even when the average rate is exact;")
    if val("element_independence") is not None:
        items.append(f"a correlation of {val('element_independence'):.2g} or more between the masks of two "
                     f"elements at any one offset (about 1% of elements copying a neighbour);")
    if val("call_independence") is not None:
        items.append(f"a correlation of {val('call_independence'):.2g} or more between one element's masks "
                     "in consecutive calls (about 1% of draws repeated from the previous call);")
    exact = [n for n in ("runs", "eval_identity", "input_unchanged", "shape_dtype", "finite", "support",
                         "gradient", "structure") if n in curves]
    if exact:
        sup = val("support")
        items.append("and, whatever the budget, any single: call that raises, evaluation output one ulp off "
                     "x, input value changed, call of the wrong shape or dtype, NaN or infinity"
                     + (f", output {int(sup)} ulp or more off its support point" if sup else "")
                     + ", backward pass element off its forward mask, or channel unit partly kept.")
    paras += [f"  - {t}" for t in items]
    paras.append(
        "Smaller effects can pass: a PASS says nothing about them. More calls shrink the keep-rate, mean, "
        "variance and dispersion limits like 1/sqrt(calls); the two independence checks read only the "
        "first 2^20 mask draws (about 128 calls of this input), so theirs shrink only with larger inputs. "
        "Every audit report states its own limits for its own budget (column 'detects'). Evaluation "
        "mode is called only 3 times, so a layer that misbehaves in a fraction f of its evaluation "
        "calls is caught with probability 0.99 only from f = 0.78.")
    paras.append(
        "How this was measured: for each check a correct NumPy dropout was given that check's defect at a "
        "range of sizes and audited repeatedly (seeded), and the fraction of audits in which that check "
        "failed was counted. The table gives the size the audit states (its formula, as printed in every "
        "audit report) and the size at which the measured rate first reaches 0.99 (interpolated between "
        "the measured sizes). A statement is confirmed when the curve reaches 0.99 at or below it.")
    return paras


def _summary_page(pdf, d: dict, timestamp: bool) -> None:
    fig = plt.figure(figsize=A4)
    verdict = "every curve reaches 0.99 at or below its stated effect" if d["verdict"] == "pass" else \
        "NOT every curve reaches 0.99 at or below its stated effect"
    y = header(fig, "What a PASS rules out", f"mcdrop power report: {verdict}.", width=100)
    for para in plain_summary(d):
        indent = 0.02 if para.startswith("  - ") else 0.0
        y = text_lines(fig, 0.06, y, para.replace("  - ", "• ", 1), width=100 if not indent else 97,
                       fontsize=9, indent=indent) - 0.004
    y -= 0.01
    cols = [("check", 21), ("stated effect", 14), ("unit", 34), ("0.99 crossing", 14), ("rate at stated", 15),
            ("audits", 7)]
    fs = 7.6
    char = 0.60205 * fs / 72 / A4[0]
    x0 = 0.05

    def row(cells, yy, color="black", weight="normal"):
        x = x0
        for (_, w), t in zip(cols, cells):
            fig.text(x, yy, str(t)[:w], fontsize=fs, family="DejaVu Sans Mono", va="top", color=color,
                     weight=weight)
            x += (w + 1) * char

    row([h for h, _ in cols], y, weight="bold")
    y -= 0.016
    for c in d["curves"]:
        rs = None
        for e, k in zip(c["effects"], c["detected"]):
            if c.get("stated") is not None and np.isclose(float(e), float(c["stated"]), rtol=1e-9, atol=0):
                rs = k / c["repeats"]
        ok = c.get("confirmed")
        row([c["check"], _fmt(c.get("stated"), c["unit"]), c["unit"], _fmt(c.get("crossing"), c["unit"]),
             "" if rs is None else f"{rs:.2f}", f"{c['repeats']}x{len(c['effects'])}"], y,
            color=COLORS["pass"] if ok else COLORS["fail"])
        y -= 0.0145
    y -= 0.008
    env = d.get("environment") or {}
    date = f"; {date_line(d, timestamp)}" if timestamp else ""
    text_lines(fig, 0.05, y, f"Seed {d.get('seed')}; alpha = {float(d['alpha']):g}; versions: "
               f"{versions_line(env)}{date}. Regenerate with `python scripts/power_report.py` "
               "(or `mcdrop power --report reports/power.pdf`).", width=140, fontsize=6.8, color="#57606a")
    finish_page(pdf, fig)
    statements = [c for c in d["curves"] if c.get("statement")]
    if statements:
        fig = plt.figure(figsize=A4)
        y = header(fig, "What each check's statement means",
                   "The sentence every audit report prints for each check (JSON: "
                   "checks[i].extra.detectable_effect.text), at the budget measured here.", width=100)
        for c in statements:
            fig.text(0.06, y, c["check"], ha="left", va="top", fontsize=9.5, weight="bold",
                     family="DejaVu Sans Mono")
            y -= 10 * 1.35 / 72 / A4[1]
            y = text_lines(fig, 0.06, y, c["statement"], width=110, fontsize=8.5, indent=0.02) - 0.008
        finish_page(pdf, fig)


def _panel(ax, c: dict) -> None:
    e = np.asarray(c["effects"], dtype=float)
    k = np.asarray(c["detected"], dtype=float)
    n = float(c["repeats"])
    rate = k / n
    ci = np.asarray(c.get("intervals") or [[r, r] for r in rate], dtype=float)
    y = np.clip(rate, _LO, _HI)
    lo = np.clip(ci[:, 0], _LO, _HI)
    hi = np.clip(ci[:, 1], _LO, _HI)
    ax.set_yscale("logit")
    ax.set_ylim(_LO * 0.5, _HI)
    power, alpha = float(c["power"]), float(c["alpha"])
    ax.axhline(power, color=COLORS["fail"], lw=1, ls="--")
    ax.axhline(alpha, color="#57606a", lw=1, ls=":")
    if c.get("stated") is not None:
        ax.axvline(float(c["stated"]), color="tab:green", lw=1.4)
    ax.vlines(e, lo, hi, color="tab:blue", lw=2.2, alpha=0.35)
    inner = (rate > 0) & (rate < 1)
    ax.plot(e[inner], y[inner], "o", color="tab:blue", ms=5)
    ax.plot(e[rate == 0], y[rate == 0], "v", color="tab:blue", ms=5.5, mfc="white")
    ax.plot(e[rate == 1], y[rate == 1], "^", color="tab:blue", ms=5.5)
    if c.get("crossing") is not None:
        ax.plot([c["crossing"]], [power], "D", color=COLORS["fail"], ms=5.5, zorder=5)
    ax.set_yticks([1e-6, 1e-4, 0.01, 0.5, 0.99, 0.9999])
    ax.set_yticklabels(["1e-6", "1e-4", "0.01", "0.5", "0.99", "0.9999"])
    ax.minorticks_off()
    if c.get("effects") and all(float(v) == int(v) for v in c["effects"]) and c["unit"] != "correlation":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax.set_xlabel(f"effect: {c['unit']}")
    ax.set_ylabel("detection rate (logit scale)")
    ok = c.get("confirmed")
    ax.set_title(f"{c['check']}: {'confirmed' if ok else 'NOT confirmed'}", fontsize=10,
                 color=COLORS["pass"] if ok else COLORS["fail"], weight="bold")
    note = (f"stated {_fmt(c.get('stated'), c['unit'])}\n0.99 crossing {_fmt(c.get('crossing'), c['unit'])}\n"
            f"{int(n)} audits per point")
    ax.text(0.03, 0.96, note, transform=ax.transAxes, fontsize=7.5, va="top", ha="left",
            bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#d0d7de", alpha=0.95))
    ax.text(0.0, -0.2, textwrap.fill(f"Defect: {c.get('mutant', '')}. {c.get('variant', '')} dropout, "
                                     f"p = {c.get('p')}, input {tuple(c.get('shape') or ())}, "
                                     f"{int(c.get('calls') or 0):,} calls.", 64),
            transform=ax.transAxes, fontsize=7, va="top", color="#24292f")
    ax.grid(True, which="major", color="#d0d7de", lw=0.5)


def _legend(fig, c: dict) -> None:
    handles = [
        Line2D([], [], marker="o", ls="", color="tab:blue", label="measured detection rate"),
        Line2D([], [], marker="^", ls="", color="tab:blue", label="all audits detected it"),
        Line2D([], [], marker="v", ls="", color="tab:blue", mfc="white", label="none detected it"),
        Line2D([], [], color="tab:blue", lw=2.2, alpha=0.35, label="95% Clopper-Pearson interval"),
        Line2D([], [], color="tab:green", lw=1.4, label="stated effect (the audit's formula)"),
        Line2D([], [], color=COLORS["fail"], ls="--", label=f"power {c['power']}"),
        Line2D([], [], marker="D", ls="", color=COLORS["fail"], label="measured 0.99 crossing"),
        Line2D([], [], color="#57606a", ls=":", label=f"alpha = {float(c['alpha']):g} (family-wise)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7.5, frameon=False,
               bbox_to_anchor=(0.5, 0.025))


def render_power(d: dict, path, *, timestamp: bool = False) -> None:
    """Write the power report of a ``PowerStudy.to_dict()`` (or its JSON) to ``path``.

    Parameters
    ----------
    d : dict
        ``PowerStudy.to_dict()``.
    path : str or path-like
        The PDF (written atomically).
    timestamp : bool, default False
        Print the rendering date on page 1 and record it in the metadata.
    """
    curves = d["curves"]
    with atomic_path(path) as tmp:
        with pdf_pages(tmp, title="mcdrop power report", timestamp=timestamp) as pdf:
            _summary_page(pdf, d, timestamp)
            for start in range(0, len(curves), _PANELS):
                chunk = curves[start: start + _PANELS]
                fig, axes = grid_page(
                    "Detection rate against effect size",
                    "Each panel: how often the check failed in seeded audits of a correct dropout with that "
                    "check's defect injected at the size on the x axis (dots, 95% Clopper-Pearson interval), "
                    "the effect the audit states it detects with probability >= 0.99 (green), the 0.99 line "
                    "(red dashes) and the family-wise alpha (grey dots). Confirmed: the rate reaches 0.99 at "
                    "or left of the green line.",
                    2, 2, hspace=0.55, wspace=0.3, bottom=0.15, left=0.09, right=0.97)
                for ax, c in zip(axes.ravel(), chunk):
                    _panel(ax, c)
                _legend(fig, chunk[0])
                for ax in axes.ravel()[len(chunk):]:
                    ax.set_visible(False)
                finish_page(pdf, fig)
