#!/usr/bin/env python
"""Regenerate ``reports/power.pdf`` and ``reports/power.json``: what a PASS rules out, check by check.

    .venv/bin/python scripts/power_report.py            # every check, default budget (about an hour)
    .venv/bin/python scripts/power_report.py --smoke    # a few repeats, 300 calls (about a minute)

For each check of the audit a correct NumPy dropout is given that check's
defect at a range of sizes (``mcdrop.auditing.injected``) and audited
``--repeats`` times per size (20 for exact checks) at the default budget
(64 x 128 float32 input, p = 0.3; channel dropout on 16 x 32 x 8 for
``structure``); the PDF shows how often the check failed beside the effect
the audit states it detects with probability >= 0.99.  Everything is
seeded: a rerun gives the same numbers.  Exit 0 when every measured curve
reaches 0.99 at or below its stated effect.
"""

from __future__ import annotations

import argparse
import sys

from mcdrop.cli import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=100, help="audits per effect of a statistical check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="3 repeats, 300 calls: checks the pipeline only")
    ap.add_argument("--out", default="reports/power", help="output stem (default reports/power)")
    a = ap.parse_args()
    argv = ["power", "--seed", str(a.seed), "--report", a.out + ".pdf", "--json", a.out + ".json"]
    argv += ["--repeats", "3", "--exact-repeats", "2", "--calls", "300"] if a.smoke else ["--repeats", str(a.repeats)]
    sys.exit(main(argv))
