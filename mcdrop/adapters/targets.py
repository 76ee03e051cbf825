"""Resolve a CLI TARGET (built-in name or dotted path) to an audit callable."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Callable

from ._base import Adapter
from ._optional import EXTRAS
from .auto import adapt
from .numpy import numpy_function, numpy_reference

__all__ = ["BUILTINS", "builtin", "resolve_target", "import_target"]


def _torch_mod(cls_name):
    def make(p, seed):
        from .torch import import_torch, torch_module

        return torch_module(getattr(import_torch().nn, cls_name)(p), seed=seed)

    return make


def _flax(p, seed):
    from .jax import flax_dropout

    return flax_dropout(p, seed=seed)


def _jax(p, seed):
    from .jax import jax_bernoulli

    return jax_bernoulli(p, seed=seed)


def _keras(cls_name):
    def make(p, seed):
        from .keras import import_keras, keras_layer

        return keras_layer(getattr(import_keras().layers, cls_name), p, seed=seed)

    return make


def _numpy_ref(p, seed):
    return numpy_reference(p, seed=seed)


#: Built-in TARGET names -> (factory(p, seed), extra needed, description)
BUILTINS: dict[str, tuple[Callable, str | None, str]] = {
    "torch": (_torch_mod("Dropout"), "torch", "torch.nn.Dropout"),
    "torch-dropout1d": (_torch_mod("Dropout1d"), "torch", "torch.nn.Dropout1d (channel)"),
    "torch-dropout2d": (_torch_mod("Dropout2d"), "torch", "torch.nn.Dropout2d (channel)"),
    "torch-dropout3d": (_torch_mod("Dropout3d"), "torch", "torch.nn.Dropout3d (channel)"),
    "torch-alpha": (_torch_mod("AlphaDropout"), "torch", "torch.nn.AlphaDropout (alpha law)"),
    "torch-feature-alpha": (_torch_mod("FeatureAlphaDropout"), "torch",
                            "torch.nn.FeatureAlphaDropout (alpha law, channel)"),
    "jax": (_jax, "jax", "inverted dropout with jax.random.bernoulli, a fresh key per call"),
    "flax": (_flax, "jax", "flax.nnx.Dropout"),
    "keras": (_keras("Dropout"), "keras", "keras.layers.Dropout (torch backend)"),
    "keras-gaussian": (_keras("GaussianDropout"), "keras", "keras.layers.GaussianDropout"),
    "numpy-reference": (_numpy_ref, None, "mcdrop's correct NumPy dropout"),
}


def builtin(name: str, p: float, *, seed: int = 0):
    """The adapter of a built-in target ``name`` at drop probability ``p``."""
    if name not in BUILTINS:
        raise ValueError(f"unknown built-in target {name!r}; built-ins: {', '.join(BUILTINS)}.")
    return BUILTINS[name][0](p, seed)


def _import(module: str, target: str):
    top = module.split(".", 1)[0]
    try:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError:
            # like `python -m`: modules in the current directory are importable
            if top in EXTRAS or os.getcwd() in sys.path or "" in sys.path:
                raise
            sys.path.insert(0, os.getcwd())
            return importlib.import_module(module)
    except ImportError as exc:
        if top in EXTRAS:
            raise ImportError(
                f"TARGET {target!r} needs the optional package `{top}`, which is not installed "
                f"({exc}); install it with: pip install 'mcdrop[{EXTRAS[top]}]'"
            ) from exc
        raise ValueError(f"TARGET {target!r}: cannot import module {module!r} ({exc}).") from exc


def import_target(target: str, *, what: str = "TARGET"):
    """The object at ``package.module:attr`` (or ``package.module.attr``); ValueError naming ``what``."""
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"{what} must be a dotted path like 'mypkg.models:build'; got {target!r}.")
    target = target.strip()
    if ":" in target:
        module, _, attr = target.partition(":")
    else:
        module, _, attr = target.rpartition(".")
    if not module or not attr:
        raise ValueError(f"{what} {target!r} must look like 'package.module:attr'.")
    obj = _import(module, target)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{what} {target!r}: module {module!r} has no attribute {attr!r}.") from None
    return obj


def resolve_target(target: str, p: float, *, seed: int = 0):
    """Turn a TARGET string into an audit callable.

    ``target`` is a built-in name (:data:`BUILTINS`) or a path
    ``package.module:attr`` (or ``package.module.attr``).  A torch module
    class or instance, a ``torch.nn.functional`` function, a Keras layer or
    a Flax ``nnx.Dropout`` class gets its adapter, built with ``p``; any
    other callable is used as ``fn(x, training)`` directly.
    """
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"TARGET must be a built-in name or a dotted path; got {target!r}.")
    target = target.strip()
    if target in BUILTINS:
        return builtin(target, p, seed=seed)
    if ":" not in target and "." not in target:
        raise ValueError(
            f"unknown TARGET {target!r}: not a built-in ({', '.join(BUILTINS)}) and not a "
            f"dotted path like 'torch.nn.Dropout' or 'mypkg.mymodule:my_dropout'."
        )
    return _wrap(import_target(target), p, seed, target)


def _wrap(obj, p, seed, target):
    if isinstance(obj, Adapter):  # already declares its p, variant and structure
        return obj
    mod = (getattr(obj, "__module__", "") or "").split(".", 1)[0]
    if mod == "torch":
        from .torch import import_torch, torch_function, torch_module

        torch = import_torch()
        if (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)) or isinstance(obj, torch.nn.Module):
            return torch_module(obj, p, seed=seed, name=target if not inspect.isclass(obj) else None)
        if callable(obj):
            return torch_function(obj, p, seed=seed)
    if mod == "keras":
        from .keras import import_keras, keras_layer

        keras = import_keras()
        if (inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)) or isinstance(obj, keras.layers.Layer):
            return keras_layer(obj, p, seed=seed)
    if mod == "flax" and inspect.isclass(obj) and obj.__name__ == "Dropout":
        from .jax import flax_dropout

        return flax_dropout(p, seed=seed)
    if not callable(obj):
        raise ValueError(f"TARGET {target!r} is not callable (got {type(obj).__name__}).")
    # a custom torch/Keras/Flax object defined outside those packages
    ad = adapt(obj, p, seed=seed, name=None if inspect.isclass(obj) else target)
    return numpy_function(obj, name=target) if ad is obj else ad
