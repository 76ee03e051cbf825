"""What a PASS rules out, check by check: the detectable-effect cells and page of a report.

An audit records, for each check, its smallest detectable effect
(``check["extra"]["detectable_effect"]``: ``value``, ``unit``, ``exact``,
``text``, see :mod:`mcdrop.auditing.effects`).  This module formats it: a
short table cell (:func:`effect_cell`) for the text report and a page for
the PDF (:func:`effects_page`).  Nothing is computed here.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .style import A4, finish_page, header, text_height, text_lines

__all__ = ["effect_cell", "effects_page", "SHORT_UNITS"]

#: Short names of the statistical checks' units, for table cells.
SHORT_UNITS = {
    "relative keep-rate error": "rel. rate",
    "relative mean bias": "rel. bias",
    "relative variance error": "rel. var",
    "rms relative spread of keep rates": "rate spread",
    "correlation": "corr.",
}


def effect_cell(eff: dict | None) -> str:
    """A short cell for a detectable-effect record, e.g. ``"9.8e-04 rel. rate"``,
    ``"5 ulp"``, ``"1 raising call"``; ``""`` when the check has none recorded."""
    if not isinstance(eff, dict):
        return ""
    v, unit = eff.get("value"), str(eff.get("unit", ""))
    if v is None:
        return "none"
    if eff.get("exact"):
        n = int(v)
        return f"{n} {unit}" + ("" if n == 1 or unit == "ulp" else "s")
    if float(v) == 0.0:
        return f"any ({SHORT_UNITS.get(unit, unit)})"
    return f"{float(v):.2g} {SHORT_UNITS.get(unit, unit)}"


def effects_page(pdf, d: dict, *, title: str = "What a PASS rules out, check by check",
                 intro: str | None = None) -> None:
    """One page (more if needed): each check's smallest detectable effect and its plain reading.

    Parameters
    ----------
    pdf
        From :func:`mcdrop.report.style.pdf_pages`.
    d : dict
        ``AuditReport.to_dict()``; checks without a recorded effect are skipped.
    title, intro : str
        Page title and the paragraph under it.
    """
    rows = [(c["name"], (c.get("extra") or {}).get("detectable_effect")) for c in d["checks"]]
    rows = [(n, e) for n, e in rows if isinstance(e, dict)]
    if not rows:
        return
    power = d.get("power", 0.99)
    if intro is None:
        calls, draws = d.get("calls"), d.get("draws")
        budget = (f"{int(calls):,} training calls ({int(draws):,} mask draws)"
                  if isinstance(calls, int) and isinstance(draws, int) else "this budget")
        intro = (f"At {budget}, each check detects the effect on its line with probability at least "
                 f"{power} while judged at its share alpha/m of the family-wise bound (Holm's first "
                 "step, the worst case). A PASS therefore rules out effects of that size or more; smaller "
                 "ones can pass. Exact checks fail on one violation. docs/power.md shows the measured "
                 "detection curves behind these numbers.")
    fig = plt.figure(figsize=A4)
    y = header(fig, title, intro, width=105)
    for name, eff in rows:
        text = str(eff.get("text", ""))
        need = 10 * 1.3 / 72 / A4[1] + text_height(text, width=110, fontsize=8) + 0.008
        if y - need < 0.04:
            finish_page(pdf, fig)
            fig = plt.figure(figsize=A4)
            y = header(fig, title + " (continued)")
        fig.text(0.06, y, name, ha="left", va="top", fontsize=9.5, weight="bold", family="DejaVu Sans Mono")
        fig.text(0.42, y, effect_cell(eff), ha="left", va="top", fontsize=9.5, weight="bold")
        y -= 10 * 1.35 / 72 / A4[1]
        y = text_lines(fig, 0.06, y, text, width=110, fontsize=8, color="#24292f", indent=0.02) - 0.006
    finish_page(pdf, fig)
