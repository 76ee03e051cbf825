"""Load and validate result JSON written by mcdrop, with clear errors for anything else.

The report package renders result *dictionaries* (``to_dict()`` of a
result, or the same JSON read back).  :func:`validate_result` checks such a
dictionary before any page is drawn, so a file from another tool, from
another mcdrop version or with missing fields gives one clear
``ValueError`` instead of a traceback halfway through a PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__
from ..results import VERDICTS

__all__ = ["load_result", "validate_result", "KNOWN_TYPES"]

KNOWN_TYPES = ("mcdrop.VerifyResult", "mcdrop.AuditReport", "mcdrop.LawSuiteResult", "mcdrop.ModelAuditReport",
               "mcdrop.PowerStudy")
_REQUIRED = {
    "mcdrop.VerifyResult": ("verdict", "alpha", "sections", "simulations"),
    "mcdrop.AuditReport": ("verdict", "alpha", "checks", "p"),
    "mcdrop.LawSuiteResult": ("verdict", "alpha", "sections", "name", "title"),
    "mcdrop.ModelAuditReport": ("verdict", "alpha", "checks", "sites", "target", "inputs", "calls"),
    "mcdrop.PowerStudy": ("verdict", "alpha", "power", "curves"),
}
_SITE_KEYS = ("name", "kind", "op", "verdict", "checks")
_CURVE_KEYS = ("check", "unit", "effects", "detected", "repeats", "stated", "power")
_SECTION_KEYS = ("name", "title", "control", "simulation", "checks", "p", "q", "samples")
_SIM_KEYS = ("p", "q", "samples", "x", "shape", "keep_counts", "keep_count_hist", "trace")
_TRACE_KEYS = ("samples", "mean", "sd")
_CHECK_KEYS = ("name", "verdict")


def _major_minor(v: str) -> tuple:
    parts = str(v).split(".")
    return tuple(parts[:2])


def _need(d, keys, where: str, source: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{source}: {where} must be a JSON object; got {type(d).__name__}.")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{source}: {where} lacks the field(s) {missing}.")


def _checks(checks, where: str, source: str) -> None:
    if not isinstance(checks, list):
        raise ValueError(f"{source}: {where} must be a list of checks; got {type(checks).__name__}.")
    for i, c in enumerate(checks):
        _need(c, _CHECK_KEYS, f"{where}[{i}]", source)
        if c["verdict"] not in VERDICTS:
            raise ValueError(
                f"{source}: {where}[{i}] has verdict {c['verdict']!r}; expected one of {VERDICTS}."
            )


def validate_result(d, source: str = "result") -> dict:
    """Check that ``d`` is a complete mcdrop result dictionary of this version.

    Parameters
    ----------
    d : dict
        ``to_dict()`` of a :class:`~mcdrop.verification.VerifyResult` or an
        ``AuditReport``, or the same JSON loaded from disk.
    source : str
        How to name the input in error messages (e.g. the file name).

    Returns
    -------
    dict
        ``d`` itself.

    Raises
    ------
    ValueError
        If ``d`` is not an mcdrop result, was written by another mcdrop
        version (major.minor), or lacks a field the report needs.
    """
    if not isinstance(d, dict) or d.get("type") not in KNOWN_TYPES:
        kind = d.get("type") if isinstance(d, dict) else type(d).__name__
        raise ValueError(
            f"{source} is not an mcdrop result (type={kind!r}); expected one of {KNOWN_TYPES}."
        )
    version = d.get("mcdrop_version")
    if version is None or _major_minor(version) != _major_minor(__version__):
        raise ValueError(
            f"{source} was written by mcdrop {version!r}; this is mcdrop {__version__} "
            f"and reads results of version {'.'.join(_major_minor(__version__))}.x only. "
            f"Re-run the check with this version, or render with the version that wrote it."
        )
    kind = d["type"]
    missing = [k for k in _REQUIRED[kind] if k not in d]
    if missing:
        raise ValueError(f"{source} lacks the field(s) {missing} of a {kind} record.")
    if d["verdict"] not in VERDICTS:
        raise ValueError(f"{source} has verdict {d['verdict']!r}; expected one of {VERDICTS}.")
    if kind == "mcdrop.VerifyResult":
        sims = d["simulations"]
        if not isinstance(sims, dict) or not isinstance(d["sections"], list) or not d["sections"]:
            raise ValueError(f"{source}: `sections` must be a non-empty list and `simulations` an object.")
        for i, s in enumerate(d["sections"]):
            _need(s, _SECTION_KEYS, f"sections[{i}]", source)
            _checks(s["checks"], f"sections[{i}].checks", source)
            if s["simulation"] not in sims:
                raise ValueError(
                    f"{source}: sections[{i}] refers to simulation {s['simulation']!r}, "
                    f"which is not in `simulations` ({sorted(sims)})."
                )
        for k, sim in sims.items():
            _need(sim, _SIM_KEYS, f"simulations[{k!r}]", source)
            _need(sim["trace"], _TRACE_KEYS, f"simulations[{k!r}].trace", source)
    elif kind == "mcdrop.AuditReport":
        _checks(d["checks"], "checks", source)
    elif kind == "mcdrop.ModelAuditReport":
        _checks(d["checks"], "checks", source)
        if not isinstance(d["sites"], list):
            raise ValueError(f"{source}: `sites` must be a list.")
        for i, s in enumerate(d["sites"]):
            _need(s, _SITE_KEYS, f"sites[{i}]", source)
            _checks(s["checks"], f"sites[{i}].checks", source)
    elif kind == "mcdrop.PowerStudy":
        if not isinstance(d["curves"], list) or not d["curves"]:
            raise ValueError(f"{source}: `curves` must be a non-empty list.")
        for i, c in enumerate(d["curves"]):
            _need(c, _CURVE_KEYS, f"curves[{i}]", source)
    else:
        if not isinstance(d["sections"], list):
            raise ValueError(f"{source}: `sections` must be a list.")
        for i, s in enumerate(d["sections"]):
            _need(s, ("title", "checks"), f"sections[{i}]", source)
            _checks(s["checks"], f"sections[{i}].checks", source)
    return d


def load_result(path) -> dict:
    """Read a result JSON written by mcdrop and validate it.

    Parameters
    ----------
    path : str or path-like
        A file written by ``mcdrop verify --json``, ``mcdrop audit --json``
        or ``result.to_json(path)``.

    Returns
    -------
    dict
        The result dictionary, ready for :func:`mcdrop.report.render`.

    Raises
    ------
    ValueError
        If the file is missing, unreadable, not JSON, not an mcdrop result,
        from another mcdrop version, or incomplete.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"result file {str(p)!r} does not exist.") from None
    except IsADirectoryError:
        raise ValueError(f"result path {str(p)!r} is a directory, not a JSON file.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{str(p)!r} is not a text (JSON) file.") from None
    except OSError as exc:
        raise ValueError(f"cannot read result file {str(p)!r}: {exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from None
    return validate_result(d, source=repr(str(p)))
