"""The record of a reference run: :class:`Simulation`, one type for every law.

A :class:`Simulation` holds the exact streaming statistics of ``samples``
draws of one dropout law on one input (integer keep counts, integer noise
sums, exact superaccumulator sums), so ``==`` compares bit for bit, shards of
one stream merge exactly (:meth:`Simulation.merge`) and ``to_dict`` /
``from_dict`` round-trip exactly.  Every statistic the checks read — per
output mean and variance, the layer mean, materialised outputs — is derived
here through the law's output map (:mod:`mcdrop.laws`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np

from ..core import bitplane, noise_kernel, rng
from ..core.accumulators import EMIN
from ..core.stream import layer_stats, mean_var, running_trace, to_fraction
from ..laws import DropoutLaw, variant_law
from ..results import json_number
from .layer import LayerMean

__all__ = ["Simulation", "merge_order", "RECORD_TYPES", "exact_scale", "normalise_square_sums"]

#: JSON ``type`` of a record: the plain inverted element-wise run keeps the
#: first version's layout; every other law adds its units and sums.
RECORD_TYPES = ("mcdrop.Simulation", "mcdrop.VariantSimulation")


def normalise_square_sums(hi: np.ndarray, lo: np.ndarray) -> None:
    """Carry the low 32-bit halves of ``Σ Z² = hi 2**32 + lo`` into ``hi`` (in place)."""
    carry = lo >> 32
    lo -= carry << 32
    hi += carry


def merge_order(a, b, names: tuple[str, ...]):
    """``(first, second)``: ``a`` and ``b`` in stream order, after checking they can merge.

    ``b`` must be of ``a``'s type, cover the samples adjacent to ``a``'s range
    (on either side), and agree on ``names`` and on ``x``.
    """
    cls = type(a)
    if not isinstance(b, cls):
        raise TypeError(f"`other` must be a {cls.__name__}; got {type(b).__name__}.")
    if b.start + b.samples == a.start:
        a, b = b, a
    if b.start != a.start + a.samples:
        raise ValueError(
            f"`other` must cover the samples adjacent to this simulation's range "
            f"[{a.start}, {a.start + a.samples}); it covers "
            f"[{b.start}, {b.start + b.samples})."
        )
    for name in names:
        if getattr(a, name) != getattr(b, name):
            raise ValueError(
                f"cannot merge simulations with different `{name}`: "
                f"{getattr(a, name)!r} vs {getattr(b, name)!r}."
            )
    if a.x.shape != b.x.shape or not np.array_equal(a.x, b.x):
        raise ValueError("cannot merge simulations of different inputs `x`.")
    return a, b


@dataclass(frozen=True, eq=False)
class Simulation:
    """Exact streaming statistics of ``samples`` draws of one dropout law.

    Produced by :func:`mcdrop.simulate`; combine shards with :meth:`merge`
    (``==`` compares bit for bit).

    Attributes
    ----------
    variant, structure : str
        The law sampled (see :mod:`mcdrop.laws`).
    x : ndarray
        The input (float64, original shape).
    weight : ndarray or None
        DropConnect's weight matrix (out, in).
    p, q : float
        Drop and keep probability.
    samples, start : int
        Samples drawn and global index of the first (shards of one stream).
    n_units, unit_size : int
        Independent units of the mask/noise and elements per unit.
    key : tuple of int
        The Philox key used (mask key, or noise key for Gaussian dropout).
    keep_counts : ndarray of int64 or None
        Bernoulli laws: exact keep count per unit, in the units' shape
        (``x``'s shape element-wise; DropConnect: per weight, (out, in)).
    keep_count_hist : ndarray of int64 or None
        ``[k]``: samples in which exactly ``k`` units (weights) were kept.
    noise_sum, noise_sumsq_hi, noise_sumsq_lo : ndarray of int64 or None
        Gaussian: per unit ``Σ Z`` and ``Σ Z² = hi 2**32 + lo`` of the grid
        noise ``z = Z 2**-26`` (:mod:`mcdrop.core.noise_kernel`).
    noise_pow_z : tuple of int
        Gaussian: exact sums over samples of ``Σ_u z_u³`` and ``Σ_u z_u⁴``.
    output_sum_z, output_sumsq_z : tuple of int
        DropConnect: exact ``Σ g_i`` and ``Σ g_i²`` per output (``y_i = g_i / q``).
    layer_sum_z, layer_sumsq_z : int
        Exact sums of the per-sample statistic ``R`` whose affine image is
        the layer mean (see :attr:`layer_affine`).
    seed_entropy, seed_spawn_key
        The SeedSequence the key came from, so a ``seed=None`` run replays.
    output_law : DropoutLaw or None
        The law whose output map forms ``y`` from the draws (default: the
        sampled law).  :meth:`with_law` sets it: the outputs an
        implementation of another law would give on the same draws.
    stream : int
        The counter-to-draw layout: 2 for the bit-plane masks of the
        two-point laws (:mod:`mcdrop.core.bitplane`), 1 for one 32-bit
        Philox word per draw (Gaussian noise, DropConnect, and records
        written before the stream-2 kernel).
    """

    variant: str
    structure: str
    x: np.ndarray
    weight: np.ndarray | None
    p: float
    q: float
    samples: int
    start: int
    n_units: int
    unit_size: int
    key: tuple
    keep_counts: np.ndarray | None = None
    keep_count_hist: np.ndarray | None = None
    noise_sum: np.ndarray | None = None
    noise_sumsq_hi: np.ndarray | None = None
    noise_sumsq_lo: np.ndarray | None = None
    noise_pow_z: tuple = ()
    output_sum_z: tuple = ()
    output_sumsq_z: tuple = ()
    layer_sum_z: int = 0
    layer_sumsq_z: int = 0
    trace_t: tuple = ()
    trace_sum_z: tuple = ()
    trace_sumsq_z: tuple = ()
    seed_entropy: object = None
    seed_spawn_key: tuple = ()
    info: dict = field(default_factory=dict, compare=False)
    output_law: DropoutLaw | None = field(default=None, compare=False)
    stream: int = 1

    # -- the law and the output map -------------------------------------------
    @functools.cached_property
    def sampled_law(self) -> DropoutLaw:
        """The correct law this run samples."""
        return variant_law(self.variant, self.p, structure=self.structure)

    @property
    def law(self) -> DropoutLaw:
        """The law whose output map forms ``y`` (:attr:`output_law`, else the sampled law)."""
        return self.output_law if self.output_law is not None else self.sampled_law

    def with_law(self, law: DropoutLaw) -> "Simulation":
        """The same draws, with outputs formed by ``law`` (a negative control's implementation).

        ``law`` must draw what this run drew: a two-point law of the same
        input map (inverted, standard or alpha with another scale, ``a`` or
        ``b``), Gaussian noise of another variance, DropConnect with another
        scale.
        """
        base = self.sampled_law
        same_draws = type(law).two_point == type(base).two_point and (
            type(law).two_point or type(law) is type(base)
        ) and law.structure == base.structure
        if not same_draws or (base.variant == "alpha") != (law.variant == "alpha"):
            raise ValueError(
                f"cannot form the outputs of {law.describe()} from the draws of {base.describe()}."
            )
        return replace(self, output_law=law)

    @property
    def n(self) -> int:
        """Number of elements of ``x``."""
        return int(self.x.size)

    @property
    def n_outputs(self) -> int:
        """Number of outputs per sample (DropConnect: rows of W; else x.size)."""
        return int(self.weight.shape[0]) if self.variant == "dropconnect" else self.n

    @property
    def output_shape(self) -> tuple:
        return (self.n_outputs,) if self.variant == "dropconnect" else tuple(self.x.shape)

    @property
    def scale(self) -> float:
        """The factor kept values are multiplied by (``1/q`` inverted; 0 when q = 0)."""
        return float(getattr(self.law, "scale", 1.0))

    @property
    def effective_keep(self) -> float:
        """The keep probability the 32-bit threshold realises (within 2**-33 of q)."""
        return rng.effective_keep(self.q)

    @property
    def keep_rate(self) -> np.ndarray:
        """Observed keep rate per unit."""
        return self.keep_counts / self.samples

    @property
    def noise_sd(self) -> float:
        """Gaussian: the sd of the multiplicative noise of the output law (``sqrt(p/q)``)."""
        return math.sqrt(getattr(self.law, "noise_var", self.p / self.q))

    def unit_weights(self) -> np.ndarray:
        """Weights ``W_u`` of the per-sample statistic ``R = Σ_u W_u d_u``."""
        law = self.sampled_law
        if self.variant == "gaussian":
            return law.unit_sums(self.x)
        if self.variant == "dropconnect":
            raise ValueError("DropConnect has no unit weights (R = Σ_i g_i).")
        _, _, c = law.affine_map(self.x)
        return law.unit_sums(c)

    @functools.cached_property
    def layer_affine(self) -> tuple[Fraction, Fraction]:
        """``(α0, α1)`` with layer mean ``L = α0 + α1 R`` per sample (exact rationals)."""
        n = self.n_outputs
        law = self.law
        if self.variant == "gaussian":
            return Fraction(sum(Fraction(v) for v in self.x.ravel().tolist()), n), Fraction(self.noise_sd) / n
        if self.variant == "dropconnect":
            return Fraction(0), exact_scale(law.scale, self.q) / n
        if law.variant == "alpha":
            off, slope, _ = law.affine_map(self.x)
            return Fraction(float(off.ravel()[0])), Fraction(slope) / n
        return Fraction(0), exact_scale(law.scale, self.q) / n

    # -- derived statistics ------------------------------------------------------
    def _unit_to_elements(self, a: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(a, dtype=np.float64), self.unit_size).reshape(self.x.shape)

    @property
    def noise_mean(self) -> np.ndarray:
        """Gaussian: per-unit sample mean of the standard noise ``z``."""
        return self.noise_sum / (self.samples * noise_kernel.NOISE_SCALE)

    @property
    def noise_var(self) -> np.ndarray:
        """Gaussian: per-unit unbiased sample variance of ``z``."""
        N = self.samples
        if N < 2:
            return np.full(self.n_units, np.nan)
        s2 = self.noise_sumsq_hi.astype(np.float64) * 2.0**32 + self.noise_sumsq_lo
        s1 = self.noise_sum.astype(np.float64)
        return (s2 - s1 * s1 / N) / (N - 1) / noise_kernel.NOISE_SCALE**2

    @property
    def noise_power_means(self) -> tuple[float, float]:
        """Gaussian: pooled sample means of ``z³`` and ``z⁴`` (0 and 3 for a normal law)."""
        tot = self.samples * self.n_units
        return float(to_fraction(self.noise_pow_z[0]) / tot), float(to_fraction(self.noise_pow_z[1]) / tot)

    @property
    def mean(self) -> np.ndarray:
        """Per-output sample mean of ``y`` (exact from the counts and sums)."""
        N = self.samples
        if self.variant == "gaussian":
            return self.x * (1.0 + self.noise_sd * self._unit_to_elements(self.noise_mean))
        if self.variant == "dropconnect":
            s = exact_scale(self.law.scale, self.q)
            return np.array([float(to_fraction(z) / N * s) for z in self.output_sum_z])
        off, slope, c = self.law.affine_map(self.x)
        r = self._unit_to_elements(self.keep_counts.ravel() / N)
        return off + slope * c * r

    @property
    def var(self) -> np.ndarray:
        """Per-output unbiased sample variance of ``y``."""
        N = self.samples
        if N < 2:
            return np.full(self.output_shape, np.nan)
        if self.variant == "gaussian":
            return self.x**2 * self.noise_sd**2 * self._unit_to_elements(self.noise_var)
        if self.variant == "dropconnect":
            s2 = exact_scale(self.law.scale, self.q) ** 2
            return np.array([
                float(mean_var(N, z1, z2)[1] * s2)
                for z1, z2 in zip(self.output_sum_z, self.output_sumsq_z)
            ])
        _, slope, c = self.law.affine_map(self.x)
        k = self._unit_to_elements(self.keep_counts.ravel())
        return (slope * c) ** 2 * k * (N - k) / (float(N) * (N - 1))

    def _layer(self, n: int, z1: int, z2: int) -> tuple[float, float]:
        if n == 0:
            return 0.0, 0.0
        return layer_stats(n, z1, z2, *self.layer_affine)

    @property
    def layer_mean(self) -> LayerMean:
        """Per-sample mean over outputs: its sample mean/variance and the law's values."""
        mean, var = self._layer(self.samples, self.layer_sum_z, self.layer_sumsq_z)
        law = self.law
        expected = float(np.mean(law.mean(self.x, self.weight)))
        return LayerMean(mean, var, self.samples, expected, law.layer_var(self.x, self.weight))

    @property
    def trace(self) -> dict:
        """Running layer mean at log-spaced sample counts.

        Returns a dict of arrays: ``samples`` (count so far), ``mean``
        (running mean of L) and ``sd`` (running sample sd of L); the
        running standard error is ``sd / sqrt(samples)``.
        """
        return running_trace(self, self._layer)

    # -- materialised outputs (small batches, for exact checks and tests) -------
    def materialise(self, values: int = 2**20) -> tuple[np.ndarray, np.ndarray]:
        """``(draws, y)`` for the first samples of the stream (at most ``values`` outputs).

        ``draws`` are the unit masks (bool), the noise ``z`` (float) or the
        weight masks; ``y`` is the output law's reference forward of them.
        """
        n_s = max(1, min(self.samples, values // max(self.n_outputs, self.n_units, 1)))
        key = np.array(self.key, dtype=np.uint32)
        if self.variant == "gaussian":
            draws = noise_kernel.gaussian_noise(key, self.n_units, n_s, self.start) * noise_kernel.NOISE_GRID
        elif self.variant == "dropconnect":
            o, i = self.weight.shape
            draws = rng.bernoulli_mask(key, self.q, o * i, n_s, self.start).reshape(n_s, o, i)
        elif self.stream == 2:
            draws = bitplane.stream2_masks(key, self.q, self.n_units, n_s, self.start)
        else:
            draws = rng.bernoulli_mask(key, self.q, self.n_units, n_s, self.start)
        return draws, self.law.forward(self.x, draws, self.weight)

    # -- combination -----------------------------------------------------------------
    def merge(self, other: "Simulation") -> "Simulation":
        """Combine with an adjacent shard of the same stream (exact; commutative, associative).

        ``simulate(x, samples=a + b) == simulate(x, samples=a).merge(
        simulate(x, samples=b, start=a))`` holds exactly.  ``other`` must
        have the same ``x``, law and key, and its sample range must start
        where this one ends or end where this one starts.
        """
        a, b = merge_order(self, other, ("variant", "structure", "p", "q", "key", "stream"))
        if (a.weight is None) != (b.weight is None) or (
            a.weight is not None and not np.array_equal(a.weight, b.weight)
        ):
            raise ValueError("cannot merge simulations with different `weight`.")

        def add(u, v):
            return None if u is None else u + v

        hi, lo = a.noise_sumsq_hi, a.noise_sumsq_lo
        if hi is not None:
            hi, lo = hi + b.noise_sumsq_hi, lo + b.noise_sumsq_lo
            normalise_square_sums(hi, lo)
        info = dict(a.info)
        info["elapsed_s"] = a.info.get("elapsed_s", 0.0) + b.info.get("elapsed_s", 0.0)
        return Simulation(
            variant=a.variant, structure=a.structure, x=a.x, weight=a.weight, p=a.p, q=a.q,
            samples=a.samples + b.samples, start=a.start, n_units=a.n_units, unit_size=a.unit_size,
            key=a.key,
            keep_counts=add(a.keep_counts, b.keep_counts),
            keep_count_hist=add(a.keep_count_hist, b.keep_count_hist),
            noise_sum=add(a.noise_sum, b.noise_sum), noise_sumsq_hi=hi, noise_sumsq_lo=lo,
            noise_pow_z=tuple(u + v for u, v in zip(a.noise_pow_z, b.noise_pow_z)),
            output_sum_z=tuple(u + v for u, v in zip(a.output_sum_z, b.output_sum_z)),
            output_sumsq_z=tuple(u + v for u, v in zip(a.output_sumsq_z, b.output_sumsq_z)),
            layer_sum_z=a.layer_sum_z + b.layer_sum_z,
            layer_sumsq_z=a.layer_sumsq_z + b.layer_sumsq_z,
            trace_t=tuple(a.trace_t) + tuple(b.trace_t),
            trace_sum_z=tuple(a.trace_sum_z) + tuple(z + a.layer_sum_z for z in b.trace_sum_z),
            trace_sumsq_z=tuple(a.trace_sumsq_z) + tuple(z + a.layer_sumsq_z for z in b.trace_sumsq_z),
            seed_entropy=a.seed_entropy, seed_spawn_key=a.seed_spawn_key, info=info, stream=a.stream,
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, Simulation):
            return NotImplemented

        def same(a, b):
            if a is None or b is None:
                return a is None and b is None
            return a.shape == b.shape and np.array_equal(a, b)

        return (
            all(getattr(self, k) == getattr(other, k) for k in (
                "variant", "structure", "p", "q", "samples", "start", "n_units", "unit_size",
                "key", "stream", "noise_pow_z", "output_sum_z", "output_sumsq_z", "layer_sum_z",
                "layer_sumsq_z"))
            and all(tuple(getattr(self, k)) == tuple(getattr(other, k))
                    for k in ("trace_t", "trace_sum_z", "trace_sumsq_z"))
            and all(same(getattr(self, k), getattr(other, k)) for k in (
                "x", "weight", "keep_counts", "keep_count_hist", "noise_sum",
                "noise_sumsq_hi", "noise_sumsq_lo"))
        )

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        lm = self.layer_mean
        ci = lm.confidence_interval(0.95)
        units = "" if self.structure == "element" else f" in {self.n_units} {self.structure} units"
        lines = [f"Simulation of {self.variant} dropout, p={self.p:g} (keep {self.q:g}), "
                 f"{self.n} elements{units} x {self.samples} samples"]
        if self.keep_counts is not None:
            rate = self.keep_counts.sum() / (self.samples * self.keep_counts.size)
            lines.append(f"  pooled keep rate {rate:.8g} (expected {self.q:g})")
        lines.append(f"  layer mean {lm.mean:.8g} (95% CI {ci}; expected {lm.expected:.8g})")
        return "\n".join(lines)

    __repr__ = __str__

    # -- serialisation ------------------------------------------------------------------
    @property
    def record_type(self) -> str:
        """The JSON ``type``: ``mcdrop.Simulation`` for inverted element-wise dropout."""
        plain = (self.variant, self.structure) == ("inverted", "element")
        return RECORD_TYPES[0] if plain else RECORD_TYPES[1]

    def to_dict(self) -> dict:
        """JSON-ready record (exact sums as decimal strings); :meth:`from_dict` inverts it."""

        def arr(a):
            return None if a is None else np.asarray(a).ravel().tolist()

        if self.record_type == RECORD_TYPES[0]:
            after_shape = {}
            after_seed = {"keep_counts": arr(self.keep_counts), "keep_count_hist": arr(self.keep_count_hist)}
        else:
            after_shape = {
                "weight": None if self.weight is None else self.weight.tolist(),
                "n_units": self.n_units,
                "unit_size": self.unit_size,
            }
            after_seed = {
                "keep_counts": arr(self.keep_counts),
                "keep_count_hist": arr(self.keep_count_hist),
                "noise_sum": arr(self.noise_sum),
                "noise_sumsq_hi": arr(self.noise_sumsq_hi),
                "noise_sumsq_lo": arr(self.noise_sumsq_lo),
                "noise_pow_exact": [str(z) for z in self.noise_pow_z],
                "output_sum_exact": [str(z) for z in self.output_sum_z],
                "output_sumsq_exact": [str(z) for z in self.output_sumsq_z],
            }
        tr = self.trace
        return {
            "type": self.record_type,
            "variant": self.variant,
            "structure": self.structure,
            "stream": self.stream,
            "p": self.p,
            "q": self.q,
            "samples": self.samples,
            "start": self.start,
            "x": self.x.tolist(),
            "shape": list(self.x.shape),
            **after_shape,
            "key": list(self.key),
            "seed_entropy": str(self.seed_entropy) if self.seed_entropy is not None else None,
            "seed_spawn_key": list(self.seed_spawn_key),
            **after_seed,
            "layer_sum_exact": str(self.layer_sum_z),
            "layer_sumsq_exact": str(self.layer_sumsq_z),
            "exact_scale_exponent": EMIN,
            "layer_mean": self.layer_mean.to_dict(),
            "trace": {
                "t": list(self.trace_t),
                "samples": tr["samples"].tolist(),
                "mean": [json_number(v) for v in tr["mean"]],
                "sd": [json_number(v) for v in tr["sd"]],
                "sum_exact": [str(z) for z in self.trace_sum_z],
                "sumsq_exact": [str(z) for z in self.trace_sumsq_z],
            },
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Simulation":
        """Rebuild a Simulation saved with :meth:`to_dict` (exactly; either record type)."""
        if d.get("type") not in RECORD_TYPES:
            raise ValueError(f"not an mcdrop Simulation record (type={d.get('type')!r}).")
        shape = tuple(d["shape"])
        x = np.asarray(d["x"], dtype=np.float64).reshape(shape)
        variant = d.get("variant", "inverted")
        structure = d.get("structure", "element")
        w = None if d.get("weight") is None else np.asarray(d["weight"], dtype=np.float64)
        law = variant_law(variant, float(d["p"]), structure=structure)
        lay = law.layout(w.shape if w is not None else shape)
        n_units = int(d.get("n_units", w.size if w is not None else lay.n_units))
        unit_size = int(d.get("unit_size", 1 if w is not None else lay.unit_size))
        kc_shape = w.shape if w is not None else lay.unit_shape

        def iarr(name, shp=None):
            v = d.get(name)
            if v is None:
                return None
            a = np.asarray(v, dtype=np.int64)
            return a.reshape(shp) if shp is not None else a

        ent = d.get("seed_entropy")
        return cls(
            variant=variant, structure=structure, x=x, weight=w, p=float(d["p"]), q=float(d["q"]),
            samples=int(d["samples"]), start=int(d["start"]), n_units=n_units, unit_size=unit_size,
            key=tuple(int(k) for k in d["key"]),
            keep_counts=iarr("keep_counts", kc_shape), keep_count_hist=iarr("keep_count_hist"),
            noise_sum=iarr("noise_sum"), noise_sumsq_hi=iarr("noise_sumsq_hi"),
            noise_sumsq_lo=iarr("noise_sumsq_lo"),
            noise_pow_z=tuple(int(z) for z in d.get("noise_pow_exact", [])),
            output_sum_z=tuple(int(z) for z in d.get("output_sum_exact", [])),
            output_sumsq_z=tuple(int(z) for z in d.get("output_sumsq_exact", [])),
            layer_sum_z=int(d["layer_sum_exact"]), layer_sumsq_z=int(d["layer_sumsq_exact"]),
            trace_t=tuple(int(t) for t in d["trace"]["t"]),
            trace_sum_z=tuple(int(z) for z in d["trace"]["sum_exact"]),
            trace_sumsq_z=tuple(int(z) for z in d["trace"]["sumsq_exact"]),
            seed_entropy=int(ent) if ent is not None else None,
            seed_spawn_key=tuple(d.get("seed_spawn_key", ())),
            info=d.get("info", {}),
            stream=int(d.get("stream", 1)),
        )


def exact_scale(scale: float, q: float) -> Fraction:
    """``scale`` as an exact rational: ``1/q`` exactly when ``scale`` is the inverted scale."""
    if q > 0 and scale == 1.0 / q:
        return 1 / Fraction(q)
    return Fraction(scale)
