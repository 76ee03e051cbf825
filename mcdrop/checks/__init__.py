"""Checks: one pending-check/decision family, and the law battery of a reference run.

* :mod:`~mcdrop.checks.pending` — :class:`PendingCheck` and :func:`decide`
  (Holm over one family; the three-zone verdict for tolerance bands), used
  by :func:`mcdrop.verify` and :func:`mcdrop.audit` alike;
* :mod:`~mcdrop.checks.masks` — keep rate, per-unit rates, keep-count law,
  dispersion (both front ends);
* :mod:`~mcdrop.checks.moments`, :mod:`~mcdrop.checks.outputs` — a reference
  run against a law;
* :mod:`~mcdrop.checks.battery` — all of them for a law, and the negative
  controls.

Checks never sample and never render.
"""

from .battery import Control, control_checks, controls, keep_count_checks, law_checks
from .pending import PendingCheck, decide, decide_families, exact, not_run

__all__ = ["PendingCheck", "decide", "decide_families", "exact", "not_run", "Control", "controls",
           "control_checks", "law_checks", "keep_count_checks"]
