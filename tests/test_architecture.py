"""The package's layering and public surface, enforced (see docs/architecture.md).

* ``lint-imports`` keeps the import-linter contracts of ``pyproject.toml``:
  imports flow down the layers, suites never import each other, laws import
  no numba or scipy, the kernel layer no scipy, statistics no numba.
* The layers in ``docs/architecture.md`` are the contract's layers, in order.
* Every public module's ``__all__`` names exactly what it exports (in the
  style of hypothesis' ``strategies/__init__``).
* No ``_private`` name crosses a module boundary; no module exceeds 700 lines.
"""

import ast
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mcdrop

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mcdrop"


def _layers():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in cfg["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return contract["layers"]


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" not in r.stdout.lower().replace("0 broken", "")


def test_the_architecture_doc_lists_the_contract_layers_in_order():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    block = doc.split("```text", 1)[1].split("```", 1)[0]
    # every diagram line starts with the layer's modules, as `mcdrop.x` paths or names
    order = []
    for line in block.splitlines():
        m = re.match(r"\s*([a-z_/|. ]+?)\s{2,}", line + "  ")
        if m and m.group(1).strip():
            order.append(m.group(1).strip())
    want = [" | ".join(p.strip().removeprefix("mcdrop.") for p in layer.split("|")) for layer in _layers()]
    got = [" | ".join(p.strip().rstrip("/").removesuffix(".py") for p in row.split("|")) for row in order]
    assert got == want, f"docs/architecture.md diagram {got} != pyproject layers {want}"


def _public_modules():
    for info in pkgutil.walk_packages(mcdrop.__path__, "mcdrop."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")[1:]) or name == "mcdrop.cli.__main__":
            continue
        yield name


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_all_names_exactly_the_public_exports(name):
    mod = importlib.import_module(name)
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    assert len(set(mod.__all__)) == len(mod.__all__), f"{name}.__all__ repeats a name"
    defined = {
        n for n, v in vars(mod).items()
        if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
        and getattr(v, "__module__", None) == name
    }
    if hasattr(mod, "__path__"):  # a package: what it re-exports from its modules
        defined |= {
            n for n, v in vars(mod).items()
            if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"
            and (inspect.isfunction(v) or inspect.isclass(v)) and str(getattr(v, "__module__", "")).startswith(name)
        }
    unlisted = sorted(defined - set(mod.__all__))
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"


def test_the_public_surface_stays():
    import mcdrop.stats

    assert mcdrop.__all__ == sorted([
        "AuditReport", "CheckResult", "ConfidenceInterval", "LayerMean", "LowPowerWarning", "McdropWarning",
        "ModelAuditReport", "Simulation", "VerifyResult", "audit", "audit_model", "audit_relation",
        "detectable_bias", "plan", "power_curve", "simulate", "verify"])
    assert mcdrop.stats.__all__ == [
        "clopper_pearson", "wilson_interval", "keep_rate_test", "mean_test", "variance_test",
        "two_point_moments", "support_test", "equivalence_test", "three_zone_verdict", "holm",
        "dispersion_test", "plan", "detectable_bias", "KeepRateTestResult", "MeanTestResult",
        "VarianceTestResult", "SupportTestResult", "EquivalenceTestResult", "HolmResult",
        "DispersionTestResult", "PlanResult"]
    for name in mcdrop.__all__:
        assert getattr(mcdrop, name) is not None
    # first-wave module attributes still resolve
    assert mcdrop.rng.philox4x32 and mcdrop.variants.variant_law and mcdrop.laws.variant_law


def _modules():
    return sorted(PKG.rglob("*.py"))


def test_no_private_name_crosses_a_module_boundary_and_no_module_is_too_long():
    crossings, long = [], []
    for f in _modules():
        text = f.read_text()
        if text.count("\n") > 700:
            long.append(f"{f.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mcdrop")):
                for a in node.names:
                    sub = f.parent / (a.name + ".py")
                    if a.name.startswith("_") and not a.name.startswith("__") and not sub.exists() \
                            and not (f.parent / a.name).is_dir():
                        crossings.append(f"{f.relative_to(ROOT)}: {a.name}")
    assert not crossings, crossings
    assert not long, long
