"""simulate(): input checking, edge probabilities, serialisation, seeding."""

import json
import math

import numpy as np
import pytest

import mcdrop
from mcdrop import Simulation


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(x=[1.0], p=1.5, samples=10), ValueError, "`p`"),
        (dict(x=[1.0], p=-0.1, samples=10), ValueError, "`p`"),
        (dict(x=[1.0], keep=2.0, samples=10), ValueError, "`keep`"),
        (dict(x=[1.0], p=0.5, keep=0.5, samples=10), ValueError, "not both"),
        (dict(x=[1.0], p=float("nan"), samples=10), ValueError, "`p`"),
        (dict(x=[1.0], p="0.5", samples=10), TypeError, "`p`"),
        (dict(x=[1.0, np.nan], p=0.5, samples=10), ValueError, "`x` must be finite"),
        (dict(x=[1.0, np.inf], p=0.5, samples=10), ValueError, "`x` must be finite"),
        (dict(x=[], p=0.5, samples=10), ValueError, "`x` must not be empty"),
        (dict(x=["a", "b"], p=0.5, samples=10), TypeError, "`x`"),
        (dict(x="abc", p=0.5, samples=10), TypeError, "`x`"),
        (dict(x=[1.0], p=0.5, samples=0), ValueError, "`samples`"),
        (dict(x=[1.0], p=0.5, samples=-5), ValueError, "`samples`"),
        (dict(x=[1.0], p=0.5, samples=1.5), TypeError, "`samples`"),
        (dict(x=[1.0], p=0.5, samples="10"), TypeError, "`samples`"),
        (dict(x=[1.0], p=0.5, samples=10, threads=0), ValueError, "`threads`"),
        (dict(x=[1.0], p=0.5, samples=10, threads=10**6), ValueError, "`threads`"),
        (dict(x=[1.0], p=0.5, samples=10, seed=-1), ValueError, "`seed`"),
        (dict(x=[1.0], p=0.5, samples=10, start=-1), ValueError, "`start`"),
        (dict(x=[1.0], p=0.5, samples=10, start=2**63 - 5), ValueError, "below 2\\*\\*63"),
        (dict(x=[1e200], p=0.5, samples=10), ValueError, "`x` entries"),
        (dict(x=[1.0], samples=10), TypeError, "`p=`"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mcdrop.simulate(**kwargs)


def test_samples_in_scientific_notation_accepted():
    sim = mcdrop.simulate([1.0, 2.0], p=0.5, samples=1e3, seed=1)
    assert sim.samples == 1000


def test_p0_is_identity():
    x = np.array([[1.5, -2.0], [3.0, 1e-3]])
    sim = mcdrop.simulate(x, p=0.0, samples=1000, seed=3)
    assert (sim.keep_counts == 1000).all()
    assert (sim.mean == x).all()  # exactly
    assert (sim.var == 0).all()
    assert sim.keep_count_hist[-1] == 1000 and sim.keep_count_hist[:-1].sum() == 0


def test_p1_gives_zeros_without_nan():
    x = np.array([1.0, -2.0, 3.0])
    sim = mcdrop.simulate(x, p=1.0, samples=1000, seed=3)
    assert (sim.keep_counts == 0).all()
    assert (sim.mean == 0).all() and np.isfinite(sim.mean).all()
    assert (sim.var == 0).all()
    assert sim.layer_mean.mean == 0.0 and math.isfinite(sim.layer_mean.var)
    assert np.isfinite(sim.trace["mean"]).all()


def test_keep_alternative_to_p():
    a = mcdrop.simulate([1.0, 2.0, 3.0], p=0.25, samples=500, seed=9)
    b = mcdrop.simulate([1.0, 2.0, 3.0], keep=0.75, samples=500, seed=9)
    assert a == b
    assert b.q == 0.75 and b.p == 0.25


def test_seed_example_numbers():
    # x = [2, 4, 6, 8], keep 0.5: a mask [1,0,1,0] gives y = [4,0,12,0], layer mean 4.
    sim = mcdrop.simulate([2, 4, 6, 8], keep=0.5, samples=10**6, seed=0)
    lm = sim.layer_mean
    assert lm.expected == 5.0
    assert lm.expected_var == pytest.approx((4 + 16 + 36 + 64) * 1.0 / 16)
    # 10**6 samples: se = sqrt(7.5/1e6) = 0.0027; a 1e-6 two-sided interval is
    # about +/-0.013, so |mean - 5| < 0.02 cannot fail for a correct kernel
    # (and the seed is fixed anyway).
    assert abs(lm.mean - 5.0) < 0.02
    assert 5.0 in lm.confidence_interval(1 - 1e-6)
    assert lm.var == pytest.approx(7.5, rel=0.01)


def test_trace_grid_is_log_spaced_and_ends_at_samples():
    sim = mcdrop.simulate([1.0, 2.0], p=0.5, samples=10**5, seed=2)
    t = np.array(sim.trace_t)
    assert t[0] == 1 and t[-1] == 10**5
    assert (np.diff(t) > 0).all()
    assert 90 <= len(t) <= 101  # 20 points per decade over 5 decades


def test_seed_none_is_replayable():
    a = mcdrop.simulate([1.0, 2.0], p=0.3, samples=1000, seed=None)
    ss = np.random.SeedSequence(a.seed_entropy)
    b = mcdrop.simulate([1.0, 2.0], p=0.3, samples=1000, seed=ss)
    assert a == b


def test_to_dict_round_trip_is_exact():
    sim = mcdrop.simulate(np.arange(1.0, 7.0).reshape(2, 3), p=0.3, samples=12345, seed=4)
    d = json.loads(json.dumps(sim.to_dict()))
    back = Simulation.from_dict(d)
    assert back == sim
    assert back.merge(mcdrop.simulate(back.x, p=0.3, samples=10, start=12345, seed=4)) == \
        mcdrop.simulate(back.x, p=0.3, samples=12355, seed=4)
    with pytest.raises(ValueError, match="not an mcdrop Simulation"):
        Simulation.from_dict({"type": "other"})


def test_progress_callback_counts_every_sample():
    seen = []
    mcdrop.simulate([1.0] * 10, p=0.5, samples=54321, seed=0, progress=seen.append)
    assert sum(seen) == 54321


def test_str_mentions_the_numbers():
    sim = mcdrop.simulate([2, 4, 6, 8], keep=0.5, samples=1000, seed=0)
    s = str(sim)
    assert "p=0.5" in s and "1000 samples" in s and "layer mean" in s
