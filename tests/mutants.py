"""Buggy dropout implementations modelled on real bug reports (the audit's mutation suite).

Each mutant is ``(name, factory, audit_kwargs, killer)``: ``factory(seed)``
returns ``fn(x, training)``; ``killer`` is the check that must fail.  Every
mutant owns a seeded Generator, so the suite is deterministic.  The mutants
taking ``p`` are also used at extreme drop probabilities
(tests/test_audit_extremes.py).
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


def _masked(seed, keep, scale=Q):
    """``fn(x, training)``: ``where(keep(g, x), x / scale, 0)`` in training, ``x`` in evaluation.

    ``g`` is the mutant's own seeded Generator; each bug below is a wrong
    ``keep`` rule or a wrong ``scale``.
    """
    g = _gen(seed)

    def fn(x, t):
        if not t:
            return x
        return np.where(keep(g, x), x / scale, 0).astype(x.dtype)

    return fn


def no_rescale(seed):
    """Forgot the 1/q (the classic "no scaling at training")."""
    return _masked(seed, lambda g, x: g.random(x.shape) < Q, scale=1.0)


def divide_by_p(seed):
    """Divides by the drop probability instead of the keep one (NVIDIA apex#816)."""
    return _masked(seed, lambda g, x: g.random(x.shape) < Q, scale=P)


def keep_drop_swapped(seed):
    """Keeps with probability p instead of q (google-research electra#61)."""
    return _masked(seed, lambda g, x: g.random(x.shape) < P)


def rate_quantized(seed):
    """Keep decision from an 8-bit threshold: the rate is off by the 1/256 rounding."""
    thr = math.floor(Q * 256)  # 179/256 = 0.69921875 instead of 0.7
    return _masked(seed, lambda g, x: g.integers(0, 256, size=x.shape) < thr)


def same_mask_every_call(seed, p=P):
    """Re-seeds its generator on every call (pytorch#84614): one mask forever."""
    q = 1.0 - p
    return _masked(seed, lambda g, x: _gen(seed).random(x.shape) < q, scale=q)


def p0_still_drops(seed):
    """p = 0 still drops: a saturating 8-bit threshold (cf. pytorch#15356)."""
    thr = min(255, round(1.0 * 256))  # q = 1 -> threshold 256 saturates at 255
    return _masked(seed, lambda g, x: g.integers(0, 256, size=x.shape) < thr, scale=1.0)


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
    return _masked(seed, lambda g, x: g.random((x.shape[0],) + (1,) * (x.ndim - 1)) < Q)


def channel_as_element(seed):
    """Declared channel dropout, but each element gets its own draw."""
    return _masked(seed, lambda g, x: g.random(x.shape) < Q)


def channel_unit_split(seed):
    """Channel dropout whose mask misses one element of a kept channel (a broadcast off by one)."""
    def keep(g, x):
        k = np.broadcast_to(g.random(x.shape[:2] + (1,) * (x.ndim - 2)) < Q, x.shape).copy()
        k.flat[0] = False
        return k

    return _masked(seed, keep)


def row_block_repeat(seed):
    """A 32-row mask block tiled down the batch: rows 32 apart share their mask."""
    def keep(g, x):
        block = g.random((32,) + x.shape[1:]) < Q
        return np.tile(block, (x.shape[0] // 32,) + (1,) * (x.ndim - 1))

    return _masked(seed, keep)


def batch_shared_mask(seed):
    """One mask row broadcast over the batch axis."""
    return _masked(seed, lambda g, x: g.random((1,) + x.shape[1:]) < Q)


def bits_used_twice(seed, p=P):
    """Each random number decides two neighbouring elements."""
    q = 1.0 - p
    return _masked(seed, lambda g, x: np.repeat(g.random(x.size // 2) < q, 2).reshape(x.shape), scale=q)


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


def exactly_k_kept(seed, p=P):
    """Keeps exactly round(q n) elements per call (a permutation sampler)."""
    q = 1.0 - p

    def keep(g, x):
        k = np.zeros(x.size, dtype=bool)
        k[g.permutation(x.size)[: round(q * x.size)]] = True
        return k.reshape(x.shape)

    return _masked(seed, keep, scale=q)


def scale_quantized(seed):
    """Scales by 1/q with q rounded to 1/256: 0.11% too large, far below the mean test."""
    return _masked(seed, lambda g, x: g.random(x.shape) < Q, scale=math.floor(Q * 256) / 256)


def magnitude_dependent(seed):
    """Drops small inputs more often (a threshold that depends on |x|)."""
    return _masked(seed, lambda g, x: g.random(x.shape) < np.where(np.abs(x) < 1.0, Q - 0.05, Q))


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
    ("channel_unit_split", channel_unit_split, CHANNEL, "structure"),
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
