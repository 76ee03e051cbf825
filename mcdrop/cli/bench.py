"""Throughput of the reference kernels against vectorised NumPy (and torch).

All methods compute the same statistics — per-element keep counts and the
per-element mean of the outputs — from fresh Bernoulli masks, in one run on
one machine, so the ratios are meaningful even on a noisy machine (medians
of several timings are reported).

Baselines
---------
``numpy``          the straightforward vectorised Monte Carlo estimator:
                   ``m = rng.random((rows, n)) < q``; keep counts ``m.sum(0)``;
                   per-element output sums ``(m * (x / q)).sum(0)``;
                   64 rows per chunk (the fastest chunking measured here).
``numpy-counts``   a leaner NumPy lower bound that, like mcdrop, derives the
                   mean from the keep counts (no outputs materialised).
``torch``          ``torch.nn.functional.dropout`` on a (64, n) batch, keep
                   counts from ``y != 0`` and sums of ``y``.

``mcdrop kernel`` runs the sampling kernel on exactly those statistics (keep
counts, from which the per-element mean follows exactly; plus the kept-per-
sample histogram); ``mcdrop simulate`` is the full :func:`mcdrop.simulate`,
which also forms every sample's layer sum and adds it and its square into the
exact accumulators (about 25% more time at 8192 elements).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import numba
import numpy as np

from ..core import kernels, rng
from ..core.stream import kernel_threads, per_batch
from ..sampling import simulate

__all__ = ["run_benchmark", "peak_rss"]

_ROWS = 64


def _time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _mcdrop(x, p, samples, threads, seed):
    return lambda: simulate(x, p, samples=samples, seed=seed, threads=threads)


def _mcdrop_kernel(x, p, samples, threads, seed):
    """The kernel computing exactly the baselines' statistics (keep counts -> per-element mean)."""
    q = 1.0 - p
    n = x.size
    xpad = np.zeros(kernels.padded_length(n))
    xpad[:n] = x.ravel()
    key = rng.key_from_seed(seed)
    thr = rng.keep_threshold(q)
    step = per_batch(n, threads)

    def run():
        with kernel_threads(threads):
            counts, hist, limbs = kernels.new_accumulators(n, threads)
            for pos in range(0, samples, step):
                c = min(step, samples - pos)
                kernels.run_inverted_batch(xpad, n, thr, key, pos, c, counts, hist, limbs, layer=False)
        keep = counts.sum(axis=0)[:n]
        return keep, x.ravel() / q * keep / samples

    return run


def _numpy(x, p, samples, seed, materialise=True):
    q = 1.0 - p
    xs = x.ravel() / q
    n = xs.size

    def run():
        g = np.random.default_rng(seed)
        keep = np.zeros(n, dtype=np.int64)
        ysum = np.zeros(n)
        done = 0
        while done < samples:
            rows = min(_ROWS, samples - done)
            m = g.random((rows, n)) < q
            keep += m.sum(axis=0)
            if materialise:
                ysum += (m * xs).sum(axis=0)
            done += rows
        if not materialise:
            ysum = xs * keep
        return keep, ysum / samples

    return run


def _torch(x, p, samples, threads, seed):
    import torch

    xt = torch.as_tensor(x.ravel(), dtype=torch.float32)
    n = xt.numel()

    def run():
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        keep = torch.zeros(n, dtype=torch.int64)
        ysum = torch.zeros(n, dtype=torch.float64)
        batch = xt.expand(_ROWS, n)
        done = 0
        with torch.no_grad():
            while done < samples:
                rows = min(_ROWS, samples - done)
                y = torch.nn.functional.dropout(batch[:rows], p, training=True)
                keep += (y != 0).sum(0)
                ysum += y.sum(0, dtype=torch.float64)
                done += rows
        return keep, ysum / samples

    return run


def peak_rss(samples: int, x=(2.0, 4.0, 6.0, 8.0), keep: float = 0.5) -> int:
    """Peak resident memory (bytes) of a fresh process running ``simulate``."""
    code = (
        "import resource, mcdrop\n"
        f"mcdrop.simulate({list(x)!r}, keep={keep!r}, samples={int(samples)}, seed=0)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def run_benchmark(
    *,
    elements: int = 8192,
    draws: int = 2 * 10**9,
    repeats: int = 5,
    threads=None,
    p: float = 0.3,
    seed: int = 0,
    rss: bool = False,
    rss_samples=(10**7, 10**9),
    progress: bool = False,
) -> dict:
    """Measure mask draws per second; returns a dict with a ``text`` table.

    ``draws`` is per mcdrop timing; NumPy and torch time a tenth of it (their
    rate per draw does not depend on the total).
    """
    threads = threads or [1, 2]
    threads = [t for t in threads if t <= numba.config.NUMBA_NUM_THREADS]
    g = np.random.default_rng(seed)
    x = (np.where(g.random(elements) < 0.5, -1.0, 1.0) * np.exp(g.normal(size=elements))).astype(
        np.float32
    ).astype(np.float64)
    samples = max(1, draws // elements)
    base_samples = max(_ROWS, samples // 10)
    rows = []

    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    # warm-up: compile / load the cached kernels
    simulate(x, p, samples=10, seed=seed)

    log("timing numpy ...")
    t_np = _time(_numpy(x, p, base_samples, seed, True), repeats)
    rate_np = base_samples * elements / t_np
    rows.append(("numpy (outputs materialised)", 1, rate_np))
    t_np2 = _time(_numpy(x, p, base_samples, seed, False), repeats)
    rows.append(("numpy-counts (no outputs)", 1, base_samples * elements / t_np2))
    for t in threads:
        log(f"timing mcdrop kernel, {t} thread(s) ...")
        tk = _time(_mcdrop_kernel(x, p, samples, t, seed), repeats)
        rows.append(("mcdrop kernel (same statistics)", t, samples * elements / tk))
    for t in threads:
        log(f"timing mcdrop simulate, {t} thread(s) ...")
        tm = _time(_mcdrop(x, p, samples, t, seed), repeats)
        rows.append(("mcdrop simulate (+ exact layer stats)", t, samples * elements / tm))
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    if have_torch:
        for t in threads:
            log(f"timing torch, {t} thread(s) ...")
            tt = _time(_torch(x, p, base_samples, t, seed), repeats)
            rows.append(("torch F.dropout", t, base_samples * elements / tt))

    result = {
        "elements": elements,
        "p": p,
        "draws_mcdrop": samples * elements,
        "draws_baselines": base_samples * elements,
        "repeats": repeats,
        "rows": [
            {"method": m, "threads": t, "draws_per_s": r, "ratio_to_numpy": r / rate_np}
            for m, t, r in rows
        ],
    }
    mc = {t: r for m, t, r in rows if m.startswith("mcdrop kernel")}
    if 1 in mc and 2 in mc:
        result["mcdrop_speedup_2_threads"] = mc[2] / mc[1]
    lines = [
        f"Mask draws per second, {elements} elements, p = {p:g}; median of {repeats} timings",
        f"{'method':<38} {'threads':>7} {'Mdraws/s':>10} {'x numpy':>8}",
    ]
    for m, t, r in rows:
        lines.append(f"{m:<38} {t:>7} {r / 1e6:>10.1f} {r / rate_np:>8.1f}")
    if "mcdrop_speedup_2_threads" in result:
        lines.append(f"mcdrop kernel 2-thread speed-up: {result['mcdrop_speedup_2_threads']:.2f}x")
    if rss:
        rs = {}
        for n in rss_samples:
            log(f"peak RSS of simulate(samples={n:.0e}) in a fresh process ...")
            rs[int(n)] = peak_rss(n)
        result["peak_rss_bytes"] = {str(k): v for k, v in rs.items()}
        a, b = rs[int(rss_samples[0])], rs[int(rss_samples[-1])]
        result["peak_rss_ratio"] = b / a
        lines.append(
            "peak RSS (seed example, fresh process): "
            + ", ".join(f"{k:.0e} samples {v / 2**20:.1f} MiB" for k, v in rs.items())
            + f"; ratio {b / a:.3f}"
        )
    result["text"] = "\n".join(lines)
    return result


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_benchmark(progress=True), indent=1))
