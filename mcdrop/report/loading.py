"""Load result JSON written by mcdrop, with clear errors for anything else."""

from __future__ import annotations

import json
from pathlib import Path

from .. import __version__

__all__ = ["load_result", "KNOWN_TYPES"]

KNOWN_TYPES = ("mcdrop.VerifyResult", "mcdrop.AuditReport")
_REQUIRED = {
    "mcdrop.VerifyResult": ("verdict", "alpha", "sections", "simulations"),
    "mcdrop.AuditReport": ("verdict", "alpha", "checks"),
}


def _major_minor(v: str) -> tuple:
    parts = str(v).split(".")
    return tuple(parts[:2])


def load_result(path) -> dict:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"result file {str(p)!r} does not exist.") from None
    except OSError as exc:
        raise ValueError(f"cannot read result file {str(p)!r}: {exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from None
    if not isinstance(d, dict) or d.get("type") not in KNOWN_TYPES:
        kind = d.get("type") if isinstance(d, dict) else type(d).__name__
        raise ValueError(
            f"{str(p)!r} is not an mcdrop result (type={kind!r}); expected one of {KNOWN_TYPES}."
        )
    version = d.get("mcdrop_version")
    if version is None or _major_minor(version) != _major_minor(__version__):
        raise ValueError(
            f"{str(p)!r} was written by mcdrop {version!r}; this is mcdrop {__version__} "
            f"and reads results of version {'.'.join(_major_minor(__version__))}.x only."
        )
    missing = [k for k in _REQUIRED[d["type"]] if k not in d]
    if missing:
        raise ValueError(f"{str(p)!r} lacks the field(s) {missing} of a {d['type']} record.")
    return d
