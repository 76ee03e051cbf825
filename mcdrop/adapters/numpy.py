"""NumPy adapters: a plain callable, and mcdrop's own correct reference dropout.

:func:`numpy_reference` is a deliberately simple, obviously correct NumPy
implementation of every variant and structure mcdrop audits.  It is the
"known good" implementation of the test suite and the CLI's
``numpy-reference`` target.  It owns a :class:`numpy.random.Generator`
seeded from a :class:`numpy.random.SeedSequence` (no global state).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .._validation import check_choice, check_seed, resolve_pq
from ..laws import ALPHA_PRIME, STRUCTURES, alpha_constants
from ._base import Adapter

#: The laws :func:`numpy_reference` implements.
REFERENCE_VARIANTS = ("inverted", "alpha", "gaussian")

__all__ = ["NumpyAdapter", "numpy_function", "numpy_reference", "mask_shape"]


class NumpyAdapter(Adapter):
    """A NumPy callable with declared metadata (see :class:`~mcdrop.adapters.Adapter`)."""

    framework = "numpy"

    def __init__(self, fn: Callable, *, name: str, p=None, variant=None, structure=None,
                 default_shape=None, seed=None, reset=None):
        super().__init__(name=name, p=p, variant=variant, structure=structure, default_shape=default_shape,
                         seed=seed, framework_version=np.__version__, reset=reset)
        self._fn = fn

    def __call__(self, x: np.ndarray, training: bool):
        return self._fn(x, training)


def numpy_function(fn: Callable, *, p: float | None = None, variant: str | None = None,
                   structure: str | None = None, name: str | None = None) -> NumpyAdapter:
    """Wrap a plain ``fn(x, training) -> ndarray`` and declare what it claims.

    Plain callables can be passed to :func:`mcdrop.audit` directly; this
    wrapper only attaches ``p``/``variant``/``structure`` and a name.
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable fn(x, training) -> array; got {fn!r}.")
    if name is None:
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__name__)}"
    return NumpyAdapter(fn, name=name, p=p, variant=variant, structure=structure)


def mask_shape(shape: tuple, structure: str) -> tuple:
    """Shape of the mask that broadcasts against ``shape`` for a structure."""
    if structure == "element":
        return tuple(shape)
    if structure == "channel":
        return tuple(shape[:2]) + (1,) * (len(shape) - 2)
    return (shape[0],) + (1,) * (len(shape) - 1)


def numpy_reference(p: float | None = None, *, keep: float | None = None, variant: str = "inverted",
                    structure: str = "element", seed=0) -> NumpyAdapter:
    """A correct NumPy dropout (any variant and structure), for comparison and tests.

    Parameters
    ----------
    p, keep : float
        Drop probability ``p`` or keep probability ``keep`` (not both).
    variant : {"inverted", "alpha", "gaussian"}, default "inverted"
    structure : {"element", "channel", "sample"}, default "element"
    seed : int, SeedSequence or None, default 0
        Seeds the masks (an independent Generator per adapter, restarted
        at the start of every audit).

    Notes
    -----
    Training: ``keep = u < q`` with ``u`` uniform float64, one draw per
    unit; inverted ``where(keep, x / q, 0)``; alpha ``a (x keep +
    alpha' (1 - keep)) + b``; Gaussian ``x (1 + sqrt(p/q) N(0, 1))``; computed
    in float64 and rounded once to ``x``'s dtype.  ``p = 1`` returns zeros,
    ``p = 0`` and evaluation mode return ``x`` unchanged (a copy).
    """
    p, q = resolve_pq(p, keep, default=0.5)
    variant = check_choice(variant, "variant", REFERENCE_VARIANTS)
    structure = check_choice(structure, "structure", STRUCTURES)
    if variant == "gaussian" and p == 1.0:
        raise ValueError("`p` must be < 1 for variant='gaussian'; got p=1.0.")
    ss = check_seed(seed)
    gen = np.random.default_rng(ss)

    def reset() -> None:  # every audit restarts the masks from ``seed``
        nonlocal gen
        gen = np.random.default_rng(ss)

    def fn(x: np.ndarray, training: bool) -> np.ndarray:
        x = np.asarray(x)
        if not training or p == 0.0:
            return x.copy()
        if p == 1.0:
            return np.zeros_like(x)
        ms = mask_shape(x.shape, structure)
        xf = x.astype(np.float64)
        if variant == "gaussian":
            noise = 1.0 + math.sqrt(p / q) * gen.standard_normal(ms)
            return (xf * noise).astype(x.dtype)
        kept = gen.random(ms) < q
        if variant == "inverted":
            return np.where(kept, xf / q, 0.0).astype(x.dtype)
        a, b = alpha_constants(p)
        return (a * np.where(kept, xf, ALPHA_PRIME) + b).astype(x.dtype)

    shapes = {"element": (64, 128), "channel": (16, 32, 4, 4), "sample": (64, 128)}
    return NumpyAdapter(fn, name=f"numpy-reference({variant}, {structure}, p={p:g})", p=p,
                        variant=variant, structure=structure, default_shape=shapes[structure],
                        seed=seed if isinstance(seed, int) else None, reset=reset)
