#!/usr/bin/env python
"""Throughput of the variant kernels against the inverted (core) kernel, same run.

Each method draws the same number of random units (mask bits or noise values)
per timing; the methods are timed in interleaved rounds and the median time of
each is compared with the inverted kernel's median *in the same run*, so the
ratio is meaningful on a noisy shared machine.

    python scripts/bench_variants.py              # ~1e9 draws per timing, 5 rounds
    python scripts/bench_variants.py --quick      # smaller budget, 3 rounds
    python scripts/bench_variants.py --threads 1  # one thread

Methods (8192 random units per sample unless said):
  inverted       mcdrop.simulate on a (32, 256) input (the core kernel)
  standard       the same kernel through simulate_variant (unit weights)
  alpha          AlphaDropout (the same kernel, affine map applied afterwards)
  gaussian       Gaussian noise: 32-bit Box-Muller, integer grid sums per unit
  dropconnect    W (32, 256): mask per weight, exact per-output sums
  channel        (64, 128, 4, 4): 8192 channel masks of 16 elements each
  droppath       (8192, 16): 8192 sample masks of 16 elements each
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _methods(threads):
    import mcdrop
    from mcdrop import simulate as simulate_variant

    g = np.random.default_rng(0)
    x = g.normal(size=(32, 256))
    xv = np.abs(g.normal(size=256))
    w = g.normal(size=(32, 256))
    xc = g.normal(size=(64, 128, 4, 4))
    xs = g.normal(size=(8192, 16))

    def sv(xx, **kw):
        return lambda n: simulate_variant(xx, 0.3, samples=n, seed=1, threads=threads, **kw)

    return {
        "inverted": (lambda n: mcdrop.simulate(x, 0.3, samples=n, seed=1, threads=threads), 8192, 8192),
        "standard": (sv(x, variant="standard"), 8192, 8192),
        "alpha": (sv(x, variant="alpha"), 8192, 8192),
        "gaussian": (sv(x, variant="gaussian"), 8192, 8192),
        "dropconnect": (sv(xv, variant="dropconnect", weight=w), 8192, 8192),
        "channel": (sv(xc, structure="channel"), 8192, xc.size),
        "droppath": (sv(xs, structure="sample"), 8192, xs.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2e8 draws per timing, 3 rounds")
    ap.add_argument("--draws", type=float, default=1e9, help="random units per timing (default 1e9)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    ap.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = ap.parse_args()
    draws = 2e8 if args.quick else args.draws
    rounds = 3 if args.quick else args.rounds
    methods = _methods(args.threads)
    for fn, units, _ in methods.values():  # compile / load the caches
        fn(16)
    times = {k: [] for k in methods}
    for _ in range(rounds):
        for name, (fn, units, _) in methods.items():
            n = max(1, int(draws // units))
            t = time.perf_counter()
            fn(n)
            times[name].append((time.perf_counter() - t) / (n * units))  # seconds per draw
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["inverted"]
    import numba

    threads = args.threads or numba.get_num_threads()
    lines = [f"variant kernels vs the inverted kernel: {threads} thread(s), {draws:.0e} draws per timing, "
             f"median of {rounds} interleaved rounds",
             f"{'method':<12} {'Mdraws/s':>10} {'Melements/s':>12} {'time/draw vs inverted':>22}"]
    out = {"threads": threads, "draws": draws, "rounds": rounds, "methods": {}}
    for name, (_, units, elements) in methods.items():
        per = med[name]
        ratio = per / base
        lines.append(f"{name:<12} {1e-6 / per:>10.0f} {1e-6 * elements / units / per:>12.0f} {ratio:>21.2f}x")
        out["methods"][name] = {"draws_per_s": 1 / per, "elements_per_s": elements / units / per,
                                "ratio_to_inverted": ratio, "times_per_draw": times[name]}
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
