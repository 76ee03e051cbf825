"""The command-line interface, in process (fast) and as the installed script."""

import json
import shutil
import subprocess
import sys

import pytest

from mcdrop.cli import main


def test_verify_cli_small_run(tmp_path, capsys):
    js = tmp_path / "v.json"
    pdf = tmp_path / "out" / "v.pdf"
    code = main(["verify", "--samples", "1e5", "--sweep-samples", "1e4", "--json", str(js),
                 "--report", str(pdf), "--quiet", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mcdrop verify: PASS" in out and "keep_rate" in out and "p-value" in out
    d = json.loads(js.read_text())
    assert d["verdict"] == "pass"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # the same seed gives the same table
    main(["verify", "--samples", "1e5", "--sweep-samples", "1e4", "--no-report", "--quiet", "--seed", "3"])
    out2 = capsys.readouterr().out
    assert out2.split("\n\n")[1].strip() == out.split("\n\n")[1].strip()


def test_verify_cli_user_input(capsys):
    code = main(["verify", "--x", "1,2,3", "--keep", "0.9", "--samples", "1e5", "--no-sweep",
                 "--no-controls", "--no-report", "--quiet"])
    assert code == 0
    assert "your input" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["verify", "--p", "1.5", "--no-report"], "`p`"),
        (["verify", "--samples", "0", "--no-report"], "`samples`"),
        (["verify", "--alpha", "2", "--no-report"], "`alpha`"),
        (["verify", "--threads", "0", "--no-report"], "`threads`"),
        (["plan", "--p", "1"], "`p`"),
        (["plan", "--p", "0.3", "--bias", "-1"], "`bias`"),
    ],
)
def test_bad_input_exits_2(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["verify", "--p", "0.1", "--keep", "0.9"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["verify", "--x", "a,b"])
    assert e.value.code == 2
    assert main([]) == 2


def test_plan_cli(capsys, tmp_path):
    js = tmp_path / "plan.json"
    assert main(["plan", "--p", "0.3", "--bias", "1e-3", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "mask draws" in out
    d = json.loads(js.read_text())
    assert 2.0e7 < d["samples"] < 2.5e7  # DESIGN.md: about 2e7 draws at p = 0.3


def test_report_cli_rerenders_json(tmp_path, capsys):
    js = tmp_path / "v.json"
    assert main(["verify", "--samples", "1e4", "--sweep-samples", "1e3", "--json", str(js),
                 "--no-report", "--quiet"]) == 0
    out_pdf = tmp_path / "again.pdf"
    assert main(["report", str(js), "-o", str(out_pdf)]) == 0
    assert out_pdf.read_bytes()[:5] == b"%PDF-"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "something.else"}))
    assert main(["report", str(bad), "-o", str(tmp_path / "x.pdf")]) == 2
    assert "not an mcdrop result" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()


def test_installed_script_help():
    exe = shutil.which("mcdrop")
    cmd = [exe] if exe else [sys.executable, "-m", "mcdrop.cli"]
    out = subprocess.run(cmd + ["verify", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--samples", "--p", "--keep", "--x", "--seed", "--alpha", "--threads", "--json"):
        assert flag in out
