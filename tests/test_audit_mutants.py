"""The mutation suite: every buggy implementation fails its named check, every correct one passes.

All implementations own seeded generators and the audit's inputs are seeded,
so every verdict here is deterministic.  The default budget is used (enough
to detect a 0.1% mean bias with power 0.99 at alpha = 1e-6).
"""

import pytest

import mcdrop
from mutants import MUTANTS, correct


@pytest.mark.parametrize("name,factory,kwargs,killer", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_killed_by_its_named_check(name, factory, kwargs, killer):
    kw = dict(kwargs)
    kw.setdefault("p", 0.3)
    rep = mcdrop.audit(factory(20240611), **kw)
    assert not rep.passed and rep.verdict == "fail", str(rep)
    assert rep.check(killer).verdict == "fail", f"{name}: expected {killer} to fail\n{rep}"
    assert killer in rep.failed


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
def test_correct_numpy_passes(p):
    rep = mcdrop.audit(correct(p, seed=7), p=p)
    assert rep.passed and rep.verdict == "pass", str(rep)


def test_mutants_are_deterministic():
    from mutants import rate_quantized

    a = mcdrop.audit(rate_quantized(3), p=0.3, calls=400)
    b = mcdrop.audit(rate_quantized(3), p=0.3, calls=400)
    assert [c.to_dict() for c in a.checks] == [c.to_dict() for c in b.checks]


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.7, 1.0])
def test_correct_torch_passes(p):
    from mcdrop.adapters import torch_module

    rep = mcdrop.audit(torch_module(torch.nn.Dropout(p), seed=11), p=p)
    assert rep.passed, str(rep)
    assert "gradient" in [c.name for c in rep.checks]


class _NoMaskBackward(torch.autograd.Function):
    """Forward is correct dropout; backward forgets the mask (scales every gradient by 1/q)."""

    @staticmethod
    def forward(ctx, x, q):
        ctx.q = q
        keep = torch.rand_like(x) < q
        return x * keep / q

    @staticmethod
    def backward(ctx, g):
        return g / ctx.q, None


def test_backward_not_masked_is_killed_by_gradient():
    from mcdrop.adapters.torch import TorchAdapter

    def forward(t, training):
        return _NoMaskBackward.apply(t, 0.7) if training else t

    fn = TorchAdapter(forward, name="no-mask backward", p=0.3, variant="inverted", structure="element",
                      default_shape=None, seed=5)
    rep = mcdrop.audit(fn, calls=300)
    assert rep.check("gradient").verdict == "fail", str(rep)
    assert rep.failed == ["gradient"]


def test_torch_inplace_dropout_mutates_input():
    from mcdrop.adapters import torch_module

    rep = mcdrop.audit(torch_module(torch.nn.Dropout(0.3, inplace=True), seed=1), calls=200)
    assert rep.check("input_unchanged").verdict == "fail", str(rep)


def test_torch_dropout2d_declared_element_fails_structure_checks():
    from mcdrop.adapters import torch_module

    # Dropout2d drops whole channels; claiming element-wise masks must fail
    rep = mcdrop.audit(torch_module(torch.nn.Dropout2d(0.3), seed=2), structure="element", calls=500)
    assert rep.check("element_independence").verdict == "fail"
