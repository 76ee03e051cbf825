"""Measured power: how often each check of the audit catches an effect of a given size.

:func:`power_curve` audits a parametrised mutant (:mod:`mcdrop.auditing.injected`)
``repeats`` times at each effect size and counts how often the check fails,
beside the smallest detectable effect the audit states for that check
(:mod:`mcdrop.auditing.effects`, read from a correct audit at the same
budget, so it is the number a user's report shows).  A statement is right
when the measured curve reaches :data:`~mcdrop.stats.power.POWER` at or below
it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from .._validation import check_alpha, check_positive_int, check_seed
from ..core.progress import make_bar
from ..report import JsonFile, ResultFile
from ..results import software_environment
from ..stats.binomial import clopper_pearson
from ..stats.power import POWER
from .budget import DEFAULT_SHAPE
from .injected import FAMILIES, mutant
from .effects import EFFECT_UNITS
from .runner import audit

__all__ = ["PowerCurve", "PowerStudy", "power_curve", "power_study", "POWER_CHECKS", "EXACT_REPEATS"]

#: The checks :func:`power_curve` can measure, in battery order.
POWER_CHECKS = tuple(FAMILIES)
#: Audits per effect of an exact check in :func:`power_study` (its curve is a step: one
#: violation fails it, so a miss would be a bug, not chance).
EXACT_REPEATS = 20


@dataclass(frozen=True)
class PowerCurve(JsonFile):
    """Detection rate of one check against the size of its effect.

    Attributes
    ----------
    check, unit : str
        The check and the unit of its effect.
    effects : tuple of float
        The effect sizes audited.
    detected : tuple of int
        Audits (of ``repeats`` each) in which the check failed.
    repeats : int
    stated : float or None
        The smallest effect the audit states the check detects with power
        ``power`` at this budget (``extra["detectable_effect"]``).
    power, alpha : float
        The power the statement refers to; the audit's family-wise bound.
    calls : int
        Training calls of every audit (the budget).
    p, shape, variant, structure : the audited claim and input.
    mutant : str
        How the effect was injected.
    seed : int
    statement : str
        The audit's plain sentence for the stated effect.
    default_budget : bool
        ``calls`` is the audit's default budget.
    elapsed_s : float
    """

    check: str
    unit: str
    effects: tuple
    detected: tuple
    repeats: int
    stated: float | None
    power: float
    alpha: float
    calls: int
    p: float
    shape: tuple
    variant: str
    structure: str
    mutant: str
    seed: int
    statement: str = ""
    default_budget: bool = False
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def rates(self) -> np.ndarray:
        """Measured detection rates, one per effect."""
        return np.asarray(self.detected, dtype=np.float64) / self.repeats

    def intervals(self, confidence_level: float = 0.95) -> list:
        """Clopper-Pearson intervals of the rates."""
        return [clopper_pearson(int(k), self.repeats, confidence_level) for k in self.detected]

    @property
    def crossing(self) -> float | None:
        """The effect at which the measured rate first reaches ``power`` (linear
        interpolation from the grid point before); None if it never does."""
        r = self.rates
        for i, (e, ri) in enumerate(zip(self.effects, r)):
            if ri >= self.power:
                if i == 0:
                    return float(e)
                e0, r0 = float(self.effects[i - 1]), float(r[i - 1])
                return float(e0 + (self.power - r0) * (float(e) - e0) / (ri - r0))
        return None

    @property
    def rate_at_stated(self) -> float | None:
        """The measured rate at the stated effect (None if it is not on the grid)."""
        if self.stated is None:
            return None
        for e, k in zip(self.effects, self.detected):
            if np.isclose(float(e), self.stated, rtol=1e-9, atol=0.0):
                return k / self.repeats
        return None

    @property
    def confirmed(self) -> bool:
        """The curve reaches ``power`` at or below the stated effect."""
        c = self.crossing
        return c is not None and self.stated is not None and c <= self.stated * (1.0 + 1e-12)

    def __str__(self) -> str:
        lines = [f"power curve of {self.check}: {self.mutant}",
                 f"  {self.variant} dropout p={self.p:g}, input {tuple(self.shape)}, {self.calls:,} calls, "
                 f"alpha={self.alpha:g}, {self.repeats} audits per effect",
                 f"  stated: {_g(self.stated)} {self.unit} (detected with probability >= {self.power}); "
                 f"measured {self.power} crossing "
                 f"{_g(self.crossing)} ({'confirmed' if self.confirmed else 'NOT confirmed'})",
                 f"  {'effect':>12} {'rate':>7}  95% interval"]
        for e, rate, ci in zip(self.effects, self.rates, self.intervals()):
            lines.append(f"  {float(e):>12.4g} {rate:>7.3f}  [{ci.low:.3f}, {ci.high:.3f}]")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "type": "mcdrop.PowerCurve", "check": self.check, "unit": self.unit,
            "effects": [float(e) for e in self.effects], "detected": [int(k) for k in self.detected],
            "repeats": int(self.repeats), "rates": [float(r) for r in self.rates],
            "intervals": [[ci.low, ci.high] for ci in self.intervals()],
            "stated": None if self.stated is None else float(self.stated),
            "crossing": self.crossing, "confirmed": self.confirmed, "power": self.power,
            "alpha": self.alpha, "calls": int(self.calls), "p": self.p, "shape": list(self.shape),
            "variant": self.variant, "structure": self.structure, "mutant": self.mutant,
            "seed": self.seed, "statement": self.statement,
            "default_budget": self.default_budget, "elapsed_s": self.elapsed_s,
        }



def _g(v) -> str:
    return "none" if v is None else f"{v:.3g}"


def _power_curve_iv(check, effects, budget, repeats, seed, p, alpha):
    if not isinstance(check, str) or check not in FAMILIES:
        raise ValueError(f"`check` must be one of {list(POWER_CHECKS)}; got {check!r}.")
    if effects is not None:
        try:
            effects = tuple(float(e) for e in effects)
        except (TypeError, ValueError):
            raise TypeError(f"`effects` must be a sequence of numbers or None; got {effects!r}.") from None
        if not effects or any(not np.isfinite(e) or e < 0 for e in effects):
            raise ValueError(f"`effects` must be finite numbers >= 0 (at least one); got {effects!r}.")
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    repeats = check_positive_int(repeats, "repeats")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"`seed` must be an int >= 0; got {seed!r}.")
    check_seed(int(seed))
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"`p` must be a drop probability in (0, 1) (a curve needs random masks); got {p!r}.")
    alpha = check_alpha(alpha)
    return effects, budget, repeats, int(seed), float(p), alpha


def power_curve(check: str, effects=None, budget: int | None = None, repeats: int = 100, seed: int = 0, *,
                p: float = 0.3, shape=None, alpha: float = 1e-6, offset: int = 1,
                progress: bool = False) -> PowerCurve:
    """Measure how often ``check`` fails against the size of its effect.

    Parameters
    ----------
    check : str
        A check of the audit's battery (:data:`POWER_CHECKS`).
    effects : sequence of float, optional
        Effect sizes in the check's unit (see :data:`mcdrop.auditing.effects.EFFECT_UNITS`).
        Default: 0, 0.25, 0.5, 0.65, 0.8, 0.9, 1, 1.25, 1.5 and 2 times the
        stated effect for statistical checks; a few counts or ulps for exact ones.
    budget : int, optional
        Training calls of every audit (default: the audit's default budget).
    repeats : int, default 100
        Audits per effect size.
    seed : int, default 0
        Seeds everything (the mutants' generators and the audits' inputs).
    p : float, default 0.3
        Drop probability claimed and implemented.
    shape : tuple, optional
        Input shape (default: the family's, else (64, 128)).
    alpha : float, default 1e-6
        The audits' family-wise false-alarm bound.
    offset : int, default 1
        ``element_independence``: the offset of the injected correlation.
    progress : bool, default False
        Progress bar on stderr.

    Returns
    -------
    PowerCurve
        ``rates``, ``intervals()``, ``stated``, ``crossing``, ``confirmed``.

    Notes
    -----
    A detection is a ``"fail"`` verdict of ``check`` in a full audit (all
    checks decided together by Holm at ``alpha``).  The stated effect is
    read from ``check``'s ``extra["detectable_effect"]`` in a correct
    audit with the same budget, input and seed: the formula every audit
    report uses.  Audit ``j`` of effect ``i`` is seeded with
    ``SeedSequence([seed, i, j])``, so a curve is reproducible.

    Examples
    --------
    >>> import mcdrop
    >>> c = mcdrop.power_curve("keep_rate", [0.0, 0.05], budget=300, repeats=3,
    ...                        shape=(16, 64))
    >>> c.rates.tolist()
    [0.0, 1.0]
    """
    effects, budget, repeats, seed, p, alpha = _power_curve_iv(check, effects, budget, repeats, seed, p, alpha)
    fam = FAMILIES[check]
    shape = tuple(shape or fam.shape or DEFAULT_SHAPE)
    t0 = time.perf_counter()
    kw = dict(p=p, shape=shape, variant=fam.variant, structure=fam.structure, alpha=alpha)
    ref_calls = budget if budget is not None else 1000
    ref = audit(mutant(check, 0.0, seed=np.random.SeedSequence([seed, 2**31]), p=p, shape=shape,
                       calls=ref_calls, offset=offset), calls=budget, seed=seed, **kw)
    calls = ref.calls
    eff = ref.check(check).extra.get("detectable_effect") or {}
    stated = eff.get("value")
    if effects is None:
        if fam.exact:
            effects = tuple(float(e) for e in fam.grid)
        elif stated:
            effects = tuple(float(m) * stated for m in fam.grid)
        else:
            raise ValueError(f"{check} states no detectable effect at this budget ({eff.get('text')}); "
                             f"give `effects` explicitly.")
    detected = []
    bar = make_bar(total=len(effects) * repeats, desc=f"power {check}", unit="audit",
                   enabled=None if progress else False)
    try:
        for i, e in enumerate(effects):
            k = 0
            for j in range(repeats):
                ss = np.random.SeedSequence([seed, i, j])
                fn = mutant(check, e, seed=ss, p=p, shape=shape, calls=calls, offset=offset)
                rep = audit(fn, calls=calls, seed=int(ss.generate_state(1)[0]), **kw)
                k += rep.check(check).verdict == "fail"
                bar.update(1)
            detected.append(k)
    finally:
        bar.close()
    what = fam.description if check != "element_independence" or offset == 1 else \
        fam.description.replace("one place before", f"{offset} places before")
    return PowerCurve(
        check=check, unit=EFFECT_UNITS[check], effects=tuple(effects), detected=tuple(detected),
        repeats=repeats, stated=stated, power=POWER, alpha=alpha, calls=calls, p=p, shape=shape,
        variant=fam.variant, structure=fam.structure, mutant=what, seed=seed,
        statement=str(eff.get("text", "")), default_budget=budget is None, elapsed_s=time.perf_counter() - t0,
    )


@dataclass(frozen=True)
class PowerStudy(ResultFile):
    """Power curves of several checks (what ``mcdrop power`` and ``reports/power.pdf`` show).

    Attributes
    ----------
    curves : tuple of PowerCurve
    seed : int
    elapsed_s : float
    environment : dict
    """

    curves: tuple
    seed: int
    elapsed_s: float = 0.0
    environment: dict = field(default_factory=dict, compare=False)

    @property
    def confirmed(self) -> bool:
        """Every curve reaches its power at or below its stated effect."""
        return all(c.confirmed for c in self.curves)

    def curve(self, check: str) -> PowerCurve:
        """The curve of ``check`` (KeyError if not measured)."""
        for c in self.curves:
            if c.check == check:
                return c
        raise KeyError(f"no curve of {check!r}; curves: {[c.check for c in self.curves]}")

    def table(self) -> str:
        head = f"{'check':<22} {'unit':<38} {'stated':>10} {'crossing':>10} {'at stated':>9}  confirmed"
        lines = [head, "-" * len(head)]
        for c in self.curves:
            r = c.rate_at_stated
            lines.append(f"{c.check:<22} {c.unit:<38} {_g(c.stated):>10} {_g(c.crossing):>10} "
                         f"{'' if r is None else f'{r:.3f}':>9}  {'yes' if c.confirmed else 'NO'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return (f"mcdrop power: {len(self.curves)} checks, "
                f"{'every curve reaches' if self.confirmed else 'NOT every curve reaches'} power "
                f"{POWER} at or below its stated effect ({self.elapsed_s:.0f} s)\n\n" + self.table())

    def to_dict(self) -> dict:
        return {"type": "mcdrop.PowerStudy", "mcdrop_version": __version__,
                "verdict": "pass" if self.confirmed else "fail", "power": POWER,
                "alpha": self.curves[0].alpha if self.curves else None, "seed": self.seed,
                "elapsed_s": self.elapsed_s, "environment": self.environment,
                "curves": [c.to_dict() for c in self.curves]}




def power_study(checks=None, *, budget: int | None = None, repeats: int = 100,
                exact_repeats: int = EXACT_REPEATS, seed: int = 0, p: float = 0.3, alpha: float = 1e-6,
                progress: bool = False) -> PowerStudy:
    """Power curves of several checks at one budget (default: every check, default budget).

    Parameters
    ----------
    checks : sequence of str, optional
        Checks to measure (default :data:`POWER_CHECKS`, all of them).
    budget : int, optional
        Training calls of every audit (default: the audit's default budget).
    repeats : int, default 100
        Audits per effect of a statistical check.
    exact_repeats : int, default :data:`EXACT_REPEATS`
        Audits per effect of an exact check.
    seed, p, alpha, progress
        As for :func:`power_curve` (curve ``i`` gets seed ``seed + i``).

    Returns
    -------
    PowerStudy
    """
    checks = list(POWER_CHECKS if checks is None else checks)
    for c in checks:
        if c not in FAMILIES:
            raise ValueError(f"`checks` must be among {list(POWER_CHECKS)}; got {c!r}.")
    exact_repeats = check_positive_int(exact_repeats, "exact_repeats")
    t0 = time.perf_counter()
    curves = []
    for i, c in enumerate(checks):
        r = exact_repeats if FAMILIES[c].exact else repeats
        curves.append(power_curve(c, budget=budget, repeats=r, seed=seed + i, p=p, alpha=alpha,
                                  progress=progress))
    return PowerStudy(curves=tuple(curves), seed=seed, elapsed_s=time.perf_counter() - t0,
                      environment=software_environment())
