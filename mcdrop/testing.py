"""Assertion helpers for other projects' test suites.

``assert_dropout(fn, p=...)`` runs :func:`mcdrop.audit` and raises
:class:`AssertionError` whose message is the readable audit summary (failed
checks first, with estimate, interval, p-value, and the smallest bias the run
could detect).  Misconfiguration — a non-callable ``fn``, a bad option — raises
``TypeError``/``ValueError`` instead, so a broken test is never mistaken for a
broken dropout.

The focused helpers check one law at a time:

=========================== ==========================================
``assert_keep_rate``         keep rate = 1 - p (exact binomial)
``assert_mean_preserved``    E[y] = x (pooled and per element)
``assert_eval_identity``     eval mode returns x unchanged
``assert_independent_masks`` no correlation within or across calls
=========================== ==========================================

Budget
------
Every assertion is a statistical test with false-alarm probability at most
``alpha`` (default 1e-6; the audit splits it over its checks with Holm).  A
property test that calls ``assert_dropout`` in each of ``k`` Hypothesis
examples must charge each example its share, ``alpha_total / k`` — see
:func:`alpha_per_example` — so the whole property test fails a correct
dropout with probability at most ``alpha_total`` (union bound); with
``@settings(derandomize=True)`` and integer ``seed`` draws it is also fully
deterministic.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ._validation import check_alpha, check_positive_int
from .auditing import audit

__all__ = [
    "assert_dropout",
    "assert_keep_rate",
    "assert_mean_preserved",
    "assert_eval_identity",
    "assert_independent_masks",
    "alpha_per_example",
    "DropoutAssertionError",
]

#: The checks each focused helper judges.
FOCUS = {
    "keep_rate": ("keep_rate",),
    "mean": ("mean",),
    "eval_identity": ("eval_identity",),
    "independence": ("element_independence", "call_independence"),
}


class DropoutAssertionError(AssertionError):
    """An AssertionError that carries the audit report (``.report``)."""

    def __init__(self, message: str, report: Any):
        super().__init__(message)
        self.report = report


def alpha_per_example(alpha_total: float, max_examples: int) -> float:
    """The false-alarm budget of one example: ``alpha_total / max_examples``.

    Parameters
    ----------
    alpha_total : float
        Budget of the whole property test, in (0, 1).
    max_examples : int
        Hypothesis' ``max_examples`` for that test.

    Examples
    --------
    >>> alpha_per_example(1e-6, 50)
    2e-08
    """
    a = check_alpha(alpha_total, "alpha_total")
    k = check_positive_int(max_examples, "max_examples")
    return a / k


def _check_fn(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(
            f"`fn` must be a callable fn(x, training) -> array (or a framework module "
            f"wrapped by an mcdrop adapter); got {fn!r} of type {type(fn).__name__}."
        )


def _summary(report: Any, focus: Iterable[str] | None) -> str:
    checks = list(report.checks)
    if focus is not None:
        fset = set(focus)
        checks = [c for c in checks if c.name in fset] + [c for c in checks if c.name not in fset]
    failed = [c for c in checks if c.verdict == "fail"]
    other = [c for c in checks if c.verdict != "fail"]
    lines = [f"dropout audit {report.verdict.upper()}: {getattr(report, 'target', 'fn')}"]
    lines.append(
        f"p={report.p:g} (keep {report.q:g}), shape={tuple(report.shape)}, calls={report.calls}, "
        f"alpha={report.alpha:g} (family-wise, Holm), seed={report.seed}"
    )
    db = getattr(report, "detectable_bias", None)
    if db is not None:
        lines.append(f"smallest relative mean bias this run detects with power 0.99: {db:.3g}")
    if failed:
        lines.append("failed checks:")
        lines += ["  " + str(c).replace("\n", "\n  ") for c in failed]
    lines.append("other checks:")
    lines += ["  " + str(c).split("\n")[0] for c in other]
    return "\n".join(lines)


def _run(fn, p, keep, options: dict, focus, allow_inconclusive: bool):
    _check_fn(fn)
    if not isinstance(allow_inconclusive, bool):
        raise TypeError(f"`allow_inconclusive` must be a bool; got {allow_inconclusive!r}.")
    report = audit(fn, p, keep=keep, **options)
    names = {c.name: c for c in report.checks}
    if focus is None:
        judged = list(report.checks)
    else:
        missing = [f for f in focus if f not in names]
        if missing:
            raise ValueError(
                f"the audit did not run the check(s) {missing} (options {options!r}); "
                f"it ran {sorted(names)}."
            )
        judged = [names[f] for f in focus]
    verdicts = {c.verdict for c in judged}
    if "fail" in verdicts or ("inconclusive" in verdicts and not allow_inconclusive):
        raise DropoutAssertionError(_summary(report, focus), report)
    return report


def assert_dropout(
    fn: Callable,
    p: float | None = None,
    *,
    keep: float | None = None,
    allow_inconclusive: bool = False,
    **audit_options: Any,
):
    """Audit ``fn`` and raise AssertionError if any check fails.

    Parameters
    ----------
    fn : callable
        ``fn(x: numpy.ndarray, training: bool) -> array``, owning its
        randomness (use :mod:`mcdrop.adapters` for torch/JAX/Keras objects).
    p : float, optional
        Claimed **drop** probability (or give ``keep=``, the keep probability).
    allow_inconclusive : bool, default False
        With a ``tolerance`` band, an inconclusive verdict (interval straddles
        the band) raises unless this is True.
    **audit_options
        Passed to :func:`mcdrop.audit`: ``shape``, ``calls``, ``variant``,
        ``structure``, ``alpha`` (default 1e-6), ``tolerance``, ``seed``, ...

    Returns
    -------
    AuditReport
        The report, when the assertion holds.

    Raises
    ------
    AssertionError
        (:class:`DropoutAssertionError`, with ``.report``) when a check fails.
    TypeError, ValueError
        When ``fn`` is not callable or an option is invalid.
    """
    return _run(fn, p, keep, audit_options, None, allow_inconclusive)


def assert_keep_rate(fn: Callable, p: float | None = None, *, keep: float | None = None, **audit_options: Any):
    """Assert that ``fn`` keeps each element with probability ``1 - p`` (exact binomial).

    The focused helpers run the same audit as :func:`assert_dropout` (same
    ``fn``, ``p``/``keep`` and ``**audit_options``) but judge only their
    checks; the message still lists every check, the judged ones first.
    An inconclusive judged check (with a ``tolerance``) raises.

    Returns
    -------
    AuditReport

    Raises
    ------
    AssertionError
        (:class:`DropoutAssertionError`) when a judged check does not pass.
    TypeError, ValueError
        When ``fn`` is not callable or an option is invalid.
    """
    return _run(fn, p, keep, audit_options, FOCUS["keep_rate"], False)


def assert_mean_preserved(fn: Callable, p: float | None = None, *, keep: float | None = None, **audit_options: Any):
    """Assert that ``E[fn(x, True)] = x`` (pooled and per element); see :func:`assert_keep_rate`."""
    return _run(fn, p, keep, audit_options, FOCUS["mean"], False)


def assert_eval_identity(fn: Callable, p: float | None = None, *, keep: float | None = None, **audit_options: Any):
    """Assert that ``fn(x, False)`` returns ``x`` exactly; see :func:`assert_keep_rate`."""
    return _run(fn, p, keep, audit_options, FOCUS["eval_identity"], False)


def assert_independent_masks(fn: Callable, p: float | None = None, *, keep: float | None = None, **audit_options: Any):
    """Assert no mask correlation within a call (any memory offset) or across calls; see :func:`assert_keep_rate`."""
    return _run(fn, p, keep, audit_options, FOCUS["independence"], False)

