"""The exact sample stream the reference samplers keep.

:func:`mcdrop.simulate` and :func:`mcdrop.variant_sampling.simulate_variant`
walk a global sample range ``[start, start + samples)`` in kernel batches
and keep the exact sums ``Σ R`` and ``Σ R²`` of one per-sample statistic
``R`` (integers in units of ``2**EMIN``), with a running trace at a fixed
log-spaced grid of sample counts; the Monte Carlo runs of
:mod:`mcdrop.regularization` and :mod:`mcdrop.inference_gap` use the thread
and exact-sum helpers too.  This module is that shared part:

* driving the batches: :func:`kernel_threads` (thread count, progress bar)
  and :func:`drive` (batches that stop at :func:`trace_grid`);
* what the sums give: :func:`layer_stats` (exact mean and variance of an
  affine image of ``R``) and :func:`running_trace`;
* the record of a run: :func:`merge_order` and :func:`merged_fields` (two
  adjacent shards), :func:`to_record` and :func:`record_fields` (JSON).
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from typing import Callable, Iterator

import numpy as np

from .accumulators import EMIN
from .kernels import MAX_BATCH_PER_THREAD
from .results import json_number

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
    import numba

    T = threads if threads is not None else numba.get_num_threads()
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        from ._progress import make_bar

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


def drive(run, start: int, n_samples: int, per_batch: int, callback, trace: bool = True):
    """Run ``run(pos, count) -> (dz1, dz2)`` over ``[start, start + n_samples)``.

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
        d1, d2 = run(pos, nxt - pos)
        z1 += d1
        z2 += d2
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


# ---------------------------------------------------------------------------
# the record of a run: merge, JSON
# ---------------------------------------------------------------------------


def merge_order(a, b, names: tuple[str, ...]):
    """``(first, second)``: ``a`` and ``b`` in stream order, after checking they can merge.

    ``b`` must be of ``a``'s type, cover the samples adjacent to ``a``'s range
    (on either side), and agree on ``names`` and on ``x``.
    """
    cls = type(a)
    if not isinstance(b, cls):
        raise TypeError(f"`other` must be a {cls.__name__}; got {type(b).__name__}.")
    if b.start + b.samples == a.start:
        a, b = b, a
    if b.start != a.start + a.samples:
        raise ValueError(
            f"`other` must cover the samples adjacent to this simulation's range "
            f"[{a.start}, {a.start + a.samples}); it covers "
            f"[{b.start}, {b.start + b.samples})."
        )
    for name in names:
        if getattr(a, name) != getattr(b, name):
            raise ValueError(
                f"cannot merge simulations with different `{name}`: "
                f"{getattr(a, name)!r} vs {getattr(b, name)!r}."
            )
    if a.x.shape != b.x.shape or not np.array_equal(a.x, b.x):
        raise ValueError("cannot merge simulations of different inputs `x`.")
    return a, b


def merged_fields(a, b) -> dict:
    """The fields every run has, for ``a`` followed by the adjacent ``b`` (exact)."""
    info = dict(a.info)
    info["elapsed_s"] = a.info.get("elapsed_s", 0.0) + b.info.get("elapsed_s", 0.0)
    return dict(
        x=a.x,
        p=a.p,
        q=a.q,
        samples=a.samples + b.samples,
        start=a.start,
        key=a.key,
        variant=a.variant,
        structure=a.structure,
        layer_sum_z=a.layer_sum_z + b.layer_sum_z,
        layer_sumsq_z=a.layer_sumsq_z + b.layer_sumsq_z,
        trace_t=tuple(a.trace_t) + tuple(b.trace_t),
        trace_sum_z=tuple(a.trace_sum_z) + tuple(z + a.layer_sum_z for z in b.trace_sum_z),
        trace_sumsq_z=tuple(a.trace_sumsq_z) + tuple(z + a.layer_sumsq_z for z in b.trace_sumsq_z),
        seed_entropy=a.seed_entropy,
        seed_spawn_key=a.seed_spawn_key,
        info=info,
    )


def to_record(sim, type_name: str, *, after_shape: dict, after_seed: dict) -> dict:
    """JSON-ready record of a run (exact sums as decimal strings).

    The fields every run has, in a fixed order, with the sampler's own
    fields inserted after ``shape`` (``after_shape``) and after the seed
    (``after_seed``).
    """
    tr = sim.trace
    return {
        "type": type_name,
        "variant": sim.variant,
        "structure": sim.structure,
        "p": sim.p,
        "q": sim.q,
        "samples": sim.samples,
        "start": sim.start,
        "x": sim.x.tolist(),
        "shape": list(sim.x.shape),
        **after_shape,
        "key": list(sim.key),
        "seed_entropy": str(sim.seed_entropy) if sim.seed_entropy is not None else None,
        "seed_spawn_key": list(sim.seed_spawn_key),
        **after_seed,
        "layer_sum_exact": str(sim.layer_sum_z),
        "layer_sumsq_exact": str(sim.layer_sumsq_z),
        "exact_scale_exponent": EMIN,
        "layer_mean": sim.layer_mean.to_dict(),
        "trace": {
            "t": list(sim.trace_t),
            "samples": tr["samples"].tolist(),
            "mean": [json_number(v) for v in tr["mean"]],
            "sd": [json_number(v) for v in tr["sd"]],
            "sum_exact": [str(z) for z in sim.trace_sum_z],
            "sumsq_exact": [str(z) for z in sim.trace_sumsq_z],
        },
        "info": sim.info,
    }


def record_fields(d: dict, type_name: str) -> dict:
    """The fields every run has, read back from a :func:`to_record` record (exactly).

    ``variant`` and ``structure`` are left to the caller (their defaults differ).
    """
    if d.get("type") != type_name:
        raise ValueError(
            f"not an {type_name.replace('.', ' ', 1)} record (type={d.get('type')!r})."
        )
    shape = tuple(d["shape"])
    ent = d.get("seed_entropy")
    return dict(
        x=np.asarray(d["x"], dtype=np.float64).reshape(shape),
        p=float(d["p"]),
        q=float(d["q"]),
        samples=int(d["samples"]),
        start=int(d["start"]),
        key=tuple(int(k) for k in d["key"]),
        layer_sum_z=int(d["layer_sum_exact"]),
        layer_sumsq_z=int(d["layer_sumsq_exact"]),
        trace_t=tuple(int(t) for t in d["trace"]["t"]),
        trace_sum_z=tuple(int(z) for z in d["trace"]["sum_exact"]),
        trace_sumsq_z=tuple(int(z) for z in d["trace"]["sumsq_exact"]),
        seed_entropy=int(ent) if ent is not None else None,
        seed_spawn_key=tuple(d.get("seed_spawn_key", ())),
        info=d.get("info", {}),
    )
