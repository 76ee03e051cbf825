"""Exact fixed-point digits for the per-sample layer sum S = Σ_e x_e m_e.

Every finite float64 is an integer multiple of a power of two, so S is an
exact dyadic rational.  We cover the bits that the inputs occupy with K
*windows* [E_k, E_k + B) of B = 62 - ceil(log2(n)) bits (greedy: each window
starts at the lowest occupied bit not yet covered, so K is minimal) and
split every input into K signed digits::

    x_e = Σ_k d[k, e] · 2**E[k],      |d[k, e]| < 2**B,   sign(d) = sign(x_e)

Then per sample the window sums D_k = Σ_e d[k, e] m_e are int64 with
|D_k| < n 2**B <= 2**62 (no overflow for any mask), and S = Σ_k D_k 2**E[k]
exactly.  The kernel only adds int64 digits, so S (and Σ S, Σ S²) are exact
and independent of summation order, thread count and CPU vector width.

K = 1 for inputs whose occupied bits span at most B bits (e.g. float32
activations cast to float64 at n = 8192: 24-bit mantissas plus the exponent
spread must fit in 49 bits); typical full-precision float64 data needs K = 2;
the extreme |x| in [1e-100, 1e100] needs up to ~15 windows (slow but exact).
"""

from __future__ import annotations

import math

import numpy as np

from .accumulators import EMIN

__all__ = ["window_bits", "split_windows", "sums_to_z"]


def window_bits(n: int) -> int:
    """Bits ``B`` of a window for ``n`` elements: ``n`` digits below ``2**B`` sum below ``2**62``."""
    return 62 - max(1, math.ceil(math.log2(max(n, 2))))


def split_windows(x, check: bool = False) -> tuple[np.ndarray, list[int]]:
    """(d, E): int64 digits d[K, n] and window exponents E[k] with x = Σ_k d[k] 2**E[k] exactly.

    Vectorised (O(n K) NumPy); ``check=True`` re-verifies exactness with Python integers.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    n = x.size
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    B = window_bits(n)
    nz = x != 0
    fr, ex = np.frexp(np.abs(x))
    m = (fr * 2.0**53).astype(np.int64)  # in [2**52, 2**53) for nonzero x: top bit = ex - 1
    f = ex.astype(np.int64) - 53
    low = m & -m
    tz = np.zeros(n, dtype=np.int64)
    tz[nz] = np.log2(low[nz].astype(np.float64)).astype(np.int64)  # exact: powers of two < 2**53
    lo = f + tz  # lowest set bit
    top = ex.astype(np.int64)  # one past the highest set bit
    E: list[int] = []
    pending = nz.copy()
    cover = np.full(n, np.iinfo(np.int64).min)  # bits below cover[e] are already in a window
    while pending.any():
        start = int(np.max(np.stack([lo, cover]), axis=0)[pending].min())
        E.append(start)
        hi = start + B
        cover = np.where(pending & (np.maximum(lo, cover) < hi), hi, cover)
        pending = nz & (top > cover) & (np.maximum(lo, cover) < top)
    if not E:
        E = [0]
    K = len(E)
    d = np.zeros((K, n), dtype=np.int64)
    mu = m.astype(np.uint64)
    sgn = np.where(x < 0, -1, 1).astype(np.int64)
    for k, ek in enumerate(E):
        sh = f - ek  # digit = (m * 2**sh) mod 2**B, restricted to non-negative powers
        v = np.zeros(n, dtype=np.uint64)
        left = nz & (sh >= 0) & (sh < B)
        if left.any():
            s = sh[left].astype(np.uint64)
            v[left] = (mu[left] & ((np.uint64(1) << (np.uint64(B) - s)) - np.uint64(1))) << s
        right = nz & (sh < 0) & (sh > -64)
        if right.any():
            s = (-sh[right]).astype(np.uint64)
            v[right] = (mu[right] >> s) & np.uint64((1 << B) - 1)
        d[k] = sgn * v.astype(np.int64)
    if check:
        for e in range(n):
            tot = sum(int(d[k, e]) << (E[k] - EMIN) for k in range(K))
            if x[e] == 0:
                ref = 0
            else:
                ref = (1 if x[e] > 0 else -1) * (int(m[e]) << (int(f[e]) - EMIN))
            if tot != ref:
                raise AssertionError(f"window split is not exact at element {e}")
    return d, E


def sums_to_z(E, sum_d, prod_d):
    """Exact z1 = ΣS / 2**EMIN and z2 = ΣS² / 2**EMIN from window sums.

    sum_d[k] = Σ_s D_k(s); prod_d[(k, l)] = Σ_s D_k(s) D_l(s) for k <= l (Python ints).
    """
    K = len(E)
    z1 = sum(int(sum_d[k]) << (E[k] - EMIN) for k in range(K))
    z2 = 0
    for k in range(K):
        for l in range(k, K):
            z2 += (1 if k == l else 2) * (int(prod_d[(k, l)]) << (E[k] + E[l] - EMIN))
    return z1, z2
