"""Reference sampling of every dropout law: :func:`simulate`.

Counter-based Philox streams (``STREAM_MASK`` for Bernoulli masks,
``STREAM_NOISE`` for Gaussian noise), integer or exact-superaccumulator
statistics, memory flat in the sample count, and bit-identical results
whatever the thread count or shard split (:meth:`Simulation.merge`).

How each law is sampled
-----------------------
* **Two-point laws** (inverted, standard, alpha; any structure): the output
  is ``y_e = o_e + s c_e m_u(e)`` (:meth:`mcdrop.laws.TwoPointLaw.affine_map`),
  so the keep count of each unit and the per-sample sum ``R = Σ_u W_u m_u``
  with unit weights ``W_u = Σ_{e ∈ u} c_e`` are sufficient statistics: the
  core kernel (:func:`mcdrop.core.kernels.run_inverted_batch`) runs on the
  unit weights, unit ``u`` being Philox word ``u`` of the sample.
* **Gaussian dropout**: :func:`mcdrop.core.noise_kernel.run_gaussian_batch`
  (integer sums of the grid noise per unit; exact per-sample sums).
* **DropConnect**: :func:`mcdrop.core.kernels.run_dropconnect_batch`
  (keep counts per weight; exact per-output sums and squares).
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from .._validation import check_sample_range, check_seed, check_x, resolve_pq
from ..core import bitplane, distributed, kernels, noise_kernel, rng
from ..core.progress import make_bar
from ..core.accumulators import limbs_to_int
from ..core.stream import check_threads, drive, kernel_threads, outside_exact_range, per_batch
from ..laws import check_weight, variant_law
from .record import Simulation, normalise_square_sums

__all__ = ["simulate", "run_masks", "run_two_point", "run_gaussian", "run_dropconnect"]


def _simulate_iv(x, p, keep, variant, structure, weight, samples, seed, start, threads):
    pp, qq = resolve_pq(p, keep)
    law = variant_law(variant, pp, structure=structure)
    xa = check_x(x)
    n_samples, start = check_sample_range(samples, start)
    # Exact accumulation of per-sample sums and of their squares (Dekker's
    # TwoProduct) needs every nonzero |x| in [1e-100, 1e100]; real activations are.
    bad = outside_exact_range(xa)
    if bad is not None:
        raise ValueError(
            f"`x` entries must be 0 or have magnitude in [1e-100, 1e100] (so "
            f"per-sample sums and their squares are accumulated exactly); got {bad!r}."
        )
    ss = check_seed(seed)
    t = check_threads(threads)
    w = None
    if law.variant == "dropconnect":
        if weight is None:
            raise ValueError("variant 'dropconnect' needs `weight`, the (out, in) matrix whose entries are dropped.")
        w = check_weight(weight, xa)
        bad = outside_exact_range(w * xa)
        if bad is not None:
            raise ValueError(
                "variant 'dropconnect': every nonzero W_ij x_j must have magnitude in "
                f"[1e-100, 1e100] (so per-output sums and squares are exact); got {bad!r}."
            )
    elif weight is not None:
        raise ValueError(f"`weight` is only used by variant 'dropconnect'; got variant {law.variant!r}.")
    if law.variant == "gaussian" and start + n_samples > noise_kernel.MAX_GAUSSIAN_SAMPLES:
        raise ValueError(
            f"variant 'gaussian': `start + samples` must be at most 2**33 (int64 noise sums); "
            f"got {start + n_samples}; split the run into shards and merge them."
        )
    return law, xa, w, n_samples, ss, start, t


def simulate(
    x,
    p=None,
    *,
    keep=None,
    variant: str = "inverted",
    structure: str = "element",
    weight=None,
    samples,
    seed=None,
    start: int = 0,
    threads: int | None = None,
    progress: bool | Callable[[int], object] = False,
    trace: bool = True,
    client=None,
) -> Simulation:
    """Draw dropout masks (or noise) for ``x`` and return exact statistics.

    Parameters
    ----------
    x : array_like
        Input activations (any shape, finite, non-empty).  ``structure=
        "channel"`` needs shape ``(N, C, *spatial)``; ``"sample"`` needs
        ``(N, *rest)``; DropConnect needs a vector of length ``in``.
    p : float, optional
        **Drop** probability in [0, 1] (PyTorch's ``p``, Keras' ``rate``).
    keep : float, optional
        Keep probability ``q = 1 - p``, as an explicit alternative to ``p``.
        Give exactly one of ``p`` and ``keep``.
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}, default "inverted"
        The law to sample (:mod:`mcdrop.laws`).
    structure : {"element", "channel", "sample"}, default "element"
        The independent unit of the mask or noise.
    weight : array_like, optional
        DropConnect's weight matrix, shape ``(out, in)``.
    samples : int
        Number of masks (or noise vectors) to draw.
    seed : int, numpy.random.SeedSequence or None
        Seed of the counter-based stream.  The same seed gives bit-identical
        results whatever ``threads`` is and however the range is sharded.
    start : int, default 0
        Global index of the first sample: ``simulate(..., samples=b,
        start=a)`` is the shard ``[a, a + b)`` of the stream, to be combined
        with :meth:`Simulation.merge`.
    threads : int, optional
        Numba threads to use (default: all of numba's threads).
    progress : bool or callable, default False
        True shows a tqdm bar on stderr; a callable receives the number of
        samples completed after every kernel call.
    trace : bool, default True
        Record the running layer mean at log-spaced sample counts
        (:attr:`Simulation.trace`); False skips it (fewer, larger kernel
        calls).  Every other statistic is identical either way.
    client : distributed.Client, optional
        Run on a Dask cluster (``pip install 'mcdrop[dask]'``): the range is
        cut into contiguous shards (counter ranges), each computed by a
        worker and merged exactly in stream order, so the result equals the
        local run bit for bit for any number of workers.  ``threads`` is
        then per shard (default 1: a worker runs one shard per thread).  A
        shard lost with its worker is recomputed from its range.

    Returns
    -------
    Simulation

    Raises
    ------
    ValueError
        Naming the argument and the reason: unknown variant/structure, a
        shape the structure cannot use, weight/data shape mismatch,
        non-finite data, or ``p = 1`` where the law is undefined (Gaussian,
        alpha, DropConnect).

    Notes
    -----
    Memory is ``threads × units`` integers, independent of ``samples``.
    A keep decision compares a 32-bit Philox word with ``round(q·2**32)``,
    so the realised keep probability is within 2**-33 of ``q``
    (:attr:`Simulation.effective_keep`).

    Examples
    --------
    >>> import mcdrop
    >>> sim = mcdrop.simulate([2, 4, 6, 8], keep=0.5, samples=10**6, seed=0)
    >>> round(sim.layer_mean.mean, 2)
    5.0
    >>> s = mcdrop.simulate([2, 4, 6, 8], p=0.5, variant="gaussian", samples=10**5, seed=0)
    >>> round(s.layer_mean.mean, 1)
    5.0
    """
    law, xa, w, n_samples, ss, start, t = _simulate_iv(
        x, p, keep, variant, structure, weight, samples, seed, start, threads
    )
    if client is not None:
        return _simulate_on_cluster(client, law, xa, w, p, keep, n_samples, ss, start, t, progress, trace)
    if law.variant == "dropconnect":
        n_units, unit_size, unit_shape = w.size, 1, w.shape
    else:
        lay = law.layout(xa.shape)
        n_units, unit_size, unit_shape = lay.n_units, lay.unit_size, lay.unit_shape
    t0 = time.perf_counter()
    desc = "simulate" if law.variant == "inverted" else f"simulate {law.variant}"
    with kernel_threads(t, progress, n_samples, desc) as (T, callback):
        if law.two_point:
            out = run_two_point(law, xa, ss, start, n_samples, T, callback, trace)
        elif law.variant == "gaussian":
            out = run_gaussian(law, xa, n_units, ss, start, n_samples, T, callback, trace)
        else:
            out = run_dropconnect(law, xa, w, ss, start, n_samples, T, callback, trace)
    if out.get("keep_counts") is not None:
        out["keep_counts"] = out["keep_counts"].reshape(unit_shape)
    return Simulation(
        variant=law.variant, structure=law.structure, x=xa, weight=w, p=law.p, q=law.q,
        samples=n_samples, start=start, n_units=n_units, unit_size=unit_size,
        seed_entropy=ss.entropy, seed_spawn_key=tuple(ss.spawn_key),
        info={"threads": T, "elapsed_s": time.perf_counter() - t0}, **out,
    )


def _simulate_on_cluster(client, law, xa, w, p, keep, n_samples, ss, start, threads, progress, trace):
    """:func:`simulate` as shards on ``client``, merged in stream order (exact)."""
    t0 = time.perf_counter()
    workers = distributed.worker_count(client)
    size = w.size if w is not None else xa.size
    ranges = distributed.shard_ranges(start, n_samples, distributed.shard_count(n_samples, size, workers))
    bar = None
    callback = progress if callable(progress) else None
    if progress is True:
        bar = make_bar(total=n_samples, desc=f"simulate on {workers} worker thread(s)", unit="sample")
        callback = bar.update
    # the shards get the probability exactly as given (p or keep), so their threshold is the local one's
    kwargs = dict(x=xa, p=p, keep=keep, variant=law.variant, structure=law.structure, weight=w, seed=ss,
                  threads=1 if threads is None else threads, trace=trace)
    try:
        parts = distributed.run_shards(client, simulate, ranges, kwargs=kwargs, progress=callback)
    finally:
        if bar is not None:
            bar.close()
    sim = functools.reduce(lambda a, b: a.merge(b), parts)
    return replace(sim, info={"workers": workers, "shards": len(ranges), "elapsed_s": time.perf_counter() - t0})


def _limb_total(limbs, T: int, *index) -> int:
    return sum(limbs_to_int(limbs[(ti, *index)]) for ti in range(T))


def run_masks(values, q, ss, start, n_samples, T, callback, trace=True) -> dict:
    """Bernoulli(q) masks over ``values`` (1-d) on the stream-2 kernel: the stream's fields.

    Returns ``key``, the flat ``keep_counts``, ``keep_count_hist`` and the
    exact sums of ``Σ_e values_e m_e`` with their trace
    (:func:`mcdrop.core.bitplane.run_mask_planes`).
    """
    key = rng.key_from_seed(ss, rng.STREAM_MASK_V2)
    out = bitplane.run_mask_planes(bitplane.MaskPlan(values, q), key, start, n_samples, T, trace=trace,
                                   callback=callback)
    out["stream"] = bitplane.STREAM_VERSION
    return out


def run_two_point(law, xa, ss, start, n_samples, T, callback, trace) -> dict:
    """A two-point law: the core kernel on the unit weights ``W_u = Σ_{e in u} c_e``."""
    _, _, c = law.affine_map(xa)
    wu = law.unit_sums(c) if law.structure != "element" else c.ravel()
    bad = outside_exact_range(wu)
    if bad is not None:
        raise ValueError(
            f"variant {law.variant!r}: every nonzero unit sum of the inputs must have magnitude in "
            f"[1e-100, 1e100] (so per-sample sums and squares are exact); got {bad!r}."
        )
    return run_masks(wu, law.q, ss, start, n_samples, T, callback, trace)


def run_gaussian(law, xa, n_units, ss, start, n_samples, T, callback, trace) -> dict:
    """Gaussian noise per unit on the noise kernel (integer grid sums; exact layer sums)."""
    key = rng.key_from_seed(ss, rng.STREAM_NOISE)
    npairs = (n_units + 1) // 2
    wu = np.zeros(2 * npairs)
    wu[:n_units] = law.unit_sums(xa)
    valid = np.zeros(2 * npairs)
    valid[:n_units] = 1.0
    w2 = np.ascontiguousarray(wu.reshape(npairs, 2).T)  # slot [h, j] <-> unit 2j + h
    v2 = np.ascontiguousarray(valid.reshape(npairs, 2).T)
    acc, limbs = noise_kernel.new_gaussian_accumulators(n_units, T)
    tot_sum = np.zeros(2 * npairs, dtype=np.int64)
    tot_hi = np.zeros(2 * npairs, dtype=np.int64)
    tot_lo = np.zeros(2 * npairs, dtype=np.int64)
    pow_z = [0, 0]

    def run(pos, count):
        noise_kernel.run_gaussian_batch(w2, v2, key, pos, count, acc, limbs)
        a = acc.sum(axis=0)  # (3, 2, npairs); each thread's sums < 2**56 (2**24 samples)
        tot_sum[:] += a[0].T.ravel()
        tot_lo[:] += a[1].T.ravel()
        tot_hi[:] += a[2].T.ravel()
        normalise_square_sums(tot_hi, tot_lo)
        pow_z[0] += _limb_total(limbs, T, 2)
        pow_z[1] += _limb_total(limbs, T, 3)
        return _limb_total(limbs, T, 0), _limb_total(limbs, T, 1)

    batch = per_batch(n_units, T, 2**24)
    z1, z2, tt, t1, t2 = drive(run, start, n_samples, batch, callback, trace)
    return dict(
        key=(int(key[0]), int(key[1])),
        noise_sum=tot_sum[:n_units].copy(), noise_sumsq_hi=tot_hi[:n_units].copy(),
        noise_sumsq_lo=tot_lo[:n_units].copy(), noise_pow_z=(pow_z[0], pow_z[1]),
        layer_sum_z=z1, layer_sumsq_z=z2, trace_t=tt, trace_sum_z=t1, trace_sumsq_z=t2,
    )


def run_dropconnect(law, xa, w, ss, start, n_samples, T, callback, trace) -> dict:
    """A mask per weight on the DropConnect kernel (exact per-output sums)."""
    key = rng.key_from_seed(ss, rng.STREAM_MASK)
    n_out, n_in = w.shape
    c = np.ascontiguousarray((w * xa).ravel())
    thr = rng.keep_threshold(law.q)
    counts, hist, limbs_out, limbs_layer = kernels.new_dropconnect_accumulators(n_out, n_in, T)
    out_z1 = [0] * n_out
    out_z2 = [0] * n_out

    def run(pos, count):
        kernels.run_dropconnect_batch(c, n_out, n_in, thr, key, pos, count, counts, hist, limbs_out, limbs_layer)
        for i in range(n_out):
            out_z1[i] += _limb_total(limbs_out, T, i, 0)
            out_z2[i] += _limb_total(limbs_out, T, i, 1)
        return _limb_total(limbs_layer, T, 0), _limb_total(limbs_layer, T, 1)

    batch = per_batch(n_out * n_in, T)
    z1, z2, tt, t1, t2 = drive(run, start, n_samples, batch, callback, trace)
    return dict(
        key=(int(key[0]), int(key[1])),
        keep_counts=counts.sum(axis=0)[: n_out * n_in],
        keep_count_hist=hist.sum(axis=0),
        output_sum_z=tuple(out_z1), output_sumsq_z=tuple(out_z2),
        layer_sum_z=z1, layer_sumsq_z=z2, trace_t=tt, trace_sum_z=t1, trace_sumsq_z=t2,
    )
