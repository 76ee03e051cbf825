"""Fold kernels of an audit: one pass over a batch of outputs into running sums.

An audit (:mod:`mcdrop.auditing`) calls the implementation under test and
folds each batch of its outputs (rows of a buffer) into per-element sums,
per-unit keep counts, histograms and the per-call unit signal of the
independence checks; the fold is a Numba pass that releases the GIL, so a
worker thread can fold one batch while the next is collected.  The jitted
kernels are private; the typed entry points are :func:`fold_two_point`
(laws whose outputs take two values per element: the mask is recovered as
``|y - dropped value| > tolerance``) and :func:`fold_gaussian`.

Per row ``b`` every kernel writes ``per_call[b] = (non-finite values,
off-support values, units partly kept, units kept)``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .rng import MASK32, SH32, philox_block

__all__ = ["fold_two_point", "fold_gaussian", "canonical_two_point"]


@nb.njit(cache=True, nogil=True)
def _two_point_element(ybuf, nrows, mu, kval, ktol, dval, dtol, drop_ok, want_sig,
                       s1, s2, sig, ucount, call_hist, per_call, first_bad, first_val):
    """Two-point variants, one unit per element (the fast path).

    The element loop is branch-free so that it vectorises; the rare
    off-support example is located in a second pass over that row only.
    """
    n = ybuf.shape[1]
    for b in range(nrows):
        nonfin = 0
        off = 0
        kept = 0
        for e in range(n):
            v = np.float64(ybuf[b, e])
            d = v - mu[e]
            s1[e] += d
            s2[e] += d * d
            k = abs(v - dval) > dtol
            ik = np.int64(k)
            ucount[e] += ik
            kept += ik
            fin = (v - v) == 0.0
            # a non-finite value is the finite check's, not an off-support one
            # (the locating pass below skips it, so counting it here left
            # first_bad unset: an audit of a lone +inf output crashed)
            off += np.int64(k and fin and abs(v - kval[e]) > ktol[e])
            nonfin += np.int64(not fin)
        if want_sig:
            for e in range(n):
                sig[b, e] = np.float32(abs(np.float64(ybuf[b, e]) - dval) > dtol)
        if not drop_ok:
            off += n - kept - nonfin
        if off > 0 and first_bad[0] < 0:
            for e in range(n):
                v = np.float64(ybuf[b, e])
                fin = (v - v) == 0.0
                k = fin and abs(v - dval) > dtol
                if fin and ((k and abs(v - kval[e]) > ktol[e]) or ((not k) and not drop_ok)):
                    first_bad[0] = b
                    first_bad[1] = e
                    first_val[0] = v
                    break
        call_hist[kept] += 1
        per_call[b, 0] = nonfin
        per_call[b, 1] = off
        per_call[b, 2] = 0
        per_call[b, 3] = kept


@nb.njit(cache=True, nogil=True)
def _two_point_units(ybuf, nrows, mu, kval, ktol, dval, dtol, drop_ok, S, G,
                     s1, s2, sig, ucount, call_hist, group_hist, per_call, first_bad, first_val):
    """Two-point variants, units of ``S`` contiguous elements, groups of ``G`` units."""
    n = ybuf.shape[1]
    n_units = n // S
    for b in range(nrows):
        nonfin = 0
        off = 0
        partial = 0
        kept_units = 0
        gcount = 0
        for u in range(n_units):
            cnt = 0
            base = u * S
            for j in range(S):
                e = base + j
                v = np.float64(ybuf[b, e])
                d = v - mu[e]
                s1[e] += d
                s2[e] += d * d
                fin = (v - v) == 0.0
                k = fin and abs(v - dval) > dtol
                bad = fin and ((k and abs(v - kval[e]) > ktol[e]) or ((not k) and not drop_ok))
                if not fin:
                    nonfin += 1
                if k:
                    cnt += 1
                if bad:
                    if first_bad[0] < 0:
                        first_bad[0] = b
                        first_bad[1] = e
                        first_val[0] = v
                    off += 1
            sig[b, u] = cnt / S
            if cnt == S:
                ucount[u] += 1
                kept_units += 1
                gcount += 1
            elif cnt != 0:
                partial += 1
            if (u + 1) % G == 0:
                group_hist[gcount] += 1
                gcount = 0
        call_hist[kept_units] += 1
        per_call[b, 0] = nonfin
        per_call[b, 1] = off
        per_call[b, 2] = partial
        per_call[b, 3] = kept_units


@nb.njit(cache=True, nogil=True)
def _gaussian_units(ybuf, nrows, mu, zscale, S, s1, s2, sig, per_call):
    """Gaussian dropout: moments and the unit's mean standardised noise."""
    n = ybuf.shape[1]
    n_units = n // S
    for b in range(nrows):
        nonfin = 0
        for u in range(n_units):
            zs = 0.0
            base = u * S
            for j in range(S):
                e = base + j
                v = np.float64(ybuf[b, e])
                d = v - mu[e]
                s1[e] += d
                s2[e] += d * d
                if (v - v) != 0.0:
                    nonfin += 1
                else:
                    zs += d * zscale[e]
            sig[b, u] = zs / S
        per_call[b, 0] = nonfin
        per_call[b, 1] = 0
        per_call[b, 2] = 0
        per_call[b, 3] = 0


def fold_two_point(ybuf, nrows: int, mu, kept_value, kept_tol, drop_value: float, drop_tol: float,
                   drop_ok: bool, unit_size: int, group_size: int | None, want_signal: bool,
                   s1, s2, signal, unit_kept, call_hist, group_hist, per_call, first_bad,
                   first_val) -> None:
    """Fold rows ``0 .. nrows-1`` of ``ybuf`` of a two-point law (in place).

    Parameters
    ----------
    ybuf : ndarray, shape (batch, n)
        Outputs, one call a row (any real dtype; read as float64).
    mu, kept_value, kept_tol : float64 ndarray, shape (n,)
        The law's mean, kept value and its tolerance per element.
    drop_value, drop_tol : float
        The dropped value and its tolerance; ``drop_ok=False`` makes a
        dropped value off the support (``p = 0``).
    unit_size, group_size : int
        Elements per unit (contiguous) and units per group (``None``: the
        element-wise fast path, no group histogram).
    want_signal : bool
        Element-wise path only: also write the 0/1 keep signal (the units
        path always writes the kept fraction of each unit).
    s1, s2 : float64 ndarray, shape (n,)
        ``Σ (y - mu)`` and ``Σ (y - mu)²`` per element (accumulated).
    signal : float32 ndarray, shape (batch, n_units)
        Per call and unit: the kept fraction (the FFT checks' signal).
    unit_kept, call_hist, group_hist : int64 ndarray
        Calls in which each unit was kept; histogram of kept units per call;
        histogram of kept units per group (accumulated).
    per_call : int64 ndarray, shape (batch, 4)
        See the module docstring.
    first_bad, first_val : ndarray
        Row and element of the first off-support value and the value
        (``first_bad[0] < 0`` until one is seen).
    """
    if unit_size == 1 and group_size is None:
        _two_point_element(ybuf, nrows, mu, kept_value, kept_tol, drop_value, drop_tol, drop_ok,
                           want_signal, s1, s2, signal, unit_kept, call_hist, per_call, first_bad,
                           first_val)
    else:
        n_units = ybuf.shape[1] // unit_size
        _two_point_units(ybuf, nrows, mu, kept_value, kept_tol, drop_value, drop_tol, drop_ok,
                         unit_size, group_size or n_units, s1, s2, signal, unit_kept, call_hist,
                         group_hist, per_call, first_bad, first_val)


def fold_gaussian(ybuf, nrows: int, mu, zscale, unit_size: int, s1, s2, signal, per_call) -> None:
    """Fold rows ``0 .. nrows-1`` of ``ybuf`` of Gaussian dropout (in place).

    ``zscale`` turns ``y - mu`` into the standardised noise (``sign / sd``
    per element, 0 where the law's sd is 0); ``signal[b, u]`` is the mean
    standardised noise of unit ``u`` in call ``b``.  ``s1``, ``s2`` and
    ``per_call`` as in :func:`fold_two_point`.
    """
    _gaussian_units(ybuf, nrows, mu, zscale, unit_size, s1, s2, signal, per_call)


@nb.njit(inline="always", cache=True)
def _note_first(first, first_val, r, e, y, x, kv):
    """Record the first off-support output: its (row, element) and (output, input, kept value)."""
    if first[0] < 0:
        first[0] = r
        first[1] = e
        first_val[0] = y
        first_val[1] = x
        first_val[2] = kv


@nb.njit(inline="always", cache=True)
def _fresh_word(call, u, k0, k1):
    """The uniform word of a unit whose mask nothing shows: word ``u % 4`` of Philox block ``(call, u // 4)``."""
    c = np.uint64(call)
    ub = np.uint64(u // 4)
    w0, w1, w2, w3 = philox_block(c & MASK32, c >> SH32, ub & MASK32, ub >> SH32, k0, k1)
    j4 = u % 4
    return w0 if j4 == 0 else (w1 if j4 == 1 else (w2 if j4 == 2 else w3))


@nb.njit(inline="always", cache=True)
def _kept_value(kind, x, q, a, b, ulps, rel, tiny, tol_abs):
    """The kept value of input ``x`` (``x / q``, or ``a x + b`` for ``kind`` 1) and its tolerance:
    ``ulps`` grid spacings, the spacing at ``|v|`` bounded by ``|v| rel`` and below by ``tiny``."""
    if kind == 0:
        kv = x / q
        return kv, ulps * max(abs(kv) * rel, tiny)
    kv = a * x + b
    return kv, ulps * max(abs(kv) * rel, abs(a * x) * rel, tol_abs, tiny)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _canonical(xs, ys, nrows, kind, q, a, b, drop, dtol, drop_ok, ulps, tol_abs, mant, emin, S, S_out, call0,
               thr, k0, k1, kept_ref, drop_ref, out, stats, first, first_val):
    n = xs.shape[1]
    n_units = n // S
    status = np.empty(S, dtype=np.int8)  # 1 kept, 0 dropped, 2 not shown
    # the grid spacing at |v| is at most |v| 2^(1 - mant) (the smallest subnormal below the normals)
    rel = math.ldexp(1.0, 1 - mant)
    tiny = math.ldexp(1.0, emin - mant)
    if S == 1 and S_out == 1:  # element units: a branch-free pass, then the rare elements one by one
        nonfinite = 0
        off = 0
        shown = 0
        for r in range(nrows):
            special = 0
            for e in range(n):  # vectorisable: no branches, no draws
                x = np.float64(xs[r, e])
                y = np.float64(ys[r, e])
                fin = (y - y) == 0.0
                kv, tol = _kept_value(kind, x, q, a, b, ulps, rel, tiny, tol_abs)
                is_drop = abs(y - drop) <= dtol
                is_kept = abs(y - kv) <= tol
                kept = fin and not is_drop
                dropped = is_drop and not is_kept and drop_ok
                nonfinite += not fin
                shown += kept or dropped
                special += not (kept or dropped) or (kept and not is_kept)
                out[r, e] = kept_ref[e] if kept else drop_ref
            if special == 0:
                continue
            for e in range(n):  # hidden elements (a fresh draw) and off-support ones (counted, first kept)
                x = np.float64(xs[r, e])
                y = np.float64(ys[r, e])
                hidden = True
                bad = False
                kv = 0.0
                if (y - y) == 0.0:
                    kv, tol = _kept_value(kind, x, q, a, b, ulps, rel, tiny, tol_abs)
                    is_drop = abs(y - drop) <= dtol
                    is_kept = abs(y - kv) <= tol
                    if not is_drop:
                        hidden = False
                        bad = not is_kept
                    elif not is_kept:
                        hidden = not drop_ok
                        bad = not drop_ok
                if bad:
                    off += 1
                    _note_first(first, first_val, r, e, y, x, kv)
                if hidden:  # nothing shown: a fresh Bernoulli(q) draw, as for a hidden unit below
                    w = _fresh_word(call0 + r, e, k0, k1)
                    out[r, e] = kept_ref[e] if w < thr else drop_ref
        stats[0] += nonfinite
        stats[1] += off
        stats[2] += shown
        return
    for r in range(nrows):
        for u in range(n_units):
            nk = 0
            nd = 0
            base = u * S
            for j in range(S):
                e = base + j
                x = np.float64(xs[r, e])
                y = np.float64(ys[r, e])
                if (y - y) != 0.0:  # NaN or inf: shows nothing
                    stats[0] += 1
                    status[j] = 2
                    continue
                kv, tol = _kept_value(kind, x, q, a, b, ulps, rel, tiny, tol_abs)
                is_drop = abs(y - drop) <= dtol
                is_kept = abs(y - kv) <= tol
                if not is_drop:
                    status[j] = 1  # not the dropped value: kept (a wrong value also fails the support)
                    nk += 1
                    if not is_kept:
                        stats[1] += 1
                        _note_first(first, first_val, r, e, y, x, kv)
                elif is_kept:
                    status[j] = 2  # kept and dropped values coincide (x = 0): the mask is hidden
                elif drop_ok:
                    status[j] = 0
                    nd += 1
                else:  # p = 0: a dropped value is off the support
                    status[j] = 2
                    stats[1] += 1
                    _note_first(first, first_val, r, e, y, x, kv)
            stats[2] += nk + nd
            if nk > 0 and nd == 0:
                unit = 1
            elif nd > 0 and nk == 0:
                unit = 0
            elif nk == 0 and nd == 0:
                # nothing shown: a fresh Bernoulli(q) draw, word u % 4 of Philox block (call, u // 4)
                w = _fresh_word(call0 + r, u, k0, k1)
                unit = 1 if w < thr else 0
            else:
                unit = -1  # partly kept: each element as shown
            if S_out != S:  # reduced units of two elements: kept, dropped, or one of each (partly kept)
                o = u * 2
                first_kept = unit != 0
                second_kept = unit == 1
                out[r, o] = kept_ref[o] if first_kept else drop_ref
                out[r, o + 1] = kept_ref[o + 1] if second_kept else drop_ref
                continue
            for j in range(S):
                if unit == 1:
                    k = True
                elif unit == 0:
                    k = False
                else:
                    k = status[j] == 1
                out[r, base + j] = kept_ref[base + j] if k else drop_ref


def canonical_two_point(xs, ys, nrows: int, *, divide: bool, q: float, a: float, b: float, drop_value: float,
                        drop_tol: float, drop_ok: bool, ulps: float, tol_abs: float, mantissa: int,
                        min_exponent: int, unit_size: int, call0: int, threshold: int, key, kept_ref,
                        drop_ref: float, out, stats, first, first_val, out_unit_size: int | None = None) -> None:
    """Re-express calls with varying inputs as calls on one reference input (in place).

    For each row ``r`` and element ``e``: the kept value of the input
    ``xs[r, e]`` is ``x / q`` (``divide``) or ``a x + b``, with a tolerance
    of ``ulps`` grid spacings bounded above by ``|v| 2**(1 - mantissa)``
    (at most twice the spacing at ``v``; the subnormal spacing
    ``2**(min_exponent - mantissa)`` near 0; ``tol_abs`` a floor for the
    affine map); the
    output ``ys[r, e]`` is dropped (the dropped value, not the kept one),
    kept (anything else finite; off the support unless the kept value), or
    shows nothing (the two values coincide, or non-finite).  A unit of
    ``unit_size`` elements takes the mask its shown elements agree on, a
    fresh Bernoulli draw when none is shown (word ``u % 4`` of Philox
    block ``(call0 + r, u // 4)`` under ``key``, kept when below
    ``threshold``: :func:`mcdrop.core.rng.keep_threshold`), or stays
    partly kept.  ``out[r]`` gets ``kept_ref`` where kept, ``drop_ref`` where
    dropped; with ``out_unit_size=2`` (units of more than two elements)
    each unit is written as two elements: both kept, both dropped, or one
    of each when partly kept.  ``stats`` accumulates (non-finite, off-support, shown)
    counts; ``first``/``first_val`` record the first off-support (row,
    element) and (output, input, kept value).
    """
    k = np.asarray(key, dtype=np.uint64)
    _canonical(xs, ys, nrows, 0 if divide else 1, q, a, b, drop_value, drop_tol, drop_ok, ulps, tol_abs,
               mantissa, min_exponent, unit_size, out_unit_size or unit_size, int(call0), np.uint64(threshold),
               k[0], k[1], kept_ref, drop_ref, out, stats, first, first_val)
