"""Reference sampling of the dropout variants: :func:`simulate_variant`.

The same contract as :func:`mcdrop.simulate`: counter-based Philox streams
(``STREAM_MASK`` for Bernoulli masks, ``STREAM_NOISE`` for Gaussian noise),
integer or exact-superaccumulator statistics, memory flat in the sample
count, and bit-identical results whatever the thread count or shard split
(:meth:`VariantSimulation.merge`).

How each variant is sampled
---------------------------
* **Two-point variants** (inverted, standard, alpha; any structure): the
  output is ``y_e = o_e + s c_e m_u(e)`` (see
  :meth:`mcdrop.variants.VariantLaw.affine_map`), so the keep count of each
  unit and the per-sample sum ``R = Σ_u W_u m_u`` with unit weights
  ``W_u = Σ_{e ∈ u} c_e`` are sufficient statistics.  That is exactly what
  the core kernel accumulates, so it runs on the unit weights (unit ``u`` is
  Philox word ``u`` of the sample — for ``structure="element"`` and
  ``variant="inverted"`` the run *is* :func:`mcdrop.simulate`, bit for bit).
* **Gaussian dropout**: :func:`mcdrop.variant_kernels.run_gaussian_batch`
  (integer sums of the grid noise per unit; exact per-sample sums).
* **DropConnect**: :func:`mcdrop.variant_kernels.run_dropconnect_batch`
  (keep counts per weight; exact per-output sums and squares).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from . import _stream, rng, variant_kernels as vk
from ._stream import to_fraction as _frac
from .accumulators import limbs_to_int
from .sampling import LayerMean, _run_inverted, _simulate_iv
from .variants import check_weight, variant_law

__all__ = ["simulate_variant", "VariantSimulation"]


def _normalise_sq(hi: np.ndarray, lo: np.ndarray) -> None:
    carry = lo >> 32
    lo -= carry << 32
    hi += carry


@dataclass(frozen=True, eq=False)
class VariantSimulation:
    """Exact streaming statistics of ``samples`` draws of one dropout variant.

    Produced by :func:`simulate_variant`; combine shards with :meth:`merge`
    (``==`` compares bit for bit).

    Attributes
    ----------
    variant, structure : str
        See :mod:`mcdrop.variants`.
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
    keep_counts : ndarray of int64 or None
        Bernoulli variants: keep count per unit (DropConnect: per weight,
        shape (out, in)).
    keep_count_hist : ndarray of int64 or None
        ``[k]``: samples in which exactly ``k`` units (weights) were kept.
    noise_sum, noise_sumsq_hi, noise_sumsq_lo : ndarray of int64 or None
        Gaussian: per unit ``Σ Z`` and ``Σ Z² = hi 2**32 + lo`` of the grid
        noise ``z = Z 2**-26`` (:mod:`mcdrop.variant_kernels`).
    noise_pow_z : tuple of int
        Gaussian: exact sums over samples of ``Σ_u z_u³`` and ``Σ_u z_u⁴``.
    output_sum_z, output_sumsq_z : tuple of int
        DropConnect: exact ``Σ g_i`` and ``Σ g_i²`` per output
        (``y_i = g_i / q``).
    layer_sum_z, layer_sumsq_z : int
        Exact sums of the per-sample statistic ``R`` whose affine image is
        the layer mean (see :attr:`layer_affine`).
    key : tuple of int
        The Philox key used (mask key, or noise key for Gaussian dropout).
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

    # -- the law and the output map -------------------------------------------
    @property
    def law(self):
        """The correct :class:`~mcdrop.variants.VariantLaw` this run samples."""
        return variant_law(self.variant, self.p, structure=self.structure)

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
    def noise_sd(self) -> float:
        """Gaussian: ``σ = sqrt(p/q)``, the sd of the multiplicative noise."""
        return math.sqrt(self.p / self.q)

    def unit_weights(self) -> np.ndarray:
        """Weights ``W_u`` of the per-sample statistic ``R = Σ_u W_u d_u``."""
        law = self.law
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
        if self.variant == "inverted":
            return Fraction(0), Fraction(1, n) / Fraction(self.q) if self.q else Fraction(0)
        if self.variant == "standard":
            return Fraction(0), Fraction(1, n)
        if self.variant == "alpha":
            off, slope, _ = law.affine_map(self.x)
            return Fraction(float(off.ravel()[0])), Fraction(slope) / n
        if self.variant == "gaussian":
            return Fraction(sum(Fraction(v) for v in self.x.ravel().tolist()), n), Fraction(self.noise_sd) / n
        return Fraction(0), Fraction(1, n) / Fraction(self.q)

    # -- derived statistics ------------------------------------------------------
    def _unit_to_elements(self, a: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(a, dtype=np.float64), self.unit_size).reshape(self.x.shape)

    @property
    def noise_mean(self) -> np.ndarray:
        """Gaussian: per-unit sample mean of the standard noise ``z``."""
        return self.noise_sum / (self.samples * vk._QUANT)

    @property
    def noise_var(self) -> np.ndarray:
        """Gaussian: per-unit unbiased sample variance of ``z``."""
        N = self.samples
        if N < 2:
            return np.full(self.n_units, np.nan)
        s2 = self.noise_sumsq_hi.astype(np.float64) * 2.0**32 + self.noise_sumsq_lo
        s1 = self.noise_sum.astype(np.float64)
        return (s2 - s1 * s1 / N) / (N - 1) / vk._QUANT**2

    @property
    def noise_power_means(self) -> tuple[float, float]:
        """Gaussian: pooled sample means of ``z³`` and ``z⁴`` (0 and 3 for a normal law)."""
        tot = self.samples * self.n_units
        return float(_frac(self.noise_pow_z[0]) / tot), float(_frac(self.noise_pow_z[1]) / tot)

    @property
    def mean(self) -> np.ndarray:
        """Per-output sample mean of ``y`` (from the exact statistics)."""
        N = self.samples
        if self.variant == "gaussian":
            return self.x * (1.0 + self.noise_sd * self._unit_to_elements(self.noise_mean))
        if self.variant == "dropconnect":
            return np.array([float(_frac(z) / N / Fraction(self.q)) for z in self.output_sum_z])
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
            q2 = Fraction(self.q) ** 2
            return np.array([
                float(_stream.mean_var(N, z1, z2)[1] / q2)
                for z1, z2 in zip(self.output_sum_z, self.output_sumsq_z)
            ])
        _, slope, c = self.law.affine_map(self.x)
        k = self._unit_to_elements(self.keep_counts.ravel())
        return (slope * c) ** 2 * k * (N - k) / (float(N) * (N - 1))

    def _layer(self, n: int, z1: int, z2: int) -> tuple[float, float]:
        return _stream.layer_stats(n, z1, z2, *self.layer_affine)

    @property
    def layer_mean(self) -> LayerMean:
        """Per-sample mean over outputs: its sample mean/variance and the law's values."""
        mean, var = self._layer(self.samples, self.layer_sum_z, self.layer_sumsq_z)
        law = self.law
        expected = float(np.mean(law.mean(self.x, self.weight)))
        return LayerMean(mean, var, self.samples, expected, law.layer_var(self.x, self.weight))

    @property
    def trace(self) -> dict:
        """Running layer mean at log-spaced sample counts (``samples``, ``mean``, ``sd``)."""
        return _stream.running_trace(self, self._layer)

    # -- materialised outputs (small batches, for exact checks and tests) -------
    def materialise(self, values: int = 2**20) -> tuple[np.ndarray, np.ndarray]:
        """``(draws, y)`` for the first samples of the stream (at most ``values`` outputs).

        ``draws`` are the unit masks (bool), the noise ``z`` (float) or the
        weight masks; ``y`` is the law's reference forward of them.
        """
        law = self.law
        n_s = max(1, min(self.samples, values // max(self.n_outputs, self.n_units, 1)))
        key = np.array(self.key, dtype=np.uint32)
        if self.variant == "gaussian":
            draws = vk.gaussian_noise(key, self.n_units, n_s, self.start) * vk.NOISE_GRID
        elif self.variant == "dropconnect":
            o, i = self.weight.shape
            draws = rng.bernoulli_mask(key, self.q, o * i, n_s, self.start).reshape(n_s, o, i)
        else:
            draws = rng.bernoulli_mask(key, self.q, self.n_units, n_s, self.start)
        return draws, law.forward(self.x, draws, self.weight)

    # -- combination -----------------------------------------------------------------
    def merge(self, other: "VariantSimulation") -> "VariantSimulation":
        """Combine with an adjacent shard of the same stream (exact; commutative, associative)."""
        a, b = _stream.merge_order(self, other, ("variant", "structure", "p", "q", "key"))
        if (a.weight is None) != (b.weight is None) or (
            a.weight is not None and not np.array_equal(a.weight, b.weight)
        ):
            raise ValueError("cannot merge simulations with different `weight`.")

        def add(u, v):
            return None if u is None else u + v

        hi, lo = a.noise_sumsq_hi, a.noise_sumsq_lo
        if hi is not None:
            hi, lo = hi + b.noise_sumsq_hi, lo + b.noise_sumsq_lo
            _normalise_sq(hi, lo)
        return VariantSimulation(
            weight=a.weight, n_units=a.n_units, unit_size=a.unit_size,
            keep_counts=add(a.keep_counts, b.keep_counts),
            keep_count_hist=add(a.keep_count_hist, b.keep_count_hist),
            noise_sum=add(a.noise_sum, b.noise_sum),
            noise_sumsq_hi=hi, noise_sumsq_lo=lo,
            noise_pow_z=tuple(u + v for u, v in zip(a.noise_pow_z, b.noise_pow_z)),
            output_sum_z=tuple(u + v for u, v in zip(a.output_sum_z, b.output_sum_z)),
            output_sumsq_z=tuple(u + v for u, v in zip(a.output_sumsq_z, b.output_sumsq_z)),
            **_stream.merged_fields(a, b),
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, VariantSimulation):
            return NotImplemented

        def same(a, b):
            if a is None or b is None:
                return a is None and b is None
            return a.shape == b.shape and np.array_equal(a, b)

        return (
            all(getattr(self, k) == getattr(other, k) for k in (
                "variant", "structure", "p", "q", "samples", "start", "n_units", "unit_size",
                "key", "noise_pow_z", "output_sum_z", "output_sumsq_z", "layer_sum_z",
                "layer_sumsq_z", "trace_t", "trace_sum_z", "trace_sumsq_z"))
            and all(same(getattr(self, k), getattr(other, k)) for k in (
                "x", "weight", "keep_counts", "keep_count_hist", "noise_sum",
                "noise_sumsq_hi", "noise_sumsq_lo"))
        )

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        lm = self.layer_mean
        ci = lm.confidence_interval(0.95)
        return (
            f"Simulation of {self.variant} dropout ({self.structure}), p={self.p:g} (keep {self.q:g}), "
            f"{self.n} elements in {self.n_units} units x {self.samples} samples\n"
            f"  layer mean {lm.mean:.8g} (95% CI {ci}; law {lm.expected:.8g})"
        )

    __repr__ = __str__

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready record (exact sums as decimal strings); :meth:`from_dict` inverts it."""

        def arr(a):
            return None if a is None else np.asarray(a).ravel().tolist()

        return _stream.to_record(self, "mcdrop.VariantSimulation", after_shape={
            "weight": None if self.weight is None else self.weight.tolist(),
            "n_units": self.n_units,
            "unit_size": self.unit_size,
        }, after_seed={
            "keep_counts": arr(self.keep_counts),
            "keep_count_hist": arr(self.keep_count_hist),
            "noise_sum": arr(self.noise_sum),
            "noise_sumsq_hi": arr(self.noise_sumsq_hi),
            "noise_sumsq_lo": arr(self.noise_sumsq_lo),
            "noise_pow_exact": [str(z) for z in self.noise_pow_z],
            "output_sum_exact": [str(z) for z in self.output_sum_z],
            "output_sumsq_exact": [str(z) for z in self.output_sumsq_z],
        })

    @classmethod
    def from_dict(cls, d: dict) -> "VariantSimulation":
        """Rebuild a VariantSimulation saved with :meth:`to_dict` (exactly)."""
        common = _stream.record_fields(d, "mcdrop.VariantSimulation")
        w = None if d.get("weight") is None else np.asarray(d["weight"], dtype=np.float64)

        def iarr(name, shp=None):
            v = d.get(name)
            if v is None:
                return None
            a = np.asarray(v, dtype=np.int64)
            return a.reshape(shp) if shp is not None else a

        kc_shape = w.shape if w is not None else (int(d["n_units"]),)
        return cls(
            variant=d["variant"], structure=d["structure"], weight=w,
            n_units=int(d["n_units"]), unit_size=int(d["unit_size"]),
            keep_counts=iarr("keep_counts", kc_shape), keep_count_hist=iarr("keep_count_hist"),
            noise_sum=iarr("noise_sum"), noise_sumsq_hi=iarr("noise_sumsq_hi"),
            noise_sumsq_lo=iarr("noise_sumsq_lo"),
            noise_pow_z=tuple(int(z) for z in d.get("noise_pow_exact", [])),
            output_sum_z=tuple(int(z) for z in d.get("output_sum_exact", [])),
            output_sumsq_z=tuple(int(z) for z in d.get("output_sumsq_exact", [])),
            **common,
        )


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------


def _simulate_variant_iv(x, p, keep, variant, structure, weight, samples, seed, start, threads):
    law = variant_law(variant, p, keep=keep, structure=structure)
    xa, pp, qq, n_samples, ss, start, t = _simulate_iv(x, p, keep, samples, seed, start, threads)
    w = None
    if law.variant == "dropconnect":
        if weight is None:
            raise ValueError("variant 'dropconnect' needs `weight`, the (out, in) matrix whose entries are dropped.")
        w = check_weight(weight, xa)
        bad = _stream.outside_exact_range(w * xa)
        if bad is not None:
            raise ValueError(
                "variant 'dropconnect': every nonzero W_ij x_j must have magnitude in "
                f"[1e-100, 1e100] (so per-output sums and squares are exact); got {bad!r}."
            )
    elif weight is not None:
        raise ValueError(f"`weight` is only used by variant 'dropconnect'; got variant {law.variant!r}.")
    n_units, unit_size = law.units(xa.shape)
    if law.variant == "gaussian" and start + n_samples > vk.MAX_GAUSSIAN_SAMPLES:
        raise ValueError(
            f"variant 'gaussian': `start + samples` must be at most 2**33 (int64 noise sums); "
            f"got {start + n_samples}; split the run into shards and merge them."
        )
    return law, xa, w, n_samples, ss, start, t, n_units, unit_size


def simulate_variant(
    x,
    p=None,
    *,
    keep=None,
    variant: str = "inverted",
    structure: str = "element",
    weight=None,
    samples,
    seed=None,
    start: int = 0,
    threads: int | None = None,
    progress: bool | Callable[[int], object] = False,
    trace: bool = True,
) -> VariantSimulation:
    """Sample a dropout variant on the reference kernels and return exact statistics.

    Parameters
    ----------
    x : array_like
        Input (finite, non-empty).  ``structure="channel"`` needs shape
        ``(N, C, *spatial)``; ``"sample"`` needs ``(N, *rest)``; DropConnect
        needs a vector of length ``in``.
    p : float, optional
        **Drop** probability in [0, 1].
    keep : float, optional
        Keep probability ``q = 1 - p`` instead of ``p`` (never both).
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}
    structure : {"element", "channel", "sample"}
    weight : array_like, optional
        DropConnect's weight matrix, shape ``(out, in)``.
    samples : int
        Number of draws (masks or noise vectors).
    seed : int, SeedSequence or None
        Same seed, same result, whatever ``threads`` and shard split.
    start : int, default 0
        Global index of the first sample (shards; combine with :meth:`VariantSimulation.merge`).
    threads : int, optional
        Numba threads (default: all).
    progress : bool or callable, default False
        True shows a tqdm bar; a callable receives samples completed per kernel call.
    trace : bool, default True
        Record the running layer mean at log-spaced sample counts
        (:attr:`VariantSimulation.trace`); False skips it (fewer, larger
        kernel calls).  Every other statistic is identical either way.

    Returns
    -------
    VariantSimulation

    Raises
    ------
    ValueError
        Naming the variant and the reason: unknown variant/structure, a shape
        the structure cannot use, weight/data shape mismatch, non-finite data,
        or ``p = 1`` where the law is undefined (Gaussian, alpha, DropConnect).

    Examples
    --------
    >>> from mcdrop.variant_sampling import simulate_variant
    >>> s = simulate_variant([2, 4, 6, 8], p=0.5, variant="gaussian", samples=10**5, seed=0)
    >>> round(s.layer_mean.mean, 1)
    5.0
    """
    law, xa, w, n_samples, ss, start, t, n_units, unit_size = _simulate_variant_iv(
        x, p, keep, variant, structure, weight, samples, seed, start, threads
    )
    common = dict(
        variant=law.variant, structure=law.structure, x=xa, weight=w, p=law.p, q=law.q,
        start=start, samples=n_samples, n_units=n_units, unit_size=unit_size,
        seed_entropy=ss.entropy, seed_spawn_key=tuple(ss.spawn_key),
    )
    t0 = time.perf_counter()
    with _stream.kernel_threads(t, progress, n_samples, f"simulate {law.variant}") as (T, callback):
        if law.two_point:
            out = _run_two_point(law, xa, ss, start, n_samples, T, callback, trace)
        elif law.variant == "gaussian":
            out = _run_gaussian(law, xa, n_units, ss, start, n_samples, T, callback, trace)
        else:
            out = _run_dropconnect(law, xa, w, ss, start, n_samples, T, callback, trace)
    out["info"] = {"threads": T, "elapsed_s": time.perf_counter() - t0}
    return VariantSimulation(**out, **common)


def _run_two_point(law, xa, ss, start, n_samples, T, callback, trace) -> dict:
    # The core kernel on the unit weights W_u = Σ_{e in u} c_e: the same key,
    # layout and batches as mcdrop.simulate (bit-identical for the inverted
    # element-wise variant).
    _, _, c = law.affine_map(xa)
    wu = law.unit_sums(c)
    bad = _stream.outside_exact_range(wu)
    if bad is not None:
        raise ValueError(
            f"variant {law.variant!r}: every nonzero unit sum of the inputs must have magnitude in "
            f"[1e-100, 1e100] (so per-sample sums and squares are exact); got {bad!r}."
        )
    return _run_inverted(wu, law.q, ss, start, n_samples, T, callback, trace)


def _run_gaussian(law, xa, n_units, ss, start, n_samples, T, callback, trace) -> dict:
    key = rng.key_from_seed(ss, rng.STREAM_NOISE)
    npairs = (n_units + 1) // 2
    wu = np.zeros(2 * npairs)
    wu[:n_units] = law.unit_sums(xa)
    valid = np.zeros(2 * npairs)
    valid[:n_units] = 1.0
    w2 = np.ascontiguousarray(wu.reshape(npairs, 2).T)  # slot [h, j] <-> unit 2j + h
    v2 = np.ascontiguousarray(valid.reshape(npairs, 2).T)
    acc, limbs = vk.new_gaussian_accumulators(n_units, T)
    tot_sum = np.zeros(2 * npairs, dtype=np.int64)
    tot_hi = np.zeros(2 * npairs, dtype=np.int64)
    tot_lo = np.zeros(2 * npairs, dtype=np.int64)
    pow_z = [0, 0]

    def run(pos, count):
        vk.run_gaussian_batch(w2, v2, key, pos, count, acc, limbs)
        a = acc.sum(axis=0)  # (3, 2, npairs); each thread's sums < 2**56 (2**24 samples)
        tot_sum[:] += a[0].T.ravel()
        tot_lo[:] += a[1].T.ravel()
        tot_hi[:] += a[2].T.ravel()
        _normalise_sq(tot_hi, tot_lo)
        d = [sum(limbs_to_int(limbs[ti, i]) for ti in range(T)) for i in range(4)]
        pow_z[0] += d[2]
        pow_z[1] += d[3]
        return d[0], d[1]

    batch = _stream.per_batch(n_units, T, 2**24)
    z1, z2, tt, t1, t2 = _stream.drive(run, start, n_samples, batch, callback, trace)
    return dict(
        key=(int(key[0]), int(key[1])),
        noise_sum=tot_sum[:n_units].copy(), noise_sumsq_hi=tot_hi[:n_units].copy(),
        noise_sumsq_lo=tot_lo[:n_units].copy(), noise_pow_z=(pow_z[0], pow_z[1]),
        layer_sum_z=z1, layer_sumsq_z=z2, trace_t=tt, trace_sum_z=t1, trace_sumsq_z=t2,
    )


def _run_dropconnect(law, xa, w, ss, start, n_samples, T, callback, trace) -> dict:
    key = rng.key_from_seed(ss, rng.STREAM_MASK)
    n_out, n_in = w.shape
    c = np.ascontiguousarray((w * xa).ravel())
    thr = rng.keep_threshold(law.q)
    counts, hist, limbs_out, limbs_layer = vk.new_dropconnect_accumulators(n_out, n_in, T)
    out_z1 = [0] * n_out
    out_z2 = [0] * n_out

    def run(pos, count):
        vk.run_dropconnect_batch(c, n_out, n_in, thr, key, pos, count, counts, hist, limbs_out, limbs_layer)
        for i in range(n_out):
            out_z1[i] += sum(limbs_to_int(limbs_out[ti, i, 0]) for ti in range(T))
            out_z2[i] += sum(limbs_to_int(limbs_out[ti, i, 1]) for ti in range(T))
        return (
            sum(limbs_to_int(limbs_layer[ti, 0]) for ti in range(T)),
            sum(limbs_to_int(limbs_layer[ti, 1]) for ti in range(T)),
        )

    batch = _stream.per_batch(n_out * n_in, T)
    z1, z2, tt, t1, t2 = _stream.drive(run, start, n_samples, batch, callback, trace)
    return dict(
        key=(int(key[0]), int(key[1])),
        keep_counts=counts.sum(axis=0)[: n_out * n_in].reshape(n_out, n_in),
        keep_count_hist=hist.sum(axis=0),
        output_sum_z=tuple(out_z1), output_sumsq_z=tuple(out_z2),
        layer_sum_z=z1, layer_sumsq_z=z2, trace_t=tt, trace_sum_z=t1, trace_sumsq_z=t2,
    )
