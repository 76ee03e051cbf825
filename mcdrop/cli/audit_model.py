"""``mcdrop audit-model MODULE:FACTORY``: the command-line face of :func:`mcdrop.audit_model`."""

from __future__ import annotations

import argparse

from ..adapters.targets import import_target
from ..adapters.torch import import_torch
from ..auditing import audit_model
from ..report.files import check_writable

__all__ = ["add_parser", "run", "INPUT_DTYPES"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
INPUT_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64")


def add_parser(sub, add_common, count, shape) -> argparse.ArgumentParser:
    """Add the ``audit-model`` sub-command to ``sub`` (the CLI's subparsers)."""
    a = sub.add_parser(
        "audit-model",
        help="find every dropout site of a torch model and audit each where it runs",
        description="Build a model with FACTORY (a callable with no arguments, e.g. mypkg.models:build) or take "
        "the module instance at that path, feed it seeded random inputs of --input-shape, and audit every "
        "dropout site: eval determinism and identity (naming the culprit), the audit battery on the "
        "activations each site receives, the train/eval/train round trip and checkpoint recompute. "
        "Exit 0 pass, 1 fail, 2 inconclusive or usage error.",
    )
    a.add_argument("factory", metavar="MODULE:FACTORY", help="a model factory or instance, as module:attr")
    a.add_argument("--input-shape", type=shape, action="append", required=True, metavar="N,C,...",
                   help="shape of the forward's input (repeat for several positional inputs)")
    a.add_argument("--input-dtype", choices=INPUT_DTYPES, default="float32",
                   help="dtype of the inputs (int64: token ids in [0, --input-high))")
    a.add_argument("--input-high", type=int, default=2, help="exclusive upper bound of int64 inputs (default 2)")
    a.add_argument("--p", type=float, help="drop probability every site claims (default: each site's own)")
    a.add_argument("--calls", type=count, help="training forwards (default 256)")
    a.add_argument("--alpha", type=float, default=1e-6, help="family-wise false-alarm bound (default 1e-6)")
    a.add_argument("--device", help="torch device of the inputs (default: the model's)")
    add_common(a, report_default=None)
    a.add_argument("--report", metavar="PATH", help="also write the PDF report to PATH")
    return a


def _inputs(args):
    torch = import_torch()
    g = torch.Generator().manual_seed(int(args.seed))
    out = []
    for shp in args.input_shape:
        if not shp or any(s <= 0 for s in shp):
            raise ValueError(f"--input-shape must be positive integers like 8,16,32; got {shp}.")
        if args.input_dtype == "int64":
            if args.input_high < 1:
                raise ValueError(f"--input-high must be >= 1; got {args.input_high}.")
            out.append(torch.randint(0, args.input_high, shp, generator=g))
        else:
            out.append(torch.randn(shp, generator=g).to(getattr(torch, args.input_dtype)))
    return out[0] if len(out) == 1 else tuple(out)


def run(args) -> int:
    """Handler of ``mcdrop audit-model``; returns the exit code."""
    for path in (args.report, args.json):
        if path:
            check_writable(path)
    obj = import_target(args.factory, what="MODULE:FACTORY")
    torch = import_torch()
    model = obj if isinstance(obj, torch.nn.Module) else None
    if model is None:
        if not callable(obj):
            raise ValueError(f"MODULE:FACTORY {args.factory!r} is neither a model nor a callable.")
        model = obj()
    rep = audit_model(model, _inputs(args), p=args.p, calls=args.calls, alpha=args.alpha, seed=args.seed,
                      progress=not args.quiet, device=args.device)
    print(rep)
    if args.json:
        rep.to_json(args.json)
        print(f"\nJSON written to {args.json}")
    if args.report:
        rep.to_pdf(args.report)
        print(f"PDF report written to {args.report}")
    return {"pass": EXIT_PASS, "fail": EXIT_FAIL}.get(rep.verdict, EXIT_USAGE)
