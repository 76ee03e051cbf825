"""A whole torch model, driven for :func:`mcdrop.audit_model`: forwards, backward, state kept intact.

:class:`TorchModel` runs a model's forward passes in training or
evaluation mode under a :class:`~mcdrop.adapters.torch_sites.SiteRecorder`
(every dropout site's calls go to a sink), one forward + backward pass for
the recompute check, and turns tensors into NumPy arrays.  It decides
nothing; :mod:`mcdrop.auditing` does.

Auditing must not change the model: :meth:`TorchModel.preserved` forks
and seeds torch's generators, and afterwards restores every module's
``training`` flag, every rate-like attribute (a model that zeroes its
``p`` on the first evaluation forward, Megatron-LM#411, is left as it
was), every buffer (BatchNorm statistics move in training forwards),
the state of every ``torch.Generator`` the model holds, and the
parameters' ``.grad``.  Keras 3 models on the torch backend are torch
modules too: with ``keras=True`` sites are named by Keras layer paths and
the mode is the ``training=`` argument of the call.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from ._base import is_probability
from .torch import import_torch, torch_device
from .torch_sites import ROOT, SiteRecorder, keras_modules

__all__ = ["TorchModel", "rate_attributes", "RATE_NAME"]

#: Attribute names that look like rates (``p``, ``attn_p``, ``p_drop``, ``*drop*``, ``*rate*``, ``keep_prob``).
RATE_NAME = re.compile(r"(^p$|^p_|_p$|drop|rate|keep_prob)", re.I)


def rate_attributes(modules) -> dict:
    """``{"path.attr": value}`` of every number in [0, 1] whose name looks like a rate."""
    out = {}
    for path, m in modules:
        for k, v in vars(m).items():
            if not k.startswith("_") and RATE_NAME.search(k) and is_probability(v):
                out[f"{path or ROOT}.{k}"] = float(v)
    return out


def _tree_equal(torch, a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(_tree_equal(torch, x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tree_equal(torch, a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # an object whose == is not a bool
        return a is b


def _float_leaves(torch, out) -> list:
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _float_leaves(torch, o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _float_leaves(torch, o)]
    return []


class TorchModel:
    """A torch model (or a Keras 3 model on the torch backend) and the inputs of its forward.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : tensor or tuple
        The forward's positional arguments (a tensor alone is one argument).
    device : str or torch.device, optional
        Where the inputs go (default: the model's own device).
    keras : bool, default False
        A Keras model: call it with ``training=``; names from Keras layers.

    Raises
    ------
    TypeError
        ``model`` is not a torch module.
    """

    framework = "torch"

    def __init__(self, model, inputs, *, device=None, keras: bool = False):
        torch = import_torch()
        self._torch = torch
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}.")
        self.model = model
        self.keras = keras
        self.device = torch_device(model, device)
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        self.args = tuple(a.to(self.device) if isinstance(a, torch.Tensor) else a for a in args)
        self.modules = keras_modules(model) if keras else list(model.named_modules())
        self.name = type(model).__qualname__

    # -- description -----------------------------------------------------------

    def input_description(self) -> list:
        """Shapes and dtypes of the tensor inputs (``repr`` of the others)."""
        torch = self._torch
        return [f"{tuple(a.shape)} {str(a.dtype).replace('torch.', '')}" if isinstance(a, torch.Tensor)
                else repr(a)[:40] for a in self.args]

    def environment(self) -> dict:
        env = {"framework": "keras" if self.keras else "torch", "torch": self._torch.__version__,
               "device": str(self.device)}
        if self.keras:
            import keras

            env["keras"] = keras.__version__
        return env

    def rate_attributes(self) -> dict:
        return rate_attributes(self.modules)

    # -- state ---------------------------------------------------------------------

    @contextlib.contextmanager
    def preserved(self, seed: int | None):
        """Fork and seed the generators; restore modes, rates, buffers, generators and grads after."""
        torch = self._torch
        mods = [m for _, m in self.modules]
        flags = [(m, m.training) for m in mods]
        rates = self.rate_attributes()
        buffers = [(b, b.detach().clone()) for b in self.model.buffers()]
        grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in self.model.parameters()]
        gens = []
        for m in mods:
            for v in vars(m).values():
                if isinstance(v, torch.Generator) and all(v is not g for g, _ in gens):
                    gens.append((v, v.get_state()))
        cuda = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda):
                if seed is not None:
                    torch.manual_seed(seed)
                yield
        finally:
            for m, f in flags:
                m.training = f
            self._restore_rates(rates)
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for p, g in grads:
                p.grad = g
            for g, s in gens:
                g.set_state(s)

    def _restore_rates(self, snap: dict) -> None:
        mods = {(path or ROOT): m for path, m in self.modules}
        for key, v in snap.items():
            path, _, attr = key.rpartition(".")
            m = mods.get(path)
            if m is not None and getattr(m, attr, None) != v:
                setattr(m, attr, v)

    # -- running -------------------------------------------------------------------

    def _call(self, training: bool):
        if self.keras:
            return self.model(*self.args, training=training)
        return self.model(*self.args)

    def set_mode(self, training: bool) -> None:
        """``model.train()`` / ``model.eval()`` (Keras: the ``training=`` argument does it)."""
        self.model.train(training)

    def forwards(self, training: bool, sink, *, count: int = 1, capture: bool = True, focus=None,
                 keep_outputs: bool = False, after_each=None, replay_all_sdpa: bool = False):
        """``count`` forwards in ``training`` mode (no grad) under a recorder; ``(recorder, outputs)``.

        ``after_each(i)`` runs after forward ``i`` (e.g. a progress bar);
        exceptions of the model propagate.
        """
        torch = self._torch
        self.set_mode(training)
        outs = []
        with SiteRecorder(self.model, sink=sink, capture=capture, modules=self.modules, focus=focus,
                          replay_all_sdpa=replay_all_sdpa) as rec, torch.no_grad():
            for i in range(count):
                y = self._call(training)
                if keep_outputs:
                    outs.append(y)
                if after_each is not None:
                    after_each(i)
        return rec, outs

    def forward_backward(self, sink, *, replay_all_sdpa: bool = False) -> tuple[SiteRecorder, str | None]:
        """One training forward and ``sum(outputs).backward()`` under a recorder.

        Checkpoint's early stop is switched off, so recompute runs whole
        regions.  Returns the recorder and why no backward ran (None when
        it did): no floating output that requires grad.
        """
        torch = self._torch
        from torch.utils.checkpoint import set_checkpoint_early_stop

        self.set_mode(True)
        why = None
        with SiteRecorder(self.model, sink=sink, modules=self.modules, replay_all_sdpa=replay_all_sdpa) as rec, \
                set_checkpoint_early_stop(False), torch.enable_grad():
            out = self._call(True)
            leaves = [t for t in _float_leaves(torch, out) if t.requires_grad]
            if not leaves:
                why = "no output requires grad (no parameters and no input that requires grad)"
            else:
                rec.backward(sum(t.float().sum() for t in leaves))
        return rec, why

    def outputs_equal(self, a, b) -> bool:
        """Bitwise equality of two forwards' outputs (tensors, tuples, dicts)."""
        return _tree_equal(self._torch, a, b)

    def to_numpy(self, t) -> np.ndarray:
        """A detached tensor as a NumPy array (bfloat16/float16 widened to float32; a view on CPU)."""
        torch = self._torch
        t = t.detach()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        elif not t.is_floating_point():
            t = t.double()
        return t.numpy() if t.device.type == "cpu" else t.cpu().numpy()

    def dtype_name(self, t) -> str:
        """The tensor's dtype as mcdrop names it (``"float32"``, ``"bfloat16"``, ...)."""
        name = str(t.dtype).replace("torch.", "")
        return name if name in ("float32", "float64", "float16", "bfloat16") else "float64"
