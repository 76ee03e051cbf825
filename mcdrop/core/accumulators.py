"""Exact, mergeable running statistics.

Two kinds of accumulator live here:

* :class:`ExactSum` and the Numba helpers ``exact_add``/``normalize_limbs``
  — an exact *superaccumulator*.  A float64 is split into its integer
  mantissa and exponent and added into 32-bit limbs held in int64 words, so
  the running sum is an exact integer multiple of ``2**EMIN``.  Integer
  addition is associative and commutative, which is what makes threads,
  shards and :meth:`mcdrop.Simulation.merge` give **bit-identical** results
  whatever the split, and the only rounding of a mean or variance happens
  once, at the end, from exact rationals.

* :class:`Moments` — per-element count/mean/M2 (Welford, merged with Chan
  et al.'s pairwise formula) for streams whose values are arbitrary floats
  (outputs of implementations under audit).  Merging is associative up to
  float64 rounding (relative 1e-16 per merge), far below any interval width
  mcdrop reports.

Why exact sums are enough for "rounding < 1% of the interval half-width":
the sums themselves carry no rounding at all; the variance is formed as
``(N·ΣS² − (ΣS)²) / (N(N−1))`` in exact rational arithmetic and rounded once.
Squares are added exactly too (Dekker's TwoProduct gives ``v*v = hi + lo``
with no rounding), which matters: with a mean much larger than the spread,
rounding each ``S²`` to float64 would cost one unit of ``S²``'s last place
per sample and swamp the variance.  So ``Σv`` and ``Σv²`` are exact and the
mean and variance are correctly rounded — ``tests/test_accumulators.py``
checks the worst case at 10**10 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numba as nb
import numpy as np

__all__ = [
    "EMIN",
    "NLIMBS",
    "exact_add",
    "exact_add_square",
    "two_square",
    "normalize_limbs",
    "limbs_to_int",
    "ExactSum",
    "Moments",
    "exact_mean_var",
]

#: Exponent of the least significant bit of limb 0: every float64 mantissa
#: bit (including subnormals, whose frexp mantissa is scaled up) lies above it.
EMIN = -1126
#: 32-bit limbs covering 2**-1126 .. 2**(32*NLIMBS - 1126) = 2**1082 (float64 tops out
#: at 2**1024; the margin absorbs the growth of a sum of up to 2**58 huge values).
NLIMBS = 69
_TWO53 = 9007199254740992.0
_M32 = np.int64(0xFFFFFFFF)

#: An int64 limb receives at most 2**33 in magnitude per addition, so a limb
#: array must be normalised at least every 2**29 additions.
MAX_ADDS_BEFORE_NORMALIZE = 2**29


@nb.njit(inline="always", cache=True)
def exact_add(limbs, v):
    """Add float64 ``v`` exactly into the int64 limb array ``limbs``.

    ``v`` must be finite.  Each limb is a signed partial sum of 32-bit
    pieces; call :func:`normalize_limbs` at least every
    ``MAX_ADDS_BEFORE_NORMALIZE`` additions.
    """
    if v == 0.0:
        return
    f, e = math.frexp(v)
    m = np.int64(f * _TWO53)  # exact: |m| < 2**53
    pos = e - 53 - EMIN
    li = pos >> 5
    r = pos & 31
    a = m if m >= 0 else -m
    lo = (a & _M32) << r  # < 2**63
    hi = (a >> 32) << r  # < 2**52
    if m >= 0:
        limbs[li] += lo & _M32
        limbs[li + 1] += (lo >> 32) + (hi & _M32)
        limbs[li + 2] += hi >> 32
    else:
        limbs[li] -= lo & _M32
        limbs[li + 1] -= (lo >> 32) + (hi & _M32)
        limbs[li + 2] -= hi >> 32


@nb.njit(inline="always", cache=True)
def _split(a):
    # Veltkamp split: a = hi + lo exactly, each with at most 26 significant bits.
    c = 134217729.0 * a  # 2**27 + 1
    hi = c - (c - a)
    return hi, a - hi


@nb.njit(inline="always", cache=True)
def two_square(a):
    """``(hi, lo)`` with ``hi + lo == a*a`` exactly (Dekker's TwoProduct).

    Exact for ``2**-480 < |a| < 2**480`` (no overflow in the split, no
    underflow in the error term); callers bound their inputs accordingly.
    """
    p = a * a
    ah, al = _split(a)
    err = ((ah * ah - p) + 2.0 * (ah * al)) + al * al
    return p, err


@nb.njit(inline="always", cache=True)
def exact_add_square(limbs, v):
    """Add ``v*v`` exactly (all 106 bits) into ``limbs``."""
    hi, lo = two_square(v)
    exact_add(limbs, hi)
    exact_add(limbs, lo)


@nb.njit(cache=True)
def normalize_limbs(limbs):
    """Propagate carries so every limb but the last lies in [0, 2**32)."""
    n = limbs.shape[0]
    for i in range(n - 1):
        c = limbs[i] >> 32  # arithmetic shift: floor division by 2**32
        limbs[i] -= c << 32
        limbs[i + 1] += c


def limbs_to_int(limbs) -> int:
    """The exact integer ``Z`` with ``sum = Z * 2**EMIN`` held by ``limbs``."""
    z = 0
    for i, limb in enumerate(np.asarray(limbs, dtype=np.int64).tolist()):
        if limb:
            z += int(limb) << (32 * i)
    return z


def _int_to_fraction(z: int) -> Fraction:
    return Fraction(z, 1 << -EMIN)


@nb.njit(cache=True)
def _add_array(limbs, values, square):
    count = 0
    for v in values.ravel():
        if square:
            exact_add_square(limbs, v)
        else:
            exact_add(limbs, v)
        count += 1
        if count == MAX_ADDS_BEFORE_NORMALIZE // 2:
            normalize_limbs(limbs)
            count = 0
    normalize_limbs(limbs)


def _sum_z(values, *, square: bool) -> int:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("`values` must be finite to be summed exactly.")
    if square:
        a = np.abs(arr[arr != 0])
        if a.size and (a.min() <= 2.0**-480 or a.max() >= 2.0**480):
            raise ValueError(
                "`values` must be 0 or have magnitude in (2**-480, 2**480) to be squared exactly."
            )
    limbs = np.zeros(NLIMBS, dtype=np.int64)
    _add_array(limbs, arr, square)
    return limbs_to_int(limbs)


class ExactSum:
    """An exact sum of float64 values (a Python-level superaccumulator).

    ``ExactSum(values)`` or ``s.add(values)``; ``s.merge(t)`` is the exact sum
    of both; ``float(s)`` rounds once (correctly rounded); ``s.fraction`` is
    the exact rational value.
    """

    __slots__ = ("z",)

    def __init__(self, values=None, *, z: int = 0):
        self.z = int(z)
        if values is not None:
            self.add(values)

    def add(self, values) -> "ExactSum":
        """Add float64 ``values`` exactly."""
        self.z += _sum_z(values, square=False)
        return self

    def add_squares(self, values) -> "ExactSum":
        """Add the exact squares of ``values`` (|v| in (2**-480, 2**480) or 0)."""
        self.z += _sum_z(values, square=True)
        return self

    def merge(self, other: "ExactSum") -> "ExactSum":
        return ExactSum(z=self.z + other.z)

    @property
    def fraction(self) -> Fraction:
        return _int_to_fraction(self.z)

    def __float__(self) -> float:
        return float(self.fraction)

    def __eq__(self, other) -> bool:
        return isinstance(other, ExactSum) and self.z == other.z

    def __repr__(self) -> str:
        return f"ExactSum({float(self)!r})"


def exact_mean_var(n: int, z_sum: int, z_sumsq: int) -> tuple[float, float]:
    """Mean and unbiased variance from exact sums ``Σv = z_sum·2**EMIN``, ``Σv² = z_sumsq·2**EMIN``.

    Computed in exact rational arithmetic and rounded once; the variance is
    ``nan`` for ``n < 2``.
    """
    if n < 1:
        return float("nan"), float("nan")
    s1 = _int_to_fraction(z_sum)
    s2 = _int_to_fraction(z_sumsq)
    mean = s1 / n
    if n < 2:
        return float(mean), float("nan")
    var = (n * s2 - s1 * s1) / (n * (n - 1))
    return float(mean), float(max(var, Fraction(0)))


@dataclass
class Moments:
    """Per-element running count, mean and M2 (sum of squared deviations).

    Updated a batch at a time with :meth:`update` (a batch's own moments are
    computed two-pass in float64, then merged with Chan et al.'s formula) and
    merged with :meth:`merge`.  Shapes are the element shape.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, shape) -> "Moments":
        return cls(0, np.zeros(shape, dtype=np.float64), np.zeros(shape, dtype=np.float64))

    def update(self, batch) -> "Moments":
        """Add a batch of shape ``(k, *shape)`` (k observations per element)."""
        b = np.asarray(batch, dtype=np.float64)
        k = b.shape[0]
        if k == 0:
            return self
        bmean = b.mean(axis=0)
        bm2 = ((b - bmean) ** 2).sum(axis=0)
        self._merge_in(k, bmean, bm2)
        return self

    def _merge_in(self, k, bmean, bm2) -> None:
        n = self.count
        if n == 0:
            self.count, self.mean, self.m2 = k, np.array(bmean, dtype=np.float64), np.array(bm2, dtype=np.float64)
            return
        tot = n + k
        delta = bmean - self.mean
        self.mean = self.mean + delta * (k / tot)
        self.m2 = self.m2 + bm2 + delta * delta * (n * k / tot)
        self.count = tot

    def merge(self, other: "Moments") -> "Moments":
        out = Moments(self.count, self.mean.copy(), self.m2.copy())
        out._merge_in(other.count, other.mean, other.m2)
        return out

    @property
    def var(self) -> np.ndarray:
        """Unbiased (ddof=1) variance per element."""
        if self.count < 2:
            return np.full_like(self.mean, np.nan)
        return self.m2 / (self.count - 1)
