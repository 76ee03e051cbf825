"""PyTorch adapter: ``nn.Dropout`` & co. and functional dropouts -> ``fn(x, training)``.

Needs the optional package torch (``pip install 'mcdrop[torch]'``).

The input array is shared with the tensor (``torch.from_numpy``), so an
in-place dropout that writes into its input shows up as a failed
``input_unchanged`` check.  :meth:`TorchAdapter.forward_backward` runs the
forward pass with autograd and returns the input gradient of
``sum(y * g)``: the audit's ``gradient`` check compares it with ``g * dy/dx``
of the forward mask (``m / q`` for inverted dropout).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable

import numpy as np

from ._base import Adapter
from ._optional import require

__all__ = ["import_torch", "TorchAdapter", "torch_module", "torch_function", "MODULE_LAWS"]

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
}
_SHAPES = {None: (64, 128), 1: (32, 64, 16), 2: (16, 32, 4, 4), 3: (8, 16, 4, 4, 2)}


def import_torch():
    return require("torch", purpose="the torch adapter")


class TorchAdapter(Adapter):
    """A torch module or function as ``fn(x, training) -> numpy.ndarray``.

    Use :func:`torch_module` or :func:`torch_function` to build one.
    """

    framework = "torch"

    def __init__(self, forward: Callable, *, name: str, p: float | None, variant: str | None,
                 structure: str | None, default_shape: tuple | None, seed: int | None,
                 module: Any = None):
        torch = import_torch()
        super().__init__(name=name, p=p, variant=variant, structure=structure, default_shape=default_shape,
                         seed=seed, framework_version=torch.__version__)
        self._forward = forward
        self._module = module
        self._torch = torch

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        torch = self._torch
        t = torch.from_numpy(x)
        with torch.no_grad():
            y = self._forward(t, bool(training))
        return y.numpy()

    def forward_backward(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training-mode forward pass and the gradient of ``sum(y * g)`` w.r.t. ``x``."""
        torch = self._torch
        t = torch.tensor(np.array(x), requires_grad=True)
        y = self._forward(t, True)
        (y * torch.from_numpy(np.asarray(g))).sum().backward()
        return y.detach().numpy().copy(), t.grad.detach().numpy().copy()

    def rng_context(self):
        """Seed torch's global generator for the audit and restore it afterwards."""
        if self.seed is None:
            return contextlib.nullcontext()
        torch = self._torch

        @contextlib.contextmanager
        def ctx():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                yield

        return ctx()


def torch_module(module: Any, p: float | None = None, *, seed: int | None = 0,
                 name: str | None = None) -> TorchAdapter:
    """Wrap a ``torch.nn`` dropout module (instance or class) for :func:`mcdrop.audit`.

    Parameters
    ----------
    module : torch.nn.Module or type
        An instance (``nn.Dropout(0.3)``) or a class (``nn.Dropout``, then
        built with ``p``).  Its ``train()``/``eval()`` mode is set per call.
    p : float, optional
        Drop probability to build a class with (default: 0.5, torch's).
    seed : int or None, default 0
        Seeds torch's global generator during the audit (restored after);
        None leaves it alone.
    name : str, optional
        Name in the report (default e.g. ``"torch.nn.Dropout(p=0.3)"``).

    Returns
    -------
    TorchAdapter
        Declares ``p``, the variant and structure of known classes
        (``Dropout2d`` -> channel, ``AlphaDropout`` -> alpha) and a default
        input shape they accept.
    """
    torch = import_torch()
    if inspect.isclass(module):
        if not issubclass(module, torch.nn.Module):
            raise TypeError(f"`module` must be a torch.nn.Module (class or instance); got {module!r}.")
        module = module(0.5 if p is None else p)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module (class or instance); got {module!r}.")
    cls = type(module).__name__
    variant, structure, spatial = MODULE_LAWS.get(cls, (None, None, None))
    mp = getattr(module, "p", None)
    if name is None:
        name = f"{type(module).__module__.replace('torch.nn.modules.dropout', 'torch.nn')}.{cls}(p={mp:g})" \
            if isinstance(mp, (int, float)) else f"{type(module).__module__}.{cls}"

    def forward(t, training: bool):
        module.train(training)
        return module(t)

    return TorchAdapter(forward, name=name, p=float(mp) if isinstance(mp, (int, float)) else p,
                        variant=variant, structure=structure,
                        default_shape=_SHAPES[spatial] if cls in MODULE_LAWS else None,
                        seed=seed, module=module)


def torch_function(fn: Callable, p: float, *, seed: int | None = 0, name: str | None = None,
                   inplace: bool = False) -> TorchAdapter:
    """Wrap a functional dropout ``fn(input, p, training)`` (e.g. ``F.dropout``).

    Parameters
    ----------
    fn : callable
        Called as ``fn(tensor, p=p, training=training)`` (plus
        ``inplace=True`` if asked).
    p : float
        The drop probability passed to ``fn``.
    seed : int or None, default 0
        Seeds torch's global generator during the audit (restored after).
    name : str, optional
    inplace : bool, default False
    """
    import_torch()
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {fn!r}.")
    fname = getattr(fn, "__name__", "fn")
    variant, structure, spatial = FUNCTION_LAWS.get(fname, (None, None, None))
    mod = getattr(fn, "__module__", "") or ""
    if name is None:
        name = f"{mod}.{fname}(p={p:g})" if mod else f"{fname}(p={p:g})"
    kw = {"inplace": True} if inplace else {}

    def forward(t, training: bool):
        return fn(t, p=p, training=training, **kw)

    return TorchAdapter(forward, name=name, p=p, variant=variant, structure=structure,
                        default_shape=_SHAPES[spatial] if fname in FUNCTION_LAWS else None, seed=seed)
