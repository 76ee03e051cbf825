"""Parametrised mutants: a correct NumPy dropout with one effect of a chosen size injected.

Each check of the audit has one family (:data:`FAMILIES`): ``make(effect,
seed, p, shape, calls)`` returns ``fn(x, training)`` whose only defect is
that check's effect, measured in the unit the audit states it in
(:data:`mcdrop.auditing.effects.EFFECT_UNITS`); ``effect = 0`` is a
correct implementation.  :func:`mcdrop.power_curve` audits them to measure
each check's detection rate against the effect size.  Every mutant owns a
generator seeded from ``seed``, so a curve is deterministic.

* Exact checks get a count or a size in ulp, placed at random: ``runs``
  (training calls that raise), ``eval_identity`` (ulp off ``x`` in one
  element of one evaluation call), ``input_unchanged`` (ulp written into one
  input element during one call), ``shape_dtype`` (calls returning float64),
  ``finite`` (outputs set to +inf), ``support`` (ulp one kept output is
  moved away from its correctly rounded value), ``gradient`` (elements of
  one backward pass whose mask differs from the forward's), ``structure``
  (channel units of which one element is dropped in one call).
* Statistical checks get a continuous effect: ``keep_rate`` and ``mean``
  (keep probability ``q (1 + e)``, scale still ``1/q``: relative keep-rate
  error and mean bias ``e``), ``variance`` (Gaussian dropout whose noise
  variance is ``(1 + e) p/q``: on a two-point law with the right support a
  variance error is a keep-rate error, which ``keep_rate`` sees first),
  ``dispersion`` (half the elements keep with ``q (1 + h)``, half with
  ``q (1 - h)``: rms spread ``h``, pooled rate exact), ``element_independence``
  (a fraction ``f`` of the elements copy the draw ``offset`` places before
  them, ``f (1 - f) = rho``: correlation ``rho`` at that offset),
  ``call_independence`` (a fraction ``rho`` of each call's draws repeat the
  previous call's: correlation ``rho`` between consecutive calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["MutantFamily", "FAMILIES", "STRUCTURE_SHAPE", "mutant", "step_ulps"]

#: Input shape of the ``structure`` family (channel dropout needs (N, C, ...)).
STRUCTURE_SHAPE = (16, 32, 8)


@dataclass(frozen=True)
class MutantFamily:
    """How one check's effect is injected.

    Attributes
    ----------
    check : str
        The check it targets.
    variant, structure : str
        The law claimed by the mutant (and audited).
    shape : tuple or None
        Input shape it needs (None: the audit's default).
    exact : bool
        An exact check: the effect is a count or a size in ulp, and
        :attr:`grid` gives the effects a curve measures.
    grid : tuple
        Default effects: absolute for exact checks, multiples of the stated
        effect otherwise.
    description : str
        What the mutant does, for reports.
    make : callable
        ``make(effect, seed, p, shape, calls) -> fn``.
    """

    check: str
    variant: str
    structure: str
    shape: tuple | None
    exact: bool
    grid: tuple
    description: str
    make: Callable


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def step_ulps(v, k: int, dtype) -> np.ndarray:
    """``v`` moved ``k`` representable steps of ``dtype`` away from zero (towards +inf at 0)."""
    v = np.asarray(v, dtype=dtype)
    out = v.copy()
    target = np.where(out < 0, -np.inf, np.inf).astype(dtype)
    for _ in range(int(k)):
        out = np.nextafter(out, target).astype(dtype)
    return out


def _count(effect) -> int:
    k = float(effect)
    if not (k >= 0 and k == int(k)):
        raise ValueError(f"`effects` of an exact check must be counts or ulps (integers >= 0); got {effect!r}.")
    return int(k)


def _inverted(x, keep, q):
    return np.where(keep, x / q, 0).astype(x.dtype)


class _Mutant:
    """A dropout ``fn(x, training)`` built from a per-call mask rule, with call counters."""

    def __init__(self, p, seed, keep_rule, post=None, eval_rule=None):
        self.g = _rng(seed)
        self.p, self.q = float(p), 1.0 - float(p)
        self.keep_rule = keep_rule
        self.post = post
        self.eval_rule = eval_rule
        self.calls = 0
        self.evals = 0

    def __call__(self, x, training):
        if not training:
            y = x.copy() if self.eval_rule is None else self.eval_rule(self, x)
            self.evals += 1
            return y
        keep = self.keep_rule(self, x)
        y = _inverted(x, keep, self.q)
        if self.post is not None:
            y = self.post(self, x, y, keep)
        self.calls += 1
        return y


def _fresh(m, x):
    return m.g.random(x.shape) < m.q


def _positions(g, calls: int, k: int) -> set:
    k = min(k, max(calls, 1))
    return set(int(i) for i in g.choice(max(calls, 1), size=k, replace=False)) if k else set()


# --- exact checks ---------------------------------------------------------------------------------


def _runs(effect, seed, p, shape, calls):
    k = _count(effect)
    m = _Mutant(p, seed, _fresh)
    bad = _positions(m.g, calls, k)

    def post(mm, x, y, keep):
        if mm.calls in bad:
            raise RuntimeError(f"injected failure in training call {mm.calls}")
        return y

    m.post = post
    return m


def _eval_identity(effect, seed, p, shape, calls):
    k = _count(effect)
    m = _Mutant(p, seed, _fresh)
    which = int(m.g.integers(0, 3))
    idx = int(m.g.integers(0, int(np.prod(shape))))

    def ev(mm, x):
        y = x.copy()
        if mm.evals == which and k:
            y.flat[idx] = step_ulps(y.flat[idx], k, x.dtype)
        return y

    m.eval_rule = ev
    return m


def _input_unchanged(effect, seed, p, shape, calls):
    k = _count(effect)
    m = _Mutant(p, seed, _fresh)
    when = int(m.g.integers(0, max(calls, 1)))
    idx = int(m.g.integers(0, int(np.prod(shape))))

    def post(mm, x, y, keep):
        if mm.calls == when and k:
            x.flat[idx] = step_ulps(x.flat[idx], k, x.dtype)
        return y

    m.post = post
    return m


def _shape_dtype(effect, seed, p, shape, calls):
    m = _Mutant(p, seed, _fresh)
    bad = _positions(m.g, calls, _count(effect))
    m.post = lambda mm, x, y, keep: y.astype(np.float64) if mm.calls in bad else y
    return m


def _finite(effect, seed, p, shape, calls):
    m = _Mutant(p, seed, _fresh)
    bad = _positions(m.g, calls, _count(effect))

    def post(mm, x, y, keep):
        if mm.calls in bad:
            y.flat[int(mm.g.integers(0, y.size))] = np.inf
        return y

    m.post = post
    return m


def _support(effect, seed, p, shape, calls):
    k = _count(effect)
    m = _Mutant(p, seed, _fresh)
    when = int(m.g.integers(0, max(calls, 1)))

    def post(mm, x, y, keep):
        if mm.calls == when and k:
            kept = np.flatnonzero(keep.ravel())
            if kept.size:
                i = int(kept[int(mm.g.integers(0, kept.size))])
                y.flat[i] = step_ulps(y.flat[i], k, y.dtype)
        return y

    m.post = post
    return m


class _GradientMutant(_Mutant):
    """Correct forward; one backward pass (of the audit's few) with ``k`` mask entries flipped."""

    def __init__(self, p, seed, k):
        super().__init__(p, seed, _fresh)
        self.k = k
        self.grads = 0
        self.which = int(self.g.integers(0, 8))

    def forward_backward(self, x, gout):
        keep = self.g.random(x.shape) < self.q
        y = _inverted(x, keep, self.q)
        back = keep.copy()
        if self.grads == self.which and self.k:
            idx = self.g.choice(back.size, size=min(self.k, back.size), replace=False)
            back.flat[idx] = ~back.flat[idx]
        self.grads += 1
        dx = (np.asarray(gout, dtype=np.float64) * back / self.q).astype(x.dtype)
        return y, dx


def _gradient(effect, seed, p, shape, calls):
    return _GradientMutant(p, seed, _count(effect))


def _structure(effect, seed, p, shape, calls):
    m = _Mutant(p, seed, None)
    bad = _positions(m.g, calls, _count(effect))

    def keep_rule(mm, x):
        u = mm.g.random(x.shape[:2] + (1,) * (x.ndim - 2)) < mm.q
        keep = np.broadcast_to(u, x.shape).copy()
        if mm.calls in bad:
            kept = np.flatnonzero(u.ravel())
            if kept.size:
                unit = int(kept[int(mm.g.integers(0, kept.size))])
                size = int(np.prod(x.shape[2:]))
                keep.reshape(-1)[unit * size + int(mm.g.integers(0, size))] = False
        return keep

    m.keep_rule = keep_rule
    return m


# --- statistical checks ---------------------------------------------------------------------------


def _rate(effect, seed, p, shape, calls):
    e = float(effect)
    m = _Mutant(p, seed, None)
    qq = min(1.0, max(0.0, m.q * (1.0 + e)))
    m.keep_rule = lambda mm, x: mm.g.random(x.shape) < qq
    return m


class _GaussianMutant:
    """Gaussian dropout ``y = x (1 + s N(0, 1))`` with ``s**2 = (1 + e) p/q``."""

    def __init__(self, p, seed, e):
        self.g = _rng(seed)
        self.s = math.sqrt(max(0.0, (1.0 + e) * p / (1.0 - p)))

    def __call__(self, x, training):
        if not training:
            return x.copy()
        return (x * (1.0 + self.s * self.g.standard_normal(x.shape))).astype(x.dtype)


def _variance(effect, seed, p, shape, calls):
    return _GaussianMutant(p, seed, float(effect))


def _dispersion(effect, seed, p, shape, calls):
    h = float(effect)
    m = _Mutant(p, seed, None)
    n = int(np.prod(shape))
    s = np.where(m.g.permutation(n) < n // 2, 1.0, -1.0)
    if n % 2:
        s[m.g.integers(0, n)] = 0.0
    qe = np.clip(m.q * (1.0 + h * s), 0.0, 1.0).reshape(shape)
    m.keep_rule = lambda mm, x: mm.g.random(x.shape) < qe
    return m


def _element(effect, seed, p, shape, calls, offset=1):
    rho = float(effect)
    if not 0.0 <= rho <= 0.25:
        raise ValueError(f"`effects` of element_independence are correlations in [0, 0.25]; got {effect!r}.")
    f = 0.5 * (1.0 - math.sqrt(1.0 - 4.0 * rho))
    m = _Mutant(p, seed, None)

    def keep_rule(mm, x):
        k = mm.g.random(x.size) < mm.q
        sel = mm.g.random(x.size) < f
        return np.where(sel, np.roll(k, offset), k).reshape(x.shape)

    m.keep_rule = keep_rule
    return m


def _call(effect, seed, p, shape, calls):
    rho = float(effect)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"`effects` of call_independence are correlations in [0, 1]; got {effect!r}.")
    m = _Mutant(p, seed, None)
    state = {}

    def keep_rule(mm, x):
        k = mm.g.random(x.shape) < mm.q
        if "prev" in state:
            k = np.where(mm.g.random(x.shape) < rho, state["prev"], k)
        state["prev"] = k
        return k

    m.keep_rule = keep_rule
    return m


_STAT_GRID = (0.0, 0.25, 0.5, 0.65, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0)

#: One family per check of the battery.
FAMILIES = {f.check: f for f in (
    MutantFamily("runs", "inverted", "element", None, True, (0, 1, 2),
                 "k training calls (at random) raise RuntimeError", _runs),
    MutantFamily("eval_identity", "inverted", "element", None, True, (0, 1, 2, 4),
                 "one element of one evaluation call is k ulp off x", _eval_identity),
    MutantFamily("input_unchanged", "inverted", "element", None, True, (0, 1, 2, 4),
                 "one training call moves one input element k ulp (in place)", _input_unchanged),
    MutantFamily("shape_dtype", "inverted", "element", None, True, (0, 1, 2),
                 "k training calls return float64 for a float32 input", _shape_dtype),
    MutantFamily("finite", "inverted", "element", None, True, (0, 1, 2),
                 "k outputs (in random calls) are +inf", _finite),
    MutantFamily("support", "inverted", "element", None, True, (0, 1, 2, 3, 4, 5, 6, 8),
                 "one kept output of one call is moved k ulp away from x/q (float32)", _support),
    MutantFamily("gradient", "inverted", "element", None, True, (0, 1, 2, 8),
                 "one of the backward passes uses a mask with k entries flipped", _gradient),
    MutantFamily("keep_rate", "inverted", "element", None, False, _STAT_GRID,
                 "keeps with probability q (1 + e), scales by 1/q", _rate),
    MutantFamily("mean", "inverted", "element", None, False, _STAT_GRID,
                 "keeps with probability q (1 + e), scales by 1/q: mean bias e", _rate),
    MutantFamily("variance", "gaussian", "element", None, False, _STAT_GRID,
                 "Gaussian dropout whose noise variance is (1 + e) p/q", _variance),
    MutantFamily("dispersion", "inverted", "element", None, False, _STAT_GRID,
                 "half the elements keep with q (1 + h), half with q (1 - h)", _dispersion),
    MutantFamily("element_independence", "inverted", "element", None, False, _STAT_GRID,
                 "a fraction f of the elements copy the draw one place before them, f (1 - f) = rho",
                 _element),
    MutantFamily("call_independence", "inverted", "element", None, False, _STAT_GRID,
                 "a fraction rho of each call's draws repeat the previous call's", _call),
    MutantFamily("structure", "inverted", "channel", STRUCTURE_SHAPE, True, (0, 1, 2),
                 "channel dropout; in k calls one element of one kept channel is dropped", _structure),
)}


def mutant(check: str, effect: float, *, seed=0, p: float = 0.3, shape=None, calls: int = 1000,
           offset: int = 1):
    """A correct dropout at ``p`` with ``check``'s effect of size ``effect`` injected.

    Parameters
    ----------
    check : str
        A check of the battery (a key of :data:`FAMILIES`).
    effect : float
        The effect, in the check's unit (0: a correct implementation).
    seed : int or SeedSequence, default 0
        Seeds the mutant's own generator (masks and where a defect goes).
    p : float, default 0.3
        Drop probability.
    shape : tuple, optional
        Input shape (default: the family's, else (64, 128)).
    calls : int, default 1000
        Training calls the audit will make (where counted defects may go).
    offset : int, default 1
        ``element_independence`` only: the offset (elements, flat and
        circular) of the copied draw.

    Returns
    -------
    callable
        ``fn(x, training)``; the ``gradient`` family also has ``forward_backward``.
    """
    if check not in FAMILIES:
        raise ValueError(f"`check` must be one of {sorted(FAMILIES)}; got {check!r}.")
    fam = FAMILIES[check]
    shape = tuple(shape or fam.shape or (64, 128))
    if check == "element_independence":
        return _element(effect, seed, p, shape, calls, offset=int(offset))
    return fam.make(effect, seed, p, shape, calls)
