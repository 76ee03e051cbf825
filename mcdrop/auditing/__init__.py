"""Auditing other implementations: the harness, the budget, the battery and the report.

``mcdrop.audit(fn, p=..., shape=...)`` calls an implementation
``fn(x, training) -> array`` that owns its randomness, recovers the mask
from its outputs and tests every law of the claimed variant, with a
family-wise false-alarm rate of at most ``alpha`` (Holm) and a stated
``detectable_bias``.

=================  ==========================================================
``runner``         :func:`audit`: the lay-out of one audit
``budget``         arguments, the battery's checks, the default budget, power
``inputs``         the inputs fed (:func:`audit_input`)
``harness``        calling ``fn``: eval, streamed training calls, gradients
``stream``         the streamed accumulators (flat memory; FFT sums)
``battery``        every check, decided as one family; plot data
``moment_checks``  ``mean`` and ``variance``
``independence``   ``element_independence``, ``call_independence``, ``structure``
``effects``        each check's smallest detectable effect, in its own unit
``report``         :class:`AuditReport`
``model_runner``   :func:`audit_model`: every dropout site of a model
``site_stream``    one model site's calls, streamed into the battery
``model_checks``   per-site and model-level checks of ``audit_model``
``model_report``   :class:`ModelAuditReport`, :class:`SiteReport`
``relations``      :func:`audit_relation`: two implementations' masks
``injected``       correct dropouts with one check's effect injected, by size
``power``          :func:`power_curve`: measured detection rate against effect size
=================  ==========================================================
"""

from .budget import DEFAULT_SHAPE
from .inputs import MAX_ELEMENTS, audit_input
from .model_report import ModelAuditReport, SiteReport
from .model_runner import audit_model
from .power import PowerCurve, PowerStudy, power_curve, power_study
from .relations import audit_relation
from .report import AuditReport
from .runner import audit

__all__ = ["audit", "audit_model", "audit_relation", "AuditReport", "ModelAuditReport", "SiteReport", "audit_input",
           "power_curve", "PowerCurve", "power_study", "PowerStudy",
           "DEFAULT_SHAPE", "MAX_ELEMENTS"]
