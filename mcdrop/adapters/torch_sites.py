"""Dropout sites of a torch model: where dropout happens, and what each call received and returned.

:class:`SiteRecorder` watches a model while it runs (it decides nothing:
:mod:`mcdrop.auditing` judges what it records):

* **module hooks** (a forward pre-hook and an ``always_call`` forward hook
  on every module) keep a stack of the modules running, so a functional
  call is attributed to its module path, and capture the input and output
  of *dropout modules*: ``torch.nn``'s ``Dropout``, ``Dropout1d/2d/3d``,
  ``AlphaDropout``, ``FeatureAlphaDropout``, and dropout-like custom
  modules (:func:`classify_module`);
* a **TorchFunctionMode** sees every torch call made from Python:
  ``F.dropout``, ``dropout1d/2d/3d``, ``alpha_dropout``,
  ``feature_alpha_dropout``, ``torch.dropout``/``native_dropout`` (and
  their in-place forms) become *functional sites*,
  ``F.scaled_dot_product_attention`` with ``dropout_p > 0`` an *SDPA site*
  (its mask recovered by :func:`mcdrop.adapters.sdpa.replay`), and random
  draws (``torch.rand``, ``Tensor.bernoulli_``, ...) evidence for a custom
  module or a ``random`` site of their own.  The mode does not see calls
  nested in an intercepted call, so during ``F.multi_head_attention_forward``
  (``nn.MultiheadAttention``) its inner ``dropout`` and SDPA are
  intercepted by replacing them in ``torch.nn.functional`` for the call.
  The autograd engine drops the mode during backward: the recorder pushes
  it again from the module pre-hooks that fire during checkpoint recompute.

Names: the module path and a call index per pass (``blocks.0.mlp.drop#0``;
functional sites ``blocks.0.attn:scaled_dot_product_attention#0``; the
root module is ``(root)``), so a site has the same name in training,
evaluation and recompute.  Every call of a site is handed, as a
:class:`SiteCall`, to the ``sink`` given to the recorder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ._base import KEEP_ATTRS, RATE_ATTRS, find_rate
from .sdpa import attention, call_with_identity, replay, rng_state
from .torch import import_torch, module_law

__all__ = ["ROOT", "Site", "SiteCall", "SiteRecorder", "classify_module", "function_specs", "in_backward",
           "keras_modules"]

ROOT = "(root)"
#: Rate attributes specific enough to make a leaf module dropout-like on their own.
_SPECIFIC = tuple(a for a in RATE_ATTRS if a not in ("p", "rate")) + KEEP_ATTRS
_RANDOM_ATEN = ("rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "bernoulli", "normal",
                "multinomial", "randperm", "poisson")
_RANDOM_METHODS = ("bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_", "geometric_",
                   "cauchy_", "log_normal_")


@dataclass(frozen=True)
class _Spec:
    kind: str                       # "dropout" | "sdpa" | "mha" | "random"
    op: str
    variant: str | None = None
    structure: str | None = None
    p_pos: int | None = None
    p_kw: str | None = None
    p_default: float | None = None
    t_pos: int | None = None
    t_kw: str | None = None
    t_default: bool | None = None
    returns_tuple: bool = False
    inplace: bool = False


_SPECS: dict | None = None


def function_specs() -> dict:
    """torch function -> how to read its drop probability, training flag and law (built once)."""
    global _SPECS
    if _SPECS is not None:
        return _SPECS
    torch = import_torch()
    F = torch.nn.functional
    s: dict[Any, _Spec] = {}
    for fn, variant, structure, t_default in [
        (F.dropout, "inverted", "element", True), (F.dropout1d, "inverted", "channel", True),
        (F.dropout2d, "inverted", "channel", True), (F.dropout3d, "inverted", "channel", True),
        (F.alpha_dropout, "alpha", "element", False), (F.feature_alpha_dropout, "alpha", "channel", False),
    ]:
        s[fn] = _Spec("dropout", fn.__name__, variant, structure, 1, "p", 0.5, 2, "training", t_default)
    for name, variant, structure in [("dropout", "inverted", "element"), ("feature_dropout", "inverted", "channel"),
                                     ("alpha_dropout", "alpha", "element"),
                                     ("feature_alpha_dropout", "alpha", "channel")]:
        s[getattr(torch, name)] = _Spec("dropout", f"torch.{name}", variant, structure, 1, "p", None, 2, "train")
        if hasattr(torch, name + "_"):
            s[getattr(torch, name + "_")] = _Spec("dropout", f"torch.{name}_", variant, structure, 1, "p", None,
                                                  2, "train", inplace=True)
    s[torch.native_dropout] = _Spec("dropout", "torch.native_dropout", "inverted", "element", 1, "p", None, 2,
                                    "train", returns_tuple=True)
    s[F.scaled_dot_product_attention] = _Spec("sdpa", "scaled_dot_product_attention", "inverted", "element",
                                              4, "dropout_p", 0.0)
    s[F.multi_head_attention_forward] = _Spec("mha", "multi_head_attention_forward", "inverted", "element",
                                              10, "dropout_p", None, 13, "training", True, returns_tuple=True)
    for name in _RANDOM_ATEN:
        if hasattr(torch, name):
            s.setdefault(getattr(torch, name), _Spec("random", name))
    for name in _RANDOM_METHODS:
        if hasattr(torch.Tensor, name):
            s.setdefault(getattr(torch.Tensor, name), _Spec("random", name))
    _SPECS = s
    return s


_tls = threading.local()


def in_backward() -> bool:
    """True while the autograd engine runs a backward pass (where checkpoint recompute happens)."""
    torch = import_torch()
    try:
        return torch._C._current_graph_task_id() != -1
    except AttributeError:  # pragma: no cover - private API gone: the flag set by SiteRecorder.backward
        return getattr(_tls, "backward_flag", False)


def keras_modules(model) -> list:
    """``(path, layer)`` of a Keras 3 model on the torch backend (its layers are torch modules)."""
    out = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        out.append(("" if layer is model else (getattr(layer, "path", None) or layer.name), layer))
    return out


# ---------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------


@dataclass
class Site:
    """A dropout site (or a random draw outside any site) found in a model.

    ``kind`` is ``"module"``, ``"function"``, ``"sdpa"`` or ``"random"``;
    ``p`` the rate of its first active call; ``phases`` where it ran
    (``"train"``, ``"eval"``, ``"recompute"``).
    """

    name: str
    path: str
    kind: str
    op: str
    variant: str | None
    structure: str | None
    p: float | None
    evidence: list = field(default_factory=list)
    phases: set = field(default_factory=set)
    active_ever: bool = False
    calls: int = 0

    @property
    def is_dropout(self) -> bool:
        """A site to audit (SDPA only once it dropped; random draws are evidence, not sites)."""
        if self.kind in ("module", "function"):
            return True
        return self.kind == "sdpa" and self.active_ever


@dataclass
class SiteCall:
    """One call of a site: what it received (``x``) and returned (``y``), detached tensors.

    For SDPA, ``x`` is the attention probabilities and ``y`` the same after
    dropout (recovered by replay).  ``p`` is the rate the call asked for
    (the module's attribute, or the argument); ``training_arg`` the
    training flag it ran with (None where the op has none).
    """

    site: str
    path: str
    kind: str
    op: str
    phase: str
    model_training: bool
    module_training: bool | None
    training_arg: bool | None
    p: float | None
    variant: str | None = None
    structure: str | None = None
    x: Any = None
    y: Any = None
    random_ops: list = field(default_factory=list)
    inner: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def effective_p(self) -> float:
        """The rate really applied: ``p`` when the call ran in training mode, else 0."""
        if self.kind in ("sdpa", "random"):
            return float(self.p or 0.0)
        if self.training_arg is False:
            return 0.0
        ps = [c.p for c in self.inner if c.training_arg and c.p is not None]
        return float(ps[0]) if ps else float(self.p or 0.0)


@dataclass
class _Pass:
    phase: str
    model_training: bool
    counters: dict = field(default_factory=dict)


@dataclass
class _Frame:
    path: str
    module: Any
    call: SiteCall | None
    kind: str | None
    reason: str | None
    pushed_mode: bool = False


def classify_module(module) -> tuple[str | None, str | None]:
    """``(kind, reason)`` of a module before it runs.

    ``"known"``: a ``torch.nn`` dropout.  ``"candidate"``: a leaf module
    (no submodules but parameter holders) with a dropout-specific rate
    attribute (``drop_prob``, ``keep_prob``, ...), or a ``p``/``rate``
    attribute and "drop" in its class name (``DropPath``), or "drop" in its
    name alone.  ``"weak"``: a leaf with a generic ``p``/``rate``: a site
    only if it draws random numbers.  A candidate is confirmed when it
    returns one tensor of its input's shape.  ``(None, None)`` otherwise.
    """
    torch = import_torch()
    if isinstance(module, torch.nn.modules.dropout._DropoutNd):
        return "known", f"torch.nn.{type(module).__name__}"
    holders = (torch.nn.ParameterDict, torch.nn.ParameterList)
    if any(not isinstance(c, holders) for c in module.children()):
        return None, None
    r, attr = find_rate(module)
    named = "drop" in type(module).__name__.lower()
    if r is None:
        return ("candidate", "class name") if named else (None, None)
    if attr in _SPECIFIC or named:
        return "candidate", f"rate attribute {attr!r}" + (", class name" if named else "")
    return "weak", f"rate attribute {attr!r}"


def _training_flag(module, kwargs) -> bool:
    t = (kwargs or {}).get("training")
    return t if isinstance(t, bool) else bool(module.training)


def _arg(args, kwargs, pos, kw, default):
    if kw is not None and kw in kwargs:
        return kwargs[kw]
    if pos is not None and pos < len(args):
        return args[pos]
    return default


# ---------------------------------------------------------------------------
# the recorder
# ---------------------------------------------------------------------------


class SiteRecorder:
    """Context manager recording the dropout sites of ``model`` and every call they make.

    Parameters
    ----------
    model : torch.nn.Module
    sink : callable, optional
        ``sink(call: SiteCall)`` for every committed site call.
    capture : bool, default True
        Hand each call's tensors over (``x``, ``y``; in-place dropouts'
        inputs cloned first, SDPA replayed).  False: names, rates and flags
        only (cheap discovery).
    modules : list of (path, module), optional
        Modules to hook (default ``model.named_modules()``; Keras:
        :func:`keras_modules`).
    focus : iterable of str, optional
        Hook only these module paths and the root (the paths of the sites
        found by a discovery run): the hooks' cost becomes O(sites).
    replay_all_sdpa : bool, default False
        Replay SDPA calls with ``dropout_p = 0`` too (a site whose rate was
        zeroed still shows what it received).

    Attributes
    ----------
    sites : dict
        Site name -> :class:`Site`, in order of discovery.
    """

    def __init__(self, model, *, sink: Callable | None = None, capture: bool = True, modules=None, focus=None,
                 replay_all_sdpa: bool = False):
        torch = import_torch()
        self._torch = torch
        self.model = model
        self.sink = sink
        self.capture = capture
        self.replay_all_sdpa = replay_all_sdpa
        self.sites: dict[str, Site] = {}
        mods = list(modules) if modules is not None else list(model.named_modules())
        if focus is not None:
            keep = {("" if f == ROOT else f) for f in focus}
            mods = [(n, m) for n, m in mods if n in keep or m is model]
        self._modules = mods
        self._static = {id(m): classify_module(m) for _, m in mods}
        self._handles: list = []
        self._mode = None
        self._open: _Pass | None = None
        self._loose: _Pass | None = None
        self._recompute: dict = {}
        self._fn_stack: list[SiteCall] = []
        self._confirmed: set = set()
        self._replaying = False

    # -- installation ------------------------------------------------------

    def __enter__(self):
        from torch.overrides import TorchFunctionMode

        rec = self

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                try:
                    spec = rec._specs.get(func)
                except TypeError:  # unhashable callable
                    spec = None
                if spec is None or rec._replaying:
                    return func(*args, **kwargs)
                return rec._on_function(spec, func, args, kwargs)

        self._specs = function_specs()
        for path, m in self._modules:
            self._handles.append(m.register_forward_pre_hook(self._make_pre(path), with_kwargs=True))
            self._handles.append(m.register_forward_hook(self._make_post(path), with_kwargs=True, always_call=True))
        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles.clear()
        _tls.stack = []
        return False

    def backward(self, loss) -> None:
        """``loss.backward()`` with the fallback "in backward" flag set."""
        _tls.backward_flag = True
        try:
            loss.backward()
        finally:
            _tls.backward_flag = False

    # -- passes and names --------------------------------------------------

    @property
    def _stack(self) -> list:
        st = getattr(_tls, "stack", None)
        if st is None:
            st = _tls.stack = []
        return st

    def _pass(self) -> _Pass:
        if in_backward():
            try:
                key = self._torch._C._current_graph_task_id()
            except AttributeError:  # pragma: no cover
                key = "backward"
            ps = self._recompute.get(key)
            if ps is None:
                ps = self._recompute[key] = _Pass("recompute", bool(self.model.training))
            return ps
        if self._open is not None:
            return self._open
        if self._loose is None:
            self._loose = _Pass("forward", bool(getattr(self.model, "training", True)))
        return self._loose

    @staticmethod
    def _name(ps: _Pass, path: str, op: str | None) -> str:
        k = ps.counters.get((path, op), 0)
        ps.counters[(path, op)] = k + 1
        shown = path or ROOT
        return f"{shown}#{k}" if op is None else f"{shown}:{op}#{k}"

    def _make_pre(self, path):
        def pre(module, args, kwargs):
            self._pre(path, module, args, kwargs)
        return pre

    def _make_post(self, path):
        def post(module, args, kwargs, output):
            self._post(module, output)
        return post

    def _pre(self, path, module, args, kwargs):
        from torch.overrides import _get_current_function_mode_stack

        stack = self._stack
        pushed = False
        bw = in_backward()
        if bw and self._mode not in _get_current_function_mode_stack():
            self._mode.__enter__()  # the engine dropped the mode: push it again for this recompute
            pushed = True
        if not stack and not bw and module is self.model:
            self._open = _Pass("forward", _training_flag(module, kwargs))
        kind, reason = self._static.get(id(module), (None, None))
        call = None
        if kind is not None:
            ps = self._pass()
            x = next((a for a in list(args) + list((kwargs or {}).values())
                      if isinstance(a, self._torch.Tensor)), None)
            rate, _ = find_rate(module)
            variant, structure, _ = module_law(module)
            call = SiteCall("", path, "module", type(module).__name__, ps.phase, ps.model_training,
                            bool(module.training), _training_flag(module, kwargs), rate, variant, structure)
            if x is not None and self.capture:
                inplace = kind == "known" and bool(getattr(module, "inplace", False))
                call.x = x.detach().clone() if (inplace or kind != "known") else x.detach()
            call.extra["shape"] = tuple(x.shape) if x is not None else None
        stack.append(_Frame(path, module, call, kind, reason, pushed))

    def _post(self, module, output):
        stack = self._stack
        while stack and stack[-1].module is not module:  # unwinding after an exception
            stack.pop()
        if not stack:
            return
        fr = stack.pop()
        if fr.call is not None:
            self._finish_module(fr, output)
        if fr.pushed_mode:
            self._mode.__exit__(None, None, None)
        if not stack and module is self.model and not in_backward():
            self._open = None

    def _finish_module(self, fr: _Frame, output):
        call = fr.call
        ps = self._pass()
        shape_ok = isinstance(output, self._torch.Tensor) and call.extra.get("shape") == tuple(output.shape)
        drew = bool(call.random_ops) or any(c.kind == "function" for c in call.inner)
        confirmed = fr.kind == "known" or (shape_ok and (fr.kind == "candidate" or drew or fr.path in self._confirmed))
        if not confirmed:  # not a site: its inner calls and draws are sites of their own
            for c in call.inner:
                self._commit(c, ps)
            for op in call.random_ops:
                self._commit_random(op, fr.path, ps)
            return
        self._confirmed.add(fr.path)
        call.site = self._name(ps, fr.path, None)
        if self.capture and isinstance(output, self._torch.Tensor):
            call.y = output.detach()
        ev = [fr.reason] + (["shape-preserving"] if shape_ok else [])
        if call.random_ops:
            ev.append("draws random numbers (" + ", ".join(sorted(set(call.random_ops))) + ")")
        if call.inner:
            ev.append("calls " + ", ".join(sorted({c.op for c in call.inner})))
            if call.variant is None:
                call.variant, call.structure = call.inner[0].variant, call.structure or call.inner[0].structure
        self._register(call, ev)

    # -- functional calls --------------------------------------------------

    def _on_function(self, spec: _Spec, func, args, kwargs):
        torch = self._torch
        if spec.kind == "random":
            out = func(*args, **kwargs)
            self._note_random(spec.op)
            return out
        stack = self._stack
        fr = stack[-1] if stack else None
        ps = self._pass()
        p = _arg(args, kwargs, spec.p_pos, spec.p_kw, spec.p_default)
        t = _arg(args, kwargs, spec.t_pos, spec.t_kw, spec.t_default) if spec.t_pos is not None else None
        x = args[0] if args else kwargs.get("input", kwargs.get("query"))
        call = SiteCall("", fr.path if fr is not None else "", "function" if spec.kind == "dropout" else spec.kind,
                        spec.op, ps.phase, ps.model_training, bool(fr.module.training) if fr is not None else None,
                        None if t is None else bool(t), None if p is None else float(p), spec.variant,
                        spec.structure)
        inside_known = fr is not None and fr.kind == "known"
        inplace = spec.inplace or (spec.kind == "dropout" and bool(_arg(args, kwargs, 3, "inplace", False)))
        if spec.kind == "dropout" and self.capture and not inside_known and isinstance(x, torch.Tensor):
            call.x = x.detach().clone() if inplace else x.detach()
        want = spec.kind == "sdpa" and self.capture and (call.p or self.replay_all_sdpa) and isinstance(x, torch.Tensor)
        fused = want and x.device.type == "cpu"
        rng0 = rng_state(x.device) if want and not fused else None
        dropped = None
        self._fn_stack.append(call)
        try:
            if spec.kind == "mha":
                out = self._mha(func, args, kwargs)
            elif fused:  # one call gives the model's output and the dropped attention
                out, dropped = call_with_identity(func, args, kwargs)
            else:
                out = func(*args, **kwargs)
        except BaseException as exc:
            # checkpoint's early stop raises inside the last recomputed op: the call happened; keep it
            call.extra["interrupted"] = type(exc).__name__
            self._fn_stack.pop()
            self._attach(call, fr, ps)
            raise
        self._fn_stack.pop()
        y = out[0] if spec.returns_tuple else out
        if isinstance(y, torch.Tensor):
            call.extra["shape"] = tuple(y.shape)
        if spec.kind == "dropout" and self.capture and not inside_known and isinstance(y, torch.Tensor):
            call.y = y.detach()
        elif dropped is not None:
            self._replaying = True
            try:
                call.x, call.y = attention(func, args, kwargs), dropped
            finally:
                self._replaying = False
            call.extra.update(rng_ok=True, consistent=True, max_rel_err=0.0, shape=tuple(dropped.shape))
        elif rng0 is not None:
            self._replaying = True
            try:
                rep = replay(func, args, kwargs, y, rng0)
            finally:
                self._replaying = False
            call.x, call.y = rep.pop("attn"), rep.pop("dropped")
            call.extra.update(rep)
            call.extra["shape"] = tuple(call.x.shape)
        self._attach(call, fr, ps)
        return out

    def _mha(self, func, args, kwargs):
        """``multi_head_attention_forward`` with its inner dropout and SDPA intercepted."""
        F = self._torch.nn.functional
        specs = self._specs
        saved = {"dropout": F.dropout, "scaled_dot_product_attention": F.scaled_dot_product_attention}

        def wrap(orig):
            def inner(*a, **k):
                return self._on_function(specs[orig], orig, a, k)
            return inner

        try:
            for name, orig in saved.items():
                setattr(F, name, wrap(orig))
            return func(*args, **kwargs)
        finally:
            for name, orig in saved.items():
                setattr(F, name, orig)

    def _attach(self, call: SiteCall, fr, ps):
        if call.kind == "mha":
            return  # its inner dropout and SDPA are the sites
        if fr is not None and fr.call is not None:
            fr.call.inner.append(call)  # decided when the enclosing candidate module returns
        else:
            self._commit(call, ps)

    def _commit(self, call: SiteCall, ps: _Pass):
        call.site = self._name(ps, call.path, call.op)
        ev = [f"{call.op} call"]
        if call.random_ops:
            ev.append("draws random numbers (" + ", ".join(sorted(set(call.random_ops))) + ")")
        self._register(call, ev)

    def _note_random(self, op: str):
        if self._fn_stack:
            self._fn_stack[-1].random_ops.append(op)
            return
        stack = self._stack
        fr = stack[-1] if stack else None
        if fr is not None and fr.call is not None:
            fr.call.random_ops.append(op)
            return
        self._commit_random(op, fr.path if fr is not None else "", self._pass())

    def _commit_random(self, op, path, ps):
        call = SiteCall(self._name(ps, path, op), path, "random", op, ps.phase, ps.model_training, None, None, None)
        self._register(call, ["random-number call outside any dropout site"])

    def _register(self, call: SiteCall, evidence):
        s = self.sites.get(call.site)
        active = call.effective_p > 0.0
        if s is None:
            s = self.sites[call.site] = Site(call.site, call.path or ROOT, call.kind, call.op, call.variant,
                                             call.structure, call.effective_p if active else None, list(evidence))
        else:
            s.evidence += [e for e in evidence if e not in s.evidence]
            if s.p is None and active:
                s.p = call.effective_p
        s.calls += 1
        s.phases.add("recompute" if call.phase == "recompute" else ("train" if call.model_training else "eval"))
        s.active_ever = s.active_ever or active
        if self.sink is not None:
            self.sink(call)

    # -- queries -------------------------------------------------------------

    @property
    def dropout_sites(self) -> dict[str, Site]:
        """The sites to audit (random draws outside sites, and SDPA that never dropped, left out)."""
        return {k: s for k, s in self.sites.items() if s.is_dropout}

    def paths(self) -> set:
        """Module paths to hook to see every site found so far (for ``focus=``)."""
        return {("" if s.path == ROOT else s.path) for s in self.sites.values()}
