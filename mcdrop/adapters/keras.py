"""Keras 3 adapter: ``keras.layers.Dropout`` / ``GaussianDropout`` -> ``fn(x, training)``.

Needs the optional package keras (``pip install 'mcdrop[keras]'``, which
also installs torch: mcdrop runs Keras on its torch backend).  If Keras is
not imported yet and ``KERAS_BACKEND`` is unset, the adapter sets it to
``"torch"`` before importing it.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ._base import Adapter, is_probability
from ._optional import require

__all__ = ["import_keras", "KerasAdapter", "keras_layer"]

_LAWS = {
    "Dropout": ("inverted", "element"),
    "SpatialDropout1D": ("inverted", "channel"),
    "SpatialDropout2D": ("inverted", "channel"),
    "SpatialDropout3D": ("inverted", "channel"),
    "GaussianDropout": ("gaussian", "element"),
    "AlphaDropout": ("alpha", "element"),
}


def import_keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    return require("keras", purpose="the Keras adapter")


class KerasAdapter(Adapter):
    """A Keras layer as ``fn(x, training) -> numpy.ndarray``."""

    framework = "keras"

    def __init__(self, layer, *, name: str, p, variant, structure, seed):
        keras = import_keras()
        # The layer draws from its SeedGenerator; restarting it from its
        # initial state makes every audit of this adapter the same run.
        gen = getattr(layer, "seed_generator", None)
        reset = None
        if gen is not None:
            state0 = keras.ops.copy(gen.state.value)

            def reset():
                gen.state.assign(state0)

        super().__init__(name=name, p=p, variant=variant, structure=structure, seed=seed,
                         framework_version=keras.__version__, reset=reset)
        self._layer = layer
        self._keras = keras
        if keras.backend.backend() == "torch":
            # the torch backend differentiates: keep the audit's gradient check
            self.forward_backward = self._forward_backward_torch

    def _forward_backward_torch(self, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training-mode forward and the gradient of ``sum(y * g)`` w.r.t. ``x`` (torch autograd)."""
        torch = sys.modules["torch"]
        t = torch.tensor(np.array(x), requires_grad=True)
        y = self._layer(t, training=True)
        (y * torch.as_tensor(np.asarray(g))).sum().backward()
        return y.detach().cpu().numpy().copy(), t.grad.detach().cpu().numpy().copy()

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = self._layer(x, training=bool(training))
        if hasattr(y, "detach"):  # torch backend: skip keras' numpy conversion (and its warning)
            return y.detach().cpu().numpy()
        return np.asarray(self._keras.ops.convert_to_numpy(y))

    def environment(self) -> dict:
        env = super().environment()
        env["keras_backend"] = self._keras.backend.backend()
        return env


def keras_layer(layer, rate: float | None = None, *, seed: int = 0, name: str | None = None) -> KerasAdapter:
    """Wrap a Keras dropout layer (instance, or class built with ``rate`` and ``seed``).

    Every audit restarts the layer's seed generator from the state it had
    when wrapped, so auditing the same adapter twice gives the same result.

    ``keras.layers.Dropout`` -> inverted/element; ``GaussianDropout`` ->
    gaussian; ``SpatialDropout*`` -> channel (channels-last layouts are not
    the (N, C, ...) layout mcdrop's channel structure assumes, so declare
    the structure yourself for those).
    """
    keras = import_keras()
    if isinstance(layer, type):
        if not issubclass(layer, keras.layers.Layer):
            raise TypeError(f"`layer` must be a keras Layer (class or instance); got {layer!r}.")
        layer = layer(0.5 if rate is None else rate, seed=seed)
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"`layer` must be a keras Layer (class or instance); got {layer!r}.")
    cls = type(layer).__name__
    variant, structure = _LAWS.get(cls, (None, None))
    r = getattr(layer, "rate", None)
    r = float(r) if is_probability(r) else rate
    return KerasAdapter(layer, name=name or f"keras.layers.{cls}" + (f"(rate={r:g})" if r is not None else ""),
                        p=float(r) if r is not None else None, variant=variant, structure=structure,
                        seed=getattr(layer, "seed", seed))
