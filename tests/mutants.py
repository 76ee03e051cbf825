"""Buggy dropout implementations modelled on real bug reports (the audit's mutation suite).

Each mutant is ``(name, factory, audit_kwargs, killer)``: ``factory(seed)``
returns ``fn(x, training)``; ``killer`` is the check that must fail.  Every
mutant owns a seeded Generator, so the suite is deterministic.
"""

from __future__ import annotations

import math

import numpy as np

P = 0.3
Q = 1.0 - P


def _gen(seed):
    return np.random.default_rng(np.random.SeedSequence(seed))


def correct(p=P, seed=0):
    g = _gen(seed)
    q = 1.0 - p

    def fn(x, training):
        if not training or p == 0:
            return x.copy()
        if p == 1:
            return np.zeros_like(x)
        return np.where(g.random(x.shape) < q, x / q, 0).astype(x.dtype)

    return fn


def no_rescale(seed):
    """Forgot the 1/q (the classic "no scaling at training")."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < Q, x, 0).astype(x.dtype) if t else x


def divide_by_p(seed):
    """Divides by the drop probability instead of the keep one (NVIDIA apex#816)."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < Q, x / P, 0).astype(x.dtype) if t else x


def keep_drop_swapped(seed):
    """Keeps with probability p instead of q (google-research electra#61)."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < P, x / Q, 0).astype(x.dtype) if t else x


def rate_quantized(seed):
    """Keep decision from an 8-bit threshold: the rate is off by the 1/256 rounding."""
    g = _gen(seed)
    thr = math.floor(Q * 256)  # 179/256 = 0.69921875 instead of 0.7

    def fn(x, t):
        if not t:
            return x
        u8 = g.integers(0, 256, size=x.shape)
        return np.where(u8 < thr, x / Q, 0).astype(x.dtype)

    return fn


def same_mask_every_call(seed):
    """Re-seeds its generator on every call (pytorch#84614): one mask forever."""

    def fn(x, t):
        if not t:
            return x
        g = _gen(seed)
        return np.where(g.random(x.shape) < Q, x / Q, 0).astype(x.dtype)

    return fn


def p0_still_drops(seed):
    """p = 0 still drops: a saturating 8-bit threshold (cf. pytorch#15356)."""
    g = _gen(seed)
    thr = min(255, round(1.0 * 256))  # q = 1 -> threshold 256 saturates at 255

    def fn(x, t):
        if not t:
            return x
        u8 = g.integers(0, 256, size=x.shape)
        return np.where(u8 < thr, x, 0).astype(x.dtype)

    return fn


def p1_nan(seed):
    """p = 1 returns NaN: x * mask / (1 - p) = 0 * inf (flax#2055)."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        keep = g.random(x.shape) < 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return (x * keep / np.float32(0.0)).astype(x.dtype)

    return fn


def active_in_eval(seed):
    """Ignores the training flag: drops in evaluation mode too (pytorch#124464)."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < Q, x / Q, 0).astype(x.dtype)


def dropout2d_wrong_unit(seed):
    """Dropout2d on (N, C, L) drops whole samples instead of (n, c) channels (pytorch#69801)."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        keep = g.random((x.shape[0],) + (1,) * (x.ndim - 1)) < Q
        return np.where(keep, x / Q, 0).astype(x.dtype)

    return fn


def channel_as_element(seed):
    """Declared channel dropout, but each element gets its own draw."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < Q, x / Q, 0).astype(x.dtype) if t else x


def row_block_repeat(seed):
    """A 32-row mask block tiled down the batch: rows 32 apart share their mask."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        block = g.random((32,) + x.shape[1:]) < Q
        keep = np.tile(block, (x.shape[0] // 32,) + (1,) * (x.ndim - 1))
        return np.where(keep, x / Q, 0).astype(x.dtype)

    return fn


def batch_shared_mask(seed):
    """One mask row broadcast over the batch axis."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        keep = g.random((1,) + x.shape[1:]) < Q
        return np.where(keep, x / Q, 0).astype(x.dtype)

    return fn


def bits_used_twice(seed):
    """Each random number decides two neighbouring elements."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        half = g.random(x.size // 2) < Q
        keep = np.repeat(half, 2).reshape(x.shape)
        return np.where(keep, x / Q, 0).astype(x.dtype)

    return fn


def shifted_mask(seed):
    """Each call's mask is the previous one shifted by 3 positions."""
    g = _gen(seed)
    state = {}

    def fn(x, t):
        if not t:
            return x
        if "m" not in state:
            state["m"] = g.random(x.size) < Q
        else:
            state["m"] = np.roll(state["m"], 3)
            state["m"][:3] = g.random(3) < Q
        return np.where(state["m"].reshape(x.shape), x / Q, 0).astype(x.dtype)

    return fn


def alternating_mask(seed):
    """Calls alternate between two masks (a generator state restored every other call)."""
    g = _gen(seed)
    state = {"i": 0}

    def fn(x, t):
        if not t:
            return x
        if state["i"] % 2 == 0:
            state["m"] = g.random(x.shape) < Q
        state["i"] += 1
        return np.where(state["m"], x / Q, 0).astype(x.dtype)

    return fn


def exactly_k_kept(seed):
    """Keeps exactly round(q n) elements per call (a permutation sampler)."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        n = x.size
        keep = np.zeros(n, dtype=bool)
        keep[g.permutation(n)[: round(Q * n)]] = True
        return np.where(keep.reshape(x.shape), x / Q, 0).astype(x.dtype)

    return fn


def scale_quantized(seed):
    """Scales by 1/q with q rounded to 1/256: 0.11% too large, far below the mean test."""
    g = _gen(seed)
    qq = math.floor(Q * 256) / 256

    def fn(x, t):
        if not t:
            return x
        return np.where(g.random(x.shape) < Q, x / qq, 0).astype(x.dtype)

    return fn


def magnitude_dependent(seed):
    """Drops small inputs more often (a threshold that depends on |x|)."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        qq = np.where(np.abs(x) < 1.0, Q - 0.05, Q)
        return np.where(g.random(x.shape) < qq, x / Q, 0).astype(x.dtype)

    return fn


def input_mutated(seed):
    """In-place dropout that writes into its input (inplace=True on a shared buffer)."""
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        x *= (g.random(x.shape) < Q) / np.float32(Q)
        return x

    return fn


def wrong_dtype(seed):
    """Returns float64 for a float32 input."""
    g = _gen(seed)
    return lambda x, t: np.where(g.random(x.shape) < Q, x.astype(np.float64) / Q, 0) if t else x


def raises(seed):
    def fn(x, t):
        if t:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return x

    return fn


def wrong_shape(seed):
    return lambda x, t: x[:-1] if t else x


def not_an_array(seed):
    return lambda x, t: x.tolist() if t else x


def nan_output(seed):
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        y = np.where(g.random(x.shape) < Q, x / Q, 0).astype(x.dtype)
        y[0, 0] = np.nan
        return y

    return fn


CHANNEL = dict(structure="channel", shape=(16, 32, 8))

#: (name, factory, audit keyword arguments, the check that must fail)
MUTANTS = [
    ("no_rescale", no_rescale, {}, "mean"),
    ("divide_by_p (apex#816)", divide_by_p, {}, "mean"),
    ("keep_drop_swapped (electra#61)", keep_drop_swapped, {}, "keep_rate"),
    ("rate_quantized_1/256", rate_quantized, {}, "keep_rate"),
    ("same_mask_every_call (pytorch#84614)", same_mask_every_call, {}, "call_independence"),
    ("p0_still_drops (pytorch#15356)", p0_still_drops, {"p": 0.0}, "keep_rate"),
    ("p1_nan (flax#2055)", p1_nan, {"p": 1.0}, "finite"),
    ("active_in_eval (pytorch#124464)", active_in_eval, {}, "eval_identity"),
    ("dropout2d_wrong_unit (pytorch#69801)", dropout2d_wrong_unit, CHANNEL, "structure"),
    ("channel_as_element", channel_as_element, CHANNEL, "structure"),
    ("row_block_repeat", row_block_repeat, {}, "element_independence"),
    ("batch_shared_mask", batch_shared_mask, {}, "element_independence"),
    ("bits_used_twice", bits_used_twice, {}, "element_independence"),
    ("shifted_mask", shifted_mask, {}, "call_independence"),
    ("alternating_mask", alternating_mask, {}, "call_independence"),
    ("exactly_k_kept", exactly_k_kept, {}, "dispersion"),
    ("scale_quantized_1/256", scale_quantized, {}, "support"),
    ("magnitude_dependent", magnitude_dependent, {}, "mean"),
    ("input_mutated", input_mutated, {}, "input_unchanged"),
    ("wrong_dtype", wrong_dtype, {}, "shape_dtype"),
    ("raises", raises, {}, "runs"),
    ("wrong_shape", wrong_shape, {}, "shape_dtype"),
    ("not_an_array", not_an_array, {}, "shape_dtype"),
    ("nan_output", nan_output, {}, "finite"),
]
