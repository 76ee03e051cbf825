"""Running the implementation under audit: eval calls, streamed training calls, gradients.

The implementation is a callable ``fn(x, training) -> array`` that owns its
randomness.  A ``fn`` that raises, returns something that is not an array,
the wrong shape, or non-finite values does not crash the audit: the run
stops, :class:`Run` records the check concerned (``runs``, ``shape_dtype``,
``finite``) with the reason, and the statistical checks that could not run
become ``"inconclusive"``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from .budget import GRADIENT_CALLS, SUPPORT_ULPS, Plan
from .stream import AuditStream

__all__ = ["Run", "as_array", "batch_sizes", "stream_calls", "gradient_calls"]


def as_array(out) -> tuple[np.ndarray | None, str | None]:
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


class Run:
    """State of the calls made to ``fn`` (what the exact checks look at).

    ``x`` is the input fed (float64 values, representable in the dtype);
    ``eval_ref`` the law's evaluation output (default ``x``), which eval
    calls must return exactly (``exact_eval``) or within
    :data:`~mcdrop.auditing.budget.SUPPORT_ULPS` ulp of the dtype.
    """

    def __init__(self, plan: Plan, x: np.ndarray, eval_ref: np.ndarray | None = None, *, exact_eval: bool = True):
        self.plan = plan
        self.x = x  # float64 reference values
        self.eval_ref = (x if eval_ref is None else np.asarray(eval_ref, dtype=np.float64).reshape(plan.shape))
        self.exact_eval = exact_eval
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

    def fail_call(self, what: str, exc: BaseException) -> None:
        msg = f"{what} raised {type(exc).__name__}: {exc}"
        self.raised = self.raised or msg
        self.fatal = self.fatal or ("runs", msg)

    def checked(self, out, what: str) -> np.ndarray | None:
        arr, err = as_array(out)
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
            self.fail_call(f"eval call ({label})", exc)
            return
        self.eval_calls += 1
        arr = self.checked(out, f"eval call ({label})")
        if arr is not None and self.eval_bad is None:
            y = np.asarray(arr).astype(np.float64)
            ref = self.eval_ref
            with np.errstate(invalid="ignore", over="ignore"):
                if self.exact_eval:
                    diff = ~(y == ref)
                else:
                    tol = SUPPORT_ULPS * np.spacing(np.abs(ref).astype(self.plan.dtype)).astype(np.float64)
                    diff = ~(np.abs(y - ref) <= tol)
            nd = int(np.count_nonzero(diff))
            if nd:
                i = int(np.flatnonzero(diff.ravel())[0])
                idx = np.unravel_index(i, self.plan.shape)
                what = "x" if self.exact_eval else f"the law's eval output (within {SUPPORT_ULPS} ulp)"
                self.eval_bad = (f"eval call ({label}): {nd} of {y.size} outputs differ from {what}, e.g. at "
                                 f"{tuple(int(j) for j in idx)}: {y.ravel()[i]!r} instead of {ref.ravel()[i]!r}")
        self.check_input(f"an eval call ({label})")


def batch_sizes(total: int, bmax: int):
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


def stream_calls(run: Run, st: AuditStream, calls: int, bar, trace: Callable[[int], None]) -> None:
    """Make the training calls, folding each batch while the next one is collected.

    Two batch buffers alternate: while ``fn`` fills one, a worker thread
    folds the other into the accumulators (the Numba kernels and the FFT
    release the GIL), so on a machine with a free core the audit adds little
    to the time of the calls themselves.  At most one fold is in flight, so
    calls are folded in order.
    """
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
        for i, b in enumerate(batch_sizes(calls, st.batch)):
            buf = bufs[i % 2]
            r = 0
            while r < b:
                try:
                    out = fn(x_feed, True)
                except Exception as exc:
                    run.fail_call(f"training call {made + r}", exc)
                    break
                if type(out) is not np.ndarray or out.shape != shape or out.dtype != want:
                    out = run.checked(out, f"training call {made + r}")
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


def gradient_calls(run: Run, law, g: np.ndarray) -> None:
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
