#!/usr/bin/env python
"""The seed example: x = [2, 4, 6, 8] at keep probability 0.5, 10**8 masks.

Checks inverted dropout's laws (mean kept, keep rate, variance x^2 p/q, two-point
support, independence) with the negative controls "no rescaling" and "divided by
p", prints the verdict table and writes reports/seed_example.pdf.

    python scripts/verify_seed_example.py [--seed 0] [--quick]
"""

import sys

from mcdrop.suites.registry import script_main

if __name__ == "__main__":
    sys.exit(script_main("seed_example", __doc__))
