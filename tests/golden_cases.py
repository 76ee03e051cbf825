"""Golden outputs: seeded JSON of verify, ``verify --all`` and audits, pinned byte for byte.

Each case is a zero-argument function returning a result with ``to_json()``;
its JSON, with the fields that depend on the machine or the clock removed
(:data:`VOLATILE`), is stored xz-compressed in ``tests/golden/<case>.json.xz``.
``tests/test_golden.py`` recomputes every case and compares values *and key
order* (the JSON layout is public).

Regenerate on purpose only, and say which numbers changed and why::

    .venv/bin/python tests/golden_cases.py --diff            # what would change
    .venv/bin/python tests/golden_cases.py --write [CASE..]  # store new outputs
"""

from __future__ import annotations

import argparse
import lzma
import json
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).with_name("golden")

#: Keys whose values depend on the clock, the thread count or the machine.
VOLATILE = frozenset({"elapsed_s", "environment", "threads"})

P = 0.3


def _verify_default():
    import mcdrop

    return mcdrop.verify(seed=0)


def _suite(name):
    def run():
        from mcdrop.suites.registry import run_one

        return run_one(name, seed=0)

    return run


def _variant(variant, structure):
    def run():
        import mcdrop

        shape = {"channel": (4, 4, 2, 2)}.get(structure, (8, 16))
        return mcdrop.verify(variant=variant, structure=structure, seed=0, samples=2 * 10**4,
                             sweep_samples=5 * 10**3, sweep_shape=shape)

    return run


def _reference_audit(p, variant, structure, shape, calls):
    def run():
        import mcdrop
        from mcdrop.adapters import numpy_reference

        fn = numpy_reference(p, variant=variant, structure=structure, seed=7)
        return mcdrop.audit(fn, shape=shape, calls=calls, seed=0)

    return run


def _mutant_audit(name):
    def run():
        import mutants

        import mcdrop

        for label, factory, kwargs, _ in mutants.MUTANTS:
            if label.split(" ")[0] == name:
                kw = dict(kwargs)
                kw.setdefault("calls", 400)
                return mcdrop.audit(factory(11), **kw)
        raise KeyError(name)

    return run


def _cases() -> dict:
    cases = {"verify_default": _verify_default}
    for name in ("seed_example", "p_sweep", "variants", "regularization", "inference_gap"):
        cases[f"verify_all_{name}"] = _suite(name)
    for v in ("inverted", "standard", "gaussian", "alpha"):
        for s in ("element", "channel", "sample"):
            if (v, s) != ("inverted", "element"):
                cases[f"variant_{v}_{s}"] = _variant(v, s)
    cases["variant_dropconnect_element"] = _variant("dropconnect", "element")
    cases["audit_reference_default"] = _reference_audit(P, "inverted", "element", None, None)
    for p in (0.0, 0.1, 0.9, 1.0):
        cases[f"audit_reference_p{p:g}"] = _reference_audit(p, "inverted", "element", (16, 32), 300)
    for v in ("inverted", "alpha", "gaussian"):
        for s in ("element", "channel", "sample"):
            cases[f"audit_reference_{v}_{s}"] = _reference_audit(P, v, s, (8, 6, 4, 4), 300)
    import mutants

    for label, *_ in mutants.MUTANTS:
        name = label.split(" ")[0].replace("/", "_")
        cases[f"audit_mutant_{name}"] = _mutant_audit(label.split(" ")[0])
    return cases


def strip(obj):
    """``obj`` without the :data:`VOLATILE` keys (recursively)."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def compute(name: str):
    return strip(json.loads(_cases()[name]().to_json()))


def path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json.xz"


def load(name: str):
    with lzma.open(path(name), "rt", encoding="utf-8") as f:
        return json.load(f)


def store(name: str, obj) -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    data = json.dumps(obj, separators=(",", ":")).encode()
    path(name).write_bytes(lzma.compress(data, preset=9))


def differences(old, new, where: str = "$", out=None, limit: int = 40) -> list[str]:
    """Paths where ``old`` and ``new`` differ in value, type or key order (at most ``limit``)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(old, dict) and isinstance(new, dict):
        if list(old) != list(new):
            out.append(f"{where}: keys {list(old)} -> {list(new)}")
        for k in old:
            if k in new:
                differences(old[k], new[k], f"{where}.{k}", out, limit)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(f"{where}: length {len(old)} -> {len(new)}")
        for i, (a, b) in enumerate(zip(old, new)):
            differences(a, b, f"{where}[{i}]", out, limit)
    elif type(old) is not type(new) or (old != new and not (old != old and new != new)):  # NaN == NaN
        out.append(f"{where}: {old!r:.120} -> {new!r:.120}")
    return out


def summarise(old, new, out=None, where="$", check=None):
    """Differences grouped by (check name, field): ``{key: [count, max relative change, example]}``."""
    out = {} if out is None else out
    if isinstance(old, dict) and isinstance(new, dict):
        check = old.get("name", check) if "verdict" in old else check
        if list(old) != list(new):
            key = (check, where.rsplit(".", 1)[-1] + ":keys")
            out.setdefault(key, [0, 0.0, f"{sorted(set(old) ^ set(new))}"])[0] += 1
        for k in old:
            if k in new:
                summarise(old[k], new[k], out, f"{where}.{k}", check)
    elif isinstance(old, list) and isinstance(new, list):
        named = all(isinstance(v, dict) and "name" in v for v in old + new)
        if named:  # sections and checks: align by name, not position
            old_n, new_n = {v["name"]: v for v in old}, {v["name"]: v for v in new}
            if list(old_n) != list(new_n):
                ex = f"{sorted(set(old_n) ^ set(new_n))}" if set(old_n) != set(new_n) else "order"
                out.setdefault((check, where.rsplit(".", 1)[-1] + ":names"), [0, 0.0, ex])[0] += 1
            pairs = [(old_n[k], new_n[k]) for k in old_n if k in new_n]
        else:
            if len(old) != len(new):
                out.setdefault((check, where.rsplit(".", 1)[-1] + ":len"), [0, 0.0, f"{len(old)} -> {len(new)}"])[0] += 1
            pairs = list(zip(old, new))
        for a, b in pairs:
            summarise(a, b, out, where, check)
    elif differences(old, new):
        key = (check, where.rsplit(".", 1)[-1])
        rec = out.setdefault(key, [0, 0.0, f"{old!r:.60} -> {new!r:.60}"])
        rec[0] += 1
        if isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
            rel = abs(new - old) / max(abs(old), abs(new), 1e-300)
            rec[1] = max(rec[1], rel)
        else:
            rec[1] = float("nan")
    return out


CASES = tuple(_cases())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="store the outputs as the new golden files")
    ap.add_argument("--diff", action="store_true", help="print what differs from the stored files")
    ap.add_argument("--summary", action="store_true",
                    help="group the differences by check and field, with the largest relative change")
    ap.add_argument("cases", nargs="*", help=f"cases (default: all {len(CASES)})")
    args = ap.parse_args(argv)
    names = args.cases or list(CASES)
    changed = 0
    for name in names:
        new = compute(name)
        if args.summary:
            groups = summarise(load(name), new)
            changed += bool(groups)
            print(f"{name}: {'identical' if not groups else f'{len(groups)} changed (check, field) group(s)'}")
            for (chk, field), (n, rel, ex) in sorted(groups.items(), key=lambda t: (str(t[0][0]), t[0][1])):
                print(f"    {str(chk):<28} {field:<22} x{n:<5} max rel {rel:.2g}   e.g. {ex}")
            continue
        if args.diff or not args.write:
            d = differences(load(name), new) if path(name).exists() else ["(no golden file)"]
            changed += bool(d)
            print(f"{name}: {'identical' if not d else f'{len(d)} difference(s)'}")
            for line in d:
                print(f"    {line}")
        if args.write:
            store(name, new)
            print(f"{name}: written")
    return 1 if changed and not args.write else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
