"""Streaming accumulation of an audit: every call's output, folded into summaries.

Nothing here keeps an output after its batch is folded in, so memory is flat
in the number of calls: ``O(elements)`` for the per-element moments and keep
counts, ``O(units)`` for the histograms and the frequency-domain sums of the
independence checks, and one batch buffer.

Per batch of calls (rows of ``ybuf``) one Numba kernel makes a single pass
over the outputs and updates

* per element: shifted sums ``sum(y - mu)`` and ``sum((y - mu)**2)``, turned
  into :class:`~mcdrop.accumulators.Moments` and merged (Chan et al.);
* per unit (element, channel slice or sample row): the number of calls in
  which it was kept (int64, exact);
* per call: kept units (a histogram over calls), units partly kept
  (structure violations), off-support and non-finite values;
* per group (the units of one sample row for channel dropout, the whole call
  for sample dropout): a histogram of kept units;
* the unit signal of each call (fraction kept, or the mean standardised noise
  for Gaussian dropout) for the FFT checks.

On the first ``fft_calls`` calls the unit signal of each call is
standardised (its own mean and variance removed, so the checks test the
*arrangement*, not the rate) and Fourier transformed once; the power spectra
and the cross spectra of consecutive calls are summed in the frequency
domain, so the autocorrelation at every offset and the cross-correlation at
every offset cost one inverse FFT each at the end.  The exact permutation
moments of each call's circular autocorrelation are accumulated alongside,
so the z statistics are right for any number of units (see
:func:`autocorr_null_moments`).

For the tails of those statistics (:mod:`mcdrop.auditing.independence`) the stream
also keeps, per FFT call, its number of kept units, whether its mask varied,
and ``sum(a**3)``, ``sum(a**4)`` of its standardised signal ``a``: a
sparse mask (few dropped, or few kept, units) makes each call's
correlation a small coincidence count, far from normal, and its law is
fixed by those numbers (:meth:`AuditStream.fft_call_info`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from ..core.accumulators import Moments
from ..core.fold_kernels import fold_gaussian, fold_two_point

__all__ = ["AuditStream", "FFTCallInfo", "autocorr_null_moments", "CALL_LAGS"]

#: Call lags (besides 1) at which masks are compared at offset 0: catches a
#: generator re-seeded every few calls, or alternating between two masks.
CALL_LAGS = tuple(range(2, 9))


def autocorr_null_moments(n: int, a4: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Permutation mean and variances of a circular autocorrelation.

    For values ``a`` with ``sum(a) = 0``, ``sum(a**2) = 1`` and
    ``A4 = sum(a**4)``, placed in a uniformly random order (what independent,
    identically distributed draws give, conditionally on their values), the
    circular autocorrelation ``R_k = sum_i a_i a_{(i+k) mod n}`` has

    * mean ``-1 / (n - 1)`` at every offset;
    * variance ``(1 - A4)/(n-1) + (1 - 2 A4)/((n-1)(n-2)) - 1/(n-1)**2``
      for ``k != n/2``;
    * variance ``2 (1 - A4)/(n-1) + (3 - 6 A4)/((n-1)(n-3)) - 1/(n-1)**2``
      at ``k = n/2`` (each pair is counted twice).

    (Sum over the index pairs of the permutation moments
    ``E[a_i a_j] = -1/(n(n-1))``, ``E[a_i**2 a_j**2] = (1 - A4)/(n(n-1))``,
    ``E[a_i a_j**2 a_k] = (2 A4 - 1)/(n)_3``,
    ``E[a_i a_j a_k a_l] = (3 - 6 A4)/(n)_4`` over distinct indices.)
    Returns ``(mean, var_general, var_half)`` with the variances per call.
    Needs ``n >= 4``.
    """
    n = float(n)
    a4 = np.asarray(a4, dtype=np.float64)
    mean = -1.0 / (n - 1.0)
    var = (1.0 - a4) / (n - 1.0) + (1.0 - 2.0 * a4) / ((n - 1.0) * (n - 2.0)) - mean * mean
    var_half = 2.0 * (1.0 - a4) / (n - 1.0) + (3.0 - 6.0 * a4) / ((n - 1.0) * (n - 3.0)) - mean * mean
    # exact zeros can come out slightly negative in floating point (e.g. n = 4
    # with three equal values: every arrangement has the same R_1)
    return mean, np.maximum(var, 0.0), np.maximum(var_half, 0.0)


@dataclass(frozen=True)
class FFTCallInfo:
    """What the tails of the FFT checks need of each FFT call, in call order.

    ``kept``: kept units (two-point variants; 0 for Gaussian); ``valid``:
    the call's signal varied (it entered the sums); ``a3``, ``a4``:
    ``sum(a**3)`` and ``sum(a**4)`` of its standardised signal
    (``sum(a) = 0``, ``sum(a**2) = 1``; 0 for an invalid call); ``binary``:
    every signal is a 0/1 keep indicator (two-point variant, no unit partly
    kept), so a call is fixed by its kept count up to the arrangement.
    """

    kept: np.ndarray
    valid: np.ndarray
    a3: np.ndarray
    a4: np.ndarray
    binary: bool


class AuditStream:
    """Accumulators of one audit (see the module docstring).

    Parameters
    ----------
    law : mcdrop.laws.ElementLaw
    unit_size : int
        Elements per unit (contiguous in C order).
    group_size : int or None
        Units per structure group (``None``: no group histogram).
    fft_calls : int
        Number of leading calls that feed the FFT checks.
    batch : int
        Rows of the batch buffer.
    """

    def __init__(self, law, n: int, unit_size: int, group_size: int | None,
                 fft_calls: int, batch: int, out_dtype):
        self.law = law
        self.n = n
        self.S = unit_size
        self.n_units = n // unit_size
        self.G = group_size
        self.fft_calls = fft_calls
        self.batch = batch
        self.two_point = law.two_point
        self.buf = np.empty((batch, n), dtype=np.dtype(out_dtype))
        self.moments = Moments.empty(n)
        self._s1 = np.zeros(n)
        self._s2 = np.zeros(n)
        self.sig = np.zeros((batch, self.n_units), dtype=np.float32)
        self.ucount = np.zeros(self.n_units, dtype=np.int64)
        self.call_hist = np.zeros(self.n_units + 1, dtype=np.int64)
        self.group_hist = np.zeros((group_size or 1) + 1, dtype=np.int64)
        self.per_call = np.zeros((batch, 4), dtype=np.int64)
        self.first_bad = np.full(2, -1, dtype=np.int64)
        self.first_val = np.zeros(1)
        self.first_bad_call = -1
        self.first_nonfinite_call = -1
        self.calls = 0
        self.nonfinite = 0
        self.off_support = 0
        self.partial_units = 0
        # Gaussian: standardised noise of element e is (y - mu) / sd * sign.
        if not law.two_point:
            with np.errstate(divide="ignore"):
                self._zscale = np.where(law.sd > 0, law.sign / np.where(law.sd > 0, law.sd, 1.0), 0.0)
        # FFT accumulators
        nu = self.n_units
        self.fft_ok = nu >= 2
        self.fft_done = 0
        self.auto_calls = 0
        self._auto_mean = 0.0
        self._auto_var = 0.0
        self._auto_var_half = 0.0
        self._power = np.zeros(nu // 2 + 1)
        self._cross = np.zeros(nu // 2 + 1, dtype=np.complex128)
        self.cross_pairs = 0
        self._prev_a = np.zeros((0, nu), dtype=np.float32)
        self._prev_valid = np.zeros(0, dtype=bool)
        self._prev_f = np.zeros((0, nu // 2 + 1), dtype=np.complex64)
        self.lag_sums = np.zeros(len(CALL_LAGS))
        self.lag_pairs = np.zeros(len(CALL_LAGS), dtype=np.int64)
        # per FFT call (see FFTCallInfo)
        self._fft_kept: list[np.ndarray] = []
        self._fft_valid: list[np.ndarray] = []
        self._fft_a3: list[np.ndarray] = []
        self._fft_a4: list[np.ndarray] = []
        self.fft_binary = bool(law.two_point)

    # -- per batch --------------------------------------------------------------

    def fold(self, nrows: int, buf: np.ndarray | None = None) -> None:
        """Fold rows ``0..nrows-1`` of ``buf`` (default ``self.buf``) into the accumulators.

        Calls must be folded in order, one fold at a time (they may run in a
        worker thread: the kernels release the GIL).
        """
        if nrows <= 0:
            return
        ybuf = self.buf if buf is None else buf
        law = self.law
        s1, s2 = self._s1, self._s2
        s1[:] = 0.0
        s2[:] = 0.0
        if self.two_point:
            want = self.fft_ok and self.fft_done < self.fft_calls
            fold_two_point(ybuf, nrows, law.mu, law.kept_value, law.kept_tol, law.drop_value,
                           law.drop_tol, law.drop_ok, self.S, self.G, want, s1, s2, self.sig,
                           self.ucount, self.call_hist, self.group_hist, self.per_call,
                           self.first_bad, self.first_val)
        else:
            fold_gaussian(ybuf, nrows, law.mu, self._zscale, self.S, s1, s2, self.sig, self.per_call)
        pc = self.per_call[:nrows]
        nonfin = int(pc[:, 0].sum())
        if nonfin and self.first_nonfinite_call < 0:
            self.first_nonfinite_call = self.calls + int(np.flatnonzero(pc[:, 0])[0])
        self.nonfinite += nonfin
        off = int(pc[:, 1].sum())
        if off and self.first_bad_call < 0:
            self.first_bad_call = self.calls + int(self.first_bad[0])
        self.off_support += off
        self.partial_units += int(pc[:, 2].sum())
        # per-element moments of d = y - mu, merged with Chan's formula
        with np.errstate(invalid="ignore"):  # an infinite output (the finite check's) gives NaN here
            mean_b = s1 / nrows
            m2_b = np.maximum(s2 - s1 * mean_b, 0.0)
            self.moments = self.moments.merge(Moments(nrows, mean_b, m2_b))
        if self.fft_ok and self.fft_done < self.fft_calls:
            take = min(nrows, self.fft_calls - self.fft_done)
            self._fft_fold(self.sig[:take], self.per_call[:take, 3], self.per_call[:take, 2])
            self.fft_done += take
        self.calls += nrows

    def _fft_fold(self, rows: np.ndarray, kept: np.ndarray, partial: np.ndarray) -> None:
        nu = self.n_units
        a = rows.astype(np.float32, copy=True)
        a -= a.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)
        a2 = a * a
        ss = a2.sum(axis=1, dtype=np.float64)
        # a call whose units are all alike carries no arrangement to test
        valid = ss > 1e-9 * nu
        scale = np.where(valid, 1.0 / np.sqrt(np.where(valid, ss, 1.0)), 0.0).astype(np.float32)
        s64 = scale.astype(np.float64)
        self._fft_kept.append(np.array(kept, dtype=np.int64))
        self._fft_valid.append(valid.copy())
        self._fft_a3.append((a2 * a).sum(axis=1, dtype=np.float64) * s64**3)
        self._fft_a4.append((a2 * a2).sum(axis=1, dtype=np.float64) * s64**4)
        if self.two_point and np.any(partial):
            self.fft_binary = False
        a *= scale[:, None]
        f = sfft.rfft(a, axis=1)
        fv = f.view(np.float32)
        sq = (fv * fv).sum(axis=0).astype(np.float64)
        self._power += sq[0::2] + sq[1::2]
        if nu >= 4 and np.any(valid):
            a4 = (a2 * a2).sum(axis=1, dtype=np.float64)[valid] * (scale[valid].astype(np.float64) ** 4)
            mean, var, var_half = autocorr_null_moments(nu, a4)
            k = int(np.count_nonzero(valid))
            self.auto_calls += k
            self._auto_mean += mean * k
            self._auto_var += float(np.sum(var))
            self._auto_var_half += float(np.sum(var_half))
        # Cross spectra of consecutive calls and lagged dot products at offset
        # 0.  Rows of invalid calls are all zero, so they add nothing; only the
        # pair counts need the validity flags.
        pa, pf, pv = self._prev_a, self._prev_f, self._prev_valid
        P = pa.shape[0]
        a_cat = np.concatenate([pa, a]) if P else a
        v_cat = np.concatenate([pv, valid]) if P else valid
        f_cat = np.concatenate([pf, f]) if pf.shape[0] else f
        if f_cat.shape[0] >= 2:
            ok = v_cat[-f_cat.shape[0]:]
            npairs = int(np.count_nonzero(ok[1:] & ok[:-1]))
            if npairs:
                self._cross += (f_cat[1:] * np.conj(f_cat[:-1])).sum(axis=0).astype(np.complex128)
                self.cross_pairs += npairs
        total = a_cat.shape[0]
        for j, lag in enumerate(CALL_LAGS):
            lo = max(P, lag)
            if lo >= total:
                continue
            ok = v_cat[lo:] & v_cat[lo - lag: total - lag]
            npairs = int(np.count_nonzero(ok))
            if npairs:
                # einsum, not BLAS: a multi-threaded BLAS call spins badly on a
                # busy machine, and these are only a few thousand products a row
                self.lag_sums[j] += float(np.einsum("ij,ij->", a_cat[lo:], a_cat[lo - lag: total - lag]))
                self.lag_pairs[j] += npairs
        keep = max(CALL_LAGS)
        self._prev_a = a_cat[-keep:].copy()
        self._prev_valid = v_cat[-keep:].copy()
        self._prev_f = f_cat[-1:].copy()

    # -- results ----------------------------------------------------------------

    def fft_call_info(self) -> FFTCallInfo:
        """Per-FFT-call numbers for the tails of the independence checks."""
        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return FFTCallInfo(kept=cat(self._fft_kept, np.int64), valid=cat(self._fft_valid, bool),
                           a3=cat(self._fft_a3, np.float64), a4=cat(self._fft_a4, np.float64),
                           binary=self.fft_binary)

    def autocorrelation(self):
        """``(offsets, mean_corr, z, sd, sums, var)`` of the pooled circular autocorrelation.

        ``mean_corr`` is the average over calls of the correlation at each
        offset ``1 .. n_units // 2``, centred so that its null mean is 0;
        ``sums`` the centred sum over calls and ``var`` its exact null
        variance (``sd`` is the standard deviation of ``mean_corr``).
        """
        nu = self.n_units
        if nu < 4 or self.auto_calls == 0:
            return None
        r = sfft.irfft(self._power, n=nu)
        offsets = np.arange(1, nu // 2 + 1)
        c = self.auto_calls
        centred = r[offsets] - self._auto_mean
        var = np.full(offsets.size, self._auto_var)
        if nu % 2 == 0:
            var[-1] = self._auto_var_half
        sd = np.sqrt(np.maximum(var, 1e-300))
        z = centred / sd
        return offsets, centred / c, z, sd / c, centred, var

    def cross_correlation(self):
        """``(offsets, mean_corr, z, sd, sums)`` of consecutive calls at every offset.

        Offsets are signed, ``-(n//2 - 1) .. n//2``: the correlation of call
        ``c`` at unit ``i + k`` with call ``c - 1`` at unit ``i``.
        """
        nu = self.n_units
        if self.cross_pairs == 0 or nu < 2:
            return None
        x = sfft.irfft(self._cross, n=nu)
        offsets = np.arange(nu)
        signed = np.where(offsets > nu // 2, offsets - nu, offsets)
        order = np.argsort(signed, kind="stable")
        sd_pair = math.sqrt(1.0 / (nu - 1.0))
        tot_sd = sd_pair * math.sqrt(self.cross_pairs)
        z = x / tot_sd
        return (signed[order], (x / self.cross_pairs)[order], z[order],
                sd_pair / math.sqrt(self.cross_pairs), x[order])

    def lag_statistics(self):
        """``(lags, mean_corr, z, sums, pairs)`` of calls ``c`` and ``c - lag`` at offset 0."""
        nu = self.n_units
        ok = self.lag_pairs > 0
        if nu < 2 or not np.any(ok):
            return None
        lags = np.array(CALL_LAGS)[ok]
        pairs = self.lag_pairs[ok].astype(np.float64)
        sums = self.lag_sums[ok]
        z = sums / np.sqrt(pairs / (nu - 1.0))
        return lags, sums / pairs, z, sums, self.lag_pairs[ok]
