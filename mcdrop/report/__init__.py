"""PDF reports (matplotlib only).  Reads result dictionaries; never samples.

Every renderer takes the ``to_dict()`` of a result (or the same JSON loaded
from disk), so ``mcdrop report RESULT.json`` re-renders exactly what a run
wrote.  Reports are deterministic: the same result gives the same PDF bytes
unless ``timestamp=True`` asks for the rendering date.
"""

from __future__ import annotations

import json

from . import files as _files
from .loading import load_result, validate_result

__all__ = ["render", "render_verify", "render_audit", "load_result", "validate_result", "JsonFile", "ResultFile"]


class JsonFile:
    """``to_json`` for a result type that has ``to_dict()`` (mixin)."""

    def to_json(self, path=None, *, indent: int | None = 1) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` (atomically) if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            _files.atomic_write_text(path, text)
        return text


class ResultFile(JsonFile):
    """``to_json`` and ``to_pdf`` for a result type whose ``to_dict()`` a renderer reads (mixin).

    The PDF is rendered from the dict alone, as ``mcdrop report`` renders
    saved JSON, so a report and its JSON never disagree.
    """

    def to_pdf(self, path, *, timestamp: bool = False) -> None:
        """Write the PDF report to ``path`` (atomically; ``timestamp`` adds the rendering date)."""
        render(self.to_dict(), path, timestamp=timestamp)


def render_verify(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF report of a :func:`mcdrop.verify` result dict to ``path``.

    Parameters
    ----------
    result : dict
        ``VerifyResult.to_dict()`` or the same JSON loaded from disk.
    path : str or path-like
        Output PDF (written atomically: never left partial).
    timestamp : bool, default False
        Add the rendering date (page 1 and PDF metadata).
    """
    return render(result, path, timestamp=timestamp, _expect="mcdrop.VerifyResult")


def render_audit(result: dict, path, *, timestamp: bool = False) -> None:
    """Write the PDF report of a :func:`mcdrop.audit` result dict to ``path``.

    Parameters
    ----------
    result : dict
        ``AuditReport.to_dict()`` or the same JSON loaded from disk.
    path : str or path-like
        Output PDF (written atomically: never left partial).
    timestamp : bool, default False
        Add the rendering date (page 1 and PDF metadata).
    """
    return render(result, path, timestamp=timestamp, _expect="mcdrop.AuditReport")


def render(result: dict, path, *, timestamp: bool = False, _expect: str | None = None) -> None:
    """Render any mcdrop result dict to a PDF, dispatching on its ``type``.

    Parameters
    ----------
    result : dict
        ``to_dict()`` of a VerifyResult, an AuditReport, a ModelAuditReport,
        a LawSuiteResult or a PowerStudy (or its JSON).  A VerifyResult of another variant or structure and
        a LawSuiteResult go to :mod:`mcdrop.report.laws_report`.
    path : str or path-like
        Output PDF.  Its directory is created if needed; the file is written
        to a temporary name and moved into place only when complete.
    timestamp : bool, default False
        Add the rendering date (page 1 and PDF metadata).

    Raises
    ------
    ValueError
        If ``result`` is not a complete mcdrop result of this version, or
        ``path`` cannot be written.
    """
    validate_result(result)
    kind = result["type"]
    if _expect is not None and kind != _expect:
        raise ValueError(f"expected a {_expect} record; got {kind!r}.")
    if kind == "mcdrop.VerifyResult":
        if (result.get("variant", "inverted"), result.get("structure", "element")) != ("inverted", "element"):
            from .laws_report import render_variant_verify as _render
        else:
            from .verify_report import render_verify as _render
    elif kind == "mcdrop.LawSuiteResult":
        from .laws_report import render_law_suite as _render
    elif kind == "mcdrop.ModelAuditReport":
        from .model_report import render_model_audit as _render
    elif kind == "mcdrop.PowerStudy":
        from .power_report import render_power as _render
    else:
        from .audit_report import render_audit as _render
    try:
        _render(result, path, timestamp=timestamp)
    except (KeyError, IndexError, TypeError) as exc:
        # A field the validation does not cover is missing or of the wrong
        # type; the temporary PDF is already gone (atomic_path).
        raise ValueError(
            f"the {kind} record is malformed and cannot be rendered "
            f"({type(exc).__name__}: {exc}); re-create it with this mcdrop version."
        ) from exc
