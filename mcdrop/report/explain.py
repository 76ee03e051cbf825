"""What a failed check's pattern usually means, in plain language.

A failed check says *that* a law does not hold; a reviewer also wants to know
*why*.  Most real dropout bugs leave a recognisable fingerprint in the
estimate/expected ratio of a check (or in a correlation peak), for example

- mean ≈ q·x: the output is not rescaled;
- mean ≈ (q/p)·x: divided by p instead of q;
- keep rate ≈ p: keep and drop swapped;
- correlation of consecutive calls ≈ 1: the same mask every call.

:func:`explain` maps a failed check (the ``CheckResult.to_dict()`` form, as
in every saved result) to one or two such sentences.  It only reads numbers;
it never samples.
"""

from __future__ import annotations

import math

__all__ = ["explain", "mean_patterns"]

#: Relative distance under which an estimate/expected ratio "matches" a pattern.
RTOL = 0.05


def _f(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _ratio(check: dict, *, bias_if_zero: bool = True):
    """(ratio, ratio interval) of estimate to expected, or (None, None)."""
    est, exp = _f(check.get("estimate")), _f(check.get("expected"))
    if est is None:
        return None, None
    ci = check.get("confidence_interval") or {}
    lo, hi = _f(ci.get("low")), _f(ci.get("high"))
    if exp is None or exp == 1.0:
        return est, (lo, hi) if lo is not None and hi is not None else None
    if exp == 0.0:
        if not bias_if_zero:
            return None, None
        # a relative bias (expected 0): the ratio is 1 + bias
        iv = (1 + lo, 1 + hi) if lo is not None and hi is not None else None
        return 1.0 + est, iv
    iv = None
    if lo is not None and hi is not None:
        iv = tuple(sorted((lo / exp, hi / exp)))
    return est / exp, iv


def _matches(r: float, iv, candidates, rtol: float = RTOL):
    """The candidate messages whose value the ratio ``r`` is close to."""
    found = []
    for value, text in candidates:
        if value is None or not math.isfinite(value):
            continue
        if abs(value - 1.0) < 0.02:  # indistinguishable from the correct law
            continue
        if value == 0.0:
            close = abs(r) <= rtol
        else:
            close = abs(r / value - 1.0) <= rtol
        if iv is not None and iv[0] is not None and iv[0] <= value <= iv[1]:
            close = True
        if close:
            dist = abs(r - value) / max(abs(value), 1e-300) if value else abs(r)
            found.append((dist, text))
    found.sort(key=lambda t: t[0])
    out = []
    for _, text in found:
        if text not in out:
            out.append(text)
    return out


def mean_patterns(p: float | None, q: float | None) -> list[tuple[float | None, str]]:
    """The classic mean ratios ``E[y]/x`` and what each means (for ``p``, ``q``)."""
    if p is None or q is None:
        return []
    pats = [
        (q, f"mean ≈ q·x = {q:g}·x: the output is not rescaled (kept values must be "
            f"divided by the keep probability q = 1 - p = {q:g})."),
        (q / p if p else None,
         f"mean ≈ (q/p)·x = {q / p if p else float('nan'):.4g}·x: the kept values were divided "
         f"by p = {p:g} (the drop probability) instead of q = {q:g}, the classic mix-up of the "
         "two conventions."),
        (1.0 / q if q else None,
         f"mean ≈ x/q = {1 / q if q else float('nan'):.4g}·x: rescaled twice (divided by q once "
         "too often), e.g. a layer that already rescales followed by a manual division."),
        (p / q if q else None,
         f"mean ≈ (p/q)·x = {p / q if q else float('nan'):.4g}·x: keep and drop swapped "
         f"(elements kept with probability p = {p:g}), then divided by q."),
        (p, f"mean ≈ p·x = {p:g}·x: keep and drop swapped and not rescaled."),
        (0.0, "mean ≈ 0: (almost) every output is zero; everything is dropped."),
    ]
    return pats


def _explain_mean(check, p, q):
    r, iv = _ratio(check)
    if r is None:
        return None
    name = check.get("name", "")
    # The worst of many elements sits a few standard errors off the pooled
    # value, so a per-element estimate gets a wider match.
    found = _matches(r, iv, mean_patterns(p, q), rtol=2 * RTOL if "element" in name else RTOL)
    if found:
        return " Or: ".join(found[:2])
    pct = 100.0 * (r - 1.0)
    if "element" in name:
        return (f"the worst element's mean is {pct:+.3g}% off while no global scale error "
                "pattern fits: the drop probability or the scale depends on the element's "
                "position or value (e.g. a separate code path for the tail of the tensor, or "
                "dropping that depends on |x|).")
    if abs(pct) < 1.0:
        return (f"the mean is off by {pct:+.3g}%: a small, systematic error, typical of a keep "
                "probability rounded to a coarse grid (e.g. 8-bit random numbers compared "
                "with round(256·p)) or of a scale computed in low precision.")
    direction = "high" if r > 1 else "low"
    return (f"the mean is {abs(pct):.3g}% too {direction}: the scale applied to kept values "
            f"is not 1/q, or elements are kept {'more' if r > 1 else 'less'} often than q.")


def _explain_keep_rate(check, p, q):
    est = _f(check.get("estimate"))
    if est is None:
        return None
    exp = _f(check.get("expected"))
    q = exp if exp is not None else q
    if q is None:
        return None
    ci = check.get("confidence_interval") or {}
    lo, hi = _f(ci.get("low")), _f(ci.get("high"))
    iv = (lo, hi) if lo is not None and hi is not None else None
    p = 1.0 - q if p is None else p
    found = _matches(est / q if q else est, None if iv is None or not q else (iv[0] / q, iv[1] / q), [
        (p / q if q else None,
         f"keep rate ≈ p = {p:g}: keep and drop swapped (the mask keeps with the drop "
         "probability, e.g. `rand < p` where `rand >= p` was meant)."),
        (0.0, "keep rate ≈ 0: nothing is kept; the mask drops everything."),
        (1.0 / q if q else None,
         "keep rate ≈ 1: nothing is dropped; dropout is not active in training mode "
         "(or p is ignored)."),
        (q, f"keep rate ≈ q² = {q * q:g}: two independent masks are applied."),
    ])
    if found:
        return found[0]
    d = est - q
    if "element" in check.get("name", ""):
        return (f"one element's keep rate is {est:.6g} instead of q = {q:g}: the rate depends "
                "on the position (e.g. the tail of the tensor or one row handled by a separate "
                "code path, or a mask index that wraps around).")
    if abs(d) <= 1.0 / 256 + 1e-12:
        return (f"the keep rate is off by {d:+.3g} (less than 1/256): the signature of a "
                "threshold quantised to 8 bits (random bytes compared with round(256·p)) or "
                "of p rounded before use.")
    return (f"elements are kept at rate {est:.6g} instead of q = {q:g}: the probability handed "
            "to the sampler is not 1 - p (check conversions such as keep=p, or a rate given "
            "in percent).")


def _second_moment_ratio(s: float, p: float, q: float, keep: float | None = None) -> float:
    """E[(y - x)²] / (x² p/q) for y = x·m·s, m ~ Bernoulli(keep) (default q)."""
    k = q if keep is None else keep
    return (k * s * s - 2 * k * s + 1) * q / p


def _explain_variance(check, p, q, *, layer: bool):
    r, iv = _ratio(check, bias_if_zero=False)
    if r is None:
        return None
    pats = []
    name = check.get("name", "")
    if p and q and name == "variance":
        # The audit's statistic: the mean of ((y - x)/sd_law)², a second
        # moment about the law's mean, so a scale s gives q (q s² - 2 q s + 1)/p.
        pats = [
            (_second_moment_ratio(1.0, p, q),
             f"variance ratio ≈ {_second_moment_ratio(1.0, p, q):.4g} (what y = x·m gives): the "
             "output is not rescaled."),
            (_second_moment_ratio(1.0 / p, p, q),
             f"variance ratio ≈ {_second_moment_ratio(1.0 / p, p, q):.4g} (what y = x·m/p gives): "
             "divided by p instead of q."),
            (_second_moment_ratio(1.0 / q, p, q, keep=p),
             f"variance ratio ≈ {_second_moment_ratio(1.0 / q, p, q, keep=p):.4g} (what keeping with "
             "probability p gives): keep and drop swapped."),
        ]
    elif p and q:
        # a sample variance (about the sample mean): a scale s gives s² q².
        pats = [
            (q * q, f"variance ≈ q²·(law) = {q * q:.4g}×: the output is not rescaled "
                    "(the variance shrinks with the square of the missing 1/q)."),
            ((q / p) ** 2,
             f"variance ≈ (q/p)²·(law) = {(q / p) ** 2:.4g}×: divided by p instead of q."),
        ]
    pats.append((0.0, "variance ≈ 0: no randomness in the output; the same value every call "
                      "(dropout inactive, or one fixed mask)."))
    found = _matches(r, iv, pats)
    if found:
        return found[0]
    if layer:
        if r > 1:
            return (f"the per-sample layer mean varies {r:.3g}× as much as independent masks "
                    "allow: mask elements are positively correlated within a sample (blocks or "
                    "rows sharing one random draw, or one mask shared across the batch).")
        return (f"the per-sample layer mean varies only {r:.3g}× as much as independent masks "
                "give: elements are negatively correlated, e.g. a sampler that keeps exactly "
                "round(q·n) elements per sample (a random permutation).")
    if r > 1:
        return (f"the output spreads {r:.3g}× more than Bernoulli(q) masks give: an extra "
                "source of noise, or a scale that changes between calls.")
    return (f"the output spreads only {r:.3g}× as much as Bernoulli(q) masks give: masks "
            "repeat across calls, or the number kept is fixed.")


def _explain_dispersion(check):
    d = _f(check.get("estimate"))
    if d is None:
        return None
    if d > 1:
        return (f"keep counts vary {d:.3g}× as much as binomial counts: some elements are "
                "dropped more often than others (a position-dependent rate), or an element's "
                "masks are correlated across samples (e.g. the same mask reused for several "
                "calls).")
    return (f"keep counts vary only {d:.3g}× as much as binomial counts: the sampler balances "
            "the counts (exactly round(q·n) kept per call, or masks that alternate between "
            "calls).")


def _explain_hist(check, keep_count_hist):
    text = ("the number kept per sample is not Binomial(n, q). ")
    if keep_count_hist:
        try:
            counts = [float(c) for c in keep_count_hist["counts"]]
            n, q = int(keep_count_hist["n"]), float(keep_count_hist["q"])
            tot = sum(counts)
            m = sum(k * c for k, c in enumerate(counts)) / tot
            v = sum((k - m) ** 2 * c for k, c in enumerate(counts)) / tot
            ratio = v / (n * q * (1 - q))
            if ratio < 0.5:
                return text + (f"Its spread is only {ratio:.2g}× the binomial one: the sampler "
                               "keeps (nearly) the same number every call, e.g. a random "
                               "permutation of round(q·n) ones.")
            if ratio > 2:
                return text + (f"Its spread is {ratio:.3g}× the binomial one: elements of one "
                               "mask are correlated (blocks, repeated rows, a shared mask).")
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            pass
    return text + ("Too narrow a histogram means the sampler fixes the count per call (e.g. "
                   "a permutation); too wide means correlated elements within one mask.")


def _peak(corr: dict | None):
    """(offset, value, bound) of the largest |correlation| above its bound, or None."""
    if not corr:
        return None
    try:
        offs = [int(o) for o in corr["offsets"]]
        vals = [_f(v) for v in corr["values"]]
        bound = _f(corr.get("bound"))
    except (KeyError, TypeError, ValueError):
        return None
    best = None
    for o, v in zip(offs, vals):
        if v is None:
            continue
        if best is None or abs(v) > abs(best[1]):
            best = (o, v)
    if best is None or (bound is not None and abs(best[1]) <= bound):
        return None
    return best[0], best[1], bound


def _explain_element_independence(autocorrelation, shape):
    pk = _peak(autocorrelation)
    generic = ("the mask is correlated with itself at some memory offset: random bits are used "
               "twice, or a block of the mask is repeated (rows repeated every r rows, one mask "
               "broadcast over the batch axis).")
    if pk is None:
        return generic
    off, val, _ = pk
    sign = "" if val > 0 else "anti-"
    head = f"mask {sign}correlation {val:.3g} at memory offset {off}: "
    if shape and len(shape) >= 2 and off > 0:
        row = int(shape[-1])
        item = 1
        for s in shape[1:]:
            item *= int(s)
        if off == item:
            return head + ("the same mask for every item of the batch (a mask drawn for one item "
                           "and broadcast along the batch axis).")
        if off % row == 0:
            r = off // row
            return head + (f"the mask repeats every {r} row{'s' if r != 1 else ''} of {row} "
                           "elements (a block of random numbers reused, e.g. one random word "
                           "per column for several rows).")
    if val < 0:
        return head + "complementary masks at that distance (m and 1 - m used for two blocks)."
    return head + ("random bits reused at that distance (e.g. one random word split into "
                   "several mask bits, or a generator called with overlapping counters).")


def _explain_call_independence(call_correlation):
    pk = _peak(call_correlation)
    generic = ("masks of successive calls are correlated: the random state is reused between "
               "calls (re-seeded with the same seed, not advanced, or advanced too little).")
    lags = (call_correlation or {}).get("lags")
    if lags:
        lag_pk = _peak({"offsets": lags.get("lags", []), "values": lags.get("values", []),
                        "bound": call_correlation.get("bound")})
        if lag_pk is not None and (pk is None or abs(lag_pk[1]) > abs(pk[1])):
            k, v, _ = lag_pk
            if v > 0.9:
                return (f"masks {k} calls apart are identical (correlation {v:.3g}): the mask "
                        f"repeats every {k} calls (a generator cycling through {k} states, or "
                        f"re-seeded every {k} calls).")
            return (f"masks {k} calls apart are correlated ({v:.3g}): part of the random state "
                    "comes back after that many calls.")
    if pk is None:
        return generic
    off, val, _ = pk
    offs = [int(o) for o in call_correlation["offsets"]]
    same = off == 0 or (off == 1 and 0 not in offs)
    if same and val > 0.9:
        where = "offset 0" if off == 0 else "lag 1"
        return (f"call correlation ≈ {val:.3g} at {where}: the same mask every call (the "
                "generator is re-seeded identically or its state is not advanced between "
                "calls).")
    if same and val < -0.9:
        return (f"call correlation ≈ {val:.3g}: each call's mask is the complement of the "
                "previous one (alternating masks).")
    if val > 0.9:
        return (f"call correlation ≈ {val:.3g} at offset {off}: each call's mask is the previous "
                f"one shifted by {abs(off)} position{'s' if abs(off) != 1 else ''} (a sliding window over one random stream: "
                "the counter or offset advances by less than the mask size per call).")
    return (f"call correlation {val:.3g} at offset {off}: part of the random state is shared "
            "between calls.") + " " + generic.split(": ", 1)[1]


_STATIC = {
    "eval_identity": ("in evaluation mode (training=False) the output differs from x: dropout "
                      "is still active in eval (e.g. a functional call with training=True "
                      "hard-coded), or eval mode rescales the output."),
    "input_unchanged": ("the input array was modified: an in-place dropout (inplace=True, "
                        "or the mask applied with `x *= mask`) changes the caller's data."),
    "shape_dtype": ("the output's shape or dtype differs from the input's (e.g. a float32 "
                    "input returned as float64 by a NumPy mask, or a squeezed axis)."),
    "finite": ("NaN or inf in the output: typically p = 1 dividing by q = 0 (0/0); at p = 1 "
               "every output must be exactly 0."),
    "zero_output": ("at p = 1 every output must be exactly 0 (not NaN): a division by q = 0 "
                    "or a mask that still keeps some elements."),
    "runs": ("the implementation could not be run as the audit calls it: it raised an exception "
             "or returned something that is not an array of the input's shape (the detail says "
             "which call and why); the statistical checks after it could not run."),
    "structure": ("the mask is not constant over the declared unit: channel dropout dropping "
                  "single elements, or dropping along the wrong axis (e.g. Dropout2d on a 3-D "
                  "input treating the batch axis as channels)."),
    "gradient": ("the backward pass does not apply the forward mask and scale: gradients reach "
                 "dropped elements, or are not divided by q."),
    "support": ("outputs other than 0 and x/q: the scale differs from 1/q (even a tiny "
                "difference, e.g. 1/q computed in float16 or from a rounded p, shows here long "
                "before the mean test sees it), or noise other than a mask is applied."),
}


def explain(check: dict, *, p: float | None = None, q: float | None = None, shape=None,
            autocorrelation: dict | None = None, call_correlation: dict | None = None,
            keep_count_hist: dict | None = None) -> str | None:
    """What the pattern of a failed check usually means.

    Parameters
    ----------
    check : dict
        A check as saved (``CheckResult.to_dict()``): at least ``name`` and
        ``verdict``; ``estimate``, ``expected`` and ``confidence_interval``
        are used when present.
    p, q : float, optional
        Drop and keep probability of the run (either may be omitted; the
        other is ``1 - `` it).
    shape : sequence of int, optional
        Shape of the tested tensor (names repeated rows or batch items).
    autocorrelation, call_correlation, keep_count_hist : dict, optional
        The audit's records of the same names (name the correlation peak,
        the width of the keep-count histogram).

    Returns
    -------
    str or None
        One or two plain sentences; ``None`` if the check did not fail.

    Examples
    --------
    >>> explain({"name": "mean_relative", "verdict": "fail", "estimate": 0.7,
    ...          "expected": 1.0}, p=0.3)[:22]
    'Mean ≈ q·x = 0.7·x: th'
    """
    if not isinstance(check, dict) or check.get("verdict") != "fail":
        return None
    if p is None and q is not None:
        p = 1.0 - q
    if q is None and p is not None:
        q = 1.0 - p
    name = str(check.get("name", ""))
    text = None
    if name.startswith("keep_rate"):
        text = _explain_keep_rate(check, p, q)
    elif name.startswith("mean"):
        text = _explain_mean(check, p, q)
    elif name.startswith("layer_variance"):
        text = _explain_variance(check, p, q, layer=True)
    elif name.startswith("variance"):
        text = _explain_variance(check, p, q, layer=False)
    elif name.startswith("keep_count_distribution"):
        text = _explain_hist(check, keep_count_hist)
    elif "dispersion" in name:
        text = _explain_dispersion(check)
    elif name.startswith("element_independence") or name == "autocorrelation":
        text = _explain_element_independence(autocorrelation, shape)
    elif name.startswith("call_independence") or name == "call_correlation":
        text = _explain_call_independence(call_correlation)
    else:
        for key, t in _STATIC.items():
            if name.startswith(key) or key in name:
                text = t
                break
    if text is None:
        text = "the law this check tests does not hold; its detail line says what was seen."
    return text[0].upper() + text[1:] if text[0].islower() else text
