"""Small LLVM intrinsics Numba does not expose (the stream-2 kernel's vector building blocks).

* :func:`popcount` — ``llvm.ctpop.i64`` (vectorises to ``vpopcntq`` with AVX512-VPOPCNTDQ).
* :func:`masked_lane_add` — the sample-major accumulation: for every mask word
  ``M[i]`` (bit ``j`` = lane ``j`` = one sample of a 64-sample block) add
  ``D[i - dofs]`` to the 64 int64 lane sums ``S[0:64]`` where the bit is set.
  Written as an LLVM loop whose 8 ``<8 x i64>`` accumulators live in
  registers (allocas promoted by mem2reg) and whose masks are the mask word
  bit-cast to ``<8 x i1>``, so AVX-512 emits one ``kmov`` + one masked
  ``vpaddq`` per 8 lanes.  Integer additions: the order is irrelevant.
* :func:`lane_count` — the same for per-lane keep counts in 2 x ``<32 x i16>``
  (callers flush before 32767 additions).
"""

from __future__ import annotations

__all__ = ["popcount", "masked_lane_add", "lane_count", "lanes_acc_sum", "lanes_acc_prod", "lanes_hist_small"]

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I16 = ir.IntType(16)
_I8 = ir.IntType(8)


@intrinsic
def popcount(typingctx, x):
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None
    sig = types.uint64(x)

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return sig, codegen


def _splat(builder, val, vty):
    undef = ir.Constant(vty, ir.Undefined)
    v = builder.insert_element(undef, val, ir.Constant(_I32, 0))
    zeros = ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, undef, zeros)


def _data_ptr(context, builder, aty, aval, elty):
    arr = context.make_array(aty)(context, builder, aval)
    return builder.bitcast(arr.data, elty.as_pointer())


def _ptr_off(context, builder, sig, args, ia, io, elty=_I64):
    """Data pointer of array argument ia, advanced by the (element) offset argument io."""
    base = _data_ptr(context, builder, sig.args[ia], args[ia], elty)
    off = context.cast(builder, args[io], sig.args[io], types.int64)
    return builder.gep(base, [off])


@intrinsic
def masked_lane_add(typingctx, S, s_off, M, D, d_off, i0, i1):
    """S.flat[s_off:s_off+64] (int64) += D.flat[d_off + i] on the set bits of M[i], for i in [i0, i1)."""
    sig = types.void(S, s_off, M, D, d_off, i0, i1)

    def codegen(context, builder, sig, args):
        sptr = _ptr_off(context, builder, sig, args, 0, 1)
        mptr = _data_ptr(context, builder, sig.args[2], args[2], _I64)
        dptr = _ptr_off(context, builder, sig, args, 3, 4)
        lo = context.cast(builder, args[5], sig.args[5], types.int64)
        hi = context.cast(builder, args[6], sig.args[6], types.int64)
        vty = ir.VectorType(_I64, 8)
        mty = ir.VectorType(ir.IntType(1), 8)
        zero = ir.Constant(vty, [0] * 8)
        accs = []
        for k in range(8):
            a = cgutils.alloca_once(builder, vty)
            p = builder.bitcast(builder.gep(sptr, [ir.Constant(_I64, 8 * k)]), vty.as_pointer())
            builder.store(builder.load(p, align=8, typ=vty), a)
            accs.append(a)
        with cgutils.for_range_slice(builder, lo, hi, ir.Constant(_I64, 1), inc=True) as (i, _):
            m = builder.load(builder.gep(mptr, [i]), typ=_I64)
            d = builder.load(builder.gep(dptr, [i]), typ=_I64)
            dv = _splat(builder, d, vty)
            for k in range(8):
                mk = builder.trunc(builder.lshr(m, ir.Constant(_I64, 8 * k)), _I8)
                mb = builder.bitcast(mk, mty)
                sel = builder.select(mb, dv, zero)
                builder.store(builder.add(builder.load(accs[k], typ=vty), sel), accs[k])
        for k in range(8):
            p = builder.bitcast(builder.gep(sptr, [ir.Constant(_I64, 8 * k)]), vty.as_pointer())
            builder.store(builder.load(accs[k], typ=vty), p, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def lane_count(typingctx, C, c_off, M, i0, i1):
    """C.flat[c_off:c_off+64] (int64) += Σ_i bit j of M[i], i in [i0, i1) (int16 registers; i1-i0 < 32768)."""
    sig = types.void(C, c_off, M, i0, i1)

    def codegen(context, builder, sig, args):
        cptr = _ptr_off(context, builder, sig, args, 0, 1)
        mptr = _data_ptr(context, builder, sig.args[2], args[2], _I64)
        lo = context.cast(builder, args[3], sig.args[3], types.int64)
        hi = context.cast(builder, args[4], sig.args[4], types.int64)
        vty = ir.VectorType(_I16, 32)
        mty = ir.VectorType(ir.IntType(1), 32)
        accs = []
        for k in range(2):
            a = cgutils.alloca_once(builder, vty)
            builder.store(ir.Constant(vty, [0] * 32), a)
            accs.append(a)
        with cgutils.for_range_slice(builder, lo, hi, ir.Constant(_I64, 1), inc=True) as (i, _):
            m = builder.load(builder.gep(mptr, [i]), typ=_I64)
            for k in range(2):
                mk = builder.trunc(builder.lshr(m, ir.Constant(_I64, 32 * k)), _I32)
                mb = builder.bitcast(mk, mty)
                builder.store(builder.add(builder.load(accs[k], typ=vty), builder.zext(mb, vty)), accs[k])
        wty = ir.VectorType(_I64, 32)
        for k in range(2):
            p = builder.bitcast(builder.gep(cptr, [ir.Constant(_I64, 32 * k)]), wty.as_pointer())
            tot = builder.add(builder.load(p, align=8, typ=wty), builder.zext(builder.load(accs[k], typ=vty), wty))
            builder.store(tot, p, align=8)
        return context.get_dummy_value()

    return sig, codegen


# ---------------------------------------------------------------------------
# 64-lane block finalisation (one <64 x i64> value per lane array)
# ---------------------------------------------------------------------------

_V64 = ir.VectorType(_I64, 64)
_LANE_IDX = ir.Constant(_V64, list(range(64)))


def _load64(builder, ptr):
    return builder.load(builder.bitcast(ptr, _V64.as_pointer()), align=8, typ=_V64)


def _store64(builder, val, ptr):
    builder.store(val, builder.bitcast(ptr, _V64.as_pointer()), align=8)


def _lane_cond(context, builder, sig, args, i_lo, i_hi):
    lo = context.cast(builder, args[i_lo], sig.args[i_lo], types.int64)
    hi = context.cast(builder, args[i_hi], sig.args[i_hi], types.int64)
    c1 = builder.icmp_signed(">=", _LANE_IDX, _splat(builder, lo, _V64))
    c2 = builder.icmp_signed("<", _LANE_IDX, _splat(builder, hi, _V64))
    return builder.and_(c1, c2)


def _c64(v):
    return ir.Constant(_V64, [v] * 64)


@intrinsic
def lanes_acc_sum(typingctx, A, a_off, S, s_off, lo, hi):
    """Lanes in [lo, hi): A.flat[a_off + j] += S & (2**31-1); A.flat[a_off + 64 + j] += S >> 31."""
    sig = types.void(A, a_off, S, s_off, lo, hi)

    def codegen(context, builder, sig, args):
        p0 = _ptr_off(context, builder, sig, args, 0, 1)
        p1 = builder.gep(p0, [ir.Constant(_I64, 64)])
        ps = _ptr_off(context, builder, sig, args, 2, 3)
        cond = _lane_cond(context, builder, sig, args, 4, 5)
        s = builder.select(cond, _load64(builder, ps), _c64(0))
        _store64(builder, builder.add(_load64(builder, p0), builder.and_(s, _c64(0x7FFFFFFF))), p0)
        _store64(builder, builder.add(_load64(builder, p1), builder.ashr(s, _c64(31))), p1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def lanes_acc_prod(typingctx, A, a_off, S, sk_off, sl_off, lo, hi):
    """Lanes in [lo, hi): rows a_off + 64 r (r = 0..3) of A += 31-bit digits of Sk * Sl.

    Sk = hk 2**31 + lk (0 <= lk < 2**31, |Sk| < 2**62): Sk Sl = q0 + q1 2**31 + q2 2**62 with
    q0 = lk ll, q1 = hk ll + lk hl, q2 = hk hl (each < 2**63 in magnitude);
    row0 += q0 & M31, row1 += (q0 >> 31) + (q1 & M31), row2 += (q1 >> 31) + (q2 & M31), row3 += q2 >> 31
    (each < 2**33 in magnitude per call).
    """
    sig = types.void(A, a_off, S, sk_off, sl_off, lo, hi)

    def codegen(context, builder, sig, args):
        p0 = _ptr_off(context, builder, sig, args, 0, 1)
        ps = [builder.gep(p0, [ir.Constant(_I64, 64 * r)]) for r in range(4)]
        pk = _ptr_off(context, builder, sig, args, 2, 3)
        pl = _ptr_off(context, builder, sig, args, 2, 4)
        cond = _lane_cond(context, builder, sig, args, 5, 6)
        m31 = _c64(0x7FFFFFFF)
        s31 = _c64(31)
        sk = builder.select(cond, _load64(builder, pk), _c64(0))
        sl = _load64(builder, pl)
        lk, hk = builder.and_(sk, m31), builder.ashr(sk, s31)
        ll, hl = builder.and_(sl, m31), builder.ashr(sl, s31)
        q0 = builder.mul(lk, ll)
        q1 = builder.add(builder.mul(hk, ll), builder.mul(lk, hl))
        q2 = builder.mul(hk, hl)
        adds = [
            builder.and_(q0, m31),
            builder.add(builder.ashr(q0, s31), builder.and_(q1, m31)),
            builder.add(builder.ashr(q1, s31), builder.and_(q2, m31)),
            builder.ashr(q2, s31),
        ]
        for r in range(4):
            _store64(builder, builder.add(_load64(builder, ps[r]), adds[r]), ps[r])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def lanes_hist_small(typingctx, H, h_off, C, c_off, n, lanemask):
    """H.flat[h_off + k] += #lanes (in lanemask) with C.flat[c_off + lane] == k, for k = 0..n."""
    sig = types.void(H, h_off, C, c_off, n, lanemask)

    def codegen(context, builder, sig, args):
        ph = _ptr_off(context, builder, sig, args, 0, 1)
        pc = _ptr_off(context, builder, sig, args, 2, 3)
        nn = context.cast(builder, args[4], sig.args[4], types.int64)
        lm = context.cast(builder, args[5], sig.args[5], types.uint64)
        c = _load64(builder, pc)
        one = ir.Constant(_I64, 1)
        with cgutils.for_range_slice(builder, ir.Constant(_I64, 0), builder.add(nn, one), one, inc=True) as (k, _):
            eq = builder.icmp_signed("==", c, _splat(builder, k, _V64))
            bits = builder.and_(builder.bitcast(eq, _I64), lm)
            hp = builder.gep(ph, [k])
            builder.store(builder.add(builder.load(hp, typ=_I64), builder.ctpop(bits)), hp)
        return context.get_dummy_value()

    return sig, codegen
