"""The verify PDF report: page count, the verdicts and numbers in its text, determinism."""

import copy
import json

import numpy as np
import pytest

import mcdrop
from mcdrop.report import load_result, render, render_verify

pypdf = pytest.importorskip("pypdf")


@pytest.fixture(scope="module")
def small():
    # Small seeded budget (1e5 seed samples, 2000 per sweep point): the
    # verdicts are deterministic for this seed.  Every law holds with
    # family-wise false-alarm probability at most alpha = 1e-6 (Holm), and
    # the controls' scale errors (no rescale: x q; dividing by p: x q/p = 2.3
    # at p = 0.3) are tens of percent, far above what these budgets detect.
    return mcdrop.verify(samples=10**5, sweep_samples=2000, seed=20241127)


@pytest.fixture(scope="module")
def small_pdf(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "v.pdf"
    small.to_pdf(out)
    return out


def _text(path) -> str:
    """The PDF's text with runs of whitespace (line wraps) made single spaces."""
    return " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(str(path)).pages).split())


def _pages(path) -> int:
    return len(pypdf.PdfReader(str(path)).pages)


def test_page_count_and_contents(small, small_pdf):
    assert small.passed
    # page 1 + table continuation (79 rows: 26 + 53, one page of at most 56)
    # + controls page + convergence (seed, sweep) + histograms
    # + per-element bias (2 pages) + QQ + independence
    assert len(small.rows) <= 26 + 56
    assert _pages(small_pdf) == 10
    text = _text(small_pdf)
    assert "Overall verdict: PASS" in text
    assert f"all {len(small.rows)} checks came out as expected" in text
    assert "seed example" in text and "sweep p=0.9" in text
    # versions and the run's settings are on page 1
    env = small.environment
    assert f"numpy {env['numpy']}" in text and f"numba {env['numba']}" in text
    assert "Seed:" in text and "20241127" in text
    assert f"alpha = {small.alpha:g}" in text
    # every check's verdict and estimate appears as in the table
    for row in small.rows:
        c = row.check
        assert c.name in text
        if c.estimate is not None:
            assert f"{c.estimate:.6g}" in text, (row.section, c.name)
    # one table cell per negative-control check (the legend quotes it too)
    cells = text.count("FAIL (expected)") - text.count("'FAIL (expected)'")
    assert cells == sum(1 for r in small.rows if r.expect == "fail")
    # controls are read as the mistakes they model
    assert "not rescaled" in text and "divided by p" in text
    # the plots' pages
    for title in ("Convergence: running layer mean", "Convergence across the p sweep",
                  "Keep counts per sample against Binomial", "Per-element relative bias",
                  "QQ plot", "Independence of the mask"):
        assert title in text
    assert "target mean(x) = 5" in text


def test_json_round_trip_gives_the_same_pdf(small, small_pdf, tmp_path):
    js = tmp_path / "v.json"
    small.to_json(js)
    d = load_result(js)
    assert d == json.loads(json.dumps(small.to_dict()))
    out = tmp_path / "again.pdf"
    render(d, out)
    # deterministic: no timestamps, same bytes from the object and from its JSON
    assert out.read_bytes() == small_pdf.read_bytes()
    assert b"CreationDate" not in out.read_bytes()


def test_two_runs_with_one_seed_give_identical_pdfs(small_pdf, tmp_path):
    # a second, independent run (its elapsed time differs): same bytes
    again = mcdrop.verify(samples=10**5, sweep_samples=2000, seed=20241127)
    out = tmp_path / "rerun.pdf"
    again.to_pdf(out)
    assert out.read_bytes() == small_pdf.read_bytes()


def test_timestamp_only_when_asked(tmp_path):
    res = mcdrop.verify(samples=10**4, sweep=False, controls=False, seed=5)
    out = tmp_path / "t.pdf"
    res.to_pdf(out, timestamp=True)
    assert b"CreationDate" in out.read_bytes()
    assert "(rendered)" in _text(out)


def test_json_is_compact_and_exact(small):
    text = small.to_json()
    d = json.loads(text)
    assert text == json.dumps(d, separators=(",", ":"))  # no indentation, no padding
    assert len(text) < 0.75 * len(small.to_json(indent=1))
    sim = mcdrop.Simulation.from_dict(d["simulations"]["main"])
    assert sim == small.simulations["main"]


def test_unexpected_outcomes_are_red_and_explained(small, tmp_path):
    d = copy.deepcopy(small.to_dict())
    # a law that failed, and a negative control that was not detected
    sec = next(s for s in d["sections"] if s["name"] == "sweep_p0.3")
    chk = next(c for c in sec["checks"] if c["name"] == "keep_rate")
    chk.update(verdict="fail", passed=False, estimate=0.3, pvalue=0.0)
    ctrl = next(s for s in d["sections"] if s["name"] == "control_divide_by_p")
    ctrl["checks"][0].update(verdict="pass", passed=True)
    d["verdict"], d["passed"] = "fail", False
    out = tmp_path / "fail.pdf"
    render_verify(d, out)
    text = _text(out)
    assert "Overall verdict: FAIL" in text
    assert "2 of " in text and "did not come out as expected" in text
    assert "keep_rate: FAIL, UNEXPECTED" in text
    assert "keep and drop swapped" in text
    assert "PASS, UNEXPECTED" in text


def test_seed_example_only(tmp_path):
    res = mcdrop.verify(samples=10**5, sweep=False, controls=False, seed=7)
    out = tmp_path / "seed.pdf"
    res.to_pdf(out)
    # page 1 (whole table) + convergence + histogram + bias + QQ + independence
    assert _pages(out) == 6
    text = _text(out)
    assert "Overall verdict: PASS" in text and "p sweep" not in text
    lm = res.simulations["main"].layer_mean
    assert f"{lm.mean:.6g}" in text


def test_midp_values_are_closer_to_uniform_than_central_ones():
    # The QQ page plots mid-p values: under the law they average 1/2 (the
    # central exact p-values are conservative and average more).
    from mcdrop.stats.binomial import two_sided_binom_p as _two_sided_binom_p
    from mcdrop.report.figures import midp_binom_pvalues

    g = np.random.default_rng(31415926)
    k = g.binomial(50, 0.3, size=20000)
    mid = midp_binom_pvalues(k, 50, 0.3)
    central = _two_sided_binom_p(k, 50, 0.3)
    assert np.all((mid >= 0) & (mid <= 1))
    # sd of a mean of 20000 uniforms is 0.002; 0.015 is 7 sd (plus the small
    # discreteness bias of mid-p at n = 50: exact mean 0.5057)
    assert abs(mid.mean() - 0.5) < 0.015
    # exact means under Binomial(50, 0.3): central 0.5796, mid-p 0.5057; the gap
    # of 0.074 is 0.024 above the cut, many times the sd of a difference of two
    # means of 20000 p-values (< 0.003)
    assert central.mean() > mid.mean() + 0.05
