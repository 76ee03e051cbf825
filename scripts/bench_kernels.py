#!/usr/bin/env python
"""Benchmark: mcdrop kernels vs vectorised NumPy vs torch F.dropout, 1 and 2 threads.

Prints mask draws per second (median of several timings) and the ratio to the
NumPy baseline measured in the same run, the 2-thread speed-up, and the peak
RSS of `simulate` at 1e7 vs 1e9 samples (fresh processes).

    python scripts/bench_kernels.py            # full run (~2 minutes)
    python scripts/bench_kernels.py --quick    # smaller budget, no RSS
"""

import argparse
import json

from mcdrop.cli.bench import run_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1e9 draws, 3 repeats, no RSS measurement")
    ap.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = ap.parse_args()
    if args.quick:
        res = run_benchmark(draws=10**9, repeats=3, progress=True)
    else:
        res = run_benchmark(draws=4 * 10**9, repeats=5, rss=True, progress=True)
    print(res["text"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
