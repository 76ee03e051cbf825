"""Reference sampling of inverted dropout with the Numba kernels.

:func:`simulate` draws ``samples`` independent dropout masks for an input
``x`` and streams them into exact accumulators; the returned
:class:`Simulation` holds everything the checks and plots need, in memory
independent of the sample count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from . import _stream, kernels, rng
from ._stream import TRACE_POINTS_PER_DECADE, trace_grid  # noqa: F401 (public here since 0.1)
from ._validation import (
    check_sample_range,
    check_seed,
    check_threads,
    check_x,
    resolve_pq,
)
from .accumulators import limbs_to_int
from .results import ConfidenceInterval, json_number

__all__ = ["simulate", "Simulation", "LayerMean", "trace_grid"]


@dataclass(frozen=True)
class LayerMean:
    """Summary of the per-sample layer mean ``L = mean_e(y_e)`` over the samples.

    For x = [2, 4, 6, 8] and keep probability 0.5 a mask [1, 0, 1, 0] gives
    y = [4, 0, 12, 0] and L = 4; ``mean`` converges to ``mean(x) = 5``.

    Attributes
    ----------
    mean, var : float
        Sample mean and unbiased variance of L (from exact sums).
    samples : int
        Number of samples (masks) L was computed on.
    expected : float
        ``mean(x)``, the value inverted dropout preserves.
    expected_var : float
        Theory: ``Var[L] = Σ_e x_e² (p/q) / n²`` (independent masks).
    """

    mean: float
    var: float
    samples: int
    expected: float
    expected_var: float

    @property
    def standard_error(self) -> float:
        if self.samples < 2:
            return float("nan")
        return math.sqrt(max(self.var, 0.0) / self.samples)

    def confidence_interval(self, confidence_level: float = 0.95) -> ConfidenceInterval:
        """Normal (CLT) interval for the expected layer mean."""
        from scipy.stats import norm

        if not 0 < confidence_level < 1:
            raise ValueError(
                f"`confidence_level` must be in the open interval (0, 1); got {confidence_level!r}."
            )
        z = float(norm.isf((1 - confidence_level) / 2))
        h = z * self.standard_error
        return ConfidenceInterval(self.mean - h, self.mean + h, confidence_level)

    def __str__(self) -> str:
        ci = self.confidence_interval(0.95)
        return (
            f"layer mean {self.mean:.8g} (95% CI {ci}; expected {self.expected:.8g}) "
            f"over {self.samples} samples"
        )

    def to_dict(self) -> dict:
        return {
            "mean": json_number(self.mean),
            "var": json_number(self.var),
            "samples": self.samples,
            "expected": json_number(self.expected),
            "expected_var": json_number(self.expected_var),
            "standard_error": json_number(self.standard_error),
        }


@dataclass(frozen=True, eq=False)
class Simulation:
    """Exact streaming statistics of ``samples`` inverted-dropout masks.

    Produced by :func:`simulate`; combine shards with :meth:`merge`.  All
    counts are exact integers and the layer sums are exact (see
    :mod:`mcdrop.accumulators`), so ``==`` compares bit for bit.

    Attributes
    ----------
    x : ndarray
        The input (float64, original shape).
    p, q : float
        Drop and keep probability.
    samples : int
        Masks drawn per element.
    start : int
        Global index of the first sample (shards of one stream).
    keep_counts : ndarray of int64
        Exact keep count per element, shape of ``x``.
    keep_count_hist : ndarray of int64, shape (x.size + 1,)
        ``keep_count_hist[k]``: samples in which exactly k elements were kept.
    key : tuple of int
        The Philox key (derived from ``seed``).
    seed_entropy, seed_spawn_key
        The SeedSequence the key came from, so a ``seed=None`` run replays.
    """

    x: np.ndarray
    p: float
    q: float
    samples: int
    start: int
    keep_counts: np.ndarray
    keep_count_hist: np.ndarray
    layer_sum_z: int
    layer_sumsq_z: int
    trace_t: tuple
    trace_sum_z: tuple
    trace_sumsq_z: tuple
    key: tuple
    seed_entropy: object = None
    seed_spawn_key: tuple = ()
    variant: str = "inverted"
    structure: str = "element"
    info: dict = field(default_factory=dict, compare=False)

    # -- derived statistics -------------------------------------------------
    @property
    def n(self) -> int:
        """Number of elements."""
        return int(self.x.size)

    @property
    def scale(self) -> float:
        """The inverted scale ``1/q`` (0 when q = 0: every output is 0)."""
        return 0.0 if self.q == 0 else 1.0 / self.q

    @property
    def effective_keep(self) -> float:
        """The keep probability the 32-bit threshold realises (within 2**-33 of q)."""
        return rng.effective_keep(self.q)

    @property
    def keep_rate(self) -> np.ndarray:
        """Observed keep rate per element."""
        return self.keep_counts / self.samples

    @property
    def mean(self) -> np.ndarray:
        """Per-element mean of ``y = x m / q`` (exact from the keep counts).

        ``y`` takes two values, so its mean ``(x/q) k/N`` and variance
        follow exactly from the integer keep count ``k``.
        """
        return self.x * self.scale * (self.keep_counts / self.samples)

    @property
    def var(self) -> np.ndarray:
        """Per-element unbiased variance of ``y`` (exact from the keep counts)."""
        n = self.samples
        if n < 2:
            return np.full(self.x.shape, np.nan)
        k = self.keep_counts.astype(np.float64)
        return (self.x * self.scale) ** 2 * (k * (n - k)) / (float(n) * (n - 1))

    def _layer_from_z(self, n: int, z1: int, z2: int) -> tuple[float, float]:
        # L = (Σ_e x_e m_e) / (n q): the exact sums are of Σ_e x_e m_e.
        if self.q == 0 or n == 0:
            return 0.0, 0.0
        return _stream.layer_stats(n, z1, z2, Fraction(0), 1 / (self.n * Fraction(self.q)))

    @property
    def layer_mean(self) -> LayerMean:
        """Summary of the per-sample layer mean (mean over elements of y)."""
        mean, var = self._layer_from_z(self.samples, self.layer_sum_z, self.layer_sumsq_z)
        expected = float(np.mean(self.x)) if self.q > 0 else 0.0
        ev = (
            float(np.sum(self.x**2) * (self.p / self.q) / self.n**2) if self.q > 0 else 0.0
        )
        return LayerMean(mean, var, self.samples, expected, ev)

    @property
    def trace(self) -> dict:
        """Running layer mean at log-spaced sample counts.

        Returns a dict of arrays: ``samples`` (count so far), ``mean``
        (running mean of L) and ``sd`` (running sample sd of L); the
        running standard error is ``sd / sqrt(samples)``.
        """
        return _stream.running_trace(self, self._layer_from_z)

    # -- combination ----------------------------------------------------------
    def merge(self, other: "Simulation") -> "Simulation":
        """Combine with an adjacent shard of the same stream.

        ``simulate(x, samples=a + b) == simulate(x, samples=a).merge(
        simulate(x, samples=b, start=a))`` holds exactly (and ``merge`` is
        commutative and associative).  ``other`` must have the same ``x``,
        probability, key and variant, and its sample range must start where
        this one ends or end where this one starts.
        """
        a, b = _stream.merge_order(self, other, ("p", "q", "key", "variant", "structure"))
        return Simulation(
            keep_counts=a.keep_counts + b.keep_counts,
            keep_count_hist=a.keep_count_hist + b.keep_count_hist,
            **_stream.merged_fields(a, b),
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, Simulation):
            return NotImplemented
        return (
            self.p == other.p
            and self.q == other.q
            and self.samples == other.samples
            and self.start == other.start
            and self.key == other.key
            and self.variant == other.variant
            and self.structure == other.structure
            and self.x.shape == other.x.shape
            and np.array_equal(self.x, other.x)
            and np.array_equal(self.keep_counts, other.keep_counts)
            and np.array_equal(self.keep_count_hist, other.keep_count_hist)
            and self.layer_sum_z == other.layer_sum_z
            and self.layer_sumsq_z == other.layer_sumsq_z
            and tuple(self.trace_t) == tuple(other.trace_t)
            and tuple(self.trace_sum_z) == tuple(other.trace_sum_z)
            and tuple(self.trace_sumsq_z) == tuple(other.trace_sumsq_z)
        )

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        lm = self.layer_mean
        rate = self.keep_counts.sum() / (self.samples * self.n)
        return (
            f"Simulation of {self.variant} dropout, p={self.p:g} (keep {self.q:g}), "
            f"{self.n} elements x {self.samples} samples\n"
            f"  pooled keep rate {rate:.8g} (expected {self.q:g})\n  {lm}"
        )

    __repr__ = __str__

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        return _stream.to_record(self, "mcdrop.Simulation", after_shape={}, after_seed={
            "keep_counts": self.keep_counts.ravel().tolist(),
            "keep_count_hist": self.keep_count_hist.tolist(),
        })

    @classmethod
    def from_dict(cls, d: dict) -> "Simulation":
        """Rebuild a Simulation saved with :meth:`to_dict` (exactly)."""
        common = _stream.record_fields(d, "mcdrop.Simulation")
        return cls(
            keep_counts=np.asarray(d["keep_counts"], dtype=np.int64).reshape(common["x"].shape),
            keep_count_hist=np.asarray(d["keep_count_hist"], dtype=np.int64),
            variant=d.get("variant", "inverted"),
            structure=d.get("structure", "element"),
            **common,
        )


def _simulate_iv(x, p, keep, samples, seed, start, threads):
    xa = check_x(x)
    pp, qq = resolve_pq(p, keep)
    n_samples, start = check_sample_range(samples, start)
    # Exact accumulation of S = Σ x_e m_e and of S² (Dekker's TwoProduct)
    # needs every nonzero |x| in [1e-100, 1e100]; real activations are.
    bad = _stream.outside_exact_range(xa)
    if bad is not None:
        raise ValueError(
            f"`x` entries must be 0 or have magnitude in [1e-100, 1e100] (so "
            f"per-sample sums and their squares are accumulated exactly); got {bad!r}."
        )
    ss = check_seed(seed)
    t = check_threads(threads)
    return xa, pp, qq, n_samples, ss, start, t


def simulate(
    x,
    p=None,
    *,
    keep=None,
    samples,
    seed=None,
    start: int = 0,
    threads: int | None = None,
    progress: bool | Callable[[int], object] = False,
) -> Simulation:
    """Draw inverted-dropout masks for ``x`` and return exact statistics.

    Parameters
    ----------
    x : array_like
        Input activations (any shape, finite, non-empty).
    p : float, optional
        **Drop** probability in [0, 1] (PyTorch's ``p``, Keras' ``rate``).
    keep : float, optional
        Keep probability ``q = 1 - p``, as an explicit alternative to ``p``.
        Give exactly one of ``p`` and ``keep``.
    samples : int
        Number of masks to draw (each masks every element of ``x``).
    seed : int, numpy.random.SeedSequence or None
        Seed of the counter-based stream.  The same seed gives bit-identical
        results whatever ``threads`` is and however the range is sharded.
    start : int, default 0
        Global index of the first sample: ``simulate(..., samples=b,
        start=a)`` is the shard ``[a, a + b)`` of the stream, to be combined
        with :meth:`Simulation.merge`.
    threads : int, optional
        Numba threads to use (default: all of numba's threads).
    progress : bool or callable, default False
        True shows a tqdm bar on stderr; a callable receives the number of
        samples completed after every kernel call.

    Returns
    -------
    Simulation

    Notes
    -----
    Memory is ``threads × x.size`` integers, independent of ``samples``.
    A keep decision compares a 32-bit Philox word with ``round(q·2**32)``,
    so the realised keep probability is within 2**-33 of ``q``
    (:attr:`Simulation.effective_keep`).

    Examples
    --------
    >>> import mcdrop
    >>> sim = mcdrop.simulate([2, 4, 6, 8], keep=0.5, samples=10**6, seed=0)
    >>> round(sim.layer_mean.mean, 2)
    5.0
    """
    xa, pp, qq, n_samples, ss, start, t = _simulate_iv(
        x, p, keep, samples, seed, start, threads
    )
    t0 = time.perf_counter()
    with _stream.kernel_threads(t, progress, n_samples, "simulate") as (T, callback):
        out = _run_inverted(xa.ravel(), qq, ss, start, n_samples, T, callback)
    out["keep_counts"] = out["keep_counts"].reshape(xa.shape)
    return Simulation(
        x=xa,
        p=pp,
        q=qq,
        samples=n_samples,
        start=start,
        seed_entropy=ss.entropy,
        seed_spawn_key=tuple(ss.spawn_key),
        info={"threads": T, "elapsed_s": time.perf_counter() - t0},
        **out,
    )


def _run_inverted(values, q, ss, start, n_samples, T, callback, trace=True) -> dict:
    """Inverted-dropout masks over ``values`` (1-d) on the core kernel: the stream's fields.

    Returns ``key``, the flat ``keep_counts``, ``keep_count_hist`` and the
    exact sums of ``Σ_e values_e m_e`` with their trace (see
    :func:`mcdrop._stream.drive`).  :func:`simulate` runs it on ``x``,
    :func:`mcdrop.variant_sampling.simulate_variant` on the unit weights of
    the two-point variants, with the same key, layout and batches.
    """
    key = rng.key_from_seed(ss, rng.STREAM_MASK)
    n = values.size
    vpad = np.zeros(kernels.padded_length(n), dtype=np.float64)
    vpad[:n] = values
    counts, hist, limbs = kernels.new_accumulators(n, T)
    thr = rng.keep_threshold(q)

    def run(pos, count):
        kernels.run_inverted_batch(vpad, n, thr, key, pos, count, counts, hist, limbs)
        return (sum(limbs_to_int(limbs[ti, 0]) for ti in range(T)),
                sum(limbs_to_int(limbs[ti, 1]) for ti in range(T)))

    z1, z2, tt, t1, t2 = _stream.drive(run, start, n_samples, _stream.per_batch(n, T), callback, trace)
    return dict(
        key=(int(key[0]), int(key[1])), keep_counts=counts.sum(axis=0)[:n],
        keep_count_hist=hist.sum(axis=0), layer_sum_z=z1, layer_sumsq_z=z2,
        trace_t=tt, trace_sum_z=t1, trace_sumsq_z=t2,
    )
