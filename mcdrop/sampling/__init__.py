"""Reference sampling: one :func:`simulate` for every law, one :class:`Simulation` record.

``simulate(x, p, *, variant=..., structure=..., samples=..., seed=...)``
draws masks (or noise) of any law of :mod:`mcdrop.laws` on the kernels of
:mod:`mcdrop.core` and returns a :class:`Simulation`: exact, mergeable
statistics in memory independent of the sample count.
"""

from ..core.stream import TRACE_POINTS_PER_DECADE, trace_grid
from .layer import LayerMean
from .record import Simulation, merge_order
from .sampler import simulate

__all__ = ["simulate", "Simulation", "LayerMean", "trace_grid", "TRACE_POINTS_PER_DECADE", "merge_order"]
