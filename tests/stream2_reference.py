"""Slow, obviously-correct NumPy reference for the stream-2 mask layout (tests only).

Pure NumPy Philox4x32-10 (checked against the Random123 known answers), all
32 planes of every (block, element) computed, the 64 lanes' 32-bit uniforms
assembled from the planes (plane k = bit 31-k), mask = U < thr.  Layer sums
with Python integers / fractions.  Independent of the Numba code.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

EMIN = -1126
_M32 = np.uint64(0xFFFFFFFF)


def philox_np(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding 32-bit words (textbook form)."""
    c0, c1, c2, c3 = (np.asarray(v, dtype=np.uint64) & _M32 for v in (c0, c1, c2, c3))
    k0 = np.uint64(k0)
    k1 = np.uint64(k1)
    for r in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & _M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + np.uint64(0x9E3779B9)) & _M32
        k1 = (k1 + np.uint64(0xBB67AE85)) & _M32
    return c0, c1, c2, c3


def uniforms_v2(key, n, b0, nblocks):
    """U[nblocks, n, 64] (uint64 holding 32-bit uniforms) of stream 2: lane j of block b is sample 64b+j."""
    k0, k1 = int(key[0]), int(key[1])
    b = (np.arange(b0, b0 + nblocks, dtype=np.uint64))[:, None, None]
    e = np.arange(n, dtype=np.uint64)[None, :, None]
    j = np.arange(16, dtype=np.uint64)[None, None, :]
    b, e, j = np.broadcast_arrays(b, e, j)
    w0, w1, w2, w3 = philox_np(b & _M32, b >> np.uint64(32), e, j, k0, k1)
    planes = np.empty((nblocks, n, 32), dtype=np.uint64)
    planes[:, :, 0::2] = w0 | (w1 << np.uint64(32))
    planes[:, :, 1::2] = w2 | (w3 << np.uint64(32))
    lanes = np.arange(64, dtype=np.uint64)
    U = np.zeros((nblocks, n, 64), dtype=np.uint64)
    for k in range(32):
        bit = (planes[:, :, k, None] >> lanes) & np.uint64(1)
        U |= bit << np.uint64(31 - k)
    return U


def masks_v2(key, thr, n, b0, nblocks):
    """Keep masks as bool [nblocks, n, 64]."""
    return uniforms_v2(key, n, b0, nblocks) < np.uint64(thr)


def simulate_reference(x, thr, key, start, samples, grid=()):
    """Keep counts, histogram, exact ΣS / ΣS² (as integers in units of 2**EMIN) and the trace."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    b0 = start // 64
    b1 = (start + samples - 1) // 64 + 1
    m = masks_v2(key, thr, n, b0, b1 - b0)  # [blocks, n, 64]
    m = m.transpose(0, 2, 1).reshape(-1, n)  # rows = samples 64*b0 ...
    m = m[start - 64 * b0: start - 64 * b0 + samples]
    counts = m.sum(axis=0).astype(np.int64)
    hist = np.bincount(m.sum(axis=1), minlength=n + 1).astype(np.int64)
    fx = [Fraction(v) for v in x.tolist()]
    unit = Fraction(1, 1 << -EMIN)
    z1 = z2 = 0
    tr = []
    gset = {g - start: g for g in grid}
    for i, row in enumerate(m):
        s = sum((fx[e] for e in np.flatnonzero(row)), Fraction(0))
        q1 = s / unit
        q2 = s * s / unit
        assert q1.denominator == 1 and q2.denominator == 1
        z1 += q1.numerator
        z2 += q2.numerator
        if (i + 1) in gset:
            tr.append((gset[i + 1], z1, z2))
    return dict(keep_counts=counts, keep_count_hist=hist, layer_sum_z=z1, layer_sumsq_z=z2,
                trace_t=tuple(t for t, _, _ in tr), trace_sum_z=tuple(a for _, a, _ in tr),
                trace_sumsq_z=tuple(b for _, _, b in tr))
