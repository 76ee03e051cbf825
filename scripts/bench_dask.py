#!/usr/bin/env python
"""Benchmark: the same stream on a Dask LocalCluster of 1 and of 2 worker processes.

Each configuration runs the same ``mcdrop.simulate`` (inverted dropout, 8192
elements) several times, interleaved; the script prints the medians, the
1 -> 2 worker speed-up (same run) and checks that every result equals the
local run bit for bit.

    python scripts/bench_dask.py            # 2e10 draws per timing
    python scripts/bench_dask.py --quick    # 2e9 draws
"""

import argparse
import logging
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2e9 draws per timing instead of 2e10")
    ap.add_argument("--repeats", type=int, default=5, help="timings per configuration (median reported)")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # no INFO lines of cluster start and close

    import mcdrop

    n = 8192
    samples = (2 * 10**9 if args.quick else 2 * 10**10) // n
    x = np.random.default_rng(0).normal(size=n)
    local = mcdrop.simulate(x, p=0.3, samples=samples, seed=1, trace=False)
    times = {1: [], 2: []}
    clusters = {w: LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                dashboard_address=":0", silence_logs=logging.WARNING)
                for w in (1, 2)}
    clients = {w: Client(c) for w, c in clusters.items()}
    try:
        for c in clients.values():  # warm-up: worker start, imports, Numba cache
            mcdrop.simulate(x, p=0.3, samples=1000, seed=1, client=c)
        for _ in range(args.repeats):
            for w, c in clients.items():
                t = time.perf_counter()
                sim = mcdrop.simulate(x, p=0.3, samples=samples, seed=1, trace=False, client=c)
                times[w].append(time.perf_counter() - t)
                assert sim == local, f"{w} worker(s): the result differs from the local run"
    finally:
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
    draws = samples * n
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"mcdrop.simulate on a Dask LocalCluster, {draws:.3g} draws per timing, medians of {args.repeats}:")
    print(f"  1 worker : {m1:.2f} s  ({draws / m1 / 1e9:.2f} Gdraws/s)")
    print(f"  2 workers: {m2:.2f} s  ({draws / m2 / 1e9:.2f} Gdraws/s)")
    per_round = statistics.median(a / b for a, b in zip(times[1], times[2]))
    print(f"  speed-up 1 -> 2 workers: {m1 / m2:.2f}x (per-round median {per_round:.2f}x)")
    print("  every result equals the local run bit for bit")


if __name__ == "__main__":
    main()
