"""mcdrop's warning hierarchy (filter them with ``warnings.filterwarnings``)."""

from __future__ import annotations

__all__ = ["McdropWarning", "LowPowerWarning"]


class McdropWarning(RuntimeWarning):
    """Base class of every warning mcdrop emits."""


class LowPowerWarning(McdropWarning):
    """The sample budget is too small to detect the effect size asked for."""
