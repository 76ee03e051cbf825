"""The dropout inside ``F.scaled_dot_product_attention`` (SDPA), made visible.

SDPA drops entries of the attention probabilities ``A = softmax(Q K^T s + M)``
*inside* the op and returns ``(A * m / q) @ V``: neither ``A`` nor the mask
is an input or an output.  :func:`replay` recovers both, right after a real
call: from the generator state saved before it, the call is replayed with
``value = I`` (``S x S``), which returns ``A * m / q`` itself (the mask has
the shape of ``A`` and does not depend on ``V``), then once more with
``dropout_p = 0`` for ``A`` (on the math backend, whose softmax is the one
the dropout path used, bit for bit); the state after the real call is put back, so
the model's stream is untouched.  Two facts say whether the replay is the
real call: ``rng_ok`` (the replay consumed exactly the random numbers the
real call did) and ``consistent`` (the real output equals the replayed
``A m / q`` times ``V``).  The site then reads like any other:
``output = input * mask / q`` with ``input = A``; causally masked entries
(``A = 0``) hide their mask, like zero activations after a ReLU.

On CPU the recorder does better than a replay: :func:`call_with_identity`
runs the real call once with ``value = [V | I]``, whose output holds the
model's ``(A m / q) V`` and ``A m / q`` side by side (the mask is drawn
once, from the model's own stream), and :func:`attention` gives ``A``.

On CUDA the fused kernels draw their own Philox numbers; the replay uses
the same backend only when ``V = I`` does not change the kernel choice, and
``rng_ok``/``consistent`` report a mismatch instead of guessing.
"""

from __future__ import annotations

from ._optional import require

__all__ = ["SDPA_ARGS", "rng_state", "set_rng_state", "replay", "call_with_identity", "attention"]

#: SDPA's parameters in order (to bind positional arguments).
SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def rng_state(device):
    """State of the default generator of ``device`` (the one SDPA draws from)."""
    torch = require("torch")
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def set_rng_state(device, state) -> None:
    """Restore :func:`rng_state`."""
    torch = require("torch")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)


def replay(sdpa, args, kwargs, out, rng_before) -> dict:
    """``A``, the dropped ``A m / q`` and the replay checks of one SDPA call (see the module docstring).

    Parameters
    ----------
    sdpa : callable
        The SDPA function (called with mcdrop's interception off).
    args, kwargs
        The real call's arguments.
    out : torch.Tensor
        The real call's output.
    rng_before
        :func:`rng_state` saved right before the real call.

    Returns
    -------
    dict
        ``attn`` (A), ``dropped`` (A m / q), ``rng_ok``, ``consistent``,
        ``max_rel_err``.
    """
    torch = require("torch")
    b = dict(zip(SDPA_ARGS, args))
    b.update(kwargs)
    q, k, v = b["query"], b["key"], b["value"]
    dev = q.device
    S = k.shape[-2]
    with torch.no_grad():
        kw = {n: (t.detach() if isinstance(t, torch.Tensor) else t) for n, t in b.items()}
        kw["value"] = torch.eye(S, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], S, S)
        after = rng_state(dev)
        set_rng_state(dev, rng_before)
        try:
            dropped = sdpa(**kw)
            rng_ok = bool(torch.equal(rng_state(dev), after))
            kw["dropout_p"] = 0.0
            # without dropout SDPA may take a fused kernel whose softmax rounds differently from the
            # math path that applied the dropout; the math path gives the same A, bit for bit
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]):
                attn = sdpa(**kw)
        finally:
            set_rng_state(dev, after)
        vv = v.detach()
        if vv.shape[-3] != dropped.shape[-3]:  # grouped-query attention
            vv = vv.repeat_interleave(dropped.shape[-3] // vv.shape[-3], dim=-3)
        recon = dropped @ vv
        ref = out.detach()
        scale = float(ref.abs().max()) if ref.numel() else 1.0
        err = float((recon - ref).abs().max()) / (scale or 1.0) if ref.numel() else 0.0
        tol = 1e-4 if ref.dtype in (torch.float32, torch.float64) else 2e-2
    return {"attn": attn, "dropped": dropped, "rng_ok": rng_ok, "consistent": err <= tol, "max_rel_err": err}


def _bound(args, kwargs) -> dict:
    b = dict(zip(SDPA_ARGS, args))
    b.update(kwargs)
    return b


def attention(sdpa, args, kwargs):
    """``A``, SDPA's attention probabilities without dropout (math backend, ``V = I``, no grad)."""
    torch = require("torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b = _bound(args, kwargs)
    k, v = b["key"], b["value"]
    S = k.shape[-2]
    kw = {n: (t.detach() if isinstance(t, torch.Tensor) else t) for n, t in b.items()}
    kw["value"] = torch.eye(S, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], S, S)
    kw["dropout_p"] = 0.0
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        return sdpa(**kw)


def call_with_identity(sdpa, args, kwargs):
    """The real call, once, with ``value = [V | I]``: ``(output, A m / q)``.

    The output is the model's ``(A m / q) V`` (a view of the first ``E``
    columns; autograd flows to ``V``), the rest is the dropped attention
    itself, from the same mask.  The extra columns cost ``S / E`` of the
    second matmul instead of a second SDPA call.
    """
    torch = require("torch")
    b = _bound(args, kwargs)
    k, v = b["key"], b["value"]
    S, E = k.shape[-2], v.shape[-1]
    eye = torch.eye(S, dtype=v.dtype, device=v.device).expand(*v.shape[:-2], S, S)
    b["value"] = torch.cat([v, eye], dim=-1)
    full = sdpa(**b)
    return full[..., :E], full[..., E:].detach()
