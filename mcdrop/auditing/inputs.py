"""The inputs an audit feeds: nonzero, mixed sign, exactly representable in the dtype."""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_choice, check_seed, check_shape
from ..core.rng import STREAM_INPUT, child_seed
from ..laws import ALPHA_PRIME

__all__ = ["DTYPES", "MAX_ELEMENTS", "MAG_LOW", "MAG_HIGH", "np_dtype", "audit_input", "input_rng", "make_input"]

#: Input dtypes an audit can feed.
DTYPES = ("float32", "float64", "float16", "bfloat16")
#: Largest input accepted: the audit keeps ~100 bytes of accumulators per element.
MAX_ELEMENTS = 2**24
#: Input magnitudes are log-uniform in [MAG_LOW, MAG_HIGH] (float16: up to 10).
MAG_LOW, MAG_HIGH = 0.1, 100.0


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise ValueError("`dtype` 'bfloat16' needs the package ml_dtypes (pip install ml_dtypes).") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def audit_input(shape, dtype="float32", seed=0) -> np.ndarray:
    """The input an audit feeds: nonzero, mixed sign, magnitudes over three decades.

    Magnitudes are log-uniform in [0.1, 100] (float16: [0.1, 10], so that
    ``x / q`` stays finite) with random signs; values within 0.05 of SELU's
    ``alpha' = -1.758`` are moved away (alpha dropout's kept and dropped
    values could otherwise coincide).  Every value is exactly representable
    in ``dtype``, so an implementation computing in ``dtype`` can return it
    unchanged in evaluation mode.  Returned as float64.

    Parameters
    ----------
    shape : tuple of int
    dtype : str, default "float32"
    seed : int, SeedSequence or None
        Seeds the input stream (``rng.STREAM_INPUT`` child of ``seed``).
    """
    shape = check_shape(shape, max_elements=MAX_ELEMENTS)
    dt = np_dtype(check_choice(dtype, "dtype", DTYPES))
    g = input_rng(check_seed(seed))
    return make_input(g, shape, dt)


def input_rng(ss: np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(child_seed(ss, STREAM_INPUT))


def make_input(g: np.random.Generator, shape, dt: np.dtype) -> np.ndarray:
    hi = 10.0 if dt == np.float16 else MAG_HIGH
    mag = np.exp(g.uniform(math.log(MAG_LOW), math.log(hi), size=shape))
    sign = np.where(g.random(shape) < 0.5, -1.0, 1.0)
    x = sign * mag
    near = np.abs(x - ALPHA_PRIME) < 0.05
    x[near] = -x[near]
    return x.astype(dt).astype(np.float64)
