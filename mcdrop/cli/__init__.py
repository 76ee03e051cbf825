"""Command-line interface: ``mcdrop verify | audit | audit-model | plan | report | bench | power``.

Exit codes: 0 pass, 1 fail, 2 inconclusive or usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..core import distributed
from ..report import load_result, render
from ..report.files import atomic_write_text, check_writable
from ..stats import plan
from ..suites.registry import run_all
from ..suites.verification import verify
from . import audit as audit_command
from . import audit_model as audit_model_command
from . import bench
from . import power as power_command

__all__ = ["main", "build_parser", "UsageError"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


def _floats(text: str) -> list[float]:
    try:
        vals = [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers like 2,4,6,8; got {text!r}"
        ) from None
    if not vals:
        raise argparse.ArgumentTypeError(f"expected at least one number; got {text!r}")
    return vals


def _count(text: str) -> int:
    """Integers, also written as 1e8 or 10**8."""
    t = text.strip().replace("_", "")
    try:
        if "**" in t:
            b, e = t.split("**")
            return int(b) ** int(e)
        f = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer such as 100000000 or 1e8; got {text!r}") from None
    if f != int(f):
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}")
    return int(f)


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.lower().replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 64,128; got {text!r}") from None


def _add_common(p: argparse.ArgumentParser, *, report_default: str | None) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of every random stream (default 0)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    if report_default is not None:
        p.add_argument("--report", metavar="PATH", default=report_default,
                       help=f"write the PDF report to PATH (default {report_default})")
        p.add_argument("--no-report", action="store_true", help="do not write a PDF report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcdrop",
        description="Monte Carlo checks of dropout layers with statistics a reviewer can trust. "
        "p is always the DROP probability; --keep gives the keep probability q = 1 - p instead.",
    )
    parser.add_argument("--version", action="version", version=f"mcdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser(
        "verify",
        help="verify inverted dropout's laws on the reference kernels (the main job)",
        description="Check the laws of inverted dropout (mean kept, keep rate, variance x^2 p/q, "
        "two-point support, independence) on mcdrop's Numba reference kernels: the seed example "
        "x = [2, 4, 6, 8] at keep 0.5, a p sweep, and negative controls (no rescaling; dividing "
        "by p) that must fail. Exit 0 when every verdict is as expected, 1 otherwise.",
    )
    v.add_argument("--x", type=_floats, metavar="X1,X2,...", help="input of the first section (default 2,4,6,8)")
    g = v.add_mutually_exclusive_group()
    g.add_argument("--p", type=float, help="drop probability of the first section")
    g.add_argument("--keep", type=float, help="keep probability q = 1 - p (instead of --p)")
    v.add_argument("--samples", type=_count, help="masks in the first section (default 1e8)")
    v.add_argument("--sweep-samples", type=_count, help="masks per sweep point (default 1e6)")
    v.add_argument("--no-sweep", action="store_true", help="skip the p sweep")
    v.add_argument("--no-controls", action="store_true", help="skip the negative controls")
    v.add_argument("--alpha", type=float, default=1e-6, help="family-wise false-alarm bound (default 1e-6)")
    v.add_argument("--threads", type=int, help="Numba threads (results do not depend on it)")
    dk = v.add_mutually_exclusive_group()
    dk.add_argument("--workers", type=int, metavar="N",
                    help="run on a local Dask cluster of N worker processes (pip install 'mcdrop[dask]'); "
                         "the result is the local one, bit for bit")
    dk.add_argument("--scheduler", metavar="ADDRESS",
                    help="run on an existing Dask cluster (e.g. tcp://host:8786); the same result as locally")
    v.add_argument("--variant", choices=("inverted", "standard", "gaussian", "alpha", "dropconnect"),
                   default="inverted", help="dropout variant whose laws are checked (default inverted)")
    v.add_argument("--structure", choices=("element", "channel", "sample"), default="element",
                   help="independent unit of the mask: element, channel (one per (n, c)) or sample (DropPath)")
    v.add_argument("--all", action="store_true",
                   help="run every per-law script (seed example, p sweep, variants, regularization, inference "
                        "gap) and write their PDF sections into reports/")
    v.add_argument("--smoke", action="store_true", help="with --all: small budgets (a smoke test in seconds)")
    _add_common(v, report_default="reports/verify.pdf")
    v.add_argument("--timestamp", action="store_true",
                   help="print the rendering date in the PDF (default: no date, so reports are reproducible)")

    pl = sub.add_parser(
        "plan",
        help="mask draws needed to detect a relative bias",
        description="Number of Bernoulli mask draws needed to detect a relative mean (or keep-rate) "
        "bias with a two-sided test at level alpha and the given power.",
    )
    g = pl.add_mutually_exclusive_group()
    g.add_argument("--p", type=float, help="drop probability")
    g.add_argument("--keep", type=float, help="keep probability q = 1 - p (instead of --p)")
    pl.add_argument("--bias", type=float, default=1e-3, help="relative bias to detect (default 1e-3 = 0.1%%)")
    pl.add_argument("--alpha", type=float, default=1e-6, help="significance level (default 1e-6)")
    pl.add_argument("--power", type=float, default=0.99, help="power (default 0.99)")
    pl.add_argument("--method", choices=("normal", "exact"), default="normal")
    pl.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    pl.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")

    r = sub.add_parser(
        "report",
        help="re-render a PDF report from saved JSON",
        description="Render the PDF report of a result JSON written by `mcdrop verify --json` or "
        "`mcdrop audit --json`.",
    )
    r.add_argument("result", metavar="RESULT.json")
    r.add_argument("-o", "--output", metavar="PATH", help="PDF path (default: RESULT.pdf)")
    r.add_argument("--timestamp", action="store_true",
                   help="print the rendering date in the PDF (default: no date, so reports are reproducible)")
    r.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    r.add_argument("--json", metavar="PATH", help=argparse.SUPPRESS)

    b = sub.add_parser(
        "bench",
        help="kernel throughput against vectorised NumPy, bits per draw, Gaussian vs inverted",
        description="Time mcdrop.simulate against a vectorised NumPy estimator of the same statistics at "
        "64, 1024 and 8192 elements, count the random bits per mask draw, and compare Gaussian with "
        "inverted dropout; every ratio is measured in the same run (interleaved rounds, medians).",
    )
    b.add_argument("--p", type=float, default=0.3, help="drop probability (default 0.3)")
    b.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    b.add_argument("--quick", action="store_true", help="a quarter of the samples, no RSS measurement")
    b.add_argument("--rss", action="store_true", help="also measure peak RSS at 1e7 vs 1e10 draws (fresh processes)")
    b.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                   help="before each round wait up to S seconds for an idle CPU (default: no wait)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", metavar="PATH", help="also write the measurements as JSON to PATH")
    b.add_argument("--quiet", action="store_true")

    audit_command.add_parser(sub, _add_common, _count, _shape)
    audit_model_command.add_parser(sub, _add_common, _count, _shape)
    power_command.add_parser(sub, _count, _floats)
    return parser


def _write_json(path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1))


def _cmd_verify(args) -> int:
    if args.all:
        done = run_all("reports", seed=args.seed, alpha=args.alpha, quick=args.smoke, threads=args.threads,
                       progress=not args.quiet)
        return EXIT_PASS if all(r.passed for r, _, _ in done.values()) else EXIT_FAIL

    if args.report and not args.no_report:
        check_writable(args.report)  # fail before the run, not after it
    if args.json:
        check_writable(args.json)
    with distributed.connect(args.workers, args.scheduler) as client:
        res = verify(
            x=args.x, p=args.p, keep=args.keep, samples=args.samples, alpha=args.alpha,
            seed=args.seed, threads=args.threads, sweep=not args.no_sweep,
            controls=not args.no_controls, sweep_samples=args.sweep_samples,
            progress=not args.quiet, variant=args.variant, structure=args.structure, client=client,
        )
    print(res)
    if args.json:
        res.to_json(args.json)
        print(f"\nJSON written to {args.json}")
    if args.report and not args.no_report:
        res.to_pdf(args.report, timestamp=args.timestamp)
        print(f"PDF report written to {args.report}")
    return EXIT_PASS if res.passed else EXIT_FAIL


def _cmd_plan(args) -> int:
    res = plan(p=args.p, keep=args.keep, bias=args.bias, alpha=args.alpha, power=args.power,
               method=args.method)
    print(res)
    if args.json:
        _write_json(args.json, res.to_dict())
    return EXIT_PASS


def _cmd_report(args) -> int:
    d = load_result(args.result)
    out = args.output or str(Path(args.result).with_suffix(".pdf"))
    if Path(out).resolve() == Path(args.result).resolve():
        raise UsageError(f"the output {out!r} is the input JSON; give another -o PATH.")
    render(d, out, timestamp=args.timestamp)
    print(f"PDF report written to {out}")
    return EXIT_PASS


def _cmd_bench(args) -> int:
    res = bench.run_benchmark(p=args.p, rounds=args.rounds, scale=0.25 if args.quick else 1.0,
                              rss=args.rss and not args.quick, idle_wait=args.wait_idle, seed=args.seed,
                              progress=not args.quiet)
    print(res["text"])
    if args.json:
        _write_json(args.json, {k: v for k, v in res.items() if k != "text"})
    return EXIT_PASS


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handlers = {"verify": _cmd_verify, "plan": _cmd_plan, "report": _cmd_report, "bench": _cmd_bench,
                "audit": audit_command.run, "audit-model": audit_model_command.run, "power": power_command.run}
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError, UsageError, ImportError) as exc:
        print(f"mcdrop {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

