"""The checks of :func:`mcdrop.audit_model`: per site and model-wide, as pending checks of one family.

Per site (a :class:`~mcdrop.auditing.site_stream.SiteStream` each):

* ``eval_identity`` (exact): in evaluation mode the site returns the law's
  evaluation output (``x``; ``q x`` for standard dropout), a functional
  dropout is not called with ``training=True``, SDPA gets
  ``dropout_p = 0``, no random numbers are drawn;
* ``finite`` and ``support`` (exact, on the values the site really
  produced) and the battery of :func:`mcdrop.audit` on its masks:
  ``keep_rate``, ``mean``, ``variance``, ``dispersion``,
  ``element_independence``, ``call_independence``, ``structure``.

Model-wide:

* ``runs``: every forward (and the backward) ran;
* ``sites_found``: at least one dropout site (else the audit has nothing
  to say: inconclusive);
* ``eval_deterministic``: two evaluation forwards are bitwise equal; if
  not, the first site (in execution order) whose input was equal and whose
  output differed is named;
* ``mode_round_trip``: train -> eval -> train restores every rate
  attribute and every site's rate (Megatron-LM#411);
* ``recompute``: a site run again during backward (activation
  checkpointing) draws the forward's mask.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import PendingCheck, exact, not_run
from ..laws import variant_law
from ..stats.normal import z_sum
from ..stats.power import POWER
from .battery import statistical_checks, support_text
from .budget import SUPPORT_ULPS, Plan, check_names, detectable_effects
from .effects import check_effects, with_effects
from .moment_checks import mean_weights
from .site_stream import SiteStream, observed_mask

__all__ = ["SITE_EXACT", "site_check_names", "eval_problem", "site_pending", "eval_deterministic_check",
           "round_trip_check", "recompute_check", "mask_of", "detectable_rate_error", "site_effects"]

#: The exact checks of a site that the battery does not make.
SITE_EXACT = ("eval_identity", "finite", "support")


def site_check_names(plan: Plan, two_point: bool) -> list[str]:
    """A site's checks in report order: the audit battery's, less what a model site cannot have."""
    drop = ("runs", "input_unchanged", "shape_dtype", "gradient")
    return [nm for nm in check_names(plan, two_point) if nm not in drop]


def _describe_change(x: np.ndarray, y: np.ndarray, ref: np.ndarray) -> str:
    nz = x != 0
    zeroed = int(np.count_nonzero((y == 0) & nz))
    n_nz = max(int(np.count_nonzero(nz)), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = y[nz] / x[nz]
    r = r[np.isfinite(r)]
    txt = f"{np.count_nonzero(y != ref):,} of {y.size:,} outputs differ from the eval output; " \
          f"{zeroed / n_nz:.1%} of nonzero inputs zeroed"
    if r.size:
        med = float(np.median(r))
        txt += f", median output/input {med:.4g}"
        if zeroed == 0 and float(np.max(np.abs(r - med))) <= 1e-5 * max(abs(med), 1.0):
            txt += f" (a constant factor {med:.4g}: e.g. standard dropout's q in eval)"
    return txt


def eval_problem(call, variant: str, p: float, to_numpy, dtype) -> str | None:
    """Why one evaluation-mode call of a site is not the law's eval output (None if it is)."""
    if call.kind == "random":
        return f"draws random numbers ({call.op}) in evaluation mode"
    why = []
    if call.kind == "sdpa" and call.p:
        why.append(f"scaled_dot_product_attention called with dropout_p={call.p:g} while the model is in "
                   f"evaluation mode")
    if call.kind == "function" and call.training_arg:
        where = f"module '{call.path or '(root)'}'" if call.path or call.module_training is not None else "the model"
        why.append(f"{call.op}(training=True) called while {where} is in evaluation mode (F.dropout's training "
                   f"argument defaults to True)")
    if call.kind == "module" and any(c.training_arg for c in call.inner):
        why.append(f"calls {call.inner[0].op}(training=True) in evaluation mode")
    if call.x is not None and call.y is not None:
        x, y = to_numpy(call.x).astype(np.float64).ravel(), to_numpy(call.y).astype(np.float64).ravel()
        if x.shape != y.shape:
            why.append(f"returns shape {tuple(call.y.shape)} for an input of shape {tuple(call.x.shape)}")
        else:
            law = variant_law(variant, p).elementwise(x, dtype, SUPPORT_ULPS)
            ref = law.eval_value(x)
            if law.eval_scale == 1.0:
                bad = not np.array_equal(y, ref)
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    tol = SUPPORT_ULPS * np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
                    bad = not bool(np.all(np.abs(y - ref) <= tol))
            if bad:
                why.append(_describe_change(x, y, ref))
    return "; ".join(why) or None


def mask_of(call, variant: str, p: float, to_numpy, dtype):
    """``(keep, shown)`` boolean arrays of one call (``shown``: where the output reveals the mask)."""
    x = to_numpy(call.x).astype(np.float64).ravel()
    y = to_numpy(call.y).astype(np.float64).ravel()
    return observed_mask(variant, p, x, y, dtype)


def site_pending(stream: SiteStream | None, plan: Plan, names, eval_bad: str | None, eval_calls: int,
                 a_check: float, unreliable: str | None = None) -> tuple[dict[str, PendingCheck], dict]:
    """The pending checks of one site (``names``) and its plot data."""
    pend: dict[str, PendingCheck] = {}
    if eval_calls == 0:
        pend["eval_identity"] = exact("eval_identity", True,
                                      "not reached in evaluation mode (the identity by construction).")
    else:
        pend["eval_identity"] = exact(
            "eval_identity", eval_bad is None,
            eval_bad or f"evaluation mode returned the law's eval output ({eval_calls} calls; "
                        + ("q x within 4 ulp)." if plan.variant == "standard" else "x exactly)."))
    stat_names = [nm for nm in names if nm not in pend]
    if stream is None or stream.calls == 0 or unreliable:
        reason = unreliable or ("the site made no training call with an output to read" if stream is None
                                else f"no training call could be read ({stream.skipped} of another shape)")
        for nm in stat_names:
            pend[nm] = not_run(nm, reason)
        return pend, {}
    st, law = stream.st, stream.law
    C = stream.calls
    if stream.nonfinite:
        pend["finite"] = exact("finite", False, f"{stream.nonfinite:,} non-finite outputs, first in training call "
                                                f"{stream.first_nonfinite_call}.", estimate=float(stream.nonfinite),
                               expected=0.0)
    else:
        pend["finite"] = exact("finite", True, f"all {C * stream.n:,} outputs finite.", estimate=0.0, expected=0.0)
    if "support" in names:
        sup = support_text(plan, law)
        detail = (f"{stream.off_support:,} of {C * stream.n:,} outputs off the support {sup} of the input the site "
                  f"received (tolerance {SUPPORT_ULPS} ulp of {plan.dtype_name})")
        ex = stream.first_off
        if ex is not None:
            kv = ex["kept_value"]
            rel = ex["value"] / kv - 1 if kv else float("nan")
            detail += (f"; first: training call {ex['call']}, index {tuple(ex['index'])}: input {ex['input']!r}, "
                       f"output {ex['value']!r} (kept value {kv!r}, relative {rel:+.3g})")
        pend["support"] = exact("support", stream.off_support == 0, detail + ".", estimate=float(stream.off_support),
                                expected=0.0, extra={"first": ex} if ex else None)
    rest = [nm for nm in stat_names if nm not in pend]
    stat, plots = statistical_checks(plan, st, law, rest, stream.S, stream.G, stream.unit_shape, a_check)
    pend.update(stat)
    return pend, plots


def eval_deterministic_check(equal: bool | None, responsible: str | None, why: str, error: str | None) -> PendingCheck:
    """Two evaluation forwards bitwise equal; the site responsible when they are not."""
    if error is not None:
        return exact("eval_deterministic", False, f"the model raised in evaluation mode: {error}")
    if equal:
        return exact("eval_deterministic", True, "two evaluation-mode forwards gave bitwise equal outputs.")
    if responsible is not None:
        return exact("eval_deterministic", False,
                     f"two evaluation-mode forwards differ; responsible site: {responsible} ({why}).",
                     extra={"responsible": responsible})
    return exact("eval_deterministic", False,
                 f"two evaluation-mode forwards differ and no recorded site explains it ({why}).")


def round_trip_check(attr_before: dict, attr_after: dict, rates_before: dict, rates_after: dict) -> PendingCheck:
    """train -> eval -> train restores every rate attribute and every site's rate."""
    attr = {k: (v, attr_after.get(k)) for k, v in attr_before.items() if attr_after.get(k) != v}
    changed = {}
    missing = []
    for site, r in rates_before.items():
        if max(r) == 0:
            continue
        if site not in rates_after:
            missing.append(site)
        elif rates_after[site] != r:
            changed[site] = (sorted(r), sorted(rates_after[site]))
    parts = [f"{s}: rate {a} before evaluation, {b} after train()" for s, (a, b) in changed.items()]
    parts += [f"attribute {k} changed {a:g} -> {b if b is None else format(b, 'g')}" for k, (a, b) in attr.items()]
    parts += [f"{s}: dropped before evaluation, not reached after train()" for s in missing]
    ok = not parts
    detail = ("train -> eval -> train: " + ("; ".join(parts) if parts else
              f"every site applied the same rate before and after evaluation ({len(rates_before)} sites), "
              f"{len(attr_before)} rate attributes unchanged") + ".")
    return exact("mode_round_trip", ok, detail,
                 extra={"sites_changed": {k: list(v) for k, v in changed.items()},
                        "attributes_changed": {k: list(v) for k, v in attr.items()}, "sites_missing": missing})


def recompute_check(results: list, why: str | None) -> PendingCheck:
    """Sites run again during backward drew the forward's masks.

    ``results`` holds one dict per recomputed call: ``site``, ``differ``
    and ``compared`` (mask entries shown in both calls that differ / all of
    them), ``p``, ``inputs_equal``, ``outputs_equal``.  With equal inputs
    the outputs must be bitwise equal; else the masks must agree wherever
    both calls show them.
    """
    if why is not None:
        return exact("recompute", True, f"vacuous: no backward pass ({why}); nothing recomputed.")
    if not results:
        return exact("recompute", True, "no dropout site ran again during backward (no activation "
                                        "checkpointing around dropout).")
    bad = [r for r in results if r["differ"] > 0 or (r["inputs_equal"] and not r["outputs_equal"])]
    sites = sorted({r["site"] for r in results})
    if not bad:
        return exact("recompute", True, f"{len(results)} calls recomputed during backward ({', '.join(sites)}) "
                                        f"drew the forward's masks exactly.")
    txt = "; ".join(f"{r['site']}: recomputed during backward with a different mask ({r['differ']:,} of "
                    f"{r['compared']:,} entries differ, {r['differ'] / max(r['compared'], 1):.1%}; fresh masks "
                    f"differ in 2pq = {2 * r['p'] * (1 - r['p']):.1%})" for r in bad)
    return exact("recompute", False, txt + ".", estimate=float(sum(r["differ"] for r in bad)), expected=0.0,
                 extra={"sites": sorted({r["site"] for r in bad})})


def detectable_rate_error(stream: SiteStream | None, a_check: float) -> float | None:
    """Smallest relative keep-rate error the site's ``keep_rate`` check detects (power 0.99)."""
    if stream is None or stream.st is None or not stream.calls or not (0 < stream.q < 1):
        return None
    draws = stream.calls * stream.n_units * max(stream.observed_fraction, 1e-12)
    return z_sum(a_check, POWER) * math.sqrt(stream.p / (stream.q * draws))


def site_effects(stream: SiteStream, plan: Plan, names, a_check: float, eval_calls: int,
                 checks: list) -> list:
    """The site's decided checks with ``extra["detectable_effect"]``, stated as :func:`mcdrop.audit`
    states them (:func:`~mcdrop.auditing.effects.check_effects`) for this site's calls, units and
    evaluation forwards."""
    law = stream.law
    _, v1 = mean_weights(law, stream.S) if law.random else (None, 0.0)
    db, dre = detectable_effects(plan, law, stream.calls, stream.n_units, v1, a_check / 2.0, a_check)
    effects = check_effects(plan, law, stream.st, None, names, a_check, a_check / 2.0, db, dre, checks,
                            eval_calls=eval_calls, training_calls="training forward")
    return with_effects(checks, effects)
