"""mcdrop.power_curve, `mcdrop power` and the power report; the statements hold at a small budget too.

The full curves at the default budget are in reports/power.pdf (scripts/power_report.py, about an
hour); here the same machinery runs on small budgets.  Every audit is seeded, so each count below
is deterministic.
"""

import json

import numpy as np
import pytest

import mcdrop
from mcdrop.auditing.effects import EFFECT_UNITS, STATEMENT_POWER
from mcdrop.auditing.injected import FAMILIES, mutant
from mcdrop.auditing.power import POWER_CHECKS, PowerCurve, power_study
from mcdrop.cli import main
from mcdrop.report import load_result

SMALL = dict(budget=300, shape=(16, 64))


def test_every_check_of_the_battery_has_a_family_and_a_unit():
    assert set(POWER_CHECKS) == set(FAMILIES) == set(EFFECT_UNITS)
    rep = mcdrop.audit(mutant("keep_rate", 0.0, seed=1), p=0.3, shape=(16, 64), calls=100)
    assert {c.name for c in rep.checks} <= set(POWER_CHECKS)
    for c in rep.checks:
        eff = c.extra["detectable_effect"]
        assert eff["unit"] == EFFECT_UNITS[c.name] and eff["power"] == 0.99 and eff["text"]


@pytest.mark.parametrize("check", ["keep_rate", "mean", "variance", "dispersion", "element_independence",
                                   "call_independence"])
def test_statement_holds_at_a_small_budget(check):
    """At 300 calls of a (16, 64) input (partly tail bounds, not normal tails), 20 seeded audits at
    the stated effect: the formula gives power 0.999 there, so 2 misses or more would have
    probability 2e-4 if the statement were right."""
    c = mcdrop.power_curve(check, None, repeats=1, seed=3, **SMALL)
    stated = c.stated
    assert stated and stated > 0
    at = mcdrop.power_curve(check, [stated], repeats=20, seed=4, **SMALL)
    assert at.detected[0] >= 19, at
    none = mcdrop.power_curve(check, [0.0], repeats=20, seed=5, **SMALL)
    assert none.detected == (0,)


def test_power_curve_result_and_determinism():
    a = mcdrop.power_curve("support", [0, 4, 5], repeats=3, seed=2, **SMALL)
    b = mcdrop.power_curve("support", [0, 4, 5], repeats=3, seed=2, **SMALL)
    assert a.detected == b.detected and a.detected[0] == 0 and a.detected[2] == 3
    assert a.stated == 5 and a.unit == "ulp" and a.calls == 300 and a.confirmed
    assert 4.0 < a.crossing <= 5.0
    d = json.loads(a.to_json())
    assert d["type"] == "mcdrop.PowerCurve" and d["detected"] == list(a.detected)
    assert d["intervals"][2][0] > 0.29 and "support" in str(a)


def test_crossing_and_confirmed():
    kw = dict(check="mean", unit="relative mean bias", repeats=100, power=0.99, alpha=1e-6, calls=10, p=0.3,
              shape=(2, 2), variant="inverted", structure="element", mutant="m", seed=0)
    c = PowerCurve(effects=(0.0, 1.0, 2.0), detected=(0, 95, 100), stated=2.0, **kw)
    assert c.crossing == pytest.approx(1.8) and c.confirmed and c.rate_at_stated == 1.0
    c = PowerCurve(effects=(0.0, 1.0, 2.0), detected=(0, 95, 98), stated=2.0, **kw)
    assert c.crossing is None and not c.confirmed
    c = PowerCurve(effects=(0.0, 1.0, 2.0), detected=(0, 99, 100), stated=0.9, **kw)
    assert c.crossing == 1.0 and not c.confirmed


@pytest.mark.parametrize("bad,match", [
    (dict(check="nope"), "`check` must be one of"),
    (dict(check="mean", effects=[-1.0]), "`effects` must be finite numbers >= 0"),
    (dict(check="mean", effects="abc"), "`effects` must be"),
    (dict(check="mean", budget=0), "budget"),
    (dict(check="mean", repeats=0), "repeats"),
    (dict(check="mean", p=1.0), "`p` must be a drop probability in \\(0, 1\\)"),
    (dict(check="mean", seed=-1), "`seed` must be an int >= 0"),
    (dict(check="support", effects=[1.5]), "integers >= 0"),
])
def test_power_curve_rejects_bad_arguments(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mcdrop.power_curve(**{"effects": [0.0], "repeats": 1, "budget": 50, **bad})


def test_statement_power_margin():
    assert STATEMENT_POWER == 0.999
    rep = mcdrop.audit(mutant("keep_rate", 0.0, seed=1), p=0.3, shape=(16, 64), calls=300)
    eff = rep.check("keep_rate").extra["detectable_effect"]
    # the budget's planning number is the formula at power 0.99; the statement at 0.999
    assert rep.detectable_rate_error < eff["value"] < 1.12 * rep.detectable_rate_error
    assert eff["formula_power"] == 0.999


def test_cli_power_and_report(tmp_path):
    js, pdf = tmp_path / "p.json", tmp_path / "p.pdf"
    rc = main(["power", "runs", "keep_rate", "--calls", "200", "--repeats", "2", "--exact-repeats", "1",
               "--quiet", "--json", str(js), "--report", str(pdf)])
    d = load_result(js)
    assert d["type"] == "mcdrop.PowerStudy" and [c["check"] for c in d["curves"]] == ["runs", "keep_rate"]
    assert rc == (0 if d["verdict"] == "pass" else 1)
    pypdf = pytest.importorskip("pypdf")
    text = "".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages)
    assert "What a PASS rules out" in text and "keep_rate" in text and "Detection rate against effect size" in text
    rc = main(["power", "keep_rate", "--effects", "0,0.05", "--calls", "200", "--repeats", "2", "--quiet"])
    assert rc == 1  # a two-point grid cannot show the 0.99 crossing at the stated effect
    assert main(["power", "--effects", "0.1", "--quiet", "--no-report"]) == 2


def test_power_study_collects_curves():
    s = power_study(["finite", "structure"], budget=100, repeats=1, exact_repeats=2, seed=1)
    assert s.confirmed and s.curve("structure").shape == (16, 32, 8)
    assert "finite" in s.table() and s.to_dict()["verdict"] == "pass"
    with pytest.raises(KeyError):
        s.curve("mean")
    with pytest.raises(ValueError, match="`checks` must be among"):
        power_study(["nope"])


def test_mutants_are_correct_at_effect_zero():
    for check in POWER_CHECKS:
        fam = FAMILIES[check]
        shape = fam.shape or (16, 64)
        rep = mcdrop.audit(mutant(check, 0.0, seed=np.random.SeedSequence([6, 1]), shape=shape, calls=150),
                           p=0.3, shape=shape, calls=150, variant=fam.variant, structure=fam.structure)
        assert rep.passed, (check, str(rep))
