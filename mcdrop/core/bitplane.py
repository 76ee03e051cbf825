"""The stream-2 mask kernel: lazy bit-plane Bernoulli masks, sample-major, exact sums.

Every two-point law (inverted, standard, alpha dropout, any unit structure)
is sampled here (:func:`run_mask_planes`, via :func:`mcdrop.simulate`).
A Bernoulli(q) draw carries H(q) <= 1 bit but a 32-bit comparison spends 32
random bits; this kernel compares 64 uniforms at once against the 32-bit
threshold, bit-plane by bit-plane from the top, and stops as soon as every
lane is decided: about 8.6 random bits per draw at q = 0.7 and 2 at
q = 0.5, for exactly the same event ``U < thr``.

Counter layout (stream 2)
-------------------------
Samples are grouped in 64-sample blocks ``b = s // 64``; lane ``j`` of a
64-bit word is sample ``64 b + j``.  For element ``e`` and block ``b`` the
``j``-th Philox call (``j = 0 .. 15``) is::

    w0, w1, w2, w3 = philox4x32_10(counter=(b_lo, b_hi, e, j), key)
    plane 2j   = w0 | w1 << 32
    plane 2j+1 = w2 | w3 << 32

Plane ``k`` holds bit ``31 - k`` (most significant first) of the 64 lanes'
32-bit uniforms ``U``; the mask is ``U < thr`` with ``thr = round(q 2**32)``
(the realised keep probability is exactly ``thr / 2**32``, as in stream 1).
Every word is a pure function of (key, b, e, j), so a shard that starts or
ends inside a block just clears the lanes outside its range.

Lazy evaluation: a lane is decided at the first plane where its bit differs
from thr's bit (keep if thr's bit is 1).  Planes after the lowest set bit of
thr cannot make a lane keep, so evaluation stops there (undecided -> drop).
Calls are made for all items in rounds ``0 .. J0-1`` (vectorised over
(block, element) items), then only for the items that still have undecided
lanes (a compacted list, one call = two planes per round).

Exact layer sums
----------------
``x`` is split into K fixed-point windows (:mod:`mcdrop.core.fixedpoint`); per
block the kernel forms the 64 per-sample window sums ``D_k`` (int64, masked
lane adds), and adds ``Σ D_k`` and ``Σ D_k D_l`` (split into 31-bit digits)
into per-lane int64 accumulators.  Everything is integer arithmetic, so
results are bit-identical for any thread count and shard split.  The trace
(running sums at fixed sample counts) is snapshotted inside the kernel.
"""

from __future__ import annotations

import numba as nb
import numpy as np

import types

from .fixedpoint import split_windows, sums_to_z
from .intrinsics import lane_count, lanes_acc_prod, lanes_acc_sum, lanes_hist_small, masked_lane_add, popcount
from .rng import MASK32 as _MASK32
from .rng import SH32 as _SH32
from .rng import keep_threshold
from .rng import philox_block as _philox
from .stream import trace_grid

__all__ = [
    "STREAM_VERSION",
    "J0",
    "CHUNK",
    "SERIAL_DRAWS",
    "MAX_BLOCKS_PER_THREAD",
    "plane_masks",
    "thread_bounds",
    "MaskPlan",
    "run_mask_planes",
    "stream2_masks",
]

#: The counter-to-mask layout this kernel draws (stream 1: one 32-bit word per draw).
STREAM_VERSION = 2

#: eager rounds (Philox calls per item) before the compacted lazy rounds
J0 = 4
#: use the fused (written-out) eager loop when all J0 eager calls are needed
FUSED = True
#: (block, element) items per chunk
CHUNK = 1024
#: at most this many 64-sample blocks per chunk (small layers)
MAX_GROUP = 64
#: layers up to this size histogram the per-sample keep counts by compare + popcount
HIST_SMALL = 32
#: per call and thread at most 2**30 blocks (per-lane int64 accumulators add < 2**33 per block)
MAX_BLOCKS_PER_THREAD = 2**30

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_M31 = np.int64(0x7FFFFFFF)
_S31 = np.int64(31)


def plane_masks(thr: int):
    """``(tm, P)``: ``tm[k]`` all-ones where bit ``31 - k`` of ``thr`` is set; ``P`` planes needed.

    ``P = 0``: every draw is a drop (``thr = 0``); ``P = -1``: every draw a keep
    (``thr = 2**32``); else ``P = 32 - ctz(thr)`` (no plane past the lowest set
    bit of ``thr`` can make a lane keep).
    """
    tm = np.zeros(32, dtype=np.uint64)
    if thr >= 2**32:
        return tm, -1
    if thr <= 0:
        return tm, 0
    for k in range(32):
        if (thr >> (31 - k)) & 1:
            tm[k] = 0xFFFFFFFFFFFFFFFF
    tz = (thr & -thr).bit_length() - 1
    return tm, 32 - tz


@nb.njit(inline="always", cache=True)
def _planes(b, e, j, k0, k1):
    w0, w1, w2, w3 = _philox(b & _MASK32, b >> _SH32, e, j, k0, k1)
    return w0 | (w1 << _SH32), w2 | (w3 << _SH32)


@nb.njit(inline="always", cache=True)
def _step(u, kp, w, t):
    d = w ^ t  # lanes whose bit differs from thr's bit are decided now
    kp |= u & d & t  # ... as keep where thr's bit is 1 (their bit is 0)
    u &= ~d
    return u, kp


@nb.njit(inline="always", cache=True)
def _mask_workspace(cap):
    """The arrays :func:`_gen_masks` works in for ``cap`` items: undecided and keep words, the lazy list."""
    return (np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.int64),
            np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.uint64), np.empty(cap, dtype=np.uint64),
            np.empty(cap, dtype=np.uint64))


@nb.njit(cache=True)
def _gen_masks(nitems, bb, ee, b0, e0, tm, P, k0, k1, U, KP, li, lb, le, lu, lk):
    """KP[i] = keep mask of item i (block b0 + bb[i], element e0 + ee[i]). Returns Philox calls made."""
    if P == 0:
        for i in range(nitems):
            KP[i] = _U0
        return 0
    if P < 0:
        for i in range(nitems):
            KP[i] = _ALL
        return 0
    jmax = (P + 1) // 2
    if FUSED and jmax >= J0:
        # fused eager rounds: J0 calls per item, state in registers (J0 is a compile-time constant)
        # (written out: LLVM does not unroll a loop around Philox and would not vectorise)
        t0, t1, t2, t3, t4, t5, t6, t7 = tm[0], tm[1], tm[2], tm[3], tm[4], tm[5], tm[6], tm[7]
        for i in range(nitems):
            b = b0 + bb[i]
            e = e0 + ee[i]
            wa, wb = _planes(b, e, _U0, k0, k1)
            u, kp = _step(_ALL, _U0, wa, t0)
            u, kp = _step(u, kp, wb, t1)
            wa, wb = _planes(b, e, _U1, k0, k1)
            u, kp = _step(u, kp, wa, t2)
            u, kp = _step(u, kp, wb, t3)
            wa, wb = _planes(b, e, _U2, k0, k1)
            u, kp = _step(u, kp, wa, t4)
            u, kp = _step(u, kp, wb, t5)
            wa, wb = _planes(b, e, _U3, k0, k1)
            u, kp = _step(u, kp, wa, t6)
            u, kp = _step(u, kp, wb, t7)
            U[i] = u
            KP[i] = kp
        calls = nitems * J0
        j = J0
    else:
        t0 = tm[0]
        t1 = tm[1]
        for i in range(nitems):
            b = b0 + bb[i]
            e = e0 + ee[i]
            wa, wb = _planes(b, e, _U0, k0, k1)
            u, kp = _step(_ALL, _U0, wa, t0)
            u, kp = _step(u, kp, wb, t1)
            U[i] = u
            KP[i] = kp
        calls = nitems
        j = 1
        while j < J0 and j < jmax:
            ta = tm[2 * j]
            tb = tm[2 * j + 1]
            uj = np.uint64(j)
            for i in range(nitems):
                b = b0 + bb[i]
                e = e0 + ee[i]
                wa, wb = _planes(b, e, uj, k0, k1)
                u, kp = _step(U[i], KP[i], wa, ta)
                u, kp = _step(u, kp, wb, tb)
                U[i] = u
                KP[i] = kp
            calls += nitems
            j += 1
    if j >= jmax:
        return calls
    m = 0
    for i in range(nitems):
        li[m] = i
        lb[m] = b0 + bb[i]
        le[m] = e0 + ee[i]
        lu[m] = U[i]
        lk[m] = KP[i]
        m += U[i] != _U0
    while m > 0 and j < jmax:
        ta = tm[2 * j]
        tb = tm[2 * j + 1] if 2 * j + 1 < 32 else _U0
        uj = np.uint64(j)
        for l in range(m):
            wa, wb = _planes(lb[l], le[l], uj, k0, k1)
            u, kp = _step(lu[l], lk[l], wa, ta)
            u, kp = _step(u, kp, wb, tb)
            lu[l] = u
            lk[l] = kp
        calls += m
        m2 = 0
        for l in range(m):
            KP[li[l]] = lk[l]
            li[m2] = li[l]
            lb[m2] = lb[l]
            le[m2] = le[l]
            lu[m2] = lu[l]
            lk[m2] = lk[l]
            m2 += lu[l] != _U0
        m = m2
        j += 1
    # lanes still undecided after the last plane that can keep are drops (KP excludes them)
    return calls


@nb.njit(inline="always", cache=True)
def _add_popcounts(cv, kv):
    # views starting at 0: an index like e0 + i would carry Numba's negative-index wraparound
    # and keep LLVM from vectorising (vpopcntq)
    for j in range(kv.shape[0]):
        cv[j] += np.int64(popcount(kv[j]))


@nb.njit(inline="always", cache=True)
def _acc_lanes(acc, S, g, K, lo, hi):
    """Per-lane accumulators += Σ D_k (2 digits) and D_k D_l (4 digits of 31 bits) for lanes [lo, hi)."""
    if hi <= lo:
        return
    a = 0
    sb = g * K * 64
    for k in range(K):
        lanes_acc_sum(acc, a * 64, S, sb + k * 64, lo, hi)
        a += 2
    for k in range(K):
        for l in range(k, K):
            lanes_acc_prod(acc, a * 64, S, sb + k * 64, sb + l * 64, lo, hi)
            a += 4


@nb.njit(inline="always", cache=True)
def _snapshot(acc, row):
    for a in range(acc.shape[0]):
        s_lo = np.int64(0)
        s_hi = np.int64(0)
        for j in range(64):
            s_lo += acc[a, j] & _M31
            s_hi += acc[a, j] >> _S31
        row[a, 0] = s_lo
        row[a, 1] = s_hi


@nb.njit(parallel=True, cache=True)
def _bitplane_batch(D, n, tm, P, k0, k1, bounds, grid, counts, hist, snaps, calls_out, layer):
    """Stream the sample range [bounds[0], bounds[T]) into per-thread accumulators.

    D       : int64[K, n]   fixed-point digits of x (mcdrop.core.fixedpoint)
    tm, P   : plane masks of thr (plane_masks)
    bounds  : int64[T+1]    thread t owns samples [bounds[t], bounds[t+1])
    grid    : int64[G]      trace points (global sample counts), sorted
    counts  : int64[T, n]   keep counts (accumulated)
    hist    : int64[T, 4, n+1] per-sample keep-count histogram, 4 sub-histograms (accumulated)
    snaps   : int64[T, G+1, NACC, 2] lane-reduced accumulators at the thread's grid points and at its end
    calls_out : int64[T]    Philox calls made (accumulated)
    layer   : form the layer sums (False: counts and histogram only)
    """
    T = bounds.shape[0] - 1
    K = D.shape[0]
    nacc = snaps.shape[2]
    G = grid.shape[0]
    for t in nb.prange(T):
        s0 = bounds[t]
        s1 = bounds[t + 1]
        if s1 <= s0:
            continue
        if n >= CHUNK:
            nb_ = 1
            ne = CHUNK
        else:
            nb_ = min(MAX_GROUP, max(1, CHUNK // n))
            ne = n
        cap = nb_ * ne
        bb = np.empty(cap, dtype=np.uint64)
        ee = np.empty(cap, dtype=np.uint64)
        for i in range(cap):
            bb[i] = np.uint64(i // ne)
            ee[i] = np.uint64(i % ne)
        U, KP, li, lb, le, lu, lk = _mask_workspace(cap)
        S = np.zeros((nb_, K, 64), dtype=np.int64)
        C64 = np.zeros((nb_, 64), dtype=np.int64)
        acc = np.zeros((nacc, 64), dtype=np.int64)
        cnt = counts[t]
        h = hist[t]
        sn = snaps[t]
        gp = 0
        while gp < G and grid[gp] <= s0:
            gp += 1
        calls = 0
        bfirst = s0 // 64
        blast = (s1 - 1) // 64
        for bg in range(bfirst, blast + 1, nb_):
            nbg = min(nb_, blast + 1 - bg)
            S[:nbg] = 0
            C64[:nbg] = 0
            for e0 in range(0, n, ne):
                ne_ = min(ne, n - e0)
                nitems = nbg * ne_ if nb_ > 1 else ne_
                calls += _gen_masks(nitems, bb, ee, np.uint64(bg), np.uint64(e0), tm, P, k0, k1,
                                    U, KP, li, lb, le, lu, lk)
                for g in range(nbg):
                    b = bg + g
                    lo = max(s0 - 64 * b, 0)
                    hi = min(s1 - 64 * b, 64)
                    i0 = g * ne_
                    i1 = i0 + ne_
                    if lo > 0 or hi < 64:
                        lm = (_ALL >> np.uint64(64 - (hi - lo))) << np.uint64(lo)
                        for i in range(i0, i1):
                            KP[i] &= lm
                    _add_popcounts(cnt[e0:e0 + ne_], KP[i0:i1])
                    lane_count(C64, g * 64, KP, i0, i1)
                    if layer:
                        for k in range(K):
                            masked_lane_add(S, (g * K + k) * 64, KP, D, k * n + e0 - i0, i0, i1)
            # finish the blocks of this group
            for g in range(nbg):
                b = bg + g
                lo = max(s0 - 64 * b, 0)
                hi = min(s1 - 64 * b, 64)
                if n <= HIST_SMALL:
                    lmk = (_ALL >> np.uint64(64 - (hi - lo))) << np.uint64(lo)
                    lanes_hist_small(h, 0, C64, g * 64, n, lmk)
                else:
                    for j in range(lo, hi):
                        h[j & 3, C64[g, j]] += 1
                if layer:
                    cur = 0
                    while gp < G and grid[gp] - 64 * b <= hi:
                        r = grid[gp] - 64 * b
                        _acc_lanes(acc, S, g, K, cur, r)
                        _snapshot(acc, sn[gp])
                        cur = r
                        gp += 1
                    _acc_lanes(acc, S, g, K, cur, 64)
        if layer:
            _snapshot(acc, sn[G])
        calls_out[t] += calls


def _renamed(f, name):
    """A copy of function ``f`` under another name.

    Numba's on-disk cache is keyed by the function's qualified name and line,
    not by the ``parallel`` flag: compiling one function object both parallel
    and serial with ``cache=True`` could load one variant's code for the other.
    """
    code = f.__code__.replace(co_name=name, co_qualname=name)
    g = types.FunctionType(code, f.__globals__, name, f.__defaults__, f.__closure__)
    g.__qualname__ = name
    return g


#: the same kernel compiled without threads: small workloads skip the thread pool's wake-up
_bitplane_serial = nb.njit(cache=True)(_renamed(_bitplane_batch.py_func, "_bitplane_serial"))
#: below this many draws per call, run serially (one partition per "thread" still, same results)
SERIAL_DRAWS = 1 << 21


@nb.njit(cache=True)
def _mask_words(n, tm, P, k0, k1, b0, nblocks):
    """Masks (uint64 [nblocks, n]) exactly as the batch kernel's generator produces them."""
    out = np.empty((nblocks, n), dtype=np.uint64)
    cap = max(n, 1)
    bb = np.zeros(cap, dtype=np.uint64)
    ee = np.empty(cap, dtype=np.uint64)
    for i in range(cap):
        ee[i] = np.uint64(i)
    U, KP, li, lb, le, lu, lk = _mask_workspace(cap)
    for g in range(nblocks):
        _gen_masks(n, bb, ee, np.uint64(b0 + g), np.uint64(0), tm, P, k0, k1, U, KP, li, lb, le, lu, lk)
        out[g, :] = KP[:n]
    return out


def stream2_masks(key, q: float, n: int, samples: int, start: int = 0) -> np.ndarray:
    """Keep masks (bool, ``samples x n``) exactly as the kernel draws them, for samples ``start ..``.

    The slow path for materialising small batches and for tests (allocates
    ``samples x n``).
    """
    thr = keep_threshold(q)
    tm, P = plane_masks(thr)
    b0, b1 = start // 64, (start + samples - 1) // 64 + 1
    words = _mask_words(int(n), tm, P, np.uint64(key[0]), np.uint64(key[1]), int(b0), int(b1 - b0))
    lanes = (words[:, :, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)  # [block, n, lane]
    flat = lanes.transpose(0, 2, 1).reshape(-1, int(n)).astype(bool)  # sample-major
    off = start - 64 * b0
    return flat[off: off + samples]


def _n_acc(K: int) -> int:
    return 2 * K + 4 * (K * (K + 1) // 2)


def thread_bounds(start: int, count: int, T: int) -> np.ndarray:
    """Thread ranges ``[bounds[t], bounds[t+1])``, split at multiples of 64.

    Any split gives the same result; aligned splits avoid computing a block
    that two threads share twice.
    """
    b = [start]
    for t in range(1, T):
        raw = start + (count * t) // T
        al = ((raw + 32) // 64) * 64
        b.append(min(max(al, b[-1]), start + count))
    b.append(start + count)
    return np.asarray(b, dtype=np.int64)


# ---------------------------------------------------------------------------
# driver: one kernel call per run (batches of ~0.25 s with a progress callback)
# ---------------------------------------------------------------------------

#: Draws per kernel call when a progress callback wants to hear from the run.
PROGRESS_DRAWS = 2**27


def _decode(row, E):
    K = len(E)
    A = [int(row[a, 0]) + (int(row[a, 1]) << 31) for a in range(row.shape[0])]
    sum_d = [A[2 * k] + (A[2 * k + 1] << 31) for k in range(K)]
    prod = {}
    a = 2 * K
    for k in range(K):
        for l in range(k, K):
            prod[(k, l)] = A[a] + (A[a + 1] << 31) + (A[a + 2] << 62) + (A[a + 3] << 93)
            a += 4
    return sums_to_z(E, sum_d, prod)


class MaskPlan:
    """What a run of :func:`run_mask_planes` needs of its weights and its ``q``.

    ``values`` are the per-element weights whose masked sum ``S`` the run
    accumulates exactly (``x``, or a two-point law's unit weights), split into
    fixed-point windows; ``thr``, ``tm`` and ``P`` describe the keep threshold.
    """

    def __init__(self, values, q: float):
        self.x = np.ascontiguousarray(values, dtype=np.float64).ravel()
        self.n = self.x.size
        self.D, self.E = split_windows(self.x)
        self.q = float(q)
        self.thr = keep_threshold(q)
        self.tm, self.P = plane_masks(self.thr)


def run_mask_planes(plan: MaskPlan, key, start: int, n_samples: int, T: int, *, trace: bool = True,
                    layer: bool = True, callback=None, stats: dict | None = None) -> dict:
    """Run the stream-2 mask kernel over ``[start, start + n_samples)``: the stream's fields.

    Parameters
    ----------
    plan : MaskPlan
        The weights (their exact masked sums are kept) and the keep threshold.
    key : uint32 ndarray, shape (2,)
        Philox key (:data:`mcdrop.core.rng.STREAM_MASK_V2`).
    start, n_samples : int
        The sample range.
    T : int
        Partitions (one ``prange`` iteration each); results do not depend on it.
    trace : bool
        Record the running sums at :func:`mcdrop.core.stream.trace_grid`
        (snapshotted inside the kernel: no extra calls).
    layer : bool
        Form the exact layer sums (False: counts and histogram only).
    callback : callable, optional
        ``callback(k)`` after every kernel call with the samples done; with
        a callback the run is cut into calls of about :data:`PROGRESS_DRAWS`
        draws (results are identical: everything is an integer).
    stats : dict, optional
        Receives ``"philox_calls"``: the Philox calls made (128 bits each).

    Returns
    -------
    dict
        ``key``, ``keep_counts`` (flat), ``keep_count_hist``, ``layer_sum_z``,
        ``layer_sumsq_z``, ``trace_t``, ``trace_sum_z``, ``trace_sumsq_z``
        (as :class:`mcdrop.Simulation` keeps them).
    """
    n = plan.n
    k0 = np.uint64(key[0])
    k1 = np.uint64(key[1])
    stop = start + n_samples
    grid_all = trace_grid(start, stop) if (trace and layer) else []
    counts = np.zeros((T, n), dtype=np.int64)
    hist = np.zeros((T, 4, n + 1), dtype=np.int64)
    calls = np.zeros(T, dtype=np.int64)
    nacc = _n_acc(len(plan.E))
    step = MAX_BLOCKS_PER_THREAD * 64 * T
    if callback is not None:
        step = min(step, max(64, (PROGRESS_DRAWS // max(n, 1)) // 64 * 64))
    z1 = z2 = 0
    tt, t1, t2 = [], [], []
    pos = start
    gi = 0
    while pos < stop:
        cnt = min(step, stop - pos)
        bounds = thread_bounds(pos, cnt, T)
        g0 = gi
        while gi < len(grid_all) and grid_all[gi] <= pos + cnt:
            gi += 1
        grid = np.asarray(grid_all[g0:gi], dtype=np.int64)
        snaps = np.zeros((T, grid.size + 1, nacc, 2), dtype=np.int64)
        kern = _bitplane_serial if cnt * n < SERIAL_DRAWS else _bitplane_batch
        kern(plan.D, n, plan.tm, plan.P, k0, k1, bounds, grid, counts, hist, snaps, calls, layer)
        if layer:
            tot = [_decode(snaps[t, grid.size], plan.E) for t in range(T)]
            pre1 = [z1]
            pre2 = [z2]
            for t in range(T):
                pre1.append(pre1[-1] + tot[t][0])
                pre2.append(pre2[-1] + tot[t][1])
            for i, gval in enumerate(grid.tolist()):
                t = int(np.searchsorted(bounds, gval, side="left")) - 1  # bounds[t] < g <= bounds[t+1]
                a, b = _decode(snaps[t, i], plan.E)
                tt.append(gval)
                t1.append(pre1[t] + a)
                t2.append(pre2[t] + b)
            z1, z2 = pre1[-1], pre2[-1]
        pos += cnt
        if callback is not None:
            callback(cnt)
    if stats is not None:
        stats["philox_calls"] = int(calls.sum())
    return dict(
        key=(int(key[0]), int(key[1])),
        keep_counts=counts.sum(axis=0),
        keep_count_hist=hist.sum(axis=(0, 1)),
        layer_sum_z=z1,
        layer_sumsq_z=z2,
        trace_t=tuple(tt),
        trace_sum_z=tuple(t1),
        trace_sumsq_z=tuple(t2),
    )
