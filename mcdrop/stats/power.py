"""Power and sample-size planning: how many draws detect a relative bias, and the inverse."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _sps

from .._validation import check_alpha, check_choice, check_positive_int, resolve_pq
from ..results import json_number
from ._iv import check_real
from .normal import z_sum

__all__ = ["plan", "detectable_bias", "PlanResult", "POWER"]

#: The power every stated detectable effect of mcdrop refers to.
POWER = 0.99

#: :func:`plan` with ``method="exact"`` refuses to search beyond this many
#: draws (int64 keep counts; beyond it use the normal method).
_EXACT_PLAN_MAX = 2**62


# ---------------------------------------------------------------------------
# power and sample-size planning
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    """Result of :func:`plan`.

    Attributes
    ----------
    samples : int
        Number of Bernoulli mask draws needed (``int(result)`` gives it).
    p, q : float
        Drop and keep probability.
    bias : float
        Relative bias to detect.
    alpha, power : float
        Two-sided significance level and the power asked for.
    method : {"normal", "exact"}
    """

    samples: int
    p: float
    q: float
    bias: float
    alpha: float
    power: float
    method: str

    def __int__(self) -> int:
        return int(self.samples)

    def __str__(self) -> str:
        return (
            f"{self.samples:,} mask draws detect a relative bias of {self.bias:.3g} "
            f"at p={self.p:.6g} (two-sided alpha={self.alpha:.3g}, "
            f"power {self.power:.3g}, {self.method} method)"
        )

    def to_dict(self) -> dict:
        return {
            "samples": int(self.samples),
            "p": json_number(self.p),
            "q": json_number(self.q),
            "bias": json_number(self.bias),
            "alpha": json_number(self.alpha),
            "power": json_number(self.power),
            "method": self.method,
        }


def _resolve_pq_for_power(p, keep) -> tuple[float, float]:
    p, q = resolve_pq(p, keep)
    if q == 0.0:
        name, value = ("keep", keep) if keep is not None else ("p", p)
        raise ValueError(
            f"`{name}` must give a keep probability > 0 (drop probability "
            f"p < 1): inverted dropout divides by q = 1 - p, so its output is "
            f"undefined at p = 1; got {name}={value!r}."
        )
    return p, q


def _alpha_power_iv(alpha, power) -> tuple[float, float]:
    alpha = check_alpha(alpha)
    power = check_alpha(power, "power")
    if not power > alpha:
        raise ValueError(
            f"`power` must be greater than `alpha` (every test has power >= "
            f"its level); got power={power!r}, alpha={alpha!r}."
        )
    return alpha, power

def _exact_critical(n: int, q: float, a: float) -> tuple[int, int]:
    """Equal-tailed critical counts of the exact binomial test.

    Returns ``(c_low, c_high)``: reject when ``K <= c_low`` or
    ``K >= c_high`` with ``P(K <= c_low) <= a`` and ``P(K >= c_high) <= a``
    under Binomial(n, q), each as large (small) as possible.
    """
    c = int(_sps.binom.ppf(a, n, q))  # smallest k with cdf(k) >= a
    while c >= 0 and _sps.binom.cdf(c, n, q) > a:
        c -= 1
    while c + 1 <= n and _sps.binom.cdf(c + 1, n, q) <= a:
        c += 1
    u = int(_sps.binom.isf(a, n, q)) + 1  # P(K >= u) = sf(u - 1)
    while u <= n and _sps.binom.sf(u - 1, n, q) > a:
        u += 1
    while u - 1 >= 0 and _sps.binom.sf(u - 2, n, q) <= a:
        u -= 1
    return c, u


def _exact_power(n: int, q: float, q1: float, alpha: float) -> float:
    c, u = _exact_critical(n, q, alpha / 2.0)
    power = 0.0
    if c >= 0:
        power += float(_sps.binom.cdf(c, n, q1))
    if u <= n:
        power += float(_sps.binom.sf(u - 1, n, q1))
    return power


def _plan_iv(p, keep, bias, alpha, power, method):
    p, q = _resolve_pq_for_power(p, keep)
    bias = check_real(bias, "bias", minimum=0.0, strict=True)
    alpha, power = _alpha_power_iv(alpha, power)
    method = check_choice(method, "method", ("normal", "exact"))
    if method == "exact" and p > 0.0 and q * (1.0 + bias) > 1.0:
        raise ValueError(
            f"`bias` must satisfy q*(1 + bias) <= 1 for method='exact' (the "
            f"alternative keep rate is a probability); got bias={bias!r} "
            f"with q={q!r}."
        )
    return p, q, bias, alpha, power, method


def plan(
    p: float | None = None,
    *,
    keep: float | None = None,
    bias: float,
    alpha: float = 1e-6,
    power: float = 0.99,
    method: str = "normal",
) -> PlanResult:
    """Number of mask draws needed to detect a relative mean bias.

    Parameters
    ----------
    p : float, optional
        The **drop** probability, in [0, 1).  Give ``p`` or ``keep``, not
        both.
    keep : float, optional
        The **keep** probability ``q = 1 - p``, in (0, 1].
    bias : float
        Relative bias to detect, ``> 0`` (``1e-3`` is 0.1%): the layer's
        mean is ``x (1 + bias)`` instead of ``x``, or equivalently its keep
        rate is ``q (1 + bias)``.
    alpha : float, optional
        Two-sided significance level, in (0, 1).  Default ``1e-6``.
    power : float, optional
        Probability of detecting the bias, in (``alpha``, 1).  Default 0.99.
    method : {"normal", "exact"}, optional
        ``"normal"`` (default): the closed form below.  ``"exact"``: search
        with the exact binomial test of the keep count.

    Returns
    -------
    PlanResult
        ``samples`` is the number of Bernoulli draws per element (an
        ``int``; ``int(result)`` also gives it).

    Raises
    ------
    ValueError
        If ``p == 1`` (``keep == 0``): inverted dropout divides by ``q``;
        if ``bias <= 0``; for ``"exact"``, if ``q (1 + bias) > 1``.

    Notes
    -----
    Normal method: one draw of ``y / x = m / q`` has variance ``p / q``, so
    a two-sided z-test at level ``alpha`` detects a shift ``bias`` with
    power ``power`` after

        N = ceil((z_{1 - alpha/2} + z_{power})**2 (p / q) / bias**2)

    draws.  The keep indicator has relative standard deviation
    ``sqrt(p / q)`` too, so the same ``N`` detects a relative keep-rate
    error ``bias``.

    Exact method: the smallest ``N`` for which the exact binomial test of
    the keep count at level ``alpha`` (equal-tailed critical region, each
    tail ``<= alpha / 2``, from ``binom.ppf``/``binom.isf``) rejects with
    probability ``>= power`` when the true keep rate is ``q (1 + bias)``.
    ``N`` is found by doubling and then bisection.  Because the counts are
    discrete, the exact power is slightly non-monotone in ``N`` (it can dip
    by a fraction of a percent just after a critical value moves); the
    ``N`` returned is the one the bisection converges to, where the power
    first reaches the target on the bisection's path.  The exact and normal
    answers agree within a few percent; the exact one accounts for the
    smaller variance ``q1 (1 - q1)`` under the alternative and for
    skewness.

    At ``p == 0`` there is no randomness and any bias shows in one draw:
    ``samples`` is 1 for both methods.

    Examples
    --------
    >>> from mcdrop.stats import plan
    >>> int(plan(0.5, bias=1e-2, alpha=0.05, power=0.8))
    78489
    """
    p, q, bias, alpha, power, method = _plan_iv(p, keep, bias, alpha, power, method)
    if p == 0.0:
        samples = 1
    elif method == "normal":
        n = z_sum(alpha, power) ** 2 * (p / q) / (bias * bias)
        if not math.isfinite(n):
            raise ValueError(
                f"`bias` is too small: the sample size overflows; got bias={bias!r}."
            )
        samples = max(1, math.ceil(n))
    else:
        samples = _exact_plan(q, q * (1.0 + bias), alpha, power, bias)
    return PlanResult(
        samples=int(samples),
        p=p,
        q=q,
        bias=bias,
        alpha=alpha,
        power=power,
        method=method,
    )


def _exact_plan(q: float, q1: float, alpha: float, power: float, bias: float) -> int:
    hi = 1
    while _exact_power(hi, q, q1, alpha) < power:
        if hi >= _EXACT_PLAN_MAX:
            raise ValueError(
                f"`bias` is too small for method='exact': more than 2**62 draws "
                f"would be needed; use method='normal'; got bias={bias!r}."
            )
        hi *= 2
    lo = hi // 2  # power(lo) < target (or lo == 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _exact_power(mid, q, q1, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def detectable_bias(
    p: float | None = None,
    *,
    keep: float | None = None,
    samples: int,
    alpha: float = 1e-6,
    power: float = 0.99,
) -> float:
    """Smallest relative mean bias detectable with ``samples`` draws.

    The inverse of :func:`plan` with ``method="normal"``.

    Parameters
    ----------
    p : float, optional
        The **drop** probability, in [0, 1).  Give ``p`` or ``keep``, not
        both.
    keep : float, optional
        The **keep** probability ``q = 1 - p``, in (0, 1].
    samples : int
        Number of Bernoulli mask draws per element, ``>= 1``.
    alpha : float, optional
        Two-sided significance level, in (0, 1).  Default ``1e-6``.
    power : float, optional
        Detection probability, in (``alpha``, 1).  Default 0.99.

    Returns
    -------
    float
        ``(z_{1 - alpha/2} + z_{power}) sqrt(p / (q samples))``; 0 at
        ``p == 0``.

    Raises
    ------
    ValueError
        If ``p == 1`` (``keep == 0``).
    """
    p, q = _resolve_pq_for_power(p, keep)
    samples = check_positive_int(samples, "samples")
    alpha, power = _alpha_power_iv(alpha, power)
    if p == 0.0:
        return 0.0
    return z_sum(alpha, power) * math.sqrt(p / (q * samples))
