"""The audit's battery: every check, decided as one family, and the report's plot data.

The checks (a :class:`~mcdrop.results.CheckResult` each; those that do not
apply are left out, those that could not run are ``"inconclusive"``):
``runs``, ``eval_identity``, ``input_unchanged``, ``shape_dtype``,
``finite``, ``support``, ``gradient`` (adapters that can differentiate),
``keep_rate``, ``mean``, ``variance``, ``dispersion``,
``element_independence``, ``call_independence`` and ``structure``
(channel/sample).  The exact checks are decided here; the statistical ones
come from :mod:`mcdrop.checks.masks`, :mod:`~mcdrop.auditing.moment_checks`
and :mod:`~mcdrop.auditing.independence`.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import PendingCheck, decide, exact, not_run
from ..checks.masks import check_dispersion, check_keep_rate
from .budget import MAX_HIST_BINS, MAX_REPORT_UNITS, SUPPORT_ULPS
from .harness import Run
from .independence import check_call_independence, check_element_independence, check_structure
from .moment_checks import check_mean, check_variance
from .stream import AuditStream

__all__ = ["build_checks", "exact_checks", "statistical_checks", "support_text", "decided_in_order", "output_eps"]


def build_checks(plan, run: Run, st: AuditStream, law, names, S, G, unit_shape, a_check):
    """Every check of one audit, decided as one family: ``(checks in ``names`` order, plot data)``."""
    pend = exact_checks(plan, run, st, law, names)
    stopped = None
    if run.fatal is not None or st.calls == 0:
        stopped = f"the run stopped ({run.fatal[1] if run.fatal else 'no training calls'})"
    stat, plots = statistical_checks(plan, st, law, [nm for nm in names if nm not in pend], S, G, unit_shape,
                                     a_check, stopped)
    pend.update(stat)
    decided = decided_in_order(pend, names, plan.alpha)
    return [decided[nm] for nm in names], plots


def support_text(plan, law) -> str:
    """The support of the law in words, e.g. ``{0, x/q} = {0, x * 1.42857143}``."""
    if plan.p == 0:
        return "{x} exactly (p = 0)"
    if plan.p == 1:
        return "{0} (p = 1)"
    if law.variant == "alpha":
        return (f"{{a x + b, a q alpha'}} = {{a x + {float(law.kept_value[0] - law.mu[0] / law.q):.6g}, "
                f"{law.drop_value:.6g}}}")
    if law.variant == "standard":
        return "{0, x} (no rescaling in training)"
    if law.variant == "dropconnect":
        return f"{{0, v_k W_ik/q}} = {{0, v_k W_ik * {1 / law.q:.9g}}} (one weight's term per output)"
    return f"{{0, x/q}} = {{0, x * {1 / law.q:.9g}}}"


def exact_checks(plan, run: Run, st: AuditStream, law, names) -> dict[str, PendingCheck]:
    """The exact checks of ``names`` (runs, shape/dtype, eval, input, finite, support, gradient)."""
    C = st.calls
    pend: dict[str, PendingCheck] = {}
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
        ok_txt = (f"training=False returned x exactly ({run.eval_calls} calls)." if run.exact_eval else
                  f"training=False returned the law's eval output ({'q x' if law.variant == 'standard' else 'W x'}"
                  f", within {SUPPORT_ULPS} ulp; {run.eval_calls} calls).")
        pend["eval_identity"] = exact("eval_identity", run.eval_bad is None, run.eval_bad or ok_txt)
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
            sup = support_text(plan, law)
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
    return pend


def statistical_checks(plan, st: AuditStream, law, names, S, G, unit_shape, a_check,
                       stopped: str | None = None) -> tuple[dict[str, PendingCheck], dict]:
    """The statistical checks of ``names`` from the stream, and the report's plot data.

    ``a_check`` is each check's share of the family's ``alpha`` (for the
    tolerance bands and the plotted bounds); ``stopped`` says why the run
    stopped early (every check then is ``"inconclusive"``).
    """
    pend: dict[str, PendingCheck] = {}
    plots: dict = {}
    if stopped is not None:
        for nm in names:
            pend[nm] = not_run(nm, stopped)
        plots.update(per_element=None, keep_count_hist=None, autocorrelation=None, call_correlation=None)
        return pend, plots
    C = st.calls
    eps = output_eps(plan.dtype)
    if "keep_rate" in names:
        kept, trials = int(st.ucount.sum()), st.calls * st.n_units
        unit = "units" if st.S > 1 else "draws"
        pend["keep_rate"] = check_keep_rate(kept, trials, law.q, tolerance=plan.tolerance,
                                            what=f"mask {unit} kept (recovered from the outputs)")
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
            pend["dispersion"] = check_dispersion("dispersion", st.call_hist, st.ucount, st.calls, law.q)
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
    return pend, plots


def decided_in_order(pend: dict, names: list[str], alpha: float) -> dict:
    order = [pend[nm] for nm in names]
    return {pc.name: c for pc, c in zip(order, decide(order, alpha))}


def output_eps(dt: np.dtype) -> float:
    try:
        return float(np.finfo(dt).eps)
    except Exception:  # bfloat16 without finfo support
        return 2.0**-7
