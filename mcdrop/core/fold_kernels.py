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

import numba as nb
import numpy as np

__all__ = ["fold_two_point", "fold_gaussian"]


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
