#!/usr/bin/env python
"""Benchmark: mcdrop's reference kernels against vectorised NumPy, in one run.

Prints, with medians of interleaved rounds and ratios measured in the same
process: simulate vs the NumPy baseline at 64 x 1e6, 1024 x 40,000 and 8192
elements (2 threads and 1); random bits per mask draw against H(q); Gaussian
vs inverted dropout per draw; and (full run) the peak RSS of fresh processes
at 1e7 vs 1e10 mask draws.  The Dask 1 -> 2 worker speed-up is
scripts/bench_dask.py.

    python scripts/bench_kernels.py                  # full run (a few minutes)
    python scripts/bench_kernels.py --quick          # a quarter of the samples, no RSS
    python scripts/bench_kernels.py --wait-idle 60   # gate each round on an idle CPU
"""

import argparse
import json

from mcdrop.cli.bench import run_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a quarter of the samples, no RSS measurement")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="wait up to S seconds for an idle CPU before each round")
    ap.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = ap.parse_args()
    res = run_benchmark(rounds=args.rounds, scale=0.25 if args.quick else 1.0, rss=not args.quick,
                        idle_wait=args.wait_idle, progress=True)
    print(res["text"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({k: v for k, v in res.items() if k != "text"}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
