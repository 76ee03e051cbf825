"""The public hypothesis strategies: what they draw and how they refuse bad options."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

from mcdrop import strategies as mst

FAST = settings(max_examples=60, derandomize=True, deadline=None)


@FAST
@given(p=mst.drop_probabilities())
def test_drop_probabilities_in_unit_interval(p):
    assert isinstance(p, float) and 0.0 <= p <= 1.0


def test_drop_probabilities_hit_the_edges():
    from hypothesis import find

    for edge in (0.0, 1.0, 0.5):
        assert find(mst.drop_probabilities(), lambda v, e=edge: v == e) == edge
    assert find(mst.drop_probabilities(), lambda v: 0 < v < 1e-5) > 0


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
    assert np.prod(shape) <= 4096 or np.prod(shape[:2]) > 4096


@FAST
@given(x=mst.input_arrays(dtypes=("float16", "float32", "float64")))
def test_input_arrays_nonzero_mixed(x):
    assert x.dtype.name in mst.DTYPES
    assert np.all(x != 0) and np.all(np.isfinite(x))
    assert np.all(np.abs(x.astype(np.float64)) <= 1e2 * 1.01)


def test_input_arrays_replay_from_seed():
    from hypothesis import find

    a = find(mst.input_arrays(shape=(50,), dtypes=("float32",)), lambda v: True)
    b = find(mst.input_arrays(shape=(50,), dtypes=("float32",)), lambda v: True)
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
        (mst.audit_configs, dict(structure="pixel"), "`structure`"),
    ],
)
def test_invalid_arguments(factory, kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        s = factory(**kwargs)
        s.example()  # some checks may be deferred until drawing
