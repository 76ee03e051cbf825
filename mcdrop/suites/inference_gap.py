"""Weight scaling vs Monte Carlo averaging: where "no scaling at inference" stops being exact.

The seed says that with inverted dropout inference needs no scaling "to get a
consistent output".  Precisely:

* **Exact for a linear layer.**  ``z = W (x ⊙ m / q) + b`` has
  ``E[z] = W x + b``: the Monte Carlo mean of training-mode outputs *equals*
  the evaluation output (the check: its interval covers the eval output).
* **Approximate after a nonlinearity.**  ``E[f(z)] ≠ f(E[z])`` in general
  (Jensen): for convex ``f`` such as ReLU the gap is ``>= 0``; for an
  ``L``-Lipschitz ``f`` it is bounded, ``|E f(z) − f(E z)| <= L E|z − E z|
  <= L sd(z)``, with ``sd(z)² = (p/q) Σ_j W_kj² x_j²`` exactly.
* **For a network** ``out = w₂·(f(z) ⊙ m₂/q) + b₂`` (dropout on the input
  and on the hidden layer), the hidden mask is independent of ``z``, so
  ``E[out] − eval = w₂·(E f(z) − f(E z))``: the sum of the units' Jensen
  gaps, bounded by ``Σ_k |w₂_k| L sd(z_k)``.

:func:`simulate_mlp` samples one small MLP's training-mode outputs with the
Philox stream (sample ``s`` uses words ``0..d_in−1`` for the input mask and
``d_in..d_in+H−1`` for the hidden mask: the core's element layout over the
concatenated masks) for four activations at once on the *same* masks —
identity (the linear control), ReLU, tanh, sigmoid — with exact
superaccumulators, so results are bit-identical for any thread count.
:func:`verify_inference_gap` checks the laws and measures the gap as p grows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .._validation import check_positive_int, check_sample_range, check_seed, check_x, resolve_pq
from ..core import rng
from ..core.accumulators import limbs_to_int
from ..core.model_kernels import MLP_ACTIVATIONS, new_mlp_accumulators, run_mlp_batch
from ..core.rng import child_seed
from ..core.stream import check_threads, drive, kernel_threads, mean_var, per_batch

from ..checks import PendingCheck
from ..checks.per_unit import bonferroni_interval, worst, z_pvalues
from ..results import ConfidenceInterval
from ..sampling import merge_order
from ..stats.normal import z_pvalue, z_sum, z_tail
from .results import build_result, pending_mean

__all__ = [
    "ACTIVATIONS",
    "LIPSCHITZ",
    "MLP",
    "default_mlp",
    "MLPSimulation",
    "simulate_mlp",
    "verify_inference_gap",
]

#: Activations sampled together (index = position in the kernel's accumulators).
ACTIVATIONS = MLP_ACTIVATIONS
#: Lipschitz constants.
LIPSCHITZ = {"identity": 1.0, "relu": 1.0, "tanh": 1.0, "sigmoid": 0.25}
P_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
DEFAULT_SAMPLES = 200_000


def _act(name: str, z):
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class MLP:
    """``out = w2 · (f(W1 (x ⊙ m1/q) + b1) ⊙ m2/q) + b2`` (one output)."""

    W1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float

    def __post_init__(self):
        W1 = check_x(self.W1, "W1")
        if W1.ndim != 2:
            raise ValueError(f"`W1` must be a 2-D matrix (hidden, inputs); got shape {W1.shape}.")
        b1 = check_x(self.b1, "b1")
        w2 = check_x(self.w2, "w2")
        if b1.shape != (W1.shape[0],) or w2.shape != (W1.shape[0],):
            raise ValueError(
                f"weight shape mismatch: `b1` and `w2` must have shape ({W1.shape[0]},) for W1 of "
                f"shape {W1.shape}; got {b1.shape} and {w2.shape}."
            )
        if not math.isfinite(float(self.b2)):
            raise ValueError(f"`b2` must be finite; got {self.b2!r}.")
        object.__setattr__(self, "W1", W1)
        object.__setattr__(self, "b1", b1)
        object.__setattr__(self, "w2", w2)
        object.__setattr__(self, "b2", float(self.b2))

    def check_input(self, x) -> np.ndarray:
        x = check_x(x, "x")
        if x.shape != (self.W1.shape[1],):
            raise ValueError(
                f"weight/data shape mismatch: `x` must be a vector of length {self.W1.shape[1]} "
                f"(W1 has shape {self.W1.shape}); got shape {x.shape}."
            )
        return x

    def pre_activation(self, x) -> np.ndarray:
        """``E[z] = W1 x + b1`` (also the eval-mode pre-activation)."""
        return self.W1 @ self.check_input(x) + self.b1

    def eval_output(self, x, activation: str) -> float:
        """Evaluation mode (no masks, no scaling): ``w2 · f(W1 x + b1) + b2``."""
        return float(self.w2 @ _act(activation, self.pre_activation(x)) + self.b2)

    def z_sd(self, x, p) -> np.ndarray:
        """Exact ``sd(z_k) = sqrt((p/q) Σ_j W1_kj² x_j²)``."""
        x = self.check_input(x)
        q = 1.0 - p
        return np.sqrt((p / q) * ((self.W1**2) @ (x * x)))

    def forward(self, x, m1, m2, activation: str, p: float):
        """NumPy reference: ``(z, h, out)`` for keep masks ``m1`` (samples, d_in), ``m2`` (samples, H)."""
        x = self.check_input(x)
        q = 1.0 - p
        z = (x * m1 / q) @ self.W1.T + self.b1
        h = _act(activation, z)
        out = (h * m2 / q) @ self.w2 + self.b2
        return z, h, out


def default_mlp(seed=None, d_in: int = 16, hidden: int = 32) -> tuple[MLP, np.ndarray]:
    """A small random MLP and input whose pre-activations straddle 0 (seeded)."""
    g = np.random.default_rng(check_seed(seed))
    W1 = g.normal(size=(hidden, d_in)) * (1.5 / math.sqrt(d_in))
    b1 = g.normal(size=hidden) * 0.3
    w2 = g.normal(size=hidden) / math.sqrt(hidden)
    x = g.normal(size=d_in)
    return MLP(W1, b1, w2, 0.1), x


def _mv(n: int, z1: int, z2: int) -> tuple[float, float]:
    mean, var = mean_var(n, z1, z2)
    return float(mean), float(var) if var is not None else 0.0


@dataclass(frozen=True)
class MLPSimulation:
    """Exact sums of an MLP's training-mode quantities over ``samples`` mask pairs.

    ``z_sums[k] = (Σ z_k, Σ z_k²)``, ``h_sums[a][k] = (Σ f_a(z_k), Σ f_a(z_k)²)``,
    ``out_sums[a] = (Σ out_a, Σ out_a²)`` as exact integers (units 2**EMIN),
    with ``a`` indexing :data:`ACTIVATIONS`.
    """

    net: MLP
    x: np.ndarray
    p: float
    q: float
    samples: int
    start: int
    key: tuple
    z_sums: tuple
    h_sums: tuple
    out_sums: tuple

    def z_mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        mv = [_mv(self.samples, a, b) for a, b in self.z_sums]
        return np.array([m for m, _ in mv]), np.array([v for _, v in mv])

    def h_mean_var(self, activation: str) -> tuple[np.ndarray, np.ndarray]:
        a = ACTIVATIONS.index(activation)
        mv = [_mv(self.samples, s1, s2) for s1, s2 in self.h_sums[a]]
        return np.array([m for m, _ in mv]), np.array([v for _, v in mv])

    def out_mean_var(self, activation: str) -> tuple[float, float]:
        a = ACTIVATIONS.index(activation)
        return _mv(self.samples, *self.out_sums[a])

    def merge(self, other: "MLPSimulation") -> "MLPSimulation":
        """Combine with the adjacent shard of the same stream (exact)."""
        a, b = merge_order(self, other, ("p", "key"))  # adjacency, p, seed and x
        if not all(np.array_equal(getattr(a.net, f), getattr(b.net, f)) for f in ("W1", "b1", "w2", "b2")):
            raise ValueError("cannot merge simulations of different networks `net`.")

        def add(u, v):
            if isinstance(u, tuple):
                return tuple(add(s, t) for s, t in zip(u, v))
            return u + v

        return MLPSimulation(a.net, a.x, a.p, a.q, a.samples + b.samples, a.start, a.key,
                             add(a.z_sums, b.z_sums), add(a.h_sums, b.h_sums), add(a.out_sums, b.out_sums))

    def __eq__(self, other) -> bool:
        if not isinstance(other, MLPSimulation):
            return NotImplemented
        return (self.p, self.samples, self.start, self.key, self.z_sums, self.h_sums, self.out_sums) == (
            other.p, other.samples, other.start, other.key, other.z_sums, other.h_sums, other.out_sums)

    __hash__ = None  # type: ignore[assignment]


def simulate_mlp(net: MLP, x, p=None, *, keep=None, samples: int, seed=None, start: int = 0,
                 threads: int | None = None) -> MLPSimulation:
    """Sample the MLP's training-mode pre-activations, activations and outputs.

    Parameters
    ----------
    net : MLP
    x : array_like, shape (d_in,)
    p, keep : float
        **Drop** probability ``p`` (both dropout layers) or keep probability
        ``keep`` (never both); ``p < 1``.
    samples : int
    seed, start, threads
        As in :func:`mcdrop.simulate` (bit-identical for any thread count).

    Returns
    -------
    MLPSimulation
    """
    if not isinstance(net, MLP):
        raise TypeError(f"`net` must be an mcdrop.inference_gap.MLP; got {type(net).__name__}.")
    x = net.check_input(x)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the inverted scale 1/q is undefined at p = 1; use p < 1.")
    n, start = check_sample_range(samples, start)
    ss = check_seed(seed)
    t = check_threads(threads)
    key = rng.key_from_seed(ss, rng.STREAM_MASK)
    H = net.W1.shape[0]
    A = len(ACTIVATIONS)
    zs = [[0, 0] for _ in range(H)]
    hs = [[[0, 0] for _ in range(H)] for _ in range(A)]
    os_ = [[0, 0] for _ in range(A)]
    thr = rng.keep_threshold(q_)
    with kernel_threads(t) as (T, _):
        lz, lh, lo = new_mlp_accumulators(H, T)

        def tot(arr):
            return sum(limbs_to_int(arr[ti]) for ti in range(T))

        def run(pos, count):
            run_mlp_batch(net.W1, net.b1, net.w2, net.b2, x, q_, thr, key, pos, count, lz, lh, lo)
            for k in range(H):
                for i in range(2):
                    zs[k][i] += tot(lz[:, k, i])
                    for a in range(A):
                        hs[a][k][i] += tot(lh[:, a, k, i])
            for a in range(A):
                for i in range(2):
                    os_[a][i] += tot(lo[:, a, i])

        drive(run, start, n, per_batch(x.size + H, T), trace=False)
    return MLPSimulation(
        net, x, p_, q_, n, start, (int(key[0]), int(key[1])),
        tuple(tuple(v) for v in zs), tuple(tuple(tuple(v) for v in ha) for ha in hs),
        tuple(tuple(v) for v in os_),
    )


# ---------------------------------------------------------------------------
# the verification (scripts/verify_inference_gap.py)
# ---------------------------------------------------------------------------

_Z95 = 1.959963984540054


def verify_inference_gap(*, seed=0, alpha: float = 1e-6, samples: int | None = None, quick: bool = False,
                         threads: int | None = None, p_grid=P_GRID):
    """Verify where weight scaling equals Monte Carlo averaging, and measure where it does not.

    Laws (one Holm family at ``alpha``), at every p of ``p_grid``: the linear
    layer's MC mean equals the eval pre-activation (every unit, Bonferroni);
    the identity-activation network's MC mean equals its eval output; every
    ReLU unit's gap is ``>= 0``; every unit's ``|gap| <= L sd(z)`` and the
    output's ``|gap| <= Σ_k |w2_k| L sd(z_k)`` (one-sided tests of the bounds).
    Negative control (expected to fail): "the network's eval output equals
    its MC mean" for ReLU/tanh/sigmoid at p = 0.5 — the seed's claim taken as
    exact (tanh and sigmoid only with at least 10**5 samples: their gaps are
    about 2% of the output's sd).  Measurements: the output gap with 95% intervals for each
    activation and p (also relative to the output's sd).
    """
    t0 = time.perf_counter()
    ss = check_seed(seed)
    N = (20_000 if quick else DEFAULT_SAMPLES) if samples is None else check_positive_int(samples, "samples")
    net, x = default_mlp(child_seed(ss, 0))
    mu = net.pre_activation(x)
    H = mu.size
    specs, ctrl, meas = [], [], []
    fig = {"p": list(p_grid), "activations": list(ACTIVATIONS), "gap": {a: [] for a in ACTIVATIONS},
           "ci95": {a: [] for a in ACTIVATIONS}, "bound": {a: [] for a in ACTIVATIONS},
           "out_sd": {a: [] for a in ACTIVATIONS}, "eval": {a: net.eval_output(x, a) for a in ACTIVATIONS},
           "linear_dev": [], "units": None}

    def one_sided(name, est_abs, se, bound, detail):
        # H0: |gap| <= bound; reject when |gap| is significantly above it
        z = (est_abs - bound) / se if se > 0 else (math.inf if est_abs > bound else -math.inf)
        pv = z_pvalue(z, "greater")
        return PendingCheck(
            name=name, pvalue=pv, estimate=est_abs, expected=bound, detail=detail, statistic=z,
            interval=lambda level: ConfidenceInterval(max(0.0, est_abs - z_tail(1 - level) * se),
                                                      math.inf, level))

    zpow = z_sum(alpha / 75, 0.99)  # ~75 law checks, two-sided
    detect = {a: [] for a in ACTIVATIONS}
    for i, p in enumerate(p_grid):
        sim = simulate_mlp(net, x, p, samples=N, seed=child_seed(ss, 10 + i), threads=threads)
        zbar, zvar = sim.z_mean_var()
        sd = net.z_sd(x, p)
        pcs = []
        # 1. the linear layer: E[z] = W x + b (exact law; worst unit, Bonferroni)
        zse = np.sqrt(zvar / N)
        zz, pe = z_pvalues(zbar - mu, zse, zbar == mu)
        w, pw = worst(pe)
        zb, zsw = float(zbar[w]), float(zse[w])
        pcs.append(PendingCheck(
            name="linear layer: E[z] = Wx+b", pvalue=pw, estimate=zb, expected=float(mu[w]),
            detail=(f"worst of {H} hidden units (#{w}): MC mean of the pre-activation over {N:,} input "
                    f"masks vs the eval output W x + b; z-tests, Bonferroni over units."),
            interval=lambda level, zb=zb, zsw=zsw: bonferroni_interval(zb, zsw, H, level),
            statistic=float(zz[w])))
        fig["linear_dev"].append(float(np.max(np.abs(zz))))
        for act in ACTIVATIONS:
            L = LIPSCHITZ[act]
            om, ov = sim.out_mean_var(act)
            ev = net.eval_output(x, act)
            ose = math.sqrt(ov / N)
            gap = om - ev
            bound = float(np.sum(np.abs(net.w2) * L * sd))
            fig["gap"][act].append(gap)
            fig["ci95"][act].append([gap - _Z95 * ose, gap + _Z95 * ose])
            fig["bound"][act].append(bound)
            fig["out_sd"][act].append(math.sqrt(ov))
            detect[act].append(zpow * math.sqrt(ov / N))
            if act == "identity":
                pcs.append(pending_mean(
                    "linear net: E[out] = eval", om, ose, ev,
                    f"identity activation: the 2-layer network is linear, so its MC mean over {N:,} "
                    "mask pairs must equal the eval output (no scaling at inference) exactly."))
                continue
            hbar, hvar = sim.h_mean_var(act)
            g = hbar - _act(act, mu)
            gse = np.sqrt(hvar / N)
            # every unit: |gap| <= L sd(z)  (one-sided, worst unit, Bonferroni)
            with np.errstate(divide="ignore", invalid="ignore"):
                zb_ = np.where(gse > 0, (np.abs(g) - L * sd) / gse, -np.inf)
            k = int(np.argmax(zb_))
            c = one_sided(f"{act}: |unit gap| <= L sd(z)", float(abs(g[k])), float(gse[k]), float(L * sd[k]),
                          f"worst of {H} units (#{k}): |E f(z) - f(E z)| vs L sd(z) with L = {L:g} and the exact "
                          "sd(z) = sqrt((p/q) sum_j W_kj^2 x_j^2); one-sided z-test, Bonferroni over units.")
            c.pvalue = float(min(1.0, H * c.pvalue))
            c.extra = {"worst": k}
            pcs.append(c)
            pcs.append(one_sided(
                f"{act}: |out gap| <= bound", abs(gap), ose, bound,
                f"|E[out] - eval| vs sum_k |w2_k| L sd(z_k) = {bound:.4g}; one-sided z-test."))
            if act == "relu":
                # Jensen: E relu(z) >= relu(E z) for every unit (one-sided, worst unit)
                with np.errstate(divide="ignore", invalid="ignore"):
                    zr = np.where(gse > 0, g / gse, np.where(g >= 0, np.inf, -np.inf))
                kk = int(np.argmin(zr))
                pv = float(min(1.0, H * z_pvalue(float(zr[kk]), "less")))
                gk, sk = float(g[kk]), float(gse[kk])
                pcs.append(PendingCheck(
                    name="relu: E relu(z) >= relu(E z)", pvalue=pv, estimate=gk, expected=0.0,
                    detail=(f"most negative of {H} unit gaps (#{kk}); Jensen for a convex f: the gap cannot "
                            "be negative. One-sided z-test, Bonferroni over units."),
                    interval=lambda level, gk=gk, sk=sk: ConfidenceInterval(
                        gk - z_tail((1 - level) / H) * sk, math.inf, level),
                    statistic=float(zr[kk])))
                if p == 0.5:
                    fig["units"] = {"sd": sd.tolist(), "gap": g.tolist(),
                                    "ci95": [[a - _Z95 * s, a + _Z95 * s] for a, s in zip(g, gse)],
                                    "mu": mu.tolist(), "p": p}
            meas.append({"name": f"{act} p={p:g}: E[out] - eval", "estimate": gap,
                         "interval": [gap - _Z95 * ose, gap + _Z95 * ose], "reference": bound,
                         "note": f"reference: Lipschitz bound; gap/sd(out) = {gap / math.sqrt(ov):+.3g}"})
            # the tanh/sigmoid gaps are ~2% of sd(out): detecting them needs ~1e5 samples
            if p == 0.5 and (act == "relu" or N >= 100_000):
                ctrl.append((f"control_{act}", f"control p=0.5: {act} exact",
                             f"negative control: the seed's claim taken as exact for the {act} network "
                             "(E[out] = eval output)", True,
                             [pending_mean(f"{act}: E[out] = eval", om, ose, ev,
                                           "claimed: no scaling at inference gives the MC mean exactly; "
                                           "false after a nonlinearity (Jensen gap).")]))
        specs.append((f"p{p:g}", f"p={p:g}", f"{N:,} mask pairs (input and hidden dropout), MLP "
                      f"{x.size}-{H}-1", False, pcs))
    specs += ctrl
    notes = [
        f"MLP {x.size}-{H}-1 with dropout on the input and on the hidden layer; activations identity, "
        f"ReLU, tanh, sigmoid sampled on the same masks; {N:,} mask pairs per p.",
        "Exact: the linear layer's and the linear network's MC means equal the eval outputs. "
        "Approximate: after a nonlinearity the gap E[out] - eval is measured (see Measurements).",
        "Power: the output-mean check detects a gap of "
        + ", ".join(f"{a} {min(v):.2g}-{max(v):.2g}" for a, v in detect.items())
        + " (absolute, power 0.99, over the p grid).",
    ]
    return build_result("inference_gap", "mcdrop: weight scaling vs Monte Carlo averaging", specs, alpha,
                        seed, t0, measurements=meas, figures=fig, notes=notes)
