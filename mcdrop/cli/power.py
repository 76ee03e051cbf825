"""``mcdrop power [CHECK ...]``: measured power curves of the audit's checks (:func:`mcdrop.power_curve`)."""

from __future__ import annotations

import argparse

from ..auditing.power import EXACT_REPEATS, POWER_CHECKS, power_curve, power_study
from ..report.files import check_writable

__all__ = ["add_parser", "run"]

EXIT_PASS, EXIT_FAIL = 0, 1


def add_parser(sub, count, floats) -> argparse.ArgumentParser:
    """Add the ``power`` sub-command to ``sub`` (the CLI's subparsers)."""
    pw = sub.add_parser(
        "power",
        help="measure each audit check's detection rate against effect size (power curves)",
        description="Audit a correct NumPy dropout with one check's defect injected at a range of sizes, "
        "repeatedly (seeded), and report how often that check fails, beside the smallest effect the "
        "audit states it detects (probability >= 0.99). Without CHECK: every check, and the PDF report "
        "(reports/power.pdf: what a PASS rules out, one panel per check). Exit 0 when every curve "
        f"reaches 0.99 at or below its stated effect, 1 otherwise. Checks: {', '.join(POWER_CHECKS)}.",
    )
    pw.add_argument("checks", nargs="*", metavar="CHECK", help="checks to measure (default: all)")
    pw.add_argument("--effects", type=floats, metavar="E1,E2,...",
                    help="effect sizes in the check's unit (one CHECK only; default: a grid around the "
                         "stated effect)")
    pw.add_argument("--calls", type=count, help="training calls per audit (default: the audit's default budget)")
    pw.add_argument("--repeats", type=int, default=100, help="audits per effect size (default 100)")
    pw.add_argument("--exact-repeats", type=int, default=EXACT_REPEATS,
                    help=f"audits per effect of an exact check (default {EXACT_REPEATS})")
    pw.add_argument("--p", type=float, default=0.3, help="drop probability (default 0.3)")
    pw.add_argument("--alpha", type=float, default=1e-6, help="family-wise false-alarm bound (default 1e-6)")
    pw.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    pw.add_argument("--json", metavar="PATH", help="also write the curves as JSON to PATH")
    pw.add_argument("--report", metavar="PATH",
                    help="write the PDF power report to PATH (default reports/power.pdf when every check is "
                         "measured)")
    pw.add_argument("--no-report", action="store_true", help="do not write a PDF report")
    pw.add_argument("--timestamp", action="store_true", help="print the rendering date in the PDF")
    pw.add_argument("--quiet", action="store_true", help="no progress bar")
    return pw


def run(args) -> int:
    """Handler of ``mcdrop power``; returns the exit code."""
    checks = list(args.checks) or None
    report = args.report
    if report is None and checks is None and not args.no_report:
        report = "reports/power.pdf"
    if args.no_report:
        report = None
    for path in (report, args.json):
        if path:
            check_writable(path)
    if args.effects is not None:
        if not checks or len(checks) != 1:
            raise ValueError(f"`--effects` needs exactly one CHECK; got {checks or 'all checks'}.")
        curve = power_curve(checks[0], args.effects, budget=args.calls, repeats=args.repeats, seed=args.seed,
                            p=args.p, alpha=args.alpha, progress=not args.quiet)
        print(curve)
        if args.json:
            curve.to_json(args.json)
            print(f"\nJSON written to {args.json}")
        if report:
            raise ValueError("`--report` needs the curves of `mcdrop power` without --effects.")
        return EXIT_PASS if curve.confirmed else EXIT_FAIL
    study = power_study(checks, budget=args.calls, repeats=args.repeats, exact_repeats=args.exact_repeats,
                        seed=args.seed, p=args.p, alpha=args.alpha, progress=not args.quiet)
    print(study)
    if args.json:
        study.to_json(args.json)
        print(f"\nJSON written to {args.json}")
    if report:
        study.to_pdf(report, timestamp=args.timestamp)
        print(f"PDF report written to {report}")
    return EXIT_PASS if study.confirmed else EXIT_FAIL
