"""The independence checks of an audit: masks within a call and across calls, and unit structure.

``element_independence`` / ``call_independence``: Bonferroni over the offsets
(and call lags) of sums over calls of correlations with the exact
permutation variance (:class:`~mcdrop.auditing.stream.AuditStream` sums the
spectra, so every offset costs one inverse FFT).  Tails as in
:mod:`mcdrop.stats.tails`, the bounds conditional on each call's values: for
0/1 masks hypergeometric coincidence counts dominated by binomials (calls)
and, within a call, the exact conditional CGF of the coincidence count
(transfer matrix) or a negative-association bound; Bennett's bound for any
signal.  ``structure``: channel/sample units all kept or all dropped, and
no bigger unit dropped together.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
from scipy.special import gammaln

from ..checks import PendingCheck, exact
from ..stats.dispersion import dispersion_from_hist
from ..stats.normal import bonferroni_normal_interval, z_tail
from ..stats.tails import BernoulliSum, TailModel, bennett_tail, chernoff_tail

__all__ = ["check_element_independence", "check_call_independence", "check_structure", "autocorr_model",
           "lag_pair_model", "pair_model", "FFT_TOL"]

#: Float32 slack of the FFT sums, per summed term (each term is at most 1 in
#: absolute value and carries a rounding error of ~1e-7): the observed sum is
#: moved this much towards 0 before its tail is bounded, so that a value on
#: the edge of the support (e.g. a correlation of exactly 1) is not taken for
#: an impossible one.
FFT_TOL = 4e-6


def check_structure(st, law, structure: str, S: int, G: int) -> PendingCheck:
    unit = "(n, c) slice" if structure == "channel" else "sample row"
    group = "sample row (kept channels)" if structure == "channel" else "call (kept rows)"
    partial = st.partial_units
    disp = dispersion_from_hist(st.group_hist, G, law.q) if law.random else None
    if partial:
        pv = 0.0
    elif disp is not None:
        pv = disp.pvalue
    else:
        pv = 1.0
    detail = (f"the unit is the {unit} ({S} elements): {partial:,} unit-calls partly kept "
              f"(must be 0: all kept or all dropped)")
    if disp is not None:
        detail += (f"; kept units per {group} dispersion index {disp.index:.4g} (p={disp.pvalue:.2g}; "
                   f"> 1 means a bigger unit is dropped together)")
    return PendingCheck(
        name="structure", pvalue=pv, estimate=float(partial), expected=0.0, detail=detail + ".",
        interval=None, exact=disp is None,
        extra={"partial_unit_calls": partial, "unit_size": S,
               "group_dispersion": disp.to_dict() if disp else None},
    )


def _pick_offsets(offsets: np.ndarray, z: np.ndarray, dense: int, n_log: int = 96, n_top: int = 16) -> np.ndarray:
    """Indices to report: every offset with |offset| <= dense, log-spaced others, the extremes."""
    absoff = np.abs(offsets)
    keep = absoff <= dense
    mx = int(absoff.max()) if absoff.size else 0
    if mx > dense:
        grid = np.unique(np.round(np.geomspace(dense + 1, mx, n_log)).astype(np.int64))
        keep |= np.isin(absoff, grid)
    idx = np.flatnonzero(keep)
    top = np.argsort(-np.abs(z), kind="stable")[:n_top]
    return np.unique(np.concatenate([idx, top]))


def _minority(kept: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Minority counts of 0/1 masks with ``kept`` ones out of ``n``, and their
    sign (+1 where the kept units are the minority, -1 where the dropped are)."""
    kept = np.asarray(kept, dtype=np.int64)
    return np.minimum(kept, n - kept), np.where(kept <= n - kept, 1, -1)


#: Largest number of units for which the exact conditional CGF of the
#: autocorrelation's coincidence count is computed (one FFT of this size per
#: Chernoff step); above it only the negative-association bound is used.
_EXACT_AUTO_MAX_UNITS = 2**18
#: The exact path is skipped when the weight-spread part ``V`` of
#: _ExactAutoCGF has more than this fraction of the sum's variance (a sparse
#: mask: the Holder split would cost more than the exact CGF gains, and the
#: negative-association bound is the better one there).
_EXACT_AUTO_MAX_SPREAD = 0.05


def _cycle_log_mgf(n: int, L: int, s: float, mus: np.ndarray) -> np.ndarray:
    """``log E[exp(s A) | mu]`` for each ``mu`` in ``mus`` (``+inf`` where not accurate).

    ``A`` counts the pairs ``{i, i + k}`` (``k = n/2``: each pair twice)
    inside a uniformly random ``mu``-subset of ``Z_n``; the pairs form
    ``n/L`` cycles of length ``L``.  Transfer matrix: a cycle's generating
    function ``sum over subsets of x**size y**pairs`` is ``tr(M**L)`` with
    ``M = [[1, x], [1, x y]]``, so ``E[y**A | mu] = [x**mu] tr(M**L)**(n/L) /
    C(n, mu)``.  The coefficients are read, all ``mu`` at once, by one FFT of
    the function on the circle ``|x| = r`` through the saddle point at the
    mean ``mu`` (there the wanted coefficients are the largest, relative to
    the rounding of the FFT); a coefficient below 1e-9 of the total is
    refused (``+inf``: that ``lam`` is then not used), and each is padded by
    ten times its relative rounding error, so the values are upper bounds.
    """
    g = n // L
    y = math.exp(s)

    def log_g(x):
        T = 1.0 + x * y
        D = x * (y - 1.0)
        disc = np.sqrt(T * T - 4.0 * D + 0j)
        r1, r2 = (T + disc) / 2.0, (T - disc) / 2.0
        swap = np.abs(r2) > np.abs(r1)
        r1, r2 = np.where(swap, r2, r1), np.where(swap, r1, r2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return g * (L * np.log(r1) + np.log1p((r2 / r1) ** L))

    def mean_size(u):  # d log G / d log r, increasing in u = log r
        h = 1e-5
        return (log_g(np.exp(u + h)).real - log_g(np.exp(u - h)).real) / (2 * h)

    # the saddle point r (mean size = the calls' mean mu), on two vectorised
    # grids; it need not be exact, only close enough for the FFT's accuracy
    target = float(np.mean(mus))
    u = np.linspace(-40.0, 40.0, 161)
    for _ in range(3):
        ms = mean_size(u)
        i = int(np.clip(np.searchsorted(ms, target), 1, u.size - 1))
        u = np.linspace(u[i - 1], u[i], 33)
    r = math.exp(float(u[16]))
    N = sfft.next_fast_len(n + 1)
    x = r * np.exp(2j * np.pi * np.arange(N) / N)
    lg0 = float(log_g(r).real)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.exp(log_g(x) - lg0)
    vals = np.where(np.isfinite(vals), vals, 0.0)
    prob = sfft.fft(vals).real / N
    pm = prob[mus]
    err = 1e-13 * math.sqrt(N)
    ok = pm > max(1e-9, 1e3 * err)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (lg0 - mus * math.log(r) + np.log(np.where(ok, pm, 1.0)) + 10.0 * err / np.where(ok, pm, 1.0)
               - (gammaln(n + 1.0) - gammaln(mus + 1.0) - gammaln(n - mus + 1.0)))
    return np.where(ok, out, np.inf)


class _ExactAutoCGF:
    """CGF bounds for the autocorrelation sum ``S = sum_c w_c (A_c - E A_c)`` of 0/1 masks.

    Split ``S = U + V`` with ``U = wbar sum_c (A_c - E A_c)`` (one common
    weight: its CGF is a product of exact conditional CGFs evaluated at one
    point, :func:`_cycle_log_mgf`) and ``V = sum_c (w_c - wbar)(A_c - E
    A_c)`` (small: the weights of calls differ little unless the mask is
    sparse); Holder's inequality gives ``log E e^{lam S} <= K_U(p lam)/p +
    K_V(p' lam)/p'`` with ``1/p + 1/p' = 1``, ``K_V`` from the
    negative-association bound.  Each ``p`` gives a valid bound; the
    smallest is used.
    """

    def __init__(self, n: int, L: int, mus: np.ndarray, v_sum: "BernoulliSum", wbar: float, var: float):
        self.n, self.L, self.var = n, L, var
        self.mu, self.cnt = np.unique(mus, return_counts=True)
        self.e_a = self.mu * (self.mu - 1.0) / (n - 1.0)
        self.v = v_sum
        self.wbar = wbar

    def _k_u(self, theta: float) -> float:
        phi = _cycle_log_mgf(self.n, self.L, theta * self.wbar, self.mu)
        return float(np.sum(self.cnt * (phi - theta * self.wbar * self.e_a)))

    def tail(self, t: float, sign: float) -> float:
        if not t > 0:
            return 1.0
        v = self.v if sign > 0 else self.v.negated()
        # near-optimal Holder exponent for Gaussian-like parts: the effective
        # variance p Var U + p' Var V is smallest at p = 1 + sqrt(Var V / Var U)
        rho = math.sqrt(max(self.v.cumulants()[0], 0.0) / self.var) if not v.empty else 0.0
        ps = (1.0,) if v.empty else (1.0 + rho, 1.0 + 2.5 * rho)
        best = 1.0
        lam_max = 60.0 / self.wbar
        for p in ps:
            q = p / (p - 1.0) if p > 1.0 else math.inf

            def cgf(lam, p=p, q=q, v=v):
                lam = np.atleast_1d(lam)
                ku = np.array([self._k_u(sign * p * l_) for l_ in lam]) / p
                kv = v.cgf(q * lam) / q if not v.empty else 0.0
                return ku + kv

            best = min(best, chernoff_tail(cgf, t, lam_max, lam_guess=t / self.var))
        return best


def autocorr_model(info, n: int, var: float, L: int, exact: bool = True) -> TailModel:
    """Null law of the autocorrelation sum over calls at offsets of one cycle length ``L``.

    Under the null, given each call's values, their arrangement is uniformly
    random and independent between calls; the sum's exact variance ``var``
    comes from :func:`~mcdrop.audit_stream.autocorr_null_moments`.
    ``L = n / gcd(n, k)`` is the length of the cycles ``i -> i + k`` (2 at
    the offset ``n/2``); offsets with the same ``L`` have the same law.

    * Edgeworth criterion: third and fourth cumulants of each call's
      ``R_k``, treating its values as independent draws from the call's own
      (the permutation corrections are O(1/n); checked by simulation to
      over-estimate both, so the criterion errs towards the bound):
      ``kappa3 = A3**2/n``, ``kappa4 = A4**2/n + 6 A4/n**2 - 9/n**3``
      (``A_j = sum a**j``); at ``n/2`` the ``n/2`` disjoint pairs counted
      twice give ``4 A3**2/n`` and ``8 (A4**2 - 3/n**2)/n``.
    * Any signal: Bennett's bound, ``R_k`` minus its mean being at most
      ``1 + 1/(n-1)`` (``|R_k| <= 1``, Cauchy-Schwarz).
    * A 0/1 mask with ``mu`` units in its minority (kept or dropped; the
      formula is symmetric): ``R_k = w (A - E A)``, ``w = n / (mu (n - mu))``
      and ``A`` the number of pairs ``{i, i + k}`` inside the minority, a
      uniformly random ``mu``-subset.  ``mu <= 1``: ``R_k`` is constant.
      ``mu = 2``: ``A`` is exactly Bernoulli(2/(n-1)) (or twice a
      Bernoulli(1/(n-1)) at ``n/2``).  ``mu >= 3``: the indicators of a
      uniformly random subset are negatively associated (Joag-Dev & Proschan
      1983), hence so are the products over a matching (disjoint pairs), and
      ``E exp(lam A_M) <= (1 + pi (e**lam - 1))**|M|`` with ``pi = mu (mu -
      1)/(n (n - 1))``.  The ``n`` pairs ``{i, i + k}`` form the cycles of
      length ``L``: two matchings of ``n/2`` pairs if ``L`` is even, three
      classes if odd, and Holder's inequality gives ``log E exp(lam A) <=
      (n/J) log(1 + pi (e**(J lam) - 1))``, ``J = 2`` or ``3`` (at ``n/2``
      the ``n/2`` pairs are one matching counted twice: ``J = 2`` exactly).
      These are :class:`BernoulliSum` CGFs; the Chernoff bound of their sum
      keeps the Poisson shape of a sparse mask's coincidence count, but the
      Holder step doubles the jumps, so for denser masks (up to
      ``_EXACT_AUTO_MAX_UNITS`` units) the exact conditional CGF of
      :class:`_ExactAutoCGF` is used too (the smaller bound wins; ``exact=False``
      leaves it out: a cheaper, larger bound, for power statements).
    """
    kind = "half" if L == 2 else ("even" if L % 2 == 0 else "odd")
    valid = info.valid
    a3, a4 = info.a3[valid], info.a4[valid]
    nf = float(n)
    if kind == "half":
        k3 = 4.0 * float(np.sum(a3 * a3)) / nf
        k4 = 8.0 * float(np.sum(a4 * a4 - 3.0 / nf**2)) / nf
    else:
        k3 = float(np.sum(a3 * a3)) / nf
        k4 = float(np.sum(a4 * a4 / nf + 6.0 * a4 / nf**2 - 9.0 / nf**3))
    g3 = k3 / var**1.5 if var > 0 else math.inf
    g4 = k4 / var**2 if var > 0 else math.inf
    b_up, b_dn = 1.0 + 1.0 / (nf - 1.0), 1.0 - 1.0 / (nf - 1.0)
    upper = [lambda t: bennett_tail(var, b_up, t)]
    lower = [lambda t: bennett_tail(var, b_dn, t)]
    if info.binary:
        mu, _ = _minority(info.kept[valid], n)
        u, cnt = np.unique(mu[mu >= 2], return_counts=True)
        if u.size:
            uf = u.astype(np.float64)
            w = nf / (uf * (nf - uf))
            two = u == 2
            J = 3.0 if kind == "odd" else 2.0
            if kind == "half":
                b2, p2 = 2.0 * w, 1.0 / (nf - 1.0)
            else:
                b2, p2 = w, 2.0 / (nf - 1.0)
            pis = np.where(two, p2, uf * (uf - 1.0) / (nf * (nf - 1.0)))
            counts = np.where(two, cnt, cnt * nf / J)
            bs = BernoulliSum.make(np.where(two, b2, J * w), pis, counts)
            upper.append(bs.tail)
            lower.append(bs.negated().tail)
            if exact and n <= _EXACT_AUTO_MAX_UNITS:
                wbar = float(np.sum(cnt * w) / np.sum(cnt))
                dw = w - wbar
                vs = BernoulliSum.make(np.where(two, dw * (b2 / w), J * dw), pis, counts)
                if vs.empty or vs.cumulants()[0] <= _EXACT_AUTO_MAX_SPREAD * var:
                    ex = _ExactAutoCGF(n, int(L), mu[mu >= 2], vs, wbar, var)
                    upper.append(lambda t: ex.tail(t, 1.0))
                    lower.append(lambda t: ex.tail(t, -1.0))
    return TailModel(var, g3, g4, upper, lower)


def check_element_independence(st, law, shape, S: int, alpha_check: float):
    auto = st.autocorrelation()
    if auto is None:
        # Nothing to correlate (fewer than 4 units, or no call whose mask
        # varied, e.g. p within 1e-6 of 1 on a small input): vacuous, like
        # p = 0 and p = 1, and said so; not a failure of the implementation.
        return exact("element_independence", True,
                     f"vacuous: needs at least 4 units per call and calls whose mask varies "
                     f"(got {st.n_units} units); nothing to correlate at this budget."), None
    offsets, corr, z, sd, sums, var = auto
    nu = st.n_units
    info = st.fft_call_info()
    K = offsets.size
    tol = FFT_TOL * (st.auto_calls + np.abs(sums))
    L = nu // np.gcd(nu, offsets)
    best, w, method = math.inf, 0, "normal"
    for cyc in np.unique(L):
        idx = np.flatnonzero(L == cyc)
        model = autocorr_model(info, nu, float(var[idx[0]]), int(cyc))
        pj, j, mj = model.min_pvalue(sums[idx], tol[idx])
        if pj < best:
            best, w, method = pj, int(idx[j]), mj
    pv = float(min(1.0, K * best))
    c_w, sd_w, k_w = float(corr[w]), float(sd[w]), int(offsets[w])
    where = _offset_text(k_w * S, shape)
    how = "" if method == "normal" else " (tail bound: sparse masks make the normal tail unreliable)"
    pend = PendingCheck(
        name="element_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=float(z[w]),
        detail=(f"mask autocorrelation at every offset 1..{K} ({'units' if S > 1 else 'elements'}, "
                f"circular, FFT per call, {st.auto_calls:,} calls); worst offset {k_w} ({where}): "
                f"mean correlation {c_w:+.3g} (z={float(z[w]):.3g}), Bonferroni p={pv:.2g}{how}."),
        interval=bonferroni_normal_interval(c_w, sd_w, K),
        extra={"worst_offset": k_w, "worst_offset_elements": k_w * S, "calls": st.auto_calls,
               "offsets_tested": K, "tail_method": method},
    )
    sel = _pick_offsets(offsets, z, 256)
    bound = z_tail(alpha_check / (2 * K)) * float(np.median(sd))
    plot = {"offsets": offsets[sel].tolist(), "values": corr[sel].tolist(),
            "z": z[sel].tolist(), "bound": bound, "unit_size": S, "calls": st.auto_calls}
    return pend, plot


def _offset_text(k_elem: int, shape) -> str:
    if len(shape) >= 2:
        row = int(np.prod(shape[1:]))
        if k_elem % row == 0:
            return f"{k_elem} elements = {k_elem // row} along axis 0"
    return f"{k_elem} elements"


def lag_pair_model(info, n: int, lag: int, var: float) -> TailModel:
    """Null law of the sum over call pairs ``(c - lag, c)`` of their cross-correlation
    at one offset (every offset has the same law); see :func:`pair_model`."""
    kept, valid = info.kept, info.valid
    i = np.arange(lag, kept.size)
    ok = valid[i] & valid[i - lag] if i.size else np.zeros(0, dtype=bool)
    b = i[ok]
    a = b - lag
    return pair_model(kept[a], info.a3[a], info.a4[a], kept[b], info.a3[b], info.a4[b], n, var, info.binary)


def pair_model(kept_a, a3_a, a4_a, kept_b, a3_b, a4_b, n: int, var: float, binary: bool) -> TailModel:
    """Null law of a sum over pairs of calls ``(a_j, b_j)`` of their cross-correlation at one offset.

    The pairs are calls of one stream ``lag`` apart, or calls of two
    streams (:func:`mcdrop.audit_relation`); each array holds one value per
    pair (kept units, ``sum(a**3)``, ``sum(a**4)`` of the standardised
    signal; both calls valid).  Given everything before it, call ``b_j``'s
    arrangement is uniformly random, so each pair's term has conditional
    mean 0 and variance ``1/(n-1)`` whatever the earlier calls were (the
    terms form a martingale; at a fixed offset they are even independent),
    and conditional CGF bounds multiply.

    * Edgeworth criterion: ``kappa3 = A3 A3' / n`` and ``kappa4 = A4 (A4' -
      3/n) / n`` per pair (values as independent draws).
    * Any signal: Bennett, each term in ``[-1, 1]``.
    * 0/1 masks with minorities of ``u`` and ``v`` units: the term is
      ``+-w (C - u v / n)``, ``w = (u (1 - u/n) v (1 - v/n))**-1/2``, with
      ``C`` hypergeometric (the coincidences of a random ``v``-subset with a
      fixed ``u``-set), which is smaller in the convex order than
      Binomial(min(u, v), max(u, v)/n) (Hoeffding 1963, Theorem 4): a
      :class:`BernoulliSum`, sign ``+`` when both minorities are of the same
      kind.
    """
    nf = float(n)
    k3 = float(np.sum(a3_a * a3_b)) / nf
    k4 = float(np.sum(a4_a * (a4_b - 3.0 / nf))) / nf
    g3 = k3 / var**1.5 if var > 0 else math.inf
    g4 = k4 / var**2 if var > 0 else math.inf
    upper = [lambda t: bennett_tail(var, 1.0, t)]
    lower = [lambda t: bennett_tail(var, 1.0, t)]
    if binary and np.size(kept_b):
        mu_a, s_a = _minority(kept_a, n)
        mu_b, s_b = _minority(kept_b, n)
        lo, hi = np.minimum(mu_a, mu_b), np.maximum(mu_a, mu_b)
        key = (lo * (n + 1) + hi) * 2 + (s_a * s_b > 0)
        uk, cnt = np.unique(key, return_counts=True)
        pos = (uk % 2) == 1
        rest = uk // 2
        hi_u, lo_u = (rest % (n + 1)).astype(np.float64), (rest // (n + 1)).astype(np.float64)
        w = 1.0 / np.sqrt(lo_u * (1.0 - lo_u / nf) * hi_u * (1.0 - hi_u / nf))
        bs = BernoulliSum.make(np.where(pos, w, -w), hi_u / nf, lo_u * cnt)
        upper.append(bs.tail)
        lower.append(bs.negated().tail)
    return TailModel(var, g3, g4, upper, lower)


def check_call_independence(st, law, alpha_check: float):
    cc = st.cross_correlation()
    lg = st.lag_statistics()
    if cc is None:
        return exact("call_independence", True,
                     "vacuous: needs at least 2 calls and 2 units per call whose masks vary; "
                     "nothing to correlate at this budget."), None
    offsets, corr, z, sd, sums = cc
    nu = st.n_units
    info = st.fft_call_info()
    K = offsets.size
    model = lag_pair_model(info, nu, 1, st.cross_pairs / (nu - 1.0))
    best, w, method = model.min_pvalue(sums, FFT_TOL * (st.cross_pairs + np.abs(sums)))
    what = f"consecutive calls at offset {int(offsets[w])}"
    c_w, z_w = float(corr[w]), float(z[w])
    n_lags = 0
    if lg is not None:
        lags, lcorr, lz, lsums, lpairs = lg
        n_lags = lags.size
        for j in range(n_lags):
            mj = lag_pair_model(info, nu, int(lags[j]), float(lpairs[j]) / (nu - 1.0))
            pj, _, meth = mj.min_pvalue(lsums[j:j + 1], FFT_TOL * (float(lpairs[j]) + np.abs(lsums[j:j + 1])))
            if pj < best:
                best, method = pj, meth
                what = f"calls {int(lags[j])} apart at offset 0"
                c_w, z_w = float(lcorr[j]), float(lz[j])
    tot = K + n_lags
    pv = float(min(1.0, tot * best))
    how = "" if method == "normal" else " (tail bound: sparse masks make the normal tail unreliable)"
    pend = PendingCheck(
        name="call_independence", pvalue=pv, estimate=c_w, expected=0.0, statistic=z_w,
        detail=(f"correlation of consecutive calls' masks at all {K} offsets ({st.cross_pairs:,} "
                f"pairs) and of calls 2..{max(lags) if lg is not None else 1} apart at offset 0; "
                f"worst: {what}, mean correlation {c_w:+.3g} (z={z_w:.3g}), Bonferroni p={pv:.2g}{how}."),
        interval=bonferroni_normal_interval(c_w, sd, tot),
        extra={"pairs": st.cross_pairs, "offsets_tested": K, "lags_tested": int(n_lags),
               "tail_method": method},
    )
    sel = _pick_offsets(offsets, z, 128)
    plot = {"offsets": offsets[sel].tolist(), "values": corr[sel].tolist(), "z": z[sel].tolist(),
            "bound": z_tail(alpha_check / (2 * tot)) * sd, "pairs": st.cross_pairs}
    if lg is not None:
        plot["lags"] = {"lags": lags.tolist(), "values": lcorr.tolist(), "z": lz.tolist()}
    return pend, plot
