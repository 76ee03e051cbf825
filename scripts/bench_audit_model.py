"""Benchmark: the cost of ``mcdrop.audit_model`` against the model's bare forward loop.

For each model, in the same run and interleaved (bare, audit, bare, audit, ...):

* **bare**: ``calls`` training-mode forwards of the model under ``torch.no_grad()`` (what a
  Monte Carlo loop over the model costs without mcdrop);
* **audit**: ``mcdrop.audit_model(model, x, calls=calls)``, everything included (discovery,
  two evaluation forwards, the ``calls`` recorded training forwards with every site streamed into
  the battery, the round trip, one forward/backward for recompute, the checks and the report).

The ratio is median(audit) / median(bare) over the repeats (and min/min as a second view: the
machine may be shared).  torch runs with one intra-op thread (``--threads``), so the numbers measure
mcdrop's work, not thread contention.

Run::

    python scripts/bench_audit_model.py                 # all models, 5 repeats
    python scripts/bench_audit_model.py --models medium --repeats 3 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import mcdrop


class Attention(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.heads, self.p = heads, p
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0, is_causal=True)
        return self.proj(o.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, p)
        self.drop = nn.Dropout(p)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(p), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, d, heads, blocks, p=0.1):
        super().__init__()
        self.blocks = nn.Sequential(*[Block(d, heads, p) for _ in range(blocks)])
        self.ln = nn.LayerNorm(d)

    def forward(self, x):
        return self.ln(self.blocks(x))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.d2 = nn.Dropout2d(0.2)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(64 * 16, 10)

    def forward(self, x):
        h = self.d2(F.relu(self.c1(x)))
        h = self.pool(F.relu(self.c2(h))).flatten(1)
        return self.fc(self.drop(h))


MODELS = {
    # name: (factory, input shape)
    "medium": (lambda: Transformer(256, 4, 4), (4, 64, 256)),
    "convnet": (lambda: ConvNet(), (64, 3, 32, 32)),
    "tiny": (lambda: Transformer(32, 4, 2), (4, 16, 32)),
}


def bare_loop(model, x, calls):
    model.train()
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(calls):
            model(x)
    return time.perf_counter() - t0


def audited(model, x, calls):
    t0 = time.perf_counter()
    rep = mcdrop.audit_model(model, x, calls=calls)
    return time.perf_counter() - t0, rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--calls", type=int, default=256, help="training forwards (audit_model's default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--json", help="also write the measurements here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"torch": torch.__version__, "threads": args.threads, "calls": args.calls, "models": {}}
    for name in args.models.split(","):
        make, shape = MODELS[name]
        torch.manual_seed(0)
        model, x = make(), torch.randn(*shape)
        audited(model, x, 8)  # warm-up: Numba kernels, code paths
        bare_loop(model, x, 8)
        b, a = [], []
        verdict = None
        for _ in range(args.repeats):
            b.append(bare_loop(model, x, args.calls))
            t, rep = audited(model, x, args.calls)
            a.append(t)
            verdict = rep.verdict
        mb, ma = statistics.median(b), statistics.median(a)
        row = {"input": list(shape), "sites": len(rep.sites), "bare_s": b, "audit_s": a,
               "bare_ms_per_forward": 1e3 * mb / args.calls, "ratio_median": ma / mb, "ratio_min": min(a) / min(b),
               "verdict": verdict}
        out["models"][name] = row
        print(f"{name:8s} input {shape}: {len(rep.sites)} sites, bare {1e3 * mb / args.calls:.2f} ms/forward; "
              f"audit_model / bare loop = {ma / mb:.2f}x (median of {args.repeats}), {min(a) / min(b):.2f}x "
              f"(min/min); verdict {verdict}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
