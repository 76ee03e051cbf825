"""The law battery of a reference run, and the negative controls that must fail.

:func:`law_checks` runs every check of a law on a
:class:`~mcdrop.sampling.Simulation`; :func:`controls` lists, for a run, the
deliberately wrong laws of its variant.  A control is the same law with one
wrong parameter, on one of two sides:

``"implementation"``
    the outputs an implementation with the wrong parameter would give on
    the *same draws* (:meth:`~mcdrop.sampling.Simulation.with_law`), judged
    against the correct law — the classic mistakes "forgot the 1/q" and
    "divided by p instead of q";
``"claim"``
    the correct outputs judged against the wrong law — where the wrong
    parameter changes what independent draws give (the unit structure,
    DropConnect's per-weight masks), so no single set of draws can show it.

Either way the checks that the wrong parameter affects must fail, which
shows that each of them can fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..laws import DropoutLaw
from ..sampling import Simulation
from .masks import check_dispersion, check_keep_count_distribution, check_keep_rate, check_keep_rate_per_unit
from .moments import (
    check_layer_variance,
    check_mean_layer,
    check_mean_per_output,
    check_mean_relative,
    check_second_moment,
    check_variance_per_output,
)
from .outputs import (
    check_noise_ks,
    check_noise_moments,
    check_sign_flip_rate,
    check_support,
    check_unit_coherence,
    check_zero_output,
    materialised,
)
from .pending import PendingCheck
from .views import unit_name

__all__ = ["Control", "law_checks", "keep_count_checks", "controls", "control_checks"]


def keep_count_checks(sim: Simulation) -> list[PendingCheck]:
    """The checks of the mask alone, on the independent units (elements, channels, samples or weights)."""
    unit = unit_name(sim)
    k = sim.keep_counts
    return [
        check_keep_rate(int(k.sum()), sim.samples * k.size, sim.q, what="draws kept"),
        check_keep_rate_per_unit(k, sim.samples, sim.q, unit),
        check_keep_count_distribution(sim.keep_count_hist, k.size, sim.q, sim.samples),
        check_dispersion(f"{unit}_dispersion", sim.keep_count_hist, k, sim.samples, sim.q),
    ]


def law_checks(sim: Simulation, law: DropoutLaw | None = None, *, mask_checks: bool = True,
               only=None) -> list[PendingCheck]:
    """All checks of ``law`` (default: the law ``sim`` sampled) on ``sim``.

    ``mask_checks=False`` leaves out the keep-count checks (negative
    controls share the reference masks); ``only`` keeps just the named checks.
    """
    law = sim.sampled_law if law is None else law
    out: list[PendingCheck] = []
    if sim.variant != "gaussian" and mask_checks:
        out += keep_count_checks(sim)
    mat = materialised(sim)
    if sim.q == 0.0:
        out.append(check_zero_output(sim, law, mat))
    elif sim.p == 0.0:
        # p = 0: every variant is the identity (DropConnect: W x); y is
        # deterministic, so the per-output check is exact and pooled float
        # summaries would only add rounding.
        out += [check_mean_per_output(sim, law), check_support(sim, law, mat)]
        if sim.structure != "element":
            out.append(check_unit_coherence(sim, law, mat))
    else:
        out += [check_mean_layer(sim, law)]
        mr = check_mean_relative(sim, law)
        if mr is not None:
            out.append(mr)
        out += [check_mean_per_output(sim, law), check_support(sim, law, mat),
                check_variance_per_output(sim, law)]
        if sim.n_outputs > 1:
            out.append(check_layer_variance(sim, law))
        if sim.structure != "element":
            out.append(check_unit_coherence(sim, law, mat))
        if sim.variant == "gaussian":
            out.append(check_sign_flip_rate(sim, law, mat))
            out += check_noise_moments(sim, law)
            out.append(check_noise_ks(sim, law, mat))
        if sim.variant == "alpha":
            out.append(check_second_moment(sim, law))
    if only is not None:
        out = [pc for pc in out if pc.name in only]
    return out


@dataclass(frozen=True)
class Control:
    """A negative control: a wrong law, the side it is wrong on, and the checks it must fail.

    Attributes
    ----------
    key, title : str
        Section key suffix and short title (e.g. ``"no_rescale"``, ``"no rescale"``).
    description : str
        One sentence for the report.
    law : DropoutLaw
        The correct law with one parameter wrong.
    side : {"implementation", "claim"}
        See the module docstring.
    checks : frozenset of str
        The checks the wrong parameter affects; each must fail.
    """

    key: str
    title: str
    description: str
    law: DropoutLaw
    side: str
    checks: frozenset


def _mixed_sign(sim: Simulation) -> bool:
    # The plain layer mean only has power against a scale error when the
    # inputs are mostly of one sign (mean(x) far from 0); on a mixed-sign
    # input the |x|-weighted mean_relative is the test.
    return abs(float(np.mean(sim.x))) < 0.5 * float(np.mean(np.abs(sim.x)))


def controls(sim: Simulation) -> list[Control]:
    """The negative controls of ``sim``'s law (an empty list where none applies)."""
    law = sim.sampled_law
    q, p = law.q, law.p
    mixed = _mixed_sign(sim)
    out = []
    if law.variant == "inverted" and law.structure == "element" and 0 < q < 1:
        names = {"mean_relative", "mean_per_element", "support", "variance_per_element"}
        if not mixed:
            names.add("mean_layer")
        out.append(Control(
            "no_rescale", "no rescale", "negative control: y = x*m (forgot to divide by q)",
            law.replace(scale=1.0, label="inverted dropout without the 1/q (wrong)"),
            "implementation", frozenset(names)))
        if p != q:
            out.append(Control(
                "divide_by_p", "x/p", "negative control: y = x*m/p (divided by the drop probability; "
                "indistinguishable from correct at p = 0.5)",
                law.replace(scale=1.0 / p, label="inverted dropout divided by p (wrong)"),
                "implementation", frozenset(names)))
    elif law.variant == "standard":
        names = {"mean_relative", "mean_per_element", "support", "variance_per_element"}
        if not mixed:
            names.add("mean_layer")
        out.append(Control(
            "inverted_law", "E[y]=x", "negative control: the inverted law E[y] = x (forgot the "
            "test-time scaling by q) on standard dropout",
            law.replace(scale=1.0 / q, eval_scale=1.0, label="inverted law on standard dropout (wrong)"),
            "claim", frozenset(names)))
    elif law.variant == "gaussian":
        out.append(Control(
            "variance_p", "Var=p", "negative control: Gaussian dropout with noise variance p instead of p/q",
            law.replace(noise_var=p, label="Gaussian dropout, variance p (wrong)"), "claim",
            frozenset({"variance_per_element", "layer_variance", "noise_kurtosis", "noise_ks",
                       "sign_flip_rate"})))
    elif law.variant == "alpha":
        out.append(Control(
            "b_zero", "b=0", "negative control: AlphaDropout with b = 0 (no shift back to mean 0)",
            law.replace(b=0.0, label="AlphaDropout, b = 0 (wrong)"), "claim",
            frozenset({"mean_layer", "mean_per_element", "support", "second_moment"})))
    elif law.variant == "dropconnect":
        out.append(Control(
            "input_mask", "in-mask", "negative control: the law of dropout on the layer's inputs (one "
            "mask per input shared by all outputs) claimed for DropConnect",
            law.replace(input_mask=True, label="input dropout's law for DropConnect (wrong)"), "claim",
            frozenset({"layer_variance"})))
    if law.structure != "element":
        out.append(Control(
            "elementwise", "elemwise", f"negative control: element-wise independence claimed for "
            f"{law.structure} masks",
            law.replace(structure="element", label=f"element-wise law on {law.structure} masks (wrong)"),
            "claim", frozenset({"layer_variance"})))
    return out


def control_checks(sim: Simulation, control: Control) -> list[PendingCheck]:
    """The checks of ``control`` on ``sim`` (no mask checks: the draws are the reference's)."""
    if control.side == "implementation":
        return law_checks(sim.with_law(control.law), sim.sampled_law, mask_checks=False, only=control.checks)
    return law_checks(sim, control.law, mask_checks=False, only=control.checks)
