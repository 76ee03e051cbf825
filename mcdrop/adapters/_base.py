"""The adapter base class: a framework object turned into ``fn(x, training) -> ndarray``."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import numpy as np

__all__ = ["Adapter", "find_rate", "is_probability", "RATE_ATTRS", "KEEP_ATTRS"]

#: Attribute names that hold a *drop* probability, most specific first.
RATE_ATTRS = ("p", "drop_prob", "drop_rate", "dropout_p", "dropout_prob", "dropout_rate", "rate",
              "dropout", "attn_drop", "attention_dropout")
#: Attribute names that hold a *keep* probability (``p = 1 - value``).
KEEP_ATTRS = ("keep_prob", "keep_rate", "keep")


def is_probability(v) -> bool:
    """``v`` is a plain finite number in [0, 1] (not a bool)."""
    return (isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(float(v)) and 0.0 <= float(v) <= 1.0)


def find_rate(obj) -> tuple[float | None, str | None]:
    """The drop probability an object declares, and the attribute it came from.

    Looks at :data:`RATE_ATTRS` (drop probabilities), then :data:`KEEP_ATTRS`
    (keep probabilities, returned as ``1 - keep``).  Only plain numbers in
    [0, 1] count (a ``dropout`` attribute holding a module does not).
    ``(None, None)`` when there is none.
    """
    for a in RATE_ATTRS:
        v = getattr(obj, a, None)
        if is_probability(v):
            return float(v), a
    for a in KEEP_ATTRS:
        v = getattr(obj, a, None)
        if is_probability(v):
            return 1.0 - float(v), a
    return None, None


class Adapter:
    """A callable ``fn(x, training) -> numpy.ndarray`` wrapping a framework object.

    Besides being the audit protocol, an adapter *declares* what the wrapped
    object claims, so :func:`mcdrop.audit` can take it from there when the
    caller does not say:

    Attributes
    ----------
    name : str
        Readable name of the implementation (the report's ``target``).
    p : float or None
        The drop probability the object was built with, if known.
    variant : str or None
        ``"inverted"``, ``"alpha"`` or ``"gaussian"``.
    structure : str or None
        ``"element"``, ``"channel"`` or ``"sample"``.
    default_shape : tuple or None
        An input shape the object accepts (e.g. 4-D for ``Dropout2d``).
    framework : str or None
        ``"torch"``, ``"jax"``, ``"keras"``, ``"numpy"``.
    framework_version : str or None
    seed : int or None
        Seed of the implementation's own randomness (set in
        :meth:`rng_context`), so a run can be replayed.

    Parameters
    ----------
    reset : callable, optional
        Restarts the implementation's random stream from ``seed``; called
        by the default :meth:`rng_context` at the start of every audit, so
        auditing the same adapter twice gives the same result.
    """

    name: str = "adapter"
    p: float | None = None
    variant: str | None = None
    structure: str | None = None
    default_shape: tuple | None = None
    framework: str | None = None
    framework_version: str | None = None
    seed: int | None = None

    def __init__(self, *, name: str, p: float | None = None, variant: str | None = None,
                 structure: str | None = None, default_shape: tuple | None = None, seed: int | None = None,
                 framework_version: str | None = None, reset: Callable[[], None] | None = None):
        self.name = name
        self.p = p
        self.variant = variant
        self.structure = structure
        self.default_shape = default_shape
        self.seed = seed
        self.framework_version = framework_version
        self._reset = reset

    def __call__(self, x: np.ndarray, training: bool) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def rng_context(self):
        """Context manager seeding the implementation for one audit (default: call ``reset``)."""
        if self._reset is not None:
            self._reset()
        return contextlib.nullcontext()

    def environment(self) -> dict[str, Any]:
        """Framework name and version for the report."""
        if self.framework is None:
            return {}
        return {"framework": self.framework, self.framework: self.framework_version}

    def __repr__(self) -> str:
        return f"<mcdrop adapter {self.name}>"
