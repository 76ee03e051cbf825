"""pytest plugin for dropout audits (registered under the ``pytest11`` entry point).

It adds

* the ``dropout_audit`` fixture: ``dropout_audit(fn, p=..., **audit_options)``
  runs :func:`mcdrop.testing.assert_dropout` with this test's share of the
  suite-wide false-alarm budget, and returns the audit report;
* the ``--mcdrop-alpha`` option (ini: ``mcdrop_alpha``, default 1e-6): the
  suite-wide budget.  It is split equally over the tests that use the
  fixture (known after collection); inside a test, ``examples=k`` divides the
  test's share over ``k`` Hypothesis examples (``dropout_audit.per_example``);
* ``pytest_assertrepr_compare`` for mcdrop results, so ``assert report ==
  "pass"`` explains itself (failed checks, estimate, interval, p-value);
* a terminal-summary line: how many audits ran and the alpha each got.

By the union bound a correct dropout fails the whole suite with probability
at most the suite-wide alpha.  The module imports nothing heavy at load time
(mcdrop itself, numpy and frameworks are imported only when an audit runs).
"""

from __future__ import annotations

import pytest

__all__ = [
    "DropoutAuditor",
    "dropout_audit",
    "pytest_addoption",
    "pytest_configure",
    "pytest_collection_modifyitems",
    "pytest_runtest_setup",
    "pytest_assertrepr_compare",
    "pytest_terminal_summary",
]

DEFAULT_ALPHA = 1e-6


class _Budget:
    def __init__(self, alpha: float):
        self.alpha = alpha
        self.n_tests = 1
        self.current = "?"  # node id of the running test
        self.records: list[tuple[str, float, str]] = []


def _parse_alpha(value, source: str) -> float:
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{source} must be a number in (0, 1); got {value!r}.") from None
    if not 0.0 < a < 1.0:
        raise pytest.UsageError(f"{source} must be in the open interval (0, 1); got {value!r}.")
    return a


def pytest_addoption(parser):
    group = parser.getgroup("mcdrop", "dropout audits (mcdrop)")
    group.addoption(
        "--mcdrop-alpha",
        action="store",
        default=None,
        metavar="ALPHA",
        help="suite-wide false-alarm budget of all dropout audits, split over the tests "
        f"that use the dropout_audit fixture (default {DEFAULT_ALPHA:g}, or ini mcdrop_alpha)",
    )
    parser.addini("mcdrop_alpha", "suite-wide false-alarm budget of dropout audits", default=str(DEFAULT_ALPHA))


def pytest_configure(config):
    opt = config.getoption("--mcdrop-alpha")
    alpha = (
        _parse_alpha(opt, "--mcdrop-alpha")
        if opt is not None
        else _parse_alpha(config.getini("mcdrop_alpha"), "ini option mcdrop_alpha")
    )
    config._mcdrop_budget = _Budget(alpha)


@pytest.hookimpl(trylast=True)  # after -k/-m and other plugins have deselected tests
def pytest_collection_modifyitems(session, config, items):
    n = sum(1 for item in items if "dropout_audit" in getattr(item, "fixturenames", ()))
    config._mcdrop_budget.n_tests = max(n, 1)


def pytest_runtest_setup(item):
    budget = getattr(item.config, "_mcdrop_budget", None)
    if budget is not None:
        budget.current = item.nodeid


class DropoutAuditor:
    """The object the ``dropout_audit`` fixture provides.

    Attributes
    ----------
    alpha : float
        This test's share of the suite-wide budget.
    """

    def __init__(self, budget: _Budget):
        self._budget = budget

    @property
    def alpha(self) -> float:
        return self._budget.alpha / self._budget.n_tests

    def per_example(self, max_examples: int) -> float:
        """The alpha of one of ``max_examples`` Hypothesis examples in this test."""
        from mcdrop.testing import alpha_per_example

        return alpha_per_example(self.alpha, max_examples)

    def __call__(self, fn, p=None, *, keep=None, examples: int = 1, **audit_options):
        """Audit ``fn``; raise AssertionError on a failed check; return the report.

        ``examples`` is the number of audits this test runs (e.g. Hypothesis'
        ``max_examples``); each gets ``alpha / examples``.  Passing ``alpha``
        explicitly is refused: the budget comes from the suite.
        """
        from mcdrop.testing import assert_dropout

        if "alpha" in audit_options:
            raise TypeError(
                "`alpha` is set by the suite-wide budget (--mcdrop-alpha); pass `examples=` "
                "to split it over several audits instead."
            )
        alpha = self.per_example(examples)
        verdict = "error"
        try:
            report = assert_dropout(fn, p, keep=keep, alpha=alpha, **audit_options)
            verdict = report.verdict
            return report
        except AssertionError:
            verdict = "fail"
            raise
        finally:
            self._budget.records.append((self._budget.current, alpha, verdict))


@pytest.fixture(scope="session")
def dropout_audit(request) -> DropoutAuditor:
    """Run a dropout audit with this test's share of the suite-wide alpha.

    Session-scoped (it holds no per-test state), so it can be used inside
    Hypothesis ``@given`` tests without the function-scoped-fixture health
    check; the running test is tracked by the plugin.
    """
    return DropoutAuditor(request.config._mcdrop_budget)


def _is_mcdrop_result(obj) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("mcdrop.") and (hasattr(obj, "checks") or hasattr(obj, "verdict"))


def pytest_assertrepr_compare(config, op, left, right):
    for obj in (left, right):
        if _is_mcdrop_result(obj):
            name = type(obj).__name__
            verdict = getattr(obj, "verdict", "?")
            lines = [f"mcdrop {name} with verdict {str(verdict).upper()!r} {op} {right if obj is left else left!r}"]
            text = str(obj)
            if hasattr(obj, "checks"):
                failed = [c for c in obj.checks if c.verdict == "fail"]
                if failed:
                    lines.append("failed checks:")
                    for c in failed:
                        lines += ["  " + ln for ln in str(c).splitlines()]
                lines.append("report:")
            lines += ["  " + ln for ln in text.splitlines()]
            return lines
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    budget = getattr(config, "_mcdrop_budget", None)
    if budget is None or not budget.records:
        return
    tests = {nodeid for nodeid, _, _ in budget.records}
    alphas = sorted({a for _, a, _ in budget.records})
    fails = sum(1 for _, _, v in budget.records if v == "fail")
    span = f"{alphas[0]:.3g}" if len(alphas) == 1 else f"{alphas[0]:.3g}..{alphas[-1]:.3g}"
    terminalreporter.write_sep("-", "mcdrop dropout audits")
    terminalreporter.write_line(
        f"mcdrop: {len(budget.records)} dropout audit(s) in {len(tests)} test(s), {fails} failed; "
        f"suite-wide alpha {budget.alpha:g} split over {budget.n_tests} test(s); "
        f"alpha per audit {span}"
    )
