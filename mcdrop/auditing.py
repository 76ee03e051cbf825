"""``mcdrop.audit``: a battery of statistical checks run against any dropout implementation.

The implementation is a callable ``fn(x, training) -> array`` that owns its
randomness (stateful, like ``torch.nn.Dropout``); adapters in
:mod:`mcdrop.adapters` turn framework objects into this protocol.  The
caller declares what it claims (``p``, ``variant``, ``structure``); the
audit feeds inputs of its own (seeded by ``seed``), recovers the mask from
the outputs and tests every law of the claimed variant, with a family-wise
false-alarm rate of at most ``alpha`` (Holm) and a stated
``detectable_bias``.

Lay-out of one audit

1. two evaluation-mode calls (``eval_identity``, ``input_unchanged``);
2. ``calls`` training-mode calls, streamed batch by batch into exact keep
   counts, per-element moments, histograms and FFT sums
   (:mod:`mcdrop.audit_stream`; memory is flat in ``calls``);
3. one more evaluation-mode call (a layer stuck in training mode after
   being trained);
4. for adapters that can differentiate (torch), a few forward/backward
   passes (``gradient``);
5. the checks (:mod:`mcdrop.audit_checks`), decided as one family.

A ``fn`` that raises, returns something that is not an array, the wrong
shape, or non-finite values does not crash the audit: the run stops, the
check concerned (``runs``, ``shape_dtype``, ``finite``) fails with the reason,
and the statistical checks that could not run are ``"inconclusive"``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import __version__
from ._validation import check_alpha, check_choice, check_positive_int, check_seed, check_shape, resolve_pq
from .audit_checks import (
    Pending,
    check_call_independence,
    check_dispersion,
    check_element_independence,
    check_keep_rate,
    check_mean,
    check_structure,
    check_variance,
    decide,
    exact,
    mean_weights,
    not_run,
)
from .audit_stream import AuditStream
from .audit_variants import VARIANTS, make_law
from .results import CheckResult
from .rng import STREAM_INPUT, child_seed
from .stats import _z_sum
from .variants import ALPHA_PRIME, STRUCTURES
from .verification import _environment as _base_environment
from .warnings import LowPowerWarning

__all__ = ["audit", "AuditReport", "audit_input", "DEFAULT_SHAPE", "MAX_ELEMENTS"]

DEFAULT_SHAPE = (64, 128)
#: Largest input accepted: the audit keeps ~100 bytes of accumulators per element.
MAX_ELEMENTS = 2**24
#: Power target of the default budget and of ``detectable_bias``.
POWER = 0.99
#: Relative mean bias the default budget detects with power ``POWER``.
DEFAULT_BIAS = 1e-3
#: Fewest training calls of a default budget (the independence and dispersion
#: checks need calls even when the mean needs few, e.g. at small p).
MIN_DEFAULT_CALLS = 100
#: Caps of a default budget (``calls=None``): at most ~1.1e9 mask draws and
#: 131072 calls (seconds for a fast implementation).  Only p close to 1, or a
#: tiny input at large p, hits them; the report's detectable_bias then says
#: what the capped budget can see and a LowPowerWarning is emitted.
MAX_DEFAULT_DRAWS = 2**30
MAX_DEFAULT_CALLS = 2**17
#: Mask draws fed to the FFT checks (element and call independence).
FFT_DRAWS = 2**20
FFT_MIN_CALLS = 64
#: Support tolerance, in ulps of the output dtype.
SUPPORT_ULPS = 4
EVAL_CALLS_BEFORE = 2
GRADIENT_CALLS = 8
#: Input magnitudes are log-uniform in [MAG_LOW, MAG_HIGH] (float16: up to 10).
MAG_LOW, MAG_HIGH = 0.1, 100.0
#: Sizes of the report's lists (JSON stays well under 1 MB).
MAX_REPORT_UNITS = 8192
MAX_HIST_BINS = 8193

_DTYPES = ("float32", "float64", "float16", "bfloat16")


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AuditReport:
    """What :func:`audit` found.

    Attributes
    ----------
    target : str
        Readable name of the implementation.
    checks : list of CheckResult
        Every check, in battery order.
    passed : bool
        No check failed.
    verdict : {"pass", "fail", "inconclusive"}
        ``"fail"`` if a check failed, else ``"inconclusive"`` if one was
        inconclusive (a tolerance band straddled, or a check could not run),
        else ``"pass"``.
    detectable_bias : float or None
        Smallest relative mean bias the ``mean`` check detects with power
        0.99 at its share of ``alpha`` for this budget.
    detectable_rate_error : float or None
        The same for a relative keep-rate error (``keep_rate`` check).
    p, q, variant, structure, shape, dtype, calls, draws, seed, alpha, tolerance
        What was audited and with what budget (``calls`` is the number of
        training calls made; ``draws`` the mask draws, units x calls).
    """

    target: str
    p: float
    q: float
    variant: str
    structure: str
    shape: tuple
    dtype: str
    calls: int
    calls_requested: int
    draws: int
    seed: Any
    alpha: float
    tolerance: float | None
    checks: tuple
    detectable_bias: float | None
    detectable_rate_error: float | None
    elapsed_s: float
    environment: dict
    plots: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.verdict != "fail" for c in self.checks)

    @property
    def verdict(self) -> str:
        v = {c.verdict for c in self.checks}
        return "fail" if "fail" in v else ("inconclusive" if "inconclusive" in v else "pass")

    def check(self, name: str) -> CheckResult:
        """The check called ``name`` (KeyError if the audit did not run it)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.name for c in self.checks if c.verdict == "fail"]

    def __eq__(self, other):
        # ``report == "pass"`` compares the verdict: ``assert report == "pass"``
        # then fails with mcdrop's explanation (the pytest plugin's
        # pytest_assertrepr_compare).  Reports compare by identity otherwise.
        if isinstance(other, str):
            return self.verdict == other
        return self is other

    __hash__ = object.__hash__

    def table(self) -> str:
        head = f"{'check':<22} {'verdict':<13} {'estimate':>12} {'expected':>10} {'interval':>27} {'p-value':>9}"
        lines = [head, "-" * len(head)]
        order = [c for c in self.checks if c.verdict == "fail"] + [c for c in self.checks if c.verdict != "fail"]
        for c in order:
            est = "" if c.estimate is None else f"{c.estimate:.8g}"
            exp = "" if c.expected is None else f"{c.expected:.6g}"
            ci = "" if c.confidence_interval is None else (
                f"[{c.confidence_interval.low:.6g}, {c.confidence_interval.high:.6g}]")
            pv = "" if c.pvalue is None else f"{c.pvalue:.2g}"
            lines.append(f"{c.name:<22} {c.verdict.upper():<13} {est:>12} {exp:>10} {ci:>27} {pv:>9}")
        return "\n".join(lines)

    def __str__(self) -> str:
        m = len(self.checks)
        lines = [
            f"mcdrop audit: {self.verdict.upper()}  {self.target}",
            f"claimed: {self.variant} dropout, p={self.p:g} (keep q={self.q:g}), structure="
            f"{self.structure}; input {tuple(self.shape)} {self.dtype}, {self.calls:,} training calls "
            f"({self.draws:,} mask draws), seed={self.seed}, {self.elapsed_s:.2f} s",
            f"family-wise false-alarm bound alpha={self.alpha:g} over {m} checks (Holm"
            + (f"; tolerance band +-{self.tolerance:g} for mean and keep rate" if self.tolerance else "")
            + ").",
        ]
        if self.detectable_bias is not None:
            txt = f"detects with power {POWER}: relative mean bias {self.detectable_bias:.2g}"
            if self.detectable_rate_error is not None:
                txt += f", relative keep-rate error {self.detectable_rate_error:.2g}"
            lines.append(txt)
        failed = [c for c in self.checks if c.verdict == "fail"]
        if failed:
            lines.append("")
            lines.append("FAILED:")
            for c in failed:
                lines.append(f"  {c.name}: {c.detail}")
        incon = [c for c in self.checks if c.verdict == "inconclusive"]
        if incon:
            lines.append("INCONCLUSIVE:")
            for c in incon:
                lines.append(f"  {c.name}: {c.detail}")
        lines.append("")
        lines.append(self.table())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the schema :mod:`mcdrop.report` renders)."""
        d = {
            "type": "mcdrop.AuditReport",
            "mcdrop_version": __version__,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "power": POWER,
            "detectable_bias": self.detectable_bias,
            "detectable_rate_error": self.detectable_rate_error,
            "target": self.target,
            "p": self.p,
            "q": self.q,
            "variant": self.variant,
            "structure": self.structure,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "calls": self.calls,
            "calls_requested": self.calls_requested,
            "draws": self.draws,
            "seed": self.seed if isinstance(self.seed, (int, type(None))) else str(self.seed),
            "tolerance": self.tolerance,
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "checks": [c.to_dict() for c in self.checks],
        }
        for key in ("keep_count_hist", "autocorrelation", "call_correlation", "convergence"):
            d[key] = self.plots.get(key)
        pe = self.plots.get("per_element")
        if pe is not None:
            pe = dict(pe)
            for key, digits in (("relative_bias", 6), ("relative_bias_se", 6), ("keep_rate", 7), ("pvalues", 4)):
                pe[key] = _rounded(pe[key], digits)
        d["per_element"] = pe
        return d

    def to_json(self, path=None, *, indent: int | None = 1) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` (atomically) if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            from .report._io import atomic_write_text

            atomic_write_text(path, text)
        return text

    def to_pdf(self, path) -> None:
        """Write the PDF report (verdict table first, then the plots)."""
        from mcdrop.report import render

        render(self.to_dict(), path)


def _rounded(a, digits: int):
    """A float, or a list rounded to ``digits`` significant digits (small JSON)."""
    if a is None:
        return None
    if np.ndim(a) == 0:
        return float(a)
    return [float(f"{t:.{digits}g}") for t in np.asarray(a, dtype=np.float64).ravel().tolist()]


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("`dtype` 'bfloat16' needs the package ml_dtypes (pip install ml_dtypes).") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def audit_input(shape, dtype="float32", seed=0) -> np.ndarray:
    """The input an audit feeds: nonzero, mixed sign, magnitudes over three decades.

    Magnitudes are log-uniform in [0.1, 100] (float16: [0.1, 10], so that
    ``x / q`` stays finite) with random signs; values within 0.05 of SELU's
    ``alpha' = -1.758`` are moved away (alpha dropout's kept and dropped
    values could otherwise coincide).  Every value is exactly representable
    in ``dtype``, so an implementation computing in ``dtype`` can return it
    unchanged in evaluation mode.  Returned as float64.

    Parameters
    ----------
    shape : tuple of int
    dtype : str, default "float32"
    seed : int, SeedSequence or None
        Seeds the input stream (``rng.STREAM_INPUT`` child of ``seed``).
    """
    shape = check_shape(shape, max_elements=MAX_ELEMENTS)
    dt = _np_dtype(check_choice(dtype, "dtype", _DTYPES))
    g = _input_rng(check_seed(seed))
    return _make_input(g, shape, dt)


def _input_rng(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(child_seed(ss, STREAM_INPUT))


def _make_input(g: np.random.Generator, shape, dt: np.dtype) -> np.ndarray:
    hi = 10.0 if dt == np.float16 else MAG_HIGH
    mag = np.exp(g.uniform(math.log(MAG_LOW), math.log(hi), size=shape))
    sign = np.where(g.random(shape) < 0.5, -1.0, 1.0)
    x = sign * mag
    near = np.abs(x - ALPHA_PRIME) < 0.05
    x[near] = -x[near]
    return x.astype(dt).astype(np.float64)


# ---------------------------------------------------------------------------
# input validation
# ---------------------------------------------------------------------------


@dataclass
class _Plan:
    fn: Callable
    target: str
    p: float
    q: float
    variant: str
    structure: str
    shape: tuple
    dtype: np.dtype
    dtype_name: str
    calls: int | None
    alpha: float
    tolerance: float | None
    seed_ss: np.random.SeedSequence
    seed_repr: Any
    progress: bool
    has_grad: bool


def _describe(fn) -> str:
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name:
        return name
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or getattr(type(fn), "__qualname__", type(fn).__name__)
    return f"{mod}.{qual}" if mod else str(qual)


def _audit_iv(fn, p, keep, shape, calls, variant, structure, alpha, tolerance, seed, dtype, progress, name) -> _Plan:
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a callable fn(x, training) -> array (wrap framework objects with "
            f"mcdrop.adapters); got {fn!r} of type {type(fn).__name__}."
        )
    if p is None and keep is None:
        p = getattr(fn, "p", None)
        if p is None:
            p = 0.3
    p, q = resolve_pq(p, keep)
    if variant is None:
        variant = getattr(fn, "variant", None) or "inverted"
    if structure is None:
        structure = getattr(fn, "structure", None) or "element"
    variant = check_choice(variant, "variant", VARIANTS)
    structure = check_choice(structure, "structure", STRUCTURES)
    if variant == "gaussian" and p == 1.0:
        raise ValueError(
            "`p` must be < 1 for variant='gaussian': the noise standard deviation sqrt(p/q) "
            "is infinite at p = 1; got p=1.0."
        )
    if shape is None:
        shape = getattr(fn, "default_shape", None) or DEFAULT_SHAPE
    shape = check_shape(shape, "shape", max_elements=MAX_ELEMENTS)
    if structure == "channel" and len(shape) < 2:
        raise ValueError(
            f"`structure` 'channel' needs an input of at least 2 dimensions (N, C, ...): the "
            f"unit is each (n, c) slice; got shape {shape}."
        )
    if calls is not None:
        calls = check_positive_int(calls, "calls")
    alpha = check_alpha(alpha)
    if tolerance is not None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.floating, np.integer)):
            raise TypeError(f"`tolerance` must be None or a number in [0, 1); got {tolerance!r}.")
        tolerance = float(tolerance)
        if not (0.0 <= tolerance < 1.0):
            raise ValueError(f"`tolerance` must be None or in [0, 1) (relative band); got {tolerance!r}.")
        if tolerance == 0.0:
            tolerance = None
    ss = check_seed(seed)
    seed_repr = int(seed) if isinstance(seed, (int, np.integer)) else (ss.entropy if seed is None else str(seed))
    dtype_name = check_choice(dtype, "dtype", _DTYPES)
    dt = _np_dtype(dtype_name)
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be a bool; got {progress!r}.")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"`name` must be a string or None; got {name!r}.")
    has_grad = callable(getattr(fn, "forward_backward", None))
    return _Plan(fn, name or _describe(fn), p, q, variant, structure, shape, dt, dtype_name, calls,
                 alpha, tolerance, ss, seed_repr, progress, has_grad)


def _layout(structure: str, shape: tuple) -> tuple[int, int | None, tuple]:
    """``(unit_size, group_size, unit_shape)`` of a structure on ``shape``."""
    n = math.prod(shape)
    if structure == "element":
        return 1, None, shape
    if structure == "channel":
        S = math.prod(shape[2:]) if len(shape) > 2 else 1
        return S, shape[1], shape[:2]
    S = n // shape[0]
    return S, shape[0], shape[:1]


def _check_names(plan: _Plan, two_point: bool) -> list[str]:
    names = ["runs", "eval_identity", "input_unchanged", "shape_dtype", "finite"]
    if two_point:
        names.append("support")
    if plan.has_grad:
        names.append("gradient")
    if two_point:
        names.append("keep_rate")
    if plan.p < 1.0:
        names += ["mean", "variance"]
    if two_point:
        names.append("dispersion")
    names += ["element_independence", "call_independence"]
    if two_point and plan.structure != "element":
        names.append("structure")
    return names


# ---------------------------------------------------------------------------
# running the implementation
# ---------------------------------------------------------------------------


def _as_array(out) -> tuple[np.ndarray | None, str | None]:
    if isinstance(out, np.ndarray):
        arr = out
    elif hasattr(out, "__array__") or hasattr(out, "__array_interface__"):
        try:
            arr = np.asarray(out)
        except Exception as exc:  # e.g. a torch tensor that requires grad
            return None, (f"returned a {type(out).__name__} that NumPy cannot convert "
                          f"({type(exc).__name__}: {exc})")
    else:
        return None, f"returned a {type(out).__name__} ({out!r:.60}), not an array"
    if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
        return None, f"returned an array of non-real dtype {arr.dtype}"
    return arr, None


class _Run:
    """State of the calls made to ``fn`` (what the exact checks look at)."""

    def __init__(self, plan: _Plan, x: np.ndarray):
        self.plan = plan
        self.x = x  # float64 reference values
        self.x_dtype = x.astype(plan.dtype)
        self.x_feed = self.x_dtype.copy()
        self.fatal: tuple[str, str] | None = None  # (check name, reason)
        self.raised: str | None = None
        self.shape_problem: str | None = None
        self.dtype_problem: str | None = None
        self.mutated: str | None = None
        self.eval_calls = 0
        self.eval_bad: str | None = None
        self.grad_calls = 0
        self.grad_bad: str | None = None

    def _fail_call(self, what: str, exc: BaseException) -> None:
        msg = f"{what} raised {type(exc).__name__}: {exc}"
        self.raised = self.raised or msg
        self.fatal = self.fatal or ("runs", msg)

    def _checked(self, out, what: str) -> np.ndarray | None:
        arr, err = _as_array(out)
        if err is not None:
            self.shape_problem = self.shape_problem or f"{what} {err}"
            self.fatal = self.fatal or ("shape_dtype", f"{what} {err}")
            return None
        if arr.shape != self.plan.shape:
            msg = f"{what} returned shape {arr.shape}, expected {self.plan.shape}"
            self.shape_problem = self.shape_problem or msg
            self.fatal = self.fatal or ("shape_dtype", msg)
            return None
        if arr.dtype != self.plan.dtype and self.dtype_problem is None:
            self.dtype_problem = f"{what} returned dtype {arr.dtype} for a {self.plan.dtype} input"
        return arr

    def check_input(self, when: str) -> None:
        if not np.array_equal(self.x_feed, self.x_dtype):
            if self.mutated is None:
                n_bad = int(np.count_nonzero(self.x_feed != self.x_dtype))
                self.mutated = f"{n_bad} input values changed by {when}"
            np.copyto(self.x_feed, self.x_dtype)

    def eval_call(self, label: str) -> None:
        fn = self.plan.fn
        try:
            out = fn(self.x_feed, False)
        except Exception as exc:
            self._fail_call(f"eval call ({label})", exc)
            return
        self.eval_calls += 1
        arr = self._checked(out, f"eval call ({label})")
        if arr is not None and self.eval_bad is None:
            y = np.asarray(arr).astype(np.float64)
            with np.errstate(invalid="ignore"):
                diff = ~(y == self.x)
            nd = int(np.count_nonzero(diff))
            if nd:
                i = int(np.flatnonzero(diff.ravel())[0])
                idx = np.unravel_index(i, self.plan.shape)
                self.eval_bad = (f"eval call ({label}): {nd} of {y.size} outputs differ from x, e.g. at "
                                 f"{tuple(int(j) for j in idx)}: {y.ravel()[i]!r} instead of {self.x.ravel()[i]!r}")
        self.check_input(f"an eval call ({label})")


def _batch_sizes(total: int, bmax: int):
    """Batch sizes 1, 1, 2, 4, ... up to ``bmax``: early batches are small so
    the convergence trace has points at small call counts."""
    done, b = 0, 1
    first = True
    while done < total:
        s = min(b, bmax, total - done)
        yield s
        done += s
        if not first:
            b = min(2 * b, bmax)
        first = False


def _stream(run: _Run, st: AuditStream, calls: int, bar, trace: Callable[[int], None]) -> None:
    """Make the training calls, folding each batch while the next one is collected.

    Two batch buffers alternate: while ``fn`` fills one, a worker thread
    folds the other into the accumulators (the Numba kernels and the FFT
    release the GIL), so on a machine with a free core the audit adds little
    to the time of the calls themselves.  At most one fold is in flight, so
    calls are folded in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    fn = run.plan.fn
    bufs = (st.buf, np.empty_like(st.buf))
    x_feed = run.x_feed
    shape = run.plan.shape
    want = run.plan.dtype
    made = 0  # calls made (folded or in flight)
    pending = None

    def collect() -> None:
        nonlocal pending
        if pending is not None:
            nrows = pending[1]
            pending[0].result()  # re-raises a fold error (a bug in mcdrop, not in fn)
            pending = None
            bar.update(nrows)
            trace(st.calls)
            if st.nonfinite:
                run.fatal = run.fatal or ("finite", "non-finite outputs")

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcdrop-audit") as pool:
        for i, b in enumerate(_batch_sizes(calls, st.batch)):
            buf = bufs[i % 2]
            r = 0
            while r < b:
                try:
                    out = fn(x_feed, True)
                except Exception as exc:
                    run._fail_call(f"training call {made + r}", exc)
                    break
                if type(out) is not np.ndarray or out.shape != shape or out.dtype != want:
                    out = run._checked(out, f"training call {made + r}")
                    if out is None:
                        break
                try:
                    buf[r] = out.reshape(-1)
                except Exception as exc:  # e.g. an exotic dtype numpy cannot cast
                    msg = f"training call {made + r}: output not castable to float ({exc})"
                    run.shape_problem = run.shape_problem or msg
                    run.fatal = run.fatal or ("shape_dtype", msg)
                    break
                r += 1
            collect()
            if r:
                pending = (pool.submit(st.fold, r, buf), r)
                made += r
            run.check_input("a training call")
            if run.fatal is not None:
                break
        collect()


def _gradient_calls(run: _Run, law, g: np.ndarray) -> None:
    fn = run.plan.fn
    gd = g.astype(run.plan.dtype)
    for i in range(GRADIENT_CALLS):
        try:
            y, dx = fn.forward_backward(run.x_feed, gd)
        except Exception as exc:
            run.grad_bad = run.grad_bad or f"forward_backward call {i} raised {type(exc).__name__}: {exc}"
            return
        run.grad_calls += 1
        y = np.asarray(y).astype(np.float64).ravel()
        dx = np.asarray(dx).astype(np.float64).ravel()
        gf = gd.astype(np.float64).ravel()
        if law.two_point:
            kept = np.abs(y - law.drop_value) > law.drop_tol
            expected = np.where(kept, gf * law.grad_kept, 0.0)
        else:
            xf = run.x.ravel()
            expected = gf * (y / xf)
        with np.errstate(over="ignore", invalid="ignore"):
            tol = SUPPORT_ULPS * np.spacing(np.abs(expected).astype(run.plan.dtype)).astype(np.float64)
            bad = ~(np.abs(dx - expected) <= tol)
        nb = int(np.count_nonzero(bad))
        if nb and run.grad_bad is None:
            j = int(np.flatnonzero(bad)[0])
            run.grad_bad = (f"call {i}: {nb} of {dx.size} input gradients differ from g * dy/dx of the "
                            f"forward mask, e.g. element {j}: {dx[j]!r} instead of {expected[j]!r}")
        run.check_input("a forward_backward call")


# ---------------------------------------------------------------------------
# the audit
# ---------------------------------------------------------------------------


def audit(fn, p=None, *, keep=None, shape=None, calls=None, variant=None, structure=None,
          alpha=1e-6, tolerance=None, seed=0, dtype="float32", progress=False, name=None) -> AuditReport:
    """Audit a dropout implementation with a battery of statistical checks.

    Parameters
    ----------
    fn : callable
        ``fn(x: numpy.ndarray, training: bool) -> array``; it owns its
        randomness (a fresh mask each training call).  Framework objects:
        wrap them with :mod:`mcdrop.adapters` (``torch_module``,
        ``flax_dropout``, ``keras_layer``, ...).  The output may be any
        array NumPy can convert.
    p : float, optional
        The **drop** probability the implementation claims, in [0, 1].
        Give ``p`` or ``keep``, not both.  Default: the adapter's own ``p``
        if ``fn`` is an adapter, else 0.3.
    keep : float, optional
        The **keep** probability ``q = 1 - p`` instead of ``p``.
    shape : tuple of int, optional
        Input shape (default: the adapter's, else (64, 128)); at most
        2**24 elements.  ``structure="channel"`` needs ``(N, C, ...)``.
    calls : int, optional
        Training-mode calls.  Default: enough for the ``mean`` check to
        detect a 0.1% relative bias with power 0.99 at its share of
        ``alpha`` (about 2.6e7 draws at p = 0.3, alpha = 1e-6), and at
        least 100.
    variant : {"inverted", "alpha", "gaussian"}, optional
        The law claimed (default: the adapter's, else ``"inverted"``):
        inverted ``y = x m / q``; AlphaDropout's affine law; Gaussian
        ``y = x N(1, p/q)``.
    structure : {"element", "channel", "sample"}, optional
        The unit of the mask (default: the adapter's, else ``"element"``):
        one draw per element, per ``(n, c)`` slice (Dropout1d/2d/3d), or
        per sample row (DropPath).
    alpha : float, default 1e-6
        Family-wise false-alarm bound over all checks (Holm).
    tolerance : float, optional
        Relative harmless band for the mean and the keep rate.  ``None``
        or 0 tests the point hypothesis; ``> 0`` gives the three-zone
        verdict (fail if the interval lies outside the band, pass if
        inside, inconclusive otherwise).
    seed : int, SeedSequence or None, default 0
        Seeds the inputs fed (not the implementation's masks, which it owns;
        adapters take their own ``seed``).
    dtype : {"float32", "float64", "float16", "bfloat16"}, default "float32"
        The input dtype; outputs are expected in the same dtype.
    progress : bool, default False
        Progress bar on stderr (only when stderr is a terminal).
    name : str, optional
        Name of the implementation in the report (default: the adapter's
        name or ``fn``'s qualified name).

    Returns
    -------
    AuditReport
        ``.passed``, ``.verdict``, ``.checks``, ``.detectable_bias``,
        ``to_dict()``, ``to_json()``, ``to_pdf()``.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message).  Errors raised *by* ``fn``
        never propagate: they fail the ``runs`` check.

    Notes
    -----
    The checks (a :class:`~mcdrop.results.CheckResult` each):
    ``runs``, ``eval_identity``, ``input_unchanged``, ``shape_dtype``,
    ``finite``, ``support``, ``gradient`` (adapters that can
    differentiate), ``keep_rate``, ``mean``, ``variance``, ``dispersion``,
    ``element_independence``, ``call_independence`` and ``structure``
    (channel/sample).  Checks that do not apply are left out (Gaussian
    dropout has no mask, hence no ``support``, ``keep_rate``,
    ``dispersion``, ``structure``; at ``p = 1`` there is no ``mean`` or
    ``variance`` law).  See :mod:`mcdrop.audit_checks` for the tests.

    Examples
    --------
    >>> import numpy as np, mcdrop
    >>> g = np.random.default_rng(12345)
    >>> def my_dropout(x, training, p=0.3):
    ...     if not training:
    ...         return x
    ...     return np.where(g.random(x.shape) < 1 - p, x / (1 - p), 0).astype(x.dtype)
    >>> rep = mcdrop.audit(my_dropout, p=0.3, shape=(32, 64), calls=300)
    >>> rep.verdict
    'pass'
    """
    plan = _audit_iv(fn, p, keep, shape, calls, variant, structure, alpha, tolerance, seed, dtype,
                     progress, name)
    t0 = time.perf_counter()
    g_in = _input_rng(plan.seed_ss)
    x = _make_input(g_in, plan.shape, plan.dtype)
    cot = _make_input(g_in, plan.shape, plan.dtype) if plan.has_grad else None
    law = make_law(plan.variant, plan.p, x, plan.dtype, SUPPORT_ULPS)
    S, G, unit_shape = _layout(plan.structure, plan.shape)
    n = x.size
    n_units = n // S
    names = _check_names(plan, law.two_point)
    m = len(names)
    a_check = plan.alpha / m
    # the mean check spends half its share on the pooled test
    a_mean = a_check / 2.0
    # pooled-bias coefficients and the null variance of one call's estimate
    cw, v1 = mean_weights(law, S) if law.random else (None, 0.0)
    if plan.calls is None:
        need = math.ceil(_z_sum(a_mean, POWER) ** 2 * v1 / DEFAULT_BIAS**2) if v1 > 0 else 0
        cap = max(MIN_DEFAULT_CALLS, min(MAX_DEFAULT_CALLS, MAX_DEFAULT_DRAWS // max(n_units, 1)))
        calls_req = min(max(MIN_DEFAULT_CALLS, need), cap)
        if need > cap:
            # Near p = 1 the keep indicator's relative variance p/q explodes and
            # a 0.1% bias would need an absurd budget: cap it and say so (the
            # report's detectable_bias states what this budget can see).
            warnings.warn(
                f"the default budget needs {need:,} calls to detect a {DEFAULT_BIAS:g} "
                f"relative mean bias at p={plan.p:g}; capped at {cap:,} calls. "
                f"Pass `calls=` to choose the budget.",
                LowPowerWarning,
                stacklevel=2,
            )
    else:
        calls_req = plan.calls
    fft_calls = min(calls_req, max(FFT_MIN_CALLS, math.ceil(FFT_DRAWS / n_units)))
    batch = max(1, min(256, 2**21 // n))
    buf_dtype = np.float32 if plan.dtype == np.float32 else np.float64
    st = AuditStream(law, n, S, G, fft_calls, batch, buf_dtype)
    run = _Run(plan, x)

    trace_c: list[int] = []
    trace_v: list[float] = []
    next_pt = [1.0]

    def trace(c: int) -> None:
        if cw is None or c < next_pt[0] or c == 0:
            return
        trace_c.append(c)
        trace_v.append(float(np.dot(cw, st.moments.mean)))
        while next_pt[0] <= c:
            next_pt[0] *= 1.12

    from ._progress import make_bar

    bar = make_bar(total=calls_req, desc="audit", unit="call", enabled=None if plan.progress else False)
    ctx = fn.rng_context() if callable(getattr(fn, "rng_context", None)) else contextlib.nullcontext()
    try:
        with ctx:
            for i in range(EVAL_CALLS_BEFORE):
                if run.fatal is None:
                    run.eval_call(f"before training, #{i}")
            if run.fatal is None:
                _stream(run, st, calls_req, bar, trace)
            if run.fatal is None:
                run.eval_call("after training")
            if plan.has_grad and run.fatal is None:
                _gradient_calls(run, law, cot)
    finally:
        bar.close()
    if st.calls and (not trace_c or trace_c[-1] != st.calls) and cw is not None:
        trace_c.append(st.calls)
        trace_v.append(float(np.dot(cw, st.moments.mean)))

    checks, plots = _build_checks(plan, run, st, law, names, S, G, unit_shape, a_check)
    C = st.calls
    db = dre = None
    if C > 0 and plan.p < 1.0:
        db = _z_sum(a_mean, POWER) * math.sqrt(v1 / C) if law.random else 0.0
    if C > 0 and law.two_point and 0.0 < plan.q < 1.0:
        dre = _z_sum(a_check, POWER) * math.sqrt(plan.p / (plan.q * C * n_units))
    elif C > 0 and law.two_point and plan.p == 0.0:
        dre = 0.0
    if cw is not None and trace_c:
        se = [math.sqrt(v1 / c) for c in trace_c]
        plots["convergence"] = {"draws": [c * n_units for c in trace_c], "calls": trace_c,
                                "relative_mean": [1.0 + v for v in trace_v], "se": se}
    else:
        plots["convergence"] = None
    return AuditReport(
        target=plan.target, p=plan.p, q=plan.q, variant=plan.variant, structure=plan.structure,
        shape=plan.shape, dtype=plan.dtype_name, calls=C, calls_requested=calls_req,
        draws=C * n_units, seed=plan.seed_repr, alpha=plan.alpha, tolerance=plan.tolerance,
        checks=tuple(checks), detectable_bias=db, detectable_rate_error=dre,
        elapsed_s=time.perf_counter() - t0, environment=_environment(fn), plots=plots,
    )


def _environment(fn) -> dict:
    """Versions and machine (as for :func:`mcdrop.verify`), plus the adapter's framework."""
    env = _base_environment()
    extra = getattr(fn, "environment", None)
    if callable(extra):
        try:
            env.update(extra())
        except Exception:  # the report must not fail on a version lookup
            pass
    return env


def _build_checks(plan, run: _Run, st: AuditStream, law, names, S, G, unit_shape, a_check):
    C = st.calls
    pend: dict[str, Pending] = {}
    plots: dict = {}
    fatal = run.fatal
    # --- exact checks -------------------------------------------------------
    pend["runs"] = exact(
        "runs", run.raised is None,
        run.raised or (f"fn returned for every call ({run.eval_calls} eval, {C:,} training"
                       + (f", {run.grad_calls} forward/backward" if plan.has_grad else "") + ")."))
    problems = [t for t in (run.shape_problem, run.dtype_problem) if t]
    pend["shape_dtype"] = exact(
        "shape_dtype", not problems,
        "; ".join(problems) if problems else
        f"every output is an array of shape {plan.shape} and dtype {plan.dtype_name}.")
    if run.eval_calls == 0 and run.eval_bad is None:
        pend["eval_identity"] = not_run("eval_identity", "no evaluation-mode call returned an array")
    else:
        pend["eval_identity"] = exact(
            "eval_identity", run.eval_bad is None,
            run.eval_bad or f"training=False returned x exactly ({run.eval_calls} calls).")
    pend["input_unchanged"] = exact(
        "input_unchanged", run.mutated is None,
        run.mutated or "the input array was never modified in place.")
    if st.nonfinite:
        detail = (f"{st.nonfinite:,} non-finite outputs (NaN/inf), first in training call "
                  f"{st.first_nonfinite_call}" + (" at p = 1 (must return zeros)" if plan.p == 1 else "") + ".")
        pend["finite"] = exact("finite", False, detail, estimate=float(st.nonfinite), expected=0.0)
    elif C == 0:
        pend["finite"] = not_run("finite", "no training call returned an array")
    else:
        pend["finite"] = exact("finite", True, f"all {C * st.n:,} outputs finite.", estimate=0.0, expected=0.0)
    if "support" in names:
        if C == 0:
            pend["support"] = not_run("support", "no training call returned an array")
        else:
            if plan.p == 0:
                sup = "{x} exactly (p = 0)"
            elif plan.p == 1:
                sup = "{0} (p = 1)"
            elif law.variant == "alpha":
                sup = f"{{a x + b, a q alpha'}} = {{a x + {float(law.kept_value[0] - law.mu[0] / law.q):.6g}, {law.drop_value:.6g}}}"
            else:
                sup = f"{{0, x/q}} = {{0, x * {1 / law.q:.9g}}}"
            tol = "0 ulp" if plan.p == 0 else f"{SUPPORT_ULPS} ulp of {plan.dtype_name}"
            detail = f"{st.off_support:,} of {C * st.n:,} outputs off the support {sup} (tolerance {tol})"
            ex = None
            if st.off_support:
                e = int(st.first_bad[1])
                idx = tuple(int(j) for j in np.unravel_index(e, plan.shape))
                kv = float(law.kept_value[e])
                ex = {"call": st.first_bad_call, "index": list(idx), "value": float(st.first_val[0]),
                      "kept_value": kv if math.isfinite(kv) else None, "dropped_value": law.drop_value}
                detail += (f"; first: training call {st.first_bad_call}, index {idx}: "
                           f"{float(st.first_val[0])!r} (support point {kv!r}, relative "
                           f"{float(st.first_val[0]) / kv - 1 if kv and math.isfinite(kv) else float('nan'):+.3g})")
            pend["support"] = exact("support", st.off_support == 0, detail + ".",
                                    estimate=float(st.off_support), expected=0.0,
                                    extra={"first": ex} if ex else None)
    if "gradient" in names:
        if run.grad_calls == 0 and run.grad_bad is None:
            pend["gradient"] = not_run("gradient", "the audit stopped before the gradient calls")
        else:
            pend["gradient"] = exact(
                "gradient", run.grad_bad is None,
                run.grad_bad or (f"backward applies the forward mask and scale: d sum(y*g)/dx = "
                                 f"g * dy/dx ({run.grad_calls} calls, {SUPPORT_ULPS} ulp)."))
    # --- statistical checks ---------------------------------------------------
    stat_names = [nm for nm in names if nm not in pend]
    if fatal is not None or C == 0:
        reason = f"the run stopped ({fatal[1] if fatal else 'no training calls'})"
        for nm in stat_names:
            pend[nm] = not_run(nm, reason)
        plots.update(per_element=None, keep_count_hist=None, autocorrelation=None, call_correlation=None)
        return [_decided(pend, names, plan.alpha)[nm] for nm in names], plots
    eps = _eps(plan.dtype)
    if "keep_rate" in names:
        pend["keep_rate"] = check_keep_rate(st, law, plan.tolerance)
    per = None
    if "mean" in names:
        if law.random:
            pend["mean"], per = check_mean(st, law, S, eps, plan.tolerance, a_check)
        else:  # p = 0: every output must be x exactly
            md = st.moments.mean
            bad = int(np.count_nonzero(md != 0))
            pend["mean"] = exact("mean", bad == 0,
                                 f"p = 0: {bad} elements whose mean output differs from x.",
                                 estimate=1.0 + float(np.max(np.abs(md / law.mu))), expected=1.0)
    if "variance" in names:
        if law.random:
            pend["variance"] = check_variance(st, law, 2.0 * SUPPORT_ULPS * eps * (1.0 + 1.0 / plan.p))
        else:
            bad = int(np.count_nonzero(st.moments.m2 != 0))
            pend["variance"] = exact("variance", bad == 0,
                                     f"p = 0: {bad} elements whose output varies between calls.")
    if "dispersion" in names:
        if law.random:
            pend["dispersion"] = check_dispersion(st, law)
        else:
            target = st.n_units if plan.p == 0 else 0
            ok = int(st.call_hist[target]) == C
            pend["dispersion"] = exact("dispersion", ok,
                                       f"p = {plan.p:g}: every call must keep exactly {target} units.")
    if law.random:
        pend["element_independence"], plots["autocorrelation"] = check_element_independence(
            st, law, plan.shape, S, a_check)
        pend["call_independence"], plots["call_correlation"] = check_call_independence(st, law, a_check)
    else:
        for nm in ("element_independence", "call_independence"):
            pend[nm] = exact(nm, True, f"p = {plan.p:g}: no randomness to correlate (the mask is fixed; "
                                       f"keep_rate and support check it exactly).")
        plots["autocorrelation"] = plots["call_correlation"] = None
    if "structure" in names:
        pend["structure"] = check_structure(st, law, plan.structure, S, G)
    # --- plot data for the report ------------------------------------------------
    if law.two_point:
        hist = st.call_hist
        if hist.size <= MAX_HIST_BINS:
            plots["keep_count_hist"] = {"counts": hist.tolist(), "offset": 0, "n": st.n_units, "q": law.q}
        else:
            nz = np.flatnonzero(hist)
            lo, hi = int(nz[0]), int(nz[-1]) + 1
            plots["keep_count_hist"] = {"counts": hist[lo:hi].tolist(), "offset": lo, "n": st.n_units, "q": law.q}
    else:
        plots["keep_count_hist"] = None
    if per is not None:
        k = min(st.n_units, MAX_REPORT_UNITS)
        trunc = st.n_units > k
        # numpy arrays here; rounded to JSON lists by AuditReport.to_dict
        plots["per_element"] = {
            "shape": list(unit_shape) if not trunc else [k],
            "full_shape": list(unit_shape), "truncated": trunc,
            "unit": {"element": "element", "channel": "(n, c) slice", "sample": "sample row"}[plan.structure],
            "relative_bias": per["relative_bias"][:k],
            "relative_bias_se": per["relative_bias_se"] if np.ndim(per["relative_bias_se"]) == 0
            else per["relative_bias_se"][:k],
            "keep_rate": None if per["keep_rate"] is None else per["keep_rate"][:k],
            "pvalues": per["pvalues"][:k],
        }
    else:
        plots["per_element"] = None
    decided = _decided(pend, names, plan.alpha)
    return [decided[nm] for nm in names], plots


def _decided(pend: dict, names: list[str], alpha: float) -> dict:
    order = [pend[nm] for nm in names]
    return {pc.name: c for pc, c in zip(order, decide(order, alpha))}


def _eps(dt: np.dtype) -> float:
    try:
        return float(np.finfo(dt).eps)
    except Exception:  # bfloat16 without finfo support
        return 2.0**-7
