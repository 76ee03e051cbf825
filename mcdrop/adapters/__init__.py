"""Adapters: framework dropouts -> the audit protocol ``fn(x, training) -> ndarray``.

Each framework adapter lives in its own module and imports its framework
only when used; a missing framework raises ImportError naming the extra to
install (``pip install 'mcdrop[torch]'``, ``'mcdrop[jax]'``,
``'mcdrop[keras]'``).

========================== =====================================================
``adapt``                  any of the objects below, picked automatically (what
                           ``mcdrop.audit`` calls first)
``torch_module``           any ``torch.nn.Module`` (``nn.Dropout*``, ``AlphaDropout``,
                           custom modules; instance or class), with a gradient check
``torch_function``         ``torch.nn.functional.dropout`` and friends
``flax_dropout``           ``flax.nnx.Dropout`` (its own ``nnx.Rngs`` stream)
``flax_module``            any ``flax.nnx`` module instance
``jax_function``           ``f(x, training, key)``, a fresh key per call
``jax_bernoulli``          a plain ``jax.random.bernoulli`` inverted dropout
``keras_layer``            Keras 3 ``layers.Dropout`` / ``GaussianDropout``
``numpy_function``         a NumPy callable with declared ``p``/variant/structure
``numpy_reference``        mcdrop's correct NumPy dropout (any variant/structure)
``builtin``                the CLI's built-in targets by name
========================== =====================================================
"""

from __future__ import annotations

import importlib

from ._base import Adapter, find_rate, is_probability

__all__ = [
    "Adapter",
    "adapt",
    "find_rate",
    "is_probability",
    "flax_module",
    "torch_module",
    "torch_function",
    "flax_dropout",
    "jax_function",
    "jax_bernoulli",
    "keras_layer",
    "numpy_function",
    "numpy_reference",
    "builtin",
    "resolve_target",
    "BUILTINS",
]

_LAZY = {
    "adapt": "mcdrop.adapters.auto",
    "flax_module": "mcdrop.adapters.jax",
    "torch_module": "mcdrop.adapters.torch",
    "torch_function": "mcdrop.adapters.torch",
    "flax_dropout": "mcdrop.adapters.jax",
    "jax_function": "mcdrop.adapters.jax",
    "jax_bernoulli": "mcdrop.adapters.jax",
    "keras_layer": "mcdrop.adapters.keras",
    "numpy_function": "mcdrop.adapters.numpy",
    "numpy_reference": "mcdrop.adapters.numpy",
    "builtin": "mcdrop.adapters.targets",
    "resolve_target": "mcdrop.adapters.targets",
    "BUILTINS": "mcdrop.adapters.targets",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'mcdrop.adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
