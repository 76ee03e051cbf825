"""Behaviour pinned by golden outputs (see ``tests/golden_cases.py``).

Every case is seeded and deterministic: its JSON (minus clock, thread and
machine fields) must equal the stored file exactly — values, types and key
order.  A deliberate change regenerates the file and names the change in
the closing note of the issue that made it.
"""

import pytest

import golden_cases


@pytest.mark.parametrize("name", golden_cases.CASES)
def test_golden(name):
    stored = golden_cases.load(name)
    diffs = golden_cases.differences(stored, golden_cases.compute(name))
    assert not diffs, f"{name} differs from tests/golden/{name}.json.xz:\n" + "\n".join(diffs)


def test_differences_sees_values_types_and_key_order():
    # the comparison itself must be able to fail
    assert golden_cases.differences({"a": 1, "b": [1.0]}, {"a": 1, "b": [1.0]}) == []
    assert golden_cases.differences({"a": 1.0}, {"a": 1.0000000000000002})
    assert golden_cases.differences({"a": 1}, {"a": 1.0})
    assert golden_cases.differences({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert golden_cases.differences({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert golden_cases.differences({"a": float("nan")}, {"a": float("nan")}) == []
    assert golden_cases.differences({"a": float("nan")}, {"a": 1.0})
    assert golden_cases.strip({"x": 1, "elapsed_s": 2, "info": {"threads": 2}}) == {"x": 1, "info": {}}
