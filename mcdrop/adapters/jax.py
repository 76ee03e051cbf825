"""JAX / Flax adapters -> ``fn(x, training)``.

Needs the optional packages jax and flax (``pip install 'mcdrop[jax]'``).

JAX randomness is explicit: :func:`jax_function` derives a fresh key for
every call as ``fold_in(key(seed), call_index)`` (never the same key
twice), and ``flax.nnx.Dropout`` draws from its own ``nnx.Rngs`` stream,
seeded once by the adapter.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable

import numpy as np

from ._base import Adapter, find_rate
from ._optional import require

__all__ = ["JaxAdapter", "jax_function", "jax_bernoulli", "flax_dropout", "flax_module"]


def _jax():
    return require("jax", purpose="the JAX adapter")


class JaxAdapter(Adapter):
    """A JAX function or Flax module as ``fn(x, training) -> numpy.ndarray``."""

    framework = "jax"

    def __init__(self, call: Callable, *, name: str, p, variant=None, structure=None,
                 default_shape=None, seed=None, reset: Callable | None = None):
        jax = _jax()
        super().__init__(name=name, p=p, variant=variant, structure=structure, default_shape=default_shape,
                         seed=seed, framework_version=jax.__version__, reset=reset)
        self._call = call

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:
        return np.asarray(self._call(x, bool(training)))

    def environment(self) -> dict:
        env = super().environment()
        try:
            import flax

            env["flax"] = flax.__version__
        except ImportError:
            pass
        return env


def jax_function(f: Callable, *, p: float | None = None, seed: int = 0, jit: bool = True,
                 variant: str | None = None, structure: str | None = None,
                 name: str | None = None) -> JaxAdapter:
    """Wrap ``f(x, training, key) -> array``; each call gets a fresh key.

    Parameters
    ----------
    f : callable
        ``f(x, training, key)``; ``training`` is a Python bool (static
        under ``jit``).
    p : float, optional
        The drop probability ``f`` claims (declared for the audit).
    seed : int, default 0
        Key of call ``i`` is ``jax.random.fold_in(jax.random.key(seed), i)``.
    jit : bool, default True
        Compile ``f`` with ``jax.jit`` (``training`` static).
    """
    jax = _jax()
    if not callable(f):
        raise TypeError(f"`f` must be callable f(x, training, key); got {f!r}.")
    g = jax.jit(f, static_argnums=1) if jit else f
    base = jax.random.key(int(seed))
    state = {"i": 0}

    def call(x, training):
        k = jax.random.fold_in(base, state["i"])
        state["i"] += 1
        return g(x, training, k)

    def reset():
        state["i"] = 0

    if name is None:
        name = f"jax:{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', 'f')}"
    return JaxAdapter(call, name=name, p=p, variant=variant, structure=structure, seed=seed, reset=reset)


def jax_bernoulli(p: float, *, seed: int = 0) -> JaxAdapter:
    """Inverted dropout written with ``jax.random.bernoulli`` (a fresh key per call)."""
    jax = _jax()
    jnp = jax.numpy
    q = 1.0 - float(p)

    def f(x, training, key):
        if not training or q == 1.0:
            return x
        if q == 0.0:
            return jnp.zeros_like(x)
        keep = jax.random.bernoulli(key, q, x.shape)
        return jnp.where(keep, x / q, 0).astype(x.dtype)

    return jax_function(f, p=float(p), seed=seed, variant="inverted", structure="element",
                        name=f"jax.random.bernoulli dropout (p={p:g})")


def flax_dropout(rate: float, *, seed: int = 0, broadcast_dims=(), name: str | None = None) -> JaxAdapter:
    """Wrap ``flax.nnx.Dropout(rate)`` with its own ``nnx.Rngs(dropout=seed)`` stream.

    ``broadcast_dims=(2, 3)`` on an (N, C, H, W) input gives channel dropout
    (declared as ``structure="channel"``).
    """
    _jax()
    nnx = require("flax.nnx", purpose="the Flax adapter")
    state = {}

    def build():
        state["m"] = nnx.Dropout(rate, broadcast_dims=tuple(broadcast_dims), rngs=nnx.Rngs(dropout=seed))

    build()

    def call(x, training):
        return state["m"](x, deterministic=not training)

    structure = "channel" if tuple(broadcast_dims) else "element"
    shape = (16, 32, 4, 4) if structure == "channel" else None
    return JaxAdapter(call, name=name or f"flax.nnx.Dropout(rate={rate:g})", p=float(rate),
                      variant="inverted", structure=structure, default_shape=shape, seed=seed, reset=build)


def flax_module(module, p: float | None = None, *, seed: int | None = 0, name: str | None = None,
                variant: str | None = None, structure: str | None = None) -> JaxAdapter:
    """Wrap a ``flax.nnx`` module instance (an ``nnx.Dropout`` or any module holding dropouts).

    * ``nnx.Dropout`` is called with ``deterministic=not training``; any
      other module is switched with ``module.train()`` / ``module.eval()``
      (nnx sets ``deterministic`` on every Dropout inside) and called on
      the input alone.
    * A Dropout built without ``rngs=`` has no stream of its own: the
      adapter then passes ``rngs=nnx.Rngs(dropout=seed)`` to the call (the
      module's ``__call__`` must take ``rngs``; else ``TypeError``).
    * Every audit restores the module's RNG state (keys and counters) to
      what it was when wrapped, so auditing it twice replays the masks.
    * ``p`` defaults to the module's ``rate`` (or its one Dropout's).
      There is no gradient check (a stateful nnx stream inside ``jax.vjp``).

    Raises
    ------
    TypeError
        ``module`` is not an ``nnx.Module`` instance, or it needs ``rngs`` it cannot get.
    ValueError
        No drop probability found and none given.
    """
    jax = _jax()
    nnx = require("flax.nnx", purpose="the Flax adapter")
    if inspect.isclass(module) and issubclass(module, nnx.Dropout):
        module = module(0.5 if p is None else float(p), rngs=nnx.Rngs(dropout=int(seed or 0)))
    if not isinstance(module, nnx.Module):
        raise TypeError(f"`module` must be a flax.nnx.Module instance; got {module!r}.")
    drops = [m for _, m in nnx.iter_modules(module) if isinstance(m, nnx.Dropout)]
    own, _ = find_rate(module)
    if own is None and len(drops) == 1:
        own = float(drops[0].rate)
    p = own if p is None else float(p)
    if p is None:
        raise ValueError(f"cannot tell the drop probability of {type(module).__name__} ({len(drops)} nnx.Dropout "
                         f"inside); pass p=.")
    streamless = [m for m in drops if getattr(m, "rngs", None) is None]
    feed = bool(streamless)
    if feed and "rngs" not in inspect.signature(module.__call__).parameters:
        raise TypeError(f"an nnx.Dropout in {type(module).__name__} has no rngs stream and its __call__ takes no "
                        f"`rngs` argument: build the Dropout with rngs=nnx.Rngs(dropout=...) to audit it.")
    is_dropout = isinstance(module, nnx.Dropout)
    # nnx.state() holds the live Variables (it follows the module): tree.map copies them
    state0 = jax.tree.map(lambda a: a, nnx.state(module, nnx.RngState))
    box = {"rngs": nnx.Rngs(dropout=int(seed or 0)) if feed else None}

    def call(x, training):
        kw = {"rngs": box["rngs"]} if feed else {}
        if is_dropout:
            return module(jax.numpy.asarray(x), deterministic=not training, **kw)
        (module.train if training else module.eval)()
        return module(jax.numpy.asarray(x), **kw)

    def reset():
        nnx.update(module, jax.tree.map(lambda a: a, state0))
        if feed:
            box["rngs"] = nnx.Rngs(dropout=int(seed or 0))

    if structure is None and is_dropout:
        structure = "channel" if tuple(module.broadcast_dims) else "element"
    ad = JaxAdapter(call, name=name or f"flax.nnx.{type(module).__name__}(rate={p:g})", p=p,
                    variant=variant or ("inverted" if drops else None), structure=structure,
                    default_shape=(16, 32, 4, 4) if structure == "channel" else None,
                    seed=seed if isinstance(seed, int) else None, reset=reset)

    @contextlib.contextmanager
    def rng_context():  # start from the wrapped state; leave the module's streams as they were
        reset()
        try:
            yield
        finally:
            nnx.update(module, jax.tree.map(lambda a: a, state0))

    ad.rng_context = rng_context
    return ad
