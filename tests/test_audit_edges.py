"""Every check of the audit at its edge: one case just inside its null, one just outside.

A check that a refactor weakens (a wider tolerance, an approximate
comparison, an inflated null variance) still catches gross defects, so the
mutation suite (tests/mutants.py) cannot notice it.  These tests sit at
each check's boundary instead: exact checks against one ulp, one element,
one call; statistical checks against their own stated detectable effect
(``extra["detectable_effect"]``, read from a correct audit at the same
budget), where 2x the stated effect must fail and 0.5x must usually pass.

Bounds of the statistical cases.  At the default budget a check's stated
effect is ``z_sum = z_crit + 3.09`` standard errors of its statistic (the
formula's power 0.999, see mcdrop/auditing/effects.py) with ``z_crit``
between 5.4 and 6.9 (Bonferroni over offsets for the independence checks).
At 2x it is ``2 z_sum`` away: missed with probability below 1e-12.  At 0.5x
the normal theory puts the detection probability at ``Q(z_crit - z_sum/2)``:
0.13 (keep_rate, variance), 0.12 (mean), 0.03 to 0.04 (independence), and
the measured curves agree (docs/power.md: 11, 14, 8, 3 and 0 of 100), so "at
most 3 of 10 seeded repeats fail" is broken with probability at most 0.04.
The dispersion statistic moves with the square of the rate spread, so its
cases are sqrt(2)x (twice the statistic's excess) and 0.6x (0.36 times it:
detection probability about 0.01).  All implementations below own seeded generators and
the audit's inputs are seeded: every verdict here is deterministic, so these
bounds were met once when written and cannot flake.

Each test was run against a mutation of the check it guards (docs/power.md
lists them): support tolerance 4 -> 4000 ulp, evaluation compared with
rtol=1e-3, element_independence null variance x4, ...; each failed there.
"""

import math

import numpy as np
import pytest

import mcdrop
from mcdrop.auditing.injected import STRUCTURE_SHAPE, mutant, step_ulps

P, Q = 0.3, 0.7
SMALL = dict(p=P, shape=(16, 64), calls=200)


def _gen(*key):
    return np.random.default_rng(np.random.SeedSequence([2024, *key]))


def _dropout(seed, post=None, eval_fn=None, q=Q):
    """Correct inverted dropout; ``post(i, x, y, keep)`` may alter training call ``i``."""
    g = _gen(seed)
    state = {"i": 0}

    def fn(x, training):
        if not training:
            return x.copy() if eval_fn is None else eval_fn(x)
        keep = g.random(x.shape) < q
        y = np.where(keep, x / q, 0).astype(x.dtype)
        if post is not None:
            y = post(state["i"], x, y, keep)
        state["i"] += 1
        return y

    return fn


# --- exact checks ---------------------------------------------------------------------------------


def test_runs_edge():
    assert mcdrop.audit(_dropout(1), **SMALL).check("runs") == "pass"

    def post(i, x, y, keep):
        if i == 137:
            raise RuntimeError("one bad call")
        return y

    rep = mcdrop.audit(_dropout(1, post), **SMALL)
    assert rep.check("runs") == "fail" and "training call 137" in rep.check("runs").detail


def test_eval_identity_edge_one_ulp():
    assert mcdrop.audit(_dropout(2), **SMALL).check("eval_identity") == "pass"

    def one_ulp(x):
        y = x.copy()
        y.flat[517] = np.nextafter(y.flat[517], np.float32(np.inf))
        return y

    rep = mcdrop.audit(_dropout(2, eval_fn=one_ulp), **SMALL)
    assert rep.check("eval_identity") == "fail", str(rep)
    assert "1 of 1024 outputs differ" in rep.check("eval_identity").detail
    rel = mcdrop.audit(_dropout(2, eval_fn=lambda x: (x * np.float32(1 + 1e-4)).astype(x.dtype)), **SMALL)
    assert rel.check("eval_identity") == "fail"


def test_input_unchanged_edge_one_ulp():
    def own_copy(i, x, y, keep):  # writing into its own output is fine
        y *= np.float32(1.0)
        return y

    assert mcdrop.audit(_dropout(3, own_copy), **SMALL).check("input_unchanged") == "pass"

    def nudge(i, x, y, keep):
        if i == 50:
            x.flat[3] = np.nextafter(x.flat[3], np.float32(-np.inf))
        return y

    rep = mcdrop.audit(_dropout(3, nudge), **SMALL)
    assert rep.check("input_unchanged") == "fail" and "1 input values changed" in rep.check("input_unchanged").detail


def test_shape_dtype_edge_one_call():
    def f64(i, x, y, keep):
        return y.astype(np.float64) if i == 99 else y

    def extra_axis(i, x, y, keep):
        return y.reshape(y.shape + (1,)) if i == 99 else y

    assert mcdrop.audit(_dropout(4), **SMALL).check("shape_dtype") == "pass"
    assert mcdrop.audit(_dropout(4, f64), **SMALL).check("shape_dtype") == "fail"
    rep = mcdrop.audit(_dropout(4, extra_axis), **SMALL)
    assert rep.check("shape_dtype") == "fail" and "(16, 64, 1)" in rep.check("shape_dtype").detail


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["+inf", "-inf", "nan"])
def test_finite_edge_one_output(bad):
    def post(i, x, y, keep):
        if i == 120:
            y.flat[77] = bad
        return y

    # a lone infinity once crashed the audit (the support kernel counted it
    # as off-support without locating it): it must fail `finite`, not raise
    rep = mcdrop.audit(_dropout(5, post), **SMALL)
    assert rep.check("finite") == "fail", str(rep)
    assert rep.check("finite").estimate == 1.0
    big = mcdrop.audit(_dropout(5), p=P, shape=(16, 64), calls=200)
    assert big.check("finite") == "pass"


@pytest.mark.parametrize("dtype,inside,outside", [("float32", 3, 5), ("float64", 4, 5)])
def test_support_edge_ulps(dtype, inside, outside):
    """float64: ``x/q`` is formed exactly as the law forms it, so 4 ulp is the
    tolerance itself (passes) and 5 fails; float32 outputs are rounded first
    (half an ulp), so 3 steps pass and 5 fail."""
    dt = np.dtype(dtype)

    def moved(k):
        def post(i, x, y, keep):
            if i % 10 == 3:
                y[keep] = step_ulps(y[keep], k, dt)
            return y
        return post

    kw = dict(p=P, shape=(16, 64), calls=100, dtype=dtype)
    assert mcdrop.audit(_dropout(6, moved(inside)), **kw).check("support") == "pass"
    rep = mcdrop.audit(_dropout(6, moved(outside)), **kw)
    assert rep.check("support") == "fail", str(rep)
    assert rep.check("support").extra["detectable_effect"]["value"] == 5


def test_structure_edge_split_units():
    """Channel dropout on (16, 32, 8): 1% of the kept channel units lose one element in each call."""
    def channel(seed, split):
        g = _gen(seed)

        def fn(x, training):
            if not training:
                return x.copy()
            u = g.random(x.shape[:2] + (1,)) < Q
            keep = np.broadcast_to(u, x.shape).copy()
            if split:
                kept = np.flatnonzero(u.ravel())
                hit = kept[g.random(kept.size) < split]
                keep.reshape(-1, x.shape[2])[hit, g.integers(0, x.shape[2], hit.size)] = False
            return np.where(keep, x / Q, 0).astype(x.dtype)

        return fn

    kw = dict(p=P, shape=STRUCTURE_SHAPE, structure="channel", calls=200)
    assert mcdrop.audit(channel(7, 0.0), **kw).check("structure") == "pass"
    rep = mcdrop.audit(channel(7, 0.01), **kw)
    assert rep.check("structure") == "fail", str(rep)
    one = mcdrop.audit(mutant("structure", 1, seed=8, shape=STRUCTURE_SHAPE, calls=200), **kw)
    assert one.check("structure") == "fail" and one.check("structure").estimate == 1.0


def _torch_dropout(n_flip, scale_by_reciprocal=False):
    """Inverted dropout whose backward uses the forward mask with ``n_flip`` of its entries flipped."""
    torch = pytest.importorskip("torch")
    from mcdrop.adapters.torch import TorchAdapter

    class Drop(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            keep = torch.rand_like(x) < Q
            back = keep.clone()
            if n_flip:
                idx = torch.randperm(keep.numel())[:n_flip]
                back.view(-1)[idx] = ~back.view(-1)[idx]
            ctx.save_for_backward(back)
            return x * keep / Q

        @staticmethod
        def backward(ctx, g):
            (back,) = ctx.saved_tensors
            if scale_by_reciprocal:  # g * float32(1/q): a rounding away from g/q, not a defect
                return g * back * torch.tensor(1.0 / Q, dtype=g.dtype)
            return g * back / Q

    return TorchAdapter(lambda t, training: Drop.apply(t) if training else t, name="custom backward",
                        p=P, variant="inverted", structure="element", default_shape=None, seed=9)


def test_gradient_edge():
    kw = dict(shape=(16, 64), calls=100)
    assert mcdrop.audit(_torch_dropout(0), **kw).check("gradient") == "pass"
    assert mcdrop.audit(_torch_dropout(0, scale_by_reciprocal=True), **kw).check("gradient") == "pass"
    rep = mcdrop.audit(_torch_dropout(10), **kw)  # 1% of the 1024 elements
    assert rep.check("gradient") == "fail" and rep.failed == ["gradient"], str(rep)
    one = mcdrop.audit(_torch_dropout(1), **kw)
    assert one.check("gradient") == "fail" and "1 of 1024 input gradients" in one.check("gradient").detail


# --- statistical checks: 2x the stated effect fails, 0.5x usually passes -------------------------------


def _seed(*key):
    return np.random.SeedSequence([13, *key])


def _stated(check, family=None, **kw):
    """The check's stated detectable effect and the calls of the default budget (a correct audit,
    the effect-0 member of ``family``'s mutants, default ``check``'s)."""
    ref = mcdrop.audit(mutant(family or check, 0.0, seed=_seed(0), p=P, shape=kw.get("shape")), p=P, **kw)
    assert ref.passed, str(ref)
    return ref.check(check).extra["detectable_effect"]["value"], ref.calls


def _fails(check, effect, reps, calls, key, **kw):
    """Seeded repeats of ``check``'s mutant at ``effect``: how many fail ``check``."""
    n = 0
    for j in range(reps):
        ss = _seed(key, j)
        fn = mutant(check, effect, seed=ss, p=P, shape=kw.get("shape"), calls=calls)
        n += mcdrop.audit(fn, p=P, calls=calls, seed=j, **kw).check(check) == "fail"
    return n


@pytest.mark.parametrize("check,variant,outside,inside", [
    ("keep_rate", "inverted", 2.0, 0.5), ("mean", "inverted", 2.0, 0.5), ("variance", "gaussian", 2.0, 0.5),
    # the dispersion statistic grows like the square of the rate spread: sqrt(2) and 0.6 of the
    # stated spread are 2 and 0.36 times its excess
    ("dispersion", "inverted", math.sqrt(2.0), 0.6),
    ("element_independence", "inverted", 2.0, 0.5), ("call_independence", "inverted", 2.0, 0.5)],
    ids=["keep_rate", "mean", "variance", "dispersion", "element_independence", "call_independence"])
def test_statistical_edge_2x_fails_half_passes(check, variant, outside, inside):
    stated, calls = _stated(check, variant=variant)
    assert stated and stated > 0
    assert _fails(check, outside * stated, 3, calls, 1, variant=variant) == 3
    assert _fails(check, inside * stated, 10, calls, 2, variant=variant) <= 3


@pytest.mark.parametrize("offset", [1, 128, 4096], ids=["neighbour", "row stride", "half the tensor"])
def test_element_independence_one_percent_copies(offset):
    """1% of the elements copy the draw ``offset`` places before them (correlation 0.0099)."""
    fn = mutant("element_independence", 0.01 * 0.99, seed=_seed(3, offset), p=P, offset=offset)
    rep = mcdrop.audit(fn, p=P)
    c = rep.check("element_independence")
    assert c == "fail" and c.extra["worst_offset"] == offset, str(rep)


def test_call_independence_one_percent_repeats():
    """1% of each call's draws repeat the previous call's (correlation 0.01)."""
    rep = mcdrop.audit(mutant("call_independence", 0.01, seed=_seed(4), p=P), p=P)
    c = rep.check("call_independence")
    assert c == "fail" and "consecutive calls at offset 0" in c.detail, str(rep)


def test_dispersion_few_percent_heterogeneity():
    """Half the elements keep with q (1 + 3%), half with q (1 - 3%): the pooled rate is exact."""
    rep = mcdrop.audit(mutant("dispersion", 0.03, seed=_seed(5), p=P), p=P)
    assert rep.check("dispersion") == "fail" and rep.check("keep_rate") == "pass", str(rep)


def test_variance_edge_on_a_two_point_law():
    """On inverted dropout a variance error is a keep-rate error r: E[z^2] = 1 + r (p - q)/p."""
    stated, calls = _stated("variance", family="keep_rate", variant="inverted")
    r = 2.0 * stated * P / (P - Q)
    rep = mcdrop.audit(mutant("keep_rate", r, seed=_seed(6), p=P, calls=calls), p=P, calls=calls)
    assert rep.check("variance") == "fail", str(rep)
    r_in = 0.5 * stated * P / (P - Q)
    rep = mcdrop.audit(mutant("keep_rate", r_in, seed=_seed(7), p=P, calls=calls), p=P, calls=calls)
    assert rep.check("variance") == "pass", str(rep)


def test_mean_edge_gaussian():
    """Gaussian dropout whose noise has mean 2x the stated detectable bias fails ``mean``."""
    ref = mcdrop.audit(mutant("variance", 0.0, seed=_seed(8), p=P), p=P, variant="gaussian")
    stated = ref.check("mean").extra["detectable_effect"]["value"]
    assert ref.detectable_bias < stated < 1.15 * ref.detectable_bias  # the budget's 0.99 point, with the margin
    s = math.sqrt(P / Q)

    def biased(bias, seed):
        g = _gen(9, seed)
        return lambda x, t: (x * (1.0 + bias + s * g.standard_normal(x.shape))).astype(x.dtype) if t else x.copy()

    assert mcdrop.audit(biased(2 * stated, 1), p=P, variant="gaussian").check("mean") == "fail"
    assert mcdrop.audit(biased(0.5 * stated, 2), p=P, variant="gaussian").check("mean") == "pass"
