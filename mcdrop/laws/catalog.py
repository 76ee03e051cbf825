"""The correct law of each variant: :func:`variant_law`.

Variants (``variant=``)
-----------------------
``"inverted"``    ``y = x m / q``, ``m ~ Bernoulli(q)``; eval ``y = x``.
``"standard"``    ``y = x m`` (no rescaling in training); eval ``y = q x``.
``"gaussian"``    ``y = x ε``, ``ε ~ N(1, p/q)``; eval ``y = x``.
``"alpha"``       AlphaDropout's affine two-point law; eval ``y = x``.
``"dropconnect"`` ``y = (W ⊙ M / q) x``, a mask per weight; eval ``y = W x``.

Structures (``structure=``): see :mod:`mcdrop.laws.units`.
"""

from __future__ import annotations

from .._validation import check_choice, resolve_pq
from .base import DropoutLaw
from .dropconnect import DropConnectLaw
from .gaussian import GaussianLaw
from .two_point import AlphaLaw, InvertedLaw, StandardLaw, alpha_constants
from .units import STRUCTURES

__all__ = ["VARIANTS", "LAWS", "variant_law"]

#: Every variant's law class, by name.
LAWS = {cls.variant: cls for cls in (InvertedLaw, StandardLaw, GaussianLaw, AlphaLaw, DropConnectLaw)}
VARIANTS = tuple(LAWS)


def variant_law(variant: str = "inverted", p=None, *, keep=None, structure: str = "element") -> DropoutLaw:
    """The correct law of ``variant`` with ``structure`` at drop probability ``p``.

    Parameters
    ----------
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}
    p : float, optional
        **Drop** probability in [0, 1].
    keep : float, optional
        Keep probability ``q = 1 - p`` instead of ``p`` (never both).
    structure : {"element", "channel", "sample"}
        The independent unit (DropConnect: ``"element"``, one draw per weight).

    Raises
    ------
    ValueError
        For an unknown variant or structure, DropConnect with a structure
        other than ``"element"``, or ``p = 1`` where the law is undefined
        (Gaussian: variance p/q; alpha: ``a``; DropConnect: ``1/q``).

    Examples
    --------
    >>> law = variant_law("standard", 0.25)
    >>> law.describe()
    'standard dropout (element): p = 0.25, kept scale 1'
    >>> float(law.eval_output([2.0])[0])
    1.5
    """
    variant = check_choice(variant, "variant", VARIANTS)
    structure = check_choice(structure, "structure", STRUCTURES)
    p_, q_ = resolve_pq(p, keep)
    cls = LAWS[variant]
    if variant == "dropconnect" and structure != "element":
        raise ValueError(
            "variant 'dropconnect' draws one mask entry per weight: `structure` must be "
            f"'element'; got {structure!r}."
        )
    if q_ == 0.0 and cls.undefined_at_p1 is not None:
        raise ValueError(
            f"variant {variant!r} is undefined at p = 1 (keep = 0): {cls.undefined_at_p1}; use p < 1."
        )
    if variant == "inverted":
        return InvertedLaw(p_, q_, structure, scale=0.0 if q_ == 0 else 1.0 / q_)
    if variant == "standard":
        return StandardLaw(p_, q_, structure, scale=1.0, eval_scale=q_)
    if variant == "gaussian":
        return GaussianLaw(p_, q_, structure, noise_var=p_ / q_)
    if variant == "alpha":
        a, b = alpha_constants(p_)
        return AlphaLaw(p_, q_, structure, a=a, b=b)
    return DropConnectLaw(p_, q_, structure, scale=1.0 / q_)
