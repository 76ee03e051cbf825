"""Counter-based Philox4x32-10 random numbers in Numba.

Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11)
maps a 128-bit *counter* and a 64-bit *key* to 128 random bits.  A value is a
pure function of (key, counter): there is no state to advance, so any thread
can compute any draw, and the thread count or the way the work is split into
shards cannot change a result.

Stream 1: the layout of the stream-1 kernels
--------------------------------------------
(Gaussian noise, DropConnect and the model kernels; the two-point laws use
stream 2, :mod:`mcdrop.core.bitplane`.)
The key comes from ``seed`` through :class:`numpy.random.SeedSequence` (a
separate ``stream`` number gives an independent key for another purpose,
derived with a spawn key, never as ``seed + stream``).  The draw for sample
``s`` and element ``e`` is word ``e % 4`` of::

    philox4x32_10(counter=(s_lo, s_hi, b_lo, b_hi), key)   with b = e // 4

where ``s_lo, s_hi`` are the low and high 32 bits of ``s`` (likewise ``b``).
So every draw depends only on (key, sample index, element index), all four
output words are used, and a sample is a contiguous run of blocks.

A Bernoulli(q) draw compares the 32-bit word with the integer threshold
``round(q * 2**32)``; the realised keep probability is ``threshold / 2**32``,
which differs from ``q`` by at most ``2**-33`` (1.2e-10), far below anything
a Monte Carlo run can resolve (documented in :func:`keep_threshold`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._validation import check_seed

__all__ = [
    "philox4x32",
    "key_from_seed",
    "keep_threshold",
    "effective_keep",
    "uniforms",
    "bernoulli_mask",
    "child_seed",
    "philox_block",
    "MASK32",
    "SH32",
    "STREAM_MASK",
    "STREAM_INPUT",
    "STREAM_NOISE",
    "STREAM_MASK_V2",
]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SH32 = np.uint64(32)

# Streams: independent keys for independent purposes under one seed.
STREAM_MASK = 0  # dropout masks of the reference kernels
STREAM_INPUT = 1  # inputs fed to implementations under audit
STREAM_NOISE = 2  # Gaussian noise of Gaussian dropout
STREAM_MASK_V2 = 3  # dropout masks in the stream-2 bit-plane layout (mcdrop.core.bitplane)


@nb.njit(inline="always", cache=True)
def _round(c0, c1, c2, c3, k0, k1):
    # Words may carry garbage above bit 31 between rounds: xor is bitwise, and
    # the multiplies read only the low 32 bits (the mask folds into a 32x32->64
    # vpmuludq), so the low 32 bits are always right; philox_block masks the output.
    p0 = _M0 * (c0 & MASK32)
    p1 = _M1 * (c2 & MASK32)
    return (p1 >> SH32) ^ c1 ^ k0, p1, (p0 >> SH32) ^ c3 ^ k1, p0


@nb.njit(inline="always", cache=True)
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 words that each hold a 32-bit value."""
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0 = (k0 + _W0) & MASK32
    k1 = (k1 + _W1) & MASK32
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    return c0 & MASK32, c1 & MASK32, c2 & MASK32, c3 & MASK32


@nb.njit(cache=True)
def _philox_array(counters, key):
    n = counters.shape[0]
    out = np.empty((n, 4), dtype=np.uint32)
    k0 = np.uint64(key[0])
    k1 = np.uint64(key[1])
    for i in range(n):
        w0, w1, w2, w3 = philox_block(
            np.uint64(counters[i, 0]),
            np.uint64(counters[i, 1]),
            np.uint64(counters[i, 2]),
            np.uint64(counters[i, 3]),
            k0,
            k1,
        )
        out[i, 0] = w0
        out[i, 1] = w1
        out[i, 2] = w2
        out[i, 3] = w3
    return out


def philox4x32(counter, key) -> np.ndarray:
    """Philox4x32-10 of ``counter`` (4 words) under ``key`` (2 words).

    Parameters
    ----------
    counter : array_like of uint32, shape (4,) or (n, 4)
        Counter words, least significant first.
    key : array_like of uint32, shape (2,)
        Key words.

    Returns
    -------
    numpy.ndarray of uint32, shape (4,) or (n, 4)
        The four output words for each counter.

    Examples
    --------
    The first known-answer vector published with Random123:

    >>> [hex(w) for w in philox4x32([0, 0, 0, 0], [0, 0])]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c = np.asarray(counter)
    k = np.asarray(key)
    if c.shape[-1:] != (4,) or c.ndim not in (1, 2):
        raise ValueError(f"`counter` must have shape (4,) or (n, 4); got {c.shape}.")
    if k.shape != (2,):
        raise ValueError(f"`key` must have shape (2,); got {k.shape}.")
    for name, a in (("counter", c), ("key", k)):
        if a.dtype.kind not in "iu" or np.any(a < 0) or np.any(a > 0xFFFFFFFF):
            raise ValueError(f"`{name}` words must be integers in [0, 2**32 - 1].")
    out = _philox_array(np.atleast_2d(c).astype(np.uint32), k.astype(np.uint32))
    return out[0] if c.ndim == 1 else out


def key_from_seed(seed=None, stream: int = STREAM_MASK) -> np.ndarray:
    """Derive a Philox key (2 uint32 words) from ``seed`` and a ``stream`` number.

    ``seed`` is an int >= 0, a :class:`numpy.random.SeedSequence` or None
    (fresh OS entropy).  Different ``stream`` numbers give independent keys,
    derived through the SeedSequence spawn tree (``spawn_key + (stream,)``),
    never as ``seed + stream``.  The caller's SeedSequence is not mutated.
    """
    ss = check_seed(seed)
    child = np.random.SeedSequence(
        entropy=ss.entropy,
        spawn_key=tuple(ss.spawn_key) + (int(stream),),
        pool_size=ss.pool_size,
    )
    return child.generate_state(2, dtype=np.uint32)


def child_seed(ss: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """The ``i``-th child of ``ss`` in the spawn tree (``spawn_key + (i,)``), without mutating ``ss``.

    Independent parts of one run (sections, sweep points, datasets) each
    draw from their own child, never from ``seed + i``.
    """
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (i,))


def keep_threshold(q: float) -> int:
    """The 32-bit threshold for a Bernoulli(``q``) keep decision.

    A draw is kept when its uniform 32-bit word is ``< threshold``.  The
    realised keep probability ``threshold / 2**32`` is within ``2**-33`` of
    ``q``; it is exactly 0 for ``q = 0`` and exactly 1 for ``q = 1``.
    """
    return int(round(float(q) * 2.0**32))


def effective_keep(q: float) -> float:
    """The keep probability the 32-bit threshold realises (see :func:`keep_threshold`)."""
    return keep_threshold(q) / 2.0**32


@nb.njit(cache=True)
def _bernoulli_mask(samples_start, samples, n, thr, k0, k1):
    nblocks = (n + 3) // 4
    out = np.empty((samples, nblocks * 4), dtype=np.bool_)
    for i in range(samples):
        s = np.uint64(samples_start + i)
        slo = s & MASK32
        shi = s >> SH32
        for b in range(nblocks):
            ub = np.uint64(b)
            w0, w1, w2, w3 = philox_block(slo, shi, ub & MASK32, ub >> SH32, k0, k1)
            out[i, 4 * b] = w0 < thr
            out[i, 4 * b + 1] = w1 < thr
            out[i, 4 * b + 2] = w2 < thr
            out[i, 4 * b + 3] = w3 < thr
    return out[:, :n]


@nb.njit(cache=True)
def _uniforms(samples_start, samples, n, k0, k1):
    nblocks = (n + 3) // 4
    out = np.empty((samples, nblocks * 4), dtype=np.uint32)
    for i in range(samples):
        s = np.uint64(samples_start + i)
        slo = s & MASK32
        shi = s >> SH32
        for b in range(nblocks):
            ub = np.uint64(b)
            w0, w1, w2, w3 = philox_block(slo, shi, ub & MASK32, ub >> SH32, k0, k1)
            out[i, 4 * b] = w0
            out[i, 4 * b + 1] = w1
            out[i, 4 * b + 2] = w2
            out[i, 4 * b + 3] = w3
    return out[:, :n]


def uniforms(key, n: int, samples: int, start: int = 0) -> np.ndarray:
    """The raw 32-bit words for ``samples`` samples of ``n`` elements.

    Row ``i`` holds the words for sample index ``start + i``: the same words
    the kernels compare with the keep threshold.  Slow-path reference for
    tests; allocates ``samples x n``.
    """
    k = np.asarray(key, dtype=np.uint64)
    return _uniforms(int(start), int(samples), int(n), k[0], k[1])


def bernoulli_mask(key, q: float, n: int, samples: int, start: int = 0) -> np.ndarray:
    """Stream-1 keep masks (bool, ``samples x n``) exactly as the stream-1 kernels draw them.

    (DropConnect and the model kernels; the two-point laws draw stream-2
    masks, :func:`mcdrop.core.bitplane.stream2_masks`.)

    Slow-path reference for tests and for materialising small batches.
    """
    k = np.asarray(key, dtype=np.uint64)
    thr = np.uint64(keep_threshold(q))
    return _bernoulli_mask(int(start), int(samples), int(n), thr, k[0], k[1])
