"""Bad input to the report layer, atomic output, the `mcdrop report` CLI, and progress bars."""

import io
import json
import os
import re
import sys

import pytest

import mcdrop
from mcdrop.core import progress as _progress
from mcdrop.cli import main
from mcdrop.report import load_result, render, validate_result
from mcdrop.report.files import atomic_path, atomic_write_text


@pytest.fixture(scope="module")
def tiny():
    # A small verify with a law section and negative controls (no sweep: faster to render).
    return mcdrop.verify(samples=10**4, sweep=False, sweep_samples=300, seed=11)


@pytest.fixture(scope="module")
def tiny_json(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("io") / "tiny.json"
    tiny.to_json(path)
    return path


def _leftovers(directory) -> list[str]:
    return [f for f in os.listdir(directory) if f.endswith(".tmp")]


# ---------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload,msg",
    [
        ({"type": "something.else"}, "not an mcdrop result"),
        ([1, 2, 3], "not an mcdrop result"),
        ({"type": "mcdrop.VerifyResult", "mcdrop_version": "9.3.0"}, "written by mcdrop '9.3.0'"),
        ({"type": "mcdrop.VerifyResult"}, "written by mcdrop None"),
        ({"type": "mcdrop.AuditReport", "mcdrop_version": mcdrop.__version__, "verdict": "pass"},
         "lacks the field(s)"),
        ({"type": "mcdrop.AuditReport", "mcdrop_version": mcdrop.__version__, "verdict": "ok",
          "alpha": 1e-6, "checks": [], "p": 0.3}, "verdict 'ok'"),
        ({"type": "mcdrop.AuditReport", "mcdrop_version": mcdrop.__version__, "verdict": "pass",
          "alpha": 1e-6, "checks": [{"name": "mean"}], "p": 0.3}, "checks[0] lacks"),
        ({"type": "mcdrop.LawSuiteResult", "mcdrop_version": mcdrop.__version__, "verdict": "pass",
          "alpha": 1e-6, "name": "variants", "title": "t", "sections": [{"title": "s"}]},
         "sections[0] lacks the field(s) ['checks']"),
    ],
)
def test_load_rejects_foreign_or_incomplete_json(tmp_path, payload, msg):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_result(path)


def test_load_rejects_missing_and_non_json_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_result(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_result(bad)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not a text"):
        load_result(binary)
    with pytest.raises(ValueError, match="directory"):
        load_result(tmp_path)


def test_nested_fields_are_validated(tiny):
    d = json.loads(json.dumps(tiny.to_dict()))
    del d["simulations"]["main"]["keep_counts"]
    with pytest.raises(ValueError, match=r"simulations\['main'\] lacks the field\(s\) \['keep_counts'\]"):
        validate_result(d)
    d = json.loads(json.dumps(tiny.to_dict()))
    d["sections"][0]["simulation"] = "elsewhere"
    with pytest.raises(ValueError, match="refers to simulation 'elsewhere'"):
        validate_result(d)


# ---------------------------------------------------------------------------
# atomic output
# ---------------------------------------------------------------------------


def test_unwritable_paths_give_clear_errors(tiny, tmp_path):
    d = tiny.to_dict()
    with pytest.raises(ValueError, match="is a directory"):
        render(d, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot create the directory"):
        render(d, blocker / "sub" / "r.pdf")
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ValueError, match="not writable"):
                render(d, ro / "r.pdf")
        finally:
            ro.chmod(0o700)


def test_failed_render_leaves_no_partial_pdf(tiny, tmp_path, monkeypatch):
    from mcdrop.report import verify_report

    target = tmp_path / "r.pdf"
    target.write_bytes(b"previous report")

    def boom(pdf, result):
        raise RuntimeError("plotting failed halfway")

    monkeypatch.setattr(verify_report, "_qq_page", boom)
    with pytest.raises(RuntimeError, match="halfway"):
        render(tiny.to_dict(), target)
    assert target.read_bytes() == b"previous report"
    assert _leftovers(tmp_path) == []
    fresh = tmp_path / "new.pdf"
    with pytest.raises(RuntimeError):
        render(tiny.to_dict(), fresh)
    assert not fresh.exists() and _leftovers(tmp_path) == []


def test_malformed_field_is_a_value_error_and_no_file(tiny, tmp_path):
    d = json.loads(json.dumps(tiny.to_dict()))
    d["simulations"]["main"]["trace"]["samples"] = None  # passes the key check, breaks the plot
    out = tmp_path / "m.pdf"
    with pytest.raises(ValueError, match="malformed"):
        render(d, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_atomic_output_has_the_usual_file_mode_and_needs_a_name(tmp_path):
    # mkstemp creates 0600; the finished file gets what open() would give
    target = tmp_path / "r.json"
    atomic_write_text(target, "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "{}"
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ValueError, match="has no file name"):
        atomic_write_text("", "{}")


def test_unknown_law_suite_is_a_value_error_and_no_file(tmp_path):
    d = {"type": "mcdrop.LawSuiteResult", "mcdrop_version": mcdrop.__version__, "verdict": "pass",
         "alpha": 1e-6, "name": "no_such_law", "title": "t", "sections": []}
    out = tmp_path / "l.pdf"
    with pytest.raises(ValueError, match=r"named one of \['inference_gap', 'regularization', 'variants'\]"):
        render(d, out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_atomic_path_interrupt(tmp_path):
    target = tmp_path / "t.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise KeyboardInterrupt
    assert not target.exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_report_cli_renders_saved_json(tiny_json, tmp_path, capsys):
    out = tmp_path / "deep" / "r.pdf"
    assert main(["report", str(tiny_json), "-o", str(out)]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    assert "PDF report written" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda p: p.write_text(json.dumps({"type": "other.tool", "data": 1})), "not an mcdrop result"),
        (lambda p: p.write_text('{"type": "mcdrop.VerifyResult", "mcdrop_version": "0.0.1"}'),
         "written by mcdrop '0.0.1'"),
        (lambda p: p.write_text("]["), "not valid JSON"),
    ],
)
def test_report_cli_bad_input_exits_2(tmp_path, capsys, make, msg):
    src = tmp_path / "in.json"
    make(src)
    out = tmp_path / "o.pdf"
    assert main(["report", str(src), "-o", str(out)]) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists()


def test_report_cli_refuses_to_overwrite_its_input(tiny_json, capsys):
    assert main(["report", str(tiny_json), "-o", str(tiny_json)]) == 2
    assert "is the input JSON" in capsys.readouterr().err
    json.loads(tiny_json.read_text())  # untouched


def test_report_cli_unwritable_output_exits_2(tiny_json, tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    assert main(["report", str(tiny_json), "-o", str(blocker / "r.pdf")]) == 2
    assert "cannot create the directory" in capsys.readouterr().err


def test_verify_cli_checks_json_path_before_running(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    code = main(["verify", "--samples", "1e4", "--no-sweep", "--no-controls", "--no-report",
                 "--quiet", "--json", str(blocker / "v.json")])
    assert code == 2
    captured = capsys.readouterr()
    assert "cannot create the directory" in captured.err
    assert "mcdrop verify:" not in captured.out  # nothing ran


# ---------------------------------------------------------------------------
# progress bars
# ---------------------------------------------------------------------------


class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_bar_shows_rate_on_a_tty():
    buf = _TTY()
    bar = _progress.make_bar(total=10**6, desc="verify", unit="draw", file=buf)
    bar.mininterval = 0
    for _ in range(5):
        bar.update(2 * 10**5)
    bar.close()
    assert "draw/s" in buf.getvalue() and "verify" in buf.getvalue()


def test_bar_off_when_not_a_tty_or_disabled():
    assert isinstance(_progress.make_bar(10, "x", file=io.StringIO()), _progress._NullBar)
    assert isinstance(_progress.make_bar(10, "x", enabled=False, file=_TTY()), _progress._NullBar)
    bar = _progress.make_bar(10, "x", file=None)  # sys.stderr under pytest capture: not a TTY
    assert isinstance(bar, _progress._NullBar)


def _verify_cli(monkeypatch, extra):
    err = _TTY()
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["verify", "--samples", "3e6", "--no-sweep", "--no-controls", "--no-report", *extra])
    return code, err.getvalue()


def test_verify_cli_bar_and_quiet(monkeypatch, capsys):
    code, err = _verify_cli(monkeypatch, [])
    assert code == 0
    assert "verify" in err and "draw/s" in err
    code, err = _verify_cli(monkeypatch, ["--quiet"])
    assert code == 0 and err == ""


def test_render_dispatches_variant_results_to_the_laws_report(tmp_path):
    import inspect

    if "variant" not in inspect.signature(mcdrop.verify).parameters:
        pytest.skip("verify has no variants yet")
    pypdf = pytest.importorskip("pypdf")
    res = mcdrop.verify(samples=10**4, sweep=False, controls=False, variant="gaussian", seed=1)
    path = tmp_path / "v.json"
    res.to_json(path)
    out = tmp_path / "g.pdf"
    assert main(["report", str(path), "-o", str(out)]) == 0
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(str(out)).pages)
    assert "gaussian dropout" in text
    assert "Power:" in text and "detectable with power" in text


def test_variant_report_omits_the_power_line_when_no_section_has_one(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    from mcdrop.report.laws_report import render_variant_verify

    d = mcdrop.verify(samples=10**4, sweep=False, controls=False, variant="gaussian", seed=1).to_dict()
    for s in d["sections"]:
        s.pop("detectable_bias", None)
    out = tmp_path / "g.pdf"
    render_variant_verify(d, out)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(str(out)).pages)
    assert "gaussian dropout" in text and "detectable with power" not in text
