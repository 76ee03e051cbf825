"""PyTorch adapter: any ``nn.Module`` and functional dropouts -> ``fn(x, training)``.

Needs the optional package torch (``pip install 'mcdrop[torch]'``).

The input array is shared with the tensor on CPU (``torch.from_numpy``), so
an in-place dropout that writes into its input shows up as a failed
``input_unchanged`` check.  :meth:`TorchAdapter.forward_backward` runs the
forward pass with autograd and returns the input gradient of
``sum(y * g)``: the audit's ``gradient`` check compares it with ``g * dy/dx``
of the forward mask (``m / q`` for inverted dropout).

Any module works, not only ``torch.nn``'s dropouts: the adapter switches it
with ``train()``/``eval()`` per call and feeds one tensor.  What it claims
comes from :func:`module_law`: the ``torch.nn`` class, else a ``variant``
or ``structure`` attribute, Paddle's ``mode="downgrade_in_infer"``
(standard dropout), or a stochastic-depth class name (one draw per sample).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable

import numpy as np

from ._base import Adapter, find_rate
from ._optional import require

__all__ = ["import_torch", "TorchAdapter", "torch_module", "torch_function", "module_law", "torch_device",
           "MODULE_LAWS", "FUNCTION_LAWS", "DEFAULT_SHAPES"]

#: torch.nn class name -> (variant, structure, spatial dims of the unit)
MODULE_LAWS = {
    "Dropout": ("inverted", "element", None),
    "Dropout1d": ("inverted", "channel", 1),
    "Dropout2d": ("inverted", "channel", 2),
    "Dropout3d": ("inverted", "channel", 3),
    "AlphaDropout": ("alpha", "element", None),
    "FeatureAlphaDropout": ("alpha", "channel", 2),
}
#: torch.nn.functional name -> (variant, structure, spatial dims)
FUNCTION_LAWS = {
    "dropout": ("inverted", "element", None),
    "dropout1d": ("inverted", "channel", 1),
    "dropout2d": ("inverted", "channel", 2),
    "dropout3d": ("inverted", "channel", 3),
    "alpha_dropout": ("alpha", "element", None),
    "feature_alpha_dropout": ("alpha", "channel", 2),
    "feature_dropout": ("inverted", "channel", 2),
    "native_dropout": ("inverted", "element", None),
}
#: spatial dims -> an input shape the unit layout accepts
DEFAULT_SHAPES = {None: (64, 128), 1: (32, 64, 16), 2: (16, 32, 4, 4), 3: (8, 16, 4, 4, 2)}
_SHAPES = DEFAULT_SHAPES
#: Class-name fragments of per-sample dropouts (stochastic depth).
_PER_SAMPLE = ("droppath", "drop_path", "stochasticdepth")
_VARIANTS = ("inverted", "standard", "gaussian", "alpha", "dropconnect")
_STRUCTURES = ("element", "channel", "sample")


def import_torch():
    return require("torch", purpose="the torch adapter")


def module_law(module) -> tuple[str | None, str | None, int | None]:
    """``(variant, structure, spatial dims)`` a torch module claims (None where it does not say).

    ``torch.nn`` dropouts by class; any module by its ``variant``/``structure``
    attributes; ``mode == "downgrade_in_infer"`` (Paddle's convention) is
    standard dropout; a class named like stochastic depth (``DropPath``,
    ``StochasticDepth``) draws one mask per sample.
    """
    torch = import_torch()
    cls = type(module).__name__
    if isinstance(module, torch.nn.modules.dropout._DropoutNd) and cls in MODULE_LAWS:
        return MODULE_LAWS[cls]
    variant = getattr(module, "variant", None)
    variant = variant if isinstance(variant, str) and variant in _VARIANTS else None
    if variant is None and getattr(module, "mode", None) == "downgrade_in_infer":
        variant = "standard"
    structure = getattr(module, "structure", None)
    structure = structure if isinstance(structure, str) and structure in _STRUCTURES else None
    if structure is None and any(k in cls.lower() for k in _PER_SAMPLE):
        structure = "sample"
    return variant, structure, None


def torch_device(module, device):
    """The device to feed ``module``: ``device``, else the device of its parameters (CPU without any).

    Raises
    ------
    ValueError
        ``device`` is not the device of the module's parameters.
    """
    torch = import_torch()
    own = None
    if isinstance(module, torch.nn.Module):
        for t in list(module.parameters()) + list(module.buffers()):
            own = t.device
            break
    if device is None:
        return own if own is not None else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must name a torch device such as 'cpu' or 'cuda:0'; got {device!r} ({exc}).") \
            from None
    if own is not None and own != dev and not (own.type == dev.type and dev.index is None):
        raise ValueError(f"`device` {dev} is not the device of the module's parameters ({own}): move the "
                         f"module first (module.to({str(dev)!r})) or leave `device` unset.")
    return dev


def _own_generators(module) -> list:
    """``torch.Generator`` objects held as attributes by the module or its submodules."""
    torch = import_torch()
    gens, seen = [], set()
    if not isinstance(module, torch.nn.Module):
        return gens
    for m in module.modules():
        for v in vars(m).values():
            if isinstance(v, torch.Generator) and id(v) not in seen:
                seen.add(id(v))
                gens.append(v)
    return gens


class TorchAdapter(Adapter):
    """A torch module or function as ``fn(x, training) -> numpy.ndarray``.

    Use :func:`torch_module` or :func:`torch_function` to build one (or let
    :func:`mcdrop.audit` adapt the object).  ``device`` is where inputs go;
    each audit seeds the device's global generator with ``seed`` and
    restarts the ``torch.Generator`` objects the module holds from their
    state when wrapped (restored, like the module's mode, afterwards).
    """

    framework = "torch"

    def __init__(self, forward: Callable, *, name: str, p: float | None, variant: str | None,
                 structure: str | None, default_shape: tuple | None, seed: int | None,
                 module: Any = None, device=None):
        torch = import_torch()
        super().__init__(name=name, p=p, variant=variant, structure=structure, default_shape=default_shape,
                         seed=seed, framework_version=torch.__version__)
        self._forward = forward
        self._module = module
        self._torch = torch
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self._gens = _own_generators(module)
        self._gen_states0 = [g.get_state() for g in self._gens]

    def _tensor(self, x, *, grad: bool = False):
        torch = self._torch
        if grad:
            return torch.tensor(np.array(x), device=self.device, requires_grad=True)
        t = torch.from_numpy(np.asarray(x))
        return t if self.device.type == "cpu" else t.to(self.device)

    def _out(self, y):
        if not isinstance(y, self._torch.Tensor):
            raise TypeError(f"{self.name} returned a {type(y).__name__}, not a tensor (audit a module that "
                            f"returns one tensor, or wrap it: fn(x, training) -> array)")
        return y

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        torch = self._torch
        t = self._tensor(x)
        with torch.no_grad():
            y = self._out(self._forward(t, bool(training)))
        return y.numpy() if y.device.type == "cpu" else y.cpu().numpy()

    def forward_backward(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training-mode forward pass and the gradient of ``sum(y * g)`` w.r.t. ``x``."""
        torch = self._torch
        t = self._tensor(x, grad=True)
        y = self._out(self._forward(t, True))
        (y * torch.as_tensor(np.asarray(g), device=self.device)).sum().backward()
        return y.detach().cpu().numpy().copy(), t.grad.detach().cpu().numpy().copy()

    def rng_context(self):
        """Seed the device's generator and the module's own ones for the audit; restore all after."""
        torch = self._torch
        if self.seed is None and not self._gens and self._module is None:
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def ctx():
            mod = self._module
            was_training = mod.training if isinstance(mod, torch.nn.Module) else None
            before = [g.get_state() for g in self._gens]
            cuda = self.device.type == "cuda"
            try:
                with torch.random.fork_rng(devices=[self.device] if cuda else [],
                                           enabled=self.seed is not None or cuda):
                    if self.seed is not None:
                        torch.manual_seed(self.seed)
                    for gen, s in zip(self._gens, self._gen_states0):
                        gen.set_state(s)
                    yield
            finally:
                for gen, s in zip(self._gens, before):
                    gen.set_state(s)
                if was_training is not None:
                    mod.train(was_training)

        return ctx()


def _rate(module) -> float | None:
    r, _ = find_rate(module)
    return r


def torch_module(module: Any, p: float | None = None, *, seed: int | None = 0,
                 name: str | None = None, device=None, variant: str | None = None,
                 structure: str | None = None) -> TorchAdapter:
    """Wrap a ``torch.nn`` module (instance or class; any custom module too) for :func:`mcdrop.audit`.

    Parameters
    ----------
    module : torch.nn.Module or type
        An instance (``nn.Dropout(0.3)``, ``MyDropout()``) or a class
        (``nn.Dropout``, then built with ``p``).  Its ``train()``/``eval()``
        mode is set per call; it takes one tensor and returns one.
    p : float, optional
        Drop probability to build a class with (default: 0.5, torch's).
    seed : int or None, default 0
        Seeds torch's global generator of ``device`` during the audit
        (restored after); None leaves it alone.
    name : str, optional
        Name in the report (default e.g. ``"torch.nn.Dropout(p=0.3)"``).
    device : str or torch.device, optional
        Where inputs go; default the module's own device (CPU for a module
        without parameters or buffers).
    variant, structure : str, optional
        What the module claims, where :func:`module_law` cannot tell.

    Returns
    -------
    TorchAdapter
        Declares ``p`` (the module's ``p``/``rate``/... attribute), the
        variant and structure (:func:`module_law`) and a default input shape
        known classes accept.  ``variant="dropconnect"`` also declares the
        module's ``weight`` and zeroes its ``bias`` during each call
        (restored after): the audit feeds a diagonal batch and needs each
        output to be one weight's term.
    """
    torch = import_torch()
    if inspect.isclass(module):
        if not issubclass(module, torch.nn.Module):
            raise TypeError(f"`module` must be a torch.nn.Module (class or instance); got {module!r}.")
        try:
            module = module(0.5 if p is None else p)
        except TypeError as exc:
            raise TypeError(f"cannot build {module.__name__}({0.5 if p is None else p}) to audit it ({exc}); "
                            f"pass an instance.") from None
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module (class or instance); got {module!r}.")
    cls = type(module).__name__
    mv, ms, spatial = module_law(module)
    variant = variant or mv
    structure = structure or ms
    mp = _rate(module)
    if name is None:
        modname = type(module).__module__.replace("torch.nn.modules.dropout", "torch.nn")
        name = f"{modname}.{cls}(p={mp:g})" if mp is not None else f"{modname}.{cls}"
    dev = torch_device(module, device)
    forward = _dropconnect_forward(module, torch) if variant == "dropconnect" else None

    if forward is None:
        def forward(t, training: bool):
            module.train(training)
            return module(t)

    known = cls in MODULE_LAWS and isinstance(module, torch.nn.modules.dropout._DropoutNd)
    ad = TorchAdapter(forward, name=name, p=mp if mp is not None else p, variant=variant, structure=structure,
                      default_shape=_SHAPES[spatial] if known else None, seed=seed, module=module, device=dev)
    if variant == "dropconnect":
        w = getattr(module, "weight", None)
        ad.weight = w.detach().cpu().double().numpy().copy() if isinstance(w, torch.Tensor) else None
    return ad


def _dropconnect_forward(module, torch):
    bias = getattr(module, "bias", None)
    if not isinstance(bias, torch.Tensor):
        return None

    def forward(t, training: bool):
        module.train(training)
        saved = bias.detach().clone()
        with torch.no_grad():
            bias.zero_()
        try:
            return module(t)
        finally:
            with torch.no_grad():
                bias.copy_(saved)

    return forward


def torch_function(fn: Callable, p: float, *, seed: int | None = 0, name: str | None = None,
                   inplace: bool = False, device=None) -> TorchAdapter:
    """Wrap a functional dropout (``F.dropout(input, p, training)``, ``torch.dropout(input, p, train)``).

    Parameters
    ----------
    fn : callable
        ``torch.nn.functional`` dropouts are called as ``fn(tensor, p=p,
        training=training)`` (plus ``inplace=True`` if asked); the ATen
        forms ``torch.dropout``/``torch.feature_dropout``/
        ``torch.alpha_dropout``/``torch.native_dropout`` positionally, as
        ``fn(tensor, p, train)`` (``native_dropout``'s output, not its mask).
    p : float
        The drop probability passed to ``fn``.
    seed : int or None, default 0
        Seeds torch's global generator during the audit (restored after).
    name : str, optional
    inplace : bool, default False
    device : str or torch.device, optional
        Where inputs go (default CPU).
    """
    torch = import_torch()
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {fn!r}.")
    fname = getattr(fn, "__name__", "fn")
    variant, structure, spatial = FUNCTION_LAWS.get(fname, (None, None, None))
    mod = getattr(fn, "__module__", "") or ""
    aten = fn in {getattr(torch, n, None) for n in ("dropout", "feature_dropout", "alpha_dropout",
                                                    "feature_alpha_dropout", "native_dropout")}
    if name is None:
        shown = f"torch.{fname}" if aten else (f"{mod}.{fname}" if mod else fname)
        name = f"{shown}(p={p:g})"
    kw = {"inplace": True} if inplace else {}

    def forward(t, training: bool):
        if aten:
            y = fn(t, p, training)
            return y[0] if isinstance(y, tuple) else y
        return fn(t, p=p, training=training, **kw)

    return TorchAdapter(forward, name=name, p=p, variant=variant, structure=structure,
                        default_shape=_SHAPES[spatial] if fname in FUNCTION_LAWS else None, seed=seed,
                        device=torch_device(None, device))
