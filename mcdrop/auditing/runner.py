"""``mcdrop.audit``: a battery of statistical checks run against any dropout implementation.

Lay-out of one audit

1. two evaluation-mode calls (``eval_identity``, ``input_unchanged``);
2. ``calls`` training-mode calls, streamed batch by batch into exact keep
   counts, per-element moments, histograms and FFT sums
   (:mod:`mcdrop.auditing.stream`; memory is flat in ``calls``);
3. one more evaluation-mode call (a layer stuck in training mode after
   being trained);
4. for adapters that can differentiate (torch), a few forward/backward
   passes (``gradient``);
5. the checks (:mod:`mcdrop.auditing.battery`), decided as one family.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from ..core.progress import make_bar
from ..laws import unit_layout, variant_law
from ..results import software_environment
from .battery import build_checks
from .budget import (
    EVAL_CALLS_BEFORE,
    SUPPORT_ULPS,
    audit_iv,
    check_names,
    default_calls,
    detectable_effects,
    fft_calls,
)
from .effects import check_effects, with_effects
from .harness import Run, gradient_calls, stream_calls
from .inputs import input_rng, make_input
from .moment_checks import mean_weights
from .report import AuditReport
from .stream import AuditStream

__all__ = ["audit", "environment"]


def audit(fn, p=None, *, keep=None, shape=None, calls=None, variant=None, structure=None,
          alpha=1e-6, tolerance=None, seed=0, dtype="float32", progress=False, name=None, device=None,
          weight=None) -> AuditReport:
    """Audit a dropout implementation with a battery of statistical checks.

    Parameters
    ----------
    fn : callable or framework object
        ``fn(x: numpy.ndarray, training: bool) -> array``; it owns its
        randomness (a fresh mask each training call).  The output may be
        any array NumPy can convert.  Framework objects are adapted
        automatically (:func:`mcdrop.adapters.adapt`): any
        ``torch.nn.Module`` (custom modules too; ``train()``/``eval()`` per
        call, with a gradient check), a torch functional dropout (with
        ``p``), a ``flax.nnx`` module, a Keras 3 layer; anything else gets
        a ``TypeError`` saying what is accepted.
    p : float, optional
        The **drop** probability the implementation claims, in [0, 1].
        Give ``p`` or ``keep``, not both.  Default: the object's own ``p``
        (``p``/``rate`` attribute, or the adapter's), else 0.3.
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
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}, optional
        The law claimed (default: the adapter's, else ``"inverted"``), one
        of :data:`mcdrop.laws.VARIANTS`: inverted ``y = x m / q``; standard
        ``y = x m`` with eval output ``q x`` (Paddle's
        ``downgrade_in_infer``); Gaussian ``y = x N(1, p/q)``;
        AlphaDropout's affine law; DropConnect (see ``weight``).
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
    device : str or torch.device, optional
        torch objects: where the inputs go (default: the module's own
        device).
    weight : array_like, optional
        ``variant="dropconnect"``: the layer's weight ``W`` (out, in)
        (default: the adapter's, e.g. a torch module's ``.weight``).  The
        implementation is a linear layer with DropConnect, ``fn(x,
        training) -> x @ (W * M / q).T``; the audit feeds the diagonal batch
        ``diag(v)`` (shape (in, in)), so output ``(k, i)`` is the one term
        ``v_k W_ik M_ik / q`` and the battery audits one mask draw per
        weight (a torch module's bias is zeroed during the calls; no
        gradient check).

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
    (channel/sample).  ``eval_identity`` compares evaluation outputs with
    the law's: ``x`` exactly, or ``q x`` within 4 ulp for standard
    dropout.  Checks that do not apply are left out (Gaussian
    dropout has no mask, hence no ``support``, ``keep_rate``,
    ``dispersion``, ``structure``; at ``p = 1`` there is no ``mean`` or
    ``variance`` law).  See :mod:`mcdrop.auditing` for the tests.

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
    plan = audit_iv(fn, p, keep, shape, calls, variant, structure, alpha, tolerance, seed, dtype,
                    progress, name, device, weight)
    fn = plan.fn
    t0 = time.perf_counter()
    g_in = input_rng(plan.seed_ss)
    if plan.weight is None:
        x = x_law = make_input(g_in, plan.shape, plan.dtype)
    else:  # DropConnect: the diagonal batch; the law is about the terms v_k W_ik
        v = make_input(g_in, plan.in_shape[:1], plan.dtype)
        x, x_law = np.diag(v), v[:, None] * plan.weight.T
    cot = make_input(g_in, plan.shape, plan.dtype) if plan.has_grad else None
    law = variant_law(plan.variant, plan.p, structure=plan.structure).elementwise(x_law, plan.dtype, SUPPORT_ULPS)
    layout = unit_layout(plan.shape, plan.structure)
    S, G = layout.unit_size, layout.group_size
    n = x_law.size
    n_units = layout.n_units
    names = check_names(plan, law.two_point)
    m = len(names)
    a_check = plan.alpha / m
    # the mean check spends half its share on the pooled test
    a_mean = a_check / 2.0
    # pooled-bias coefficients and the null variance of one call's estimate
    cw, v1 = mean_weights(law, S) if law.random else (None, 0.0)
    calls_req = default_calls(plan, v1, n_units, a_mean) if plan.calls is None else plan.calls
    batch = max(1, min(256, 2**21 // n))
    buf_dtype = np.float32 if plan.dtype == np.float32 else np.float64
    st = AuditStream(law, n, S, G, fft_calls(calls_req, n_units), batch, buf_dtype)
    run = Run(plan, x, law.eval_value(x_law), exact_eval=law.eval_scale == 1.0 and plan.weight is None)

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

    bar = make_bar(total=calls_req, desc="audit", unit="call", enabled=None if plan.progress else False)
    ctx = fn.rng_context() if callable(getattr(fn, "rng_context", None)) else contextlib.nullcontext()
    try:
        with ctx:
            for i in range(EVAL_CALLS_BEFORE):
                if run.fatal is None:
                    run.eval_call(f"before training, #{i}")
            if run.fatal is None:
                stream_calls(run, st, calls_req, bar, trace)
            if run.fatal is None:
                run.eval_call("after training")
            if plan.has_grad and run.fatal is None:
                gradient_calls(run, law, cot)
    finally:
        bar.close()
    if st.calls and (not trace_c or trace_c[-1] != st.calls) and cw is not None:
        trace_c.append(st.calls)
        trace_v.append(float(np.dot(cw, st.moments.mean)))

    checks, plots = build_checks(plan, run, st, law, names, S, G, layout.unit_shape, a_check)
    C = st.calls
    db, dre = detectable_effects(plan, law, C, n_units, v1, a_mean, a_check)
    checks = with_effects(checks, check_effects(plan, law, st, run, names, a_check, a_mean, db, dre, checks))
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
        elapsed_s=time.perf_counter() - t0, environment=environment(fn), plots=plots,
    )


def environment(fn) -> dict:
    """Versions and machine (as for :func:`mcdrop.verify`), plus the adapter's framework."""
    env = software_environment()
    extra = getattr(fn, "environment", None)
    if callable(extra):
        try:
            env.update(extra())
        except Exception:  # the report must not fail on a version lookup
            pass
    return env
