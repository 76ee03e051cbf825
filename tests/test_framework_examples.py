"""Worked examples: property-testing real framework dropouts with mcdrop.

These are the examples of docs/testing.md.  Budget rule: each test's
false-alarm budget ALPHA_TOTAL is split equally over its Hypothesis examples
(alpha_per_example), so a correct dropout fails a test with probability at most
ALPHA_TOTAL; derandomize=True plus integer seeds (for the inputs and for the
framework's own generator) make every run draw the same examples and the same
masks, so the suite is deterministic.
"""

import pytest
from hypothesis import HealthCheck, given, settings

from mcdrop import strategies as mst
from mcdrop.testing import alpha_per_example, assert_dropout

ALPHA_TOTAL = 1e-6


def _settings(k):
    return settings(max_examples=k, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


two_d = mst.shapes(min_dims=2, max_dims=2, min_side=4, max_side=96, max_elements=4096)


@_settings(50)
@given(cfg=mst.audit_configs(shape=two_d))
def test_torch_functional_dropout(cfg):
    torch = pytest.importorskip("torch")
    from mcdrop.adapters import torch_function

    fn = torch_function(torch.nn.functional.dropout, cfg["p"], seed=cfg["seed"])
    assert_dropout(fn, alpha=alpha_per_example(ALPHA_TOTAL, 50), **cfg)


@_settings(20)
@given(cfg=mst.audit_configs(p=mst.drop_probabilities(max_value=0.95), shape=two_d))
def test_torch_nn_dropout(cfg):
    torch = pytest.importorskip("torch")
    from mcdrop.adapters import torch_module

    fn = torch_module(torch.nn.Dropout(cfg["p"]), seed=cfg["seed"])
    assert_dropout(fn, alpha=alpha_per_example(ALPHA_TOTAL, 20), **cfg)


@_settings(15)
@given(cfg=mst.audit_configs(structure="channel",
                             shape=mst.channel_shapes(spatial_dims=(2,), max_batch=16,
                                                      max_channels=32, max_side=8)))
def test_torch_dropout2d_channel_structure(cfg):
    torch = pytest.importorskip("torch")
    from mcdrop.adapters import torch_module

    fn = torch_module(torch.nn.Dropout2d(cfg["p"]), seed=cfg["seed"])
    # Few units per call (N*C channel slices): an explicit budget of 3000 calls
    # keeps this fast; the report's detectable_bias states what it can see.
    assert_dropout(fn, alpha=alpha_per_example(ALPHA_TOTAL, 15), calls=3000, **cfg)


@_settings(8)
@given(cfg=mst.audit_configs(p=mst.drop_probabilities(max_value=0.9), shape=two_d))
def test_flax_nnx_dropout(cfg):
    pytest.importorskip("flax")
    from mcdrop.adapters import flax_dropout

    fn = flax_dropout(cfg["p"], seed=cfg["seed"])
    # Flax and Keras cost ~0.5 ms per call here: explicit budget of 1000 calls.
    assert_dropout(fn, alpha=alpha_per_example(ALPHA_TOTAL, 8), calls=1000, **cfg)


@_settings(8)
@given(cfg=mst.audit_configs(p=mst.drop_probabilities(max_value=0.95, exclude_max=True), shape=two_d))
def test_keras_layers_dropout(cfg):
    keras = pytest.importorskip("keras")
    from mcdrop.adapters import keras_layer

    fn = keras_layer(keras.layers.Dropout(cfg["p"], seed=cfg["seed"] % 2**31))
    assert_dropout(fn, alpha=alpha_per_example(ALPHA_TOTAL, 8), calls=1000, **cfg)
