"""mcdrop.audit_model on small real torch models: every bug class fails, every correct model passes.

All runs are seeded (``seed=0``: torch's generators are forked and seeded by the audit), so each
test's outcome is fixed; the statistical checks hold a family-wise false-alarm bound alpha = 1e-6 per
audit (Holm over every check of every site and the model), so a correct model fails with
probability at most 1e-6 over seeds: the chance that the seed used here is such a seed.  The bug
classes fail exact checks (evaluation, round trip, recompute, support) or statistical ones by margins
of many standard errors (z > 50 at the default budget).  Every run uses the default budget
(``calls=None``: 256 forwards) unless the test is about the budget.
"""

import json

import pytest

torch = pytest.importorskip("torch")

import mcdrop  # noqa: E402
from mcdrop.cli import main  # noqa: E402
from mcdrop.report import load_result  # noqa: E402

from model_zoo import (  # noqa: E402
    TRANSFORMER_BUGS,
    ConvNet,
    CounterDropout,
    PaddleDropout,
    TinyTransformer,
)

nn = torch.nn
F = torch.nn.functional


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _no_inconclusive(rep):
    bad = [f"{s.name}: {c.name}" for s in rep.sites for c in s.checks if c.verdict == "inconclusive"]
    bad += [c.name for c in rep.checks if c.verdict == "inconclusive"]
    assert not bad, f"inconclusive: {bad}\n{rep}"


class _SeluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(24, 48)
        self.drop = nn.AlphaDropout(0.2)
        self.b = nn.Linear(48, 8)

    def forward(self, x):
        return self.b(self.drop(F.selu(self.a(x))))


class _Conv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(4, 16, 3, padding=1)
        self.drop = nn.Dropout1d(0.3)
        self.fa = nn.FeatureAlphaDropout(0.2)

    def forward(self, x):
        h = self.drop(torch.tanh(self.c(x)))
        return self.fa(h.unsqueeze(-1)).squeeze(-1)


class _Functional(nn.Module):
    """Dropout written functionally, right: F.dropout(training=self.training), torch.dropout, dropout2d."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 64)

    def forward(self, x):
        h = F.dropout(self.lin(x), 0.25, training=self.training)
        h = torch.dropout(h, 0.4, self.training)
        return F.dropout2d(h.view(-1, 8, 4, 2), 0.2, training=self.training)


class _GaussianDropout(nn.Module):
    """Gaussian dropout (declares its law): y = x (1 + sqrt(p/q) z)."""

    variant = "gaussian"

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        return x * (1 + (self.p / (1 - self.p)) ** 0.5 * torch.randn_like(x))


class _GaussianNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 64)
        self.noise = _GaussianDropout(0.2)

    def forward(self, x):
        return self.noise(torch.relu(self.lin(x)))


# models the tests were not written around: torch's own layers
def _encoder_layer():
    torch.manual_seed(1)
    return nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)


def _encoder():
    torch.manual_seed(2)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True), 2,
                                 enable_nested_tensor=False)


CORRECT = {
    "transformer": (lambda: TinyTransformer(), (4, 16, 32)),
    "transformer_checkpointed": (lambda: TinyTransformer(ckpt=True), (4, 16, 32)),
    "convnet": (lambda: ConvNet(), (8, 3, 8, 8)),
    "encoder_layer": (_encoder_layer, (4, 12, 32)),
    "encoder": (_encoder, (2, 10, 16)),
    "selu_alpha_dropout": (lambda: _SeluNet(), (32, 24)),
    "conv1d_feature_alpha": (lambda: _Conv1d(), (8, 4, 12)),
    "functional": (lambda: _Functional(), (16, 16)),
    "gaussian_after_relu": (lambda: _GaussianNet(), (16, 12)),
}


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_models_pass_at_the_default_budget(name):
    make, shape = CORRECT[name]
    torch.manual_seed(0)
    model = make()
    rep = mcdrop.audit_model(model, _x(*shape))
    assert rep.verdict == "pass", str(rep)
    _no_inconclusive(rep)
    assert rep.calls == 256 and all(s.calls == 256 for s in rep.sites if s.kind != "random")
    assert [c.name for c in rep.checks] == ["runs", "sites_found", "eval_deterministic", "mode_round_trip",
                                            "recompute"]


def test_sites_names_kinds_and_laws_of_the_transformer():
    torch.manual_seed(0)
    rep = mcdrop.audit_model(TinyTransformer(ckpt=True), _x(4, 16, 32), calls=64)
    names = [s.name for s in rep.sites]
    assert names == [
        "blocks.0.attn:scaled_dot_product_attention#0", "blocks.0.resid_drop#0", "blocks.0.drop_path#0",
        "blocks.0.mlp.drop#0", "blocks.0.drop_path#1",
        "blocks.1.attn:scaled_dot_product_attention#0", "blocks.1.resid_drop#0", "blocks.1.drop_path#0",
        "blocks.1.mlp.drop#0", "blocks.1.drop_path#1"]
    s = rep.site("blocks.0.drop_path#0")
    assert (s.kind, s.op, s.p, s.structure, s.structure_source) == ("module", "DropPath", 0.1, "sample", "declared")
    a = rep.site("blocks.1.attn:scaled_dot_product_attention#0")
    assert a.kind == "sdpa" and a.shape == (4, 4, 16, 16)
    # causal attention hides the mask above the diagonal: (16*17/2)/256 of the entries are shown
    assert a.observed_fraction == pytest.approx(136 / 256)
    assert rep.site("blocks.0.mlp.drop#0").check("keep_rate").verdict == "pass"
    # the checkpointed MLP ran again during backward with the same masks
    assert "blocks.0.mlp.drop#0" in rep.check("recompute").detail
    with pytest.raises(KeyError, match="no site"):
        rep.site("blocks.9.mlp.drop#0")


EXPECTED = {
    # bug -> (model-level checks that fail, a site -> checks that fail)
    "functional_eval": ({"eval_deterministic"}, "blocks.0.mlp:dropout#0", {"eval_identity"}),
    "sdpa_eval": ({"eval_deterministic"}, "blocks.0.attn:scaled_dot_product_attention#0", {"eval_identity"}),
    "mode_zeroes_p": ({"mode_round_trip"}, "blocks.0.mlp.drop#0", {"keep_rate", "support"}),
    "ckpt_fresh_masks": ({"recompute"}, None, set()),
    "philox_overlap": (set(), "blocks.0.mlp.drop#0", {"call_independence"}),
}


@pytest.mark.parametrize("bug", TRANSFORMER_BUGS)
def test_each_bug_class_fails_and_names_the_culprit(bug):
    torch.manual_seed(0)
    model = TinyTransformer(bug=bug)
    rep = mcdrop.audit_model(model, _x(4, 16, 32))
    assert rep.verdict == "fail" and not rep.passed
    model_fail, site, site_fail = EXPECTED[bug]
    assert {c.name for c in rep.checks if c.verdict == "fail"} == model_fail, str(rep)
    if site is not None:
        assert site_fail <= set(rep.site(site).failed), str(rep)
    if bug == "functional_eval":
        assert "responsible site: blocks.0.mlp:dropout#0" in rep.check("eval_deterministic").detail
        assert "training=True" in rep.site("blocks.1.mlp:dropout#0").check("eval_identity").detail
    if bug == "sdpa_eval":
        assert "dropout_p=0.1" in rep.site(site).check("eval_identity").detail
    if bug == "mode_zeroes_p":
        detail = rep.check("mode_round_trip").detail
        assert "blocks.0.attn.attn_p changed 0.1 -> 0" in detail and "blocks.1.mlp.drop.p changed" in detail
        # the audit leaves the model as it found it
        assert model.blocks[0].attn.attn_p == 0.1 and model.blocks[1].mlp.drop.p == 0.1
    if bug == "ckpt_fresh_masks":
        d = rep.check("recompute").detail
        assert "blocks.0.mlp.drop#0" in d and "blocks.1.mlp.drop#0" in d and "different mask" in d
        # and nothing else: the statistics of each site are right
        assert all(s.passed for s in rep.sites)
    if bug == "philox_overlap":
        assert [s.name for s in rep.sites if not s.passed] == ["blocks.0.mlp.drop#0", "blocks.1.mlp.drop#0"]


def test_downgrade_in_infer_declared_passes_undeclared_fails():
    torch.manual_seed(0)
    bad = mcdrop.audit_model(ConvNet(bug="downgrade_in_infer"), _x(8, 3, 8, 8))
    s = bad.site("drop#0")
    assert {"eval_identity", "support"} <= set(s.failed), str(bad)
    assert "constant factor 0.5" in s.check("eval_identity").detail
    assert bad.site("drop2d#0").passed
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), PaddleDropout(0.3))
    good = mcdrop.audit_model(net, _x(8, 16))
    assert good.verdict == "pass", str(good)
    assert good.site("2#0").variant == "standard"


def test_bugs_in_models_the_tests_were_not_written_for():
    class FunctionalFF(nn.TransformerEncoderLayer):
        def _ff_block(self, x):  # the feed-forward dropout written as F.dropout(x, p): on in eval
            return F.dropout(self.linear2(F.dropout(self.activation(self.linear1(x)), 0.1)), 0.1,
                             training=self.training)

    torch.manual_seed(3)
    rep = mcdrop.audit_model(FunctionalFF(32, 4, 64, dropout=0.1, batch_first=True), _x(4, 12, 32))
    assert rep.check("eval_deterministic").verdict == "fail"
    assert "responsible site: (root):dropout#0" in rep.check("eval_deterministic").detail

    class Checkpointed(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(_encoder_layer() for _ in range(2))

        def forward(self, x):
            from torch.utils.checkpoint import checkpoint

            for layer in self.layers:
                x = checkpoint(layer, x, use_reentrant=False, preserve_rng_state=False)
            return x

    rep = mcdrop.audit_model(Checkpointed(), _x(4, 12, 32))
    assert rep.check("recompute").verdict == "fail" and "layers.1.dropout" in rep.check("recompute").detail


def test_the_model_is_left_as_it_was_found():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.2), nn.Linear(16, 4))
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    mcdrop.audit_model(model, _x(32, 8), calls=64)
    assert not model.training and not any(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BatchNorm stats restored
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_same_seed_same_report_other_seed_other_masks():
    def run(seed):
        torch.manual_seed(0)
        rep = mcdrop.audit_model(nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.3)), _x(16, 8), calls=64, seed=seed)
        return rep.site("1#0").check("keep_rate").estimate

    assert run(5) == run(5) != run(6)


def test_family_wise_alpha_spans_every_site_and_check():
    torch.manual_seed(0)
    rep = mcdrop.audit_model(ConvNet(), _x(8, 3, 8, 8), calls=64, alpha=1e-4)
    every = rep.all_checks()
    m = len(every)
    assert m == 5 + sum(len(s.checks) for s in rep.sites)
    stat = [c for c in every if c.alpha is not None]
    assert stat and all(c.alpha == pytest.approx(1e-4 / m) for c in stat)


def test_no_dropout_site_is_a_report_not_a_crash():
    rep = mcdrop.audit_model(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), _x(4, 8), calls=8)
    assert rep.sites == () and rep.verdict == "inconclusive"
    assert rep.check("sites_found").verdict == "inconclusive"
    assert "no dropout site" in rep.check("sites_found").detail


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(inputs=torch.zeros(4, 7)), ValueError, "`inputs`: the model raised RuntimeError"),
    (dict(inputs=[torch.zeros(4, 8)]), TypeError, "`inputs`"),
    (dict(model=lambda x: x), TypeError, "`model` must be a torch.nn.Module"),
    (dict(p=1.5), ValueError, "`p`"),
    (dict(calls=0), ValueError, "`calls`"),
    (dict(alpha=2.0), ValueError, "alpha"),
    (dict(progress="yes"), TypeError, "`progress`"),
])
def test_bad_input(kwargs, exc, match):
    kw = dict(model=nn.Sequential(nn.Linear(8, 4), nn.Dropout(0.1)), inputs=torch.zeros(4, 8), calls=8)
    kw.update(kwargs)
    with pytest.raises(exc, match=match):
        mcdrop.audit_model(kw.pop("model"), kw.pop("inputs"), **kw)


def test_a_model_that_breaks_during_the_audit_fails_runs():
    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.1)
            self.n = 0

        def forward(self, x):
            self.n += 1
            if self.n > 5:
                raise RuntimeError("out of memory (simulated)")
            return self.drop(x)

    rep = mcdrop.audit_model(Flaky(), _x(4, 8), calls=16)
    assert rep.check("runs").verdict == "fail" and "out of memory" in rep.check("runs").detail


def test_p_override_claims_a_rate_for_every_site():
    torch.manual_seed(0)
    rep = mcdrop.audit_model(nn.Sequential(nn.Linear(8, 256), nn.Dropout(0.3)), _x(16, 8), p=0.5)
    assert rep.site("1#0").p == 0.5 and "keep_rate" in rep.site("1#0").failed


def test_counter_dropout_site_in_a_model():
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), CounterDropout(0.3))
    assert mcdrop.audit_model(model, _x(16, 8)).verdict == "pass"
    bad = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), CounterDropout(0.3, advance_fraction=0.5))
    rep = mcdrop.audit_model(bad, _x(16, 8))
    assert rep.site("2#0").failed == ["call_independence"], str(rep)


def test_report_json_pdf_and_cli(tmp_path, capsys, monkeypatch):
    pypdf = pytest.importorskip("pypdf")
    torch.manual_seed(0)
    rep = mcdrop.audit_model(TinyTransformer(bug="sdpa_eval"), _x(4, 16, 32), calls=64)
    d = json.loads(rep.to_json(tmp_path / "r.json"))
    assert d["type"] == "mcdrop.ModelAuditReport" and d["verdict"] == "fail"
    assert load_result(tmp_path / "r.json")["sites"][0]["name"] == "blocks.0.attn:scaled_dot_product_attention#0"
    rep.to_pdf(tmp_path / "r.pdf")
    pages = pypdf.PdfReader(str(tmp_path / "r.pdf")).pages
    first = pages[0].extract_text()
    assert "Overall verdict: FAIL" in first and "blocks.1.mlp.drop#0" in first and "Dropout sites" in first
    text = " ".join(p.extract_text() for p in pages[1:4])
    assert "dropout_p=self.p if self.training else 0.0" in text.replace("\n", " ")
    # the command line: exit 0 pass, 1 fail, 2 usage
    monkeypatch.chdir(tmp_path.parent)
    args = ["audit-model", "model_zoo:tiny_transformer", "--input-shape", "4,16,32", "--quiet", "--calls", "32"]
    assert main(args) == 0
    assert main(args[:1] + ["model_zoo:buggy_transformer"] + args[2:] + ["--json", str(tmp_path / "c.json")]) == 1
    assert json.loads((tmp_path / "c.json").read_text())["verdict"] == "fail"
    assert main(args[:3] + ["4,16,31", "--quiet"]) == 2
    assert "`inputs`: the model raised" in capsys.readouterr().err


def test_keras_model_on_the_torch_backend():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dropout(0.25, seed=3), keras.layers.Dense(4)])
    rep = mcdrop.audit_model(model, _x(8, 16), calls=128)
    assert rep.framework == "keras"
    assert [s.op for s in rep.sites] == ["Dropout"] and rep.verdict == "pass", str(rep)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_model():
    torch.manual_seed(0)
    model = TinyTransformer().cuda()
    rep = mcdrop.audit_model(model, _x(4, 16, 32).cuda())
    assert rep.environment["device"].startswith("cuda") and rep.verdict == "pass", str(rep)
    bad = mcdrop.audit_model(TinyTransformer(bug="functional_eval").cuda(), _x(4, 16, 32), device="cuda")
    assert bad.check("eval_deterministic").verdict == "fail"


def test_site_checks_state_their_detectable_effects():
    """Every decided check of a site carries the per-check statement of mcdrop.audit
    (issue 13), computed for the site's own calls: the keep-rate limit shrinks like
    1/sqrt(calls) (exactly: the family, hence alpha/m, is the same), and the evaluation
    statement counts the model's evaluation forwards that reached the site."""
    from mcdrop.auditing.effects import EFFECT_UNITS

    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.2), nn.ReLU())
    x = _x(4, 16)
    reps = {c: mcdrop.audit_model(model, x, calls=c, seed=3) for c in (100, 400)}
    for rep in reps.values():
        assert rep.passed
        (site,) = rep.sites
        for c in site.checks:
            eff = c.extra["detectable_effect"]
            assert eff["unit"] == EFFECT_UNITS[c.name] and eff["power"] == 0.99 and eff["text"]
            assert eff["value"] is None or eff["value"] > 0
        ev = site.checks[[c.name for c in site.checks].index("eval_identity")].extra["detectable_effect"]
        assert ev["value"] == 1 and "2 evaluation calls" in ev["text"]

    def keep(rep):
        return next(c for c in rep.sites[0].checks if c.name == "keep_rate").extra["detectable_effect"]["value"]

    assert keep(reps[100]) / keep(reps[400]) == pytest.approx(2.0, rel=1e-12)


def test_eval_nondeterminism_is_blamed_where_it_starts_not_on_a_later_site():
    """Noise drawn by hand in eval (not a dropout) changes the input of a correct nn.Dropout
    after it: the Dropout's output differs between the two eval forwards only because its
    input did, so the report blames the random draw, not the Dropout."""
    class NoisyInEval(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 16)
            self.drop = nn.Dropout(0.2)

        def forward(self, x):
            h = self.lin(x) + 0.01 * torch.rand_like(x)  # the bug: noise in every mode
            return self.drop(h)

    torch.manual_seed(0)
    rep = mcdrop.audit_model(NoisyInEval(), _x(4, 16), calls=64)
    c = rep.check("eval_deterministic")
    assert c.verdict == "fail"
    assert "random numbers drawn in evaluation mode outside any dropout site" in c.detail, c.detail
    assert "drop#0" not in c.detail.split("responsible site:")[1].split(";")[0], c.detail
