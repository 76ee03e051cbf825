#!/usr/bin/env python
"""Dropout as regularisation (Wager, Wang & Liang 2013), by Monte Carlo.

E||y - (X*M/q) w||^2 = ||y - Xw||^2 + (p/q) sum_j w_j^2 sum_i x_ij^2 on random data
and scikit-learn's bundled diabetes data, with per-example and with shared masks
(and the exact variance of the loss in both cases), per-feature penalties (an L2
term weighted by each feature's energy), and logistic regression against exact
enumeration with the quadratic approximation's gap measured.  Controls: the
penalty without the 1/q; plain ridge.  Writes reports/regularization.pdf.

    python scripts/verify_regularization.py [--seed 0] [--quick]
"""

import sys

from mcdrop.suites.registry import script_main

if __name__ == "__main__":
    sys.exit(script_main("regularization", __doc__))
