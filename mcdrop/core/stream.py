"""The shard/stream driver: walk a sample range in kernel batches, exactly.

Every sampler of mcdrop (:func:`mcdrop.simulate` and the model runs of the
regularisation and inference-gap suites) walks a global sample range
``[start, start + samples)`` in kernel batches and keeps exact sums of
per-sample statistics (integers in units of ``2**EMIN``), optionally with a
running trace at a fixed log-spaced grid of sample counts.  This module is
that shared part:

* driving the batches: :func:`kernel_threads` (thread count, progress bar),
  :func:`per_batch` (batch size) and :func:`drive` (batches that stop at
  :func:`trace_grid`);
* what the sums give: :func:`mean_var`, :func:`layer_stats` (exact mean and
  variance of an affine image of a statistic) and :func:`running_trace`.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from typing import Any, Callable, Iterator

import numba
import numpy as np

from .._validation import check_positive_int
from .accumulators import EMIN
from .kernels import MAX_BATCH_PER_THREAD
from .progress import make_bar

__all__ = [
    "TRACE_POINTS_PER_DECADE",
    "DRAWS_PER_THREAD_BATCH",
    "EXACT_RANGE",
    "trace_grid",
    "check_threads",
    "outside_exact_range",
    "per_batch",
    "kernel_threads",
    "drive",
    "to_fraction",
    "mean_var",
    "layer_stats",
    "running_trace",
]

#: Running-mean trace points per decade of the sample count.
TRACE_POINTS_PER_DECADE = 20
#: Target mask draws per thread and kernel call (a call takes ~10 ms).
DRAWS_PER_THREAD_BATCH = 2**25
#: Exact accumulation of ``Σ v`` and ``Σ v²`` (Dekker's TwoProduct) needs every
#: nonzero ``|v|`` in this range; real activations are.
EXACT_RANGE = (1e-100, 1e100)


# ---------------------------------------------------------------------------
# driving the kernels
# ---------------------------------------------------------------------------


def trace_grid(start: int, stop: int) -> list[int]:
    """Global sample counts in ``(start, stop]`` at which the trace is recorded.

    The grid is fixed (``ceil(10**(k/20))`` for k = 0, 1, ...), so shards of
    one stream record the same points a single run would.
    """
    pts = []
    k = 0
    while True:
        t = math.ceil(10 ** (k / TRACE_POINTS_PER_DECADE) - 1e-9)
        if t > stop:
            break
        if t > start and (not pts or t != pts[-1]):
            pts.append(t)
        k += 1
    return pts


def check_threads(threads: Any) -> int | None:
    """``None`` (all of numba's threads) or an int in [1, numba's maximum]."""
    if threads is None:
        return None
    t = check_positive_int(threads, "threads")
    if t > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"`threads` must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
            f"(numba's thread pool on this machine); got {threads!r}."
        )
    return t


def outside_exact_range(values: np.ndarray):
    """The first nonzero magnitude outside :data:`EXACT_RANGE` (the smallest if too small), or None."""
    lo, hi = EXACT_RANGE
    av = np.abs(values[values != 0])
    if av.size and (av.min() < lo or av.max() > hi):
        return av.min() if av.min() < lo else av.max()
    return None


def per_batch(draws_per_sample: int, threads: int, cap: int = MAX_BATCH_PER_THREAD) -> int:
    """Samples per kernel call: about :data:`DRAWS_PER_THREAD_BATCH` draws per thread."""
    return max(1, min(cap, DRAWS_PER_THREAD_BATCH // max(draws_per_sample, 1)) * threads)


@contextlib.contextmanager
def kernel_threads(
    threads: int | None, progress: bool | Callable[[int], object] = False, total: int = 0, desc: str = ""
) -> Iterator[tuple[int, Callable[[int], object] | None]]:
    """Run a block with ``threads`` Numba threads and a progress callback.

    Yields ``(T, callback)``: the thread count used (default: all of
    numba's) and what to call with the samples done after each kernel call
    (a tqdm bar's ``update`` when ``progress is True``, ``progress`` itself
    when it is callable, else None).  Numba's thread count is restored after.
    """
    T = threads if threads is not None else numba.get_num_threads()
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        bar = make_bar(total=total, desc=desc, unit="sample")
        callback = bar.update
    old_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(T)
        yield T, callback
    finally:
        numba.set_num_threads(old_threads)
        if bar is not None:
            bar.close()


def drive(run, start: int, n_samples: int, per_batch: int, callback=None, trace: bool = True):
    """Run ``run(pos, count) -> (dz1, dz2)`` over ``[start, start + n_samples)``.

    ``run`` makes one kernel call on the samples ``[pos, pos + count)`` and
    returns the exact sums of the run's statistic and its square over them
    (or None when it keeps its own sums); ``callback(count)`` follows every
    call.
    With ``trace``, batches stop at the fixed trace grid (:func:`trace_grid`),
    so shards record the same trace points one run would; without it,
    batches are as large as allowed (each kernel call costs a thread-pool
    wake-up, which a busy machine makes slow).  Returns ``(z1, z2, trace_t,
    trace_sum_z, trace_sumsq_z)``.
    """
    stop = start + n_samples
    grid = trace_grid(start, stop) if trace else []
    z1 = z2 = 0
    tt, t1, t2 = [], [], []
    pos, gi = start, 0
    while pos < stop:
        nxt = min(stop, pos + per_batch)
        while gi < len(grid) and grid[gi] <= pos:
            gi += 1
        if gi < len(grid) and grid[gi] < nxt:
            nxt = grid[gi]
        d = run(pos, nxt - pos)
        if d is not None:
            z1 += d[0]
            z2 += d[1]
        if gi < len(grid) and grid[gi] == nxt:
            tt.append(nxt)
            t1.append(z1)
            t2.append(z2)
        if callback is not None:
            callback(nxt - pos)
        pos = nxt
    return z1, z2, tuple(tt), tuple(t1), tuple(t2)


# ---------------------------------------------------------------------------
# what the exact sums give
# ---------------------------------------------------------------------------


def to_fraction(z: int) -> Fraction:
    """The exact value of an accumulator integer ``z`` (``z · 2**EMIN``)."""
    return Fraction(z, 1 << -EMIN)


def mean_var(n: int, z1: int, z2: int) -> tuple[Fraction, Fraction | None]:
    """Exact mean and unbiased variance (None for n < 2) of a statistic from its exact sums."""
    s1, s2 = to_fraction(z1), to_fraction(z2)
    mean = s1 / n
    if n < 2:
        return mean, None
    return mean, max((n * s2 - s1 * s1) / (n * (n - 1)), Fraction(0))


def layer_stats(n: int, z1: int, z2: int, a0: Fraction, a1: Fraction) -> tuple[float, float]:
    """Mean and unbiased variance of ``L = a0 + a1 R`` over ``n`` samples (NaN variance for n < 2)."""
    m, v = mean_var(n, z1, z2)
    return float(a0 + a1 * m), (float("nan") if v is None else float(a1 * a1 * v))


def running_trace(sim, layer: Callable[[int, int, int], tuple[float, float]]) -> dict:
    """``sim``'s running layer mean at its trace points: ``samples``, ``mean``, ``sd`` arrays.

    ``layer(n, z1, z2)`` turns the exact sums after ``n`` samples into the
    layer mean and variance.
    """
    ns = np.asarray(sim.trace_t, dtype=np.int64) - sim.start
    means = np.empty(len(ns))
    sds = np.empty(len(ns))
    for i, (n, z1, z2) in enumerate(zip(ns.tolist(), sim.trace_sum_z, sim.trace_sumsq_z)):
        m, v = layer(n, z1, z2)
        means[i] = m
        sds[i] = math.sqrt(v) if v == v else float("nan")
    return {"samples": ns, "mean": means, "sd": sds}
