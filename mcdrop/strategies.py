"""Hypothesis strategies for property-testing dropout implementations.

Every strategy is keyword-only, returns a typed ``SearchStrategy`` and raises
:class:`hypothesis.errors.InvalidArgument` for impossible options.  Random
arrays are generated from a drawn **integer seed** (not element by element),
so they are cheap at any size and a failing example replays exactly; the
statistical question itself is never left to Hypothesis' shrinking of floats.

Examples
--------
>>> from hypothesis import given, settings
>>> from mcdrop import strategies as mst
>>> @settings(max_examples=50, derandomize=True, deadline=None)
... @given(cfg=mst.audit_configs())
... def test_my_dropout(cfg):
...     assert_dropout(my_dropout, **cfg, alpha=1e-6 / 50)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

__all__ = [
    "drop_probabilities",
    "seeds",
    "shapes",
    "channel_shapes",
    "input_arrays",
    "audit_configs",
    "DTYPES",
]

#: Floating dtypes an input array may take.
DTYPES = ("float16", "float32", "float64")
#: Magnitudes each dtype holds as normal numbers, with no overflow after rounding.
_MAGNITUDES = {"float16": (1e-4, 6e4), "float32": (1e-37, 3e38), "float64": (1e-307, 1e307)}

_EDGE_PROBABILITIES = (0.0, 1e-6, 0.001, 0.5, 0.999, 1.0 - 1e-6, 1.0)


def _check_unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InvalidArgument(f"`{name}` must be a real number in [0, 1]; got {value!r}.")
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise InvalidArgument(f"`{name}` must be in the interval [0, 1]; got {value!r}.")
    return v


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if int(value) < minimum:
        raise InvalidArgument(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_order(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    if lo > hi:
        raise InvalidArgument(
            f"`{lo_name}` must not exceed `{hi_name}`; got {lo_name}={lo!r} > {hi_name}={hi!r}."
        )


def drop_probabilities(
    *,
    min_value: float = 0.0,
    max_value: float = 1.0,
    exclude_min: bool = False,
    exclude_max: bool = False,
) -> SearchStrategy[float]:
    """Drop probabilities ``p`` in ``[min_value, max_value]``.

    The edges that matter for dropout bugs — 0 and 1 exactly, and values next
    to them (1e-6, 0.001, 0.999, 1 - 1e-6) as well as 0.5, where dividing by
    ``p`` and by ``q`` coincide — are drawn often, when inside the range.

    Parameters
    ----------
    min_value, max_value : float, default 0.0 and 1.0
        The range, inside [0, 1], ``min_value <= max_value``.
    exclude_min, exclude_max : bool, default False
        Leave out that end of the range.

    Returns
    -------
    SearchStrategy[float]
    """
    lo = _check_unit_interval("min_value", min_value)
    hi = _check_unit_interval("max_value", max_value)
    _check_order("min_value", lo, "max_value", hi)
    if lo == hi and (exclude_min or exclude_max):
        raise InvalidArgument(
            f"the interval [{lo!r}, {hi!r}] is empty once an end is excluded."
        )

    def inside(v: float) -> bool:
        return (lo < v or (v == lo and not exclude_min)) and (v < hi or (v == hi and not exclude_max))

    edges = [v for v in _EDGE_PROBABILITIES + (lo, hi) if inside(v)]
    body = st.floats(
        min_value=lo, max_value=hi, exclude_min=exclude_min, exclude_max=exclude_max,
        allow_nan=False, allow_infinity=False,
    )
    if edges:
        return st.one_of(st.sampled_from(sorted(set(edges))), body)
    return body


def seeds() -> SearchStrategy[int]:
    """Integer seeds in ``[0, 2**32)`` (they shrink to 0 and replay exactly)."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def shapes(
    *,
    min_dims: int = 1,
    max_dims: int = 3,
    min_side: int = 1,
    max_side: int = 64,
    max_elements: int = 2**14,
) -> SearchStrategy[tuple[int, ...]]:
    """Array shapes with between ``min_dims`` and ``max_dims`` dimensions.

    No shape has more than ``max_elements`` elements: each side is drawn
    within what remains of the budget once the later sides get ``min_side``.

    Parameters
    ----------
    min_dims, max_dims : int, default 1 and 3
        Number of dimensions, ``1 <= min_dims <= max_dims``.
    min_side, max_side : int, default 1 and 64
        Length of each dimension, ``1 <= min_side <= max_side``.
    max_elements : int, default 2**14
        Largest product of the sides; at least ``min_side**min_dims``.

    Returns
    -------
    SearchStrategy[tuple of int]
    """
    min_dims = _check_int("min_dims", min_dims, 1)
    max_dims = _check_int("max_dims", max_dims, 1)
    min_side = _check_int("min_side", min_side, 1)
    max_side = _check_int("max_side", max_side, 1)
    max_elements = _check_int("max_elements", max_elements, 1)
    _check_order("min_dims", min_dims, "max_dims", max_dims)
    _check_order("min_side", min_side, "max_side", max_side)
    if min_side**min_dims > max_elements:
        raise InvalidArgument(
            f"no shape fits: the smallest, {min_side}**{min_dims} = {min_side ** min_dims} "
            f"elements, exceeds `max_elements`={max_elements}."
        )

    @st.composite
    def _shape(draw) -> tuple[int, ...]:
        nd = draw(st.integers(min_dims, max_dims))
        out: list[int] = []
        budget = max_elements
        for i in range(nd):
            rest = nd - i - 1
            cap = min(max_side, budget // (min_side**rest))
            if cap < min_side:
                break
            side = draw(st.integers(min_side, cap))
            out.append(side)
            budget //= side
        while len(out) < min_dims:
            out.append(min_side)
        return tuple(out)

    return _shape()


def channel_shapes(
    *,
    spatial_dims: Sequence[int] = (0, 1, 2),
    max_batch: int = 8,
    max_channels: int = 32,
    max_side: int = 16,
    max_elements: int = 2**14,
) -> SearchStrategy[tuple[int, ...]]:
    """Shapes ``(N, C, *spatial)`` for channel dropout (Dropout1d/2d/3d).

    ``spatial_dims`` lists the allowed numbers of spatial dimensions (0 gives
    ``(N, C)``, 1 gives ``(N, C, L)`` for Dropout1d, 2 for Dropout2d, 3 for
    Dropout3d).  The mask unit is each ``(n, c)`` slice.  No shape has more
    than ``max_elements`` elements (batch, channels and sides are drawn within
    what remains of it).

    Parameters
    ----------
    spatial_dims : sequence of int, default (0, 1, 2)
        Allowed numbers of spatial dimensions, each in 0..3.
    max_batch, max_channels, max_side : int, default 8, 32 and 16
        Largest ``N``, ``C`` and spatial side (all sides start at 1).
    max_elements : int, default 2**14
        Largest product of the sides.

    Returns
    -------
    SearchStrategy[tuple of int]
    """
    dims = tuple(spatial_dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 3 for d in dims):
        raise InvalidArgument(f"`spatial_dims` must be a non-empty sequence of ints in 0..3; got {spatial_dims!r}.")
    max_batch = _check_int("max_batch", max_batch, 1)
    max_channels = _check_int("max_channels", max_channels, 1)
    max_side = _check_int("max_side", max_side, 1)
    max_elements = _check_int("max_elements", max_elements, 1)

    @st.composite
    def _shape(draw) -> tuple[int, ...]:
        nd = draw(st.sampled_from(dims))
        n = draw(st.integers(1, min(max_batch, max_elements)))
        c = draw(st.integers(1, min(max_channels, max_elements // n)))
        budget = max_elements // (n * c)  # >= 1: sides of 1 always fit
        spatial = []
        for _ in range(nd):
            side = draw(st.integers(1, min(max_side, budget)))
            spatial.append(side)
            budget //= side
        return (n, c, *spatial)

    return _shape()


def _dtype_name(d: Any) -> str:
    try:
        name = np.dtype(d).name
    except TypeError:
        raise InvalidArgument(f"`dtypes` entries must be floating dtypes among {DTYPES}; got {d!r}.") from None
    if name not in DTYPES:
        raise InvalidArgument(f"`dtypes` entries must be floating dtypes among {DTYPES}; got {d!r}.")
    return name


def input_arrays(
    *,
    shape: tuple[int, ...] | SearchStrategy[tuple[int, ...]] | None = None,
    dtypes: Sequence[Any] = DTYPES,
    min_magnitude: float = 1e-2,
    max_magnitude: float = 1e2,
) -> SearchStrategy[np.ndarray]:
    """Nonzero inputs of mixed sign and magnitude, exactly representable in their dtype.

    Magnitudes are log-uniform in ``[min_magnitude, max_magnitude]``, signs
    are random, and no entry is zero, so a mask can be recovered as
    ``y != 0`` and magnitude-dependent dropping shows.  The array is made by
    NumPy from a drawn integer seed: fast at any size and exactly replayable.

    Parameters
    ----------
    shape : tuple of int or SearchStrategy, optional
        A fixed shape, or a strategy for it (default :func:`shapes`).
    dtypes : sequence of dtype, default :data:`DTYPES`
        Floating dtypes to draw from.
    min_magnitude, max_magnitude : float, default 1e-2 and 1e2
        Range of ``|x|``; every dtype among ``dtypes`` must hold it as normal
        numbers (float16: [1e-4, 6e4], float32: [1e-37, 3e38]).

    Returns
    -------
    SearchStrategy[numpy.ndarray]
    """
    names = tuple(_dtype_name(d) for d in dtypes)
    if not names:
        raise InvalidArgument("`dtypes` must not be empty.")
    for nm, v in (("min_magnitude", min_magnitude), ("max_magnitude", max_magnitude)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise InvalidArgument(f"`{nm}` must be a finite positive number; got {v!r}.")
    _check_order("min_magnitude", min_magnitude, "max_magnitude", max_magnitude)
    for nm in names:
        lo, hi = _MAGNITUDES[nm]
        if max_magnitude > hi or min_magnitude < lo:
            raise InvalidArgument(
                f"{nm} holds magnitudes in [{lo:g}, {hi:g}] without overflow or subnormals; "
                f"got [{min_magnitude!r}, {max_magnitude!r}] with {nm} among `dtypes`."
            )
    shape_st = shape if isinstance(shape, SearchStrategy) else (
        shapes() if shape is None else st.just(tuple(int(s) for s in shape))
    )

    @st.composite
    def _array(draw) -> np.ndarray:
        shp = draw(shape_st)
        dt = np.dtype(draw(st.sampled_from(names)))
        seed = draw(seeds())
        g = np.random.default_rng(seed)
        lo, hi = math.log(min_magnitude), math.log(max_magnitude)
        mag = np.exp(g.uniform(lo, hi, size=shp))
        sign = np.where(g.random(shp) < 0.5, -1.0, 1.0)
        return (sign * mag).astype(dt)  # nonzero and finite: magnitudes checked per dtype

    return _array()


def audit_configs(
    *,
    p: SearchStrategy[float] | None = None,
    shape: SearchStrategy[tuple[int, ...]] | None = None,
    structure: str = "element",
    include_seed: bool = True,
) -> SearchStrategy[dict]:
    """Keyword arguments for :func:`mcdrop.audit` / :func:`mcdrop.testing.assert_dropout`.

    Draws ``p`` (default: :func:`drop_probabilities`), ``shape`` (default:
    :func:`shapes`, :func:`channel_shapes` for ``structure="channel"``, at
    least 2-d for ``"sample"``), and an integer ``seed``; ``structure`` is
    passed through.

    Parameters
    ----------
    p, shape : SearchStrategy, optional
        Strategies for the drop probability and the input shape.
    structure : {"element", "channel", "sample"}, default "element"
        The mask structure the audit checks.
    include_seed : bool, default True
        Also draw ``seed`` (leave it out to pass your own).

    Returns
    -------
    SearchStrategy[dict]
        Keyword arguments ``p``, ``shape``, ``structure`` (and ``seed``).
    """
    if structure not in ("element", "channel", "sample"):
        raise InvalidArgument(
            f"`structure` must be one of ('element', 'channel', 'sample'); got {structure!r}."
        )
    p_st = drop_probabilities() if p is None else p
    if shape is None:
        shape = channel_shapes(spatial_dims=(1, 2)) if structure == "channel" else (
            shapes(min_dims=2) if structure == "sample" else shapes()
        )
    fields = {"p": p_st, "shape": shape, "structure": st.just(structure)}
    if include_seed:
        fields["seed"] = seeds()
    return st.fixed_dictionaries(fields)
