"""Small result types shared by every layer: intervals and check verdicts.

These follow :mod:`scipy.stats` conventions: frozen dataclasses with a readable
``__str__`` and a ``to_dict()`` that gives plain JSON-ready Python values.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from . import __version__

__all__ = ["ConfidenceInterval", "CheckResult", "VERDICTS", "overall_verdict", "CheckedResult", "json_number", "software_environment"]

#: The verdicts a check or a report can carry.
VERDICTS = ("pass", "fail", "inconclusive")


def overall_verdict(checks) -> str:
    """A report's verdict from its checks: ``"fail"`` if one failed, else
    ``"inconclusive"`` if one was, else ``"pass"``."""
    v = {c.verdict for c in checks}
    return "fail" if "fail" in v else ("inconclusive" if "inconclusive" in v else "pass")


class CheckedResult:
    """``passed``, ``verdict``, ``failed`` and ``check(name)`` of a result holding ``checks`` (mixin).

    ``all_checks()`` (default: ``checks``) decides the verdict; a report with
    nested parts (a model's sites) overrides it and ``failed``.
    """

    def all_checks(self) -> list:
        """Every check that decides the verdict."""
        return list(self.checks)

    @property
    def passed(self) -> bool:
        """True unless a check failed (an inconclusive check did not fail)."""
        return all(c.verdict != "fail" for c in self.all_checks())

    @property
    def verdict(self) -> str:
        return overall_verdict(self.all_checks())

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.name for c in self.checks if c.verdict == "fail"]

    def check(self, name: str):
        """The check called ``name`` (KeyError naming the checks there are)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def __eq__(self, other):
        # ``report == "pass"`` compares the verdict: ``assert report == "pass"``
        # then fails with mcdrop's explanation (the pytest plugin's
        # pytest_assertrepr_compare).  Reports compare by identity otherwise.
        if isinstance(other, str):
            return self.verdict == other
        return self is other

    __hash__ = object.__hash__


def software_environment() -> dict:
    """The versions and machine a result records (``environment`` in its JSON).

    ``mcdrop``, ``numpy``, ``numba``, ``scipy`` and ``python`` versions,
    ``machine`` (system and architecture) and ``cpu_threads`` (the Numba
    thread pool); callers add what is theirs (e.g. the audited framework's
    version).  Versions are read from the installed distributions, so this
    imports none of them.
    """
    return {
        "mcdrop": __version__,
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "scipy": _version("scipy"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpu_threads": int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def json_number(value: Any) -> Any:
    """Return ``value`` as a JSON-safe number (``None`` for NaN/inf/None)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
        return int(value)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class ConfidenceInterval:
    """A two-sided interval ``[low, high]`` at ``confidence_level``."""

    low: float
    high: float
    confidence_level: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def __iter__(self):
        # Allows ``low, high = ci`` like scipy's ConfidenceInterval namedtuple.
        yield self.low
        yield self.high

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    def __str__(self) -> str:
        return f"[{self.low:.6g}, {self.high:.6g}]"

    def to_dict(self) -> dict:
        return {
            "low": json_number(self.low),
            "high": json_number(self.high),
            "confidence_level": json_number(self.confidence_level),
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> "ConfidenceInterval | None":
        if d is None:
            return None
        low = d.get("low")
        high = d.get("high")
        return cls(
            low=float("nan") if low is None else low,
            high=float("nan") if high is None else high,
            confidence_level=d.get("confidence_level"),
        )


@dataclass(frozen=True, eq=False)  # __eq__ below: also compares to a verdict string
class CheckResult:
    """The outcome of one statistical or exact check.

    Attributes
    ----------
    name : str
        Short identifier of the check, e.g. ``"keep_rate"``.
    verdict : {"pass", "fail", "inconclusive"}
        ``"inconclusive"`` is only used with a tolerance band (three-zone
        verdict) or when a check could not run for a reason that is not a
        defect of the implementation.
    statistic : float or None
        The test statistic (for example the observed keep rate).
    pvalue : float or None
        The p-value of the check's null hypothesis, if it has one.
    confidence_interval : ConfidenceInterval or None
        Interval for the estimate, at the confidence the check used.
    detail : str
        One sentence a person can read: what was tested, what was seen.
    estimate, expected : float or None
        The estimated quantity and its value under the law being checked.
    alpha : float or None
        The significance level the check was judged at (after any
        multiple-testing split).
    extra : dict
        Check-specific numbers for reports (JSON-ready values only).
    """

    name: str
    verdict: str
    statistic: float | None = None
    pvalue: float | None = None
    confidence_interval: ConfidenceInterval | None = None
    detail: str = ""
    estimate: float | None = None
    expected: float | None = None
    alpha: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"`verdict` must be one of {VERDICTS}; got {self.verdict!r}."
            )

    @property
    def passed(self) -> bool:
        """True unless the check failed (an inconclusive check did not fail)."""
        return self.verdict != "fail"

    def __eq__(self, other):
        # ``check == "pass"`` compares the verdict, so a test can write
        # ``assert check == "pass"`` and get mcdrop's explanation on failure.
        if isinstance(other, str):
            return self.verdict == other
        if not isinstance(other, CheckResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        parts = [f"{self.name}: {self.verdict.upper()}"]
        if self.estimate is not None:
            parts.append(f"estimate={self.estimate:.6g}")
        if self.expected is not None:
            parts.append(f"expected={self.expected:.6g}")
        if self.confidence_interval is not None:
            parts.append(f"CI={self.confidence_interval}")
        if self.pvalue is not None:
            parts.append(f"p={self.pvalue:.3g}")
        text = "  ".join(parts)
        if self.detail:
            text += f"\n    {self.detail}"
        return text

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "passed": self.passed,
            "statistic": json_number(self.statistic),
            "pvalue": json_number(self.pvalue),
            "confidence_interval": (
                None
                if self.confidence_interval is None
                else self.confidence_interval.to_dict()
            ),
            "detail": self.detail,
            "estimate": json_number(self.estimate),
            "expected": json_number(self.expected),
            "alpha": json_number(self.alpha),
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CheckResult":
        return cls(
            name=d["name"],
            verdict=d["verdict"],
            statistic=d.get("statistic"),
            pvalue=d.get("pvalue"),
            confidence_interval=ConfidenceInterval.from_dict(
                d.get("confidence_interval")
            ),
            detail=d.get("detail", ""),
            estimate=d.get("estimate"),
            expected=d.get("expected"),
            alpha=d.get("alpha"),
            extra=d.get("extra", {}) or {},
        )
