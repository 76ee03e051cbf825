"""The pytest plugin, exercised in a fresh pytest process on a throwaway project.

Every audit in the throwaway project is seeded twice over (the dropout's own
generator and the audit's ``seed``) and Hypothesis is derandomized, so each
run sees the same masks and the same verdicts: nothing here can flake.  (With
fresh seeds a correct dropout would fail an audit with probability at most its
alpha share, <= 2e-6.)
"""

import os
import subprocess
import sys
import textwrap


PROJECT_TEST = textwrap.dedent(
    '''
    import numpy as np
    import pytest
    from hypothesis import given, settings, strategies as st

    def make(p, seed, scale=None):
        g = np.random.default_rng(seed)
        q = 1 - p
        s = 1 / q if scale is None else scale
        def fn(x, training):
            if not training:
                return x
            return np.where(g.random(x.shape) < q, x * s, 0).astype(x.dtype)
        return fn

    def test_good(dropout_audit):
        rep = dropout_audit(make(0.3, 1), p=0.3, shape=(16, 32), calls=200, seed=1)
        assert rep == "pass"
        assert rep.alpha == dropout_audit.alpha  # the audit ran at this test's share

    @settings(max_examples=3, derandomize=True, deadline=None)
    @given(p=st.sampled_from([0.1, 0.5]))
    def test_good_given(dropout_audit, p):
        rep = dropout_audit(make(p, 2), p=p, shape=(16, 32), calls=200, seed=2, examples=3)
        assert rep.alpha == dropout_audit.per_example(3)

    def test_bad(dropout_audit):
        dropout_audit(make(0.3, 3, scale=1.0), p=0.3, shape=(16, 32), calls=200, seed=3)

    def test_compare_repr(dropout_audit):
        import mcdrop
        rep = mcdrop.audit(make(0.3, 4, scale=1.0), p=0.3, shape=(16, 32), calls=200, seed=4)
        assert rep == "pass"
    '''
)


def _run_pytest(tmp_path, *args, env_extra=None):
    (tmp_path / "test_project.py").write_text(PROJECT_TEST)
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rN", *args],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )


def test_fixture_budget_summary_and_assertrepr(tmp_path):
    # 8e-6 over 4 tests: 2e-6 each, unlike the audit's default 1e-6
    res = _run_pytest(tmp_path, "--mcdrop-alpha", "8e-6")
    out = res.stdout
    assert res.returncode == 1, out
    assert "2 passed" in out and "2 failed" in out, out
    # terminal summary: 4 audits by the fixture (1 + 2 distinct Hypothesis examples + 1) in 3
    # tests; 4 tests use the fixture -> 2e-6 each, 2e-6 / 3 per Hypothesis example
    assert "mcdrop: 4 dropout audit(s) in 3 test(s), 1 failed" in out, out
    assert "suite-wide alpha 8e-06 split over 4 test(s)" in out
    assert "alpha per audit 6.67e-07..2e-06" in out
    # the failing fixture call explains itself, and ran at the test's share
    assert "dropout audit FAIL" in out and "mean: FAIL" in out
    assert "alpha=2e-06 (family-wise, Holm)" in out
    # assert rep == "pass" goes through pytest_assertrepr_compare
    assert "mcdrop AuditReport with verdict 'FAIL'" in out and "failed checks:" in out


def test_bad_alpha_option_is_a_usage_error(tmp_path):
    res = _run_pytest(tmp_path, "--mcdrop-alpha", "2")
    assert res.returncode == 4  # pytest's usage-error exit code
    assert "--mcdrop-alpha must be in the open interval (0, 1)" in res.stderr + res.stdout


def test_explicit_alpha_in_fixture_is_refused(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "def test_a(dropout_audit):\n"
        "    import pytest\n"
        "    with pytest.raises(TypeError, match='suite-wide'):\n"
        "        dropout_audit(lambda x, t: x, p=0.0, alpha=0.1)\n"
    )
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_x.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout


def test_plugin_imports_nothing_heavy():
    code = (
        "import sys, mcdrop.plugin\n"
        "heavy = [m for m in ('numpy', 'numba', 'scipy', 'torch', 'jax', 'keras', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plugin_loads_without_torch(tmp_path):
    # Hide torch (as if not installed): the plugin must load and a numpy audit must run.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
    )
    (tmp_path / "test_y.py").write_text(
        "import numpy as np\n"
        "def test_a(dropout_audit):\n"
        "    import importlib\n"
        "    try:\n"
        "        importlib.import_module('torch')\n"
        "        raise AssertionError('torch should be hidden')\n"
        "    except ImportError:\n"
        "        pass\n"
        "    g = np.random.default_rng(0)\n"
        "    fn = lambda x, t: np.where(g.random(x.shape) < 0.5, 2 * x, 0).astype(x.dtype) if t else x\n"
        "    dropout_audit(fn, p=0.5, shape=(8, 8), calls=100)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(hide))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_y.py"],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def test_budget_is_split_over_the_selected_tests_only(tmp_path):
    # -k keeps test_good and test_good_given: the budget goes to those 2, not to all 4
    res = _run_pytest(tmp_path, "--mcdrop-alpha", "8e-6", "-k", "good")
    assert res.returncode == 0, res.stdout
    assert "suite-wide alpha 8e-06 split over 2 test(s)" in res.stdout, res.stdout
