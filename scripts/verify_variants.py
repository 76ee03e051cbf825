#!/usr/bin/env python
"""The dropout variants' laws on the reference kernels.

Standard dropout (test-time scaling by q), Gaussian dropout (noise N(1, p/q)),
AlphaDropout (SELU constants), DropConnect (mask per weight), channel dropout
(mask per (n, c)) and DropPath (mask per sample), plus Gaussian and alpha noise per
channel: mean, variance, support and the independent unit over a p sweep, with
deliberately wrong laws (AlphaDropout with b = 0, Gaussian variance p, element-wise
independence for structured masks, ...) that must fail.  Prints the verdict table
and writes reports/variants.pdf.

    python scripts/verify_variants.py [--seed 0] [--quick]
"""

import sys

from mcdrop.suites.registry import script_main

if __name__ == "__main__":
    sys.exit(script_main("variants", __doc__))
