"""The Gaussian-dropout kernel: standard normal noise on an exact grid.

Gaussian dropout multiplies by ``ε = 1 + σ z`` with ``z`` standard normal
from the ``STREAM_NOISE`` key (:func:`run_gaussian_batch`).  The Bernoulli-mask
laws run the kernels of :mod:`mcdrop.core.kernels`.

It follows the kernel family's pattern: one ``prange`` iteration per thread, each
with its own accumulators; every accumulator is an integer or an exact
superaccumulator, so 1 vs 2 threads and any shard split give bit-identical
results.  Memory is ``threads × units``, flat in the sample count.

Gaussian noise layout (documented; a value depends only on key, sample, unit)
----------------------------------------------------------------------------
Unit ``u`` of sample ``s`` belongs to *pair* ``j = u // 2``; pairs ``2 c`` and
``2 c + 1`` share the four Philox words ``w0..w3 = philox(counter=(s_lo, s_hi,
c_lo, c_hi), noise key)`` — one word per unit, like the Bernoulli masks.  The
pair's two words (``w0, w1`` for the even pair, ``w2, w3`` for the odd one) give

* a radius uniform ``u1 = (2 w + 1) 2**-33`` from the first word — in (0, 1),
  never 0, so ``r = sqrt(−2 ln u1) <= sqrt(66 ln 2) = 6.76``;
* an angle ``θ = 2π (a + ½) 2**-32`` from the second word ``a``: its top two
  bits pick the quadrant, the other 30 the position inside it;

and Box–Muller gives ``z = r cos θ`` for even ``u`` and ``r sin θ`` for odd
``u``.  The radius uniform sits at the midpoints of 2**32 cells, so
``E r²`` is ``2 − ln 2 · 2**-32`` instead of 2 (the first cell stands for the
whole tail beyond 6.76), and ``Var z`` is low by ``ln 2 · 2**-33 ≈ 8e-11``
(relative) — a bias no Monte Carlo run can resolve (seeing it at two standard
errors takes ~1e21 draws).  The equispaced angles make ``E cos²θ = ½`` exactly.
``ln``, ``sin`` and ``cos`` are evaluated with fixed polynomials (atanh series
for ``ln`` on [√½, √2), Taylor series for sin/cos on [−π/4, π/4]) with fused
multiply-adds, so that LLVM vectorises the loop without a vector math library;
they agree with NumPy's ``log``/``cos``/``sin`` to a few ulp (tested).

Finally ``z`` is rounded to the grid ``2**-26`` (``Z = rint(z · 2**26)``, an
int64): the reference noise *is* this grid value ``z_q = Z 2**-26``, so the
per-unit sums ``Σ Z`` and ``Σ Z²`` are integers (exact and mergeable) while
the grid changes the noise variance by ``2**-52/12 ≈ 2e-17`` (relative) and
its mean not at all (round-half-even is symmetric) — far below anything a
Monte Carlo interval can resolve.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from .accumulators import NLIMBS, exact_add, exact_add_square, normalize_limbs
from .kernels import check_batch, thread_range
from .rng import MASK32, SH32, philox_block

__all__ = [
    "NOISE_GRID",
    "NOISE_SCALE",
    "run_gaussian_batch",
    "new_gaussian_accumulators",
    "gaussian_noise",
    "MAX_GAUSSIAN_SAMPLES",
]

#: Gaussian noise is rounded to multiples of ``2**-NOISE_GRID_BITS``.
NOISE_GRID_BITS = 26
NOISE_GRID = 2.0**-NOISE_GRID_BITS
#: Grid points per unit of noise (``Z = rint(z · NOISE_SCALE)``).
NOISE_SCALE = 2.0**NOISE_GRID_BITS
#: Per-unit ``Σ Z`` is an int64 with ``|Z| < 2**30``: at most 2**33 samples.
MAX_GAUSSIAN_SAMPLES = 2**33

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_SQRT1_2 = math.sqrt(0.5)
_HALF_PI = math.pi / 2.0
_M30 = np.uint64((1 << 30) - 1)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U11 = np.uint64(11)
_U20 = np.uint64(20)
_U30 = np.uint64(30)
_LO32 = np.int64(0xFFFFFFFF)

# ---------------------------------------------------------------------------
# Box–Muller with vectorisable polynomials
# ---------------------------------------------------------------------------


@nb.njit(inline="always", error_model="numpy", cache=True)
def _ln_2m53(v):
    """``ln(v · 2**-53)`` for an integer ``0 < v < 2**53`` (uint64).

    ``v = m 2**e`` with ``m`` in [1, 2) from the leading-zero count (exact),
    folded to [√½, √2); ``ln m = 2 atanh(s)``, ``s = (m − 1)/(m + 1)``,
    ``|s| <= 0.1716``: the series to ``s**15`` is accurate to 2e-14
    relative to ``s`` — a million times finer than the 2**-26 noise grid.
    """
    lz = leading_zeros(v)
    e = np.int64(63) - np.int64(lz)
    m = np.float64(v << (np.uint64(lz) - _U11)) * 2.0**-52
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    s = (m - 1.0) / (m + 1.0)
    t = s * s
    c = 1.0 / 15.0
    c = c * t + 1.0 / 13.0
    c = c * t + 1.0 / 11.0
    c = c * t + 1.0 / 9.0
    c = c * t + 1.0 / 7.0
    c = c * t + 1.0 / 5.0
    c = c * t + 1.0 / 3.0
    return np.float64(e - 53) * _LN2 + (2.0 * s + 2.0 * s * t * c)


@nb.njit(inline="always", error_model="numpy", cache=True)
def _sincos_small(psi):
    """``(sin ψ, cos ψ)`` for ``|ψ| <= π/4`` (Taylor to ψ**13 / ψ**14; error < 3e-14)."""
    t = psi * psi
    a = 1.0 / 6227020800.0
    a = a * t - 1.0 / 39916800.0
    a = a * t + 1.0 / 362880.0
    a = a * t - 1.0 / 5040.0
    a = a * t + 1.0 / 120.0
    a = a * t - 1.0 / 6.0
    c = 1.0 / 87178291200.0
    c = c * t - 1.0 / 479001600.0
    c = c * t + 1.0 / 3628800.0
    c = c * t - 1.0 / 40320.0
    c = c * t + 1.0 / 720.0
    c = c * t - 1.0 / 24.0
    c = c * t + 0.5
    return psi + psi * t * a, 1.0 - t * c


@nb.njit(error_model="numpy", cache=True)
def _fill_pair_words(vb, ab, ncalls, slo, shi, k0, k1):
    """Pass 1: the radius integer ``(2 w + 1) 2**20`` and the 32-bit angle word
    of each pair; Philox call ``c`` serves pairs ``2 c`` and ``2 c + 1``."""
    for c in range(ncalls):
        uc = np.uint64(c)
        w0, w1, w2, w3 = philox_block(slo, shi, uc & MASK32, uc >> SH32, k0, k1)
        j = 2 * c
        vb[j] = ((w0 << _U1) | _U1) << _U20
        ab[j] = w1
        vb[j + 1] = ((w2 << _U1) | _U1) << _U20
        ab[j + 1] = w3


@nb.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _box_muller(vb, ab, z0, z1, npairs):
    """Pass 2: ``z0 = r cos θ``, ``z1 = r sin θ`` for every pair (vectorised)."""
    for j in range(npairs):
        r = math.sqrt(-2.0 * _ln_2m53(vb[j]))
        a = ab[j]
        quad = a >> _U30
        fi = (a & _M30) * _U2 + _U1  # odd, < 2**31
        psi = (np.float64(fi) * 2.0**-31 - 0.5) * _HALF_PI  # angle in the quadrant − π/4
        s, c = _sincos_small(psi)
        cphi = (c - s) * _SQRT1_2  # cos(ψ + π/4)
        sphi = (s + c) * _SQRT1_2  # sin(ψ + π/4)
        odd = (quad & _U1) != 0
        neg = (quad & _U2) != 0
        cq = -sphi if odd else cphi
        sq = cphi if odd else sphi
        cq = -cq if neg else cq
        sq = -sq if neg else sq
        z0[j] = r * cq
        z1[j] = r * sq


@nb.njit(fastmath={"reassoc", "nsz", "contract"}, error_model="numpy", cache=True)
def _accumulate_noise(z, w, valid, acc_sum, acc_lo, acc_hi):
    """Pass 3 for one half of the pairs: quantise, add the integer sums, return
    ``(Σ w z_q, Σ z_q**3, Σ z_q**4)`` over the valid slots (fixed-order reduction)."""
    t = 0.0
    v3 = 0.0
    v4 = 0.0
    for j in range(w.shape[0]):
        zi = np.int64(np.rint(z[j] * NOISE_SCALE))
        acc_sum[j] += zi
        z2 = zi * zi
        acc_lo[j] += z2 & _LO32
        acc_hi[j] += z2 >> 32
        zq = np.float64(zi) * NOISE_GRID
        zq2 = zq * zq
        t += w[j] * zq
        v3 += valid[j] * (zq2 * zq)
        v4 += valid[j] * (zq2 * zq2)
    return t, v3, v4


@nb.njit(parallel=True, error_model="numpy", cache=True)
def _gaussian_batch(w2, valid2, k0, k1, start, count, acc, limbs):
    """Stream ``count`` samples of Gaussian noise from ``start`` into accumulators.

    w2, valid2 : float64[2, npairs]  unit weights / 1-0 validity in slot layout
                 (row 0: cos slots = even units, row 1: sin slots = odd units)
    acc        : int64[T, 3, 2, npairs]  Σ Z, Σ Z² low 32 bits, Σ Z² high bits
                 (zeroed here: one batch's sums)
    limbs      : int64[T, 4, NLIMBS]  exact Σ T, Σ T², Σ V3, Σ V4 (zeroed here)
    """
    T = acc.shape[0]
    npairs = w2.shape[1]
    ncalls = (npairs + 1) // 2
    for t in nb.prange(T):
        s0, s1 = thread_range(start, count, t, T)
        vb = np.zeros(2 * ncalls, dtype=np.uint64)
        ab = np.zeros(2 * ncalls, dtype=np.uint64)
        z0 = np.zeros(2 * ncalls, dtype=np.float64)
        z1 = np.zeros(2 * ncalls, dtype=np.float64)
        a = acc[t]
        a[:] = 0
        lt = limbs[t]
        lt[:] = 0
        for s in range(s0, s1):
            us = np.uint64(s)
            _fill_pair_words(vb, ab, ncalls, us & MASK32, us >> SH32, k0, k1)
            _box_muller(vb, ab, z0, z1, 2 * ncalls)
            ta, a3, a4 = _accumulate_noise(z0, w2[0], valid2[0], a[0, 0], a[1, 0], a[2, 0])
            tb, b3, b4 = _accumulate_noise(z1, w2[1], valid2[1], a[0, 1], a[1, 1], a[2, 1])
            tv = ta + tb
            exact_add(lt[0], tv)
            exact_add_square(lt[1], tv)
            exact_add(lt[2], a3 + b3)
            exact_add(lt[3], a4 + b4)
        for i in range(4):
            normalize_limbs(lt[i])


@nb.njit(error_model="numpy", cache=True)
def _gaussian_noise(start, samples, npairs, k0, k1):
    out = np.empty((samples, 2 * npairs), dtype=np.int64)
    ncalls = (npairs + 1) // 2
    vb = np.zeros(2 * ncalls, dtype=np.uint64)
    ab = np.zeros(2 * ncalls, dtype=np.uint64)
    z0 = np.zeros(2 * ncalls, dtype=np.float64)
    z1 = np.zeros(2 * ncalls, dtype=np.float64)
    for i in range(samples):
        us = np.uint64(start + i)
        _fill_pair_words(vb, ab, ncalls, us & MASK32, us >> SH32, k0, k1)
        _box_muller(vb, ab, z0, z1, 2 * ncalls)
        for j in range(npairs):
            out[i, 2 * j] = np.int64(np.rint(z0[j] * NOISE_SCALE))
            out[i, 2 * j + 1] = np.int64(np.rint(z1[j] * NOISE_SCALE))
    return out


def gaussian_noise(key, units: int, samples: int, start: int = 0) -> np.ndarray:
    """The reference Gaussian noise on its integer grid, shape ``(samples, units)``.

    Returns ``Z`` (int64); the noise is ``z = Z * NOISE_GRID``.  Exactly the
    values :func:`run_gaussian_batch` accumulates (same code path); for
    materialising small batches and for tests (allocates ``samples × units``).
    """
    k = np.asarray(key, dtype=np.uint64)
    npairs = (int(units) + 1) // 2
    z = _gaussian_noise(int(start), int(samples), npairs, k[0], k[1])
    return z[:, : int(units)]


def new_gaussian_accumulators(units: int, threads: int):
    """Per-thread arrays ``(acc, limbs)`` for :func:`run_gaussian_batch`."""
    npairs = (int(units) + 1) // 2
    return (
        np.zeros((threads, 3, 2, npairs), dtype=np.int64),
        np.zeros((threads, 4, NLIMBS), dtype=np.int64),
    )


def run_gaussian_batch(w2, valid2, key, start: int, count: int, acc, limbs) -> None:
    """Run one batch of the Gaussian-dropout reference kernel (in place).

    Parameters
    ----------
    w2, valid2 : float64 ndarray, shape (2, npairs)
        Unit weights ``W_u = Σ_{e ∈ u} x_e`` and validity (1 for a real
        unit, 0 for the unused slot of an odd unit count), in slot layout:
        ``w2[h, j]`` belongs to unit ``2 j + h``.
    key : uint32 ndarray, shape (2,)
        Philox key of ``STREAM_NOISE``.
    start, count : int
        Global index of the first sample and number of samples.
    acc, limbs : int64 ndarrays
        From :func:`new_gaussian_accumulators`; overwritten with this
        batch's per-thread sums (integer sums of ``Z`` and ``Z²`` per slot;
        exact sums of the per-sample ``Σ_u W_u z_u``, its square,
        ``Σ_u z_u³`` and ``Σ_u z_u⁴``).
    """
    check_batch(count, acc.shape[0])
    _gaussian_batch(
        np.ascontiguousarray(w2, dtype=np.float64),
        np.ascontiguousarray(valid2, dtype=np.float64),
        np.uint64(key[0]),
        np.uint64(key[1]),
        int(start),
        int(count),
        acc,
        limbs,
    )
