"""Page layout shared by the reports: A4 portrait, readable fonts, red failures."""

from __future__ import annotations

import contextlib
import textwrap

__all__ = ["pdf_pages", "new_page", "summary_block", "verdict_table_pages", "fmt_num", "fmt_interval"]

A4 = (8.27, 11.69)
ROWS_FIRST_PAGE = 26
ROWS_PER_PAGE = 48
_COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def pdf_pages(path, *, title: str):
    """A PdfPages with deterministic metadata (no creation date)."""
    _mpl()
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(
        path,
        metadata={"Title": title, "Creator": "mcdrop", "Producer": "mcdrop", "CreationDate": None},
    ) as pdf:
        yield pdf


def new_page(title: str, subtitle: str = ""):
    """A4 figure with one axes, a title and a wrapped explanatory subtitle."""
    plt = _mpl()
    fig = plt.figure(figsize=A4)
    fig.suptitle(title, fontsize=14, y=0.975)
    if subtitle:
        fig.text(0.5, 0.935, textwrap.fill(subtitle, 100), ha="center", va="top", fontsize=9)
    ax = fig.add_axes([0.12, 0.42, 0.82, 0.46])
    return fig, ax


def fmt_num(v, digits: int = 7) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f:
        return "nan"
    return f"{f:.{digits}g}"


def fmt_interval(ci) -> str:
    if not ci:
        return ""
    lo, hi = ci.get("low"), ci.get("high")
    if lo is None or hi is None:
        return ""
    return f"[{fmt_num(lo, 6)}, {fmt_num(hi, 6)}]"


_COLS = [
    ("section", 0.035, 26),
    ("check", 0.255, 24),
    ("estimate", 0.465, 12),
    ("interval", 0.575, 24),
    ("pvalue", 0.795, 8),
    ("verdict", 0.865, 8),
]


def _table(fig, rows, top: float, bottom: float = 0.04) -> None:
    n = max(len(rows), 1)
    h = min(0.0185, (top - bottom) / (n + 1))
    y = top
    heads = ["section", "check", "estimate", "interval", "p-value", "verdict"]
    for (key, x, _), head in zip(_COLS, heads):
        fig.text(x, y, head, fontsize=8, weight="bold", family="DejaVu Sans Mono", va="top")
    y -= h * 1.2
    for r in rows:
        expect = r.get("expect", "pass")
        unexpected = r["verdict"] != expect
        color = _COLORS["fail"] if (r["verdict"] == "fail" and expect == "pass") or unexpected else (
            _COLORS.get(r["verdict"], "black") if expect == "pass" else "#555555"
        )
        cells = {
            "section": r.get("section", ""),
            "check": r["check"],
            "estimate": fmt_num(r.get("estimate")),
            "interval": fmt_interval(r.get("interval")),
            "pvalue": fmt_num(r.get("pvalue"), 2),
            "verdict": r["verdict"].upper() + ("" if expect == "pass" else f" (exp. {expect})"),
        }
        for key, x, width in _COLS:
            text = str(cells[key])
            if len(text) > width and key != "verdict":
                text = text[: width - 1] + "~"
            fig.text(
                x, y, text, fontsize=7.2, family="DejaVu Sans Mono", va="top",
                color=color if key in ("verdict", "check") or unexpected else "black",
                weight="bold" if unexpected else "normal",
            )
        y -= h


def summary_block(pdf, *, title: str, verdict: str, verdict_note: str, lines, rows) -> None:
    """Page 1: title, overall verdict, what was tested, and the start of the table."""
    plt = _mpl()
    fig = plt.figure(figsize=A4)
    fig.text(0.5, 0.965, title, ha="center", va="top", fontsize=15, weight="bold")
    color = _COLORS.get(verdict, "black")
    fig.text(0.5, 0.925, f"Overall verdict: {verdict.upper()}", ha="center", va="top",
             fontsize=20, weight="bold", color=color)
    fig.text(0.5, 0.893, verdict_note, ha="center", va="top", fontsize=10, color=color)
    y = 0.86
    for label, text in lines:
        wrapped = textwrap.wrap(str(text), 92) or [""]
        fig.text(0.06, y, f"{label}:", fontsize=8.8, weight="bold", va="top")
        for j, w in enumerate(wrapped):
            fig.text(0.2, y - j * 0.0155, w, fontsize=8.8, va="top")
        y -= 0.0155 * len(wrapped) + 0.006
    # failures first, then the rest
    ordered = sorted(rows, key=lambda r: (r["verdict"] == r.get("expect", "pass"), ))
    first = ordered[:ROWS_FIRST_PAGE]
    fig.text(0.035, y - 0.01, "Verdict table (unexpected outcomes first; the full table follows)"
             if len(ordered) > ROWS_FIRST_PAGE else "Verdict table",
             fontsize=10, weight="bold", va="top")
    _table(fig, first, top=y - 0.035)
    pdf.savefig(fig)
    plt.close(fig)


def verdict_table_pages(pdf, rows, *, first_page_done: bool) -> None:
    """The full verdict table, in order, over as many pages as it needs."""
    plt = _mpl()
    if first_page_done and len(rows) <= ROWS_FIRST_PAGE:
        return
    for start in range(0, len(rows), ROWS_PER_PAGE):
        chunk = rows[start : start + ROWS_PER_PAGE]
        fig = plt.figure(figsize=A4)
        fig.text(0.5, 0.975, f"Verdict table (rows {start + 1}-{start + len(chunk)} of {len(rows)})",
                 ha="center", va="top", fontsize=12, weight="bold")
        _table(fig, chunk, top=0.94)
        pdf.savefig(fig)
        plt.close(fig)
