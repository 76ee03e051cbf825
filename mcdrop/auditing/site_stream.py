"""One dropout site of a model, streamed into the audit battery from the calls it really makes.

Inside a model a site receives a different activation ``x_t`` at every call,
while the battery (:mod:`mcdrop.auditing.stream`, :mod:`~mcdrop.auditing.battery`)
compares outputs with one law of one fixed input.  For two-point laws every
statistic of the battery is a function of the keep mask alone (keep counts,
their dispersion, the mask's correlations; on the two-point support the
mean and variance follow from the keep counts), so each call is turned into
its mask and re-expressed on a fixed reference input ``x_ref`` (an audit
input of the site's shape):

1. **support, exact, on the real values**: every output must be the law's
   dropped value or its kept value for ``x_t`` (``x_t / q`` inverted,
   ``x_t`` standard, ``a x_t + b`` alpha) within 4 grid spacings of the
   dtype (bounded by ``4 |v| 2**(1 - mantissa)``, at most twice the
   ulp-exact tolerance of :func:`mcdrop.audit`); finite outputs;
2. **the mask**: dropped where ``y_t`` is the dropped value, kept where it
   is anything else (a wrong kept value fails ``support`` and still counts
   as kept, so the other checks read the mask right).  Where the two coincide (``x_t = 0``: a ReLU's zeros,
   causally masked attention) the output cannot show the mask; a unit whose
   elements show nothing gets an independent Bernoulli(q) draw from
   mcdrop's own seeded generator.  Under the null hypothesis (masks
   i.i.d. Bernoulli(q), independent of the activations) the filled mask has
   exactly the law of a correct mask, so every check keeps its level; a bug
   shows on the observed entries only, so power scales with the observed
   fraction (reported).  A unit of channel or sample structure is resolved
   from any of its observed elements (partly kept units stay partly kept:
   the ``structure`` check sees them);
3. the canonical output ``where(mask, kept(x_ref), dropped)`` is folded into
   an :class:`~mcdrop.auditing.stream.AuditStream`, exactly as an audit of
   ``x_ref`` would fold it (one Numba pass,
   :func:`mcdrop.core.fold_kernels.canonical_two_point`, in a worker
   thread).  Units of more than two elements (channel, sample) are folded
   as two reference elements each: both kept, both dropped, or one of each
   when partly kept, which is all the battery reads of a unit.

Gaussian dropout has no mask: its noise ``y_t / x_t`` (standard normal
draws where ``x_t = 0``) is re-applied to ``x_ref``.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.fold_kernels import canonical_two_point
from ..core.rng import STREAM_INPUT, STREAM_MASK, child_seed, keep_threshold, key_from_seed
from ..laws import unit_layout, variant_law
from ..laws.base import spacing
from .budget import SUPPORT_ULPS, fft_calls
from .inputs import make_input
from .stream import AuditStream

__all__ = ["SiteStream", "STRUCTURE_CALLS", "infer_structure", "observed_mask"]

#: Calls buffered to infer the structure of a site that does not declare it.
STRUCTURE_CALLS = 16
_ROWS = 2**20  # elements per batch buffer
#: (significand bits, smallest normal exponent of frexp) of each dtype's grid
_GRID = {"float32": (24, -125), "float64": (53, -1021), "float16": (11, -13), "bfloat16": (8, -125)}


def _observed(law_x, y):
    """``(keep, drop, off, finite)`` boolean arrays of real outputs ``y`` against the element law of ``x_t``.

    ``keep``: not the dropped value (finite); ``drop``: the dropped value and
    not the kept one (where the two coincide the output shows nothing).
    """
    fin = np.isfinite(y)
    with np.errstate(invalid="ignore", over="ignore"):
        is_drop = np.abs(y - law_x.drop_value) <= law_x.drop_tol
        is_kept = np.abs(y - law_x.kept_value) <= law_x.kept_tol
    # an output off the support but not the dropped value counts as kept: a wrong scale then fails
    # ``support`` alone, and the mask (keep rate, independence) is still read right
    keep = fin & ~is_drop
    drop = is_drop & ~is_kept
    off = fin & ~is_drop & ~is_kept
    if not law_x.drop_ok:  # p = 0: a dropped value is off the support
        off |= drop
        drop = np.zeros_like(drop)
    return keep, drop, off, fin


def observed_mask(variant: str, p: float, x: np.ndarray, y: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, shown)`` of one call's flat float64 input and output under ``variant`` at ``p``.

    ``shown`` marks the entries whose output reveals the mask (kept or
    dropped value, not both, on the support); ``keep`` is True where kept.
    """
    law = variant_law(variant, p)
    if not law.two_point:
        shown = np.isfinite(y) & (x != 0)
        return shown.copy(), shown
    keep, drop, _, _ = _observed(law.elementwise(x, dtype, SUPPORT_ULPS), y)
    return keep, keep | drop


def infer_structure(calls, shape) -> str | None:
    """The coarsest unit consistent with buffered ``(keep, drop)`` masks, or None while undecided.

    ``"sample"`` if no sample row was ever seen partly kept and at least
    two rows were seen dropped, likewise ``"channel"`` for ``(n, c)``
    slices of inputs with spatial axes, else ``"element"`` once both are
    excluded.  Returns None when the evidence does not decide yet.
    """
    cands = [("sample", 1)] + ([("channel", 2)] if len(shape) >= 3 else [])
    verdicts = {}
    for name, lead in cands:
        units = int(np.prod(shape[:lead]))
        mixed = dropped = 0
        for keep, drop in calls:
            k = keep.reshape(units, -1).sum(1)
            d = drop.reshape(units, -1).sum(1)
            mixed += int(np.count_nonzero((k > 0) & (d > 0)))
            dropped += int(np.count_nonzero((d > 1) & (k == 0)))
        verdicts[name] = "no" if mixed else ("yes" if dropped >= 2 else "open")
    for name, _ in cands:
        if verdicts[name] == "yes":
            return name
        if verdicts[name] == "open":
            return None
    return "element"


class SiteStream:
    """The battery's accumulators for one site, fed call by call (see the module docstring).

    Parameters
    ----------
    variant, p, structure : the law claimed
        ``structure=None`` infers it from the first calls (:func:`infer_structure`).
    shape : tuple
        The site's input shape.
    dtype : numpy dtype
        The site's dtype (its ulp sets the support tolerance).
    seed_ss : numpy.random.SeedSequence
        Seeds ``x_ref`` and the draws for unseen mask entries.
    calls : int
        Calls planned (sizes the FFT checks).
    pool : concurrent.futures.Executor, optional
        A one-thread executor: full batches are turned into canonical
        outputs and folded there (the kernels release the GIL), while the
        model runs its next forwards.  Call :meth:`finish` before reading.
    """

    def __init__(self, variant: str, p: float, structure: str | None, shape: tuple, dtype, seed_ss, calls: int,
                 pool=None):
        self.variant, self.p, self.q = variant, float(p), 1.0 - float(p)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.n = int(np.prod(self.shape))
        self.law_gen = variant_law(variant, p)
        self.seed_ss = seed_ss
        g = np.random.default_rng(child_seed(seed_ss, STREAM_INPUT))
        self.x_ref = make_input(g, self.shape, self.dtype)
        self.rng = np.random.default_rng(child_seed(seed_ss, STREAM_INPUT + 1))
        #: Philox key of the draws that fill masks the outputs do not show
        self.key = key_from_seed(child_seed(seed_ss, STREAM_INPUT + 2), STREAM_MASK)
        self.threshold = keep_threshold(self.q)
        self.calls_planned = calls
        self.structure_source = "declared" if structure is not None else "inferred"
        self.structure = structure
        self.st: AuditStream | None = None
        self.rows = max(1, min(64, _ROWS // max(self.n, 1)))
        self._xb = self._yb = self._spare = None
        if not self.law_gen.two_point:  # Gaussian sites buffer raw inputs and outputs
            raw = np.float64 if self.dtype == np.float64 else np.float32
            self._xb = np.empty((self.rows, self.n), raw)
            self._yb = np.empty((self.rows, self.n), raw)
            self._spare = (np.empty((self.rows, self.n), raw), np.empty((self.rows, self.n), raw))
        self._r = 0
        self.pool = pool
        self._future = None
        self._pending: list = []  # raw calls kept while the structure is undecided
        self.calls = 0
        self.skipped = 0
        self.nonfinite = 0
        self.first_nonfinite_call = -1
        self.off_support = 0
        self.first_off: dict | None = None
        self.observed = 0
        if structure is not None:
            self._start()

    # -- set-up ------------------------------------------------------------

    def _start(self) -> None:
        law = variant_law(self.variant, self.p, structure=self.structure)
        lay = unit_layout(self.shape, self.structure)
        self.S_in = lay.unit_size
        self.ref_shape = self.shape
        if self.law_gen.two_point and lay.unit_size > 2:
            # a two-point site's checks see units only: two reference elements per unit carry all of it
            # (both kept, both dropped, or one of each when partly kept), for a fraction of the work
            self.ref_shape = tuple(lay.unit_shape) + (2,)
            g = np.random.default_rng(child_seed(self.seed_ss, STREAM_INPUT))
            self.x_ref = make_input(g, self.ref_shape, self.dtype)
            lay = unit_layout(self.ref_shape, self.structure)
        self.law = law.elementwise(self.x_ref, self.dtype, SUPPORT_ULPS)
        self.S, self.G, self.unit_shape = lay.unit_size, lay.group_size, lay.unit_shape
        self.n_units = lay.n_units
        self.n_ref = int(np.prod(self.ref_shape))
        buf = np.float32 if self.dtype == np.float32 else np.float64
        self.st = AuditStream(self.law, self.n_ref, self.S, self.G, fft_calls(self.calls_planned, self.n_units),
                              self.rows, buf)
        # canonical rows of the current and the in-flight batch (two-point laws)
        self._cb = np.empty((self.rows, self.n_ref), buf)
        self._cb_spare = np.empty((self.rows, self.n_ref), buf)

    # -- feeding -------------------------------------------------------------

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """One call's input and output (any shape of ``n`` elements)."""
        if x.size != self.n or y.size != self.n:
            self.skipped += 1
            return
        if self.st is None:
            self._pending.append((np.array(x, copy=True).ravel(), np.array(y, copy=True).ravel()))
            self._decide()
            return
        if self.law.two_point:  # straight from the caller's arrays to the canonical row: no copy
            r = self._r
            self._canonical(x.reshape(1, -1), y.reshape(1, -1), 1, self._cb[r:r + 1])
        else:
            self._xb[self._r] = x.reshape(-1)
            self._yb[self._r] = y.reshape(-1)
        self._r += 1
        if self._r == self.rows:
            self.flush()

    def _decide(self, force: bool = False) -> None:
        """Fix the structure from the buffered calls (``force``: with what there is)."""
        masks = []
        if self.law_gen.two_point:
            for x, y in self._pending:
                lx = self.law_gen.elementwise(x, self.dtype, SUPPORT_ULPS)
                keep, drop, _, _ = _observed(lx, y.astype(np.float64))
                masks.append((keep, drop))
            s = infer_structure(masks, self.shape)
        else:
            s = "element"
        if s is None and (force or len(self._pending) >= STRUCTURE_CALLS):
            # never contradicted: the coarsest unit no call mixed
            s = next((name for name, lead in (("sample", 1), ("channel", 2))
                      if lead < len(self.shape) and self._coarse_ok(masks, lead)), "element")
        if s is None:
            return
        self.structure = s
        self._start()
        pending, self._pending = self._pending, []
        for x, y in pending:
            self.add(x, y)

    def _coarse_ok(self, masks, lead) -> bool:
        units = int(np.prod(self.shape[:lead]))
        return all(not np.any((k.reshape(units, -1).sum(1) > 0) & (d.reshape(units, -1).sum(1) > 0))
                   for k, d in masks)

    def flush(self) -> None:
        """Fold the buffered calls (in the pool if there is one; see :meth:`finish`)."""
        if self.st is None and self._pending:
            self._decide(force=True)
        r, self._r = self._r, 0
        if r == 0 or self.st is None:
            return
        if self._future is not None:
            self._future.result()  # the spare buffers are free again
            self._future = None
        if self.law.two_point:
            cb = self._cb
            self._cb, self._cb_spare = self._cb_spare, cb
            work, args = self.st.fold, (r, cb)
        else:
            xb, yb = self._xb, self._yb
            self._xb, self._yb = self._spare
            self._spare = (xb, yb)
            work, args = self._fold_rows, (xb, yb, r)
        if self.pool is None:
            work(*args)
        else:
            self._future = self.pool.submit(work, *args)

    def finish(self) -> None:
        """Fold everything buffered and wait for it: the stream is then complete."""
        self.flush()
        if self._future is not None:
            self._future.result()
            self._future = None

    def _fold_rows(self, xb, yb, r: int) -> None:
        self.st.fold(r, self._canonical(xb, yb, r))

    def _canonical(self, xb: np.ndarray, yb: np.ndarray, r: int, out: np.ndarray | None = None) -> np.ndarray:
        c0 = self.calls
        law = self.law
        if out is None:
            out = np.empty((r, self.n_ref), dtype=self.st.buf.dtype)
        if not law.two_point:  # Gaussian: the noise y/x, a fresh draw where x = 0
            x = xb[:r].astype(np.float64)
            y = yb[:r].astype(np.float64)
            fin = np.isfinite(y)
            if not fin.all():
                cnt = (~fin).sum(1)
                if self.first_nonfinite_call < 0:
                    self.first_nonfinite_call = c0 + int(np.flatnonzero(cnt)[0])
                self.nonfinite += int(cnt.sum())
            ok = fin & (x != 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                eps = np.where(ok, y / np.where(ok, x, 1.0), 0.0)
            fill = 1.0 + math.sqrt(self.p / self.q) * self.rng.standard_normal(x.shape)
            self.observed += int(np.count_nonzero(ok))
            out[:] = (np.where(ok, eps, fill) * self.x_ref.ravel()).astype(out.dtype)
            self.calls += r
            return out
        g = self.law_gen
        exact = self.p == 0.0 or self.p == 1.0
        divide = g.variant == "inverted"
        a, b = (g.a, g.b) if g.variant == "alpha" else (1.0, 0.0)
        mant, emin = _GRID.get(self.dtype.name, (53, -1021))
        stats = np.zeros(3, dtype=np.int64)
        first = np.full(2, -1, dtype=np.int64)
        first_val = np.zeros(3)
        tol_abs = float(spacing(np.array([b]), self.dtype)[0]) if g.variant == "alpha" else 0.0
        canonical_two_point(xb, yb, r, divide=divide and self.p > 0.0, q=self.q, a=a, b=b,
                            drop_value=law.drop_value, drop_tol=law.drop_tol, drop_ok=law.drop_ok,
                            ulps=0.0 if exact else SUPPORT_ULPS, tol_abs=tol_abs, mantissa=mant, min_exponent=emin,
                            unit_size=self.S_in, call0=c0, threshold=self.threshold, key=self.key,
                            kept_ref=law.kept_value, drop_ref=law.drop_value, out=out, stats=stats, first=first,
                            first_val=first_val, out_unit_size=self.S)
        if stats[0]:
            if self.first_nonfinite_call < 0:
                fin = np.isfinite(yb[:r].astype(np.float64))
                self.first_nonfinite_call = c0 + int(np.flatnonzero(~fin.all(axis=1))[0])
            self.nonfinite += int(stats[0])
        if stats[1]:
            if self.first_off is None:
                e = int(first[1])
                kv = float(first_val[2])
                self.first_off = {"call": c0 + int(first[0]),
                                  "index": [int(j) for j in np.unravel_index(e, self.shape)],
                                  "value": float(first_val[0]), "input": float(first_val[1]),
                                  "kept_value": kv if math.isfinite(kv) else None, "dropped_value": law.drop_value}
            self.off_support += int(stats[1])
        self.observed += int(stats[2])
        self.calls += r
        return out

    # -- results ---------------------------------------------------------------

    @property
    def observed_fraction(self) -> float:
        """Fraction of mask entries (or noise values) the outputs showed."""
        total = self.calls * self.n
        return self.observed / total if total else 0.0
