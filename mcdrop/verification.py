"""``mcdrop.verify``: the main job — check inverted dropout's laws on the reference kernels.

With no arguments it

(a) reproduces the seed example: x = [2, 4, 6, 8] with keep probability 0.5;
    per-sample layer means such as y = [4, 0, 12, 0] -> 4 average to 5 =
    mean(x), shown with its confidence band out to 10**8 samples;
(b) sweeps p in {0, 0.1, 0.3, 0.5, 0.7, 0.9} on a larger, mixed-sign input;
(c) runs negative controls — the classic mistakes "no rescaling" and
    "dividing by p instead of q" — which must be detected.

It passes only when every check is as expected: each law holds on the
reference (family-wise false-alarm rate <= ``alpha``, Holm) and each control
fails.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import __version__, laws, stats
from ._validation import check_alpha, check_positive_int, check_seed, check_threads, check_x, resolve_pq
from .results import CheckResult, software_environment
from .rng import child_seed as _child
from .sampling import Simulation, simulate

__all__ = ["verify", "VerifyResult", "VerifySection", "VerifyRow", "SWEEP_P", "sweep_input"]

SEED_X = (2.0, 4.0, 6.0, 8.0)
SEED_KEEP = 0.5
SWEEP_P = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
DEFAULT_SAMPLES = 10**8
DEFAULT_SWEEP_SHAPE = (32, 256)
DEFAULT_SWEEP_SAMPLES = 10**6
CONTROL_P = 0.3
POWER = 0.99


@dataclass(frozen=True)
class VerifyRow:
    """One check of one section, with the verdict it should have."""

    section: str
    check: CheckResult
    expect: str  # "pass" for a law on the reference, "fail" for a negative control

    @property
    def as_expected(self) -> bool:
        return self.check.verdict == self.expect

    def to_dict(self) -> dict:
        d = self.check.to_dict()
        d.update(section=self.section, expect=self.expect, as_expected=self.as_expected)
        return d


class _RowSection:
    """A titled group of :class:`VerifyRow` (shared by :class:`VerifySection` and ``LawSection``)."""

    @property
    def as_expected(self) -> bool:
        return all(r.as_expected for r in self.rows)

    def _record(self, **fields) -> dict:
        """``to_dict()``: name, title and description, then ``fields``, then the verdicts and checks."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            **fields,
            "as_expected": self.as_expected,
            "checks": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class VerifySection(_RowSection):
    """A group of checks on one simulation (and one output scale)."""

    name: str
    title: str
    description: str
    p: float
    q: float
    scale: float
    scale_label: str
    samples: int
    shape: tuple
    simulation: str  # key into VerifyResult.simulations
    control: bool
    detectable_bias: float | None
    rows: tuple

    def to_dict(self) -> dict:
        return self._record(
            p=self.p,
            q=self.q,
            scale=self.scale,
            scale_label=self.scale_label,
            samples=self.samples,
            shape=list(self.shape),
            simulation=self.simulation,
            control=self.control,
            detectable_bias=self.detectable_bias,
        )


class _SectionedResult:
    """A verdict made of sections of :class:`VerifyRow` (laws and negative controls).

    Shared by :class:`VerifyResult` and :class:`mcdrop.law_suite.LawSuiteResult`,
    which have ``passed``, ``alpha`` and ``sections`` (each with ``rows`` and
    ``control``).
    """

    @property
    def rows(self) -> list[VerifyRow]:
        return [r for s in self.sections for r in s.rows]

    @property
    def checks(self) -> list[CheckResult]:
        """Every check (laws and controls), in table order."""
        return [r.check for r in self.rows]

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def n_law_checks(self) -> int:
        return sum(len(s.rows) for s in self.sections if not s.control)

    def _headline(self, name: str) -> list[str]:
        """The summary line and the family-wise bound line of ``__str__``."""
        m = self.n_law_checks
        return [
            f"mcdrop {name}: {'PASS' if self.passed else 'FAIL'} "
            f"({sum(r.as_expected for r in self.rows)}/{len(self.rows)} checks as expected)",
            f"family-wise false-alarm bound alpha = {self.alpha:g} over {m} law checks "
            f"(Holm; intervals at the simultaneous level 1 - alpha/{m}).",
        ]

    def _table(self, section_width: int, check_width: int, *, expected_column: bool) -> str:
        """The verdict table as fixed-width text (``expected_column``: the law's value too)."""
        sw, cw = section_width, check_width
        exp_head = f" {'expected':>13}" if expected_column else ""
        head = (
            f"{'section':<{sw}} {'check':<{cw}} {'estimate':>13}{exp_head} {'interval':>29} "
            f"{'p-value':>9}  {'verdict':<7} {'expected':<8}"
        )
        lines = [head, "-" * len(head)]
        for s in self.sections:
            for r in s.rows:
                c = r.check
                est = "" if c.estimate is None else f"{c.estimate:.8g}"
                exp = "" if c.expected is None else f"{c.expected:.8g}"
                exp = f" {exp:>13}" if expected_column else ""
                ci = "" if c.confidence_interval is None else (
                    f"[{c.confidence_interval.low:.7g}, {c.confidence_interval.high:.7g}]"
                )
                pv = "" if c.pvalue is None else f"{c.pvalue:.2g}"
                mark = "ok" if r.as_expected else "UNEXPECTED"
                lines.append(
                    f"{s.title[:sw]:<{sw}} {c.name[:cw]:<{cw}} {est:>13}{exp} {ci:>29} {pv:>9}  "
                    f"{c.verdict.upper():<7} {r.expect:<8} {mark}"
                )
        return "\n".join(lines)

    def _dump_json(self, path, indent, separators) -> str:
        text = json.dumps(self.to_dict(), indent=indent, separators=separators)
        if path is not None:
            from .report._io import atomic_write_text

            atomic_write_text(path, text)
        return text


@dataclass(frozen=True, eq=False)
class VerifyResult(_SectionedResult):
    """What :func:`verify` found.

    Attributes
    ----------
    passed : bool
        Every law held on the reference and every negative control failed.
    alpha : float
        Family-wise false-alarm bound of the law checks (Holm).
    sections : list of VerifySection
    simulations : dict of str -> Simulation
    """

    passed: bool
    alpha: float
    seed: object
    sections: tuple
    simulations: dict
    elapsed_s: float
    environment: dict = field(default_factory=dict)
    variant: str = "inverted"
    structure: str = "element"

    def table(self) -> str:
        """The verdict table as fixed-width text."""
        return self._table(28, 24, expected_column=False)

    def __str__(self) -> str:
        lines = self._headline("verify")
        for s in self.sections:
            if s.detectable_bias is not None and not s.control:
                lines.append(
                    f"  {s.title}: {s.samples:,} samples x {math.prod(s.shape):,} elements; "
                    f"detects a relative mean bias of {s.detectable_bias:.2g} with power {POWER}"
                )
        lines.append("")
        lines.append(self.table())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "type": "mcdrop.VerifyResult",
            "mcdrop_version": __version__,
            "verdict": self.verdict,
            "passed": self.passed,
            "alpha": self.alpha,
            "power": POWER,
            "seed": None if self.seed is None else str(self.seed),
            "elapsed_s": self.elapsed_s,
            "environment": self.environment,
            "sections": [s.to_dict() for s in self.sections],
            "simulations": {k: v.to_dict() for k, v in self.simulations.items()},
            **(
                {"variant": self.variant, "structure": self.structure}
                if (self.variant, self.structure) != ("inverted", "element")
                else {}
            ),
        }

    def to_json(self, path=None, *, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict`; also written to ``path`` if given.

        Compact by default (no indentation, no spaces after separators): the
        per-element keep counts and exact sums make up most of the text.
        ``mcdrop report`` renders the PDF from it later.
        """
        seps = (",", ":") if indent is None else None
        return self._dump_json(path, indent, seps)

    def to_pdf(self, path, *, timestamp: bool = False) -> None:
        """Write the PDF report (verdict table first, then the plots).

        ``timestamp=True`` adds the rendering date; without it the same
        result always gives the same PDF bytes.
        """
        if (self.variant, self.structure) != ("inverted", "element"):
            from .report.laws_report import render_variant_verify

            return render_variant_verify(self.to_dict(), path, timestamp=timestamp)
        from .report import render_verify

        render_verify(self.to_dict(), path, timestamp=timestamp)


def sweep_input(shape=DEFAULT_SWEEP_SHAPE, seed=None) -> np.ndarray:
    """The sweep's input: nonzero, mixed sign, magnitudes over three decades.

    Values are float32-representable, so a float32 implementation sees the
    same numbers.
    """
    g = np.random.default_rng(check_seed(seed))
    mag = np.exp(g.uniform(np.log(1e-1), np.log(1e2), size=shape))
    sign = np.where(g.random(shape) < 0.5, -1.0, 1.0)
    return (sign * mag).astype(np.float32).astype(np.float64)


def _environment() -> dict:
    import numba

    return {**software_environment(), "cpu_threads": numba.config.NUMBA_NUM_THREADS}


def _verify_iv(x, p, keep, samples, alpha, seed, threads, sweep_samples, sweep_shape):
    x0 = check_x(SEED_X if x is None else x)
    if p is None and keep is None:
        p0, q0 = 1 - SEED_KEEP, SEED_KEEP
    else:
        p0, q0 = resolve_pq(p, keep)
    n0 = DEFAULT_SAMPLES if samples is None else check_positive_int(samples, "samples")
    alpha = check_alpha(alpha)
    ss = check_seed(seed)
    threads = check_threads(threads)
    ns = DEFAULT_SWEEP_SAMPLES if sweep_samples is None else check_positive_int(sweep_samples, "sweep_samples")
    from ._validation import check_shape

    shape = DEFAULT_SWEEP_SHAPE if sweep_shape is None else check_shape(sweep_shape, "sweep_shape")
    return x0, p0, q0, n0, alpha, ss, threads, ns, shape


def verify(
    x=None,
    p=None,
    *,
    keep=None,
    samples: int | None = None,
    alpha: float = 1e-6,
    seed=0,
    threads: int | None = None,
    sweep: bool = True,
    controls: bool = True,
    sweep_samples: int | None = None,
    sweep_shape=None,
    progress: bool = False,
    variant: str = "inverted",
    structure: str = "element",
    weight=None,
) -> VerifyResult:
    """Verify inverted dropout's laws (or another variant's) on the reference kernels.

    Parameters
    ----------
    x : array_like, optional
        Input of the first section (default: the seed example [2, 4, 6, 8]).
    p, keep : float, optional
        Drop probability ``p`` or keep probability ``keep`` (not both) of the
        first section (default keep 0.5).
    samples : int, optional
        Masks drawn in the first section (default 10**8).
    alpha : float, default 1e-6
        Family-wise false-alarm bound of all law checks (Holm).
    seed : int, SeedSequence or None, default 0
        Every section's stream derives from it; same seed, same result.
    threads : int, optional
        Numba threads (results do not depend on it).
    sweep : bool, default True
        Also sweep p over ``SWEEP_P`` on a (32, 256) mixed-sign input.
    controls : bool, default True
        Also run the negative controls (no rescaling; dividing by p).
    sweep_samples : int, optional
        Masks per sweep point (default 10**6).
    sweep_shape : tuple, optional
        Shape of the sweep input (default (32, 256)).
    progress : bool, default False
        Show a progress bar (stderr, TTY only).
    variant : {"inverted", "standard", "gaussian", "alpha", "dropconnect"}, default "inverted"
        The dropout variant whose laws are checked (see :mod:`mcdrop.variants`).
        Anything but the default runs :func:`mcdrop.variant_checks.verify_variant`:
        the same sections (main input, p sweep, negative controls — wrong laws
        such as AlphaDropout with ``b = 0`` or Gaussian variance ``p``) with
        each variant's default inputs.
    structure : {"element", "channel", "sample"}, default "element"
        The independent unit of the mask: per element, per ``(n, c)`` channel
        (``x`` of shape ``(N, C, *spatial)``) or per sample (DropPath, ``x``
        of shape ``(N, *rest)``).
    weight : array_like, optional
        DropConnect only: the ``(out, in)`` weight matrix (give ``x`` too).

    Returns
    -------
    VerifyResult
        ``passed`` is True when every law check passed and every negative
        control was detected.

    Examples
    --------
    >>> import mcdrop
    >>> res = mcdrop.verify(samples=10**6, sweep=False)
    >>> res.passed
    True
    """
    if (variant, structure) != ("inverted", "element") or weight is not None:
        from .variant_checks import verify_variant

        return verify_variant(
            x, p, keep=keep, variant=variant, structure=structure, weight=weight,
            samples=samples, alpha=alpha, seed=seed, threads=threads, sweep=sweep,
            controls=controls, sweep_samples=sweep_samples, sweep_shape=sweep_shape,
            progress=progress,
        )
    x0, p0, q0, n0, alpha, ss, threads, ns, shape = _verify_iv(
        x, p, keep, samples, alpha, seed, threads, sweep_samples, sweep_shape
    )
    t0 = time.perf_counter()
    sims: dict[str, Simulation] = {}
    plans: list[tuple] = []  # (name, title, description, sim key, control, scale, label)

    xs = sweep_input(shape, _child(ss, 1)) if (sweep or controls) else None
    total = n0 * x0.size
    if sweep:
        total += ns * xs.size * len(SWEEP_P)
    elif controls:
        total += ns * xs.size

    from ._progress import make_bar

    bar = make_bar(total=total, desc="verify", unit="draw", enabled=None if progress else False)
    try:
        def run(name, xx, pp, n, child):
            sims[name] = simulate(
                xx, pp, samples=n, seed=_child(ss, child), threads=threads,
                progress=lambda k: bar.update(k * xx.size),
            )

        run("main", x0, p0, n0, 0)
        if sweep:
            for i, pp in enumerate(SWEEP_P):
                run(f"sweep_p{pp:g}", xs, pp, ns, 2 + i)
        elif controls:
            run(f"sweep_p{CONTROL_P:g}", xs, CONTROL_P, ns, 2 + SWEEP_P.index(CONTROL_P))
    finally:
        bar.close()

    is_seed = x is None and p is None and keep is None
    main_title = "seed example" if is_seed else "your input"
    main_desc = (
        f"x = {np.array2string(x0.ravel()[:8], precision=4, separator=', ')}"
        f"{'...' if x0.size > 8 else ''}, p = {p0:g} (keep {q0:g}), {n0:,} samples"
    )
    sections_spec = [("main", main_title, main_desc, "main", False, sims["main"].scale, "1/q")]
    if sweep:
        for pp in SWEEP_P:
            key = f"sweep_p{pp:g}"
            sections_spec.append(
                (key, f"sweep p={pp:g}", f"{shape} mixed-sign input, p = {pp:g}, {ns:,} samples",
                 key, False, sims[key].scale, "1/q")
            )
    if controls:
        if 0 < q0 < 1:
            sections_spec.append(
                ("control_no_rescale_main", f"{main_title}: no rescale",
                 "negative control: y = x*m (forgot 1/q); same masks as above",
                 "main", True, 1.0, "1")
            )
        key = f"sweep_p{CONTROL_P:g}"
        sections_spec.append(
            ("control_no_rescale", f"control p={CONTROL_P:g}: no rescale",
             "negative control: y = x*m (forgot to divide by q)", key, True, 1.0, "1")
        )
        sections_spec.append(
            ("control_divide_by_p", f"control p={CONTROL_P:g}: x/p",
             "negative control: y = x*m/p (divided by the drop probability; "
             "indistinguishable from correct at p = 0.5)", key, True, 1.0 / CONTROL_P, "1/p")
        )

    # Law checks: one Holm family.  Controls: their own family, expected to fail.
    pending = []
    for spec in sections_spec:
        name, _, _, skey, control, scale, _ = spec
        sim = sims[skey]
        if control:
            pcs = laws.law_checks(sim, scale, mask_checks=False)
            # The plain layer mean only has power against a scale error when
            # the inputs are mostly of one sign (mean(x) far from 0); on the
            # mixed-sign sweep input the |x|-weighted mean_relative is the test.
            if abs(float(np.mean(sim.x))) < 0.5 * float(np.mean(np.abs(sim.x))):
                pcs = [pc for pc in pcs if pc.name != "mean_layer"]
            pcs = [pc for pc in pcs if pc.name != "layer_variance"]
        else:
            pcs = laws.law_checks(sim, scale)
        pending.append((name, control, pcs))
    by_name, m_laws = laws.decide_families(pending, alpha)
    sections = []
    for spec in sections_spec:
        name, title, desc, skey, control, scale, label = spec
        checks = by_name[name]
        sim = sims[skey]
        expect = "fail" if control else "pass"
        db = None
        if not control and 0 < sim.q:
            db = stats.detectable_bias(
                sim.p, samples=sim.samples * sim.n, alpha=alpha / max(m_laws, 1), power=POWER
            ) if sim.q < 1 else 0.0
        sections.append(
            VerifySection(
                name=name, title=title, description=desc, p=sim.p, q=sim.q, scale=scale,
                scale_label=label, samples=sim.samples, shape=tuple(sim.x.shape),
                simulation=skey, control=control, detectable_bias=db,
                rows=tuple(VerifyRow(title, c, expect) for c in checks),
            )
        )

    passed = all(s.as_expected for s in sections)
    return VerifyResult(
        passed=passed,
        alpha=alpha,
        seed=seed if not isinstance(seed, np.random.SeedSequence) else ss.entropy,
        sections=tuple(sections),
        simulations=sims,
        elapsed_s=time.perf_counter() - t0,
        environment=_environment(),
    )
