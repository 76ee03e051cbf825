"""Page layout shared by the reports: A4 portrait, readable fonts, red failures.

Every report is a sequence of A4 pages built with these helpers:

- :func:`pdf_pages` opens the PDF (deterministic metadata, fonts embedded as
  TrueType so the text can be searched and extracted) and numbers the pages;
- :func:`summary_block` draws page 1 (title, overall verdict, what was
  tested, the start of the verdict table) and :func:`verdict_table_pages`
  continues the table;
- :func:`new_page` and :func:`grid_page` give a titled page with one or
  several axes; :func:`header` places a title and a wrapped subtitle and
  returns the height they used, so nothing overlaps;
- :func:`missing_panel` says on the page why a plot could not be drawn.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import textwrap

import matplotlib

matplotlib.use("Agg", force=False)  # before pyplot: reports render without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from .. import __version__  # noqa: E402

__all__ = [
    "pdf_pages",
    "new_page",
    "grid_page",
    "header",
    "text_lines",
    "text_height",
    "missing_panel",
    "finish_page",
    "summary_block",
    "verdict_table_pages",
    "verdict_pages",
    "table_row",
    "section_rows",
    "versions_line",
    "stream_line",
    "STREAMS",
    "findings_pages",
    "date_line",
    "fmt_num",
    "fmt_pvalue",
    "fmt_interval",
    "COLORS",
    "A4",
]

A4 = (8.27, 11.69)
ROWS_FIRST_PAGE = 30
ROWS_PER_PAGE = 56
COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700", "expected": "#57606a"}

#: Matplotlib settings of every report page: TrueType fonts (text stays
#: searchable), sizes readable on paper, no randomness in the output.
RC = {
    "pdf.fonttype": 42,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
    "axes.grid": False,
    "svg.hashsalt": "mcdrop",
    "path.simplify": True,
}

_MONO = "DejaVu Sans Mono"
_LINE = 1.0 / 72 / A4[1]  # one point as a fraction of the page height


class _Pages:
    """A PdfPages that stamps a footer (report name and page number) on each page."""

    def __init__(self, pdf, footer: str):
        self._pdf = pdf
        self._footer = footer
        self.pages = 0

    def savefig(self, fig, **kw) -> None:
        self.pages += 1
        fig.text(0.5, 0.012, f"{self._footer}  ·  page {self.pages}", ha="center", va="bottom",
                 fontsize=7, color="#57606a")
        self._pdf.savefig(fig, **kw)

    def __getattr__(self, name):
        return getattr(self._pdf, name)


@contextlib.contextmanager
def pdf_pages(path, *, title: str, timestamp: bool = False):
    """Open a multi-page PDF with deterministic metadata.

    Parameters
    ----------
    path : str or path-like
        Where to write (callers pass the temporary path of
        :func:`mcdrop.report.files.atomic_path`).
    title : str
        The document title (PDF metadata and page footers).
    timestamp : bool, default False
        Record the creation date in the metadata.  Off by default, so the
        same result always gives the same bytes.

    Yields
    ------
    object
        Behaves like :class:`matplotlib.backends.backend_pdf.PdfPages`;
        ``savefig(fig)`` also stamps the footer and page number.
    """
    created = None
    if timestamp:
        created = datetime.datetime.now(datetime.timezone.utc)
    meta = {"Title": title, "Creator": f"mcdrop {__version__}", "Producer": "mcdrop (matplotlib)",
            "CreationDate": created}
    with matplotlib.rc_context(RC):
        with PdfPages(path, metadata=meta) as pdf:
            yield _Pages(pdf, f"{title} (mcdrop {__version__})")


def finish_page(pdf, fig) -> None:
    """Save ``fig`` as the next page of ``pdf`` and close it.

    Log axes that span three decades or more lose their minor ticks first:
    the decade labels say enough, and the minor ticks' artists cost about
    a third of a plot page's drawing time.
    """
    for ax in fig.axes:
        _thin_log_ticks(ax)
    pdf.savefig(fig)
    plt.close(fig)


def _thin_log_ticks(ax) -> None:
    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        if lo > 0 and math.isfinite(hi) and math.log10(hi / lo) >= 3:
            axis.set_minor_locator(NullLocator())


def header(fig, title: str, subtitle: str = "", *, top: float = 0.975, width: int = 100) -> float:
    """Draw a page title and a wrapped subtitle; return the y just below them.

    Heights are computed from the font sizes, so the subtitle never runs
    into the title whatever its length.
    """
    fig.text(0.5, top, title, ha="center", va="top", fontsize=14, weight="bold")
    y = top - 14 * 1.45 * _LINE
    if subtitle:
        lines = _wrap(subtitle, width)
        fig.text(0.5, y, "\n".join(lines), ha="center", va="top", fontsize=9, linespacing=1.35)
        y -= len(lines) * 9 * 1.35 * _LINE
    return y - 0.008


def _wrap(text: str, width: int) -> list[str]:
    lines = []
    for para in str(text).split("\n"):
        lines += textwrap.wrap(para, width) or [""]
    return lines


def text_height(text: str, *, width: int = 100, fontsize: float = 9) -> float:
    """Height (figure fraction) :func:`text_lines` uses for ``text``."""
    return len(_wrap(text, width)) * fontsize * 1.3 * _LINE + 0.004


def text_lines(fig, x: float, y: float, text: str, *, width: int = 100, fontsize: float = 9,
               color: str = "black", weight: str = "normal", family: str | None = None,
               indent: float = 0.0) -> float:
    """Draw ``text`` wrapped to ``width`` characters from (x, y) down; return the next y."""
    lines = _wrap(text, width)
    fig.text(x + indent, y, "\n".join(lines), ha="left", va="top", fontsize=fontsize,
             color=color, weight=weight, linespacing=1.3, **({"family": family} if family else {}))
    return y - len(lines) * fontsize * 1.3 * _LINE - 0.004


def new_page(title: str, subtitle: str = ""):
    """An A4 figure with a title, a wrapped subtitle and one axes (upper half).

    Returns
    -------
    fig, ax
    """
    fig = plt.figure(figsize=A4)
    y = header(fig, title, subtitle)
    top = y - 0.03
    ax = fig.add_axes([0.12, max(top - 0.46, 0.08), 0.82, min(0.46, top - 0.08)])
    return fig, ax


def grid_page(title: str, subtitle: str = "", nrows: int = 1, ncols: int = 1, *,
              bottom: float = 0.07, hspace: float = 0.45, wspace: float = 0.3,
              height_ratios=None, left: float = 0.1, right: float = 0.95, top_pad: float = 0.035):
    """An A4 figure with a title, a wrapped subtitle and a grid of axes below them.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : 2-D ndarray of Axes, shape ``(nrows, ncols)``
    """
    fig = plt.figure(figsize=A4)
    y = header(fig, title, subtitle)
    gs = fig.add_gridspec(nrows, ncols, left=left, right=right, bottom=bottom, top=y - top_pad,
                          hspace=hspace, wspace=wspace, height_ratios=height_ratios)
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):
        for j in range(ncols):
            axes[i, j] = fig.add_subplot(gs[i, j])
    return fig, axes


def missing_panel(ax, title: str, reason: str) -> None:
    """Replace a plot by a framed note saying why it is not there."""
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_linestyle("--")
        s.set_color("#8c959f")
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(f"Not available: {reason}", 60), ha="center", va="center",
            transform=ax.transAxes, fontsize=9, color="#57606a")


def date_line(result: dict, timestamp: bool) -> str:
    """The "Date" line of page 1.

    With ``timestamp`` it gives the rendering date and the run time; without
    it neither (both change from run to run, and the report must not).
    """
    if not timestamp:
        return ("not recorded: reports are deterministic (same seed, same PDF); "
                "`mcdrop report --timestamp` adds the date and the run time")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    took = result.get("elapsed_s")
    return f"{now} (rendered)" + (f"; the run took {float(took):.1f} s" if took is not None else "")


def fmt_num(v, digits: int = 7) -> str:
    """A number with ``digits`` significant digits ('' for None, 'nan' for NaN)."""
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:
        return "nan"
    return f"{f:.{digits}g}"


def fmt_pvalue(v) -> str:
    """A p-value with two significant digits ('' for None, 'nan' for NaN, '0' for an underflowed 0)."""
    if v is None:
        return ""
    f = float(v)
    if f != f:
        return "nan"
    if f == 0:
        return "0"
    return f"{f:.2g}"


def fmt_interval(ci, digits: int = 6) -> str:
    """``[low, high]`` of an interval dict ('' if absent)."""
    if not ci:
        return ""
    lo, hi = ci.get("low"), ci.get("high")
    if lo is None or hi is None:
        return ""
    return f"[{fmt_num(lo, digits)}, {fmt_num(hi, digits)}]"


# ---------------------------------------------------------------------------
# the verdict table
# ---------------------------------------------------------------------------

# (key, heading, width in characters)
_COLS = [
    ("section", "section", 22),
    ("check", "check", 24),
    ("estimate", "estimate", 11),
    ("expected", "expected", 9),
    ("interval", "interval", 24),
    ("pvalue", "p-value", 8),
    ("verdict", "verdict", 15),
]
_TABLE_FS = 7.4
_CHAR = 0.60205 * _TABLE_FS / 72 / A4[0]  # DejaVu Sans Mono advance (1233/2048 em), page fraction


def _cell_text(r: dict, key: str) -> str:
    expect = r.get("expect", "pass")
    if key == "estimate":
        return fmt_num(r.get("estimate"), 6)
    if key == "expected":
        return fmt_num(r.get("expected"), 5)
    if key == "interval":
        return fmt_interval(r.get("interval"), 5)
    if key == "pvalue":
        return fmt_pvalue(r.get("pvalue"))
    if key == "verdict":
        v = str(r["verdict"]).upper()
        if expect != "pass":
            v += " (expected)" if r["verdict"] == expect else f" (exp. {expect})"
        return v
    return str(r.get(key, ""))


def _row_color(r: dict) -> tuple[str, bool]:
    expect = r.get("expect", "pass")
    if r["verdict"] == "inconclusive" and expect == "pass":
        return COLORS["inconclusive"], False
    if r["verdict"] != expect:
        return COLORS["fail"], True
    if expect != "pass":
        return COLORS["expected"], False
    return COLORS.get(r["verdict"], "black"), False


def _table(fig, rows, top: float, bottom: float = 0.035, *, row_h: float | None = None) -> float:
    """Draw table rows from ``top`` down; return the y below the last row.

    A row is a few monospaced strings: each run of plain cells in black
    (section; estimate to p-value) and the coloured cells (check, verdict),
    each at its column — three or four text objects per row instead of
    seven, with no padding under the coloured cells, keeps rendering fast.
    Unexpected rows are one red, bold string.  A section name is written on the first row of its
    group (and at the top of each page), not repeated on every row.
    """
    n = max(len(rows), 1)
    h = row_h if row_h is not None else min(0.0165, (top - bottom) / (n + 1.5))
    cols = _COLS if any(r.get("section") for r in rows) else _COLS[1:]
    gap = 2 if cols is _COLS else 5  # without the section column there is room to spare
    x0 = 0.035
    starts, c = [], 0
    for _, _, w in cols:
        starts.append(c)
        c += w + gap
    y = top
    fig.text(x0, y, "".join(head.ljust(w + gap) for _, head, w in cols), fontsize=_TABLE_FS,
             weight="bold", family=_MONO, va="top")
    y -= h * 1.25
    fig.add_artist(_hline(fig, x0, x0 + (starts[-1] + cols[-1][2]) * _CHAR, y + 0.25 * h))
    coloured = ("check", "verdict")
    previous_section = None
    for r in rows:
        color, unexpected = _row_color(r)
        cells = []
        for key, _, width in cols:
            text = _cell_text(r, key)
            if key == "section":
                text, previous_section = ("" if text == previous_section else text), text
            if len(text) > width and key != "verdict":
                text = text[: width - 1] + "~"
            cells.append((key, text, width))
        if unexpected:
            line = "".join(t.ljust(w + gap) for _, t, w in cells).rstrip()
            fig.text(x0, y, line, fontsize=_TABLE_FS, family=_MONO, va="top", color=color, weight="bold")
        else:
            # runs of plain cells in black, each run one text from its first column
            # (no blanks under the coloured cells: every glyph costs drawing time)
            run, run_start = "", 0
            for (k, t, w), st in zip([*cells, ("check", "", 0)], [*starts, 0]):
                if k in coloured:
                    if run.strip():
                        fig.text(x0 + run_start * _CHAR, y, run.rstrip(), fontsize=_TABLE_FS,
                                 family=_MONO, va="top", color="black")
                    run = ""
                    if t:
                        fig.text(x0 + st * _CHAR, y, t, fontsize=_TABLE_FS, family=_MONO, va="top",
                                 color=color, weight="bold" if k == "verdict" else "normal")
                else:
                    if not run:
                        run_start = st
                    run += t.ljust(w + gap)
        y -= h
    return y


def _hline(fig, x0, x1, y):
    return Line2D([x0, x1], [y, y], transform=fig.transFigure, color="#8c959f", lw=0.6)


_LEGEND = ("Red, bold: an unexpected outcome (a law that failed, or a negative control that "
           "was not detected).  Grey 'FAIL (expected)': a negative control (a deliberately broken "
           "scale) that was detected, as it must be.  Intervals hold simultaneously for the whole "
           "family at level 1 - alpha (Bonferroni); p-values are per check, judged with Holm.")


def summary_block(pdf, *, title: str, verdict: str, verdict_note: str, lines, rows,
                  legend: str | None = None) -> int:
    """Page 1: title, overall verdict, what was tested, and the start of the table.

    Parameters
    ----------
    pdf
        From :func:`pdf_pages`.
    title : str
        Report title.
    verdict : {"pass", "fail", "inconclusive"}
        Overall verdict (drawn large, in its colour).
    verdict_note : str
        One line under the verdict.
    lines : sequence of (label, text)
        The "what was tested" block.
    rows : sequence of dict
        Table rows: ``check``, ``verdict`` and optionally ``section``,
        ``estimate``, ``expected``, ``interval`` (dict with low/high),
        ``pvalue``, ``expect`` ("pass", or "fail" for a negative control).
    legend : str, optional
        Text under the table (default: what the colours mean).

    Returns
    -------
    int
        How many rows page 1 holds; pass it as ``skip`` to
        :func:`verdict_table_pages`.
    """
    fig = plt.figure(figsize=A4)
    fig.text(0.5, 0.97, title, ha="center", va="top", fontsize=15, weight="bold")
    color = COLORS.get(verdict, "black")
    fig.text(0.5, 0.935, f"Overall verdict: {str(verdict).upper()}", ha="center", va="top",
             fontsize=20, weight="bold", color=color)
    y = text_lines(fig, 0.06, 0.9, verdict_note, width=92, fontsize=10, color=color)
    y -= 0.006
    for label, text in lines:
        fig.text(0.06, y, f"{label}:", fontsize=8.8, weight="bold", va="top")
        y = text_lines(fig, 0.215, y, str(text), width=88, fontsize=8.8) - 0.002
    rows = list(rows)
    legend = _LEGEND if legend is None else legend
    legend_h = (len(textwrap.wrap(legend, 120)) + 1) * 7.5 * 1.3 * _LINE
    room = y - 0.06 - 0.035 - legend_h
    row_h = 0.0155
    fit = max(int(room / row_h) - 2, 0)
    first = rows[: min(ROWS_FIRST_PAGE, fit)]
    more = len(rows) - len(first)
    heading = "Verdict table" + (f" (rows 1-{len(first)} of {len(rows)}; continued on the next page)"
                                 if more else "")
    fig.text(0.035, y - 0.012, heading, fontsize=10, weight="bold", va="top")
    y = _table(fig, first, top=y - 0.04, row_h=row_h)
    text_lines(fig, 0.035, y - 0.006, legend, width=120, fontsize=7.5, color="#57606a")
    finish_page(pdf, fig)
    return len(first)


def section_rows(result: dict) -> list[dict]:
    """The verdict-table rows of a sectioned result (verify, law suite): every check of every section.

    A check is expected to pass, or to fail in a negative-control section,
    unless its record says otherwise (``expect``).
    """
    return [table_row(c, expect=c.get("expect", "fail" if s.get("control") else "pass"), section=s["title"])
            for s in result["sections"] for c in s["checks"]]


_CORE_PACKAGES = ("mcdrop", "numpy", "numba", "scipy", "python")


#: What each counter-to-draw layout is (``stream`` of a simulation record).
STREAMS = {
    1: "stream 1 (one 32-bit Philox word per draw)",
    2: "stream 2 (bit-plane masks: 64 samples a Philox block, lazily compared with the threshold)",
}


def stream_line(result: dict) -> str | None:
    """The "Streams" line of page 1: the draw layouts of a result's simulations (None without any)."""
    sims = result.get("simulations") or {}
    used = sorted({int(s.get("stream", 1)) for s in sims.values()})
    return "; ".join(STREAMS.get(v, f"stream {v}") for v in used) if used else None


def versions_line(env: dict, *, others: str = ", ") -> str:
    """The "Versions" line of page 1 from a result's ``environment``.

    mcdrop and its core packages first, then any other package (the
    framework under audit) after ``others``; "not recorded" if none.
    """
    line = ", ".join(f"{k} {env[k]}" for k in _CORE_PACKAGES if k in env)
    extra = [f"{k} {v}" for k, v in env.items()
             if k not in (*_CORE_PACKAGES, "machine", "cpu_threads", "framework")]
    if extra:
        line += others + ", ".join(extra)
    elif env.get("framework"):
        line += others + str(env["framework"])
    return line or "not recorded"


def table_row(check: dict, *, expect: str, section: str | None = None) -> dict:
    """The verdict-table row of a check record (``CheckResult.to_dict()``), see :func:`summary_block`."""
    row = {} if section is None else {"section": section}
    row.update({
        "check": check["name"],
        "estimate": check.get("estimate"),
        "expected": check.get("expected"),
        "interval": check.get("confidence_interval"),
        "pvalue": check.get("pvalue"),
        "verdict": check["verdict"],
        "expect": expect,
    })
    return row


def verdict_pages(pdf, *, title: str, verdict: str, verdict_note: str, lines, rows,
                  legend: str | None = None) -> None:
    """Page 1 (:func:`summary_block`) and the rest of the verdict table (:func:`verdict_table_pages`)."""
    rows = list(rows)
    shown = summary_block(pdf, title=title, verdict=verdict, verdict_note=verdict_note, lines=lines,
                          rows=rows, legend=legend)
    verdict_table_pages(pdf, rows, skip=shown, legend=legend)


def verdict_table_pages(pdf, rows, *, skip: int = 0, legend: str | None = None) -> None:
    """Continue the verdict table over as many pages as it needs.

    Parameters
    ----------
    pdf
        From :func:`pdf_pages`.
    rows : sequence of dict
        The whole table (as given to :func:`summary_block`).
    skip : int, default 0
        How many rows page 1 already shows (the return value of
        :func:`summary_block`).
    legend : str, optional
        Text under the last page's table.
    """
    rows = list(rows)
    legend = _LEGEND if legend is None else legend
    for start in range(skip, len(rows), ROWS_PER_PAGE):
        chunk = rows[start : start + ROWS_PER_PAGE]
        fig = plt.figure(figsize=A4)
        fig.text(0.5, 0.975, f"Verdict table (rows {start + 1}-{start + len(chunk)} of {len(rows)})",
                 ha="center", va="top", fontsize=12, weight="bold")
        y = _table(fig, chunk, top=0.94, row_h=0.0147)
        if start + ROWS_PER_PAGE >= len(rows):
            text_lines(fig, 0.035, y - 0.006, legend, width=120, fontsize=7.5, color="#57606a")
        finish_page(pdf, fig)


def findings_pages(pdf, entries, *, title: str = "Failures and what they usually mean",
                   intro: str = "") -> None:
    """Pages listing failed checks, each with its plain-language reading.

    Parameters
    ----------
    pdf
        From :func:`pdf_pages`.
    entries : sequence of dict
        ``heading`` (str), ``color`` (str), ``explanation`` (str) and
        ``detail`` (str, the check's own detail line, shown in grey, after
        ``detail_label``, default "Check detail: ").
    title, intro : str
        Page title and the paragraph under it.
    """
    entries = list(entries)
    i = 0
    first = True
    while i < len(entries) or first:
        fig = plt.figure(figsize=A4)
        y = header(fig, title if first else f"{title} (continued)", intro if first else "")
        y -= 0.01
        while i < len(entries):
            e = entries[i]
            need = (text_height(e["heading"], width=100, fontsize=9.5)
                    + text_height(e.get("explanation", ""), width=108, fontsize=9)
                    + text_height("Check detail: " + e.get("detail", ""), width=120, fontsize=7.8)
                    + 0.012)
            if y - need < 0.05 and not (first and i == 0):
                break
            y = text_lines(fig, 0.06, y, e["heading"], width=100, fontsize=9.5, weight="bold",
                           color=e.get("color", "black"))
            if e.get("explanation"):
                y = text_lines(fig, 0.06, y, e["explanation"], width=108, fontsize=9, indent=0.02)
            if e.get("detail"):
                y = text_lines(fig, 0.06, y, e.get("detail_label", "Check detail: ") + e["detail"],
                               width=120, fontsize=7.8, color="#57606a", indent=0.02)
            y -= 0.012
            i += 1
            first = False
        first = False
        finish_page(pdf, fig)
