"""Throughput of the reference kernels against vectorised NumPy, measured in one run.

Every ratio compares methods timed in the same process, interleaved round
by round (medians of the rounds, and the median of the per-round ratios),
so it holds on a noisy machine; ``wait_idle`` can also gate each round on an
idle CPU, and every round records how much CPU other processes took.

Sections
--------
A. ``mcdrop.simulate`` (keep counts, exact layer sums, 2 threads and 1)
   against the NumPy baseline at 64, 1024 and 8192 elements.  The baseline
   is the straightforward vectorised Monte Carlo estimator with the same
   statistics: ``m = rng.random((64, n), dtype=float32) < q``; keep counts
   ``m.sum(0)``; per-element mean from ``(m * x / q).sum(0)``.
B. Random bits consumed per mask draw (counted Philox calls × 128 bits)
   against the entropy ``H(q)`` of a Bernoulli(q) draw.
C. Gaussian dropout against inverted dropout, time per draw (8192 units).
D. Peak RSS of fresh processes at 10**7 and 10**10 mask draws (flat memory).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time

import numba
import numpy as np

from ..core import bitplane, rng
from ..sampling import simulate

__all__ = ["run_benchmark", "numpy_baseline", "timed_rounds", "wait_idle", "entropy", "peak_rss", "SIZES"]

#: (elements, samples) of section A: the issue's sizes.
SIZES = ((64, 1_000_000), (1024, 40_000), (8192, 10_000))
_ROWS = 64


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)  # ±exp(N(0, 1)), float32-representable values
    return (np.where(g.random(n) < 0.5, -1.0, 1.0) * np.exp(g.normal(size=n))).astype(np.float32).astype(np.float64)


def numpy_baseline(x: np.ndarray, p: float, samples: int, seed: int = 0):
    """The NumPy estimator of keep counts and per-element means (a zero-argument callable)."""
    q = 1.0 - p
    xs = x / q
    n = x.size

    def run():
        g = np.random.default_rng(seed)
        keep = np.zeros(n, dtype=np.int64)
        ysum = np.zeros(n)
        done = 0
        while done < samples:
            r = min(_ROWS, samples - done)
            m = g.random((r, n), dtype=np.float32) < q
            keep += m.sum(axis=0)
            ysum += (m * xs).sum(axis=0)
            done += r
        return keep, ysum / samples

    return run


def _cpu_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        v = [int(t) for t in fh.readline().split()[1:]]
    return sum(v[:8]) - (v[3] + v[4]), sum(v[:8])


def wait_idle(max_wait: float, threshold: float = 0.8, probe: float = 2.0) -> float:
    """Wait (at most ``max_wait`` s) until the CPU is ``threshold`` idle; returns the idle share seen."""
    t_end = time.time() + max_wait
    while True:
        b0, t0 = _cpu_jiffies()
        time.sleep(probe)
        b1, t1 = _cpu_jiffies()
        idle = 1 - (b1 - b0) / max(1, t1 - t0)
        if idle >= threshold or time.time() > t_end:
            return idle


def timed_rounds(methods: dict, rounds: int, idle_wait: float = 0.0) -> tuple[dict, list]:
    """Time every method once per round, interleaved; returns (times per method, others' CPU share per round)."""
    for f in methods.values():  # warm-up: compilation, caches
        f()
    times: dict = {k: [] for k in methods}
    others = []
    hz = os.sysconf("SC_CLK_TCK")
    for _ in range(rounds):
        if idle_wait:
            wait_idle(idle_wait)
        b0, t0 = _cpu_jiffies()
        c0 = sum(os.times()[:2])
        for k, f in methods.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
        b1, t1 = _cpu_jiffies()
        own = (sum(os.times()[:2]) - c0) * hz
        others.append(max(0.0, (b1 - b0 - own) / max(1, t1 - t0)))
    return times, others


def _ratio(times: dict, num: str, den: str) -> tuple[float, float]:
    a, b = times[num], times[den]
    return statistics.median(a) / statistics.median(b), statistics.median([x / y for x, y in zip(a, b)])


def entropy(q: float) -> float:
    """Entropy ``H(q)`` of a Bernoulli(q) draw, in bits."""
    return -(q * math.log2(q) + (1 - q) * math.log2(1 - q)) if 0 < q < 1 else 0.0


def peak_rss(samples: int, x=(2.0, 4.0, 6.0, 8.0)) -> float:
    """Peak RSS (MiB) of a fresh process running ``simulate`` on ``x`` for ``samples`` samples."""
    code = (
        "import resource, mcdrop\n"
        f"mcdrop.simulate({list(x)!r}, keep=0.5, samples={int(samples)}, seed=0, trace=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def _with_threads(T: int, f):
    def run():
        old = numba.get_num_threads()
        numba.set_num_threads(T)
        try:
            return f()
        finally:
            numba.set_num_threads(old)

    return run


def run_benchmark(*, p: float = 0.3, rounds: int = 7, scale: float = 1.0, rss: bool = False,
                  idle_wait: float = 0.0, seed: int = 0, progress: bool = False) -> dict:
    """Run sections A–D (D only with ``rss``); returns the numbers and a ``text`` report.

    ``scale`` multiplies every sample count (``--quick``: 0.25); ``idle_wait``
    gates each round on an idle CPU for at most that many seconds.
    """
    q = 1.0 - p
    threads = [t for t in (1, 2) if t <= numba.config.NUMBA_NUM_THREADS]
    T2 = max(threads)
    lines, out = [], {"p": p, "rounds": rounds, "threads": threads, "A": {}, "B": {}, "C": {}}

    def say(msg):
        lines.append(msg)
        if progress:
            print(msg, file=sys.stderr, flush=True)

    say(f"mcdrop kernels vs NumPy, p = {p:g}; medians of {rounds} interleaved rounds "
        f"(ratio of medians, and the median of per-round ratios in brackets)")
    for n, S in SIZES:
        S = max(64, int(S * scale))
        x = _inputs(n, seed)
        methods = {"numpy": numpy_baseline(x, p, S, seed)}
        for T in threads:
            methods[f"simulate_{T}t"] = _with_threads(
                T, lambda T=T: simulate(x, p, samples=S, seed=seed, threads=T, trace=False))
        times, others = timed_rounds(methods, rounds, idle_wait)
        rec = {"elements": n, "samples": S, "median_s": {k: statistics.median(v) for k, v in times.items()},
               "others_cpu": statistics.median(others)}
        for T in threads:
            rec[f"numpy_over_simulate_{T}t"] = _ratio(times, "numpy", f"simulate_{T}t")
        out["A"][n] = rec
        r = rec[f"numpy_over_simulate_{T2}t"]
        say(f"A  {n:5d} elements x {S:>9,} samples: numpy {rec['median_s']['numpy']:.4f} s, simulate "
            f"({T2} threads) {rec['median_s'][f'simulate_{T2}t']:.4f} s -> {r[0]:.1f}x [{r[1]:.1f}x]; "
            f"1 thread {rec['numpy_over_simulate_1t'][0]:.1f}x; other processes used "
            f"{100 * rec['others_cpu']:.0f}% of the CPU")

    x = _inputs(1024, seed)
    for qq in (q, 0.5, 0.9):
        st: dict = {}
        S = 64 * 2000
        bitplane.run_mask_planes(bitplane.MaskPlan(x, qq), rng.key_from_seed(seed, rng.STREAM_MASK_V2), 0, S, 1,
                                 trace=False, layer=False, stats=st)
        bits = st["philox_calls"] * 128 / (x.size * S)
        out["B"][qq] = {"bits_per_draw": bits, "entropy": entropy(qq), "stream1_bits": 32}
        say(f"B  q = {qq:g}: {bits:.2f} random bits per mask draw (stream 1: 32); entropy H(q) = {entropy(qq):.3f}")

    units = 8192
    S = max(64, int(4000 * scale))
    w = _inputs(units, seed)
    methods = {}
    for T in threads:
        methods[f"inverted_{T}t"] = _with_threads(
            T, lambda T=T: simulate(w, p, samples=S, seed=seed, threads=T, trace=False))
        methods[f"gaussian_{T}t"] = _with_threads(
            T, lambda T=T: simulate(w, p, variant="gaussian", samples=S, seed=seed, threads=T, trace=False))
    times, others = timed_rounds(methods, rounds, idle_wait)
    for T in threads:
        r = _ratio(times, f"gaussian_{T}t", f"inverted_{T}t")
        ns = {k: statistics.median(times[f"{k}_{T}t"]) * T / (units * S) * 1e9 for k in ("inverted", "gaussian")}
        out["C"][T] = {"gaussian_over_inverted": r, "ns_per_draw_per_thread": ns}
        say(f"C  {units} units, {T} thread(s): inverted {ns['inverted']:.3f} ns, Gaussian {ns['gaussian']:.3f} ns "
            f"per draw and thread -> Gaussian/inverted {r[0]:.2f}x [{r[1]:.2f}x]")
    if rss:
        small, large = 10**7 // 4, 10**10 // 4
        a, b = peak_rss(small), peak_rss(large)
        out["D"] = {"draws": [4 * small, 4 * large], "peak_rss_mib": [a, b], "ratio": b / a}
        say(f"D  peak RSS of simulate: {a:.1f} MiB at 1e7 draws, {b:.1f} MiB at 1e10 draws (ratio {b / a:.3f})")
    out["text"] = "\n".join(lines)
    return out
