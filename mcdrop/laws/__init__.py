"""Dropout laws: what each variant claims (output map, moments, support, unit layout).

One hierarchy (:class:`DropoutLaw`): a two-point law is one affine map on
{0, 1} with :class:`InvertedLaw`, :class:`StandardLaw` and :class:`AlphaLaw`
as its parameterisations; :class:`GaussianLaw` and :class:`DropConnectLaw`
are siblings.  The structure (element, channel or sample units) is defined
once, in :mod:`mcdrop.laws.units`.  Laws never sample and never import numba
or scipy: the reference kernels (:mod:`mcdrop.core`) sample them, the checks
(:mod:`mcdrop.checks`, :mod:`mcdrop.auditing`) test against them.

Build the correct law with :func:`variant_law`; a negative control is the
same law with one parameter changed (``law.replace(b=0.0, label=...)``).
"""

from .base import DropoutLaw, ElementLaw, spacing
from .catalog import LAWS, VARIANTS, variant_law
from .dropconnect import DropConnectLaw, check_weight
from .gaussian import GaussianLaw
from .two_point import (
    ALPHA_PRIME,
    SELU_ALPHA,
    SELU_LAMBDA,
    AlphaLaw,
    InvertedLaw,
    StandardLaw,
    TwoPointLaw,
    alpha_constants,
)
from .units import STRUCTURES, UnitLayout, unit_layout

__all__ = [
    "VARIANTS",
    "STRUCTURES",
    "LAWS",
    "SELU_LAMBDA",
    "SELU_ALPHA",
    "ALPHA_PRIME",
    "alpha_constants",
    "unit_layout",
    "UnitLayout",
    "DropoutLaw",
    "TwoPointLaw",
    "InvertedLaw",
    "StandardLaw",
    "AlphaLaw",
    "GaussianLaw",
    "DropConnectLaw",
    "ElementLaw",
    "variant_law",
    "check_weight",
    "spacing",
]
