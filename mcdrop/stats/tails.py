"""Tails of test statistics: a normal approximation where it can be trusted, a rigorous bound elsewhere.

A p-value must be valid (false-alarm probability at most its level) for
every ``p`` and input size, including sparse masks (``p`` near 0 or 1, or a
few units) where a statistic is a count of rare events and a normal tail at
the z's an audit rejects at (6 to 8) is off by orders of magnitude.  So each
tail is either the normal (or matched chi-square) tail where an Edgeworth
criterion trusts it (:func:`edgeworth_error` at the tested z, relative error
at most :data:`EDGEWORTH_TOL`), or a rigorous Chernoff or Bennett bound
(:func:`chernoff_tail`, :class:`BernoulliSum`, :func:`bennett_tail`);
:class:`TailModel` picks between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as sps
from scipy.optimize import minimize_scalar

from .normal import z_pvalue

__all__ = [
    "EDGEWORTH_TOL",
    "edgeworth_error",
    "normal_trusted",
    "chernoff_tail",
    "log_bernoulli_mgf",
    "BernoulliSum",
    "bennett_tail",
    "TailModel",
    "band_z_test",
]

#: Largest relative error of a normal (or moment-matched chi-square) tail a
#: check accepts, as estimated by the Edgeworth terms at the z being tested
#: (:func:`edgeworth_error`); beyond it the check uses a rigorous bound.
EDGEWORTH_TOL = 0.1
#: Chernoff bounds are minimised over ``lam`` on this many log-spaced points
#: of ``[lam_max 1e-12, lam_max]``, then refined by Brent's method.
LAM_GRID = 49
def edgeworth_error(z, g3: float, g4: float):
    """Relative error of the normal tail ``Q(|z|)`` estimated by the Edgeworth terms.

    ``g3``, ``g4`` are the standardised third and fourth cumulants of the
    statistic.  The Edgeworth correction to ``P(Z > z)`` is
    ``phi(z) [g3 He2(z)/6 + g4 He3(z)/24 + g3**2 He5(z)/72]``; divided by
    ``Q(z)`` (the Mills ratio ``phi/Q`` is about ``z``) it grows like
    ``g3 z**3 / 6``, the first term of Cramer's series for the log tail
    ratio.  For a dense mask the statistics are sums of many nearly normal
    terms and this is tiny at the z's a check rejects at; for a sparse mask
    a correlation is a Poisson-like coincidence count whose skewness does not
    average away, and the normal tail is wrong by orders of magnitude there
    (e.g. the +1 correlation of one pair of calls, each dropping one of 64
    units, has probability 1/64, not the normal's 1e-15).  Absolute values
    are used, so both tails are covered.
    """
    z = np.abs(np.asarray(z, dtype=np.float64))
    if not (math.isfinite(g3) and math.isfinite(g4)):
        return np.full(z.shape, np.inf) if z.ndim else math.inf
    with np.errstate(over="ignore", invalid="ignore"):
        mills = np.exp(sps.norm.logpdf(z) - sps.norm.logsf(z))
        he2, he3, he5 = z * z - 1.0, z**3 - 3.0 * z, z**5 - 10.0 * z**3 + 15.0 * z
        err = mills * (abs(g3) * np.abs(he2) / 6.0 + abs(g4) * np.abs(he3) / 24.0 + g3 * g3 * np.abs(he5) / 72.0)
    err = np.where(np.isfinite(err), err, np.inf)
    return err if err.ndim else float(err)


def normal_trusted(z, g3: float, g4: float):
    """The normal tail at ``|z|`` is within ``EDGEWORTH_TOL`` (relative) of the truth."""
    return edgeworth_error(z, g3, g4) <= EDGEWORTH_TOL


def chernoff_tail(cgf: Callable[[np.ndarray], np.ndarray], t: float, lam_max: float,
                  lam_guess: float | None = None) -> float:
    """``min(1, inf over 0 <= lam <= lam_max of exp(K(lam) - lam t))``, a bound on ``P(S >= t)``.

    ``cgf`` maps an array of ``lam >= 0`` to upper bounds ``K(lam)`` of
    ``log E exp(lam S)`` (for a sub-probability, e.g. the part of ``S``
    outside a truncated tail, ``log E[exp(lam S); A]``).  Every ``lam``
    gives a valid bound (Markov's inequality on ``exp(lam S)``), so an
    inexact minimisation only makes the bound conservative, never invalid.
    With ``lam_guess`` (e.g. the Gaussian optimum ``t / var``, for a costly
    ``cgf``) the first grid is 13 points within a factor 1000 of it.
    """
    if not t > 0.0:
        return 1.0
    if lam_guess is not None and lam_guess > 0:
        grid = np.minimum(lam_guess * np.logspace(-3.0, 3.0, 13), lam_max)
    else:
        grid = lam_max * np.logspace(-12.0, 0.0, LAM_GRID)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.asarray(cgf(grid), dtype=np.float64) - grid * t
    vals = np.where(np.isnan(vals), np.inf, vals)
    i = int(np.argmin(vals))
    best = float(vals[i])
    lo = float(grid[i - 1]) if i > 0 else 0.0
    hi = float(grid[min(i + 1, grid.size - 1)])

    def f(lam):
        with np.errstate(over="ignore", invalid="ignore"):
            v = float(np.asarray(cgf(np.array([lam])))[0]) - lam * t
        return v if math.isfinite(v) else 1e100  # a plateau, not inf: Brent's steps stay finite

    if hi > lo and math.isfinite(best):
        xatol = (1e-9 if lam_guess is None else 1e-3) * hi
        with np.errstate(all="ignore"):
            res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
        if math.isfinite(res.fun) and res.fun < 1e99:
            best = min(best, float(res.fun))
    return float(min(1.0, math.exp(min(best, 0.0))))


def log_bernoulli_mgf(s: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``log(1 - pi + pi exp(s))`` without overflow or cancellation."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        a = np.log1p(pi * np.expm1(np.minimum(s, 30.0)))
        b = s + np.log(pi + (1.0 - pi) * np.exp(-np.maximum(s, 30.0)))
    return np.where(s < 30.0, a, b)


@dataclass(frozen=True)
class BernoulliSum:
    """``S = sum over groups g of count_g copies of beta_g (B - pi_g)``, ``B ~ Bernoulli(pi_g)``.

    The copies are independent (or, for the FFT checks, a martingale whose
    conditional CGFs are bounded by these).  ``beta`` may be an interval
    ``[beta_lo, beta_hi]`` per group: each copy's CGF is convex in ``beta``
    and 0 at ``beta = 0``, so its largest value on the interval is at an
    end, and :meth:`cgf` takes it there (how many nearly equal weights are
    grouped without losing rigour).  ``count`` may be fractional (a CGF
    raised to a power, as in the Holder step of the autocorrelation bound).
    """

    beta_lo: np.ndarray
    beta_hi: np.ndarray
    pi: np.ndarray
    count: np.ndarray

    @staticmethod
    def make(beta, pi, count, beta_hi=None) -> "BernoulliSum":
        beta = np.atleast_1d(np.asarray(beta, dtype=np.float64))
        hi = beta if beta_hi is None else np.atleast_1d(np.asarray(beta_hi, dtype=np.float64))
        pi = np.broadcast_to(np.asarray(pi, dtype=np.float64), beta.shape)
        count = np.broadcast_to(np.asarray(count, dtype=np.float64), beta.shape)
        keep = (count > 0) & (pi > 0) & (pi < 1) & ((beta != 0) | (hi != 0))
        return BernoulliSum(beta[keep].copy(), hi[keep].copy(), pi[keep].copy(), count[keep].copy())

    @staticmethod
    def grouped(beta: np.ndarray, pi: float, count: float, max_groups: int = 2048) -> "BernoulliSum":
        """Many copies with weights ``beta`` (one each), as at most ``max_groups`` intervals."""
        b = np.sort(np.asarray(beta, dtype=np.float64).ravel())
        u, c = np.unique(b, return_counts=True)
        if u.size <= max_groups:
            return BernoulliSum.make(u, pi, c * count)
        edges = np.linspace(0, b.size, max_groups + 1).astype(np.int64)
        lo, hi = b[edges[:-1]], b[edges[1:] - 1]
        return BernoulliSum.make(lo, pi, np.diff(edges) * count, beta_hi=hi)

    @property
    def empty(self) -> bool:
        return self.pi.size == 0

    def negated(self) -> "BernoulliSum":
        return BernoulliSum(-self.beta_hi, -self.beta_lo, self.pi, self.count)

    def cgf(self, lam) -> np.ndarray:
        lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))[:, None]
        out = None
        for b in (self.beta_lo, self.beta_hi):
            sv = lam * b[None, :]
            v = log_bernoulli_mgf(sv, self.pi[None, :]) - sv * self.pi[None, :]
            out = v if out is None else np.maximum(out, v)
        return (out * self.count[None, :]).sum(axis=1)

    def lam_max(self, t: float) -> float:
        """Upper end of the ``lam`` search: far past every jump's saturation,
        short of float cancellation in ``K(lam) - lam t``."""
        mags = np.abs(np.concatenate([self.beta_lo, self.beta_hi]))
        mags = mags[mags > 0]
        return float(min(1e3 / mags.min(), 1e8 / max(mags.max(), abs(t), 1e-300)))

    def tail(self, t: float) -> float:
        """Chernoff bound on ``P(S >= t)``."""
        if self.empty:
            return 1.0 if t <= 0 else 0.0
        return chernoff_tail(self.cgf, t, self.lam_max(t))

    def cumulants(self) -> tuple[float, float, float]:
        """``(variance, kappa3, kappa4)`` (exact for single-valued weights)."""
        b = 0.5 * (self.beta_lo + self.beta_hi)
        pq = self.pi * (1.0 - self.pi)
        c = self.count
        return (float(np.sum(c * b**2 * pq)), float(np.sum(c * b**3 * pq * (1.0 - 2.0 * self.pi))),
                float(np.sum(c * b**4 * pq * (1.0 - 6.0 * pq))))


def bennett_tail(var: float, b: float, t: float) -> float:
    """Bennett's bound on ``P(S >= t)`` for a sum of martingale differences ``<= b``
    with predictable variances summing to ``var``: ``log E e^{lam X} <= v (e^{lam b} - 1 - lam b)/b**2``."""
    if not t > 0.0:
        return 1.0
    if var <= 0.0:
        return 0.0
    u = b * t / var
    return float(min(1.0, math.exp(-(var / (b * b)) * ((1.0 + u) * math.log1p(u) - u))))


@dataclass
class TailModel:
    """Null law of a centred sum ``S``: its variance and standardised cumulants for
    the Edgeworth criterion, and rigorous bounds on each tail."""

    var: float
    g3: float
    g4: float
    upper: list  # callables t -> bound on P(S >= t)
    lower: list  # callables t -> bound on P(S <= -t)

    def pvalue(self, t: float, tol: float = 0.0) -> tuple[float, str]:
        """Two-sided p-value of ``|S| >= |t|`` (``|t|`` first moved ``tol`` towards 0) and
        its method: the normal tail where :func:`normal_trusted`, else the smallest bound."""
        p, _, method = self.min_pvalue(np.array([t], dtype=np.float64), np.array([tol], dtype=np.float64))
        return p, method

    def min_pvalue(self, t: np.ndarray, tol: np.ndarray) -> tuple[float, int, str]:
        """Smallest of the two-sided p-values of several observed sums of this law
        (e.g. one per offset), its index and its method.

        Each p-value is the normal tail if trusted at its z, else the best
        rigorous bound.  The bounds decrease with ``|t|``, so among untrusted
        values the largest ``|t|`` has the smallest; likewise among trusted
        ones: two evaluations give the exact minimum.
        """
        a = np.maximum(np.abs(np.asarray(t, dtype=np.float64)) - np.asarray(tol, dtype=np.float64), 0.0)
        if self.var > 0.0:
            z = a / math.sqrt(self.var)
            trusted = np.asarray(normal_trusted(z, self.g3, self.g4)) & (a > 0)
        else:
            z = np.full(a.shape, np.inf)
            trusted = np.zeros(a.shape, dtype=bool)
        best, j, method = 1.0, int(np.argmax(a)), "normal"
        if np.any(trusted):
            jj = int(np.flatnonzero(trusted)[np.argmax(a[trusted])])
            pn = z_pvalue(float(z[jj]), "two-sided")
            best, j, method = pn, jj, "normal"
        untrusted = ~trusted & (a > 0)
        if np.any(untrusted):
            ju = int(np.flatnonzero(untrusted)[np.argmax(a[untrusted])])
            x = float(a[ju])
            pu = min([1.0] + [f(x) for f in self.upper])
            pl = min([1.0] + [f(x) for f in self.lower])
            pb = float(min(1.0, pu + pl))
            if pb < best or not np.any(trusted):
                best, j, method = pb, ju, "bound"
        return best, j, method


def band_z_test(estimate: float, se: float, expected: float, eta: float) -> tuple[float, float]:
    """Two-sided z-test of ``|estimate - expected| <= eta`` (a rounding band).

    The z statistic is the distance to the nearer edge of the band in
    standard errors (0 inside the band).  With ``se == 0`` the p-value is 1
    inside the band and 0 outside.
    """
    diff = estimate - expected
    excess = max(0.0, abs(diff) - eta)
    if se <= 0.0:
        return (0.0 if excess == 0 else math.copysign(math.inf, diff)), (1.0 if excess == 0 else 0.0)
    z = math.copysign(excess / se, diff)
    return z, z_pvalue(z, "two-sided")
