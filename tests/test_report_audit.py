"""The audit PDF report, rendered from synthetic AuditReport dicts (and a real audit if available).

The synthetic dicts follow the ``AuditReport.to_dict()`` schema; they are
built from seeded draws of what a correct (or a broken) dropout would give,
so the report code is tested without depending on the audit engine.
"""

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
from scipy import stats as sps

import mcdrop
from mcdrop.report import render

pypdf = pytest.importorskip("pypdf")


def _check(name, verdict, *, estimate=None, expected=None, low=None, high=None, pvalue=None,
           detail="", alpha=1e-7):
    ci = None if low is None else {"low": low, "high": high, "confidence_level": 1 - alpha}
    return {"name": name, "verdict": verdict, "passed": verdict != "fail", "statistic": estimate,
            "pvalue": pvalue, "confidence_interval": ci, "detail": detail, "estimate": estimate,
            "expected": expected, "alpha": alpha, "extra": {}}


def synthetic_audit(*, broken: bool, seed: int = 20241127) -> dict:
    """An AuditReport dict for torch-like inverted dropout at p = 0.3 on (32, 64).

    ``broken=True`` models an implementation that forgets to rescale (mean
    ≈ q·x) and repeats its mask every 8 rows; its per-element and
    call-correlation records are missing (as when a check could not run).
    """
    g = np.random.default_rng(seed)
    p, q = 0.3, 0.7
    shape = (32, 64)
    n = shape[0] * shape[1]
    calls = 2000
    draws = calls * n
    scale = q if broken else 1.0  # E[y]/x
    alpha = 1e-6
    m_checks = 13
    a = alpha / m_checks
    k_el = g.binomial(calls, q, size=n)
    rel = scale * k_el / (calls * q) - 1.0
    se = math.sqrt(p / (q * calls))
    z = (k_el / (calls * q) - 1.0) / se
    pv_el = 2 * sps.norm.sf(np.abs(z))
    hist = np.bincount(g.binomial(n, q, size=calls), minlength=n + 1)
    lo = int(np.flatnonzero(hist)[0])  # the audit stores the occupied window only
    hist_rec = {"counts": hist[lo:].tolist(), "offset": lo, "n": n, "q": q}
    grid = np.unique(np.geomspace(n, draws, 60).astype(int))
    se_grid = math.sqrt(p / q / n) / np.sqrt(grid / n)
    run = scale * (1 + se_grid * g.standard_normal(grid.size) * 0.8)
    offs = np.arange(1, 1025)
    bound = float(sps.norm.isf(a / 2) / math.sqrt(draws))
    ac = g.standard_normal(offs.size) / math.sqrt(draws)
    if broken:
        ac[offs % (8 * shape[1]) == 0] = 1.0
    coffs = np.arange(-32, 33)
    cc = g.standard_normal(coffs.size) / math.sqrt(draws)
    pooled = float(np.mean(rel) + 1)
    hw = float(sps.norm.isf(a / 2) * se / math.sqrt(n))
    rate = float(k_el.sum() / draws)
    rate_hw = float(sps.norm.isf(a / 2) * math.sqrt(q * p / draws))
    checks = [
        _check("eval_identity", "pass", detail="training=False returned x exactly in 3 calls."),
        _check("input_unchanged", "pass", detail="x was not modified."),
        _check("shape_dtype", "pass", detail="output shape (32, 64) float32 as input."),
        _check("finite", "pass", detail="no NaN or inf."),
        _check("support", "fail" if broken else "pass", estimate=float(draws * q) if broken else 0.0,
               expected=0.0, pvalue=0.0 if broken else 1.0,
               detail=f"{int(draws * q) if broken else 0} outputs neither 0 nor x/q."),
        _check("keep_rate", "pass", estimate=rate, expected=q, low=rate - rate_hw, high=rate + rate_hw,
               pvalue=0.41, detail=f"{k_el.sum()} of {draws} kept; exact binomial."),
        _check("mean", "fail" if broken else "pass", estimate=pooled, expected=1.0,
               low=pooled - hw, high=pooled + hw, pvalue=0.0 if broken else 0.62,
               detail="|x|-weighted relative mean of y/x; z-test."),
        _check("mean_per_element", "fail" if broken else "pass",
               estimate=float(1 + rel[np.argmax(np.abs(rel))]), expected=1.0,
               pvalue=0.0 if broken else float(min(1, n * pv_el.min())),
               detail="worst element; Holm over elements."),
        _check("variance", "fail" if broken else "pass", estimate=0.7002 if broken else 0.9996,
               expected=1.0, low=0.6993 if broken else 0.9987, high=0.7011 if broken else 1.0005,
               pvalue=0.0 if broken else 0.7, detail="pooled Var[y]/(x^2 p/q)."),
        _check("element_independence", "fail" if broken else "pass",
               estimate=1.0 if broken else float(np.abs(ac).max()), expected=0.0,
               pvalue=0.0 if broken else 0.5, detail="max |autocorrelation| over offsets 1..1024."),
        _check("call_independence", "pass", estimate=float(np.abs(cc).max()), expected=0.0,
               pvalue=0.33,
               detail="call-correlation record not available" if broken else "max |correlation|."),
        _check("keep_count_distribution", "pass", estimate=float(hist @ np.arange(n + 1) / calls),
               expected=n * q, pvalue=0.52, detail="chi-square vs Binomial."),
        _check("element_dispersion", "pass", estimate=1.01, expected=1.0, low=0.93, high=1.09,
               pvalue=0.77, detail="dispersion index of per-element keep counts."),
    ]
    return {
        "type": "mcdrop.AuditReport", "mcdrop_version": mcdrop.__version__,
        "verdict": "fail" if broken else "pass", "passed": not broken, "alpha": alpha, "power": 0.99,
        "detectable_bias": 1.7e-3, "detectable_rate_error": 2.4e-3,
        "target": "synthetic no-rescale dropout" if broken else "synthetic torch.nn.Dropout(p=0.3)",
        "p": p, "q": q, "variant": "inverted", "structure": "element", "shape": list(shape),
        "dtype": "float32", "calls": calls, "draws": draws, "seed": 0, "tolerance": None,
        "elapsed_s": 1.25,
        "environment": {"mcdrop": mcdrop.__version__, "numpy": np.__version__, "numba": "0.60.0",
                        "scipy": "1.14.0", "python": "3.11.7", "machine": "Linux x86_64",
                        "torch": "2.4.0"},
        "checks": checks,
        "per_element": None if broken else {
            "shape": list(shape), "relative_bias": rel.tolist(), "relative_bias_se": se,
            "keep_rate": (k_el / calls).tolist(), "pvalues": pv_el.tolist()},
        "keep_count_hist": hist_rec,
        "autocorrelation": {"offsets": offs.tolist(), "values": ac.tolist(), "bound": bound},
        "call_correlation": None if broken else {
            "offsets": coffs.tolist(), "values": cc.tolist(), "bound": bound,
            "lags": {"lags": [2, 3, 4], "values": (g.standard_normal(3) / math.sqrt(draws)).tolist()}},
        "convergence": {"draws": grid.tolist(), "relative_mean": run.tolist(), "se": se_grid.tolist()},
    }


def _text(path) -> str:
    """The PDF's text with runs of whitespace (line wraps) made single spaces."""
    return " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(str(path)).pages).split())


def _pages(path) -> int:
    return len(pypdf.PdfReader(str(path)).pages)


@pytest.fixture(scope="module")
def passing(tmp_path_factory):
    d = synthetic_audit(broken=False)
    out = tmp_path_factory.mktemp("audit") / "pass.pdf"
    render(d, out)
    return d, out


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    d = synthetic_audit(broken=True)
    out = tmp_path_factory.mktemp("audit") / "fail.pdf"
    render(d, out)
    return d, out


def test_passing_audit_pages_and_numbers(passing):
    d, out = passing
    # summary+table, convergence, histogram, per-element, QQ, independence (no failure page)
    assert _pages(out) == 6
    text = _text(out)
    assert "Overall verdict: PASS" in text
    assert "synthetic torch.nn.Dropout(p=0.3)" in text
    assert "torch 2.4.0" in text and "Linux x86_64" in text
    assert "alpha = 1e-06" in text and "0.0017" in text
    for c in d["checks"]:
        assert c["name"] in text
    rate = next(c for c in d["checks"] if c["name"] == "keep_rate")
    assert f"{rate['estimate']:.6g}" in text
    assert "Failures and what they usually mean" not in text
    assert "Not available" not in text


def test_failing_audit_explains_and_marks_missing_records(failing):
    d, out = failing
    # + one failure page
    assert _pages(out) == 7
    text = _text(out)
    assert "Overall verdict: FAIL" in text
    assert "5 of 13 checks failed" in text
    assert "Failures and what they usually mean" in text
    # the pattern readings: not rescaled (mean ≈ q·x) and rows repeating every 8 rows
    assert "not rescaled" in text
    assert "repeats every 8 rows" in text
    mean = next(c for c in d["checks"] if c["name"] == "mean")
    assert f"{mean['estimate']:.6g}" in text
    # null records are said on the page, not silently dropped
    assert text.count("Not available") >= 3
    assert "per_element" in text or "recorded no data" in text


def test_all_records_missing_still_renders(tmp_path):
    d = synthetic_audit(broken=True)
    for k in ("per_element", "keep_count_hist", "autocorrelation", "call_correlation", "convergence"):
        d[k] = None
    d["checks"] = d["checks"][:3]
    d["verdict"], d["passed"] = "pass", True
    out = tmp_path / "bare.pdf"
    render(d, out)
    text = _text(out)
    assert "Overall verdict: PASS" in text
    assert text.count("Not available") >= 6


def test_audit_report_is_deterministic(tmp_path):
    d = synthetic_audit(broken=True)
    render(d, tmp_path / "a.pdf")
    render(json.loads(json.dumps(d)), tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_malformed_record_is_reported_not_fatal(tmp_path):
    d = synthetic_audit(broken=False)
    del d["autocorrelation"]["bound"]
    out = tmp_path / "m.pdf"
    render(d, out)
    assert "incomplete" in _text(out)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdftotext_reads_the_verdicts(passing):
    _, out = passing
    txt = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                         check=True).stdout
    assert "PASS" in txt and "keep_rate" in txt


def _auditing_available() -> bool:
    try:
        import mcdrop.auditing  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _auditing_available(), reason="mcdrop.auditing not available yet")
@pytest.mark.parametrize("rescale", [True, False])
def test_real_numpy_audit_report(tmp_path, rescale):
    g = np.random.default_rng(8675309)

    def dropout(x, training):
        if not training:
            return x
        keep = g.random(x.shape) >= 0.3
        return np.where(keep, x / 0.7 if rescale else x, 0.0).astype(x.dtype)

    rep = mcdrop.audit(dropout, p=0.3, shape=(16, 32), calls=2000, seed=0)
    d = rep.to_dict()
    # Seeded (the dropout's generator and the audit's inputs), so one fixed run.  Why its
    # verdicts are the right ones: a correct layer fails with probability at most the
    # family-wise alpha = 1e-6; the missing 1/q is a 30% mean bias against the ~2e-3 the
    # audit detects with power 0.99 at these 2000 calls x 512 units.
    assert d["verdict"] == ("pass" if rescale else "fail")
    out = tmp_path / "real.pdf"
    render(json.loads(rep.to_json()), out)
    if not rescale:
        # the saved JSON renders exactly the report the run writes
        rep.to_pdf(tmp_path / "direct.pdf")
        assert (tmp_path / "direct.pdf").read_bytes() == out.read_bytes()
    text = _text(out)
    assert f"Overall verdict: {d['verdict'].upper()}" in text
    for c in d["checks"]:
        assert c["name"] in text
    if not rescale:
        # the audit's own numbers, read as the classic mistake
        assert "Failures and what they usually mean" in text
        assert "Mean ≈ q·x = 0.7·x: the output is not rescaled" in text
        assert "Variance ratio ≈ 0.7 (what y = x·m gives)" in text
