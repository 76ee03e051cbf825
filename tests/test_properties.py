"""Property tests of mcdrop's own invariants (hypothesis, derandomized).

Every example runs seeded reference kernels, so each property is deterministic;
none of them is statistical (they are exact identities), so no alpha budget is
spent here.
"""

import numpy as np
from hypothesis import given, settings, strategies as st

import mcdrop
from mcdrop import stats
from mcdrop import strategies as mst

PROPS = settings(max_examples=40, derandomize=True, deadline=None)

small_inputs = mst.input_arrays(shape=mst.shapes(max_dims=2, max_side=12, max_elements=64),
                                dtypes=("float32", "float64"))


@PROPS
@given(x=small_inputs, p=mst.drop_probabilities(), seed=mst.seeds())
def test_outputs_lie_in_0_or_x_over_q(x, p, seed):
    sim = mcdrop.simulate(x, p, samples=50, seed=seed)
    _, y = sim.materialise()
    xx = sim.x
    if sim.q == 0:
        assert (y == 0).all()
    else:
        assert np.all((y == 0) | (y == xx / sim.q))
    assert np.isfinite(y).all()


@PROPS
@given(x=small_inputs, p=mst.drop_probabilities(), seed=mst.seeds(), n=st.integers(1, 300))
def test_counts_are_consistent(x, p, seed, n):
    sim = mcdrop.simulate(x, p, samples=n, seed=seed)
    assert ((0 <= sim.keep_counts) & (sim.keep_counts <= n)).all()
    assert sim.keep_count_hist.sum() == n
    k = np.arange(sim.keep_count_hist.size)
    assert int(np.dot(k, sim.keep_count_hist)) == int(sim.keep_counts.sum())


@PROPS
@given(x=small_inputs, p=mst.drop_probabilities(), seed=mst.seeds(),
       cuts=st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_merge_is_exact_and_associative(x, p, seed, cuts):
    bounds = np.cumsum([0] + cuts)
    parts = [mcdrop.simulate(x, p, samples=int(b - a), start=int(a), seed=seed, threads=1 + i % 2)
             for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    whole = mcdrop.simulate(x, p, samples=int(bounds[-1]), seed=seed)
    left = parts[0]
    for part in parts[1:]:
        left = left.merge(part)
    right = parts[-1]
    for part in reversed(parts[:-1]):
        right = part.merge(right)
    assert left == whole and right == whole


@PROPS
@given(x=small_inputs, p=mst.drop_probabilities(), seed=mst.seeds())
def test_thread_count_never_changes_a_result(x, p, seed):
    a = mcdrop.simulate(x, p, samples=997, seed=seed, threads=1)
    b = mcdrop.simulate(x, p, samples=997, seed=seed, threads=2)
    assert a == b


@PROPS
@given(x=small_inputs, seed=mst.seeds())
def test_p0_identity_and_p1_zeros(x, seed):
    s0 = mcdrop.simulate(x, 0.0, samples=20, seed=seed)
    assert (s0.keep_counts == 20).all() and (s0.mean == s0.x).all()
    s1 = mcdrop.simulate(x, 1.0, samples=20, seed=seed)
    assert (s1.keep_counts == 0).all() and (s1.mean == 0).all()
    assert np.isfinite(s1.var).all()


@settings(max_examples=60, derandomize=True, deadline=None)
@given(p=st.floats(0.01, 0.95), bias=st.floats(1e-4, 0.1),
       alpha=st.floats(1e-9, 0.05), power=st.floats(0.6, 0.999), factor=st.floats(1.1, 10.0))
def test_plan_is_monotone(p, bias, alpha, power, factor):
    n = stats.plan(p=p, bias=bias, alpha=alpha, power=power).samples
    # smaller bias, smaller alpha, higher power: never fewer samples
    assert stats.plan(p=p, bias=bias / factor, alpha=alpha, power=power).samples >= n
    assert stats.plan(p=p, bias=bias, alpha=alpha / factor, power=power).samples >= n
    hp = min(0.9999, power + (1 - power) * (1 - 1 / factor))
    assert stats.plan(p=p, bias=bias, alpha=alpha, power=hp).samples >= n
