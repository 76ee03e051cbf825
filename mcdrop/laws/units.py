"""The independent unit of a mask or noise: element, channel or sample, defined once.

``structure=`` names the unit that one random draw covers:

``"element"``  one draw per element.
``"channel"``  ``x`` of shape ``(N, C, *spatial)``: one draw per ``(n, c)``,
               shared by the channel's spatial positions (Dropout1d/2d/3d);
               with no spatial axis, ``(N, C)``, a unit is one element.
``"sample"``   ``x`` of shape ``(N, *rest)``: one draw per sample ``n``
               (DropPath / stochastic depth).

Units are contiguous runs of ``x.ravel()`` (C order): unit ``u`` covers
elements ``[u g, (u + 1) g)`` with ``g`` the unit size.  Sampling, the law
checks and the audit all take their layout from :func:`unit_layout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validation import check_choice

__all__ = ["STRUCTURES", "UnitLayout", "unit_layout"]

STRUCTURES = ("element", "channel", "sample")


@dataclass(frozen=True)
class UnitLayout:
    """How ``structure`` cuts an input of ``shape`` into independent units.

    Attributes
    ----------
    n_units : int
        Independent units (draws per sample).
    unit_size : int
        Elements per unit (contiguous in C order).
    group_size : int or None
        Units that belong together in one sample row: the ``C`` channels of
        a sample (channel structure) or the ``N`` samples of a call (sample
        structure); None for element structure.
    unit_shape : tuple of int
        Shape of the array of units (``shape``, ``(N, C)`` or ``(N,)``).
    """

    n_units: int
    unit_size: int
    group_size: int | None
    unit_shape: tuple


def unit_layout(shape, structure: str) -> UnitLayout:
    """The :class:`UnitLayout` of ``structure`` over ``shape``.

    Raises
    ------
    ValueError
        For an unknown structure, a channel structure on fewer than two
        axes, or an empty shape.
    """
    structure = check_choice(structure, "structure", STRUCTURES)
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError(f"structure {structure!r} needs an input with at least one axis; got shape ().")
    size = math.prod(shape)
    if structure == "element":
        return UnitLayout(size, 1, None, shape)
    if structure == "channel":
        if len(shape) < 2:
            raise ValueError(
                "structure 'channel' needs an input of shape (N, C, *spatial) with at least two "
                f"axes (one mask per (n, c) slice); got shape {shape}."
            )
        units = shape[0] * shape[1]
        return UnitLayout(units, size // units, shape[1], shape[:2])
    return UnitLayout(shape[0], size // shape[0], shape[0], shape[:1])
