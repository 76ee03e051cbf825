#!/usr/bin/env python
"""Regenerate every example PDF report in ``reports/`` (one command).

    .venv/bin/python scripts/make_reports.py              # all of them (~2-3 minutes)
    .venv/bin/python scripts/make_reports.py seed_example # just one

Reports (each seeded, so a rerun gives the same bytes on the same machine and
library versions; each must stay under 1 MB).  The law reports are exactly
what ``mcdrop verify --all`` writes (same functions, same budgets):

- ``seed_example.pdf``: the seed example x = [2, 4, 6, 8] at keep 0.5 over
  10**8 samples (mean -> 5) and the negative controls (no rescaling;
  dividing by p);
- ``p_sweep.pdf``: the p sweep p in {0, 0.1, 0.3, 0.5, 0.7, 0.9} on a
  (32, 256) input (10**6 samples per p) and the controls;
- ``variants.pdf``, ``regularization.pdf``, ``inference_gap.pdf``: the
  variant laws, Wager et al.'s dropout penalty, and weight scaling vs Monte
  Carlo averaging (``scripts/verify_*.py``);
- ``audit_torch_dropout.pdf``: ``mcdrop.audit`` of ``torch.nn.Dropout(0.3)``
  on (64, 128) at the default budget: passes;
- ``audit_broken_no_rescale.pdf``: ``mcdrop.audit`` of a NumPy dropout that
  forgets to divide by q: fails, and the report reads the pattern;
- ``audit_model_functional_eval.pdf``: ``mcdrop.audit_model`` of a small
  attention block whose MLP calls ``F.dropout(h, p)`` (``training`` defaults
  to True, so dropout stays on in ``eval()``): fails, naming the site.

``reports/power.pdf`` is made by ``scripts/power_report.py`` (47 minutes).

The torch audit needs torch (``pip install 'mcdrop[torch]'``); without it
that report is skipped with a message, the others are still written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports"
MAX_BYTES = 1_000_000


class Skip(Exception):
    """A report that cannot be made here (missing optional piece)."""


def _law(name):
    from mcdrop.suites.registry import run_one

    return lambda: run_one(name, seed=0)


def _audit():
    try:
        from mcdrop.auditing import audit
    except ImportError as exc:
        raise Skip(f"mcdrop.audit is not available ({exc})") from None
    return audit


def audit_torch_dropout():
    audit = _audit()
    try:
        import torch
        from mcdrop.adapters import torch_module
    except ImportError:
        raise Skip("torch is not installed (pip install 'mcdrop[torch]')") from None
    torch.set_num_threads(1)
    # the adapter seeds torch's generator for the audit: a reproducible report
    layer = torch_module(torch.nn.Dropout(p=0.3), seed=20241127)
    return audit(layer, p=0.3, shape=(64, 128), seed=0)


def audit_broken_no_rescale():
    audit = _audit()
    g = np.random.default_rng(20241127)

    def no_rescale_dropout(x, training):
        """Drops with probability p but forgets to divide the kept values by q."""
        if not training:
            return x
        return np.where(g.random(x.shape) >= 0.3, x, 0).astype(x.dtype, copy=False)

    return audit(no_rescale_dropout, p=0.3, shape=(64, 128), seed=0,
                 name="NumPy dropout that forgets to divide by q")


def audit_model_functional_eval():
    try:
        import torch
        import torch.nn.functional as F
        from torch import nn
    except ImportError:
        raise Skip("torch is not installed (pip install 'mcdrop[torch]')") from None
    from mcdrop.auditing import audit_model

    torch.set_num_threads(1)
    torch.manual_seed(0)

    class Block(nn.Module):
        """Attention with SDPA dropout, a residual nn.Dropout, and an MLP whose
        F.dropout ignores the module's mode (the bug)."""

        def __init__(self, d=32, heads=4, p=0.1):
            super().__init__()
            self.heads, self.p = heads, p
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.resid_drop = nn.Dropout(p)
            self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
            x = x + self.resid_drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
            h = F.dropout(F.gelu(self.fc1(x)), self.p)  # bug: training=True even in eval()
            return x + self.fc2(h)

    model = nn.Sequential(Block(), Block())
    x = torch.randn(4, 16, 32, generator=torch.Generator().manual_seed(0))
    return audit_model(model, x, seed=0)


REPORTS = {
    "seed_example": _law("seed_example"),
    "p_sweep": _law("p_sweep"),
    "variants": _law("variants"),
    "regularization": _law("regularization"),
    "inference_gap": _law("inference_gap"),
    "audit_torch_dropout": audit_torch_dropout,
    "audit_broken_no_rescale": audit_broken_no_rescale,
    "audit_model_functional_eval": audit_model_functional_eval,
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", choices=[[], *REPORTS], metavar="NAME",
                    help=f"reports to make (default all): {', '.join(REPORTS)}")
    args = ap.parse_args(argv)
    names = args.names or list(REPORTS)
    OUT.mkdir(exist_ok=True)
    too_big = []
    for name in names:
        t0 = time.perf_counter()
        try:
            result = REPORTS[name]()
        except Skip as why:
            print(f"{name}: skipped: {why}")
            continue
        t1 = time.perf_counter()
        path = OUT / f"{name}.pdf"
        result.to_pdf(path)
        t2 = time.perf_counter()
        size = path.stat().st_size
        verdict = getattr(result, "verdict", "pass" if result.passed else "fail")
        print(f"{name}: {verdict.upper()} -> {path.relative_to(ROOT)} ({size / 1e3:.0f} kB; "
              f"run {t1 - t0:.1f} s, render {t2 - t1:.1f} s)")
        if size >= MAX_BYTES:
            too_big.append(name)
    if too_big:
        print(f"error: over 1 MB: {too_big}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
