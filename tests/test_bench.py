"""The benchmark's own plumbing (tiny budgets: the numbers are printed, never judged here)."""

import pytest

from mcdrop.cli import main
from mcdrop.cli.bench import entropy, numpy_baseline, run_benchmark


def test_run_benchmark_reports_every_section():
    res = run_benchmark(rounds=1, scale=0.002)
    assert set(res["A"]) == {64, 1024, 8192}
    for rec in res["A"].values():
        assert rec["numpy_over_simulate_1t"][0] > 0 and rec["median_s"]["numpy"] > 0
    # bits per draw are counted, not timed: deterministic (8 eager bits + lazy rounds at q = 0.7)
    assert res["B"][0.5]["bits_per_draw"] == pytest.approx(2.0)
    assert 8.0 < res["B"][0.7]["bits_per_draw"] < 9.0 and res["B"][0.7]["entropy"] == pytest.approx(entropy(0.7))
    assert all(r["gaussian_over_inverted"][0] > 0 for r in res["C"].values())
    assert "A " in res["text"] and "B " in res["text"] and "C " in res["text"]


def test_numpy_baseline_estimates_the_law():
    import numpy as np

    x = np.array([1.0, -2.0, 4.0])
    keep, mean = numpy_baseline(x, 0.3, 20_000, seed=3)()
    assert keep.sum() > 0 and np.allclose(mean, x, rtol=0.05)  # 20,000 draws: se ~1.5% of x


def test_cli_bench_quick(capsys):
    assert main(["bench", "--quick", "--rounds", "1", "--quiet"]) == 0
    assert "random bits per mask draw" in capsys.readouterr().out
