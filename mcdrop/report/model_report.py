"""The PDF report of ``audit_model``: the site table first, then one page per failing site.

Pages, in order:

1. summary: the model, its inputs, the budget, the overall verdict, the
   model-level checks and the table of dropout sites with their verdicts;
2. one page per failing (or inconclusive) site, and one for failing
   model-level checks, saying in plain words what the pattern usually
   means and how it is fixed, with each check's own detail;
3. the verdict table of every check of every site.

It reads the ``ModelAuditReport.to_dict()`` record only; nothing is
computed here.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .effects import effect_cell
from .files import atomic_path
from .style import (
    A4,
    COLORS,
    date_line,
    finish_page,
    findings_pages,
    header,
    pdf_pages,
    table_row,
    text_lines,
    verdict_table_pages,
    versions_line,
)

__all__ = ["render_model_audit", "explain_model_check", "explain_site_check"]

_MONO = "DejaVu Sans Mono"
_LINE = 1.0 / 72 / A4[1]

_MODEL_TEXT = {
    "runs": "The model raised an error during the audit, so some of its checks could not run.",
    "sites_found": "No dropout site was found: the audit has nothing to check. Either the model has no "
                   "dropout, or its dropout is drawn by hand outside any module (a random mask inline in "
                   "forward); wrap such code in a small module with a rate attribute (p, drop_prob, ...) and "
                   "audit again.",
    "eval_deterministic": "Two forwards in evaluation mode gave different outputs: predictions change from call "
                          "to call, so dropout (or another random draw) is still active after model.eval(). "
                          "The site named is where the difference starts.",
    "mode_round_trip": "Switching to evaluation mode and back changed a dropout rate: something sets the rate to "
                       "0 for inference (for instance in forward when not self.training) and model.train() does "
                       "not restore it, so training goes on with less or no dropout (Megatron-LM#411). Never "
                       "write the rate in forward: pass dropout_p=self.p if self.training else 0.0 instead.",
    "recompute": "Activation checkpointing runs this dropout again during backward and draws a fresh mask, so "
                 "the gradient belongs to another mask than the forward's (OLMo-core#828, DeepSpeed#6811). Use "
                 "torch.utils.checkpoint.checkpoint(..., preserve_rng_state=True), the default, or save and "
                 "restore the generator state around the region.",
}

_SITE_TEXT = {
    "support": "Kept outputs are not the law's kept value (x/q for inverted dropout): the scaling is wrong. A "
               "ratio of 1 means no rescaling in training, i.e. standard dropout (Paddle's downgrade_in_infer); "
               "if that is intended, declare it with a variant = 'standard' attribute (or mode = "
               "'downgrade_in_infer'), else divide the kept values by q = 1 - p.",
    "keep_rate": "The site keeps a different fraction of its units than q = 1 - p: the rate it applies is not "
                 "the rate it claims (a rate changed at run time, a wrong p passed, or a keep probability "
                 "passed as p).",
    "mean": "Outputs are biased on average: with a right scale this follows from a wrong keep rate; with a "
            "right keep rate, from a wrong scale.",
    "variance": "The spread of the outputs is not the law's: a wrong keep rate or scale, or masks that are not "
                "Bernoulli draws.",
    "dispersion": "The number of kept units per call varies more (or less) than independent draws allow: the "
                  "units of one call are not drawn independently.",
    "element_independence": "The masks are correlated within a call: the unit of the mask is not the one "
                            "claimed (one draw per channel or per row instead of per element) or the random "
                            "stream repeats inside a call.",
    "call_independence": "The masks of successive calls are correlated: the random stream is reused (a Philox "
                         "offset that advances too little, a generator re-seeded on every call; the "
                         "pytorch#50110 family).",
    "structure": "Units are partly kept: the mask is not one draw per (n, c) slice (channel) or per sample "
                 "row (sample) as claimed, or a bigger unit is dropped together.",
    "finite": "The site returns NaN or infinite values.",
}


def explain_model_check(check: dict) -> str:
    """A model-level check's failure in plain words."""
    return _MODEL_TEXT.get(check["name"], "")


def explain_site_check(site: dict, check: dict) -> str:
    """One check of a site, in plain words (what the pattern usually means and the usual fix)."""
    name, detail = check["name"], str(check.get("detail", ""))
    if check["verdict"] == "inconclusive":
        return "Could not be checked: " + detail.removeprefix("not run: ") + "."
    if name == "eval_identity":
        if "training=True" in detail:
            return ("A functional dropout is called without training=self.training. F.dropout's training "
                    "argument defaults to True, so dropout stays on after model.eval() (nanoGPT#240, "
                    "pytorch-image-models#1978). Pass training=self.training, or use an nn.Dropout module.")
        if "dropout_p" in detail:
            return ("F.scaled_dot_product_attention applies dropout whenever dropout_p > 0, whatever the mode "
                    "(torchtune#1791). Pass dropout_p=self.p if self.training else 0.0.")
        if "constant factor" in detail:
            return ("In evaluation mode the site multiplies by a constant: that is standard dropout's q x "
                    "(Paddle's downgrade_in_infer). If that is intended, declare variant = 'standard' (or "
                    "mode = 'downgrade_in_infer') on the module; else use inverted dropout (x/q in training, "
                    "x in evaluation).")
        if "random numbers" in detail:
            return "Random numbers are drawn in evaluation mode: a hand-written dropout that ignores self.training."
        return "In evaluation mode the site does not return its input (the law's evaluation output)."
    return _SITE_TEXT.get(name, "")


def _site_rows(fig, sites, y: float) -> float:
    cols = [("site", 47), ("kind", 8), ("p", 6), ("calls", 6), ("shown", 6), ("verdict", 13), ("failed", 36)]
    fs = 7.2
    head = "".join(h.ljust(w + 1) for h, w in cols)
    fig.text(0.035, y, head, fontsize=fs, family=_MONO, weight="bold", va="top")
    y -= fs * 1.45 * _LINE
    for s in sites:
        p = "" if s.get("p") is None else f"{s['p']:.3g}"
        obs = "" if s.get("observed_fraction") is None else f"{s['observed_fraction']:.0%}"
        failed = ", ".join(c["name"] for c in s["checks"] if c["verdict"] != "pass")
        name = s["name"] if len(s["name"]) <= 47 else s["name"][:46] + "~"
        cells = [name, s["kind"], p, str(s.get("calls", "")), obs, s["verdict"].upper(), failed[:36]]
        line = "".join(str(t).ljust(w + 1) for t, (_, w) in zip(cells, cols)).rstrip()
        color = COLORS.get(s["verdict"], "black")
        fig.text(0.035, y, line, fontsize=fs, family=_MONO, va="top", color=color if s["verdict"] != "pass"
                 else "black", weight="bold" if s["verdict"] == "fail" else "normal")
        y -= fs * 1.35 * _LINE
        if y < 0.06:
            break
    return y


def _first_page(pdf, d: dict, timestamp: bool) -> None:
    fig = plt.figure(figsize=A4)
    fig.text(0.5, 0.97, "mcdrop audit_model report", ha="center", va="top", fontsize=15, weight="bold")
    color = COLORS.get(d["verdict"], "black")
    fig.text(0.5, 0.935, f"Overall verdict: {d['verdict'].upper()}", ha="center", va="top", fontsize=20,
             weight="bold", color=color)
    sites = d["sites"]
    n_fail = sum(1 for s in sites if s["verdict"] == "fail")
    n_checks = len(d["checks"]) + sum(len(s["checks"]) for s in sites)
    note = (f"{len(sites)} dropout sites, {n_fail} failing; {n_checks} checks decided as one family at "
            f"family-wise false-alarm bound alpha = {d['alpha']:g} (Holm).")
    y = text_lines(fig, 0.06, 0.9, note, width=92, fontsize=10, color=color)
    lines = [
        ("Model", f"{d['target']} ({d['framework']})"),
        ("Inputs", ", ".join(d["inputs"])),
        ("Budget", f"{d['calls']:,} training forwards; the claimed rate of each site is "
                   + ("p = %g for all" % d["p"] if d.get("p") is not None else "its own rate before evaluation")),
        ("Seed", str(d["seed"])),
        ("Versions", versions_line(d.get("environment", {}))),
        ("Date", date_line(d, timestamp)),
    ]
    for label, text in lines:
        fig.text(0.06, y, f"{label}:", fontsize=8.8, weight="bold", va="top")
        y = text_lines(fig, 0.2, y, str(text), width=90, fontsize=8.8) - 0.002
    y -= 0.008
    fig.text(0.035, y, "Model-level checks", fontsize=10, weight="bold", va="top")
    y -= 0.022
    for c in d["checks"]:
        col = COLORS.get(c["verdict"], "black")
        y = text_lines(fig, 0.035, y, f"{c['name']:<19} {c['verdict'].upper():<13} {c.get('detail', '')}",
                       width=128, fontsize=7.2, family=_MONO, color=col if c["verdict"] != "pass" else "black")
    y -= 0.008
    fig.text(0.035, y, "Dropout sites (execution order; 'shown': mask entries the outputs revealed)",
             fontsize=10, weight="bold", va="top")
    y = _site_rows(fig, sites, y - 0.022)
    if not sites:
        text_lines(fig, 0.035, y, "No dropout site found.", fontsize=9)
    finish_page(pdf, fig)


def _site_page(pdf, site: dict) -> None:
    fig = plt.figure(figsize=A4)
    law = f"{site.get('variant')} dropout, p = {site.get('p')}, structure {site.get('structure')}" \
        if site.get("variant") else "no law (random draws outside a dropout site)"
    y = header(fig, f"Site {site['name']}: {site['verdict'].upper()}",
               f"{site['kind']} site ({site['op']}); claimed {law}; input {site.get('shape')} {site.get('dtype')}; "
               f"{site.get('calls', 0):,} training calls. {site.get('note', '')}")
    y = text_lines(fig, 0.06, y, "Evidence that this is a dropout site: " + "; ".join(site.get("evidence", [])),
                   width=110, fontsize=8, color="#57606a")
    y -= 0.01
    for c in site["checks"]:
        if c["verdict"] == "pass":
            continue
        col = COLORS.get(c["verdict"], "black")
        y = text_lines(fig, 0.06, y, f"{c['name']}: {c['verdict'].upper()}", width=100, fontsize=10.5,
                       weight="bold", color=col)
        text = explain_site_check(site, c)
        if text:
            y = text_lines(fig, 0.06, y, text, width=104, fontsize=9.5, indent=0.02)
        y = text_lines(fig, 0.06, y, "Check detail: " + str(c.get("detail", "")), width=118, fontsize=7.8,
                       color="#57606a", indent=0.02)
        y -= 0.012
        if y < 0.08:
            break
    passed = [c["name"] + (f" ({effect_cell(eff)})" if (eff := (c.get("extra") or {}).get("detectable_effect"))
                           else "") for c in site["checks"] if c["verdict"] == "pass"]
    if passed and y > 0.08:
        text_lines(fig, 0.06, y, "Passed, with the smallest effect each rules out at power 0.99: "
                   + ", ".join(passed) + ".", width=110, fontsize=8.5)
    finish_page(pdf, fig)


def render_model_audit(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF report of an ``audit_model`` result dict (``ModelAuditReport.to_dict()``) to ``path``."""
    with atomic_path(path) as tmp, pdf_pages(tmp, title="mcdrop audit_model report", timestamp=timestamp) as pdf:
        _first_page(pdf, result, timestamp)
        bad = [c for c in result["checks"] if c["verdict"] != "pass"]
        if bad:
            findings_pages(pdf, [{"heading": f"{c['name']}: {c['verdict'].upper()}",
                                  "color": COLORS.get(c["verdict"], "black"),
                                  "explanation": explain_model_check(c), "detail": str(c.get("detail", ""))}
                                 for c in bad], title="Model-level checks that did not pass")
        for s in result["sites"]:
            if s["verdict"] != "pass":
                _site_page(pdf, s)
        rows = [table_row(c, expect="pass", section="(model)") for c in result["checks"]]
        rows += [table_row(c, expect="pass", section=s["name"]) for s in result["sites"] for c in s["checks"]]
        verdict_table_pages(pdf, rows, legend=(
            "Every check of every site and of the model, decided as one family at family-wise alpha (Holm); "
            "red, bold: failed; amber: inconclusive."))
