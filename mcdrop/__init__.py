"""mcdrop: Monte Carlo checks of dropout layers with statistics a reviewer can trust.

Top-level names are imported lazily (PEP 562), so ``import mcdrop`` stays
cheap (the pytest plugin relies on that) and Numba compiles nothing until a
kernel is first used.  Modules are never named like the function they
export (``simulate`` lives in ``sampling``, ``verify`` in
``suites.verification``, ``audit`` in ``auditing.runner``): importing a
submodule binds its name on the package and would shadow the function.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "simulate": "mcdrop.sampling",
    "Simulation": "mcdrop.sampling",
    "LayerMean": "mcdrop.sampling",
    "verify": "mcdrop.suites.verification",
    "VerifyResult": "mcdrop.suites.results",
    "audit": "mcdrop.auditing",
    "audit_model": "mcdrop.auditing",
    "audit_relation": "mcdrop.auditing",
    "AuditReport": "mcdrop.auditing.report",
    "ModelAuditReport": "mcdrop.auditing.model_report",
    "plan": "mcdrop.stats",
    "power_curve": "mcdrop.auditing",
    "detectable_bias": "mcdrop.stats",
    "CheckResult": "mcdrop.results",
    "ConfidenceInterval": "mcdrop.results",
    "McdropWarning": "mcdrop.warnings",
    "LowPowerWarning": "mcdrop.warnings",
}
#: Modules reachable as attributes (``mcdrop.stats``, ...), some under their first-wave names.
_MODULES = {
    "testing": "mcdrop.testing",
    "strategies": "mcdrop.strategies",
    "stats": "mcdrop.stats",
    "laws": "mcdrop.laws",
    "variants": "mcdrop.laws",
    "rng": "mcdrop.core.rng",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'mcdrop' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))
