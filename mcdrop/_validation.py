"""Input validation shared by the public functions (scipy's ``_<fn>_iv`` idea).

Every message names the argument in backticks, shows the value and states
what is allowed.  Nothing is clipped or coerced in a way that changes the
question asked.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

__all__ = [
    "resolve_p",
    "resolve_pq",
    "check_alpha",
    "check_positive_int",
    "check_seed",
    "check_x",
    "check_choice",
    "check_shape",
    "check_probability",
]


def check_probability(value: Any, name: str) -> float:
    """Return ``value`` as a float in [0, 1] or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise TypeError(
                f"`{name}` must be a real number in [0, 1]; got {value!r} "
                f"of type {type(value).__name__}."
            )
    f = float(value)
    if not (0.0 <= f <= 1.0):  # also rejects NaN
        raise ValueError(f"`{name}` must be in the interval [0, 1]; got {value!r}.")
    return f


def resolve_pq(p: Any = None, keep: Any = None, *, default: float | None = None) -> tuple[float, float]:
    """Return ``(p, q)``: drop and keep probability, from ``p`` or ``keep``.

    ``p`` is the **drop** probability (PyTorch ``p``, Keras ``rate``);
    ``keep = q = 1 - p`` is the keep probability.  Exactly one may be given;
    the one given is kept exactly and the other is computed from it.
    """
    if p is not None and keep is not None:
        raise ValueError(
            f"give either `p` (drop probability) or `keep` (keep probability), "
            f"not both; got p={p!r} and keep={keep!r}."
        )
    if p is None and keep is None:
        if default is None:
            raise TypeError("missing the drop probability: pass `p=` (or `keep=`).")
        return float(default), 1.0 - float(default)
    if keep is not None:
        q = check_probability(keep, "keep")
        return 1.0 - q, q
    p = check_probability(p, "p")
    return p, 1.0 - p


def resolve_p(p: Any = None, keep: Any = None, *, default: float | None = None) -> float:
    """Return the drop probability from ``p`` or ``keep`` (never both)."""
    return resolve_pq(p, keep, default=default)[0]


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """Return ``alpha`` as a float in the open interval (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (numbers.Real, np.floating)):
        raise TypeError(f"`{name}` must be a real number in (0, 1); got {alpha!r}.")
    f = float(alpha)
    if not (0.0 < f < 1.0):
        raise ValueError(f"`{name}` must be in the open interval (0, 1); got {alpha!r}.")
    return f


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as a Python int >= ``minimum``.

    Floats are accepted only when they are integral (``1e8`` is fine, ``1.5``
    is not), because sample counts are often written in scientific notation.
    """
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != math.floor(value):
            raise TypeError(
                f"`{name}` must be an integer >= {minimum}; got {value!r}."
            )
        value = int(value)
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be an integer >= {minimum}; got {value!r} "
            f"of type {type(value).__name__}."
        ) from None
    if ivalue < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(ivalue)


def check_sample_range(samples: Any, start: Any) -> tuple[int, int]:
    """``(samples, start)`` as ints: ``samples >= 1``, ``start >= 0`` and
    ``start + samples <= 2**63 - 1`` (sample indices are the Philox counter's
    64-bit words and the kernels' int64 loop variables)."""
    n = check_positive_int(samples, "samples")
    s = check_positive_int(start, "start", minimum=0)
    if s + n > 2**63 - 1:
        raise ValueError(f"`start + samples` must be below 2**63; got {s} + {n}.")
    return n, s


def check_seed(seed: Any) -> np.random.SeedSequence:
    """Normalise ``seed`` (int >= 0, SeedSequence or None) to a SeedSequence.

    ``None`` draws fresh entropy from the OS; the returned SeedSequence's
    ``entropy`` is recorded in results so the run can be replayed.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)):
        raise TypeError(
            f"`seed` must be a non-negative int, a numpy.random.SeedSequence or "
            f"None; got {seed!r} of type {type(seed).__name__}."
        )
    if int(seed) < 0:
        raise ValueError(f"`seed` must be a non-negative int; got {seed!r}.")
    return np.random.SeedSequence(int(seed))


def check_x(x: Any, name: str = "x") -> np.ndarray:
    """Return ``x`` as a finite, non-empty float64 array (a copy)."""
    if isinstance(x, (str, bytes)):
        raise TypeError(f"`{name}` must be a numeric array-like; got a string {x!r}.")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"`{name}` must be a numeric array-like; got {x!r}.") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must be a real numeric array-like; got dtype {arr.dtype} "
            f"from {x!r:.80}."
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty; got shape {arr.shape}.")
    arr = np.array(arr, dtype=np.float64, order="C", copy=True)
    if not np.all(np.isfinite(arr)):
        bad = arr.ravel()[~np.isfinite(arr.ravel())][0]
        raise ValueError(f"`{name}` must be finite; it contains {bad!r}.")
    return arr


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}; got {value!r}.")
    return value


def check_shape(shape: Any, name: str = "shape", *, max_elements: int = 2**28) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of positive ints with a bounded product."""
    if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"`{name}` must be a tuple of positive ints; got {shape!r}.")
    if len(shape) == 0:
        raise ValueError(f"`{name}` must have at least one dimension; got {shape!r}.")
    out = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (numbers.Integral, np.integer)):
            raise TypeError(f"`{name}` must be a tuple of positive ints; got {shape!r}.")
        if int(d) < 1:
            raise ValueError(
                f"`{name}` must contain only positive sizes; got {shape!r}."
            )
        out.append(int(d))
    size = math.prod(out)
    if size > max_elements:
        raise ValueError(
            f"`{name}` {tuple(out)} has {size} elements; at most {max_elements} "
            f"are allowed (one call's input and output must fit in memory)."
        )
    return tuple(out)
