"""mcdrop.audit: API, input validation, report schema, variants, robustness, power."""

import json
import math
import time
import tracemalloc

import numpy as np
import pytest

import mcdrop
from mcdrop import stats
from mcdrop.adapters import numpy_reference
from mcdrop.auditing.stream import autocorr_null_moments
from mcdrop.auditing import audit_input
from mutants import correct, raises

SMALL = dict(shape=(16, 32), calls=300)


# ---------------------------------------------------------------------------
# API and report
# ---------------------------------------------------------------------------


def test_report_api_and_schema(tmp_path):
    rep = mcdrop.audit(correct(0.3, 1), p=0.3, **SMALL)
    assert isinstance(rep, mcdrop.AuditReport)
    assert rep.passed is True and rep.verdict == "pass"
    assert all(isinstance(c, mcdrop.CheckResult) for c in rep.checks)
    names = [c.name for c in rep.checks]
    for n in ("eval_identity", "input_unchanged", "shape_dtype", "finite", "support", "keep_rate",
              "mean", "variance", "element_independence", "call_independence", "dispersion", "runs"):
        assert n in names
    d = rep.to_dict()
    for key in ("type", "mcdrop_version", "verdict", "passed", "alpha", "power", "detectable_bias",
                "detectable_rate_error", "target", "p", "q", "variant", "structure", "shape", "dtype",
                "calls", "draws", "seed", "tolerance", "elapsed_s", "environment", "checks",
                "per_element", "keep_count_hist", "autocorrelation", "call_correlation", "convergence"):
        assert key in d, key
    assert d["type"] == "mcdrop.AuditReport" and d["power"] == 0.99
    assert d["draws"] == 300 * 512 and d["shape"] == [16, 32]
    for key in ("mcdrop", "numpy", "numba", "scipy", "python", "machine"):
        assert key in d["environment"]
    pe = d["per_element"]
    assert pe["shape"] == [16, 32] and len(pe["relative_bias"]) == 512 == len(pe["pvalues"]) == len(pe["keep_rate"])
    assert isinstance(pe["relative_bias_se"], float)
    h = d["keep_count_hist"]
    assert h["n"] == 512 and sum(h["counts"]) == 300 and len(h["counts"]) == 513
    for key in ("autocorrelation", "call_correlation"):
        assert set(d[key]) >= {"offsets", "values", "bound"} and len(d[key]["offsets"]) == len(d[key]["values"])
    cv = d["convergence"]
    assert cv["draws"][-1] == 300 * 512 and len(cv["relative_mean"]) == len(cv["se"]) == len(cv["draws"])
    # round trip through JSON, and the written file
    text = rep.to_json(tmp_path / "a.json")
    assert json.loads(text) == json.loads((tmp_path / "a.json").read_text())
    assert json.loads(text)["checks"][0]["name"] == "runs"
    s = str(rep)
    assert "mcdrop audit: PASS" in s and "keep_rate" in s and "detects with power 0.99" in s


def test_default_size_json_is_small():
    rep = mcdrop.audit(correct(0.3, 2), p=0.3, calls=200)
    assert len(rep.to_json()) < 1_000_000


def test_failed_checks_come_first_in_str():
    from mutants import no_rescale

    s = str(mcdrop.audit(no_rescale(1), p=0.3, **SMALL))
    assert s.startswith("mcdrop audit: FAIL")
    assert s.index("FAILED:") < s.index("check ")
    table = s[s.index("check "):].splitlines()[2:]
    verdicts = [line.split()[1] for line in table]
    assert verdicts == sorted(verdicts, key=lambda v: v != "FAIL")


def test_to_pdf_calls_the_report_renderer(tmp_path, monkeypatch):
    seen = {}
    import mcdrop.report as rp  # the renderer AuditReport.to_pdf calls (report.ResultFile)

    monkeypatch.setattr(rp, "render", lambda d, path, **kw: seen.update(d=d, path=path))
    rep = mcdrop.audit(correct(0.3, 1), p=0.3, **SMALL)
    rep.to_pdf(tmp_path / "r.pdf")
    assert seen["d"]["type"] == "mcdrop.AuditReport" and seen["path"] == tmp_path / "r.pdf"


def test_same_seed_same_report_and_inputs_depend_on_seed():
    a = mcdrop.audit(correct(0.3, 9), p=0.3, **SMALL, seed=4)
    b = mcdrop.audit(correct(0.3, 9), p=0.3, **SMALL, seed=4)
    assert [c.to_dict() for c in a.checks] == [c.to_dict() for c in b.checks]
    x0, x1 = audit_input((16, 32), seed=4), audit_input((16, 32), seed=5)
    assert not np.array_equal(x0, x1)
    # inputs: nonzero, both signs, three decades, exactly float32
    assert np.all(x0 != 0) and (x0 > 0).any() and (x0 < 0).any()
    assert np.abs(x0).min() >= 0.1 and np.abs(x0).max() <= 100
    assert np.array_equal(x0.astype(np.float32).astype(np.float64), x0)


def test_default_budget_matches_plan():
    # calls=None: the mean check (half of alpha/m) detects a 0.1 % bias with power 0.99
    rep = mcdrop.audit(correct(0.3, 3), p=0.3)
    m = len(rep.checks)
    need = stats.plan(0.3, bias=1e-3, alpha=1e-6 / m / 2, power=0.99).samples
    assert rep.draws >= need and rep.draws - need < 8192
    assert rep.detectable_bias <= 1e-3
    assert math.isclose(rep.detectable_bias,
                        stats.detectable_bias(0.3, samples=rep.draws, alpha=1e-6 / m / 2), rel_tol=1e-12)
    assert rep.detectable_rate_error <= 1e-3


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,exc,msg",
    [
        (dict(fn=42), TypeError, "`fn`"),
        (dict(shape=()), ValueError, "`shape`"),
        (dict(shape=(4, -1)), ValueError, "`shape`"),
        (dict(shape=(2**13, 2**12)), ValueError, "elements"),
        (dict(calls=0), ValueError, "`calls`"),
        (dict(calls=-5), ValueError, "`calls`"),
        (dict(calls=1.5), TypeError, "`calls`"),
        (dict(structure="channel", shape=(64,)), ValueError, "channel"),
        (dict(structure="block"), ValueError, "`structure`"),
        (dict(variant="spatial"), ValueError, "'spatial'"),
        (dict(p=1.5), ValueError, "`p`"),
        (dict(p=0.3, keep=0.7), ValueError, "not both"),
        (dict(alpha=0), ValueError, "`alpha`"),
        (dict(tolerance=-0.1), ValueError, "`tolerance`"),
        (dict(dtype="int8"), ValueError, "`dtype`"),
        (dict(seed=-1), ValueError, "`seed`"),
        (dict(variant="gaussian", p=1.0), ValueError, "gaussian"),
    ],
)
def test_bad_input(kwargs, exc, msg):
    kw = dict(fn=correct(0.3, 0), p=0.3)
    kw.update(kwargs)
    fn = kw.pop("fn")
    with pytest.raises(exc, match=msg.replace("(", r"\(")):
        mcdrop.audit(fn, **kw)


def test_a_failing_fn_never_crashes_the_audit():
    rep = mcdrop.audit(raises(0), p=0.3, **SMALL)
    assert rep.verdict == "fail" and rep.failed == ["runs"]
    assert "RuntimeError" in rep.check("runs").detail
    assert rep.check("mean").verdict == "inconclusive" and "not run" in rep.check("mean").detail

    def eval_raises(x, training):
        raise ValueError("boom")

    rep = mcdrop.audit(eval_raises, p=0.3, **SMALL)
    assert rep.check("runs").verdict == "fail" and "boom" in rep.check("runs").detail

    rep = mcdrop.audit(lambda x, t: "not an array", p=0.3, **SMALL)
    assert rep.check("shape_dtype").verdict == "fail" and "str" in rep.check("shape_dtype").detail


# ---------------------------------------------------------------------------
# variants, structures, tolerance
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant,structure,shape",
    [("alpha", "element", (32, 64)), ("alpha", "channel", (8, 16, 4)), ("gaussian", "element", (32, 64)),
     ("inverted", "sample", (32, 16)), ("inverted", "channel", (8, 16, 2, 2))],
)
def test_reference_variants_pass_their_own_law(variant, structure, shape):
    fn = numpy_reference(0.2, variant=variant, structure=structure, seed=3)
    rep = mcdrop.audit(fn, shape=shape, calls=400)
    assert rep.variant == variant and rep.structure == structure  # taken from the adapter
    assert rep.passed, str(rep)
    names = [c.name for c in rep.checks]
    assert ("structure" in names) == (structure != "element" and variant != "gaussian")
    assert ("keep_rate" in names) == (variant != "gaussian")


def test_alpha_dropout_is_not_inverted_dropout():
    fn = numpy_reference(0.2, variant="alpha", seed=3)
    rep = mcdrop.audit(fn, variant="inverted", calls=200, shape=(16, 32))
    assert rep.check("support").verdict == "fail"
    # and the gaussian law is not the inverted one either
    rep = mcdrop.audit(numpy_reference(0.2, variant="gaussian", seed=3), variant="inverted", calls=200,
                       shape=(16, 32))
    assert not rep.passed


def test_alpha_law_standardised_input_keeps_mean_0_variance_1():
    from mcdrop.laws import ALPHA_PRIME, alpha_constants

    for p in (0.05, 0.2, 0.5, 0.9):
        a, b = alpha_constants(p)
        q = 1 - p
        # x ~ standard normal: E[y] = a q E[x] + (a alpha' + b) p + b q ... computed exactly
        mean = q * (a * 0.0 + b) + p * (a * ALPHA_PRIME + b)
        second = q * (a * a * 1.0 + b * b) + p * (a * ALPHA_PRIME + b) ** 2
        assert abs(mean) < 1e-12 and abs(second - mean**2 - 1.0) < 1e-12


def test_tolerance_gives_three_zones():
    from mutants import rate_quantized

    # rate off by 0.11 %: fails a point test, passes a 1 % band, inconclusive at a 0.12 % band
    fn = rate_quantized
    assert mcdrop.audit(fn(1), p=0.3).check("keep_rate").verdict == "fail"
    assert mcdrop.audit(fn(1), p=0.3, tolerance=0.01).check("keep_rate").verdict == "pass"
    rep = mcdrop.audit(fn(1), p=0.3, tolerance=0.0012, calls=2000)
    assert rep.check("keep_rate").verdict == "inconclusive"
    assert rep.tolerance == 0.0012 and rep.check("keep_rate").extra["band"][0] < 0.7
    assert mcdrop.audit(correct(0.3, 1), p=0.3, tolerance=0).tolerance is None


def test_p0_must_be_exact_identity_and_p1_exact_zeros():
    def tiny_scale(x, t):  # p = 0 but scales by 1 + 2**-20 (far below any mean test)
        return (x * np.float32(1 + 2**-20)).astype(x.dtype) if t else x

    rep = mcdrop.audit(tiny_scale, p=0.0, calls=50)
    assert rep.check("support").verdict == "fail"
    rep = mcdrop.audit(correct(1.0, 0), p=1.0, calls=50)
    assert rep.passed and "mean" not in [c.name for c in rep.checks]


def test_float64_and_float16_inputs():
    for dt in ("float64", "float16"):
        rep = mcdrop.audit(correct(0.3, 4), p=0.3, dtype=dt, **SMALL)
        assert rep.passed, str(rep)


# ---------------------------------------------------------------------------
# statistics of the independence checks, memory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 7, 8, 33])
def test_autocorrelation_permutation_moments(n):
    # Monte Carlo over random arrangements of fixed, heavy-tailed values (cubes of
    # normals: A4 far from a normal sample's): 40000 permutations estimate the mean
    # to sqrt(v/40000) (bound: 5 sd) and the variance with a relative sd of at most
    # 0.01 (from the kurtosis of R_k for these values; bound: 5 sd).  Seeded, so the
    # same numbers every run; a wrong A4 term in the variance misses by more.
    g = np.random.default_rng(97531)
    vals = g.standard_normal(n) ** 3
    a = vals - vals.mean()
    a /= np.sqrt(np.sum(a * a))
    perms = np.array([g.permutation(a) for _ in range(40000)])
    r = np.real(np.fft.ifft(np.abs(np.fft.fft(perms, axis=1)) ** 2, axis=1))
    mean, var, var_half = autocorr_null_moments(n, np.sum(a**4))
    for k in range(1, n // 2 + 1):
        v = var_half if (n % 2 == 0 and k == n // 2) else var
        assert abs(r[:, k].mean() - mean) < 5 * math.sqrt(v / 40000)
        assert abs(r[:, k].var() / v - 1) < 0.05


def test_memory_is_flat_in_calls():
    def peak(calls):
        fn = correct(0.3, 5)
        mcdrop.audit(fn, p=0.3, shape=(32, 64), calls=20)  # warm caches
        tracemalloc.start()
        mcdrop.audit(fn, p=0.3, shape=(32, 64), calls=calls)
        _, pk = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return pk

    # both budgets run past the batch-size ramp (1, 1, 2, ..., 256 calls), so the
    # working set is the same; only the call count differs (4x)
    small, big = peak(1500), peak(6000)
    assert big < 1.2 * small + 2**20, (small, big)


# ---------------------------------------------------------------------------
# the default torch audit: power and time
# ---------------------------------------------------------------------------


def test_default_torch_audit_power_and_time():
    torch = pytest.importorskip("torch")
    from mcdrop.adapters import torch_module
    from mcdrop.adapters.torch import TorchAdapter

    t0 = time.perf_counter()
    rep = mcdrop.audit(torch_module(torch.nn.Dropout(0.3), seed=0))
    elapsed = time.perf_counter() - t0
    assert rep.passed, str(rep)
    assert elapsed < 30
    assert rep.shape == (64, 128) and rep.detectable_bias <= 1e-3 and rep.detectable_rate_error <= 2e-3

    # a real 0.1 % mean bias and a 0.2 % keep-rate error are detected (seeded: deterministic)
    def biased(t, training):
        y = torch.nn.functional.dropout(t, 0.3, training)
        return y * 1.001 if training else y

    rep = mcdrop.audit(TorchAdapter(biased, name="mean +0.1%", p=0.3, variant=None, structure=None,
                                    default_shape=None, seed=1))
    assert rep.check("mean").verdict == "fail"
    q_bad = 0.7 * (1 - 0.002)

    def rate_off(t, training):
        return torch.nn.functional.dropout(t, 1 - q_bad, training) * (q_bad / 0.7) if training else t

    rep = mcdrop.audit(TorchAdapter(rate_off, name="rate -0.2%", p=0.3, variant=None, structure=None,
                                    default_shape=None, seed=1))
    assert rep.check("keep_rate").verdict == "fail"
