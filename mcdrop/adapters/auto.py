"""Any framework object -> the audit protocol: :func:`adapt`.

``mcdrop.audit(obj)`` and ``mcdrop.audit_relation(a, b)`` call
:func:`adapt` first, so users never have to know which adapter to build:

=================================  =============================================
object                             adapter
=================================  =============================================
an :class:`~mcdrop.adapters.       returned unchanged
Adapter`
a Keras 3 layer (instance/class)   :func:`~mcdrop.adapters.keras_layer`
                                   (torch backend: with a gradient check)
a ``flax.nnx`` module              :func:`~mcdrop.adapters.flax_module`
a ``torch.nn.Module`` (instance    :func:`~mcdrop.adapters.torch_module`: any
or class, custom modules too)      module, ``train()``/``eval()`` per call,
                                   gradient check, ``device``
a torch functional dropout         :func:`~mcdrop.adapters.torch_function`
(``F.dropout``, ``torch.dropout``, (needs ``p``)
``torch.native_dropout``, ...)
any other callable                 returned unchanged: ``fn(x, training)``
=================================  =============================================

Which framework an object belongs to is decided without importing any
framework that is not imported already (an instance of a torch module can
only exist once torch is in ``sys.modules``).  Keras is checked before
torch: on Keras' torch backend every layer *is* a ``torch.nn.Module``.
"""

from __future__ import annotations

import inspect
import sys

from ._base import Adapter, is_probability

__all__ = ["adapt", "ACCEPTED", "torch_functions"]

ACCEPTED = ("an mcdrop adapter; a torch.nn.Module (instance or class, custom modules too); a torch functional "
            "dropout (F.dropout, F.dropout1d/2d/3d, F.alpha_dropout, F.feature_alpha_dropout, torch.dropout, "
            "torch.native_dropout, ...) with p=; a flax.nnx module (e.g. nnx.Dropout); a Keras 3 layer "
            "(instance or class); or a callable fn(x: numpy.ndarray, training: bool) -> array")


def torch_functions() -> dict:
    """The torch functional dropouts :func:`adapt` recognises, by function object (torch must be imported)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    F = torch.nn.functional
    fns = [F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout]
    fns += [getattr(torch, n) for n in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout",
                                        "native_dropout") if hasattr(torch, n)]
    return {f: getattr(f, "__name__", str(f)) for f in fns}


def _subclass(obj, cls) -> bool:
    return inspect.isclass(obj) and issubclass(obj, cls)


def adapt(obj, p: float | None = None, *, seed: int | None = 0, device=None, name: str | None = None,
          variant: str | None = None, structure: str | None = None):
    """Turn a framework object into an audit callable ``fn(x, training) -> numpy.ndarray``.

    Parameters
    ----------
    obj
        See the module docstring (:data:`ACCEPTED`).
    p : float, optional
        The drop probability to build a class with, or to claim.  Default:
        the object's own (``p``, ``rate``, ...; :func:`~mcdrop.adapters.find_rate`).
        Required for functional dropouts.
    seed : int or None, default 0
        Seeds the implementation's randomness for each audit (restored after).
    device : str or torch.device, optional
        torch objects only: where inputs go (default: the module's own device).
    name, variant, structure : str, optional
        Override what the adapter declares.

    Returns
    -------
    callable
        An :class:`~mcdrop.adapters.Adapter`, or ``obj`` itself when it is a
        plain callable or already an adapter.

    Raises
    ------
    TypeError
        ``obj`` is none of the accepted kinds (the message lists them), or
        ``device`` is given for an object that is not a torch one.
    ValueError
        ``p`` is not in [0, 1], or a functional dropout without ``p``.
    """
    if isinstance(obj, Adapter):
        return obj
    if p is not None and not is_probability(p):
        raise ValueError(f"`p` must be a number in [0, 1]; got {p!r}.")
    keras = sys.modules.get("keras")
    if keras is not None and "keras.layers" in sys.modules:
        Layer = keras.layers.Layer
        if isinstance(obj, Layer) or _subclass(obj, Layer):
            if device is not None:
                raise TypeError("`device` applies to torch objects; a Keras layer runs where its backend puts it.")
            from .keras import keras_layer

            ad = keras_layer(obj, p, seed=0 if seed is None else seed, name=name)
            return _declare(ad, variant, structure)
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and (isinstance(obj, nnx.Module) or _subclass(obj, nnx.Module)):
        if device is not None:
            raise TypeError("`device` applies to torch objects; a Flax module runs where JAX puts it.")
        from .jax import flax_module

        return flax_module(obj, p, seed=seed, name=name, variant=variant, structure=structure)
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(obj, torch.nn.Module) or _subclass(obj, torch.nn.Module):
            from .torch import torch_module

            ad = torch_module(obj, p, seed=seed, name=name, device=device, variant=variant, structure=structure)
            if ad.p is None:
                raise ValueError(f"cannot tell the drop probability of {type(ad._module).__name__}: it has none "
                                 f"of the attributes p, rate, drop_prob, keep_prob, ...; pass p=.")
            if p is not None:
                ad.p = float(p)
            return ad
        try:
            fname = torch_functions().get(obj)
        except TypeError:  # unhashable callable
            fname = None
        if fname is not None:
            if p is None:
                raise ValueError(f"{fname} has no drop probability of its own; pass p=.")
            from .torch import torch_function

            return _declare(torch_function(obj, float(p), seed=seed, name=name, device=device), variant, structure)
    if device is not None:
        raise TypeError(f"`device` applies to torch objects only; got a {type(obj).__name__}.")
    if inspect.isclass(obj):
        raise TypeError(f"cannot adapt the class {obj.__module__}.{obj.__qualname__}; accepted: {ACCEPTED}.")
    if callable(obj):
        return obj
    raise TypeError(f"cannot audit a {type(obj).__module__}.{type(obj).__qualname__}; accepted: {ACCEPTED}.")


def _declare(ad, variant, structure):
    if variant is not None:
        ad.variant = variant
    if structure is not None:
        ad.structure = structure
    return ad

