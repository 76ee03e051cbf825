#!/usr/bin/env python
"""Inverted dropout's laws over p in {0, 0.1, 0.3, 0.5, 0.7, 0.9}.

A (32, 256) mixed-sign input, 10**6 masks per p, with the negative controls;
prints the verdict table and writes reports/p_sweep.pdf.

    python scripts/verify_p_sweep.py [--seed 0] [--quick]
"""

import sys

from mcdrop.suites.registry import script_main

if __name__ == "__main__":
    sys.exit(script_main("p_sweep", __doc__))
