#!/usr/bin/env python
"""Weight scaling vs Monte Carlo averaging: where "no scaling at inference" is exact.

A linear layer's MC mean equals its eval output exactly; after a nonlinearity it
does not (Jensen).  For a small MLP (identity, ReLU, tanh, sigmoid) the script
checks E relu(z) >= relu(E z) and |gap| <= L sd(z), measures the network's gap
E[out] - eval as p grows, and shows that the seed's claim taken as exact fails for
the nonlinear networks.  Writes reports/inference_gap.pdf.

    python scripts/verify_inference_gap.py [--seed 0] [--quick]
"""

import sys

from mcdrop.suites.registry import script_main

if __name__ == "__main__":
    sys.exit(script_main("inference_gap", __doc__))
