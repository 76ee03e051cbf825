"""Small real torch models with dropout sites, correct and with each bug class of issue 11 injected.

Correct models
--------------
``TinyTransformer``  pre-LN blocks: attention through ``F.scaled_dot_product_attention`` with
                     ``dropout_p`` (causal), DropPath (per sample), a residual ``nn.Dropout`` and an
                     MLP with ``nn.Dropout``; optional activation checkpointing of the MLP.
``ConvNet``          conv -> ReLU -> ``Dropout2d`` -> conv -> pool -> ``nn.Dropout`` -> linear.

Bug classes (``bug=``)
----------------------
``"functional_eval"``   the MLP calls ``F.dropout(h, p)``: ``training`` defaults to True, dropout
                        stays on in ``eval()`` (nanoGPT#240, pytorch-image-models#1978).
``"sdpa_eval"``         ``dropout_p=self.attn_p`` whatever the mode (torchtune#1791).
``"mode_zeroes_p"``     the first eval forward sets ``attn_p = 0`` and ``mlp.drop.p = 0``;
                        ``train()`` never restores them (Megatron-LM#411).
``"ckpt_fresh_masks"``  the MLP is checkpointed with ``preserve_rng_state=False``: recompute draws
                        fresh masks (OLMo-core#828, DeepSpeed#6811).
``"philox_overlap"``    the MLP's dropout is a counter-based dropout whose offset advances by half
                        a call (the pytorch#50110 family).
ConvNet ``"downgrade_in_infer"``: the classifier dropout is Paddle's standard dropout declared as
inverted (no 1/q in training, ``q x`` in eval).

Also ``PaddleDropout`` (correct standard dropout, ``mode="downgrade_in_infer"``), ``RankDropout``
(a rank with its own generator), ``CounterDropout`` (Philox counters, optional short advance),
``DropConnectLinear``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

TRANSFORMER_BUGS = ("functional_eval", "sdpa_eval", "mode_zeroes_p", "ckpt_fresh_masks", "philox_overlap")


class CounterDropout(nn.Module):
    """Counter-based dropout: uniforms from NumPy's Philox at counter ``offset`` (4 draws per counter).

    Each call needs ``ceil(n / 4)`` counters and advances its offset by ``advance_fraction`` of them:
    1 is correct; 0.5 makes call t+1 reuse the second half of call t's stream.  ``start`` lets two
    "ranks" begin at overlapping offsets.
    """

    def __init__(self, p: float, key: int = 7, start: int = 0, advance_fraction: float = 1.0):
        super().__init__()
        self.p, self.key, self.start, self.advance_fraction = p, key, start, advance_fraction
        self.offset = start

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        bg = np.random.Philox(key=self.key)
        bg.advance(self.offset)
        u = np.random.Generator(bg).random(x.numel())
        self.offset += int(math.ceil(x.numel() / 4) * self.advance_fraction)
        keep = torch.from_numpy(u < 1.0 - self.p).reshape(x.shape)
        return torch.where(keep, x / (1.0 - self.p), torch.zeros_like(x))


class Attention(nn.Module):
    def __init__(self, d, heads, attn_p, bug=None):
        super().__init__()
        self.heads, self.attn_p, self.bug = heads, attn_p, bug
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.bug == "mode_zeroes_p" and not self.training:
            self.attn_p = 0.0  # "no dropout at inference" ... never restored
        p = self.attn_p if (self.training or self.bug == "sdpa_eval") else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, d, hidden, p, bug=None):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.drop = CounterDropout(p, advance_fraction=0.5) if bug == "philox_overlap" else nn.Dropout(p)
        self.p, self.bug = p, bug

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        if self.bug == "functional_eval":
            h = F.dropout(h, self.p)  # training defaults to True
        else:
            if self.bug == "mode_zeroes_p" and not self.training:
                self.drop.p = 0.0
            h = self.drop(h)
        return self.fc2(h)


class DropPath(nn.Module):
    """Stochastic depth (timm style): one keep draw per sample, scaled by 1/q."""

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        q = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(q)
        return x * mask / q


class Block(nn.Module):
    def __init__(self, d=32, heads=4, hidden=64, p=0.1, attn_p=0.1, drop_path=0.1, bug=None, ckpt=False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, attn_p, bug)
        self.drop_path = DropPath(drop_path)
        self.resid_drop = nn.Dropout(p)
        self.mlp = MLP(d, hidden, p, bug)
        self.ckpt = "fresh" if bug == "ckpt_fresh_masks" else ("preserve" if ckpt else None)

    def forward(self, x):
        x = x + self.drop_path(self.resid_drop(self.attn(self.ln1(x))))
        h = self.ln2(x)
        if self.ckpt is not None and self.training and torch.is_grad_enabled():
            h = checkpoint(self.mlp, h, use_reentrant=False, preserve_rng_state=self.ckpt == "preserve")
        else:
            h = self.mlp(h)
        return x + self.drop_path(h)


class TinyTransformer(nn.Module):
    """``n_blocks`` pre-LN blocks on a (B, T, d) input; returns (B, T, d)."""

    def __init__(self, n_blocks=2, d=32, heads=4, hidden=64, p=0.1, attn_p=0.1, drop_path=0.1, bug=None,
                 ckpt=False):
        super().__init__()
        if bug is not None and bug not in TRANSFORMER_BUGS:
            raise ValueError(f"bug must be one of {TRANSFORMER_BUGS}; got {bug!r}")
        self.blocks = nn.ModuleList(Block(d, heads, hidden, p, attn_p, drop_path, bug, ckpt)
                                    for _ in range(n_blocks))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, d)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


class PaddleDropout(nn.Module):
    """Paddle's ``mode="downgrade_in_infer"``: train ``x * m`` (no 1/q), eval ``x * q``: standard dropout."""

    def __init__(self, p=0.5, declare=True):
        super().__init__()
        self.p = p
        if declare:
            self.mode = "downgrade_in_infer"

    def forward(self, x):
        q = 1.0 - self.p
        if not self.training:
            return x * q
        return x * torch.empty_like(x).bernoulli_(q)


class ConvNet(nn.Module):
    """(B, 3, 8, 8) -> (B, 10).  ``bug="downgrade_in_infer"``: the classifier dropout is Paddle's,
    not declared (so claimed inverted)."""

    def __init__(self, p2d=0.2, p=0.5, bug=None):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.drop2d = nn.Dropout2d(p2d)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.drop = PaddleDropout(p, declare=False) if bug == "downgrade_in_infer" else nn.Dropout(p)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        h = self.drop2d(F.relu(self.conv1(x)))
        h = self.pool(F.relu(self.conv2(h))).flatten(1)
        return self.fc(self.drop(h))


class RankDropout(nn.Module):
    """Inverted dropout drawing from its own ``torch.Generator`` (one per tensor-parallel rank)."""

    def __init__(self, p, seed):
        super().__init__()
        self.p = p
        self.gen = torch.Generator().manual_seed(int(seed))

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.gen) < 1.0 - self.p
        return torch.where(keep, x / (1.0 - self.p), torch.zeros_like(x))


def rank_pair(p, mode):
    """Two ranks: ``"alike"`` (bug: seeded the same), ``"apart"`` (SeedSequence spawn)."""
    if mode == "alike":
        return RankDropout(p, 1234), RankDropout(p, 1234)
    a, b = np.random.SeedSequence(1234).spawn(2)
    return RankDropout(p, int(a.generate_state(1)[0])), RankDropout(p, int(b.generate_state(1)[0]))


class DropConnectLinear(nn.Module):
    """A linear layer with DropConnect: a fresh mask per weight each training call (``bug``: per input)."""

    def __init__(self, n_in, n_out, p, bug=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.randn(n_out))
        self.p, self.bug = p, bug

    def forward(self, x):
        if not self.training:
            return F.linear(x, self.weight, self.bias)
        q = 1.0 - self.p
        if self.bug == "input_mask":
            m = torch.empty(self.weight.shape[1]).bernoulli_(q)
            return F.linear(x * m / q, self.weight, self.bias)
        m = torch.empty_like(self.weight).bernoulli_(q)
        if self.bug == "no_scale":
            return F.linear(x, self.weight * m, self.bias)
        return F.linear(x, self.weight * m / q, self.bias)


def tiny_transformer():
    """The CLI test's factory."""
    torch.manual_seed(0)
    return TinyTransformer()


def buggy_transformer():
    torch.manual_seed(0)
    return TinyTransformer(bug="functional_eval")
