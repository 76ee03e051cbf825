"""One family of checks, decided together: :class:`PendingCheck` and :func:`decide`.

Every check of :func:`mcdrop.verify` and :func:`mcdrop.audit` is first a
:class:`PendingCheck`: the estimate, its p-value under the law, and how to
build its interval at a given confidence.  The verdicts are decided only
once the whole family is known (:func:`decide`): Holm at the family-wise
``alpha`` over every check — exact checks carry p-value 0 (violated) or 1 —
and, for checks with a tolerance band, the three-zone verdict on the
interval at the family's simultaneous level.  That is how both keep their
stated false-alarm bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..results import CheckResult, ConfidenceInterval
from ..stats.equivalence import three_zone_verdict
from ..stats.multiple import holm

__all__ = ["PendingCheck", "exact", "not_run", "decide", "decide_families", "jsonable"]


@dataclass
class PendingCheck:
    """A check whose verdict waits for the family's multiple-testing split.

    Attributes
    ----------
    name, detail : str
        The check's name and one readable sentence.
    pvalue : float
        Its p-value (0 or 1 for an exact check; NaN if it could not run).
    estimate, expected, statistic : float or None
        What was measured, the law's value and the test statistic
        (default: the estimate).
    interval : callable or None
        ``level -> ConfidenceInterval``.
    exact : bool
        An exact check: ``pvalue`` is 0 (violated) or 1.
    extra : dict
        Check-specific numbers for reports.
    band : tuple or None
        ``(low, high)`` tolerance band: the verdict is the three-zone
        verdict of :func:`mcdrop.stats.three_zone_verdict` on the interval.
    extra_fail : bool
        Fail whatever the band says (e.g. one unit far outside it).
    verdict : str or None
        Already decided (e.g. ``"inconclusive"``: the check could not run).
    holm_inside : callable or None
        ``alpha -> units rejected`` inside the check (reported in ``extra``).
    """

    name: str
    pvalue: float
    estimate: float | None
    expected: float | None
    detail: str
    interval: Callable[[float], ConfidenceInterval] | None = None
    statistic: float | None = None
    exact: bool = False
    extra: dict = field(default_factory=dict)
    band: tuple | None = None
    extra_fail: bool = False
    verdict: str | None = None
    holm_inside: Callable[[float], int] | None = None

    @classmethod
    def from_test(cls, name: str, res, *, estimate, expected, detail: str, extra: dict | None = None):
        """The check of a test result ``res`` (:mod:`mcdrop.stats`): its p-value, statistic and interval."""
        return cls(
            name=name, pvalue=res.pvalue, estimate=estimate, expected=expected, detail=detail,
            interval=res.confidence_interval, statistic=res.statistic, extra=extra or {},
        )

    def finish(self, verdict: str, alpha_check: float | None) -> CheckResult:
        """The decided :class:`~mcdrop.results.CheckResult` (interval at ``1 - alpha_check``)."""
        ci = None
        extra = dict(self.extra)
        if self.interval is not None and alpha_check is not None:
            ci = self.interval(1.0 - alpha_check)
        if self.holm_inside is not None and alpha_check is not None:
            extra["units_rejected"] = int(self.holm_inside(alpha_check / 2.0))
        if self.band is not None:
            extra["band"] = [float(self.band[0]), float(self.band[1])]
        pvalue = None if (self.pvalue is None or math.isnan(self.pvalue)) else self.pvalue
        return CheckResult(
            name=self.name, verdict=verdict,
            statistic=self.statistic if self.statistic is not None else self.estimate,
            pvalue=pvalue, confidence_interval=ci, detail=self.detail, estimate=self.estimate,
            expected=self.expected, alpha=alpha_check, extra=jsonable(extra),
        )


def exact(name: str, ok: bool, detail: str, *, estimate=None, expected=None, extra=None) -> PendingCheck:
    """An exact check: p-value 1 when ``ok``, else 0 (fails at any level)."""
    return PendingCheck(name=name, pvalue=1.0 if ok else 0.0, estimate=estimate, expected=expected,
                        detail=detail, exact=True, statistic=estimate, extra=extra or {})


def not_run(name: str, reason: str) -> PendingCheck:
    """A check that could not run: ``"inconclusive"``, whatever the family decides."""
    return PendingCheck(name=name, pvalue=math.nan, estimate=None, expected=None,
                        detail=f"not run: {reason}", verdict="inconclusive")


def decide(pending: list[PendingCheck], alpha: float) -> list[CheckResult]:
    """Decide a family of checks at family-wise level ``alpha``.

    Checks with a ``band`` get ``alpha/m`` each (Bonferroni) and the
    three-zone verdict on their interval at ``1 - alpha/m``; the others are
    Holm-corrected at ``alpha (m - k)/m`` (``k`` band checks).  Intervals are
    at the simultaneous level ``1 - alpha/m``.
    """
    m = len(pending)
    if m == 0:
        return []
    a_check = alpha / m
    out: list[CheckResult | None] = [None] * m
    holm_idx = [i for i, pc in enumerate(pending) if pc.band is None and pc.verdict is None]
    k_band = sum(1 for pc in pending if pc.band is not None and pc.verdict is None)
    if holm_idx:
        a_holm = alpha if k_band == 0 else alpha * (m - k_band) / m
        res = holm(np.array([pending[i].pvalue for i in holm_idx]), a_holm)
        for i, rej in zip(holm_idx, res.rejected):
            out[i] = pending[i].finish("fail" if rej else "pass", a_check)
    for i, pc in enumerate(pending):
        if pc.verdict is not None:
            out[i] = pc.finish(pc.verdict, None)
        elif pc.band is not None:
            v = three_zone_verdict(pc.interval(1.0 - a_check), pc.band[0], pc.band[1])
            out[i] = pc.finish("fail" if pc.extra_fail else v, a_check)
    return out  # type: ignore[return-value]


def decide_families(groups, alpha: float) -> tuple[dict[str, list[CheckResult]], int]:
    """Decide named groups of checks: the laws as one family, the controls as another.

    ``groups`` is ``[(name, control, [PendingCheck, ...]), ...]``; the groups
    with ``control=False`` form one family at ``alpha`` (:func:`decide`),
    those with ``control=True`` another (each control check is expected to
    fail).  Returns ``{name: [CheckResult, ...]}`` and the number of law
    checks.
    """
    decided: dict[str, list[CheckResult]] = {}
    m_laws = 0
    for control in (False, True):
        family = [(name, pcs) for name, c, pcs in groups if bool(c) == control]
        flat = [pc for _, pcs in family for pc in pcs]
        done = decide(flat, alpha)
        i = 0
        for name, pcs in family:
            decided[name] = done[i: i + len(pcs)]
            i += len(pcs)
        if not control:
            m_laws = len(flat)
    return decided, m_laws


def jsonable(d):
    """``d`` with NumPy scalars, tuples and non-finite floats made JSON-ready (recursively)."""
    if isinstance(d, dict):
        return {str(k): jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [jsonable(v) for v in d]
    if isinstance(d, (np.integer,)):
        return int(d)
    if isinstance(d, (np.floating, float)):
        f = float(d)
        return f if math.isfinite(f) else None
    if isinstance(d, np.bool_):
        return bool(d)
    return d
