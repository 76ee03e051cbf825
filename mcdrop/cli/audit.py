"""``mcdrop audit TARGET``: the command-line face of :func:`mcdrop.audit`."""

from __future__ import annotations

import argparse
import sys

from ..adapters.targets import BUILTINS, resolve_target
from ..auditing import audit
from ..auditing.budget import VARIANTS
from ..laws import STRUCTURES
from ..report.files import check_writable

__all__ = ["add_parser", "run"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_parser(sub, add_common, count, shape) -> argparse.ArgumentParser:
    """Add the ``audit`` sub-command to ``sub`` (the CLI's subparsers)."""
    builtins = "; ".join(f"{k} ({v[2]})" for k, v in BUILTINS.items())
    a = sub.add_parser(
        "audit",
        help="audit any dropout implementation (torch, JAX/Flax, Keras, NumPy, your own)",
        description="Run mcdrop's battery of statistical checks against a dropout implementation: "
        "eval identity, input unchanged, shape/dtype, finite, support, keep rate, mean, variance, "
        "dispersion, independence within and across calls, structure, gradient (torch). "
        "TARGET is a built-in name or a dotted path such as torch.nn.Dropout, "
        "torch.nn.functional:dropout or mypkg.mymodule:my_dropout (a callable fn(x, training)). "
        f"Built-ins: {builtins}. Exit 0 pass, 1 fail, 2 inconclusive or usage error.",
    )
    a.add_argument("target", metavar="TARGET", help="built-in name or dotted path (see above)")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--p", type=float, help="claimed drop probability (default: the target's, else 0.3)")
    g.add_argument("--keep", type=float, help="claimed keep probability q = 1 - p (instead of --p)")
    a.add_argument("--shape", type=shape, metavar="N,C,...", help="input shape (default 64,128; 4-D for Dropout2d)")
    a.add_argument("--calls", type=count, help="training calls (default: enough to detect a 0.1%% mean bias)")
    a.add_argument("--alpha", type=float, default=1e-6, help="family-wise false-alarm bound (default 1e-6)")
    a.add_argument("--tolerance", type=float, help="relative harmless band for mean and keep rate (three-zone verdict)")
    a.add_argument("--structure", choices=STRUCTURES, help="mask unit (default: the target's)")
    a.add_argument("--variant", choices=VARIANTS, help="claimed law (default: the target's)")
    a.add_argument("--dtype", default="float32", choices=("float32", "float64", "float16", "bfloat16"))
    add_common(a, report_default=None)
    a.add_argument("--report", metavar="PATH", help="also write the PDF report to PATH")
    return a


def run(args) -> int:
    """Handler of ``mcdrop audit``; returns the exit code."""
    for path in (args.report, args.json):
        if path:
            check_writable(path)
    # the p a class target is built with; the claim itself is left to audit()
    # (--p or --keep, else the target's own p, else 0.3)
    p_build = args.p if args.p is not None else (1.0 - args.keep if args.keep is not None else 0.3)
    fn = resolve_target(args.target, p_build, seed=args.seed)
    rep = audit(fn, args.p, keep=args.keep, shape=args.shape, calls=args.calls, variant=args.variant,
                structure=args.structure, alpha=args.alpha, tolerance=args.tolerance, seed=args.seed,
                dtype=args.dtype, progress=not args.quiet)
    print(rep)
    if args.json:
        rep.to_json(args.json)
        print(f"\nJSON written to {args.json}")
    if args.report:
        try:
            rep.to_pdf(args.report)
            print(f"PDF report written to {args.report}")
        except (ImportError, ModuleNotFoundError) as exc:
            print(f"mcdrop audit: could not write the PDF report: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(rep.verdict, EXIT_USAGE)
