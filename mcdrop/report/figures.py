"""Plot primitives shared by the verify and audit reports.

Each function draws on a given matplotlib ``Axes`` from plain arrays (taken
from a saved result); none of them samples.  Units go on every axis label and
every band is named in the legend.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator
from scipy.stats import beta, binom

from ..stats.normal import z_tail

__all__ = [
    "as_floats",
    "trace_arrays",
    "midp_binom_pvalues",
    "simultaneous_z",
    "plot_convergence",
    "plot_error_decay",
    "plot_keep_count_hist",
    "plot_hist_residuals",
    "plot_relative_bias",
    "plot_pvalue_qq",
    "plot_correlation",
]

BAND = "tab:blue"
TARGET = "black"
BAD = "#cf222e"


def as_floats(values) -> np.ndarray:
    """A float array of JSON numbers, ``None`` (JSON ``null``, a NaN when saved) as NaN."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def trace_arrays(trace: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, mean, se)`` of a saved running-mean trace (``samples``, ``mean``, ``sd``).

    ``se = sd/√n``; JSON ``null`` values are NaN.
    """
    n = as_floats(trace["samples"])
    mean = as_floats(trace["mean"])
    with np.errstate(divide="ignore", invalid="ignore"):
        se = as_floats(trace["sd"]) / np.sqrt(n)
    return n, mean, se


def simultaneous_z(alpha: float, m: int = 1) -> float:
    """Two-sided normal quantile of a Bonferroni split of ``alpha`` over ``m`` intervals.

    Parameters
    ----------
    alpha : float
        Total two-sided level.
    m : int, default 1
        Number of intervals sharing ``alpha``.

    Returns
    -------
    float
        ``z`` with ``2 P(Z > z) = alpha / m``.
    """
    a = min(max(float(alpha) / max(int(m), 1), 1e-300), 1.0)
    return z_tail(a / 2.0)


def midp_binom_pvalues(k, n: int, q: float) -> np.ndarray:
    """Two-sided mid-p values of keep counts ``k`` under Binomial(``n``, ``q``).

    Parameters
    ----------
    k : array_like of int
        Keep counts.
    n : int
        Trials behind each count.
    q : float
        Keep probability under the law.

    Returns
    -------
    ndarray
        ``2 min(P(K < k) + P(K = k)/2, P(K > k) + P(K = k)/2)``, capped at 1.
        The mid-p correction makes the discrete p-values close to uniform
        under the law (mean 1/2), which a QQ plot against uniform needs; the
        central exact p-values are conservative.
    """
    k = np.asarray(k, dtype=np.float64)
    pm = binom.pmf(k, n, q)
    lo = binom.cdf(k, n, q) - 0.5 * pm
    hi = binom.sf(k, n, q) + 0.5 * pm
    return np.clip(2.0 * np.minimum(lo, hi), 0.0, 1.0)


def _no_minor(ax) -> None:
    """Decade ticks only: minor log ticks double the drawing time of a page."""
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_minor_locator(NullLocator())


def _legend(ax, **kw):
    kw.setdefault("loc", "best")
    kw.setdefault("fontsize", 7.5)
    ax.legend(**kw)


def plot_convergence(ax, n, mean, se, target, *, z: float = 1.96, level: str = "95%",
                     label: str = "running mean", ylabel: str, xlabel: str,
                     target_label: str, extra_lines=(), legend: bool = True) -> None:
    """Running mean against the sample count (log x) with its band and the target.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    n, mean, se : array_like
        Sample counts, running means and their standard errors.
    target : float
        The value the law says the mean converges to (dashed line).
    z : float, default 1.96
        Band half-width in standard errors; ``level`` names it.
    label, ylabel, xlabel, target_label : str
        Legend and axis texts (with units).
    extra_lines : sequence of (n, values, label, color)
        Thin extra lines (negative controls); the y range includes them.
    legend : bool, default True
        Draw the legend (small panels leave it to the page's subtitle).
    """
    n = np.asarray(n, dtype=float)
    mean = np.asarray(mean, dtype=float)
    se = np.asarray(se, dtype=float)
    ok = np.isfinite(se) & np.isfinite(mean) & (n > 0)
    ax.fill_between(n[ok], (mean - z * se)[ok], (mean + z * se)[ok], color=BAND, alpha=0.25, lw=0,
                    label=f"{level} confidence band: running mean ± {z:.3g}·sd/√n")
    ax.plot(n[np.isfinite(mean)], mean[np.isfinite(mean)], color=BAND, lw=1.5, label=label)
    ax.axhline(target, color=TARGET, lw=1.0, ls="--", label=target_label)
    for xs, ys, lab, col in extra_lines:
        ax.plot(xs, ys, color=col, lw=1.0, label=lab)
    ax.set_xscale("log")
    _no_minor(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    # Zoom so the settled part is readable: the first samples swing widely.
    fin = mean[ok]
    if fin.size:
        tail = fin[len(fin) // 3 :]
        half = np.nanmax(np.abs(tail - target)) if tail.size else 0.0
        span = max(half, float(z * se[ok][len(fin) // 3]) if len(fin) > 3 else 0.0,
                   1e-9 * max(abs(target), 1.0))
        reach = 2.2 * span
        for xs, ys, _, _ in extra_lines:
            ys = np.asarray(ys, dtype=float)
            if ys.size and np.isfinite(ys[-1]):
                reach = max(reach, 1.25 * abs(float(ys[-1]) - target) + 0.5 * span)
        ax.set_ylim(target - reach, target + reach)
    if legend:
        _legend(ax, loc="upper right")


def plot_error_decay(ax, n, mean, se, target, *, z_check: float | None = None,
                     detectable: float | None = None, relative: bool = False,
                     xlabel: str, ylabel: str) -> None:
    """|running mean − target| against n on log-log axes with the band half-widths.

    Shows that the error shrinks like 1/√n, and where the half-width of the
    interval the check uses, and the detectable bias, lie.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    n, mean, se : array_like
        As in :func:`plot_convergence`.
    target : float
        The law's value.
    z_check : float, optional
        The check's critical value (its half-width line is ``z_check·se``).
    detectable : float, optional
        Smallest relative bias detected with power 0.99 (horizontal line).
    relative : bool, default False
        Divide distances by ``|target|``.
    xlabel, ylabel : str
        Axis labels (with units).
    """
    n = np.asarray(n, dtype=float)
    mean = np.asarray(mean, dtype=float)
    se = np.asarray(se, dtype=float)
    scale = abs(target) if relative and target else 1.0
    err = np.abs(mean - target) / scale
    ok = np.isfinite(err) & (n > 0) & np.isfinite(se) & (se > 0)
    ax.plot(n[ok], np.maximum(err[ok], 1e-300), ".", ms=3, color=BAND,
            label="|running mean − target|" + (" / |target|" if relative and target else ""))
    ax.plot(n[ok], 1.96 * se[ok] / scale, color=BAND, lw=1.0, ls="--",
            label="half-width of the 95% band, 1.96·sd/√n")
    if z_check is not None:
        ax.plot(n[ok], z_check * se[ok] / scale, color="tab:purple", lw=1.0,
                label=f"half-width at the check's level ({z_check:.2f}·sd/√n)")
    if detectable:
        ax.axhline(detectable, color="tab:orange", lw=1.0, ls=":",
                   label=f"detectable relative bias at power 0.99: {detectable:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _no_minor(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if ok.any():
        top = np.nanmax(np.r_[err[ok], 1.96 * se[ok] / scale])
        pos = err[ok][err[ok] > 0]
        bottom = min(np.nanmin(pos) if pos.size else top * 1e-3,
                     np.nanmin(1.96 * se[ok] / scale), detectable or np.inf)
        ax.set_ylim(bottom / 3, top * 3)
    _legend(ax, loc="lower left")


def _hist_range(counts, pmf, total):
    nz = np.nonzero(counts)[0]
    big = np.nonzero(pmf * total >= 0.5)[0]
    idx = np.r_[nz, big]
    if idx.size == 0:
        return 0, len(counts) - 1
    return int(idx.min()), int(idx.max())


def plot_keep_count_hist(ax, counts, n: int, q: float, *, title: str, pvalue=None,
                         unit: str = "sample", pvalue_label: str = "chi-square p-value") -> None:
    """Observed keep-count histogram against the Binomial(n, q) pmf.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    counts : array_like
        ``counts[k]``: number of samples (calls) that kept ``k`` units.
    n : int
        Units per sample.
    q : float
        Keep probability.
    title : str
        Panel title; the chi-square ``pvalue`` is appended if given.
    pvalue : float, optional
    unit : str, default "sample"
        What one observation is ("sample" for verify, "call" for audit).
    pvalue_label : str, default "chi-square p-value"
        What ``pvalue`` is.
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    k = np.arange(counts.size)
    pmf = binom.pmf(k, n, q)
    lo, hi = _hist_range(counts, pmf, total)
    sl = slice(lo, hi + 1)
    frac = counts / total if total else counts
    if hi - lo <= 40:
        ax.bar(k[sl], frac[sl], width=0.8, color=BAND, alpha=0.55, label=f"observed ({int(total):,} {unit}s)")
        ax.plot(k[sl], pmf[sl], color=TARGET, lw=1.0, marker="o", ms=3, label=f"Binomial({n}, {q:g}) pmf")
    else:
        edges = np.arange(lo, hi + 2) - 0.5
        ax.stairs(frac[sl], edges, fill=True, color=BAND, alpha=0.5, label=f"observed ({int(total):,} {unit}s)")
        ax.plot(k[sl], pmf[sl], color=TARGET, lw=1.0, label=f"Binomial({n}, {q:g}) pmf")
    ax.xaxis.set_major_locator(MaxNLocator(6, integer=True))
    ax.set_ylim(0, 1.3 * max(float(np.max(frac[sl])), float(np.max(pmf[sl]))))
    t = title if pvalue is None else f"{title}\n{pvalue_label} {float(pvalue):.2g}"
    ax.set_title(t, fontsize=9)
    ax.set_xlabel(f"elements kept in one {unit}, k (count of {n})")
    ax.set_ylabel(f"fraction of {unit}s")
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="upper right", fontsize=7)


def plot_hist_residuals(ax, counts, n: int, q: float) -> None:
    """Standardised residuals (observed − expected)/√expected per keep count.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    counts : array_like
        As in :func:`plot_keep_count_hist`.
    n : int
    q : float
        Only cells expecting at least 5 observations are shown.
    """
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    k = np.arange(counts.size)
    exp = binom.pmf(k, n, q) * total
    sel = exp >= 5
    if not sel.any():
        ax.text(0.5, 0.5, "no keep count expects 5 or more observations", transform=ax.transAxes,
                ha="center", va="center")
        return
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    r = (counts[sel] - exp[sel]) / np.sqrt(exp[sel])
    ax.axhspan(-1.96, 1.96, color=BAND, alpha=0.15, lw=0, label="±1.96: 95% of residuals under the law")
    ax.vlines(k[sel], 0, r, color=BAND, lw=1.0)
    ax.plot(k[sel], r, ".", color=BAND, ms=3, label="(observed − expected)/√expected")
    ax.axhline(0, color=TARGET, lw=0.8)
    ax.set_xlabel(f"elements kept, k (count of {n}); cells expecting ≥ 5")
    ax.set_ylabel("standardised residual (s.d. units)")
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="upper right", fontsize=7)


def _as_2d(values: np.ndarray, shape):
    shape = tuple(int(s) for s in shape) if shape is not None else (values.size,)
    if int(np.prod(shape)) != values.size:
        shape = (values.size,)
    if len(shape) <= 1:
        return values.reshape(1, -1), False
    rows = int(np.prod(shape[:-1]))
    return values.reshape(rows, shape[-1]), True


def _block_worst(a: np.ndarray, max_pixels: int = 131072):
    """Reduce a large map by keeping each block's largest-|value| entry."""
    r, c = a.shape
    b = 1
    while math.ceil(r / b) * math.ceil(c / b) > max_pixels:
        b *= 2
    if b == 1:
        return a, 1
    R, C = math.ceil(r / b) * b, math.ceil(c / b) * b
    pad = np.zeros((R, C))
    pad[:r, :c] = a
    blocks = pad.reshape(R // b, b, C // b, b).transpose(0, 2, 1, 3).reshape(R // b, C // b, b * b)
    idx = np.argmax(np.abs(blocks), axis=2)
    return np.take_along_axis(blocks, idx[..., None], axis=2)[..., 0], b


def plot_relative_bias(fig, ax, rel, se, shape, half_width: float, *, title: str,
                       level_text: str) -> None:
    """Per-element relative bias: a heat map for 2-D shapes, points with bars otherwise.

    Values are shown in percent.  The colour scale ends at ``± half_width``
    (the simultaneous interval half-width of the per-element test), so a
    cell at the end of the scale is a cell the check rejects; such cells are
    also ringed.  If many cells are beyond it (a global error), the scale is
    widened to the data and the title says so.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        For the colour bar.
    ax : matplotlib.axes.Axes
    rel : array_like
        Relative biases ``ȳ/x − 1`` (flat, C order).
    se : float or array_like
        Their standard errors.
    shape : sequence of int
        Shape of the tensor; more than 2 axes are shown as (rows, last axis).
    half_width : float
        Half-width of the check's simultaneous interval (relative units).
    title, level_text : str
        Panel title, and what the half-width is.
    """
    rel = 100.0 * np.asarray(rel, dtype=float).ravel()
    se = 100.0 * np.broadcast_to(np.asarray(se, dtype=float), rel.shape)
    h = 100.0 * float(half_width) if half_width and math.isfinite(half_width) and half_width > 0 else (
        float(np.nanmax(np.abs(rel))) or 1.0)
    grid, two_d = _as_2d(rel, shape)
    if two_d:
        shown, b = _block_worst(grid)
        n_out = int(np.sum(np.abs(rel) > h))
        widened = n_out > max(20, 0.01 * rel.size)
        # Many elements beyond the scale: a global error.  Ringing each one
        # would bury the map, so widen the scale to the data and say so.
        v = float(np.nanpercentile(np.abs(rel), 99.5)) if widened else h
        im = ax.imshow(shown, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.015)
        cb.set_label("bias (%)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
        bad = np.argwhere(np.abs(shown) > h)
        if bad.size and not widened:
            ax.plot(bad[:, 1], bad[:, 0], "o", mfc="none", mec="black", ms=6, mew=1.0,
                    label="beyond ± half-width (check fails)")
            _legend(ax, loc="upper right", fontsize=7)
        lead = "row (leading axes)" if len(shape) > 2 else "row (axis 0)"
        ax.set_ylabel(lead + (f", blocks of {b}" if b > 1 else ""), fontsize=8)
        ax.set_xlabel(f"column (last axis){f', blocks of {b}' if b > 1 else ''}", fontsize=8)
        if widened:
            note = (f"{n_out:,} of {rel.size:,} beyond the check's ±{h:.2g}%; median bias "
                    f"{float(np.nanmedian(rel)):+.3g}%; colour scale widened to ±{v:.2g}%")
        else:
            note = f"colour ends at ±{h:.2g}% = {level_text}"
        if b > 1:
            note += f"; each pixel: the largest-|bias| element of a {b}×{b} block"
        ax.set_title(f"{title}\n{note}", fontsize=8.5)
    else:
        idx = np.arange(rel.size)
        thin = rel.size > 2000
        ax.axhspan(-h, h, color=BAND, alpha=0.12, lw=0, label=f"± {h:.2g}%: {level_text}")
        if thin:
            ax.plot(idx, rel, ".", ms=1.5, color=BAND, label="relative bias per element", rasterized=True)
        else:
            ax.errorbar(idx, rel, yerr=1.96 * se, fmt="o", ms=4, color=BAND, capsize=3,
                        label="relative bias ± 1.96·s.e. (95%)")
        out = np.abs(rel) > h
        if out.any():
            ax.plot(idx[out], rel[out], "o", mfc="none", mec=BAD, ms=7, label="beyond ± half-width (check fails)")
        ax.axhline(0, color=TARGET, lw=0.8, ls="--", label="law: E[y] = x (bias 0)")
        ax.set_xlabel("element index (flattened)", fontsize=8)
        ax.set_ylabel("relative bias ȳ/x − 1 (%)", fontsize=8)
        ax.set_title(title, fontsize=9)
        if rel.size <= 20:
            ax.set_xticks(idx)
        lim = 1.2 * max(h, float(np.nanmax(np.abs(rel) + 1.96 * se)) if rel.size else h)
        ax.set_ylim(-lim, 2.2 * lim)  # room for the legend above the data
        ax.grid(True, alpha=0.3)
        _legend(ax, loc="upper center", fontsize=7, ncol=2)


def _thin_ranks(m: int, keep_head: int = 100, bulk: int = 400) -> np.ndarray:
    """Ranks to plot: all of the smallest p-values, the bulk thinned log-uniformly."""
    if m <= keep_head + bulk:
        return np.arange(m)
    head = np.arange(keep_head)
    rest = np.unique(np.geomspace(keep_head + 1, m, bulk).astype(int) - 1)
    return np.unique(np.r_[head, rest])


def plot_pvalue_qq(ax, series, *, threshold: float | None = None, threshold_label: str = "") -> None:
    """QQ plot of p-values against uniform on −log10 axes, with a 95% band.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    series : sequence of (str, array_like)
        Label and p-values of each series; large series are thinned in the
        bulk (every one of the 100 smallest is kept).
    threshold : float, optional
        A p-value cut (e.g. Bonferroni ``alpha/m``); drawn if in range,
        otherwise stated in the corner.
    threshold_label : str
        What the cut is.

    Notes
    -----
    The band is pointwise, from the Beta(i, m − i + 1) law of the i-th
    smallest of m uniform p-values (for the largest series).
    """
    mmax = 0
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]
    top = 1.0
    for i, (label, pv) in enumerate(series):
        pv = np.sort(np.asarray(pv, dtype=float).ravel())
        pv = pv[np.isfinite(pv)]
        m = pv.size
        if m == 0:
            continue
        mmax = max(mmax, m)
        ranks = _thin_ranks(m)
        expct = -np.log10((ranks + 1) / (m + 1))
        obs = -np.log10(np.maximum(pv[ranks], 1e-300))
        ax.plot(expct, obs, "o" if m < 50 else ".", ms=4 if m < 50 else 3,
                color=colors[i % len(colors)], label=f"{label} ({m:,} p-values)")
        top = max(top, float(obs.max()), float(expct.max()))
    if mmax:
        ranks = _thin_ranks(mmax, 200, 600)
        i = ranks + 1
        lo = beta.ppf(0.025, i, mmax - i + 1)
        hi = beta.ppf(0.975, i, mmax - i + 1)
        x = -np.log10(i / (mmax + 1))
        ax.fill_between(x, -np.log10(hi), -np.log10(lo), color="gray", alpha=0.25, lw=0,
                        label=f"95% pointwise band for {mmax:,} uniform p-values")
    ax.plot([0, top * 1.05], [0, top * 1.05], color=TARGET, lw=1.0, ls="--", label="uniform: observed = expected")
    if threshold:
        y = -math.log10(threshold)
        lab = threshold_label or f"threshold {threshold:.2g}"
        if y <= 1.6 * top:
            ax.axhline(y, color=BAD, lw=1.0, ls=":", label=lab)
            top = max(top, y)
        else:
            ax.text(0.98, 0.02, f"{lab}:\n−log10 = {y:.3g}, far above every point (off the plot)",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color=BAD)
    ax.set_xlim(0, top * 1.08)
    ax.set_ylim(0, top * 1.08)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("expected −log10(p) under uniform p-values")
    ax.set_ylabel("observed −log10(p), sorted")
    ax.grid(True, alpha=0.3)
    _legend(ax, loc="upper left", fontsize=7.5)


def plot_correlation(ax, offsets, values, bound, *, title: str, xlabel: str,
                     bound_label: str = "bound") -> None:
    """Correlation against offset, with the ± bound a correct implementation stays within.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    offsets, values : array_like
        Offsets (elements, or calls) and correlations there.
    bound : float or None
        Half-width of the band a correct implementation stays within.
    title, xlabel, bound_label : str
        Panel title, x-axis label (with units) and what the bound is.
    """
    offs = np.asarray(offsets, dtype=float)
    vals = as_floats(values)
    many = offs.size > 1500
    if bound is not None and math.isfinite(float(bound)):
        b = float(bound)
        ax.axhspan(-b, b, color=BAND, alpha=0.15, lw=0, label=f"± {b:.2g}: {bound_label}")
        out = np.abs(vals) > b
    else:
        out = np.zeros(vals.shape, dtype=bool)
    if many:
        ax.plot(offs, vals, lw=0.6, color=BAND, label="correlation", rasterized=True)
    else:
        ax.vlines(offs, 0, vals, color=BAND, lw=0.8)
        ax.plot(offs, vals, ".", ms=3, color=BAND, label="correlation")
    if out.any():
        ax.plot(offs[out], vals[out], "o", mfc="none", mec=BAD, ms=6, label="beyond the bound")
    ax.axhline(0, color=TARGET, lw=0.8)
    if offs.size and offs.min() >= 1 and offs.max() / max(offs.min(), 1) > 100:
        ax.set_xscale("log")
        _no_minor(ax)
    elif offs.size and offs.min() < 0 and offs.max() - offs.min() > 200:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("correlation (Pearson, −1 to 1)")
    ax.grid(True, alpha=0.3)
    fin = np.isfinite(vals)
    if fin.any():
        lim = max(float(np.abs(vals[fin]).max()), float(bound or 0)) * 1.35 or 1.0
        ax.set_ylim(-lim, lim)
        i = int(np.nanargmax(np.abs(vals)))
        if out.any():
            ax.annotate(f"largest: {vals[i]:.3g} at offset {offs[i]:g}", (offs[i], vals[i]),
                        xytext=(-10, 8 if vals[i] > 0 else -14), textcoords="offset points",
                        ha="right", fontsize=8, color=BAD)
    # below the axes, so it never hides a peak
    # (a fixed distance in points: clear of the tick labels and the axis label)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=4.0, ncol=3,
              fontsize=7.5, frameon=False)
