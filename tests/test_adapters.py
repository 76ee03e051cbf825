"""Framework adapters (torch, JAX/Flax, Keras, NumPy), missing-framework errors, the CLI."""

import json
import sys

import pytest

import mcdrop
from mcdrop.adapters import numpy_function, numpy_reference, resolve_target
from mcdrop.cli import main

CALLS = 400


# ---------------------------------------------------------------------------
# torch
# ---------------------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize(
    "cls,variant,structure",
    [("Dropout", "inverted", "element"), ("Dropout1d", "inverted", "channel"),
     ("Dropout2d", "inverted", "channel"), ("Dropout3d", "inverted", "channel"),
     ("AlphaDropout", "alpha", "element"), ("FeatureAlphaDropout", "alpha", "channel")],
)
def test_torch_modules_pass_their_law_with_gradient_check(cls, variant, structure):
    torch = _torch()
    from mcdrop.adapters import torch_module

    fn = torch_module(getattr(torch.nn, cls)(0.2), seed=3)
    assert (fn.variant, fn.structure, fn.p) == (variant, structure, pytest.approx(0.2))
    rep = mcdrop.audit(fn, calls=CALLS)
    assert rep.passed, str(rep)
    assert rep.check("gradient").verdict == "pass"
    assert rep.environment["framework"] == "torch" and rep.environment["torch"] == torch.__version__


@pytest.mark.parametrize("name", ["dropout", "alpha_dropout", "dropout2d"])
def test_torch_functions(name):
    torch = _torch()
    from mcdrop.adapters import torch_function

    rep = mcdrop.audit(torch_function(getattr(torch.nn.functional, name), 0.4, seed=2), calls=CALLS)
    assert rep.passed, str(rep)


def test_torch_seed_makes_runs_replayable_and_restores_global_state():
    torch = _torch()
    from mcdrop.adapters import torch_module

    def mean_estimate(seed, global_seed):
        # a different global state before each audit: only the adapter's seed may matter
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        rep = mcdrop.audit(torch_module(torch.nn.Dropout(0.3), seed=seed), calls=200)
        assert torch.equal(before, torch.random.get_rng_state())  # restored after the audit
        return rep.check("mean").estimate

    assert mean_estimate(8, 123) == mean_estimate(8, 456) != mean_estimate(9, 123)


def test_torch_module_bad_input():
    _torch()
    from mcdrop.adapters import torch_module

    with pytest.raises(TypeError, match="torch.nn.Module"):
        torch_module(lambda x: x)


# ---------------------------------------------------------------------------
# JAX / Flax, Keras, NumPy
# ---------------------------------------------------------------------------


def test_jax_bernoulli_and_flax():
    pytest.importorskip("jax")
    pytest.importorskip("flax")
    from mcdrop.adapters import flax_dropout, jax_bernoulli

    for fn in (jax_bernoulli(0.25, seed=1), flax_dropout(0.25, seed=1)):
        rep = mcdrop.audit(fn, calls=CALLS)
        assert rep.passed, str(rep)
        assert rep.p == 0.25 and rep.environment["framework"] == "jax"


def test_jax_function_reusing_one_key_is_caught():
    jax = pytest.importorskip("jax")
    from mcdrop.adapters import jax_function

    fixed = jax.random.key(0)

    def f(x, training, key):  # ignores the fresh key: the same mask every call
        if not training:
            return x
        keep = jax.random.bernoulli(fixed, 0.7, x.shape)
        return jax.numpy.where(keep, x / 0.7, 0)

    rep = mcdrop.audit(jax_function(f, p=0.3), calls=CALLS)
    assert rep.check("call_independence").verdict == "fail"


def test_keras_dropout_and_gaussian_dropout():
    keras = pytest.importorskip("keras")
    from mcdrop.adapters import keras_layer

    rep = mcdrop.audit(keras_layer(keras.layers.Dropout, 0.3, seed=4), calls=CALLS)
    assert rep.passed, str(rep)
    assert rep.environment["framework"] == "keras"
    rep = mcdrop.audit(keras_layer(keras.layers.GaussianDropout(0.2, seed=4)), calls=CALLS)
    assert rep.variant == "gaussian" and rep.passed, str(rep)


def _replay_targets():
    def needs(*packages):
        for pkg in packages:
            pytest.importorskip(pkg)

    def numpy_ref(seed):
        return numpy_reference(0.3, seed=seed)

    def jax(seed):
        needs("jax")
        from mcdrop.adapters import jax_bernoulli

        return jax_bernoulli(0.3, seed=seed)

    def flax(seed):
        needs("jax", "flax")
        from mcdrop.adapters import flax_dropout

        return flax_dropout(0.3, seed=seed)

    def keras(seed):
        needs("keras")
        import keras as K

        from mcdrop.adapters import keras_layer

        return keras_layer(K.layers.Dropout, 0.3, seed=seed)

    def torch(seed):
        t = _torch()
        from mcdrop.adapters import torch_module

        return torch_module(t.nn.Dropout(0.3), seed=seed)

    return [numpy_ref, jax, flax, keras, torch]


@pytest.mark.parametrize("make", _replay_targets(), ids=lambda f: f.__name__)
def test_auditing_an_adapter_twice_replays_its_seed(make):
    # rng_context restarts the implementation's stream from its seed at every
    # audit: the same adapter audited twice gives the same masks (the pooled
    # mean estimate is a float of 50 x 128 draws: equal only for equal masks),
    # another seed gives other masks
    kw = dict(calls=50, shape=(8, 16))
    fn = make(1)
    first, again = (mcdrop.audit(fn, **kw).check("mean").estimate for _ in range(2))
    assert first == again != mcdrop.audit(make(2), **kw).check("mean").estimate


def test_numpy_function_declares_metadata():
    ref = numpy_reference(0.4, seed=2)
    fn = numpy_function(ref, p=0.4, name="my dropout")
    rep = mcdrop.audit(fn, calls=CALLS)
    assert rep.target == "my dropout" and rep.p == 0.4 and rep.passed
    with pytest.raises(TypeError, match="callable"):
        numpy_function(3)


# ---------------------------------------------------------------------------
# missing frameworks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "package,make,extra",
    [("torch", lambda: __import__("mcdrop.adapters.torch", fromlist=["x"]).torch_module(object()), "torch"),
     ("jax", lambda: __import__("mcdrop.adapters.jax", fromlist=["x"]).jax_bernoulli(0.3), "jax"),
     ("keras", lambda: __import__("mcdrop.adapters.keras", fromlist=["x"]).keras_layer(object()), "keras")],
)
def test_missing_framework_names_the_extra(monkeypatch, package, make, extra):
    monkeypatch.setitem(sys.modules, package, None)  # hides the package from import
    with pytest.raises(ImportError, match=rf"pip install 'mcdrop\[{extra}\]'"):
        make()


def test_missing_framework_from_a_target(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"mcdrop\[torch\]"):
        resolve_target("torch", 0.3)
    with pytest.raises(ImportError, match=r"mcdrop\[torch\]"):
        resolve_target("torch.nn.Dropout", 0.3)


def test_unknown_targets():
    with pytest.raises(ValueError, match="unknown TARGET 'nope'"):
        resolve_target("nope", 0.3)
    with pytest.raises(ValueError, match="cannot import module"):
        resolve_target("no_such_pkg_xyz.mod:fn", 0.3)
    with pytest.raises(ValueError, match="has no attribute"):
        resolve_target("numpy:no_such_dropout", 0.3)


# ---------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------


def test_cli_audit_pass_json_and_exit_codes(tmp_path, capsys, monkeypatch):
    js = tmp_path / "a.json"
    code = main(["audit", "numpy-reference", "--p", "0.2", "--calls", "300", "--shape", "16,32",
                 "--json", str(js), "--quiet", "--seed", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mcdrop audit: PASS" in out
    d = json.loads(js.read_text())
    assert d["verdict"] == "pass" and d["p"] == 0.2 and d["seed"] == 5 and d["shape"] == [16, 32]
    # a dotted path to a buggy implementation (no 1/q rescaling): the mean fails, exit 1
    (tmp_path / "buggy_dropout.py").write_text(
        "import numpy as np\n"
        "g = np.random.default_rng(5)\n"
        "def dropout(x, training):\n"
        "    return np.where(g.random(x.shape) < 0.7, x, 0).astype(x.dtype) if training else x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["audit", "buggy_dropout:dropout", "--calls", "200", "--quiet", "--json", str(js)])
    assert code == 1
    assert "mcdrop audit: FAIL" in capsys.readouterr().out
    assert "mean" in [c["name"] for c in json.loads(js.read_text())["checks"] if c["verdict"] == "fail"]


def test_cli_audit_claims_what_an_instance_target_declares(tmp_path, capsys, monkeypatch):
    # without --p/--keep the claim is the target's own: an adapter instance keeps
    # its p, variant and structure, a torch instance its p (even p = 0)
    (tmp_path / "declared_targets.py").write_text(
        "from mcdrop.adapters import numpy_reference\n"
        "ref = numpy_reference(0.2, variant='alpha', structure='channel', seed=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["audit", "declared_targets:ref", "--calls", "100", "--quiet"]) == 0
    assert "alpha dropout, p=0.2 (keep q=0.8), structure=channel" in capsys.readouterr().out
    torch = pytest.importorskip("torch")
    (tmp_path / "declared_torch.py").write_text("import torch\nidentity = torch.nn.Dropout(0.0)\n")
    assert torch.nn.Dropout(0.0).p == 0.0
    assert main(["audit", "declared_torch:identity", "--calls", "50", "--quiet"]) == 0
    assert "p=0 (keep q=1)" in capsys.readouterr().out


def test_cli_audit_torch_targets(capsys):
    _torch()
    assert main(["audit", "torch.nn.Dropout", "--p", "0.3", "--calls", "300", "--quiet"]) == 0
    assert main(["audit", "torch.nn.functional:dropout", "--keep", "0.8", "--calls", "300", "--quiet"]) == 0
    assert main(["audit", "torch-dropout2d", "--calls", "300", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "torch.nn.Dropout2d" in out and "structure=channel" in out


def test_cli_audit_inconclusive_is_exit_2(capsys):
    # a correct dropout and a 0.1 % band: 50 calls on 64 units (3,200 draws) give
    # intervals far wider than the band, neither inside nor outside it
    code = main(["audit", "numpy-reference", "--p", "0.3", "--calls", "50", "--tolerance", "0.001",
                 "--quiet", "--shape", "8,8"])
    assert code == 2
    assert "INCONCLUSIVE" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,msg",
    [(["audit", "nope"], "unknown TARGET"),
     (["audit", "numpy-reference", "--calls", "0"], "`calls`"),
     (["audit", "numpy-reference", "--shape", "0,4"], "`shape`"),
     (["audit", "numpy-reference", "--structure", "channel", "--shape", "64"], "channel")],
)
def test_cli_audit_usage_errors(argv, msg, capsys):
    assert main(argv + ["--quiet"]) == 2
    assert msg in capsys.readouterr().err


def test_cli_audit_help(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = capsys.readouterr().out
    for flag in ("--p", "--keep", "--shape", "--calls", "--alpha", "--tolerance", "--structure",
                 "--variant", "--json", "--report", "--seed", "--quiet", "numpy-reference", "torch-dropout2d"):
        assert flag in out
