"""Kernels that run a small model on the dropout masks: a linear model's loss and an MLP.

The regularisation and inference-gap suites (:mod:`mcdrop.suites`) sample
whole models rather than one layer.  Their kernels live here, in the kernel
family: the batch is split over threads with
:func:`~mcdrop.core.kernels.thread_range`, the masks come from
:func:`~mcdrop.core.kernels.fill_mask` (the core's element layout over the
model's concatenated masks), and every statistic is added into exact
superaccumulators (:mod:`mcdrop.core.accumulators`), so a result does not
depend on the thread count or the shard split.

* :func:`run_loss_batch` — the training loss ``L`` of a linear model with
  dropped features (squared or logistic loss; a mask per example, or one
  shared by the batch): exact ``Σ D^k``, ``k = 1..4``, of ``D = L − L0``.
* :func:`run_mlp_batch` — a one-hidden-layer MLP with dropout on the input
  and the hidden layer, for several activations on the *same* masks: exact
  sums and squares of the pre-activations, activations and outputs.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .accumulators import NLIMBS, exact_add, exact_add_square, normalize_limbs
from .kernels import check_batch, fill_mask, thread_range
from .rng import MASK32, SH32

__all__ = [
    "LOSS_MOMENTS",
    "new_loss_accumulators",
    "run_loss_batch",
    "MLP_ACTIVATIONS",
    "new_mlp_accumulators",
    "run_mlp_batch",
]

#: Powers of ``D = L − L0`` whose exact sums :func:`run_loss_batch` keeps.
LOSS_MOMENTS = 4
#: Activations of :func:`run_mlp_batch`, in accumulator order.
MLP_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid")


# ---------------------------------------------------------------------------
# the loss of a linear model
# ---------------------------------------------------------------------------


@nb.njit(parallel=True, cache=True)
def _loss_batch(C, y, b, kv, dv, logistic, shared, thr, k0, k1, start, count, L0, limbs):
    """Exact sums of ``D = L − L0``, ``D²``, ``D³``, ``D⁴`` over ``count`` samples.

    C : float64[n, d]  x_ij w_j;  kv/dv : float64[d]  factor of a kept/dropped
    feature (1/q and 0 for dropped features, 1 and 1 for features never dropped).
    limbs : int64[T, 4, NLIMBS] (zeroed here).  D³ and D⁴ are rounded once per
    sample (deterministic) and then summed exactly.
    """
    n, d = C.shape
    nw = d if shared else n * d
    nblocks = (nw + 3) // 4
    T = limbs.shape[0]
    for t in nb.prange(T):
        s0, s1 = thread_range(start, count, t, T)
        mbuf = np.zeros(nblocks * 4, dtype=np.uint8)
        lt = limbs[t]
        lt[:] = 0
        for s in range(s0, s1):
            us = np.uint64(s)
            fill_mask(mbuf, nblocks, us & MASK32, us >> SH32, thr, k0, k1)
            L = 0.0
            for i in range(n):
                off = 0 if shared else i * d
                z = b
                for j in range(d):
                    z += C[i, j] * (kv[j] if mbuf[off + j] != 0 else dv[j])
                if logistic:
                    L += (z if z > 0.0 else 0.0) + math.log1p(math.exp(-abs(z))) - y[i] * z
                else:
                    r = y[i] - z
                    L += r * r
            D = L - L0
            exact_add(lt[0], D)
            exact_add_square(lt[1], D)
            D2 = D * D
            exact_add(lt[2], D2 * D)
            exact_add(lt[3], D2 * D2)
        for k in range(4):
            normalize_limbs(lt[k])


def new_loss_accumulators(threads: int) -> np.ndarray:
    """Per-thread limbs ``(threads, LOSS_MOMENTS, NLIMBS)`` for :func:`run_loss_batch`."""
    return np.zeros((threads, LOSS_MOMENTS, NLIMBS), dtype=np.int64)


def run_loss_batch(C, y, b: float, kept_factor, dropped_factor, *, logistic: bool, shared: bool,
                   thr: int, key, start: int, count: int, L0: float, limbs) -> None:
    """Run one batch of the dropout-loss kernel (in place).

    Parameters
    ----------
    C : float64 ndarray, shape (n, d)
        ``x_ij w_j``: example ``i``'s contribution of feature ``j``.
    y : float64 ndarray, shape (n,)
        Targets (squared loss) or 0/1 labels (logistic loss).
    b : float
        Intercept (never dropped).
    kept_factor, dropped_factor : float64 ndarray, shape (d,)
        Factor of feature ``j`` when kept / dropped (``1/q`` and 0 for a
        dropped feature; 1 and 1 for a feature that is never dropped).
    logistic, shared : bool
        Logistic instead of squared loss; one mask for the whole batch
        (word ``j`` of the sample) instead of one per example (word ``i d + j``).
    thr : int
        32-bit keep threshold (:func:`mcdrop.core.rng.keep_threshold`).
    key : uint32 ndarray, shape (2,)
        Philox key (``STREAM_MASK``).
    start, count : int
        Global index of the first sample and number of samples.
    L0 : float
        Centring constant: the kernel sums powers of ``D = L − L0``.
    limbs : int64 ndarray, shape (T, 4, NLIMBS)
        From :func:`new_loss_accumulators`; overwritten with this batch's
        exact ``Σ D``, ``Σ D²``, ``Σ D³``, ``Σ D⁴`` per thread.
    """
    check_batch(count, limbs.shape[0])
    _loss_batch(np.ascontiguousarray(C, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
                float(b), np.ascontiguousarray(kept_factor, dtype=np.float64),
                np.ascontiguousarray(dropped_factor, dtype=np.float64), bool(logistic), bool(shared),
                np.uint64(thr), np.uint64(key[0]), np.uint64(key[1]), int(start), int(count),
                float(L0), limbs)


# ---------------------------------------------------------------------------
# a one-hidden-layer MLP
# ---------------------------------------------------------------------------


@nb.njit(inline="always", cache=True)
def _apply(a, z):
    if a == 0:
        return z
    if a == 1:
        return z if z > 0.0 else 0.0
    if a == 2:
        return math.tanh(z)
    return 1.0 / (1.0 + math.exp(-z))


@nb.njit(parallel=True, cache=True)
def _mlp_batch(W1, b1, w2, b2, x, inv_q, thr, k0, k1, start, count, n_act, lz, lh, lo):
    """Exact per-thread sums over ``count`` samples (limbs zeroed here).

    lz : int64[T, H, 2, NLIMBS]          Σ z_k, Σ z_k²
    lh : int64[T, A, H, 2, NLIMBS]       Σ f_a(z_k), Σ f_a(z_k)²
    lo : int64[T, A, 2, NLIMBS]          Σ out_a, Σ out_a²
    """
    H, d = W1.shape
    nw = d + H
    nblocks = (nw + 3) // 4
    T = lz.shape[0]
    for t in nb.prange(T):
        s0, s1 = thread_range(start, count, t, T)
        mbuf = np.zeros(nblocks * 4, dtype=np.uint8)
        xs = np.zeros(d)
        z = np.zeros(H)
        lzt = lz[t]
        lht = lh[t]
        lot = lo[t]
        lzt[:] = 0
        lht[:] = 0
        lot[:] = 0
        for s in range(s0, s1):
            us = np.uint64(s)
            fill_mask(mbuf, nblocks, us & MASK32, us >> SH32, thr, k0, k1)
            for j in range(d):
                xs[j] = x[j] * inv_q if mbuf[j] != 0 else 0.0
            for k in range(H):
                acc = b1[k]
                for j in range(d):
                    acc += W1[k, j] * xs[j]
                z[k] = acc
                exact_add(lzt[k, 0], acc)
                exact_add_square(lzt[k, 1], acc)
            for a in range(n_act):
                out = b2
                for k in range(H):
                    hv = _apply(a, z[k])
                    exact_add(lht[a, k, 0], hv)
                    exact_add_square(lht[a, k, 1], hv)
                    if mbuf[d + k] != 0:
                        out += w2[k] * (hv * inv_q)
                exact_add(lot[a, 0], out)
                exact_add_square(lot[a, 1], out)
        for k in range(H):
            normalize_limbs(lzt[k, 0])
            normalize_limbs(lzt[k, 1])
            for a in range(n_act):
                normalize_limbs(lht[a, k, 0])
                normalize_limbs(lht[a, k, 1])
        for a in range(n_act):
            normalize_limbs(lot[a, 0])
            normalize_limbs(lot[a, 1])


def new_mlp_accumulators(hidden: int, threads: int):
    """Per-thread limbs ``(lz, lh, lo)`` for :func:`run_mlp_batch` (see there for shapes)."""
    A = len(MLP_ACTIVATIONS)
    return (
        np.zeros((threads, hidden, 2, NLIMBS), dtype=np.int64),
        np.zeros((threads, A, hidden, 2, NLIMBS), dtype=np.int64),
        np.zeros((threads, A, 2, NLIMBS), dtype=np.int64),
    )


def run_mlp_batch(W1, b1, w2, b2: float, x, q: float, thr: int, key, start: int, count: int,
                  lz, lh, lo) -> None:
    """Run one batch of the MLP kernel (in place).

    The network is ``out_a = b2 + Σ_k w2_k f_a(z_k) m2_k / q`` with
    ``z = W1 (x ⊙ m1 / q) + b1``; sample ``s`` takes the input mask ``m1``
    from words ``0 .. d−1`` and the hidden mask ``m2`` from words
    ``d .. d+H−1`` (the core's element layout), and every activation ``f_a``
    of :data:`MLP_ACTIVATIONS` sees the same masks.

    Parameters
    ----------
    W1, b1, w2, b2
        The network: ``W1`` (H, d), ``b1`` and ``w2`` (H,), ``b2`` a float.
    x : float64 ndarray, shape (d,)
        The input.
    q : float
        Keep probability (> 0); kept values are scaled by ``1/q``.
    thr, key, start, count
        As in :func:`run_loss_batch`.
    lz, lh, lo : int64 ndarrays
        From :func:`new_mlp_accumulators`: per thread, exact ``Σ z_k``,
        ``Σ z_k²``; ``Σ f_a(z_k)``, ``Σ f_a(z_k)²``; ``Σ out_a``,
        ``Σ out_a²`` (overwritten with this batch's sums).
    """
    check_batch(count, lz.shape[0])
    _mlp_batch(W1, b1, w2, float(b2), x, 1.0 / q, np.uint64(thr), np.uint64(key[0]),
               np.uint64(key[1]), int(start), int(count), len(MLP_ACTIVATIONS), lz, lh, lo)
