"""Shared report drawing: the verdict table's layout and the log-axis ticks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from mcdrop.report import style  # noqa: E402


def _rows():
    rows = []
    for section in ("seed example", "sweep p=0.1"):
        for name in ("keep_rate", "mean_layer", "support"):
            rows.append({"section": section, "check": name, "estimate": 0.5, "expected": 0.5,
                         "interval": {"low": 0.49, "high": 0.51}, "pvalue": 0.7, "verdict": "pass"})
    rows.append({"section": "control", "check": "mean_layer", "estimate": 2.5, "expected": 5.0,
                 "interval": {"low": 2.49, "high": 2.51}, "pvalue": 0.0, "verdict": "fail",
                 "expect": "fail"})
    rows.append({"section": "control", "check": "support", "estimate": 0.0, "expected": 0.0,
                 "pvalue": 1.0, "verdict": "pass", "expect": "fail"})  # undetected: unexpected
    return rows


def _texts(fig):
    return [(t.get_text(), t.get_color(), t.get_fontweight(), t.get_position()) for t in fig.texts]


def test_table_writes_each_section_once_per_group_and_keeps_rows_aligned():
    fig = plt.figure(figsize=style.A4)
    try:
        y_end = style._table(fig, _rows(), top=0.9, row_h=0.02)
        texts = _texts(fig)
    finally:
        plt.close(fig)
    assert abs(y_end - (0.9 - 0.02 * 1.25 - 0.02 * len(_rows()))) < 1e-12
    sections = [t for t in texts if t[0].startswith(("seed example", "sweep p=0.1"))]
    assert [t[0] for t in sections] == ["seed example", "sweep p=0.1"]
    # every check name is drawn once, in the row's colour, on its row's line
    checks = [t for t in texts if t[0] in ("keep_rate", "mean_layer", "support")]
    assert len(checks) == 7  # the unexpected row is one red string instead
    ys = sorted({round(t[3][1], 9) for t in texts if t[0] != "" and t[3][1] < 0.9})
    assert len(ys) == len(_rows())
    assert all(abs((a - b) - 0.02) < 1e-9 for a, b in zip(ys[1:], ys))
    # the unexpected row (a negative control that passed) is one bold red string
    red = [t for t in texts if t[1] == style.COLORS["fail"]]
    assert len(red) == 1 and red[0][2] == "bold"
    assert red[0][0].startswith("control") is False  # its section was written on the row above
    assert "support" in red[0][0] and "PASS (exp. fail)" in red[0][0]
    # the numbers of a plain row are one black string starting at the estimate column
    numbers = [t for t in texts if t[0].startswith("0.5") and t[1] == "black"]
    assert len(numbers) == 6 and "[0.49, 0.51]" in numbers[0][0] and "0.7" in numbers[0][0]
    # check and verdict cells in the row's colour: green for a pass, grey for a detected control
    assert {t[1] for t in checks[:6]} == {style.COLORS["pass"]}
    assert checks[6][1] == style.COLORS["expected"]
    verdicts = [t for t in texts if t[0] in ("PASS", "FAIL (expected)")]
    assert [t[0] for t in verdicts] == ["PASS"] * 6 + ["FAIL (expected)"]
    assert [t[1] for t in verdicts] == [style.COLORS["pass"]] * 6 + [style.COLORS["expected"]]
    assert all(t[2] == "bold" for t in verdicts)
    # every cell starts under its heading (monospaced: x = x0 + column offset in characters)
    head = next(t for t in texts if t[0].startswith("section"))
    x0 = head[3][0]

    def under(heading, cells):
        x = x0 + head[0].index(heading) * style._CHAR
        return all(abs(t[3][0] - x) < 1e-12 for t in cells)

    assert under("section", sections) and under("check", checks)
    assert under("estimate", numbers) and under("verdict", verdicts)
    cols = [head[0].index(h) - head[0].index("estimate") for h in ("expected", "interval", "p-value")]
    assert [numbers[0][0].find(v, c) for v, c in zip(("0.5", "[0.49", "0.7"), cols)] == cols
    assert red[0][3][0] == x0 and red[0][0].index("PASS") == head[0].index("verdict")


def test_minor_ticks_dropped_only_on_wide_log_axes():
    fig, (wide, narrow, lin) = plt.subplots(1, 3)
    try:
        wide.plot([1, 1e6], [1, 2])
        wide.set_xscale("log")
        narrow.plot([1, 2], [0.9, 1.05])
        narrow.set_yscale("log")
        lin.plot([1, 1e6], [1, 2])
        before = {ax: (ax.xaxis.get_minor_locator(), ax.yaxis.get_minor_locator()) for ax in (wide, narrow, lin)}
        for ax in (wide, narrow, lin):
            style._thin_log_ticks(ax)
        assert isinstance(wide.xaxis.get_minor_locator(), NullLocator)
        assert not isinstance(narrow.yaxis.get_minor_locator(), NullLocator)
        assert narrow.yaxis.get_minor_locator() is before[narrow][1]
        assert lin.xaxis.get_minor_locator() is before[lin][0]  # linear axes are left alone
    finally:
        plt.close(fig)


def test_finish_page_thins_ticks_before_saving():
    seen = []

    class FakePdf:
        def savefig(self, fig):
            seen.append(type(fig.axes[0].xaxis.get_minor_locator()))

    fig, ax = plt.subplots()
    ax.plot([1, 1e6], [1, 2])
    ax.set_xscale("log")
    style.finish_page(FakePdf(), fig)
    assert seen == [NullLocator]
    assert not plt.fignum_exists(fig.number)  # closed after saving


class _Pages:
    """Stands in for the PDF: keeps each page's texts."""

    def __init__(self):
        self.pages = []

    def savefig(self, fig):
        self.pages.append([t.get_text() for t in fig.texts])


def test_verdict_pages_draw_every_row_once_in_order():
    rows = [{"section": f"section {i // 10}", "check": f"check_{i:03d}", "verdict": "pass"} for i in range(130)]
    pdf = _Pages()
    style.verdict_pages(pdf, title="t", verdict="pass", verdict_note="note", lines=[("Seed", "0")], rows=rows)
    drawn = [t for page in pdf.pages for t in page if t.startswith("check_")]
    assert drawn == [r["check"] for r in rows]  # none lost or repeated at a page break
    assert len(pdf.pages) >= 3
    # each page after the first says which rows it holds, continuing where the last stopped
    shown = sum(t.startswith("check_") for t in pdf.pages[0])
    for page in pdf.pages[1:]:
        n = sum(t.startswith("check_") for t in page)
        assert f"Verdict table (rows {shown + 1}-{shown + n} of 130)" in page
        shown += n
