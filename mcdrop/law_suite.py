"""The per-law verification suite behind ``scripts/verify_*.py`` and ``mcdrop verify --all``.

Each law has a function returning a result with a verdict table and a PDF
section in ``reports/``:

==================  =============================================  ========================
script              what it checks                                 PDF
==================  =============================================  ========================
seed_example        the seed example x = [2, 4, 6, 8], keep 0.5    reports/seed_example.pdf
p_sweep             inverted dropout's laws for p in SWEEP_P       reports/p_sweep.pdf
variants            standard, Gaussian, alpha, DropConnect,        reports/variants.pdf
                    channel and sample (DropPath) structure
regularization      Wager et al.'s dropout penalty (squared loss,  reports/regularization.pdf
                    per-example and shared masks; logistic)
inference_gap       weight scaling vs Monte Carlo averaging        reports/inference_gap.pdf
==================  =============================================  ========================

:class:`LawSuiteResult` is the result type of the last three (the first two
return :class:`mcdrop.VerifyResult`): sections of :class:`mcdrop.verification.VerifyRow`
(one Holm family for the laws, one for the negative controls), plus
measurements (numbers with intervals that are not pass/fail, e.g. the size of
the Jensen gap) and the data of the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, laws
from .laws import PendingCheck
from .verification import VerifyRow, _environment, _RowSection, _SectionedResult

__all__ = ["LawSection", "LawSuiteResult", "decide_sections", "run_one", "run_all", "script_main", "SCRIPTS"]

#: Name -> (PDF file name, one-line description).
SCRIPTS = {
    "seed_example": ("seed_example.pdf", "the seed example x = [2, 4, 6, 8] at keep 0.5"),
    "p_sweep": ("p_sweep.pdf", "inverted dropout's laws over the p sweep"),
    "variants": ("variants.pdf", "variant laws: standard, Gaussian, alpha, DropConnect, channel, DropPath"),
    "regularization": ("regularization.pdf", "dropout as an L2 penalty (Wager, Wang & Liang 2013)"),
    "inference_gap": ("inference_gap.pdf", "weight scaling vs Monte Carlo averaging (Jensen gap)"),
}


@dataclass(frozen=True)
class LawSection(_RowSection):
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
    decided, m = laws.decide_families([(name, control, pcs) for name, _, _, control, pcs in specs], alpha)
    sections = []
    for name, title, desc, control, _ in specs:
        checks = decided[name]
        sections.append(LawSection(name, title, desc, control, tuple(
            VerifyRow(title, c, "fail" if control else "pass") for c in checks)))
    return sections, m


@dataclass(frozen=True, eq=False)
class LawSuiteResult(_SectionedResult):
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
        from .report.laws_report import render_law_suite

        render_law_suite(self.to_dict(), path)


def build_result(name, title, specs, alpha, seed, t0, *, measurements=(), figures=None, notes=()):
    """Decide ``specs`` (see :func:`decide_sections`) and wrap everything in a LawSuiteResult."""
    sections, _ = decide_sections(specs, alpha)
    return LawSuiteResult(
        name=name, title=title, passed=all(s.as_expected for s in sections), alpha=alpha,
        seed=seed, sections=tuple(sections), measurements=tuple(measurements),
        figures=figures or {}, notes=tuple(notes), elapsed_s=time.perf_counter() - t0,
        environment=_environment(),
    )


def pending_mean(name, estimate, se, expected, detail, extra=None) -> PendingCheck:
    """A CLT z-test of ``estimate = expected`` as a :class:`~mcdrop.laws.PendingCheck`."""
    from . import stats

    res = stats.mean_test(estimate, se, expected)
    return PendingCheck.from_test(name, res, estimate=estimate, expected=expected, detail=detail, extra=extra)


# ---------------------------------------------------------------------------
# the scripts' entry points
# ---------------------------------------------------------------------------


def seed_example(*, seed=0, samples: int | None = None, alpha: float = 1e-6, threads=None, progress=False):
    """The seed example with its negative controls (``mcdrop.verify(sweep=False)``)."""
    from .verification import verify

    return verify(samples=samples, alpha=alpha, seed=seed, threads=threads, sweep=False,
                  controls=True, progress=progress)


def p_sweep(*, seed=0, sweep_samples: int | None = None, alpha: float = 1e-6, threads=None, progress=False):
    """Inverted dropout's laws over the p sweep, with the controls (seed section kept small)."""
    from .verification import verify

    return verify(samples=10**6, alpha=alpha, seed=seed, threads=threads, sweep=True, controls=True,
                  sweep_samples=sweep_samples, progress=progress)


def run_all(reports_dir="reports", *, seed=0, alpha: float = 1e-6, quick: bool = False, threads=None,
            progress=False, echo=print) -> dict:
    """Run every script's checks and write their PDF sections into ``reports_dir``.

    Returns ``{name: (result, pdf_path, seconds)}``; ``quick=True`` uses
    small budgets (for tests).
    """
    out_dir = Path(reports_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in SCRIPTS:
        t = time.perf_counter()
        res = run_one(name, seed=seed, alpha=alpha, quick=quick, threads=threads, progress=progress)
        pdf = out_dir / SCRIPTS[name][0]
        res.to_pdf(pdf)
        secs = time.perf_counter() - t
        results[name] = (res, str(pdf), secs)
        if echo is not None:
            echo(f"{name:<15} {'PASS' if res.passed else 'FAIL'}  {secs:6.1f} s  -> {pdf}")
    return results



def run_one(name: str, *, seed=0, alpha: float = 1e-6, quick: bool = False, threads=None, progress=False):
    """Run one script's checks (``name`` in :data:`SCRIPTS`) and return its result."""
    if name not in SCRIPTS:
        raise ValueError(f"`name` must be one of {tuple(SCRIPTS)}; got {name!r}.")
    if name == "seed_example":
        return seed_example(seed=seed, alpha=alpha, threads=threads, progress=progress,
                            **({"samples": 10**5} if quick else {}))
    if name == "p_sweep":
        return p_sweep(seed=seed, alpha=alpha, threads=threads, progress=progress,
                       **({"sweep_samples": 2 * 10**4} if quick else {}))
    if name == "variants":
        from .variant_checks import verify_variants

        return verify_variants(seed=seed, alpha=alpha, threads=threads, quick=quick, progress=progress)
    if name == "regularization":
        from .regularization import verify_regularization

        return verify_regularization(seed=seed, alpha=alpha, threads=threads, quick=quick)
    from .inference_gap import verify_inference_gap

    return verify_inference_gap(seed=seed, alpha=alpha, threads=threads, quick=quick)


def script_main(name: str, doc: str, argv=None) -> int:
    """Command line of ``scripts/verify_<name>.py``: print the verdict table, write the PDF.

    Options: ``--seed``, ``--quick`` (small budgets), ``--reports DIR`` (default
    ``reports``), ``--json PATH``.  Exit code 0 when every verdict is as expected.
    """
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of every random stream (default 0)")
    ap.add_argument("--quick", action="store_true", help="small budgets (seconds; for smoke tests)")
    ap.add_argument("--reports", default="reports", help="directory of the PDF (default reports/)")
    ap.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    res = run_one(name, seed=args.seed, quick=args.quick)
    print(res)
    pdf = Path(args.reports) / SCRIPTS[name][0]
    res.to_pdf(pdf)
    if args.json:
        res.to_json(args.json)
    print(f"\n{name}: {'PASS' if res.passed else 'FAIL'} in {time.perf_counter() - t:.1f} s; PDF written to {pdf}")
    return 0 if res.passed else 1
