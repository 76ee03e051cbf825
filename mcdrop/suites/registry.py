"""The registry of verification suites behind ``scripts/verify_*.py`` and ``mcdrop verify --all``.

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

The suites never import each other; this registry is the one place that
knows them all.  A new suite is a module of :mod:`mcdrop.suites` with a
``verify_<name>(*, seed, alpha, threads, quick)`` entry point, registered in
:data:`SCRIPTS` and :func:`run_one`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .inference_gap import verify_inference_gap
from .regularization import verify_regularization
from .variants import verify_variants
from .verification import verify

__all__ = ["SCRIPTS", "seed_example", "p_sweep", "run_one", "run_all", "script_main"]

#: Name -> (PDF file name, one-line description).
SCRIPTS = {
    "seed_example": ("seed_example.pdf", "the seed example x = [2, 4, 6, 8] at keep 0.5"),
    "p_sweep": ("p_sweep.pdf", "inverted dropout's laws over the p sweep"),
    "variants": ("variants.pdf", "variant laws: standard, Gaussian, alpha, DropConnect, channel, DropPath"),
    "regularization": ("regularization.pdf", "dropout as an L2 penalty (Wager, Wang & Liang 2013)"),
    "inference_gap": ("inference_gap.pdf", "weight scaling vs Monte Carlo averaging (Jensen gap)"),
}


def seed_example(*, seed=0, samples: int | None = None, alpha: float = 1e-6, threads=None, progress=False):
    """The seed example with its negative controls (``mcdrop.verify(sweep=False)``)."""
    return verify(samples=samples, alpha=alpha, seed=seed, threads=threads, sweep=False,
                  controls=True, progress=progress)


def p_sweep(*, seed=0, sweep_samples: int | None = None, alpha: float = 1e-6, threads=None, progress=False):
    """Inverted dropout's laws over the p sweep, with the controls (seed section kept small)."""
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
        return verify_variants(seed=seed, alpha=alpha, threads=threads, quick=quick, progress=progress)
    if name == "regularization":
        return verify_regularization(seed=seed, alpha=alpha, threads=threads, quick=quick)
    return verify_inference_gap(seed=seed, alpha=alpha, threads=threads, quick=quick)


def script_main(name: str, doc: str, argv=None) -> int:
    """Command line of ``scripts/verify_<name>.py``: print the verdict table, write the PDF.

    Options: ``--seed``, ``--quick`` (small budgets), ``--reports DIR`` (default
    ``reports``), ``--json PATH``.  Exit code 0 when every verdict is as expected.
    """
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
