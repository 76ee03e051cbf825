"""mcdrop.testing: assertion helpers, and the mutation suite killed under @given.

Every audit here is seeded (the implementation's generator and the audit's
``seed``; Hypothesis derandomized), so verdicts are the same on every run.
"""

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from mcdrop import strategies as mst
from mcdrop.testing import (
    DropoutAssertionError,
    alpha_per_example,
    assert_dropout,
    assert_eval_identity,
    assert_independent_masks,
    assert_keep_rate,
    assert_mean_preserved,
)
from mutants import MUTANTS, active_in_eval, correct, no_rescale, same_mask_every_call

SMALL = dict(shape=(32, 64), calls=300)


def test_correct_dropout_passes_and_returns_report():
    rep = assert_dropout(correct(0.3, seed=1), p=0.3, seed=5, **SMALL)
    assert rep.passed and rep.verdict == "pass"


def test_failure_message_is_the_readable_summary():
    with pytest.raises(AssertionError) as info:
        assert_dropout(no_rescale(2), p=0.3, seed=5, **SMALL)
    msg = str(info.value)
    assert isinstance(info.value, DropoutAssertionError) and info.value.report.verdict == "fail"
    first_failed = msg.index("failed checks:")
    assert first_failed < msg.index("mean: FAIL") < msg.index("other checks:")  # failed first
    for piece in ("FAIL", "estimate=", "CI=", "p=", "smallest relative mean bias", "alpha=1e-06"):
        assert piece in msg, piece


def test_misconfiguration_is_not_an_assertion():
    with pytest.raises(TypeError, match="`fn`"):
        assert_dropout("not callable", p=0.3)
    with pytest.raises(ValueError, match="`calls`"):
        assert_dropout(correct(0.3), p=0.3, calls=0)
    with pytest.raises(ValueError, match="`p`"):
        assert_dropout(correct(0.3), p=1.3)
    with pytest.raises(TypeError):
        assert_dropout(correct(0.3), p=0.3, no_such_option=1)


def test_focused_helpers_judge_one_law():
    # no rescaling keeps the right rate: the keep-rate assertion passes, the mean one fails
    assert_keep_rate(no_rescale(3), p=0.3, seed=1, **SMALL)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_preserved(no_rescale(3), p=0.3, seed=1, **SMALL)
    with pytest.raises(AssertionError, match="eval_identity"):
        assert_eval_identity(active_in_eval(4), p=0.3, seed=1, **SMALL)
    with pytest.raises(AssertionError, match="call_independence"):
        assert_independent_masks(same_mask_every_call(5), p=0.3, seed=1, **SMALL)
    assert_independent_masks(correct(0.3, seed=6), p=0.3, seed=1, **SMALL)


def test_inconclusive_raises_unless_allowed():
    # A correct dropout, a 0.1% band and only 300 calls: the keep-rate and mean
    # intervals straddle the band (deterministic: both seeds fixed).
    kw = dict(p=0.3, tolerance=1e-3, seed=5, **SMALL)
    with pytest.raises(DropoutAssertionError, match="INCONCLUSIVE") as info:
        assert_dropout(correct(0.3, seed=1), **kw)
    assert info.value.report.verdict == "inconclusive"
    rep = assert_dropout(correct(0.3, seed=1), allow_inconclusive=True, **kw)
    assert rep.verdict == "inconclusive"
    with pytest.raises(TypeError, match="`allow_inconclusive`"):
        assert_dropout(correct(0.3, seed=1), allow_inconclusive="yes", **kw)


def test_alpha_per_example():
    assert alpha_per_example(1e-6, 50) == pytest.approx(2e-8)
    with pytest.raises(ValueError, match="`alpha_total`"):
        alpha_per_example(1.5, 10)
    with pytest.raises(ValueError, match="`max_examples`"):
        alpha_per_example(1e-6, 0)


# --- the mutation suite under @given -------------------------------------------------
# Budget rule (docs/testing.md, "The alpha budget under @given"): a property test with max_examples = k charges
# each example alpha_total / k.  Here alpha_total = 1e-6 and k = 4, so a correct dropout
# fails the whole property test with probability <= 1e-6; every mutant must be caught
# by some drawn example.  Shrinking is switched off (a statistical failure does not
# shrink meaningfully) and derandomize=True makes the drawn examples the same on every run.
ALPHA_TOTAL = 1e-6
K = 4
MUTANT_SETTINGS = settings(
    max_examples=K, derandomize=True, deadline=None, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("name,factory,kwargs,killer", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_killed_through_assert_dropout_under_given(name, factory, kwargs, killer):
    kw = dict(kwargs)
    kw.setdefault("p", 0.3)
    shape_choices = [kw.pop("shape")] if "shape" in kw else [(64, 128), (128, 64), (96, 96)]

    @MUTANT_SETTINGS
    @given(seed=mst.seeds(), shape=st.sampled_from(shape_choices))
    def prop(seed, shape):
        assert_dropout(factory(seed), shape=shape, seed=seed,
                       alpha=alpha_per_example(ALPHA_TOTAL, K), **kw)

    with pytest.raises(AssertionError) as info:
        prop()
    assert killer in str(info.value), f"{name}: {killer} not among the failures:\n{info.value}"


def test_correct_dropout_survives_the_same_property_test():
    @MUTANT_SETTINGS
    @given(seed=mst.seeds(), p=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9, 1.0]))
    def prop(seed, p):
        assert_dropout(correct(p, seed=seed), p=p, shape=(64, 128), seed=seed,
                       alpha=alpha_per_example(ALPHA_TOTAL, K))

    prop()
