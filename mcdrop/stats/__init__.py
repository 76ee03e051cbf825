"""Intervals, hypothesis tests, sample-size planning and multiple testing.

Everything here works on *summaries* (counts, sums, moments), never on the
raw samples, so the cost does not grow with the number of mask draws: a keep
count out of ``10**14`` trials is tested as fast as one out of ``100``.

Conventions (see ``docs/architecture.md``): ``p`` is the **drop**
probability and ``q = 1 - p`` the **keep** probability.  Inverted dropout is
``y = x * m / q`` with ``m ~ Bernoulli(q)``, so ``E[y] = x``,
``Var[y] = x**2 p / q`` and ``y`` takes only the values ``{0, x / q}``.
The ratio ``y / x = m / q`` has mean 1 and variance ``p / q``; the keep
indicator ``m`` has mean ``q`` and variance ``p q``.

Each public function validates its input first (bad input raises
``ValueError``/``TypeError`` naming the argument), then computes, then
returns a frozen result object in the style of :mod:`scipy.stats`:
``.statistic``, ``.pvalue``, ``.confidence_interval(confidence_level=...)``
where meaningful, a readable ``__str__`` and a JSON-ready ``to_dict()``.

One concern a module, as in scipy.stats:

=================  ====================================================
``binomial``       Clopper–Pearson and Wilson intervals, the exact
                   keep-rate test, exact per-unit p-values, binomial GOF
``normal``         z quantiles and p-values (one helper each), the CLT
                   mean test
``moments``        two-point moments, the variance test, the exact
                   two-point variance test
``support``        the support test
``equivalence``    TOST and the three-zone verdict
``multiple``       Holm
``dispersion``     dispersion of keep counts (classic and matched
                   chi-square with rigorous bounds)
``tails``          Edgeworth criterion, Chernoff/Bennett bounds
``power``          planning and the detectable bias
=================  ====================================================
"""

from .binomial import KeepRateTestResult, clopper_pearson, keep_rate_test, wilson_interval
from .dispersion import DispersionTestResult, dispersion_test
from .equivalence import EquivalenceTestResult, equivalence_test, three_zone_verdict
from .moments import VarianceTestResult, two_point_moments, variance_test
from .multiple import HolmResult, holm
from .normal import MeanTestResult, mean_test
from .power import PlanResult, detectable_bias, plan
from .support import SupportTestResult, support_test

__all__ = [
    # intervals
    "clopper_pearson",
    "wilson_interval",
    # tests
    "keep_rate_test",
    "mean_test",
    "variance_test",
    "two_point_moments",
    "support_test",
    "equivalence_test",
    "three_zone_verdict",
    "holm",
    "dispersion_test",
    # planning
    "plan",
    "detectable_bias",
    # result types
    "KeepRateTestResult",
    "MeanTestResult",
    "VarianceTestResult",
    "SupportTestResult",
    "EquivalenceTestResult",
    "HolmResult",
    "DispersionTestResult",
    "PlanResult",
]
