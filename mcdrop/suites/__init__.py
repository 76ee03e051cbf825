"""Verification suites: the laws of dropout checked on the reference kernels.

* :mod:`~mcdrop.suites.verification` — :func:`mcdrop.verify`, one flow for
  every law: main run, p sweep, negative controls;
* :mod:`~mcdrop.suites.variants`, :mod:`~mcdrop.suites.regularization`,
  :mod:`~mcdrop.suites.inference_gap` — the per-law suites;
* :mod:`~mcdrop.suites.registry` — the scripts' entry points and
  ``mcdrop verify --all``;
* :mod:`~mcdrop.suites.results` — the result types they share.

Suites never import each other: the registry is the one module that knows
them all.
"""

__all__: list[str] = []
