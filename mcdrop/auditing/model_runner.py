"""``mcdrop.audit_model``: every dropout site of a model, audited where it runs.

Lay-out of one model audit (torch; the model is left as it was found,
see :meth:`mcdrop.adapters.torch_model.TorchModel.preserved`):

1. **discovery**: one training forward finds the sites and the rate each
   applies (a site reached only in training counts);
2. **evaluation**: two evaluation forwards, recorded: bitwise equal
   outputs, every site returning the law's evaluation output, and the
   site responsible when they are not;
3. **training**: ``calls`` training forwards (no grad); every call of every
   site is streamed into the audit battery
   (:class:`~mcdrop.auditing.site_stream.SiteStream`);
4. **mode round trip**: after train -> eval -> train every rate attribute
   and every site's applied rate is what it was before evaluation;
5. **recompute**: one training forward and backward; sites that run again
   during backward (activation checkpointing) must draw the same masks;
6. every check of every site and of the model, decided as one family at
   the family-wise bound ``alpha`` (Holm).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .._validation import check_alpha, check_positive_int, check_seed
from ..adapters import is_probability
from ..adapters.torch_model import TorchModel
from ..checks import decide, exact, not_run
from ..core.progress import make_bar
from ..laws import LAWS
from ..results import software_environment
from .budget import Plan, adapter_seed
from .inputs import np_dtype
from .model_checks import (
    detectable_rate_error,
    eval_deterministic_check,
    eval_problem,
    mask_of,
    recompute_check,
    round_trip_check,
    site_check_names,
    site_effects,
    site_pending,
)
from .model_report import ModelAuditReport, SiteReport
from .site_stream import SiteStream

__all__ = ["audit_model", "DEFAULT_MODEL_CALLS", "MODEL_CHECKS"]

#: Training forwards of a default model audit: every site gets 256 calls (the
#: across-call checks need 64); each site's report states the keep-rate
#: error its draws can detect.
DEFAULT_MODEL_CALLS = 256
#: The model-level checks, in report order.
MODEL_CHECKS = ("runs", "sites_found", "eval_deterministic", "mode_round_trip", "recompute")


@dataclass
class _Claim:
    variant: str
    structure: str | None
    p: float


def _driver(model, inputs, device):
    keras = sys.modules.get("keras")
    is_keras = keras is not None and "keras.layers" in sys.modules and isinstance(model, keras.layers.Layer)
    torch = sys.modules.get("torch")
    if is_keras:
        if keras.backend.backend() != "torch":
            raise TypeError("`model`: audit_model audits Keras models on the torch backend only "
                            f"(KERAS_BACKEND=torch); this one runs on {keras.backend.backend()!r}.")
        return TorchModel(model, inputs, device=device, keras=True)
    if torch is not None and isinstance(model, torch.nn.Module):
        return TorchModel(model, inputs, device=device)
    raise TypeError(f"`model` must be a torch.nn.Module (or a Keras 3 model on the torch backend); got "
                    f"{type(model).__module__}.{type(model).__qualname__}.")


def _iv(model, inputs, p, calls, alpha, seed, progress, device):
    drv = _driver(model, inputs, device)
    torch = drv._torch
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    if not args or not all(isinstance(a, torch.Tensor) or a is None or isinstance(a, (int, float, bool, str))
                           for a in args):
        raise TypeError(f"`inputs` must be a tensor or a tuple of the forward's arguments (tensors or plain "
                        f"values); got {type(inputs).__name__}.")
    if p is not None and not is_probability(p):
        raise ValueError(f"`p` must be None (each site's own rate) or a number in [0, 1]; got {p!r}.")
    calls = DEFAULT_MODEL_CALLS if calls is None else check_positive_int(calls, "calls")
    alpha = check_alpha(alpha)
    ss = check_seed(seed)
    if not isinstance(progress, bool):
        raise TypeError(f"`progress` must be a bool; got {progress!r}.")
    seed_repr = int(seed) if isinstance(seed, (int, np.integer)) else (ss.entropy if seed is None else str(seed))
    return drv, calls, alpha, ss, seed_repr


def audit_model(model, inputs, *, p=None, calls=None, alpha=1e-6, seed=0, progress=False,
                device=None) -> ModelAuditReport:
    """Find every dropout site of a model and audit each where it runs.

    Parameters
    ----------
    model : torch.nn.Module
        Any torch model (or a Keras 3 model on the torch backend).  Sites:
        ``nn.Dropout*``, ``AlphaDropout``, ``FeatureAlphaDropout`` and
        dropout-like custom modules (``DropPath``, ...); functional
        ``F.dropout``, ``dropout1d/2d/3d``, ``alpha_dropout``,
        ``feature_alpha_dropout``, ``torch.dropout``/``native_dropout``;
        ``F.scaled_dot_product_attention`` with ``dropout_p > 0`` (also
        inside ``nn.MultiheadAttention``).
    inputs : tensor or tuple
        The forward's arguments (a tensor alone is one argument).
    p : float, optional
        The drop probability every site claims (default: each site's own
        rate in the first training forward, before any evaluation).
    calls : int, optional
        Training forwards of the Monte Carlo loop (default
        :data:`DEFAULT_MODEL_CALLS`).
    alpha : float, default 1e-6
        Family-wise false-alarm bound over every check of every site and
        the model-level checks together (Holm).
    seed : int, SeedSequence or None, default 0
        Seeds torch's generators during the audit (forked: the caller's
        state is restored) and mcdrop's own draws.
    progress : bool, default False
        Progress bar on stderr (only when stderr is a terminal).
    device : str or torch.device, optional
        Where the inputs go (default: the model's own device).

    Returns
    -------
    ModelAuditReport
        ``.passed``, ``.verdict``, ``.sites`` (each with ``.name``,
        ``.kind``, ``.p``, ``.passed``, ``.checks``), ``.checks``
        (model-level), ``to_dict()``, ``to_json()``, ``to_pdf()``.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (named in the message), or ``inputs`` the model
        rejects (its error is quoted).  A model with no dropout site gets a
        report (verdict ``"inconclusive"``), not an error.

    Notes
    -----
    Per site the checks are the battery of :func:`mcdrop.audit`, fed from
    the calls the site makes inside the model (see
    :mod:`mcdrop.auditing.site_stream`), plus ``eval_identity``; the
    model-level ones are ``runs``, ``sites_found``,
    ``eval_deterministic`` (naming the site responsible),
    ``mode_round_trip`` and ``recompute`` (see
    :mod:`mcdrop.auditing.model_checks`).  The model's modes, rate
    attributes, buffers, generators and gradients are restored afterwards.

    Examples
    --------
    >>> import torch, mcdrop
    >>> net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2))
    >>> rep = mcdrop.audit_model(net, torch.randn(8, 16), calls=64)
    >>> rep.verdict, [s.name for s in rep.sites]
    ('pass', ['2#0'])
    """
    drv, C, alpha, ss, seed_repr = _iv(model, inputs, p, calls, alpha, seed, progress, device)
    t0 = time.perf_counter()
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcdrop-model") as pool:
        state = _State(drv, p, C, ss, pool)
        attrs0, attrs1, why = _run(drv, state, C, errors, progress, seed)
        for st in state.streams.values():
            st.finish()
    return _report(drv, state, attrs0, attrs1, why, errors, C, alpha, seed_repr, p, t0)


def _run(drv, state, C, errors, progress, seed):
    """The phases of one model audit (see the module docstring); the model is restored after."""
    with drv.preserved(adapter_seed(seed)):
        attrs0 = drv.rate_attributes()
        try:
            rec, _ = drv.forwards(True, state.discover, capture=False)
        except Exception as exc:
            raise ValueError(f"`inputs`: the model raised {type(exc).__name__}: {exc} on them "
                             f"(inputs {', '.join(drv.input_description())}).") from exc
        state.merge(rec)
        try:
            rec, outs = drv.forwards(False, state.record_eval, count=2, keep_outputs=True,
                                     after_each=state.next_eval_pass)
            state.merge(rec)
            state.eval_equal = drv.outputs_equal(outs[0], outs[1])
        except Exception as exc:
            state.eval_error = f"{type(exc).__name__}: {exc}"
            errors.append(f"evaluation forward raised {state.eval_error}")
        bar = make_bar(total=C, desc="audit_model", unit="forward", enabled=None if progress else False)
        try:
            rec, _ = drv.forwards(True, state.fold, count=C, focus=state.focus(),
                                  after_each=lambda i: bar.update(1), replay_all_sdpa=state.has_sdpa())
            state.merge(rec)
        except Exception as exc:
            errors.append(f"training forward {state.loop_calls} raised {type(exc).__name__}: {exc}")
        finally:
            bar.close()
        attrs1 = drv.rate_attributes()
        try:
            rec, why = drv.forward_backward(state.record_recompute, replay_all_sdpa=state.has_sdpa())
            state.merge(rec)
        except Exception as exc:
            why = f"the forward/backward pass raised {type(exc).__name__}: {exc}"
            errors.append(why)
    return attrs0, attrs1, why


class _State:
    """What the recorder's sinks collect, phase by phase."""

    def __init__(self, drv, p, calls, ss, pool=None):
        self.drv, self.p, self.calls, self.ss, self.pool = drv, p, calls, ss, pool
        self.sites: dict = {}
        self.before: dict = {}
        self.after: dict = {}
        self.eval_calls = ([], [])
        self.eval_pass = 0
        self.eval_equal = None
        self.eval_error = None
        self.streams: dict = {}
        self.claims: dict = {}
        self.unreliable: dict = {}
        self.loop_calls = 0
        self.fwd: list = []
        self.rcp: list = []

    def merge(self, rec) -> None:
        for name, s in rec.sites.items():
            old = self.sites.get(name)
            if old is None:
                self.sites[name] = s
            else:
                old.phases |= s.phases
                old.active_ever = old.active_ever or s.active_ever
                old.p = old.p if old.p is not None else s.p

    def focus(self):
        return {s.path for s in self.sites.values()}

    def has_sdpa(self) -> bool:
        return any(s.kind == "sdpa" and s.active_ever for s in self.sites.values())

    # -- sinks -------------------------------------------------------------

    def discover(self, c) -> None:
        if c.kind != "random":
            self.before.setdefault(c.site, set()).add(round(c.effective_p, 12))

    def record_eval(self, c) -> None:
        self.eval_calls[self.eval_pass].append(c)

    def next_eval_pass(self, i: int) -> None:
        self.eval_pass = min(i + 1, 1)

    def claim(self, c) -> _Claim:
        cl = self.claims.get(c.site)
        if cl is None:
            s = self.sites.get(c.site)
            before = self.before.get(c.site)
            if self.p is not None:
                p = float(self.p)
            elif before:
                p = max(before)
            elif s is not None and s.p is not None:
                p = s.p
            else:
                p = c.effective_p
            variant = (s.variant if s is not None else None) or c.variant or "inverted"
            structure = (s.structure if s is not None else None) or c.structure
            cl = self.claims[c.site] = _Claim(variant, structure, p)
        return cl

    def fold(self, c) -> None:
        if c.kind == "random":
            return
        self.after.setdefault(c.site, set()).add(round(c.effective_p, 12))
        if c.x is None or c.y is None:
            return
        if c.kind == "sdpa" and not (c.extra.get("rng_ok") and c.extra.get("consistent")):
            self.unreliable.setdefault(c.site, "the replay of SDPA's dropout did not reproduce the call "
                                               f"(rng_ok={c.extra.get('rng_ok')}, "
                                               f"consistent={c.extra.get('consistent')}): its mask is unknown")
        st = self.streams.get(c.site)
        if st is None:
            cl = self.claim(c)
            try:
                dt = np_dtype(self.drv.dtype_name(c.x))
            except ValueError as exc:
                self.unreliable.setdefault(c.site, str(exc))
                return
            if cl.variant not in ("inverted", "standard", "alpha", "gaussian"):
                cl.variant = "inverted"  # a site is no DropConnect layer
            if cl.variant in ("alpha", "gaussian") and cl.p >= 1.0:
                self.unreliable.setdefault(c.site, f"variant {cl.variant!r} is undefined at p = 1")
                return
            st = self.streams[c.site] = SiteStream(cl.variant, cl.p, cl.structure, tuple(c.x.shape), dt,
                                                   self.ss.spawn(1)[0], self.calls, pool=self.pool)
        st.add(self.drv.to_numpy(c.x), self.drv.to_numpy(c.y))

    def record_recompute(self, c) -> None:
        (self.rcp if c.phase == "recompute" else self.fwd).append(c)


def _eval_findings(drv, state) -> tuple[dict, dict, str | None, str]:
    """Per-site eval problems and call counts; the site responsible for nondeterminism and why."""
    problems, counts = {}, {}
    p0, p1 = state.eval_calls
    for c in p0 + p1:
        s = state.sites.get(c.site)
        if s is None or not (s.is_dropout or s.kind == "random"):
            continue
        counts[c.site] = counts.get(c.site, 0) + 1
        if c.site in problems:
            continue
        cl = state.claim(c) if c.kind != "random" else None
        dt = np.float32
        if c.x is not None:
            try:
                dt = np_dtype(drv.dtype_name(c.x))
            except ValueError:
                pass
        prob = eval_problem(c, cl.variant if cl else "inverted", cl.p if cl else 0.0, drv.to_numpy, dt)
        if prob:
            problems[c.site] = prob
    responsible, why = None, ""
    if state.eval_equal is False:
        second = {c.site: c for c in p1}
        for c in p0:
            d = second.get(c.site)
            if d is None or c.kind == "random" or c.y is None or d.y is None:
                continue
            same_in = c.x is not None and d.x is not None and drv.outputs_equal(c.x, d.x)
            if same_in and not drv.outputs_equal(c.y, d.y):
                responsible, why = c.site, "the first site, in execution order, whose input was equal in both " \
                                           "forwards and whose output differed"
                break
        if responsible is None:
            rnd = [c.site for c in p0 if c.kind == "random"]
            if rnd:
                responsible, why = rnd[0], "random numbers drawn in evaluation mode outside any dropout site"
            else:
                why = "the difference starts outside every recorded site"
    return problems, counts, responsible, why


def _recompute_results(drv, state) -> list:
    out = []
    for c in state.rcp:
        s = state.sites.get(c.site)
        if s is None or not s.is_dropout or c.x is None or c.y is None:
            continue
        same = [f for f in state.fwd if f.site == c.site and f.x is not None and f.y is not None
                and tuple(f.x.shape) == tuple(c.x.shape)]
        if not same:
            continue
        match = next((f for f in same if drv.outputs_equal(f.x, c.x)), same[0])
        cl = state.claim(match)
        dt = np_dtype(drv.dtype_name(c.x)) if drv.dtype_name(c.x) != "bfloat16" else np.float32
        inputs_equal = drv.outputs_equal(match.x, c.x)
        outputs_equal = drv.outputs_equal(match.y, c.y)
        k1, s1 = mask_of(match, cl.variant, cl.p, drv.to_numpy, dt)
        k2, s2 = mask_of(c, cl.variant, cl.p, drv.to_numpy, dt)
        both = s1 & s2
        out.append({"site": c.site, "differ": int(np.count_nonzero((k1 != k2) & both)),
                    "compared": int(np.count_nonzero(both)), "p": cl.p, "inputs_equal": inputs_equal,
                    "outputs_equal": outputs_equal})
    return out


def _report(drv, state, attrs0, attrs1, why, errors, C, alpha, seed_repr, p, t0) -> ModelAuditReport:
    problems, eval_counts, responsible, resp_why = _eval_findings(drv, state)
    order = [n for n, s in state.sites.items() if s.is_dropout or s.kind == "random"]
    # the family: every site's checks and the model's
    site_plans = {}
    for name in order:
        s = state.sites[name]
        st = state.streams.get(name)
        if s.kind == "random":
            site_plans[name] = (None, ["eval_identity"], st)
            continue
        cl = state.claims.get(name) or _Claim(s.variant or "inverted", s.structure, float(p if p is not None else
                                                                                        (s.p or 0.0)))
        structure = st.structure if st is not None else (cl.structure or "element")
        dt = st.dtype if st is not None else np.dtype(np.float32)
        shape = getattr(st, "ref_shape", st.shape) if st is not None else (1,)
        plan = Plan(None, name, cl.p, 1.0 - cl.p, cl.variant, structure, shape, dt, str(dt), C, alpha, None,
                    state.ss, seed_repr, False, False)
        two = LAWS[cl.variant].two_point
        site_plans[name] = (plan, site_check_names(plan, two), st)
    m = len(MODEL_CHECKS) + sum(len(v[1]) for v in site_plans.values())
    a_check = alpha / m
    pend_sites = {}
    for name, (plan, names, st) in site_plans.items():
        if plan is None:
            prob = problems.get(name)
            note = "random numbers drawn outside any recognised dropout site (a hand-written dropout?)"
            pend_sites[name] = ({"eval_identity": exact("eval_identity", prob is None,
                                                        prob or "no random numbers drawn in evaluation mode; "
                                                                "not audited in training: " + note)}, {})
            continue
        pend_sites[name] = site_pending(st, plan, names, problems.get(name), eval_counts.get(name, 0), a_check,
                                        state.unreliable.get(name))
    model_pend = {
        "runs": exact("runs", not errors, "; ".join(errors) if errors else
                      f"the model ran every forward (1 discovery, 2 evaluation, {C:,} training) and the "
                      f"forward/backward pass."),
        "sites_found": (exact("sites_found", True, _sites_text(state, order)) if any(
            state.sites[n].kind != "random" for n in order) else not_run(
            "sites_found", "no dropout site found: nothing to audit (a model without dropout, or dropout "
                           "drawn by hand outside modules" + (f"; {len(order)} random draws seen" if order else "")
                           + ")")),
        "eval_deterministic": eval_deterministic_check(state.eval_equal, responsible, resp_why, state.eval_error),
        "mode_round_trip": round_trip_check(attrs0, attrs1, state.before, state.after),
        "recompute": recompute_check(_recompute_results(drv, state), why),
    }
    flat = [model_pend[k] for k in MODEL_CHECKS]
    for name, (plan, names, st) in site_plans.items():
        flat += [pend_sites[name][0][nm] for nm in names]
    done = decide(flat, alpha)
    model_checks, i = tuple(done[:len(MODEL_CHECKS)]), len(MODEL_CHECKS)
    sites = []
    for name, (plan, names, st) in site_plans.items():
        s = state.sites[name]
        checks = tuple(done[i:i + len(names)])
        i += len(names)
        if plan is not None and st is not None and st.calls:
            checks = tuple(site_effects(st, plan, names, a_check, eval_counts.get(name, 0), list(checks)))
        sites.append(SiteReport(
            name=name, kind=s.kind, op=s.op, path=s.path, p=None if plan is None else plan.p,
            variant=None if plan is None else plan.variant, structure=None if plan is None else plan.structure,
            structure_source=None if st is None else st.structure_source,
            shape=None if st is None else st.shape, dtype=None if st is None else st.dtype.name,
            calls=0 if st is None else st.calls,
            observed_fraction=None if st is None else st.observed_fraction,
            detectable_rate_error=detectable_rate_error(st, a_check), evidence=tuple(s.evidence), checks=checks,
            note=_site_note(s, st), plots=pend_sites[name][1]))
    env = software_environment()
    env.update(drv.environment())
    return ModelAuditReport(target=drv.name, framework=env.get("framework", "torch"),
                            inputs=tuple(drv.input_description()), p=p, calls=C, seed=seed_repr, alpha=alpha,
                            sites=tuple(sites), checks=model_checks, elapsed_s=time.perf_counter() - t0,
                            environment=env)


def _sites_text(state, order) -> str:
    kinds: dict = {}
    for n in order:
        k = state.sites[n].kind
        kinds[k] = kinds.get(k, 0) + 1
    return f"{len(order)} sites found: " + ", ".join(f"{v} {k}" for k, v in kinds.items()) + "."


def _site_note(s, st) -> str:
    if st is None:
        return ""
    parts = [f"structure {st.structure} ({st.structure_source})"]
    if st.observed_fraction < 1.0:
        parts.append(f"{st.observed_fraction:.1%} of mask entries shown by the outputs (zeros in the input hide "
                     f"the rest; drawn afresh)")
    if st.skipped:
        parts.append(f"{st.skipped} calls of another shape skipped")
    return "; ".join(parts)
