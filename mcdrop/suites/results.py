"""The result types of the verification suites: verdict tables of laws and negative controls.

Every suite (:func:`mcdrop.verify`, the variants, regularisation and
inference-gap suites) returns sections of :class:`VerifyRow` — one check
each, with the verdict it should have ("pass" for a law on the reference,
"fail" for a negative control) — decided as two families: the laws (Holm at
the family-wise ``alpha``) and the controls.  :class:`VerifyResult` is
:func:`mcdrop.verify`'s result; :class:`LawSuiteResult` adds measurements
and figure data.  Suites never import each other; they share these types.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from .. import __version__
from ..checks import PendingCheck, decide_families
from ..report import render
from ..report.files import atomic_write_text
from ..results import CheckResult, software_environment
from ..stats.normal import mean_test
from ..stats.power import POWER

__all__ = [
    "VerifyRow",
    "VerifySection",
    "VerifyResult",
    "LawSection",
    "LawSuiteResult",
    "RowSection",
    "SectionedResult",
    "decide_sections",
    "build_result",
    "pending_mean",
]


@dataclass(frozen=True)
class VerifyRow:
    """One check of one section, with the verdict it should have."""

    section: str
    check: CheckResult
    expect: str  # "pass" for a law on the reference, "fail" for a negative control

    @property
    def as_expected(self) -> bool:
        return self.check.verdict == self.expect

    def to_dict(self) -> dict:
        d = self.check.to_dict()
        d.update(section=self.section, expect=self.expect, as_expected=self.as_expected)
        return d


class RowSection:
    """A titled group of :class:`VerifyRow` (shared by :class:`VerifySection` and ``LawSection``)."""

    @property
    def as_expected(self) -> bool:
        return all(r.as_expected for r in self.rows)

    def _record(self, **fields) -> dict:
        """``to_dict()``: name, title and description, then ``fields``, then the verdicts and checks."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            **fields,
            "as_expected": self.as_expected,
            "checks": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class VerifySection(RowSection):
    """A group of checks on one simulation (and one output scale)."""

    name: str
    title: str
    description: str
    p: float
    q: float
    scale: float
    scale_label: str
    samples: int
    shape: tuple
    simulation: str  # key into VerifyResult.simulations
    control: bool
    detectable_bias: float | None
    rows: tuple

    def to_dict(self) -> dict:
        return self._record(
            p=self.p,
            q=self.q,
            scale=self.scale,
            scale_label=self.scale_label,
            samples=self.samples,
            shape=list(self.shape),
            simulation=self.simulation,
            control=self.control,
            detectable_bias=self.detectable_bias,
        )


class SectionedResult:
    """A verdict made of sections of :class:`VerifyRow` (laws and negative controls).

    Shared by :class:`VerifyResult` and :class:`LawSuiteResult`,
    which have ``passed``, ``alpha`` and ``sections`` (each with ``rows`` and
    ``control``).
    """

    @property
    def rows(self) -> list[VerifyRow]:
        return [r for s in self.sections for r in s.rows]

    @property
    def checks(self) -> list[CheckResult]:
        """Every check (laws and controls), in table order."""
        return [r.check for r in self.rows]

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def n_law_checks(self) -> int:
        return sum(len(s.rows) for s in self.sections if not s.control)

    def _headline(self, name: str) -> list[str]:
        """The summary line and the family-wise bound line of ``__str__``."""
        m = self.n_law_checks
        return [
            f"mcdrop {name}: {'PASS' if self.passed else 'FAIL'} "
            f"({sum(r.as_expected for r in self.rows)}/{len(self.rows)} checks as expected)",
            f"family-wise false-alarm bound alpha = {self.alpha:g} over {m} law checks "
            f"(Holm; intervals at the simultaneous level 1 - alpha/{m}).",
        ]

    def _table(self, section_width: int, check_width: int, *, expected_column: bool) -> str:
        """The verdict table as fixed-width text (``expected_column``: the law's value too)."""
        sw, cw = section_width, check_width
        exp_head = f" {'expected':>13}" if expected_column else ""
        head = (
            f"{'section':<{sw}} {'check':<{cw}} {'estimate':>13}{exp_head} {'interval':>29} "
            f"{'p-value':>9}  {'verdict':<7} {'expected':<8}"
        )
        lines = [head, "-" * len(head)]
        for s in self.sections:
            for r in s.rows:
                c = r.check
                est = "" if c.estimate is None else f"{c.estimate:.8g}"
                exp = "" if c.expected is None else f"{c.expected:.8g}"
                exp = f" {exp:>13}" if expected_column else ""
                ci = "" if c.confidence_interval is None else (
                    f"[{c.confidence_interval.low:.7g}, {c.confidence_interval.high:.7g}]"
                )
                pv = "" if c.pvalue is None else f"{c.pvalue:.2g}"
                mark = "ok" if r.as_expected else "UNEXPECTED"
                lines.append(
                    f"{s.title[:sw]:<{sw}} {c.name[:cw]:<{cw}} {est:>13}{exp} {ci:>29} {pv:>9}  "
                    f"{c.verdict.upper():<7} {r.expect:<8} {mark}"
                )
        return "\n".join(lines)

    def _dump_json(self, path, indent, separators) -> str:
        text = json.dumps(self.to_dict(), indent=indent, separators=separators)
        if path is not None:
            atomic_write_text(path, text)
        return text


@dataclass(frozen=True, eq=False)
class VerifyResult(SectionedResult):
    """What :func:`verify` found.

    Attributes
    ----------
    passed : bool
        Every law held on the reference and every negative control failed.
    alpha : float
        Family-wise false-alarm bound of the law checks (Holm).
    sections : list of VerifySection
    simulations : dict of str -> Simulation
    """

    passed: bool
    alpha: float
    seed: object
    sections: tuple
    simulations: dict
    elapsed_s: float
    environment: dict = field(default_factory=dict)
    variant: str = "inverted"
    structure: str = "element"

    def table(self) -> str:
        """The verdict table as fixed-width text."""
        return self._table(28, 24, expected_column=False)

    def __str__(self) -> str:
        lines = self._headline("verify")
        for s in self.sections:
            if s.detectable_bias is not None and not s.control:
                lines.append(
                    f"  {s.title}: {s.samples:,} samples x {math.prod(s.shape):,} elements; "
                    f"detects a relative mean bias of {s.detectable_bias:.2g} with power {POWER}"
                )
        lines.append("")
        lines.append(self.table())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "type": "mcdrop.VerifyResult",
            "mcdrop_version": __version__,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "power": POWER,
            "seed": None if self.seed is None else str(self.seed),
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "sections": [s.to_dict() for s in self.sections],
            "simulations": {k: v.to_dict() for k, v in self.simulations.items()},
            **(
                {"variant": self.variant, "structure": self.structure}
                if (self.variant, self.structure) != ("inverted", "element")
                else {}
            ),
        }

    def to_json(self, path=None, *, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` if given.

        Compact by default (no indentation, no spaces after separators): the
        per-element keep counts and exact sums make up most of the text.
        ``mcdrop report`` renders the PDF from it later.
        """
        seps = (",", ":") if indent is None else None
        return self._dump_json(path, indent, seps)

    def to_pdf(self, path, *, timestamp: bool = False) -> None:
        """Write the PDF report (verdict table first, then the plots).

        ``timestamp=True`` adds the rendering date; without it the same
        result always gives the same PDF bytes.
        """
        render(self.to_dict(), path, timestamp=timestamp)


@dataclass(frozen=True)
class LawSection(RowSection):
    """A titled group of checks (``control=True``: a wrong law, expected to fail)."""

    name: str
    title: str
    description: str
    control: bool
    rows: tuple

    def to_dict(self) -> dict:
        return self._record(control=self.control)


def decide_sections(specs, alpha: float) -> tuple[list[LawSection], int]:
    """Turn ``[(name, title, description, control, [PendingCheck, ...]), ...]`` into sections.

    Laws form one Holm family at ``alpha``, controls another (each control
    check is expected to fail).  Returns the sections and the number of law
    checks.
    """
    decided, m = decide_families([(name, control, pcs) for name, _, _, control, pcs in specs], alpha)
    sections = []
    for name, title, desc, control, _ in specs:
        checks = decided[name]
        sections.append(LawSection(name, title, desc, control, tuple(
            VerifyRow(title, c, "fail" if control else "pass") for c in checks)))
    return sections, m


@dataclass(frozen=True, eq=False)
class LawSuiteResult(SectionedResult):
    """Verdicts, measurements and figure data of one law's verification.

    Attributes
    ----------
    name : str
        ``"regularization"`` or ``"inference_gap"``.
    title : str
        Report title.
    passed : bool
        Every law passed and every negative control failed.
    alpha : float
        Family-wise false-alarm bound of the law checks (Holm).
    sections : tuple of LawSection
    measurements : tuple of dict
        Quantities reported with intervals but not judged (e.g. a gap).
    figures : dict
        JSON-ready data of the report's plots.
    """

    name: str
    title: str
    passed: bool
    alpha: float
    seed: object
    sections: tuple
    measurements: tuple = ()
    figures: dict = field(default_factory=dict)
    notes: tuple = ()
    elapsed_s: float = 0.0
    environment: dict = field(default_factory=dict)
    family_note: str = ""

    def table(self) -> str:
        """The verdict table as fixed-width text."""
        return self._table(34, 26, expected_column=True)

    def measurement_table(self) -> str:
        """Measurements (estimate with interval, not judged) as fixed-width text."""
        if not self.measurements:
            return ""
        head = f"{'measurement':<44} {'estimate':>13} {'interval':>29} {'reference':>13}  note"
        lines = [head, "-" * len(head)]
        for m in self.measurements:
            ci = m.get("interval")
            cis = "" if not ci else f"[{ci[0]:.6g}, {ci[1]:.6g}]"
            ref = "" if m.get("reference") is None else f"{m['reference']:.7g}"
            lines.append(f"{m['name'][:44]:<44} {m['estimate']:>13.7g} {cis:>29} {ref:>13}  {m.get('note', '')}")
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = self._headline(self.name)
        if self.family_note:
            lines[1] = self.family_note
        lines += [f"  {n}" for n in self.notes]
        lines += ["", self.table()]
        if self.measurements:
            lines += ["", "Measurements (intervals at 95%; reported, not judged):", self.measurement_table()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "type": "mcdrop.LawSuiteResult",
            "mcdrop_version": __version__,
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "seed": None if self.seed is None else str(self.seed),
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "notes": list(self.notes),
            "family_note": self.family_note,
            "sections": [s.to_dict() for s in self.sections],
            "measurements": list(self.measurements),
            "figures": self.figures,
        }

    def to_json(self, path=None, *, indent: int | None = None) -> str:
        return self._dump_json(path, indent, None)

    def to_pdf(self, path) -> None:
        """Write this law's PDF section (verdict table first, then the figures)."""
        render(self.to_dict(), path)


def build_result(name, title, specs, alpha, seed, t0, *, measurements=(), figures=None, notes=()):
    """Decide ``specs`` (see :func:`decide_sections`) and wrap everything in a LawSuiteResult."""
    sections, _ = decide_sections(specs, alpha)
    return LawSuiteResult(
        name=name, title=title, passed=all(s.as_expected for s in sections), alpha=alpha,
        seed=seed, sections=tuple(sections), measurements=tuple(measurements),
        figures=figures or {}, notes=tuple(notes), elapsed_s=time.perf_counter() - t0,
        environment=software_environment(),
    )


def pending_mean(name, estimate, se, expected, detail, extra=None) -> PendingCheck:
    """A CLT z-test of ``estimate = expected`` as a :class:`~mcdrop.checks.PendingCheck`."""
    res = mean_test(estimate, se, expected)
    return PendingCheck.from_test(name, res, estimate=estimate, expected=expected, detail=detail, extra=extra)
