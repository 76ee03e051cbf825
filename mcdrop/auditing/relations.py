"""``mcdrop.audit_relation``: how the masks of two dropout implementations relate.

Two implementations ``a`` and ``b`` (two ranks of a parallel job, two
devices, a graph and its replay, forward and recompute) are called in turn
on the same nonzero audit input: ``a(x), b(x), a(x), b(x), ...``.  Their
keep masks, recovered from the outputs as :func:`mcdrop.audit` does, must be

``relation="independent"`` (each rank its own masks)
    * ``agreement``: units agree at rate ``q**2 + p**2`` (exact binomial
      test over every unit of every call);
    * ``cross_correlation``: ``a``'s call ``t`` and ``b``'s call ``t + d``
      (``d`` in -1, 0, 1) are uncorrelated at *every* offset (circular,
      one FFT per call): a stream reused with a shift (rank 1's Philox
      offset landing inside rank 0's range, ``seed + rank`` schemes whose
      streams overlap) shows as one large correlation at one offset even
      when the agreement rate looks right.  Tails as for
      ``call_independence`` (:func:`~mcdrop.auditing.independence.pair_model`),
      Bonferroni over offsets and lags.

``relation="identical"`` (ranks that must share a mask: sequence-parallel
regions, a replay)
    * ``masks_equal``: the masks are equal, call for call (exact).

Both also get ``runs`` (both returned arrays of the input's shape).  The
checks are one family at ``alpha`` (Holm).  Pitfall: two implementations
drawing from one global generator look independent when called in turn
(they interleave one stream); ranks simulated in one process must each own
a generator.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .._validation import check_alpha, check_choice, check_positive_int, check_seed, check_shape, resolve_pq
from ..checks import PendingCheck, decide, exact, not_run
from ..checks.masks import check_keep_rate
from ..laws import STRUCTURES, unit_layout, variant_law
from .budget import DEFAULT_SHAPE, FFT_DRAWS, FFT_MIN_CALLS, SUPPORT_ULPS, adapted, adapter_seed, describe
from .harness import as_array
from .independence import FFT_TOL, pair_model
from .inputs import DTYPES, MAX_ELEMENTS, input_rng, make_input, np_dtype
from .report import AuditReport
from .runner import environment

__all__ = ["audit_relation", "RELATIONS", "LAGS"]

RELATIONS = ("independent", "identical")
#: Call lags ``d`` of the cross-correlation (``a``'s call ``t`` against ``b``'s call ``t + d``).
LAGS = (-1, 0, 1)
MAX_DEFAULT_CALLS = 2**12


def _unit_signal(y: np.ndarray, law, S: int) -> tuple[np.ndarray, int]:
    """Per-unit kept fraction of one output (the mask recovered as the audit does), and off-support count."""
    yf = y.astype(np.float64).ravel()
    with np.errstate(invalid="ignore"):
        dropped = np.abs(yf - law.drop_value) <= law.drop_tol
        kept = ~dropped & np.isfinite(yf)
        off = int(np.count_nonzero(kept & ~(np.abs(yf - law.kept_value) <= law.kept_tol)))
    return kept.reshape(-1, S).mean(axis=1), off


class _Pairs:
    """FFT sums of ``a``'s call ``t`` against ``b``'s call ``t + d`` at every offset, and per-call facts."""

    def __init__(self, n: int):
        self.n = n
        self.cross = {d: np.zeros(n // 2 + 1, dtype=np.complex128) for d in LAGS}
        self.calls = {"a": [], "b": []}  # (kept units, valid, sum a**3, sum a**4) per call
        self.spectra = {"a": [], "b": []}  # the last two calls' FFTs
        self.binary = True

    def add(self, side: str, sig: np.ndarray) -> None:
        a = sig - sig.mean()
        ss = float(np.dot(a, a))
        valid = ss > 1e-9 * self.n
        a = a / math.sqrt(ss) if valid else np.zeros_like(a)
        if np.any((sig > 0) & (sig < 1)):
            self.binary = False
        self.calls[side].append((int(np.count_nonzero(sig == 1.0)), valid, float(np.sum(a**3)),
                                 float(np.sum(a**4))))
        self.spectra[side] = (self.spectra[side] + [np.fft.rfft(a)])[-2:]

    def fold(self) -> None:
        """After call ``t`` of both: add the pairs it completes, (t, t), (t - 1, t) and (t, t - 1)."""
        fa, fb = self.spectra["a"], self.spectra["b"]
        self.cross[0] += np.conj(fa[-1]) * fb[-1]
        if len(fb) == 2:
            self.cross[1] += np.conj(fa[0]) * fb[1]
            self.cross[-1] += np.conj(fa[1]) * fb[0]

    def statistics(self):
        """``(lag, offsets, sums, model)`` per lag with at least one valid pair."""
        A, B = self.calls["a"], self.calls["b"]
        T = len(B)
        out = []
        for d in LAGS:
            pairs = [(t, t + d) for t in range(T) if 0 <= t + d < T and A[t][1] and B[t + d][1]]
            if not pairs:
                continue
            ia = np.array([i for i, _ in pairs])
            ib = np.array([j for _, j in pairs])

            def col(side, k, idx):
                return np.array([side[i][k] for i in idx], dtype=np.float64)


            var = len(pairs) / (self.n - 1.0)
            model = pair_model(col(A, 0, ia).astype(np.int64), col(A, 2, ia), col(A, 3, ia),
                               col(B, 0, ib).astype(np.int64), col(B, 2, ib), col(B, 3, ib), self.n, var,
                               self.binary)
            sums = np.fft.irfft(self.cross[d], n=self.n)
            out.append((d, len(pairs), sums, model, var))
        return out


def _iv(a, b, relation, p, keep, shape, calls, alpha, seed, variant, structure, dtype):
    relation = check_choice(relation, "relation", RELATIONS)
    p_build = p if p is not None else (1.0 - keep if isinstance(keep, (int, float)) and 0 <= keep <= 1 else None)
    s = adapter_seed(seed)
    fa = adapted("a", a, p_build, seed=s)
    fb = adapted("b", b, p_build, seed=s)
    if p is None and keep is None:
        pa, pb = getattr(fa, "p", None), getattr(fb, "p", None)
        if pa is not None and pb is not None and not math.isclose(pa, pb, rel_tol=0, abs_tol=1e-12):
            raise ValueError(f"`a` and `b` declare different drop probabilities ({pa:g} and {pb:g}); pass p= "
                             f"to say which one both must have.")
        p = pa if pa is not None else (pb if pb is not None else 0.3)
    p, q = resolve_pq(p, keep)
    variant = check_choice(variant or getattr(fa, "variant", None) or "inverted", "variant",
                           ("inverted", "standard", "alpha"))
    structure = check_choice(structure or getattr(fa, "structure", None) or "element", "structure", STRUCTURES)
    if shape is None:
        sa, sb = getattr(fa, "default_shape", None), getattr(fb, "default_shape", None)
        if sa is not None and sb is not None and tuple(sa) != tuple(sb):
            raise ValueError(f"`a` and `b` have different shapes ({tuple(sa)} and {tuple(sb)}): they cannot be "
                             f"compared call for call; pass shape= that both accept.")
        shape = sa or sb or DEFAULT_SHAPE
    shape = check_shape(shape, "shape", max_elements=MAX_ELEMENTS)
    if structure == "channel" and len(shape) < 2:
        raise ValueError(f"`structure` 'channel' needs an input of at least 2 dimensions; got shape {shape}.")
    if calls is not None:
        calls = check_positive_int(calls, "calls")
    alpha = check_alpha(alpha)
    ss = check_seed(seed)
    dt = np_dtype(check_choice(dtype, "dtype", DTYPES))
    return relation, fa, fb, p, q, variant, structure, shape, calls, alpha, ss, dt


def audit_relation(a, b, *, relation="independent", p=None, keep=None, shape=None, calls=None, alpha=1e-6,
                   seed=0, variant=None, structure=None, dtype="float32") -> AuditReport:
    """Check how the masks of two dropout implementations relate (see the module docstring).

    Parameters
    ----------
    a, b : callable or framework object
        Anything :func:`mcdrop.audit` accepts (adapted the same way).
    relation : {"independent", "identical"}, default "independent"
    p, keep : float, optional
        The drop (or keep) probability both claim (default: theirs; they
        must agree).
    shape : tuple of int, optional
        Input shape (default: theirs, which must agree, else (64, 128)).
    calls : int, optional
        Calls of each (default: enough for 2**20 unit pairs, at least 64).
    alpha : float, default 1e-6
        Family-wise false-alarm bound over the checks (Holm).
    seed : int, SeedSequence or None, default 0
        Seeds the input (and the adapters mcdrop builds).
    variant : {"inverted", "standard", "alpha"}, optional
        The two-point law whose mask is read from the outputs.
    structure : {"element", "channel", "sample"}, optional
    dtype : str, default "float32"

    Returns
    -------
    AuditReport
        Checks ``runs`` and ``agreement``, ``cross_correlation``
        (independent) or ``masks_equal`` (identical).

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message): an unknown ``relation``, an
        object neither can be adapted from, ``a`` and ``b`` with different
        shapes or rates.  Errors raised *by* ``a`` or ``b`` fail ``runs``.

    Examples
    --------
    >>> import numpy as np, mcdrop
    >>> def rank(seed, p=0.3):
    ...     g = np.random.default_rng(seed)
    ...     return lambda x, training: np.where(g.random(x.shape) < 1 - p, x / (1 - p), 0).astype(x.dtype)
    >>> mcdrop.audit_relation(rank(1), rank(2), p=0.3, calls=64).verdict
    'pass'
    >>> mcdrop.audit_relation(rank(1), rank(1), p=0.3, calls=64).failed
    ['agreement', 'cross_correlation']
    """
    relation, fa, fb, p, q, variant, structure, shape, calls, alpha, ss, dt = _iv(
        a, b, relation, p, keep, shape, calls, alpha, seed, variant, structure, dtype)
    t0 = time.perf_counter()
    x = make_input(input_rng(ss), shape, dt)
    law = variant_law(variant, p, structure=structure).elementwise(x, dt, SUPPORT_ULPS)
    lay = unit_layout(shape, structure)
    S, nu = lay.unit_size, lay.n_units
    C = calls or min(MAX_DEFAULT_CALLS, max(FFT_MIN_CALLS, math.ceil(FFT_DRAWS / nu)))
    feed = x.astype(dt)
    pairs = _Pairs(nu)
    agree = differ = 0
    first_diff = None
    off = {"a": 0, "b": 0}
    problem = None
    done = 0
    ctxs = [f.rng_context() for f in (fa, fb) if callable(getattr(f, "rng_context", None))]
    for c in ctxs:
        c.__enter__()
    try:
        for t in range(C):
            sigs = {}
            for side, f in (("a", fa), ("b", fb)):
                try:
                    y, err = as_array(f(feed.copy(), True))
                except Exception as exc:
                    y, err = None, f"raised {type(exc).__name__}: {exc}"
                if err is None and y.shape != shape:
                    err = f"returned shape {y.shape} for an input of shape {shape}"
                if err is not None:
                    problem = f"`{side}` call {t} {err}"
                    break
                sigs[side], o = _unit_signal(y, law, S)
                off[side] += o
            if problem is not None:
                break
            ma, mb = sigs["a"] == 1.0, sigs["b"] == 1.0
            agree += int(np.count_nonzero(ma == mb))
            nd = int(np.count_nonzero(sigs["a"] != sigs["b"]))
            differ += nd
            if nd and first_diff is None:
                first_diff = t
            pairs.add("a", sigs["a"])
            pairs.add("b", sigs["b"])
            pairs.fold()
            done += 1
    finally:
        for c in reversed(ctxs):
            c.__exit__(None, None, None)
    names = ["runs"] + (["agreement", "cross_correlation"] if relation == "independent" else ["masks_equal"])
    pend: dict[str, PendingCheck] = {
        "runs": exact("runs", problem is None, problem or f"a and b returned arrays of shape {shape} for all "
                                                          f"{done:,} calls each."),
    }
    reason = f"the run stopped ({problem})" if problem else None
    if relation == "identical":
        pend["masks_equal"] = not_run("masks_equal", reason) if reason else exact(
            "masks_equal", differ == 0,
            f"{differ:,} of {done * nu:,} unit masks differ between a and b"
            + (f" (first in call {first_diff})" if first_diff is not None else " (equal call for call)") + ".",
            estimate=float(differ), expected=0.0)
    elif reason:
        for nm in names[1:]:
            pend[nm] = not_run(nm, reason)
    else:
        e = q * q + p * p
        ag = check_keep_rate(agree, done * nu, e, what="unit pairs of a and b that agree")
        ag.name = "agreement"
        ag.detail = ag.detail.replace("keep rate = q", "agreement rate = q^2 + p^2")
        pend["agreement"] = ag
        pend["cross_correlation"] = _cross_check(pairs, nu)
    checks = decide([pend[nm] for nm in names], alpha)
    env = environment(fa)
    env.update(environment(fb))
    env["relation"] = relation
    return AuditReport(
        target=f"{describe(fa)} vs {describe(fb)} ({relation})", p=p, q=q, variant=variant, structure=structure,
        shape=shape, dtype=dt.name, calls=done, calls_requested=C, draws=done * nu,
        seed=int(seed) if isinstance(seed, (int, np.integer)) else str(seed), alpha=alpha, tolerance=None,
        checks=tuple(checks), detectable_bias=None, detectable_rate_error=None,
        elapsed_s=time.perf_counter() - t0, environment=env, plots={})


def _cross_check(pairs: _Pairs, n: int) -> PendingCheck:
    stats = pairs.statistics()
    if n < 2 or not stats:
        return exact("cross_correlation", True, "vacuous: no pair of calls whose masks vary (nothing to correlate).")
    best, where, tests, method, corr = math.inf, None, 0, "normal", 0.0
    for d, npairs, sums, model, var in stats:
        tol = FFT_TOL * (npairs + np.abs(sums))
        pv, k, meth = model.min_pvalue(sums, tol)
        tests += sums.size
        if pv < best:
            off = int(k) if k <= n // 2 else int(k) - n
            best, where, method, corr = pv, (d, off, npairs), meth, float(sums[k]) / npairs
    pvalue = float(min(1.0, tests * best))
    d, off, npairs = where
    how = "" if method == "normal" else " (tail bound: sparse masks make the normal tail unreliable)"
    return PendingCheck(
        name="cross_correlation", pvalue=pvalue, estimate=corr, expected=0.0,
        detail=(f"correlation of a's call t with b's call t+d (d = -1, 0, 1) at all {n} offsets (FFT); worst: "
                f"lag {d}, offset {off} ({npairs:,} pairs), mean correlation {corr:+.3g}, Bonferroni "
                f"p={pvalue:.2g} over {tests:,} offsets x lags{how}."),
        extra={"lag": d, "offset": off, "pairs": npairs, "tests": tests, "tail_method": method},
    )
