"""Audit overhead: the default audit of torch.nn.Dropout(0.3) vs the bare loop of the same calls.

Usage: python scripts/bench_audit.py [--repeats 7] [--p 0.3] [--shape 64,128]

Both timings are taken in the same run, interleaved (audit, bare, audit,
bare, ...) so that a neighbour's load hits both alike, and the medians are
compared.  The bare loop makes exactly the calls the audit makes (2 eval
calls, the training calls, 1 eval call, and the 8 forward/backward passes of
the gradient check) through the same adapter, doing nothing with the
outputs.  Target: wall-clock ratio <= 1.25.  The audit folds each batch of
outputs in a worker thread while the next batch is collected, so on a busy
machine (no free core) the wall-clock ratio rises towards the CPU-time
ratio, which is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--p", type=float, default=0.3)
    ap.add_argument("--shape", default="64,128")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))

    import torch

    import mcdrop
    from mcdrop.adapters import torch_module
    from mcdrop.auditing import audit_input
    from mcdrop.auditing.budget import EVAL_CALLS_BEFORE, GRADIENT_CALLS

    fn = torch_module(torch.nn.Dropout(args.p), seed=0)
    rep = mcdrop.audit(fn, shape=shape)  # warm-up: Numba compilation, imports
    calls = rep.calls
    x = audit_input(shape).astype(np.float32)
    g = audit_input(shape, seed=1).astype(np.float32)

    def bare() -> None:
        for _ in range(EVAL_CALLS_BEFORE):
            fn(x, False)
        for _ in range(calls):
            fn(x, True)
        fn(x, False)
        for _ in range(GRADIENT_CALLS):
            fn.forward_backward(x, g)

    t_audit, t_bare, c_audit, c_bare = [], [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rep = mcdrop.audit(fn, shape=shape)
        t_audit.append(time.perf_counter() - t0)
        c_audit.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        bare()
        t_bare.append(time.perf_counter() - t0)
        c_bare.append(time.process_time() - c0)
    ma, mb = statistics.median(t_audit), statistics.median(t_bare)
    ca, cb = statistics.median(c_audit), statistics.median(c_bare)
    print(f"default audit of torch.nn.Dropout({args.p}) on {shape}: {calls:,} training calls, "
          f"{rep.draws:,} mask draws, verdict {rep.verdict}")
    print(f"  detects a relative mean bias of {rep.detectable_bias:.3g} and a keep-rate error of "
          f"{rep.detectable_rate_error:.3g} with power 0.99 at alpha={rep.alpha:g}")
    print(f"  audit      median {ma:.3f} s  (all: {', '.join(f'{t:.3f}' for t in t_audit)})")
    print(f"  bare loop  median {mb:.3f} s  (all: {', '.join(f'{t:.3f}' for t in t_bare)})")
    print(f"  overhead ratio audit / bare = {ma / mb:.3f}  (wall clock, medians; target <= 1.25)")
    print(f"  CPU time (all threads) audit {ca:.3f} s / bare {cb:.3f} s = {ca / cb:.3f}  "
          f"(the work added, whether or not a second core is free)")


if __name__ == "__main__":
    main()
