"""Plain-language readings of failed checks (mcdrop.report.explain)."""

import pytest

from mcdrop.report.explain import explain


def fail(name, estimate=None, expected=None, low=None, high=None):
    ci = None if low is None else {"low": low, "high": high}
    return {"name": name, "verdict": "fail", "estimate": estimate, "expected": expected,
            "confidence_interval": ci}


def test_passing_check_has_no_reading():
    assert explain({"name": "mean", "verdict": "pass", "estimate": 0.7, "expected": 1.0}, p=0.3) is None
    assert explain({"name": "mean", "verdict": "inconclusive"}, p=0.3) is None


@pytest.mark.parametrize(
    "check,p,needle",
    [
        # mean ≈ q·x: not rescaled (relative mean, layer mean in units of x, per element)
        (fail("mean_relative", 0.7003, 1.0), 0.3, "not rescaled"),
        (fail("mean_layer", 2.4995, 5.0), 0.5, "not rescaled"),
        (fail("mean", 0.6998, 1.0), 0.3, "not rescaled"),
        (fail("mean_per_element", 0.66, 1.0), 0.3, "not rescaled"),  # worst element, noisier
        # mean ≈ (q/p)·x: divided by p instead of q
        (fail("mean_relative", 2.3331, 1.0), 0.3, "divided by p"),
        (fail("mean", 0.111, 1.0), 0.9, "divided by p"),
        # mean expressed as a relative bias (expected 0): q - 1
        (fail("mean", -0.3001, 0.0), 0.3, "not rescaled"),
        # double rescaling and swaps
        (fail("mean", 1.4286, 1.0), 0.3, "rescaled twice"),
        (fail("mean", 0.4286, 1.0), 0.3, "keep and drop swapped"),
        (fail("mean", 0.0, 1.0), 0.3, "every output is zero"),
        # keep rate ≈ p: swapped; ≈ 1: inactive; tiny offset: 8-bit quantisation
        (fail("keep_rate", 0.3002, 0.7), 0.3, "keep and drop swapped"),
        (fail("keep_rate", 1.0, 0.9), 0.1, "not active in training mode"),
        (fail("keep_rate", 0.6992, 0.7), 0.3, "8 bits"),
        (fail("keep_rate", 0.55, 0.7), 0.3, "not 1 - p"),
        # variance: scale errors square
        # the audit's variance: E[(y - x)²]/(x² p/q), a ratio with expected 1
        (fail("variance", 0.7002, 1.0), 0.3, "not rescaled"),
        (fail("variance", 9.59, 1.0), 0.3, "divided by p"),
        (fail("variance", 1.76, 1.0), 0.3, "keep and drop swapped"),
        # verify's per-element sample variance of y/x against p/q
        (fail("variance_per_element", 0.21, 0.428571), 0.3, "not rescaled"),
        (fail("variance_per_element", 2.3333, 0.428571), 0.3, "divided by p"),
        (fail("variance", 0.0, 0.428571), 0.3, "no randomness"),
        (fail("layer_variance", 0.2, 0.1), 0.3, "positively correlated"),
        (fail("layer_variance", 0.02, 0.1), 0.3, "exactly"),
        # dispersion
        (fail("element_dispersion", 3.0, 1.0), 0.3, "dropped more often"),
        (fail("element_dispersion", 0.2, 1.0), 0.3, "balances"),
        # exact checks
        (fail("eval_identity"), 0.3, "evaluation mode"),
        (fail("finite"), 1.0, "p = 1"),
        (fail("input_unchanged"), 0.3, "in-place"),
        (fail("support", 5.0, 0.0), 0.3, "scale differs from 1/q"),
    ],
)
def test_patterns(check, p, needle):
    text = explain(check, p=p)
    assert needle in text, text
    assert text[0].isupper(), text  # a sentence on the page


def test_q_alone_is_enough():
    assert "not rescaled" in explain(fail("mean", 0.7, 1.0), q=0.7)


def test_interval_decides_a_borderline_match():
    # 0.66 is 5.7% from q = 0.7 (outside the 5% match) but the interval holds q
    c = fail("mean", 0.66, 1.0, low=0.64, high=0.71)
    assert "not rescaled" in explain(c, p=0.3)
    c = fail("mean", 0.66, 1.0, low=0.655, high=0.665)
    assert "not rescaled" not in explain(c, p=0.3)


def test_at_p_half_the_ambiguity_is_stated():
    # q = p = 0.5: "not rescaled" and "swapped, not rescaled" give the same mean
    text = explain(fail("mean", 0.5, 1.0), p=0.5)
    assert "not rescaled" in text and "swapped" in text
    # and dividing by p is the correct scale there: never offered
    assert "divided by p" not in text
    # not even for a small bias, whose ratio lies within the 5% match of q/p = 1
    text = explain(fail("mean", 1.003, 1.0), p=0.5)
    assert "divided by p" not in text and "small, systematic error" in text


def test_call_correlation_patterns():
    same = {"offsets": [0, 1, 2], "values": [0.999, 0.0, 0.0], "bound": 0.01}
    assert "same mask every call" in explain(fail("call_independence"), p=0.3, call_correlation=same)
    lag = {"offsets": [1, 2, 3], "values": [1.0, 0.0, 0.0], "bound": 0.01}
    assert "same mask every call" in explain(fail("call_independence"), p=0.3, call_correlation=lag)
    alt = {"offsets": [0, 1], "values": [-1.0, 0.0], "bound": 0.01}
    assert "complement" in explain(fail("call_independence"), p=0.3, call_correlation=alt)
    shift = {"offsets": [-2, -1, 0, 1, 2], "values": [0, 0, 0, 0.98, 0], "bound": 0.01}
    assert "shifted by 1 position" in explain(fail("call_independence"), p=0.3, call_correlation=shift)
    # calls k apart at offset 0 (the audit's "lags" record)
    cyc = {"offsets": [-1, 0, 1], "values": [0.0, 0.001, 0.0], "bound": 0.01,
           "lags": {"lags": [2, 3, 4], "values": [0.0, 0.0, 0.97]}}
    assert "repeats every 4 calls" in explain(fail("call_independence"), p=0.3, call_correlation=cyc)
    # no record: still a useful sentence
    assert "reused between calls" in explain(fail("call_independence"), p=0.3)


def test_autocorrelation_patterns():
    rows = {"offsets": [1, 2, 4096], "values": [0.0, 0.001, 0.95], "bound": 0.01}
    text = explain(fail("element_independence"), p=0.3, shape=(64, 128), autocorrelation=rows)
    assert "every 32 rows" in text
    batch = {"offsets": [1, 128 * 8], "values": [0.0, 1.0], "bound": 0.01}
    text = explain(fail("element_independence"), p=0.3, shape=(4, 8, 128), autocorrelation=batch)
    assert "every item of the batch" in text
    bits = {"offsets": [1, 2, 3], "values": [0.0, 0.0, 0.4], "bound": 0.01}
    assert "offset 3" in explain(fail("element_independence"), p=0.3, shape=(64, 128), autocorrelation=bits)


def test_keep_count_histogram_width():
    from scipy.stats import binom

    n, q = 100, 0.7
    narrow = [0] * (n + 1)
    narrow[70] = 1000
    text = explain(fail("keep_count_distribution"), p=0.3,
                   keep_count_hist={"counts": narrow, "n": n, "q": q})
    assert "same number every call" in text
    wide = [0] * (n + 1)
    wide[50] = wide[90] = 500  # mean 70 = n q, variance 400 vs n p q = 21
    text = explain(fail("keep_count_distribution"), p=0.3,
                   keep_count_hist={"counts": wide, "n": n, "q": q})
    assert "19× the binomial one" in text and "correlated" in text
    # near-binomial spread: the generic sentence, naming both directions
    ok = (binom.pmf(range(n + 1), n, q) * 1000).round().astype(int).tolist()
    text = explain(fail("keep_count_distribution"), p=0.3,
                   keep_count_hist={"counts": ok, "n": n, "q": q})
    assert "Too narrow" in text


def test_unknown_check_and_missing_numbers_fall_back():
    assert "detail" in explain(fail("something_new"), p=0.3)
    assert explain(fail("mean"), p=0.3)  # no estimate: still a sentence
    text = explain(fail("mean", 1.02, 1.0), p=None)
    assert "2%" in text
