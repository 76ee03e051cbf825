"""Numba parallel kernels: sample dropout masks and stream them into accumulators.

The kernels are private (``_name``); the typed, documented entry point is
:func:`run_inverted_batch`, used by :func:`mcdrop.simulate`.

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
``S = Σ_e x_e m_e`` (see :func:`_masked_sum` for why it is the same float64
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
from .rng import _MASK32, _SH32, _philox

__all__ = ["run_inverted_batch", "MAX_BATCH_PER_THREAD", "LANES"]

#: The per-sample dot product runs in this many fixed lanes.
LANES = 8
#: A thread's exact limbs take two additions per sample; stay well inside
#: :data:`mcdrop.accumulators.MAX_ADDS_BEFORE_NORMALIZE`.
MAX_BATCH_PER_THREAD = MAX_ADDS_BEFORE_NORMALIZE // 4


@nb.njit(inline="always", cache=True)
def _fill_mask(mbuf, nblocks, slo, shi, thr, k0, k1):
    for b in range(nblocks):
        ub = np.uint64(b)
        w0, w1, w2, w3 = _philox(slo, shi, ub & _MASK32, ub >> _SH32, k0, k1)
        j = 4 * b
        mbuf[j] = np.uint8(w0 < thr)
        mbuf[j + 1] = np.uint8(w1 < thr)
        mbuf[j + 2] = np.uint8(w2 < thr)
        mbuf[j + 3] = np.uint8(w3 < thr)


@nb.njit(fastmath={"reassoc", "nsz"}, cache=True)
def _masked_sum(xpad, mbuf):
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
def _add_bytes(c8, mbuf):
    for j in range(mbuf.shape[0]):
        c8[j] += mbuf[j]


@nb.njit(inline="always", cache=True)
def _sum_bytes(mbuf):
    kc = np.uint32(0)
    for j in range(mbuf.shape[0]):
        kc += mbuf[j]
    return kc


#: Samples between flushes of the uint8 per-thread counts into int64.
_FLUSH = 255


@nb.njit(parallel=True, cache=True)
def _inverted_batch(xpad, n, thr, k0, k1, start, count, counts, hist, limbs, layer):
    """Stream ``count`` samples from ``start`` into per-thread accumulators.

    xpad   : float64[npad]  input, zero-padded to a multiple of LANES (>= 4*blocks)
    n      : real element count
    counts : int64[T, npad]  per-thread keep counts (accumulated in place)
    hist   : int64[T, n+1]   per-thread histogram of per-sample keep counts
    limbs  : int64[T, 2, NLIMBS] per-thread exact Σ S and Σ S² (zeroed here)
    layer  : bool, form the per-sample sums S (False: keep counts and histogram only)
    """
    T = counts.shape[0]
    npad = xpad.shape[0]
    nblocks = (n + 3) // 4
    for t in nb.prange(T):
        s0 = start + (count * t) // T
        s1 = start + (count * (t + 1)) // T
        mbuf = np.zeros(npad, dtype=np.uint8)
        c8 = np.zeros(npad, dtype=np.uint8)  # 64 counters per AVX-512 add
        c = counts[t]
        h = hist[t]
        l_sum = limbs[t, 0]
        l_sq = limbs[t, 1]
        l_sum[:] = 0
        l_sq[:] = 0
        for chunk0 in range(s0, s1, _FLUSH):
            chunk1 = min(s1, chunk0 + _FLUSH)
            for s in range(chunk0, chunk1):
                us = np.uint64(s)
                _fill_mask(mbuf, nblocks, us & _MASK32, us >> _SH32, thr, k0, k1)
                # words past n belong to elements that do not exist: drop them
                for j in range(n, npad):
                    mbuf[j] = 0
                _add_bytes(c8, mbuf)
                h[_sum_bytes(mbuf)] += 1
                if layer:
                    sv = _masked_sum(xpad, mbuf)
                    exact_add(l_sum, sv)
                    exact_add_square(l_sq, sv)
            for j in range(npad):
                c[j] += c8[j]
                c8[j] = 0
        normalize_limbs(l_sum)
        normalize_limbs(l_sq)


def padded_length(n: int) -> int:
    """Length of the zero-padded per-thread buffers for ``n`` elements."""
    return max(LANES, -(-n // LANES) * LANES)


def run_inverted_batch(xpad, n, thr, key, start, count, counts, hist, limbs, layer: bool = True) -> None:
    """Run one batch of the inverted-dropout reference kernel (in place).

    Parameters
    ----------
    xpad : float64 ndarray, shape (padded_length(n),)
        Flattened input, zero-padded.
    n : int
        Number of real elements.
    thr : int
        32-bit keep threshold (:func:`mcdrop.rng.keep_threshold`).
    key : uint32 ndarray, shape (2,)
        Philox key.
    start, count : int
        Global index of the first sample and number of samples.
    counts, hist, limbs : int64 ndarrays
        Per-thread accumulators, shapes ``(T, npad)``, ``(T, n + 1)`` and
        ``(T, 2, NLIMBS)``; counts and hist are accumulated into, limbs are
        overwritten with this batch's exact sums.
    layer : bool, default True
        Also form the per-sample layer sums ``S`` and their exact sums
        (``False`` leaves ``limbs`` zero: per-element statistics only, as
        the benchmark's like-for-like comparison with NumPy uses).
    """
    T = counts.shape[0]
    if count > MAX_BATCH_PER_THREAD * T:
        raise ValueError(
            f"`count` must be at most {MAX_BATCH_PER_THREAD * T} per batch; got {count}."
        )
    _inverted_batch(
        xpad,
        int(n),
        np.uint64(thr),
        np.uint64(key[0]),
        np.uint64(key[1]),
        int(start),
        int(count),
        counts,
        hist,
        limbs,
        bool(layer),
    )


def new_accumulators(n: int, threads: int):
    """Zeroed per-thread accumulator arrays for :func:`run_inverted_batch`."""
    npad = padded_length(n)
    return (
        np.zeros((threads, npad), dtype=np.int64),
        np.zeros((threads, n + 1), dtype=np.int64),
        np.zeros((threads, 2, NLIMBS), dtype=np.int64),
    )
