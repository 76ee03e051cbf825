"""mcdrop: Monte Carlo checks of dropout layers with statistics a reviewer can trust.

Top-level names are imported lazily (PEP 562), so ``import mcdrop`` stays
cheap (the pytest plugin relies on that) and Numba compiles nothing until a
kernel is first used.  Modules are never named like the function they
export (``simulate`` lives in ``sampling.py``, ``verify`` in
``verification.py``, ``audit`` in ``auditing.py``): importing a submodule
binds its name on the package and would shadow the function.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "simulate": "mcdrop.sampling",
    "Simulation": "mcdrop.sampling",
    "LayerMean": "mcdrop.sampling",
    "verify": "mcdrop.verification",
    "VerifyResult": "mcdrop.verification",
    "audit": "mcdrop.auditing",
    "AuditReport": "mcdrop.auditing",
    "plan": "mcdrop.stats",
    "detectable_bias": "mcdrop.stats",
    "CheckResult": "mcdrop.results",
    "ConfidenceInterval": "mcdrop.results",
    "McdropWarning": "mcdrop.warnings",
    "LowPowerWarning": "mcdrop.warnings",
    "testing": "mcdrop.testing",
    "strategies": "mcdrop.strategies",
    "stats": "mcdrop.stats",
    "variants": "mcdrop.variants",
    "rng": "mcdrop.rng",
}

__all__ = sorted(k for k in _LAZY if k not in {"testing", "strategies", "stats", "variants", "rng"})


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcdrop' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.rsplit(".", 1)[-1] == name else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
