"""The public hypothesis strategies: what they draw and how they refuse bad options."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

from mcdrop import strategies as mst

FAST = settings(max_examples=60, derandomize=True, deadline=None)
# hypothesis.find: the same derandomized search every run, nothing written to .hypothesis/
FIND = settings(max_examples=2000, derandomize=True, database=None)


@FAST
@given(p=mst.drop_probabilities())
def test_drop_probabilities_in_unit_interval(p):
    assert isinstance(p, float) and 0.0 <= p <= 1.0


def test_drop_probabilities_draw_every_edge():
    # The documented edges are drawn often: every one of them shows up among 200
    # derandomized examples (a plain st.floats(0, 1) misses 0.999 and 1 - 1e-6).
    drawn = []

    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(p=mst.drop_probabilities())
    def collect(p):
        drawn.append(p)

    collect()
    assert set(mst._EDGE_PROBABILITIES) <= set(drawn)


@FAST
@given(p=mst.drop_probabilities(min_value=0.2, max_value=0.4, exclude_max=True))
def test_drop_probabilities_bounds(p):
    assert 0.2 <= p < 0.4


@FAST
@given(shape=mst.shapes(min_dims=2, max_dims=4, max_side=10, max_elements=500))
def test_shapes_respect_bounds(shape):
    assert 2 <= len(shape) <= 4
    assert all(1 <= s <= 10 for s in shape)
    assert np.prod(shape) <= 500


@FAST
@given(shape=mst.channel_shapes(spatial_dims=(1, 2), max_elements=4096))
def test_channel_shapes(shape):
    assert len(shape) in (3, 4)
    assert np.prod(shape) <= 4096


@FAST
@given(shape=mst.channel_shapes(spatial_dims=(0, 1), max_batch=8, max_channels=32, max_elements=50))
def test_channel_shapes_budget_below_batch_times_channels(shape):
    # 8 x 32 = 256 > 50: the batch and channel draws themselves respect the budget
    assert 1 <= shape[0] <= 8 and 1 <= shape[1] <= 32
    assert np.prod(shape) <= 50


@FAST
@given(x=mst.input_arrays(dtypes=("float16", "float32", "float64")))
def test_input_arrays_nonzero_mixed(x):
    assert x.dtype.name in mst.DTYPES
    assert np.all(x != 0) and np.all(np.isfinite(x))
    assert np.all(np.abs(x.astype(np.float64)) <= 1e2 * 1.01)


@pytest.mark.parametrize("dtype,lo,hi", [("float32", 1e-37, 3e38), ("float64", 1e-307, 1e307)])
def test_input_arrays_nonzero_finite_at_the_dtype_limits(dtype, lo, hi):
    from hypothesis import find

    x = find(mst.input_arrays(shape=(4000,), dtypes=(dtype,), min_magnitude=lo, max_magnitude=hi),
             lambda v: True, settings=FIND)
    assert np.all(x != 0) and np.all(np.isfinite(x))


def test_input_arrays_replay_from_seed():
    from hypothesis import find

    a = find(mst.input_arrays(shape=(50,), dtypes=("float32",)), lambda v: True, settings=FIND)
    b = find(mst.input_arrays(shape=(50,), dtypes=("float32",)), lambda v: True, settings=FIND)
    assert a.dtype == np.float32 and (a == b).all()
    assert (a < 0).any() and (a > 0).any()


@FAST
@given(cfg=mst.audit_configs(structure="channel"))
def test_audit_configs(cfg):
    assert set(cfg) == {"p", "shape", "structure", "seed"}
    assert cfg["structure"] == "channel" and len(cfg["shape"]) >= 3
    assert isinstance(cfg["seed"], int)


@pytest.mark.parametrize(
    "factory,kwargs,match",
    [
        (mst.drop_probabilities, dict(min_value=0.6, max_value=0.4), "`min_value`"),
        (mst.drop_probabilities, dict(min_value=-0.1), "`min_value`"),
        (mst.drop_probabilities, dict(max_value=1.5), "`max_value`"),
        (mst.drop_probabilities, dict(min_value=0.3, max_value=0.3, exclude_min=True), "empty"),
        (mst.shapes, dict(min_dims=3, max_dims=2), "`min_dims`"),
        (mst.shapes, dict(min_side=0), "`min_side`"),
        (mst.shapes, dict(min_side=10, min_dims=3, max_elements=100), "no shape fits"),
        (mst.channel_shapes, dict(spatial_dims=(4,)), "`spatial_dims`"),
        (mst.input_arrays, dict(dtypes=("int32",)), "`dtypes`"),
        (mst.input_arrays, dict(min_magnitude=10.0, max_magnitude=1.0), "`min_magnitude`"),
        (mst.input_arrays, dict(min_magnitude=0.0), "`min_magnitude`"),
        (mst.input_arrays, dict(dtypes=("float16",), max_magnitude=1e6), "float16"),
        (mst.input_arrays, dict(dtypes=("float32",), max_magnitude=1e300), "float32"),
        (mst.input_arrays, dict(dtypes=("float32", "float64"), min_magnitude=1e-50), "float32"),
        (mst.audit_configs, dict(structure="pixel"), "`structure`"),
    ],
)
def test_invalid_arguments(factory, kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        s = factory(**kwargs)
        s.example()  # some checks may be deferred until drawing
