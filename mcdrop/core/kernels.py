"""Numba parallel kernels: sample dropout masks and stream them into accumulators.

This module is the stream-1 kernel family's common part and the DropConnect
kernel (:func:`run_dropconnect_batch`, a mask per weight).  The building
blocks the stream-1 kernels of :mod:`mcdrop.core` share are public here:
:func:`thread_range` (the partition of a batch over threads),
:func:`fill_mask` (the stream-1 element layout: one 32-bit Philox word per
draw), :func:`masked_sum`, :func:`add_bytes`, :func:`sum_bytes` and
:func:`flush_bytes` with :data:`FLUSH` (uint8 counters flushed into int64).
The masks of the two-point laws come from the stream-2 kernel,
:mod:`mcdrop.core.bitplane`.

A batch of ``count`` samples starting at global sample index ``start`` is
split into ``threads`` contiguous ranges, one per ``prange`` iteration.  Each
iteration owns a row of every output array (per-thread keep counts,
histogram, exact limbs), so there are no races and no locks; because every
output is an integer (keep counts, histogram) or an exact integer sum (limbs,
see :mod:`mcdrop.accumulators`), the result does not depend on how the range
was split.  Memory is ``threads × elements``, independent of ``count``.

Hot loop (per sample): the Philox words for all element blocks are compared
with the 32-bit keep threshold and stored as 0/1 bytes into a per-thread
buffer (a loop over independent counters, which LLVM vectorises); then two
short vectorisable passes add the bytes into uint8 keep counts (flushed into
int64 every 255 samples; 64 counters per AVX-512 add), sum them into the
per-sample keep count, and form the per-sample weighted sum
``S = Σ_e x_e m_e`` (see :func:`masked_sum` for why it is the same float64
on every thread and shard).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .accumulators import (
    MAX_ADDS_BEFORE_NORMALIZE,
    NLIMBS,
    exact_add,
    exact_add_square,
    normalize_limbs,
)
from .rng import MASK32, SH32, philox_block

__all__ = [
    "run_dropconnect_batch",
    "new_dropconnect_accumulators",
    "padded_length",
    "check_batch",
    "thread_range",
    "fill_mask",
    "masked_sum",
    "add_bytes",
    "sum_bytes",
    "flush_bytes",
    "FLUSH",
    "MAX_BATCH_PER_THREAD",
    "LANES",
]

#: The per-sample dot product runs in this many fixed lanes.
LANES = 8
#: A thread's exact limbs take two additions per sample; stay well inside
#: :data:`mcdrop.accumulators.MAX_ADDS_BEFORE_NORMALIZE`.
MAX_BATCH_PER_THREAD = MAX_ADDS_BEFORE_NORMALIZE // 4


@nb.njit(inline="always", cache=True)
def thread_range(start, count, t, T):
    """Samples ``[s0, s1)`` of thread ``t`` of ``T`` in the batch ``[start, start + count)``.

    Contiguous ranges in thread order; every kernel partitions its batch this
    way, and because each sample's draws depend only on (key, sample,
    element) the split cannot change a result.
    """
    return start + (count * t) // T, start + (count * (t + 1)) // T


@nb.njit(inline="always", cache=True)
def fill_mask(mbuf, nblocks, slo, shi, thr, k0, k1):
    """Keep decisions (0/1 bytes) of one sample for elements ``0 .. 4 nblocks - 1``.

    Element ``e`` is word ``e % 4`` of Philox block ``e // 4`` of the sample
    (``slo``, ``shi``: its index's low and high 32 bits), kept when the word
    is below ``thr``.
    """
    for b in range(nblocks):
        ub = np.uint64(b)
        w0, w1, w2, w3 = philox_block(slo, shi, ub & MASK32, ub >> SH32, k0, k1)
        j = 4 * b
        mbuf[j] = np.uint8(w0 < thr)
        mbuf[j + 1] = np.uint8(w1 < thr)
        mbuf[j + 2] = np.uint8(w2 < thr)
        mbuf[j + 3] = np.uint8(w3 < thr)


@nb.njit(fastmath={"reassoc", "nsz"}, cache=True)
def masked_sum(xpad, mbuf):
    """``Σ_j xpad[j]`` over the kept positions (``mbuf[j] != 0``), vectorised.

    ``reassoc`` lets LLVM split the sum into SIMD lanes; the resulting order
    is fixed by the compiled code and the (padded) length alone, so every
    thread and every shard computes the same float64 for the same sample.
    (A CPU with a different vector width may round it differently in the
    last bit; keep counts and histograms are integers and never differ.)
    """
    s = 0.0
    for j in range(xpad.shape[0]):
        s += xpad[j] if mbuf[j] != 0 else 0.0
    return s


@nb.njit(inline="always", cache=True)
def add_bytes(c8, mbuf):
    """``c8 += mbuf`` (uint8 counters; flush them at least every :data:`FLUSH` samples)."""
    for j in range(mbuf.shape[0]):
        c8[j] += mbuf[j]


@nb.njit(inline="always", cache=True)
def sum_bytes(mbuf):
    """The number of kept elements of one sample's 0/1 bytes."""
    kc = np.uint32(0)
    for j in range(mbuf.shape[0]):
        kc += mbuf[j]
    return kc


@nb.njit(inline="always", cache=True)
def flush_bytes(counts, c8):
    """Add the uint8 counters ``c8`` into the int64 ``counts`` and zero them."""
    for j in range(c8.shape[0]):
        counts[j] += c8[j]
        c8[j] = 0


#: Samples between flushes of the uint8 per-thread counts into int64.
FLUSH = 255


def check_batch(count: int, threads: int) -> None:
    """Refuse a batch larger than the exact limbs allow (:data:`MAX_BATCH_PER_THREAD` a thread)."""
    if count > MAX_BATCH_PER_THREAD * threads:
        raise ValueError(
            f"`count` must be at most {MAX_BATCH_PER_THREAD * threads} per batch; got {count}."
        )


def padded_length(n: int) -> int:
    """Length of the zero-padded per-thread buffers for ``n`` elements."""
    return max(LANES, -(-n // LANES) * LANES)


# ---------------------------------------------------------------------------
# DropConnect
# ---------------------------------------------------------------------------


@nb.njit(parallel=True, cache=True)
def _dropconnect_batch(c, n_out, n_in, thr, k0, k1, start, count, counts, hist, limbs_out, limbs_layer):
    """Stream ``count`` DropConnect samples from ``start`` into per-thread accumulators.

    c           : float64[n_out * n_in]  c_ij = W_ij x_j, row-major
    counts      : int64[T, npad]         keep counts per weight (accumulated)
    hist        : int64[T, n + 1]        per-sample kept-weight histogram (accumulated)
    limbs_out   : int64[T, n_out, 2, NLIMBS]  exact Σ g_i, Σ g_i² (zeroed here)
    limbs_layer : int64[T, 2, NLIMBS]    exact Σ S, Σ S² with S = Σ_i g_i (zeroed here)
    where g_i = Σ_j c_ij m_ij (the output is y_i = g_i / q).
    """
    T = counts.shape[0]
    npad = counts.shape[1]
    n = n_out * n_in
    nblocks = (n + 3) // 4
    for t in nb.prange(T):
        s0, s1 = thread_range(start, count, t, T)
        mbuf = np.zeros(npad, dtype=np.uint8)
        c8 = np.zeros(npad, dtype=np.uint8)
        cnt = counts[t]
        h = hist[t]
        lo = limbs_out[t]
        ll = limbs_layer[t]
        lo[:] = 0
        ll[:] = 0
        for chunk0 in range(s0, s1, FLUSH):
            chunk1 = min(s1, chunk0 + FLUSH)
            for s in range(chunk0, chunk1):
                us = np.uint64(s)
                fill_mask(mbuf, nblocks, us & MASK32, us >> SH32, thr, k0, k1)
                for j in range(n, npad):
                    mbuf[j] = 0
                add_bytes(c8, mbuf)
                h[sum_bytes(mbuf)] += 1
                tot = 0.0
                for i in range(n_out):
                    # fixed-order vectorised reduction over the row (order set by n_in only)
                    g = masked_sum(c[i * n_in : (i + 1) * n_in], mbuf[i * n_in : (i + 1) * n_in])
                    exact_add(lo[i, 0], g)
                    exact_add_square(lo[i, 1], g)
                    tot += g
                exact_add(ll[0], tot)
                exact_add_square(ll[1], tot)
            flush_bytes(cnt, c8)
        for i in range(n_out):
            normalize_limbs(lo[i, 0])
            normalize_limbs(lo[i, 1])
        normalize_limbs(ll[0])
        normalize_limbs(ll[1])


def new_dropconnect_accumulators(n_out: int, n_in: int, threads: int):
    """Per-thread arrays ``(counts, hist, limbs_out, limbs_layer)`` for :func:`run_dropconnect_batch`."""
    n = int(n_out) * int(n_in)
    return (
        np.zeros((threads, padded_length(n)), dtype=np.int64),
        np.zeros((threads, n + 1), dtype=np.int64),
        np.zeros((threads, int(n_out), 2, NLIMBS), dtype=np.int64),
        np.zeros((threads, 2, NLIMBS), dtype=np.int64),
    )


def run_dropconnect_batch(c, n_out: int, n_in: int, thr: int, key, start: int, count: int,
                          counts, hist, limbs_out, limbs_layer) -> None:
    """Run one batch of the DropConnect reference kernel (in place).

    Parameters
    ----------
    c : float64 ndarray, shape (n_out * n_in,)
        ``W_ij x_j`` row-major; the mask of weight ``(i, j)`` is Philox word
        ``i * n_in + j`` of the sample (the core's element layout over ``W``).
    n_out, n_in : int
        Shape of ``W``.
    thr : int
        32-bit keep threshold (:func:`mcdrop.rng.keep_threshold`).
    key : uint32 ndarray, shape (2,)
        Philox key (``STREAM_MASK``).
    start, count : int
        Global index of the first sample and number of samples.
    counts, hist, limbs_out, limbs_layer : int64 ndarrays
        From :func:`new_dropconnect_accumulators`; counts and hist are
        accumulated into, the limbs are overwritten with this batch's sums.
    """
    check_batch(count, counts.shape[0])
    _dropconnect_batch(
        np.ascontiguousarray(c, dtype=np.float64),
        int(n_out),
        int(n_in),
        np.uint64(thr),
        np.uint64(key[0]),
        np.uint64(key[1]),
        int(start),
        int(count),
        counts,
        hist,
        limbs_out,
        limbs_layer,
    )
