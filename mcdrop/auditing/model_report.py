"""What :func:`mcdrop.audit_model` found: :class:`ModelAuditReport` and its :class:`SiteReport` s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..report import ResultFile
from ..results import CheckedResult
from ..stats.power import POWER

__all__ = ["SiteReport", "ModelAuditReport"]


@dataclass(frozen=True, eq=False)
class SiteReport(CheckedResult):
    """One dropout site of a model and its checks.

    Attributes
    ----------
    name : str
        Module path and call index (``blocks.0.mlp.drop#0``; functional
        sites ``blocks.0.attn:scaled_dot_product_attention#0``).
    kind : {"module", "function", "sdpa", "random"}
    op : str
        Class or function name.
    p : float or None
        The drop probability audited (the site's own, or ``audit_model``'s ``p``).
    variant, structure : str or None
        The law claimed; ``structure_source`` says whether the structure was
        declared (by the class) or inferred from the masks.
    shape, dtype : the activation the site receives
    calls : int
        Training calls folded into its checks.
    observed_fraction : float or None
        Fraction of mask entries its outputs revealed (zeros in the input
        hide them; those are drawn afresh, see :mod:`~mcdrop.auditing.site_stream`).
    checks : tuple of CheckResult
    """

    name: str
    kind: str
    op: str
    path: str
    p: float | None
    variant: str | None
    structure: str | None
    structure_source: str | None
    shape: tuple | None
    dtype: str | None
    calls: int
    observed_fraction: float | None
    detectable_rate_error: float | None
    evidence: tuple
    checks: tuple
    note: str = ""
    plots: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "op": self.op, "path": self.path, "p": self.p,
            "variant": self.variant, "structure": self.structure, "structure_source": self.structure_source,
            "shape": None if self.shape is None else list(self.shape), "dtype": self.dtype, "calls": self.calls,
            "observed_fraction": self.observed_fraction, "detectable_rate_error": self.detectable_rate_error,
            "evidence": list(self.evidence), "note": self.note, "verdict": self.verdict, "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True, eq=False)
class ModelAuditReport(CheckedResult, ResultFile):
    """What :func:`mcdrop.audit_model` found.

    Attributes
    ----------
    target : str
        The model's class name.
    sites : tuple of SiteReport
        Every site found, in execution order.
    checks : tuple of CheckResult
        The model-level checks (``runs``, ``sites_found``,
        ``eval_deterministic``, ``mode_round_trip``, ``recompute``).
    passed : bool
        No check failed, model-level or in any site.
    verdict : {"pass", "fail", "inconclusive"}
    alpha : float
        Family-wise false-alarm bound over every check of every site and
        the model-level checks together (Holm).
    calls : int
        Training forwards of the Monte Carlo loop.
    """

    target: str
    framework: str
    inputs: tuple
    p: float | None
    calls: int
    seed: Any
    alpha: float
    sites: tuple
    checks: tuple
    elapsed_s: float
    environment: dict

    def all_checks(self) -> list:
        """Model-level checks, then every site's."""
        return list(self.checks) + [c for s in self.sites for c in s.checks]

    @property
    def failed(self) -> list[str]:
        """``"check"`` (model-level) and ``"site: check"`` names of failed checks."""
        out = [c.name for c in self.checks if c.verdict == "fail"]
        return out + [f"{s.name}: {c.name}" for s in self.sites for c in s.checks if c.verdict == "fail"]

    def site(self, name: str) -> SiteReport:
        """The site called ``name`` (KeyError listing the sites otherwise)."""
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(f"no site {name!r}; sites: {[s.name for s in self.sites]}")

    def table(self) -> str:
        head = f"{'site':<46} {'kind':<8} {'p':>6} {'calls':>6} {'verdict':<13} failed checks"
        lines = [head, "-" * len(head)]
        for s in self.sites:
            p = "" if s.p is None else f"{s.p:.3g}"
            lines.append(f"{s.name:<46} {s.kind:<8} {p:>6} {s.calls:>6} {s.verdict.upper():<13} "
                         + ", ".join(s.failed))
        return "\n".join(lines)

    def __str__(self) -> str:
        m = len(self.all_checks())
        lines = [
            f"mcdrop audit_model: {self.verdict.upper()}  {self.target} ({self.framework})",
            f"inputs {', '.join(self.inputs)}; {len(self.sites)} dropout sites; {self.calls:,} training forwards; "
            f"seed={self.seed}; {self.elapsed_s:.2f} s",
            f"family-wise false-alarm bound alpha={self.alpha:g} over {m} checks of every site and the model (Holm).",
            "",
        ]
        for c in self.checks:
            lines.append(f"  {c.name:<20} {c.verdict.upper():<13} {c.detail}")
        lines.append("")
        lines.append(self.table())
        bad = [(s, c) for s in self.sites for c in s.checks if c.verdict != "pass"]
        if bad:
            lines.append("")
            for s, c in bad:
                lines.append(f"{c.verdict.upper()} {s.name}: {c.name}: {c.detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the schema :mod:`mcdrop.report` renders)."""
        return {
            "type": "mcdrop.ModelAuditReport",
            "mcdrop_version": __version__,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "power": POWER,
            "target": self.target,
            "framework": self.framework,
            "inputs": list(self.inputs),
            "p": self.p,
            "calls": self.calls,
            "seed": self.seed if isinstance(self.seed, (int, type(None))) else str(self.seed),
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "checks": [c.to_dict() for c in self.checks],
            "sites": [s.to_dict() for s in self.sites],
        }


