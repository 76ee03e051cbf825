"""Each dropout variant's theory: output map, mean, variance, support, independent unit.

A :class:`VariantLaw` states what one variant claims at drop probability
``p`` (keep probability ``q = 1 - p``) for a fixed input ``x``.  The reference
kernels (:mod:`mcdrop.variant_sampling`) sample the *correct* law; the checks
(:mod:`mcdrop.variant_checks`) compare what they sampled with a law — the
correct one, which must pass, or a deliberately wrong one (a negative
control, e.g. AlphaDropout with ``b = 0``), which must fail.

Variants (``variant=``)
-----------------------
``"inverted"``    ``y = x m / q``, ``m ~ Bernoulli(q)``; eval ``y = x``.
``"standard"``    ``y = x m`` (no rescaling in training); eval ``y = q x``
                  (the original paper's test-time weight scaling).
``"gaussian"``    ``y = x ε``, ``ε ~ N(1, p/q)`` (Srivastava et al. 2014,
                  §10); eval ``y = x``.  Undefined at ``p = 1``.
``"alpha"``       AlphaDropout (Klambauer et al. 2017): kept ``a x + b``,
                  dropped ``a α′ + b`` with ``α′ = −λα`` (SELU constants),
                  ``a = (q (1 + p α′²))^(−1/2)``, ``b = −a α′ p``; eval
                  ``y = x``.  Undefined at ``p = 1``.
``"dropconnect"`` ``y = (W ⊙ M / q) x`` with one mask entry per *weight*
                  (Wan et al. 2013, with inverted scaling); eval ``y = W x``.
                  Undefined at ``p = 1``.

Structures (``structure=``) — the independent unit of the mask or noise
------------------------------------------------------------------------
``"element"``  one draw per element (DropConnect: per weight).
``"channel"``  ``x`` of shape ``(N, C, *spatial)``: one draw per ``(n, c)``,
               shared by the channel's spatial positions (Dropout1d/2d/3d).
``"sample"``   ``x`` of shape ``(N, *rest)``: one draw per sample ``n``
               (DropPath / stochastic depth).

Units are contiguous runs of ``x.ravel()`` (C order); unit ``u`` covers
elements ``[u g, (u + 1) g)`` with ``g`` the unit size.

Two-point laws
--------------
Inverted, standard and alpha dropout give, per element, one value when kept
and another when dropped: ``y = d + (k − d) m`` with ``k``, ``d`` the kept
and dropped values.  So ``E[y] = q k + p d``, ``Var[y] = p q (k − d)²``,
support ``{d, k}``, and every statistic of a run follows exactly from the
integer keep counts per unit and the per-sample sums ``Σ_u W_u m_u`` with
unit weights ``W_u = Σ_{e ∈ u} c_e``, where ``y_e = o_e + s c_e m`` (see
:meth:`VariantLaw.affine_map`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._validation import check_choice, check_x, resolve_pq

__all__ = [
    "VARIANTS",
    "STRUCTURES",
    "SELU_LAMBDA",
    "SELU_ALPHA",
    "ALPHA_PRIME",
    "alpha_constants",
    "unit_layout",
    "VariantLaw",
    "variant_law",
    "check_weight",
]

VARIANTS = ("inverted", "standard", "gaussian", "alpha", "dropconnect")
STRUCTURES = ("element", "channel", "sample")

#: SELU constants (Klambauer et al. 2017), as in PyTorch and Keras.
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
#: The value AlphaDropout sets dropped units to before the affine map:
#: SELU's negative saturation ``−λα``.
ALPHA_PRIME = -SELU_LAMBDA * SELU_ALPHA

#: Variants whose law is undefined at p = 1 (q = 0), with the reason.
_UNDEFINED_AT_P1 = {
    "gaussian": "the noise variance p/q is infinite",
    "alpha": "a = (q (1 + p α′²))^(−1/2) is infinite",
    "dropconnect": "the inverted scale 1/q is infinite",
}


def alpha_constants(p=None, *, keep=None) -> tuple[float, float]:
    """AlphaDropout's affine constants ``(a, b)`` at drop probability ``p``.

    ``a = (q (1 + p α′²))^(−1/2)`` and ``b = −a α′ p`` with ``α′ = −λα``,
    so that an input with mean 0 and variance 1 keeps mean 0 and variance 1.
    Give ``p`` (drop probability) or ``keep`` (``q = 1 − p``), not both.

    Raises
    ------
    ValueError
        At ``p = 1``, where ``a`` is infinite.

    Examples
    --------
    >>> a, b = alpha_constants(0.0)
    >>> (a, b)
    (1.0, 0.0)
    """
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0.0:
        raise ValueError(
            "variant 'alpha' is undefined at p = 1: " + _UNDEFINED_AT_P1["alpha"] + "."
        )
    a = 1.0 / math.sqrt(q_ * (1.0 + p_ * ALPHA_PRIME**2))
    b = -a * ALPHA_PRIME * p_
    return a, b


def unit_layout(shape, structure: str) -> tuple[int, int]:
    """``(n_units, unit_size)`` of a mask with ``structure`` over ``shape``.

    ``"element"``: one unit per element; ``"channel"``: ``shape = (N, C,
    *spatial)`` with at least one spatial axis, one unit per ``(n, c)``;
    ``"sample"``: ``shape = (N, *rest)`` with ``rest`` non-empty, one unit
    per ``n``.  Units are contiguous in C order.
    """
    structure = check_choice(structure, "structure", STRUCTURES)
    shape = tuple(int(s) for s in shape)
    size = math.prod(shape)
    if structure == "element":
        return size, 1
    if structure == "channel":
        if len(shape) < 3:
            raise ValueError(
                "structure 'channel' needs `x` of shape (N, C, *spatial) with at least "
                f"one spatial axis (one mask per (n, c)); got shape {shape}."
            )
        units = shape[0] * shape[1]
        return units, size // units
    if len(shape) < 2:
        raise ValueError(
            "structure 'sample' (DropPath) needs `x` of shape (N, *rest) with at "
            f"least two axes (one mask per sample n); got shape {shape}."
        )
    return shape[0], size // shape[0]


def check_weight(weight, x: np.ndarray) -> np.ndarray:
    """Validate DropConnect's weight matrix against the input ``x``.

    ``weight`` must be a finite 2-D array of shape ``(out, in)`` with
    ``in == x.size`` (``x`` is one input vector).
    """
    w = check_x(weight, "weight")
    if w.ndim != 2:
        raise ValueError(
            f"variant 'dropconnect': `weight` must be a 2-D matrix (out, in); got shape {w.shape}."
        )
    if x.ndim != 1 or w.shape[1] != x.size:
        raise ValueError(
            f"variant 'dropconnect': weight/data shape mismatch: `weight` has shape "
            f"{w.shape} (out, in), so `x` must be a vector of length {w.shape[1]}; "
            f"got x.shape={x.shape}."
        )
    return w


@dataclass(frozen=True)
class VariantLaw:
    """What one dropout variant claims at drop probability ``p``.

    Build it with :func:`variant_law`; a negative control is the correct law
    with one parameter changed (``dataclasses.replace(law, b=0.0, label=...)``).

    Attributes
    ----------
    variant, structure : str
        See the module docstring.
    p, q : float
        Drop and keep probability.
    scale : float
        Factor applied to kept values (``1/q`` for inverted dropout and
        DropConnect, 1 for standard dropout).
    a, b : float
        AlphaDropout's affine map (1 and 0 for the other variants).
    noise_var : float
        Variance of Gaussian dropout's multiplicative noise (``p/q``).
    eval_scale : float
        Evaluation-mode factor (``q`` for standard dropout, else 1).
    input_mask : bool
        DropConnect only: claim the law of dropout on the layer's *inputs*
        (one mask entry per input, shared by every output) instead of one
        per weight — a negative control: the per-output moments agree, the
        correlation between outputs does not.
    label : str
        How the law is named in reports (says "wrong" for controls).
    """

    variant: str
    structure: str
    p: float
    q: float
    scale: float = 1.0
    a: float = 1.0
    b: float = 0.0
    noise_var: float = 0.0
    eval_scale: float = 1.0
    input_mask: bool = False
    label: str = ""

    def replace(self, **changes) -> "VariantLaw":
        """A copy with some parameters changed (for negative controls)."""
        return dataclasses.replace(self, **changes)

    # -- structure ------------------------------------------------------------
    @property
    def two_point(self) -> bool:
        """True for the Bernoulli-mask variants whose outputs take two values."""
        return self.variant in ("inverted", "standard", "alpha")

    def units(self, shape) -> tuple[int, int]:
        """``(n_units, unit_size)`` for an input of ``shape`` (see :func:`unit_layout`)."""
        if self.variant == "dropconnect":
            return math.prod(shape), 1
        return unit_layout(shape, self.structure)

    def unit_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (shape of ``x``) over each independent unit."""
        n_units, g = self.units(values.shape)
        return np.asarray(values, dtype=np.float64).reshape(n_units, g).sum(axis=1)

    # -- the output map ---------------------------------------------------------
    def affine_map(self, x) -> tuple[np.ndarray, float, np.ndarray]:
        """``(offset, slope, c)`` with ``y = offset + slope * c * m`` (two-point variants).

        ``c`` is what the reference kernel sums per unit: ``x`` for inverted
        and standard dropout (slope ``1/q`` and 1), ``x − α′`` for
        AlphaDropout (slope ``a``, offset ``a α′ + b``).
        """
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "alpha":
            return np.full(x.shape, self.a * ALPHA_PRIME + self.b), self.a, x - ALPHA_PRIME
        if self.variant in ("inverted", "standard"):
            return np.zeros(x.shape), self.scale, x
        raise ValueError(f"variant {self.variant!r} is not a two-point variant.")

    def kept_value(self, x) -> np.ndarray:
        """Output of a kept element (two-point variants)."""
        off, s, c = self.affine_map(x)
        return off + s * c

    def dropped_value(self, x) -> np.ndarray:
        """Output of a dropped element (two-point variants)."""
        off, _, _ = self.affine_map(x)
        return off

    # -- moments ---------------------------------------------------------------
    def mean(self, x, weight=None) -> np.ndarray:
        """``E[y]`` per output under this law."""
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "dropconnect":
            return self.scale * self.q * (np.asarray(weight) @ x)
        if self.variant == "gaussian":
            return x.copy()
        return self.q * self.kept_value(x) + self.p * self.dropped_value(x)

    def var(self, x, weight=None) -> np.ndarray:
        """``Var[y]`` per output under this law."""
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "dropconnect":
            w = np.asarray(weight)
            return self.scale**2 * self.p * self.q * ((w * w) @ (x * x))
        if self.variant == "gaussian":
            return self.noise_var * x * x
        d = self.kept_value(x) - self.dropped_value(x)
        return self.p * self.q * d * d

    def eval_output(self, x, weight=None) -> np.ndarray:
        """The evaluation-mode output (no randomness)."""
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "dropconnect":
            return np.asarray(weight) @ x
        return self.eval_scale * x

    def layer_var(self, x, weight=None) -> float:
        """``Var`` of the per-sample mean over outputs, with independent units.

        This is where the structure shows: elements of one unit move
        together, so their deviations add before squaring.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "dropconnect":
            w = np.asarray(weight)
            n_out = w.shape[0]
            if self.input_mask:  # Σ_i y_i = Σ_j (Σ_i W_ij) x_j m_j / q
                col = w.sum(axis=0) * x
                return float(self.scale**2 * self.p * self.q * np.sum(col * col) / n_out**2)
            v = self.var(x, weight)
            return float(v.sum() / n_out**2)  # outputs use disjoint masks: uncorrelated
        n = x.size
        if self.variant == "gaussian":
            w = self.unit_sums(x)
            return float(self.noise_var * np.sum(w * w) / n**2)
        d = self.kept_value(x) - self.dropped_value(x)
        du = self.unit_sums(d)
        return float(self.p * self.q * np.sum(du * du) / n**2)

    def support(self, x, weight=None) -> str:
        """Plain-text support of one output."""
        if self.variant == "gaussian":
            return "the real line (every output finite; sign flips when ε < 0)"
        if self.variant == "dropconnect":
            return "a subset sum of W_ij x_j / q, inside [Σ min(0, W_ij x_j)/q, Σ max(0, W_ij x_j)/q]"
        if self.variant == "alpha":
            return "{a x + b (kept), a α′ + b (dropped)}"
        return "{0, x/q}" if self.variant == "inverted" else "{0, x}"

    # -- reference forward (NumPy; materialises samples x outputs) ---------------
    def forward(self, x, draws, weight=None) -> np.ndarray:
        """The variant's training output for given unit-level draws (NumPy reference).

        ``draws`` has shape ``(samples, n_units)``: the keep mask (bool) for
        the Bernoulli variants (for DropConnect: ``(samples, out, in)``), the
        standard normal noise ``z`` for Gaussian dropout (``ε = 1 + σ z``).
        Returns shape ``(samples, *x.shape)`` (DropConnect: ``(samples, out)``).
        """
        x = np.asarray(x, dtype=np.float64)
        if self.variant == "dropconnect":
            m = np.asarray(draws, dtype=np.float64)
            return np.einsum("soi,oi,i->so", m, np.asarray(weight), x) * self.scale
        n_units, g = self.units(x.shape)
        d = np.asarray(draws)
        s = d.shape[0]
        per_el = np.repeat(d.reshape(s, n_units), g, axis=1).reshape((s,) + x.shape)
        if self.variant == "gaussian":
            return x * (1.0 + math.sqrt(self.noise_var) * per_el)
        kv = self.kept_value(x)
        dv = self.dropped_value(x)
        return np.where(per_el.astype(bool), kv, dv)

    def describe(self) -> str:
        """One line: the law's name and parameters."""
        base = self.label or f"{self.variant} dropout ({self.structure})"
        if self.variant == "alpha":
            return f"{base}: a = {self.a:.6g}, b = {self.b:.6g}, p = {self.p:g}"
        if self.variant == "gaussian":
            return f"{base}: noise variance {self.noise_var:.6g}, p = {self.p:g}"
        return f"{base}: p = {self.p:g}, kept scale {self.scale:.6g}"


def variant_law(variant: str = "inverted", p=None, *, keep=None, structure: str = "element") -> VariantLaw:
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
    """
    variant = check_choice(variant, "variant", VARIANTS)
    structure = check_choice(structure, "structure", STRUCTURES)
    p_, q_ = resolve_pq(p, keep)
    if variant == "dropconnect" and structure != "element":
        raise ValueError(
            "variant 'dropconnect' draws one mask entry per weight: `structure` must be "
            f"'element'; got {structure!r}."
        )
    if q_ == 0.0 and variant in _UNDEFINED_AT_P1:
        raise ValueError(
            f"variant {variant!r} is undefined at p = 1 (keep = 0): "
            f"{_UNDEFINED_AT_P1[variant]}; use p < 1."
        )
    if variant == "inverted":
        return VariantLaw(variant, structure, p_, q_, scale=0.0 if q_ == 0 else 1.0 / q_)
    if variant == "standard":
        return VariantLaw(variant, structure, p_, q_, scale=1.0, eval_scale=q_)
    if variant == "gaussian":
        return VariantLaw(variant, structure, p_, q_, noise_var=p_ / q_)
    if variant == "alpha":
        a, b = alpha_constants(p_)
        return VariantLaw(variant, structure, p_, q_, a=a, b=b)
    return VariantLaw(variant, structure, p_, q_, scale=1.0 / q_)
