"""Dropout as regularisation: the penalty of Wager, Wang & Liang (2013), by Monte Carlo.

The seed lists dropout beside L2/L1 weight decay and early stopping.  For a
linear model with squared loss and features dropped per example with inverted
scaling, ``X̃ = X ⊙ M / q`` (``M_ij ~ Bernoulli(q)``), the expected training
loss is exactly the clean loss plus an L2 penalty weighted by each feature's
energy:

    E ‖y − X̃ w‖² = ‖y − X w‖² + (p/q) Σ_j w_j² Σ_i x_ij²

(the residual ``r_i = y_i − x̃_i·w`` has mean ``y_i − x_i·w`` and variance
``(p/q) Σ_j x_ij² w_j²``; summing ``E r_i² = mean² + variance`` gives it).
With standardised features (equal energies) it is plain ridge with
``λ = n p/q``; otherwise features with more energy are penalised more.  The
identity holds just as well with **one mask shared by the whole batch**
(each residual has the same marginal law); only the variance of the loss
changes, because the residuals become correlated (:func:`squared_loss_moments`
gives both variances exactly).

For logistic regression the penalty has no closed form; Wager et al.'s
quadratic approximation is ``½ (p/q) Σ_j w_j² Σ_i σ_i (1 − σ_i) x_ij²`` with
``σ_i`` the model's probability at the clean input.  With few features the
*exact* expected loss is a finite sum over the ``2**d`` masks of an example
(:func:`logistic_penalty_exact`), so the Monte Carlo estimate is checked
against the exact value, and the approximation's gap is measured against both.

Sampling uses the core's Philox stream (``STREAM_MASK``; the mask of example
``i``, feature ``j`` is word ``i·d + j`` of the sample, or word ``j`` when
the mask is shared), per-thread exact superaccumulators of the centred loss
``D = L − L₀`` and its powers, so the result is bit-identical for any thread
count and shards merge exactly (:meth:`LossSimulation.merge`).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from scipy import stats as sps

from .._validation import check_positive_int, check_sample_range, check_seed, check_x, resolve_pq
from ..checks import PendingCheck
from ..core import rng
from ..core.accumulators import limbs_to_int
from ..core.model_kernels import LOSS_MOMENTS, new_loss_accumulators, run_loss_batch
from ..core.rng import child_seed
from ..core.stream import check_threads, drive, kernel_threads, mean_var, per_batch, to_fraction
from ..stats.moments import variance_test
from ..stats.normal import z_sum
from .results import build_result, pending_mean

__all__ = [
    "logistic_loss",
    "wager_penalty",
    "feature_energies",
    "squared_loss_moments",
    "logistic_penalty_exact",
    "logistic_penalty_quadratic",
    "simulate_loss",
    "LossSimulation",
    "load_diabetes",
    "verify_regularization",
]

P_LIST = (0.1, 0.3, 0.5, 0.7)
DEFAULT_SAMPLES = 50_000
MAX_ENUM_FEATURES = 16


# ---------------------------------------------------------------------------
# theory
# ---------------------------------------------------------------------------


def _xyw_iv(X, y, w, *, b=0.0):
    X = check_x(X, "X")
    if X.ndim != 2:
        raise ValueError(f"`X` must be a 2-D matrix (examples, features); got shape {X.shape}.")
    w = check_x(w, "w")
    if w.shape != (X.shape[1],):
        raise ValueError(
            f"weight/data shape mismatch: `w` must have one entry per feature (shape "
            f"({X.shape[1]},)); got shape {w.shape}."
        )
    if y is not None:
        y = check_x(y, "y")
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"data shape mismatch: `y` must have one entry per example (shape "
                f"({X.shape[0]},)); got shape {y.shape}."
            )
    if not math.isfinite(float(b)):
        raise ValueError(f"`b` must be finite; got {b!r}.")
    return X, y, w


def _features_iv(features, d: int) -> np.ndarray:
    """Boolean mask of the features that are dropped (default: all)."""
    if features is None:
        return np.ones(d, dtype=bool)
    idx = np.atleast_1d(np.asarray(features))
    if idx.dtype == bool:
        if idx.shape != (d,):
            raise ValueError(f"`features` as a boolean mask must have shape ({d},); got {idx.shape}.")
        return idx.copy()
    if idx.dtype.kind not in "iu" or idx.size == 0 or idx.min() < 0 or idx.max() >= d:
        raise ValueError(f"`features` must be indices in [0, {d}) or a boolean mask; got {features!r}.")
    out = np.zeros(d, dtype=bool)
    out[idx] = True
    return out


def feature_energies(X) -> np.ndarray:
    """``Σ_i x_ij²`` per feature: the weights of the dropout penalty."""
    X = check_x(X, "X")
    return np.sum(X * X, axis=0)


def wager_penalty(X, w, p=None, *, keep=None, features=None, per_feature: bool = False):
    """The dropout penalty of the squared loss, ``(p/q) Σ_j w_j² Σ_i x_ij²``.

    Parameters
    ----------
    X : array_like, shape (n, d)
    w : array_like, shape (d,)
    p, keep : float
        Drop probability ``p`` or keep probability ``keep`` (never both); ``p < 1``.
    features : indices or boolean mask, optional
        Only these features are dropped (default: all).
    per_feature : bool, default False
        Return the per-feature terms instead of their sum.
    """
    X, _, w = _xyw_iv(X, None, w)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the dropout penalty is undefined at p = 1 (the scale 1/q is infinite); use p < 1.")
    f = _features_iv(features, X.shape[1])
    terms = np.where(f, (p_ / q_) * w * w * feature_energies(X), 0.0)
    return terms if per_feature else float(terms.sum())


def _xi_moments(p: float, q: float) -> tuple[float, float, float]:
    """Raw moments 2-4 of ``ξ = 1 − m/q`` (mean 0), ``m ~ Bernoulli(q)``."""
    return p / q, p - p**3 / q**2, p + p**4 / q**3


def squared_loss_moments(X, y, w, p=None, *, keep=None, shared: bool = False, features=None) -> tuple[float, float]:
    """Exact ``(E[L], Var[L])`` of the dropout squared loss ``L = ‖y − X̃ w‖²``.

    ``shared=False``: one mask per example (independent residuals):
    ``Var[L] = Σ_i (4 μ_i² κ2_i + 4 μ_i κ3_i + κ4_i + 2 κ2_i²)`` with
    ``μ_i = y_i − x_i·w`` and ``κ_k,i`` the cumulants of ``Σ_j x_ij w_j ξ_ij``.
    ``shared=True``: one mask for the batch, ``L = const + 2 aᵀξ + ξᵀCξ`` with
    ``a = Bᵀμ``, ``C = BᵀB``, ``B_ij = x_ij w_j``:
    ``Var[L] = 4 m2 Σ a_j² + 4 m3 Σ a_j C_jj + (m4 − m2²) Σ C_jj² + 4 m2² Σ_{j<k} C_jk²``.
    ``E[L]`` is the same in both cases: the Wager identity.
    """
    X, y, w = _xyw_iv(X, y, w)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the dropout loss is undefined at p = 1 (the scale 1/q is infinite); use p < 1.")
    f = _features_iv(features, X.shape[1])
    m2, m3, m4 = _xi_moments(p_, q_)
    mu = y - X @ w
    B = X * w * f
    mean = float(np.sum(mu * mu) + m2 * np.sum(B * B))
    if not shared:
        k2 = m2 * np.sum(B**2, axis=1)
        k3 = m3 * np.sum(B**3, axis=1)
        k4 = (m4 - 3 * m2**2) * np.sum(B**4, axis=1)
        var = float(np.sum(4 * mu**2 * k2 + 4 * mu * k3 + k4 + 2 * k2**2))
    else:
        a = B.T @ mu
        C = B.T @ B
        dC = np.diag(C)
        off = np.sum(np.triu(C, 1) ** 2)
        var = float(4 * m2 * np.sum(a * a) + 4 * m3 * np.sum(a * dC) + (m4 - m2**2) * np.sum(dC**2)
                    + 4 * m2**2 * off)
    return mean, var


def _softplus(z):
    return np.logaddexp(0.0, z)


def logistic_loss(X, y, w, b=0.0) -> float:
    """Clean logistic loss ``Σ_i log(1 + e^{z_i}) − y_i z_i``, ``z = X w + b``."""
    X, y, w = _xyw_iv(X, y, w, b=b)
    z = X @ w + b
    return float(np.sum(_softplus(z) - y * z))


def logistic_penalty_exact(X, y, w, b=0.0, p=None, *, keep=None, features=None) -> float:
    """Exact ``E[Σ_i ℓ(x̃_i·w + b, y_i)] − Σ_i ℓ(x_i·w + b, y_i)`` by enumerating masks.

    Each example's mask takes ``2**k`` values (``k`` dropped features, at most
    :data:`MAX_ENUM_FEATURES`); their probabilities ``q^|kept| p^|dropped|`` and
    losses are summed in float64 (relative rounding ~1e-15).
    """
    X, y, w = _xyw_iv(X, y, w, b=b)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the dropout penalty is undefined at p = 1; use p < 1.")
    f = _features_iv(features, X.shape[1])
    k = int(f.sum())
    if k > MAX_ENUM_FEATURES:
        raise ValueError(f"exact enumeration needs at most {MAX_ENUM_FEATURES} dropped features; got {k}.")
    masks = np.array(list(itertools.product([0.0, 1.0], repeat=k)))  # 2**k x k
    prob = np.prod(np.where(masks == 1.0, q_, p_), axis=1)
    C = X * w
    fixed = C[:, ~f].sum(axis=1) + b  # n
    z = fixed[:, None] + (C[:, f] / q_) @ masks.T  # n x 2**k
    loss = _softplus(z) - y[:, None] * z
    expected = float(np.sum(loss @ prob))
    return expected - logistic_loss(X, y, w, b)


def logistic_penalty_quadratic(X, y, w, b=0.0, p=None, *, keep=None, features=None) -> float:
    """Wager et al.'s quadratic approximation ``½ (p/q) Σ_j w_j² Σ_i σ_i (1 − σ_i) x_ij²``."""
    X, y, w = _xyw_iv(X, y, w, b=b)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the dropout penalty is undefined at p = 1; use p < 1.")
    f = _features_iv(features, X.shape[1])
    s = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    v = s * (1 - s)
    return float(0.5 * (p_ / q_) * np.sum(np.where(f, w * w, 0.0) * (v @ (X * X))))


# ---------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSimulation:
    """Exact sums of the centred dropout loss ``D = L − L0`` over ``samples`` masks.

    Attributes
    ----------
    samples, start : int
    L0 : float
        The centring constant (the theoretical or clean loss); the loss is
        ``L = L0 + D``.
    clean_loss : float
        The loss without dropout (eval mode).
    z : tuple of int
        Exact ``Σ D``, ``Σ D²``, ``Σ D³``, ``Σ D⁴`` (units of ``2**EMIN``).
    """

    samples: int
    start: int
    L0: float
    clean_loss: float
    z: tuple
    key: tuple
    config: tuple

    def _raw(self, k: int) -> Fraction:
        return to_fraction(self.z[k - 1]) / self.samples

    @property
    def mean(self) -> float:
        """Sample mean of the loss ``L``."""
        return float(Fraction(self.L0) + self._raw(1))

    @property
    def var(self) -> float:
        """Unbiased sample variance of ``L``."""
        _, var = mean_var(self.samples, self.z[0], self.z[1])
        return float(var) if var is not None else float("nan")

    @property
    def fourth_central_moment(self) -> float:
        """Sample fourth central moment of ``L`` (from the exact raw sums of D)."""
        m1, m2, m3, m4 = (float(self._raw(k)) for k in (1, 2, 3, 4))
        return m4 - 4 * m3 * m1 + 6 * m2 * m1 * m1 - 3 * m1**4

    @property
    def penalty(self) -> float:
        """``mean(L) − clean loss``: the Monte Carlo estimate of the dropout penalty."""
        return float(Fraction(self.L0) + self._raw(1) - Fraction(self.clean_loss))

    @property
    def penalty_se(self) -> float:
        return math.sqrt(self.var / self.samples)

    def merge(self, other: "LossSimulation") -> "LossSimulation":
        """Combine with the adjacent shard of the same stream (exact)."""
        if other.start + other.samples == self.start:
            return other.merge(self)
        if other.start != self.start + self.samples:
            raise ValueError("`other` must cover the samples adjacent to this simulation's range.")
        if (self.L0, self.clean_loss, self.key, self.config) != (other.L0, other.clean_loss, other.key, other.config):
            raise ValueError("cannot merge loss simulations of different problems, seeds or centring.")
        return LossSimulation(self.samples + other.samples, self.start, self.L0, self.clean_loss,
                              tuple(a + b for a, b in zip(self.z, other.z)), self.key, self.config)


def simulate_loss(
    X,
    y,
    w,
    p=None,
    *,
    keep=None,
    b: float = 0.0,
    loss: str = "squared",
    shared: bool = False,
    features=None,
    samples: int,
    seed=None,
    start: int = 0,
    threads: int | None = None,
    center: float | None = None,
) -> LossSimulation:
    """Monte Carlo of the dropout training loss of a linear model.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Features (finite).
    y : array_like, shape (n,)
        Targets (squared loss) or labels in {0, 1} (logistic loss).
    w : array_like, shape (d,)
        Weights; ``b`` is an intercept (never dropped).
    p, keep : float
        **Drop** probability ``p`` or keep probability ``keep`` (never both), ``p < 1``.
    loss : {"squared", "logistic"}
    shared : bool, default False
        One mask for the whole batch instead of one per example.
    features : indices or boolean mask, optional
        Drop only these features (the others are always kept, unscaled).
    samples : int
        Number of masks (of the whole batch).
    seed, start, threads
        As in :func:`mcdrop.simulate`: same seed, same bits for any thread
        count; ``start`` selects a shard of the stream.
    center : float, optional
        Centring constant ``L0`` of the accumulated ``D = L − L0`` (default:
        the clean loss plus the squared-loss penalty); only affects rounding.

    Returns
    -------
    LossSimulation
    """
    X, y, w = _xyw_iv(X, y, w, b=b)
    p_, q_ = resolve_pq(p, keep)
    if q_ == 0:
        raise ValueError("the dropout loss is undefined at p = 1 (the scale 1/q is infinite); use p < 1.")
    if loss not in ("squared", "logistic"):
        raise ValueError(f"`loss` must be 'squared' or 'logistic'; got {loss!r}.")
    if loss == "logistic" and not np.all((y == 0) | (y == 1)):
        raise ValueError("`y` must be labels in {0, 1} for the logistic loss.")
    n_samples, start = check_sample_range(samples, start)
    ss = check_seed(seed)
    t = check_threads(threads)
    f = _features_iv(features, X.shape[1])
    key = rng.key_from_seed(ss, rng.STREAM_MASK)
    C = np.ascontiguousarray(X * w)
    kv = np.where(f, 1.0 / q_, 1.0)
    dv = np.where(f, 0.0, 1.0)
    if loss == "squared":
        clean = float(np.sum((y - X @ w - b) ** 2))
        L0 = clean + wager_penalty(X, w, p_, features=f) if center is None else float(center)
    else:
        clean = logistic_loss(X, y, w, b)
        L0 = clean if center is None else float(center)
    nw = X.shape[1] if shared else X.size
    zs = [0] * LOSS_MOMENTS
    thr = rng.keep_threshold(q_)
    with kernel_threads(t) as (T, _):
        limbs = new_loss_accumulators(T)

        def run(pos, count):
            run_loss_batch(C, y, b, kv, dv, logistic=loss == "logistic", shared=shared, thr=thr, key=key,
                           start=pos, count=count, L0=L0, limbs=limbs)
            for k in range(LOSS_MOMENTS):
                zs[k] += sum(limbs_to_int(limbs[ti, k]) for ti in range(T))

        drive(run, start, n_samples, per_batch(nw, T), trace=False)
    config = (loss, bool(shared), p_, float(b), tuple(f.tolist()), X.shape)
    return LossSimulation(n_samples, start, L0, clean, tuple(zs), (int(key[0]), int(key[1])), config)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def load_diabetes(*, standardise: bool = False):
    """scikit-learn's bundled diabetes data (442 × 10; no download), centred.

    ``standardise=False`` keeps the raw units (age in years, BMI, blood
    pressure, six serum measurements...), so the features' energies differ
    by four orders of magnitude: the dropout penalty weights them by it.
    Returns ``(X, y, feature_names)`` with centred columns and target.
    """
    try:
        from sklearn.datasets import load_diabetes as _load
    except ImportError as exc:  # pragma: no cover - sklearn is a dev dependency
        raise ImportError("the diabetes data needs scikit-learn: pip install 'mcdrop[dev]'") from exc
    d = _load(scaled=False)
    X = np.asarray(d.data, dtype=np.float64)
    y = np.asarray(d.target, dtype=np.float64)
    X = X - X.mean(axis=0)
    if standardise:
        X = X / X.std(axis=0)
    return X, y - y.mean(), list(d.feature_names)


def _fit_logistic(X, y, l2: float = 1.0, iters: int = 50):
    """Ridge-penalised logistic regression by Newton's method (w, b)."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    R = np.eye(d + 1) * l2
    R[-1, -1] = 0.0
    for _ in range(iters):
        s = 1 / (1 + np.exp(-(A @ beta)))
        g = A.T @ (s - y) + R @ beta
        H = (A * (s * (1 - s))[:, None]).T @ A + R
        step = np.linalg.solve(H, g)
        beta -= step
        if np.max(np.abs(step)) < 1e-12:
            break
    return beta[:-1], float(beta[-1])


def _datasets(seed):
    g = np.random.default_rng(seed)
    n, d = 200, 8
    scales = 10.0 ** g.uniform(-1, 1, size=d)
    Xr = g.normal(size=(n, d)) * scales
    yr = Xr @ (g.normal(size=d) / scales) + g.normal(size=n)
    wr = np.linalg.lstsq(Xr, yr, rcond=None)[0]
    Xd, yd, names = load_diabetes()
    wd = np.linalg.lstsq(Xd, yd, rcond=None)[0]
    sq = {
        "random": (Xr, yr, wr, [f"x{j}" for j in range(d)],
                   f"random data, n = {n}, d = {d}, feature scales 10^U(-1, 1), w = least squares"),
        "diabetes": (Xd, yd, wd, names,
                     "scikit-learn diabetes (442 x 10, raw units, centred), w = least squares"),
    }
    # logistic: random (labels from a logistic model) and diabetes (target > median, standardised)
    Xl = g.normal(size=(n, d))
    wt = g.normal(size=d)
    yl = (g.random(n) < 1 / (1 + np.exp(-(Xl @ wt + 0.3)))).astype(np.float64)
    wl, bl = _fit_logistic(Xl, yl)
    Xs, ys, _ = load_diabetes(standardise=True)
    yb = (ys > np.median(ys)).astype(np.float64)
    wb, bb = _fit_logistic(Xs, yb)
    lg = {
        "random": (Xl, yl, wl, bl, f"random data, n = {n}, d = {d}, labels from a logistic model"),
        "diabetes": (Xs, yb, wb, bb, "diabetes, standardised features, label = target > median"),
    }
    return sq, lg


# ---------------------------------------------------------------------------
# the verification (scripts/verify_regularization.py)
# ---------------------------------------------------------------------------


def verify_regularization(*, seed=0, alpha: float = 1e-6, samples: int | None = None, quick: bool = False,
                          threads: int | None = None):
    """Verify the dropout-penalty laws by Monte Carlo (see the module docstring).

    Laws (one Holm family at ``alpha``): the Wager identity for random and
    diabetes data at p in :data:`P_LIST`, with per-example and with shared
    masks; the exact variance of the loss in both cases; each feature's
    penalty ``(p/q) w_j² Σ_i x_ij²`` (diabetes, p = 0.5); the logistic
    penalty against exact enumeration.  Negative controls (expected to fail):
    the penalty without the ``1/q`` (``p Σ w² e``); one ridge ``λ`` for every
    feature (ignoring the feature energies).  Measurements: the gap of the
    logistic quadratic approximation, and the loss sd with shared vs
    per-example masks.
    """
    t0 = time.perf_counter()
    ss = check_seed(seed)
    N = (5_000 if quick else DEFAULT_SAMPLES) if samples is None else check_positive_int(samples, "samples")
    sq, lg = _datasets(child_seed(ss, 0))
    specs = []
    ctrl_rows = []
    meas = []
    fig = {"penalty_vs_p": [], "features": None, "variance": [], "logistic": []}
    child = [10]
    skipped: list[str] = []
    detectable: list[float] = []
    # power 0.99 at the Bonferroni level of ~20 control checks
    z_power = z_sum(alpha / 20, 0.99)

    def nxt():
        child[0] += 1
        return child_seed(ss, child[0])

    def ci95(est, se):
        return [est - 1.959963984540054 * se, est + 1.959963984540054 * se]

    # 1-2. the identity, per-example and shared masks
    for dname, (X, y, w, names, desc) in sq.items():
        for shared in (False, True):
            mode = "one mask shared by the batch" if shared else "one mask per example"
            pcs, cpcs, curve = [], [], {"dataset": dname, "shared": shared, "p": [], "estimate": [],
                                         "ci95": [], "theory": [], "no_1_over_q": []}
            for p in P_LIST:
                sim = simulate_loss(X, y, w, p, shared=shared, samples=N, seed=nxt(), threads=threads)
                R = wager_penalty(X, w, p)
                est, se = sim.penalty, sim.penalty_se
                _, v_theory = squared_loss_moments(X, y, w, p, shared=shared)
                detect = z_power * math.sqrt(v_theory / N) / R  # relative error found with power 0.99
                detectable.append(detect)
                pcs.append(pending_mean(
                    f"penalty p={p:g}", est, se, R,
                    f"mean over {N:,} masks of ||y - (X*M/q) w||^2 minus ||y - Xw||^2 vs "
                    f"(p/q) sum_j w_j^2 sum_i x_ij^2 = {R:.6g} ({mode}); CLT z-test; detects a "
                    f"relative error of {detect:.2g} with power 0.99.",
                    extra={"relative": est / R, "detectable_relative_error": detect}))
                # the control is run where this budget detects it with power 0.99
                if p * R / math.sqrt(v_theory / N) >= z_power:
                    cpcs.append(pending_mean(
                        f"penalty p={p:g}", est, se, (1 - p) * R,
                        "negative control: the penalty without the 1/q, p sum_j w_j^2 sum_i x_ij^2."))
                else:
                    skipped.append(f"{dname} ({mode}) p={p:g}")
                curve["p"].append(p)
                curve["estimate"].append(est)
                curve["ci95"].append(ci95(est, se))
                curve["theory"].append(R)
                curve["no_1_over_q"].append((1 - p) * R)  # p S = q (p/q) S
                if p == 0.5:
                    ev, vv = squared_loss_moments(X, y, w, p, shared=shared)
                    s2 = sim.var
                    # the law fixes Var[L]; its fourth moment is estimated from the sample
                    res = variance_test(s2, N, vv, fourth_central_moment=max(
                        sim.fourth_central_moment, vv * vv), method="delta")
                    pcs.append(PendingCheck.from_test(
                        "loss_variance p=0.5", res, estimate=s2, expected=vv,
                        detail=(f"sample variance of the loss over {N:,} masks vs the exact Var[L] "
                                f"({mode}); delta method with the sample fourth moment.")))
                    fig["variance"].append({"dataset": dname, "shared": shared, "estimate": s2,
                                            "theory": vv, "sd": math.sqrt(s2),
                                            "ci95": list(res.confidence_interval(0.95))})
            fig["penalty_vs_p"].append(curve)
            key = f"{dname}_{'shared' if shared else 'example'}"
            specs.append((key, f"{dname}: {'shared mask' if shared else 'per-example'}",
                          f"{desc}; {mode}", False, pcs))
            if cpcs:
                ctrl_rows.append((f"control_{key}", f"{dname} ({'shared' if shared else 'per-ex.'}): no 1/q",
                                  f"{desc}; {mode}; penalty claimed without the 1/q", True, cpcs))
    for dname in sq:
        pe = next(v for v in fig["variance"] if v["dataset"] == dname and not v["shared"])
        sh = next(v for v in fig["variance"] if v["dataset"] == dname and v["shared"])
        meas.append({"name": f"{dname}: sd(L) shared / per-example (p=0.5)",
                     "estimate": sh["sd"] / pe["sd"], "interval": None,
                     "reference": math.sqrt(sh["theory"] / pe["theory"]),
                     "note": "same mean; exact ratio as reference"})

    # 3. per-feature penalties (diabetes, p = 0.5): the L2 term weighted by feature energy
    X, y, w, names, desc = sq["diabetes"]
    p = 0.5
    e = feature_energies(X)
    theory = wager_penalty(X, w, p, per_feature=True)
    pcs, est_j, se_j = [], [], []
    for j in range(X.shape[1]):
        sim = simulate_loss(X, y, w, p, features=[j], samples=N, seed=nxt(), threads=threads)
        est_j.append(sim.penalty)
        se_j.append(sim.penalty_se)
        pcs.append(pending_mean(
            f"feature {names[j]}", sim.penalty, sim.penalty_se, float(theory[j]),
            f"only feature {names[j]} dropped: penalty vs (p/q) w_j^2 sum_i x_ij^2 = {theory[j]:.6g} "
            f"(energy {e[j]:.4g}); CLT z-test."))
    specs.append(("features", "diabetes: per-feature penalty",
                  "each feature dropped alone at p = 0.5: the penalty is w_j^2 times the feature's "
                  "energy sum_i x_ij^2 (an energy-weighted L2 term)", False, pcs))
    est_j, se_j = np.array(est_j), np.array(se_j)
    lam = float(theory.sum() / np.sum(w * w))  # one ridge λ with the same total penalty
    ridge = lam * w * w
    chi2 = float(np.sum(((est_j - ridge) / se_j) ** 2))
    pv = float(sps.chi2.sf(chi2, X.shape[1]))
    ctrl_rows.append(("control_ridge", "diabetes: plain ridge",
                      "negative control: one ridge lambda for every feature (same total penalty), "
                      "ignoring the feature energies", True,
                      [PendingCheck(name="ridge: lambda w_j^2", pvalue=pv, estimate=chi2,
                                    expected=float(X.shape[1]), statistic=chi2,
                                    detail=f"chi-square over the {X.shape[1]} per-feature estimates vs "
                                           f"lambda w_j^2 with lambda = {lam:.4g}.")]))
    fig["features"] = {"names": names, "energy": e.tolist(), "w": w.tolist(), "estimate": est_j.tolist(),
                       "ci95": [ci95(a, s) for a, s in zip(est_j, se_j)], "theory": theory.tolist(),
                       "ridge": ridge.tolist(), "p": p}
    meas.append({"name": "diabetes: energy range max/min", "estimate": float(e.max() / e.min()),
                 "interval": None, "reference": None, "note": "why the weighting matters"})

    # 4. logistic regression: MC vs exact enumeration; the quadratic approximation's gap
    for dname, (X, y, w, b, desc) in lg.items():
        pcs = []
        curve = {"dataset": dname, "p": [], "estimate": [], "ci95": [], "exact": [], "quadratic": []}
        for p in P_LIST:
            sim = simulate_loss(X, y, w, p, b=b, loss="logistic", samples=N, seed=nxt(), threads=threads)
            ex = logistic_penalty_exact(X, y, w, b, p)
            qa = logistic_penalty_quadratic(X, y, w, b, p)
            est, se = sim.penalty, sim.penalty_se
            pcs.append(pending_mean(
                f"logistic penalty p={p:g}", est, se, ex,
                f"mean over {N:,} masks of the logistic loss minus the clean loss vs the exact "
                f"expectation over all 2^{X.shape[1]} masks of each example ({ex:.6g}); CLT z-test.",
                extra={"quadratic": qa}))
            curve["p"].append(p)
            curve["estimate"].append(est)
            curve["ci95"].append(ci95(est, se))
            curve["exact"].append(ex)
            curve["quadratic"].append(qa)
            meas.append({"name": f"logistic {dname} p={p:g}: (quadratic - MC)/MC",
                         "estimate": (qa - est) / est,
                         "interval": [(qa - hi) / hi for hi in (ci95(est, se)[1], ci95(est, se)[0])],
                         "reference": (qa - ex) / ex, "note": "reference: exact enumeration"})
        fig["logistic"].append(curve)
        specs.append((f"logistic_{dname}", f"logistic: {dname}", desc, False, pcs))

    specs += ctrl_rows
    if skipped:
        meas.append({"name": "controls skipped (power < 0.99 at this budget)", "estimate": float(len(skipped)),
                     "interval": None, "reference": None, "note": "; ".join(skipped)})
    notes = [
        f"{N:,} masks per Monte Carlo run; identity checked at p in {P_LIST}; intervals in the "
        "table are simultaneous (1 - alpha/m), figures show 95% intervals.  Power: each identity "
        f"check detects a relative error of the penalty of {min(detectable):.2g} to {max(detectable):.2g} "
        "(power 0.99, from the exact variance of the loss).",
        "Logistic: the Monte Carlo penalty is checked against exact enumeration; Wager et al.'s "
        "quadratic approximation is measured against both (see Measurements).  Its relative error "
        "does not vanish as p -> 0 (dropping a feature is a jump of size x_ij w_j, so every moment of "
        "the noise is O(p)); it vanishes as the contributions x_ij w_j shrink.",
    ]
    return build_result("regularization", "mcdrop: dropout as an L2 penalty (Wager, Wang & Liang 2013)",
                        specs, alpha, seed, t0, measurements=meas, figures=fig, notes=notes)
