"""mcdrop.audit_relation: tensor-parallel ranks seeded apart or alike, shared masks, overlapping streams.

Runs are seeded (each rank owns a generator seeded here), so each outcome is fixed.  A correct pair
fails with probability at most alpha = 1e-6 (Holm over the relation's checks; the agreement test is
exact binomial, the cross-correlation uses the tail bounds of the audit's call_independence check);
the calibration test below repeats 20 independent pairs at alpha = 1e-3 and allows none to fail:
P(any false alarm) <= 20 * 1e-3 = 2%, and the seeds are fixed, so the test's outcome never changes.
The buggy pairs fail by margins of hundreds of standard errors.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mcdrop  # noqa: E402

from model_zoo import CounterDropout, RankDropout, rank_pair  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _numpy_rank(seed, p=0.3):
    g = np.random.default_rng(seed)

    def fn(x, training):
        if not training:
            return x
        return np.where(g.random(x.shape) < 1 - p, x / (1 - p), 0).astype(x.dtype)

    fn.p = p
    return fn


def test_tensor_parallel_ranks_seeded_apart_are_independent():
    a, b = rank_pair(0.1, "apart")
    rep = mcdrop.audit_relation(a, b)
    assert rep.verdict == "pass", str(rep)
    assert [c.name for c in rep.checks] == ["runs", "agreement", "cross_correlation"]
    assert rep.check("agreement").expected == pytest.approx(0.9**2 + 0.1**2)
    # and they are not identical
    a, b = rank_pair(0.1, "apart")
    assert mcdrop.audit_relation(a, b, relation="identical").failed == ["masks_equal"]


def test_tensor_parallel_ranks_seeded_alike_are_caught():
    a, b = rank_pair(0.1, "alike")
    rep = mcdrop.audit_relation(a, b)
    assert set(rep.failed) == {"agreement", "cross_correlation"}, str(rep)
    assert rep.check("agreement").estimate == 1.0
    # where ranks must share the mask (sequence-parallel regions), alike is right
    a, b = rank_pair(0.1, "alike")
    rep = mcdrop.audit_relation(a, b, relation="identical")
    assert rep.verdict == "pass" and "equal call for call" in rep.check("masks_equal").detail


def test_overlapping_philox_ranges_pass_agreement_but_not_the_lagged_cross_correlation():
    # rank 1 starts half a call into rank 0's counter range: the zero-lag agreement is right, a
    # shifted copy of the other rank's stream is not
    n = 64 * 128
    a, b = CounterDropout(0.3, key=7, start=0), CounterDropout(0.3, key=7, start=n // 8)
    rep = mcdrop.audit_relation(a, b)
    assert rep.check("agreement").verdict == "pass"
    cc = rep.check("cross_correlation")
    assert cc.verdict == "fail" and cc.extra["offset"] in (n // 2, -n // 2) and cc.estimate > 0.4
    a, b = CounterDropout(0.3, key=7), CounterDropout(0.3, key=8)
    assert mcdrop.audit_relation(a, b).verdict == "pass"


def test_calibration_of_independent_pairs():
    fails = 0
    for k in range(20):
        rep = mcdrop.audit_relation(_numpy_rank(2 * k + 1), _numpy_rank(2 * k + 2), shape=(16, 32), calls=64,
                                    alpha=1e-3, seed=k)
        fails += rep.verdict != "pass"
    assert fails == 0


def test_channel_structure_and_standard_variant():
    a = mcdrop.adapters.torch_module(torch.nn.Dropout2d(0.2), seed=1)
    b = mcdrop.adapters.torch_module(torch.nn.Dropout2d(0.2), seed=2)
    rep = mcdrop.audit_relation(a, b)
    assert rep.structure == "channel" and rep.verdict == "pass", str(rep)
    assert rep.draws == rep.calls * 16 * 32


def test_an_implementation_that_raises_fails_runs():
    def broken(x, training):
        raise RuntimeError("NCCL timeout (simulated)")

    rep = mcdrop.audit_relation(_numpy_rank(1), broken, p=0.3, calls=8)
    assert rep.check("runs").verdict == "fail" and "`b` call 0 raised RuntimeError" in rep.check("runs").detail
    assert rep.check("agreement").verdict == "inconclusive"


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(relation="orthogonal"), ValueError, "relation"),
    (dict(b=42), TypeError, "`b`: cannot audit"),
    (dict(b=torch.nn.Dropout2d(0.3)), ValueError, "different shapes"),
    (dict(b=torch.nn.Dropout(0.2)), ValueError, "different drop probabilities"),
    (dict(calls=0), ValueError, "calls"),
    (dict(shape=(0, 3)), ValueError, "shape"),
])
def test_bad_input(kwargs, exc, match):
    kw = dict(a=torch.nn.Dropout(0.3), b=torch.nn.Dropout(0.3), calls=8)
    if "b" in kwargs and isinstance(kwargs["b"], torch.nn.Dropout2d):
        kw["a"] = torch.nn.Dropout1d(0.3)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        mcdrop.audit_relation(kw.pop("a"), kw.pop("b"), **kw)


def test_outputs_of_another_shape_fail_runs_not_crash():
    def wrong(x, training):
        return x[:, :3]

    rep = mcdrop.audit_relation(_numpy_rank(1), wrong, p=0.3, calls=4)
    assert rep.verdict == "fail" and "returned shape" in rep.check("runs").detail


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_cuda_generators():
    def rank(seed):
        g = torch.Generator(device="cuda").manual_seed(seed)

        def fn(x, training):
            t = torch.as_tensor(x, device="cuda")
            keep = torch.rand(t.shape, generator=g, device="cuda") < 0.9
            return torch.where(keep, t / 0.9, 0).cpu().numpy()

        return fn

    assert mcdrop.audit_relation(rank(1), rank(2), p=0.1).verdict == "pass"
    assert mcdrop.audit_relation(rank(1), rank(1), p=0.1).verdict == "fail"


def test_rank_dropout_used_in_the_relation_is_a_real_torch_module():
    a = RankDropout(0.25, 5)
    rep = mcdrop.audit(a)
    assert rep.verdict == "pass" and rep.p == 0.25 and math.isclose(rep.q, 0.75)


def test_identical_fails_on_one_differing_mask_entry():
    """relation="identical" is exact: two ranks that share the mask except for one element of
    one call fail masks_equal, and the detail names that call."""
    def shared(flip_call):
        g = np.random.default_rng(5)
        state = {"calls": 0}

        def fn(x, training):
            if not training:
                return x
            keep = g.random(x.shape) < 0.7
            if state["calls"] == flip_call:
                keep.flat[17] = not keep.flat[17]
            state["calls"] += 1
            return np.where(keep, x / 0.7, 0).astype(x.dtype)

        fn.p = 0.3
        return fn

    ok = mcdrop.audit_relation(shared(-1), shared(-1), relation="identical", calls=50)
    assert ok.verdict == "pass", str(ok)
    rep = mcdrop.audit_relation(shared(-1), shared(30), relation="identical", calls=50)
    assert rep.failed == ["masks_equal"], str(rep)
    c = rep.check("masks_equal")
    assert c.estimate == 1.0 and "first in call 30" in c.detail
