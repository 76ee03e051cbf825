"""What an audit found: :class:`AuditReport` (verdicts, budget, plot data, JSON, PDF)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..report import ResultFile
from ..report.effects import effect_cell
from ..results import CheckedResult
from ..stats.power import POWER

__all__ = ["AuditReport", "rounded"]


@dataclass(frozen=True, eq=False)
class AuditReport(CheckedResult, ResultFile):
    """What :func:`audit` found.

    Attributes
    ----------
    target : str
        Readable name of the implementation.
    checks : list of CheckResult
        Every check, in battery order.
    passed : bool
        No check failed.
    verdict : {"pass", "fail", "inconclusive"}
        ``"fail"`` if a check failed, else ``"inconclusive"`` if one was
        inconclusive (a tolerance band straddled, or a check could not run),
        else ``"pass"``.
    detectable_bias : float or None
        Smallest relative mean bias the ``mean`` check detects with power
        0.99 at its share of ``alpha`` for this budget.
    detectable_rate_error : float or None
        The same for a relative keep-rate error (``keep_rate`` check).
    p, q, variant, structure, shape, dtype, calls, draws, seed, alpha, tolerance
        What was audited and with what budget (``calls`` is the number of
        training calls made; ``draws`` the mask draws, units x calls).
    """

    target: str
    p: float
    q: float
    variant: str
    structure: str
    shape: tuple
    dtype: str
    calls: int
    calls_requested: int
    draws: int
    seed: Any
    alpha: float
    tolerance: float | None
    checks: tuple
    detectable_bias: float | None
    detectable_rate_error: float | None
    elapsed_s: float
    environment: dict
    plots: dict = field(default_factory=dict)

    def table(self) -> str:
        head = (f"{'check':<22} {'verdict':<13} {'estimate':>12} {'expected':>10} {'interval':>27} {'p-value':>9}"
                f"  detects (power {POWER})")
        lines = [head, "-" * len(head)]
        order = [c for c in self.checks if c.verdict == "fail"] + [c for c in self.checks if c.verdict != "fail"]
        for c in order:
            est = "" if c.estimate is None else f"{c.estimate:.8g}"
            exp = "" if c.expected is None else f"{c.expected:.6g}"
            ci = "" if c.confidence_interval is None else (
                f"[{c.confidence_interval.low:.6g}, {c.confidence_interval.high:.6g}]")
            pv = "" if c.pvalue is None else f"{c.pvalue:.2g}"
            lines.append(f"{c.name:<22} {c.verdict.upper():<13} {est:>12} {exp:>10} {ci:>27} {pv:>9}"
                         f"  {effect_cell(c.extra.get('detectable_effect'))}".rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        m = len(self.checks)
        lines = [
            f"mcdrop audit: {self.verdict.upper()}  {self.target}",
            f"claimed: {self.variant} dropout, p={self.p:g} (keep q={self.q:g}), structure="
            f"{self.structure}; {self._input_text()} {self.dtype}, {self.calls:,} training calls "
            f"({self.draws:,} mask draws), seed={self.seed}, {self.elapsed_s:.2f} s",
            f"family-wise false-alarm bound alpha={self.alpha:g} over {m} checks (Holm"
            + (f"; tolerance band +-{self.tolerance:g} for mean and keep rate" if self.tolerance else "")
            + ").",
        ]
        if self.detectable_bias is not None:
            txt = f"detects with power {POWER}: relative mean bias {self.detectable_bias:.2g}"
            if self.detectable_rate_error is not None:
                txt += f", relative keep-rate error {self.detectable_rate_error:.2g}"
            lines.append(txt + "; what a PASS rules out, per check: column 'detects'")
        failed = [c for c in self.checks if c.verdict == "fail"]
        if failed:
            lines.append("")
            lines.append("FAILED:")
            for c in failed:
                lines.append(f"  {c.name}: {c.detail}")
        incon = [c for c in self.checks if c.verdict == "inconclusive"]
        if incon:
            lines.append("INCONCLUSIVE:")
            for c in incon:
                lines.append(f"  {c.name}: {c.detail}")
        lines.append("")
        lines.append(self.table())
        return "\n".join(lines)

    def _input_text(self) -> str:
        if self.variant == "dropconnect" and len(self.shape) == 2:
            n = self.shape[0]
            return f"diagonal input batch ({n}, {n}) -> outputs {tuple(self.shape)}"
        return f"input {tuple(self.shape)}"

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the schema :mod:`mcdrop.report` renders)."""
        d = {
            "type": "mcdrop.AuditReport",
            "mcdrop_version": __version__,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "power": POWER,
            "detectable_bias": self.detectable_bias,
            "detectable_rate_error": self.detectable_rate_error,
            "target": self.target,
            "p": self.p,
            "q": self.q,
            "variant": self.variant,
            "structure": self.structure,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "calls": self.calls,
            "calls_requested": self.calls_requested,
            "draws": self.draws,
            "seed": self.seed if isinstance(self.seed, (int, type(None))) else str(self.seed),
            "tolerance": self.tolerance,
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "checks": [c.to_dict() for c in self.checks],
        }
        for key in ("keep_count_hist", "autocorrelation", "call_correlation", "convergence"):
            d[key] = self.plots.get(key)
        pe = self.plots.get("per_element")
        if pe is not None:
            pe = dict(pe)
            for key, digits in (("relative_bias", 6), ("relative_bias_se", 6), ("keep_rate", 7), ("pvalues", 4)):
                pe[key] = rounded(pe[key], digits)
        d["per_element"] = pe
        return d




def rounded(a, digits: int):
    """A float, or a list rounded to ``digits`` significant digits (small JSON)."""
    if a is None:
        return None
    if np.ndim(a) == 0:
        return float(a)
    return [float(f"{t:.{digits}g}") for t in np.asarray(a, dtype=np.float64).ravel().tolist()]
