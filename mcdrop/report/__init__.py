"""PDF reports (matplotlib only).  Reads result dictionaries; never samples.

Every renderer takes the ``to_dict()`` of a result (or the same JSON loaded
from disk), so ``mcdrop report RESULT.json`` re-renders exactly what a run
wrote.
"""

from __future__ import annotations

__all__ = ["render_verify", "render", "load_result"]


def render_verify(result: dict, path) -> None:
    """Write the PDF report of a :func:`mcdrop.verify` result dict to ``path``."""
    from .verify_report import render_verify as _render

    _render(result, path)


def load_result(path) -> dict:
    """Load and validate a result JSON written by mcdrop."""
    from .loading import load_result as _load

    return _load(path)


def render(result: dict, path) -> None:
    """Render any mcdrop result dict (dispatching on its ``type``)."""
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "mcdrop.VerifyResult":
        return render_verify(result, path)
    if kind == "mcdrop.AuditReport":
        from .audit_report import render_audit

        return render_audit(result, path)
    raise ValueError(
        f"cannot render a result of type {kind!r}; expected 'mcdrop.VerifyResult' "
        f"or 'mcdrop.AuditReport'."
    )
