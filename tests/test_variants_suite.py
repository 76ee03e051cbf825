"""The per-law suite: `mcdrop verify --all`, the scripts, `--variant/--structure`, the PDFs."""

import subprocess
import sys
from pathlib import Path

import pytest

from mcdrop.cli import main
from mcdrop.suites.registry import SCRIPTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # every script end to end (~20 s on 2 idle cores)
def test_verify_all_smoke_writes_every_pdf(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # seeded (5): deterministic; each script's laws at alpha = 1e-6 (Holm).
    code = main(["verify", "--all", "--smoke", "--quiet", "--seed", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    from pypdf import PdfReader

    for name, (pdf, _) in SCRIPTS.items():
        path = tmp_path / "reports" / pdf
        assert path.exists(), name
        assert path.stat().st_size < 1_000_000  # each PDF section stays small
        reader = PdfReader(str(path))
        assert len(reader.pages) >= 2
        assert "PASS" in reader.pages[0].extract_text()
        assert f"{name:<15} PASS" in out


def test_verify_variant_cli(tmp_path, capsys):
    # --seed defaults to 0: deterministic; laws at alpha = 1e-6 (Holm).
    pdf = tmp_path / "g.pdf"
    code = main(["verify", "--variant", "gaussian", "--structure", "channel", "--samples", "1e5",
                 "--sweep-samples", "1e4", "--no-sweep", "--report", str(pdf), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "gauss/chan ctl Var=p" in out and "noise_kurtosis" in out
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_verify_variant_cli_bad_input(capsys):
    assert main(["verify", "--variant", "gaussian", "--p", "1", "--no-report", "--quiet"]) == 2
    assert "variant 'gaussian' is undefined at p = 1" in capsys.readouterr().err
    assert main(["verify", "--structure", "channel", "--x", "1,2,3", "--no-report", "--quiet"]) == 2
    assert "structure 'channel'" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["verify_inference_gap.py"])
def test_script_runs_quick(tmp_path, script):
    # --seed defaults to 0: deterministic; laws at alpha = 1e-6 (Holm).
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--quick", "--reports", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and (tmp_path / "inference_gap.pdf").exists()
