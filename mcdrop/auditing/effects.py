"""What each check of an audit can see: its smallest detectable effect, in its own unit.

Every check of the battery gets a :class:`DetectableEffect`: the smallest
departure from the law it detects with probability at least
:data:`~mcdrop.stats.power.POWER` (0.99) at the audit's budget, at its own
share ``alpha / m`` of the family-wise bound (Holm's first step, the worst
case), in the unit that suits it.

A statistical check's statement is where its formula gives power
:data:`STATEMENT_POWER` (0.999), not 0.99: the formulas are normal
approximations of tails 5 to 7 standard errors out, and a statement exactly
at the formula's 0.99 is right only on average (measured detection rates
there scatter around 0.99, e.g. 197 of 200).  The margin (the effect is
about 9% larger than the formula's 0.99 point) makes "detected with
probability at least 0.99" hold with room to spare, which the measured
curves confirm.  The report-level ``detectable_bias`` and
``detectable_rate_error`` stay the budget's planning numbers at power 0.99.
``mcdrop.power_curve`` measures the same numbers by injecting each effect
into a correct implementation; ``docs/power.md`` shows both.

* **Exact checks** (``runs``, ``eval_identity``, ``input_unchanged``,
  ``shape_dtype``, ``finite``, ``support``, ``gradient``, the split-unit
  part of ``structure``) fail on a single violation, whatever the budget:
  one raising call, one output one ulp off ``x`` in evaluation mode, one
  input value changed, one call of the wrong shape or dtype, one non-finite
  output, one output more than :data:`SUPPORT_ULPS` ulp off the support, one
  element of one backward pass off the forward mask, one unit partly kept.
  The text adds what that means for a defect that strikes at random: with
  ``N`` opportunities (calls, outputs, ...) a rate ``f`` per opportunity is
  caught with probability ``1 - (1 - f)**N``, 0.99 at
  ``f = 1 - 0.01**(1/N)`` (about ``4.6 / N``).
* **Statistical checks**: ``keep_rate`` (relative keep-rate error) and
  ``mean`` (relative mean bias) are the audit's ``detectable_rate_error``
  and ``detectable_bias`` moved to power :data:`STATEMENT_POWER`; ``variance``
  (relative error of ``Var[y]``),
  ``dispersion`` (rms relative spread of the units' keep rates),
  ``element_independence`` (correlation of two elements at one offset) and
  ``call_independence`` (correlation of one element across consecutive
  calls) are derived below from the null law each check uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy import stats as sps

from ..report.effects import effect_cell
from ..results import CheckResult
from ..stats.normal import z_sum, z_tail
from ..stats.power import POWER
from .budget import EVAL_CALLS_BEFORE, SUPPORT_ULPS
from .independence import autocorr_model, lag_pair_model

__all__ = ["DetectableEffect", "EFFECT_UNITS", "STATEMENT_POWER", "check_effects", "with_effects",
           "rate_at_power", "variance_effect", "dispersion_effect", "element_effect", "call_effect"]

#: Power of the formulas at a statistical check's stated effect (see the module docstring):
#: the check then detects it with probability at least POWER = 0.99.
STATEMENT_POWER = 0.999

#: Each check's effect unit (what :attr:`DetectableEffect.value` counts).
EFFECT_UNITS = {
    "runs": "raising call",
    "eval_identity": "ulp",
    "input_unchanged": "ulp",
    "shape_dtype": "call",
    "finite": "non-finite output",
    "support": "ulp",
    "gradient": "element",
    "keep_rate": "relative keep-rate error",
    "mean": "relative mean bias",
    "variance": "relative variance error",
    "dispersion": "rms relative spread of keep rates",
    "element_independence": "correlation",
    "call_independence": "correlation",
    "structure": "split unit",
}


@dataclass(frozen=True)
class DetectableEffect:
    """The smallest effect one check detects with power 0.99 at an audit's budget.

    Attributes
    ----------
    check : str
        The check's name.
    value : float or None
        The effect, in ``unit``; None where the check cannot see any (for
        example ``variance`` of a two-point law at ``p = 1/2``, where every
        draw has the same standardised square).
    unit : str
        What ``value`` counts (:data:`EFFECT_UNITS`).
    exact : bool
        An exact check (one violation fails it, with power 1).
    text : str
        One plain sentence: what a PASS of this check rules out.
    """

    check: str
    value: float | None
    unit: str
    exact: bool
    text: str

    def short(self) -> str:
        """A table cell, e.g. ``"9.8e-04 rel. rate"`` or ``"5 ulp"``."""
        return effect_cell(self.to_dict())

    def to_dict(self) -> dict:
        return {"value": None if self.value is None else float(self.value), "unit": self.unit,
                "power": POWER, "formula_power": 1.0 if self.exact else STATEMENT_POWER,
                "exact": self.exact, "text": self.text}


def rate_at_power(opportunities: int, power: float = POWER) -> float | None:
    """Rate per opportunity of a random defect caught with probability ``power``:
    ``1 - (1 - power)**(1/N)`` (about ``4.6/N`` at power 0.99); None if ``N < 1``."""
    if opportunities < 1:
        return None
    return float(-math.expm1(math.log1p(-power) / opportunities))


def _random_rate(n: int, what: str) -> str:
    r = rate_at_power(n)
    if r is None:
        return ""
    return f" A defect striking at random is caught with probability {POWER} from a rate of {r:.2g} per {what}."


def check_effects(plan, law, st, run, names, a_check: float, a_mean: float,
                  detectable_bias: float | None, detectable_rate_error: float | None,
                  checks: list[CheckResult], *, eval_calls: int = EVAL_CALLS_BEFORE + 1,
                  training_calls: str = "training call") -> dict[str, DetectableEffect]:
    """:class:`DetectableEffect` of every check in ``names``.

    Parameters
    ----------
    plan, law, st, run
        The audit's :class:`~mcdrop.auditing.budget.Plan`, element law,
        :class:`~mcdrop.auditing.stream.AuditStream` and harness ``Run``.
    names : list of str
        The battery's checks.
    a_check, a_mean : float
        A check's share ``alpha/m`` of the family, and the pooled mean test's.
    detectable_bias, detectable_rate_error : float or None
        The budget's power-0.99 effects (:func:`~mcdrop.auditing.budget.detectable_effects`).
    checks : list of CheckResult
        The decided checks (rounding bands and standard errors; a check
        that did not run states nothing).
    eval_calls : int, optional
        Evaluation-mode calls made (an audit makes 3; a model site as many
        as the model's evaluation forwards reached it).
    training_calls : str, optional
        What one training call is, in the statements' text.

    Returns
    -------
    dict
        ``{check name: DetectableEffect}``.
    """
    by = {c.name: c for c in checks}
    C = st.calls
    n = st.n
    nu = st.n_units
    out: dict[str, DetectableEffect] = {}

    def ex(name, value, text):
        out[name] = DetectableEffect(name, value, EFFECT_UNITS[name], True, text)

    def stat(name, value, text):
        out[name] = DetectableEffect(name, value, EFFECT_UNITS[name], False, text)

    ex("runs", 1, "Any call that raises fails the audit (every call is made inside the harness)."
       + _random_rate(C, training_calls))
    if eval_calls >= 1:
        ex("eval_identity", 1,
           f"Evaluation mode must return x exactly: one output one ulp off in any of the {eval_calls} "
           f"evaluation calls fails. Only {eval_calls} such calls are made, so a layer wrong in a fraction "
           f"f of its evaluation calls is caught with probability 0.99 only from f = "
           f"{rate_at_power(eval_calls):.2g}.")
    else:
        ex("eval_identity", None, "No evaluation-mode call reached it: it rules nothing out in evaluation mode.")
    ex("input_unchanged", 1, "One input value changed by one ulp in any call fails."
       + _random_rate(C, training_calls))
    ex("shape_dtype", 1, "One call returning the wrong shape or dtype fails." + _random_rate(C, training_calls))
    ex("finite", 1, "One NaN or infinity in any output fails." + _random_rate(C * n, "output"))
    if "support" in names:
        tol = 0 if plan.p in (0.0, 1.0) else SUPPORT_ULPS
        ex("support", tol + 1,
           f"Every output must lie within {tol} ulp of {plan.dtype_name} of a support point: one output "
           f"{tol + 1} ulp away (counted from the correctly rounded value) fails."
           + _random_rate(int(C * n * max(plan.q, 1e-300)) if plan.q > 0 else C * n, "kept output"))
    if "gradient" in names:
        ng = max(run.grad_calls, 1) * n
        ex("gradient", 1,
           f"One element of one backward pass off g * dy/dx of its forward mask by more than {SUPPORT_ULPS} "
           f"ulp fails ({run.grad_calls} forward/backward calls)."
           + _random_rate(ng, "element of a backward pass"))
    if "structure" in names:
        ku = int(C * nu * plan.q)
        ex("structure", 1,
           "One unit partly kept in one call fails; a bigger unit dropped together shows as "
           "over-dispersion of the kept units per group." + _random_rate(ku, "kept unit"))
    if "keep_rate" in names:
        v = _at_statement_power(detectable_rate_error, a_check) if law.random else 0.0
        stat("keep_rate", v, _stat_text("a keep rate off q by a relative error", v))
    if "mean" in names:
        v = _at_statement_power(detectable_bias, a_mean)
        stat("mean", v, _stat_text("a pooled relative bias of E[y]", v))
    if "variance" in names:
        v = variance_effect(law, by.get("variance"), a_check)
        stat("variance", v, _stat_text("a relative error of Var[y]", v)
             if v is not None or not law.random else
             "None: for a two-point law at p = 1/2 every draw has (y - E y)^2 = Var y, so only the keep "
             "rate (keep_rate, mean) can move it.")
    if "dispersion" in names:
        h = dispersion_effect(law, C, nu, a_check)
        stat("dispersion", h,
             _stat_text("keep rates that differ between units with an rms relative spread", h)
             + " (Equal rates with correlated units show up in the kept-per-call counts.)")
    rho_e = element_effect(st, law, a_check) if "element_independence" in names else None
    if "element_independence" in names:
        stat("element_independence", rho_e,
             _stat_text("a correlation between the masks of elements at any one offset", rho_e)
             + (" (At the offset of half the input the pairs count twice: the limit there is 1/sqrt(2) "
                "of this.)" if rho_e else ""))
    if "call_independence" in names:
        rho_c = call_effect(st, law, a_check)
        stat("call_independence", rho_c,
             _stat_text("a correlation between one element's mask in consecutive calls (at any offset)",
                        rho_c))
    for name, c in by.items():  # a check that could not run rules nothing out
        if name in out and c.verdict == "inconclusive" and c.detail.startswith("not run"):
            out[name] = DetectableEffect(name, None, EFFECT_UNITS[name], out[name].exact,
                                         "The check did not run (see its detail): it rules nothing out.")
    return out


def _at_statement_power(value: float | None, level: float) -> float | None:
    """The budget's power-0.99 effect (``z_sum(level, POWER)`` standard errors) moved to
    :data:`STATEMENT_POWER` (``z_sum(level, STATEMENT_POWER)`` of them)."""
    if value is None or value == 0.0:
        return value
    return value * z_sum(level, STATEMENT_POWER) / z_sum(level, POWER)


def _stat_text(what: str, value: float | None) -> str:
    if value is None:
        return f"Not testable at this budget ({what})."
    if value == 0.0:
        return f"Exact here (no randomness at this p): {what} of any size fails."
    return (f"A PASS rules out {what} of {value:.2g} or more: detected with probability at least {POWER} "
            f"({STATEMENT_POWER} by the formula, a margin for its approximations); smaller ones can pass.")


def variance_effect(law, check: CheckResult | None, a_check: float) -> float | None:
    """Relative error ``e`` of ``Var[y]`` (``E[z**2] = 1 + e``) stated as detected: the rounding
    band plus ``z_sum(a_check, STATEMENT_POWER)`` null standard errors
    ``sqrt((kurtosis - 1)/N)`` of the pooled ``mean(z**2)``."""
    if not law.random:
        return 0.0
    if check is None or check.extra.get("standard_error") is None:
        return None
    se = float(check.extra["standard_error"])
    eta = float(check.extra.get("rounding_band") or 0.0)
    if not se > 0.0:
        return None
    return eta + z_sum(a_check, STATEMENT_POWER) * se


def dispersion_effect(law, calls: int, n_units: int, a_check: float) -> float | None:
    """rms relative spread ``h`` of the units' keep rates stated as detected (power
    :data:`STATEMENT_POWER` by this formula).

    Unit ``u`` keeps with probability ``q (1 + h s_u)`` (``mean s = 0``,
    ``mean s**2 = 1``).  Its keep count over ``C`` calls moves the
    per-unit dispersion statistic ``D = sum (k_u - C q)**2 / (C p q)`` by
    ``lam = m q h**2 (C - 1)/p`` on average (``m`` units) and its variance
    from ``V0 = m (2 + (1 - 6pq)/(C p q))`` to about ``V0 + 4 lam``.  The
    check rejects when ``D`` passes the matched chi-square's upper
    ``a_check/4`` point (the two dispersion parts are combined by
    Bonferroni, each two-sided); ``lam`` solves ``lam - z_power sqrt(V0 + 4
    lam) = crit - m``.
    """
    if not law.two_point or not law.random:
        return 0.0 if law.two_point else None
    p, q = law.p, law.q
    C, m = int(calls), int(n_units)
    if C < 2 or m < 2 or not (p * q > 0):
        return None
    tpq = C * p * q
    v0 = m * (2.0 + (1.0 - 6.0 * p * q) / tpq)
    g, hdf = v0 / (2.0 * m), 2.0 * m * m / v0
    crit = g * float(sps.chi2.isf(a_check / 4.0, hdf)) - m
    z = z_tail(1.0 - STATEMENT_POWER)
    b = crit + 2.0 * z * z
    lam = b + math.sqrt(max(b * b - crit * crit + z * z * v0, 0.0))
    return math.sqrt(lam * p / (m * q * (C - 1)))


def _critical_sum(model, k_tests: int, a_check: float, sd: float, t_max: float) -> float | None:
    """Smallest ``|t|`` at which ``k_tests`` times the model's two-sided p-value is
    at most ``a_check``: the normal's where the model trusts it, else found by
    regula falsi (Illinois) on the log p-value against ``t**2`` (tails fall
    off like a Gaussian's), to within 5% of the p-value and on the safe side."""
    t0 = z_tail(a_check / (2.0 * k_tests)) * sd
    if not (math.isfinite(t0) and t0 > 0.0 and t_max > 0.0):
        return None  # no spread under the null (a degenerate call): nothing to state
    log_a = math.log(a_check)

    def g(t):
        return math.log(max(k_tests * model.pvalue(t)[0], 1e-300)) - log_a

    lo = min(t0, t_max)
    g_lo = g(lo)
    if g_lo <= 1e-9:
        return lo
    while True:  # lo grows by half each step up to t_max: at most log(t_max/t0)/log(1.5) steps
        if lo >= t_max:
            return None
        hi = min(1.5 * lo, t_max)
        g_hi = g(hi)
        if g_hi <= 0.0:
            break
        lo, g_lo = hi, g_hi
    side = 0
    for _ in range(40):
        if -0.05 <= g_hi <= 0.0 or hi - lo <= 1e-6 * hi:
            break
        u = lo * lo + (hi * hi - lo * lo) * g_lo / (g_lo - g_hi)
        t = math.sqrt(max(u, lo * lo))
        g_t = g(t)
        if g_t > 0.0:
            lo, g_lo = t, g_t
            if side == -1:
                g_hi /= 2.0
            side = -1
        else:
            hi, g_hi = t, g_t
            if side == 1:
                g_lo /= 2.0
            side = 1
    return hi


def element_effect(st, law, a_check: float) -> float | None:
    """Correlation of two elements' masks at one offset stated as detected (:data:`STATEMENT_POWER`):
    the critical sum of the autocorrelation (its null law at offset 1, Bonferroni
    over the offsets) plus ``z_power`` null standard deviations, per FFT call.  The
    statement holds at every offset but ``n/2``, whose pairs count twice (stronger there).

    Where the check falls back on tail bounds (small inputs or few calls) the
    statement leaves out the exact conditional CGF of the coincidence count
    (``exact=False``; it would cost more than the audit): a larger critical
    sum, so a conservative statement (about 1.5x the sharp one at 200 calls of
    (8, 32)); at the default budget the normal tail is trusted and it is sharp."""
    if not law.random:
        return 0.0
    auto = st.autocorrelation()
    if auto is None:
        return None
    offsets, _, _, _, _, var = auto
    nu, A = st.n_units, st.auto_calls
    v = float(var[0])
    model = autocorr_model(st.fft_call_info(), nu, v, nu, exact=False)
    t = _critical_sum(model, int(offsets.size), a_check, math.sqrt(v), float(A))
    if t is None:
        return None
    return min(1.0, (t + z_tail(1.0 - STATEMENT_POWER) * math.sqrt(v)) / A)


def call_effect(st, law, a_check: float) -> float | None:
    """Correlation of one element's mask in consecutive calls stated as detected
    (:data:`STATEMENT_POWER`; critical sum of the consecutive-call sums, Bonferroni over
    offsets and call lags, plus ``z_power`` null standard deviations, per pair)."""
    if not law.random:
        return 0.0
    cc = st.cross_correlation()
    if cc is None:
        return None
    offsets = cc[0]
    lg = st.lag_statistics()
    tot = int(offsets.size) + (0 if lg is None else int(lg[0].size))
    nu, pairs = st.n_units, st.cross_pairs
    v = pairs / (nu - 1.0)
    model = lag_pair_model(st.fft_call_info(), nu, 1, v)
    t = _critical_sum(model, tot, a_check, math.sqrt(v), float(pairs))
    if t is None:
        return None
    return min(1.0, (t + z_tail(1.0 - STATEMENT_POWER) * math.sqrt(v)) / pairs)


def with_effects(checks: list[CheckResult], effects: dict[str, DetectableEffect]) -> list[CheckResult]:
    """The checks with ``extra["detectable_effect"]`` set from ``effects``."""
    out = []
    for c in checks:
        eff = effects.get(c.name)
        if eff is None:
            out.append(c)
        else:
            out.append(replace(c, extra={**c.extra, "detectable_effect": eff.to_dict()}))
    return out
