"""mcdrop.audit takes framework objects directly, and audits every law (standard, DropConnect too).

Audits are seeded (the adapters seed the frameworks' generators), so every outcome is fixed; a correct
implementation fails with probability at most alpha = 1e-6 over seeds (Holm over the battery).  The
broken ones fail exact checks (support, eval identity, gradient) or statistical checks by margins of
many standard errors at the budgets used (400 calls).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import mcdrop  # noqa: E402
from mcdrop.adapters import adapt  # noqa: E402
from mcdrop.auditing.budget import VARIANTS  # noqa: E402

from model_zoo import CounterDropout, DropConnectLinear, PaddleDropout  # noqa: E402

nn = torch.nn
F = torch.nn.functional
CALLS = 400


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_every_law_of_verify_is_an_audit_variant():
    assert VARIANTS is mcdrop.laws.VARIANTS
    assert set(VARIANTS) == {"inverted", "standard", "gaussian", "alpha", "dropconnect"}


@pytest.mark.parametrize("obj,kw,variant,structure", [
    (nn.Dropout(0.3), {}, "inverted", "element"),
    (nn.Dropout2d(0.2), {}, "inverted", "channel"),
    (nn.AlphaDropout(0.1), {}, "alpha", "element"),
    (F.dropout, {"p": 0.25}, "inverted", "element"),
    (F.dropout2d, {"p": 0.25}, "inverted", "channel"),
    (torch.dropout, {"p": 0.2}, "inverted", "element"),
    (torch.native_dropout, {"p": 0.2}, "inverted", "element"),
])
def test_torch_objects_directly(obj, kw, variant, structure):
    rep = mcdrop.audit(obj, calls=CALLS, **kw)
    assert rep.passed and (rep.variant, rep.structure) == (variant, structure), str(rep)
    assert "gradient" in [c.name for c in rep.checks]


class _MyDropout(nn.Module):
    """A custom module: p from its attribute, its own generator."""

    def __init__(self, drop_prob):
        super().__init__()
        self.drop_prob = drop_prob
        self.gen = torch.Generator().manual_seed(11)

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.rand(x.shape, generator=self.gen) >= self.drop_prob
        return x * keep / (1 - self.drop_prob)


def test_a_custom_module_is_called_as_a_module_not_as_fn_x_training():
    m = _MyDropout(0.35)
    rep = mcdrop.audit(m, calls=CALLS)
    assert rep.passed and rep.p == 0.35, str(rep)
    assert rep.check("gradient").verdict == "pass"
    # its own generator is restarted for every audit and left as it was
    before = m.gen.get_state()
    again = mcdrop.audit(m, calls=CALLS)
    assert torch.equal(before, m.gen.get_state())
    assert again.check("mean").estimate == rep.check("mean").estimate


def test_recompute_and_backward_bugs_are_caught_by_the_gradient_check():
    class FreshRecompute(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = 0.3
            self.drop = nn.Dropout(0.3)

        def forward(self, x):
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self.drop, x * 1.0, use_reentrant=False, preserve_rng_state=False)

    rep = mcdrop.audit(FreshRecompute(), calls=CALLS)
    assert rep.check("gradient").verdict == "fail", str(rep)


def test_counter_dropout_advancing_too_little_fails_call_independence():
    assert mcdrop.audit(CounterDropout(0.3), calls=CALLS).passed
    rep = mcdrop.audit(CounterDropout(0.3, advance_fraction=0.5), calls=CALLS)
    assert rep.failed == ["call_independence"], str(rep)


def test_standard_dropout_audits_correctly():
    rep = mcdrop.audit(PaddleDropout(0.4), calls=CALLS)  # declares mode="downgrade_in_infer"
    assert rep.variant == "standard" and rep.passed, str(rep)
    assert "q x" in rep.check("eval_identity").detail
    # as inverted it is wrong twice: no 1/q in training, q x in evaluation
    rep = mcdrop.audit(PaddleDropout(0.4), variant="inverted", calls=CALLS)
    assert {"eval_identity", "support"} <= set(rep.failed)
    # and a standard dropout that forgets q in evaluation fails eval_identity only
    undeclared = PaddleDropout(0.4, declare=False)
    undeclared.forward = lambda x: x if not undeclared.training else x * torch.empty_like(x).bernoulli_(0.6)
    rep = mcdrop.audit(undeclared, variant="standard", calls=CALLS)
    assert rep.failed == ["eval_identity"], str(rep)


def test_standard_variant_on_a_plain_callable():
    g = np.random.default_rng(3)

    def standard(x, training, p=0.25):
        if not training:
            return (x * np.float32(1 - p)).astype(x.dtype)
        return np.where(g.random(x.shape) < 1 - p, x, 0).astype(x.dtype)

    assert mcdrop.audit(standard, p=0.25, variant="standard", calls=CALLS).passed


def test_dropconnect_protocol():
    torch.manual_seed(0)
    rep = mcdrop.audit(DropConnectLinear(48, 24, 0.3), variant="dropconnect", calls=CALLS)
    assert rep.passed and rep.shape == (48, 24) and rep.draws == CALLS * 48 * 24, str(rep)
    assert "gradient" not in [c.name for c in rep.checks]
    rep = mcdrop.audit(DropConnectLinear(48, 24, 0.3, bug="input_mask"), variant="dropconnect", calls=CALLS)
    assert "element_independence" in rep.failed
    rep = mcdrop.audit(DropConnectLinear(48, 24, 0.3, bug="no_scale"), variant="dropconnect", calls=CALLS)
    assert "support" in rep.failed
    # a plain callable with weight=
    w = np.random.default_rng(1).normal(size=(6, 10))
    g = np.random.default_rng(2)

    def dc(x, training):
        m = g.random(w.shape) < 0.8 if training else np.ones(w.shape, bool)
        return (x.astype(np.float64) @ (w * m / (0.8 if training else 1.0)).T).astype(x.dtype)

    assert mcdrop.audit(dc, p=0.2, variant="dropconnect", weight=w, calls=CALLS).passed


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(variant="dropconnect"), ValueError, "needs the layer's weight"),
    (dict(variant="dropconnect", weight=np.zeros((2, 3))), ValueError, "no zero entry"),
    (dict(variant="dropconnect", weight=np.ones(3)), ValueError, "2-D"),
    (dict(variant="dropconnect", weight=np.ones((2, 3)), shape=(4, 4)), ValueError, "diagonal batch"),
    (dict(variant="dropconnect", weight=np.ones((2, 3)), structure="channel"), ValueError, "element"),
    (dict(weight=np.ones((2, 3))), ValueError, "`weight` applies"),
    (dict(device="cpu"), TypeError, "`device` applies to torch objects"),
])
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mcdrop.audit(lambda x, t: x, p=0.3, calls=4, **kwargs)


def test_unadaptable_objects_say_what_is_accepted():
    for obj in (42, "torch", object()):
        with pytest.raises(TypeError, match="accepted: an mcdrop adapter; a torch.nn.Module"):
            mcdrop.audit(obj)
    with pytest.raises(TypeError, match="cannot adapt the class"):
        mcdrop.audit(dict)
    with pytest.raises(ValueError, match="has no drop probability of its own; pass p="):
        mcdrop.audit(F.dropout)
    with pytest.raises(ValueError, match="cannot tell the drop probability"):
        mcdrop.audit(nn.Identity())


def test_device():
    rep = mcdrop.audit(nn.Dropout(0.3), device="cpu", calls=50)
    assert rep.passed
    lin = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="`device`"):
        adapt(lin, 0.1, device="definitely-not-a-device")
    assert adapt(nn.Dropout(0.2)).device.type == "cpu"


def test_plain_callables_pass_through_unchanged():
    def fn(x, training):
        return x

    assert adapt(fn) is fn
    ad = mcdrop.adapters.numpy_reference(0.3)
    assert adapt(ad) is ad


def test_flax_nnx_objects_directly():
    pytest.importorskip("flax")
    from flax import nnx

    rep = mcdrop.audit(nnx.Dropout(0.3, rngs=nnx.Rngs(dropout=0)), calls=CALLS)
    assert rep.passed and rep.p == 0.3 and rep.environment["framework"] == "jax"

    class Block(nnx.Module):
        def __init__(self):
            self.drop = nnx.Dropout(0.2, rngs=nnx.Rngs(dropout=1))

        def __call__(self, x):
            return self.drop(x)

    b = Block()
    r1, r2 = mcdrop.audit(b, calls=100), mcdrop.audit(b, calls=100)
    assert r1.passed and r1.p == 0.2
    assert r1.check("mean").estimate == r2.check("mean").estimate  # the module's stream is restarted


def test_keras_layers_directly_with_a_gradient_check():
    keras = pytest.importorskip("keras")
    rep = mcdrop.audit(keras.layers.Dropout(0.3, seed=2), calls=CALLS)
    assert rep.passed and rep.p == 0.3
    if keras.backend.backend() == "torch":
        assert rep.check("gradient").verdict == "pass"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_module():
    rep = mcdrop.audit(nn.Dropout(0.3).cuda(), device="cuda", calls=CALLS)
    assert rep.passed and rep.check("gradient").verdict == "pass"
