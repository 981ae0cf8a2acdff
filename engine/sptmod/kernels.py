"""SPTMod's Numba kernels: the cached convolution, the frame-rate core, the aligned frame loop
and the FIFO stream over any block length, on flat arrays (the layouts below) that SptModStream
allocates once. See engine/sptmod/stream.py for the block-length and latency rules."""
import math

import numpy as np
from numba import njit

#
# wf (model dtype): flat weights. wf[0] = 0, wf[1] = 1, wf[2] = 1/P; then the interpolation
#     weights wp[r] = 1 - r/P and wc[r] = r/P, and each block's arrays at the offsets of bm.
# ro (int64): for each block, the absolute offset in wk of every convolution row (i, kappa):
#     U_j's row i starts at B_OUB + i*B_US; tap kappa reads from column kappa*d.
# bm (int64, J x B_N): per-block sizes and offsets (the B_* constants).
# gm (int64): global sizes and offsets (the G_* constants).
# wk (model dtype): per block the input buffer [U_j | block] (Cin rows of sigma_j + max_block) and
#     h_j, c_j; then scratch: v (Cmax x max_block), z (Fmax x Cmax), E ((Fmax+1) x H), gates (4H),
#     A ((Fmax+1) x 2), S ((Fmax+1) x 2Cmax), the audio path (max_block), the FIFO's input (P) and
#     output queue (2P).
# ist (int64): [samples waiting in the input FIFO, samples waiting in the output queue].

(B_CIN, B_C, B_K, B_D, B_SIG, B_OUB, B_US, B_WCONV, B_BCONV, B_ALPHA, B_WLSTM, B_BLSTM, B_WMU,
 B_BMU, B_WS, B_BS, B_GAMMA, B_BETA, B_H, B_CC, B_RO, B_SERIES, B_N) = range(23)
(G_J, G_H, G_P, G_MAXB, G_V, G_Z, G_E, G_G, G_A, G_S, G_AUDIO, G_WP, G_WC, G_IN, G_Q, G_QCAP,
 G_N) = range(17)

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract", "reassoc"})
def _frame_sum(v, lo, n):
    s = v[lo]
    for t in range(lo + 1, lo + n):
        s += v[t]
    return s


@njit(**_JIT)
def _conv(wk, wf, ro, bm, j, vo, M):
    """v[o, t] = b[o] + sum_r W[o, r] * wk[ro[r] + t] for the C rows of block j (o in blocks of 4,
    4 input rows per pass: one load/store of v per 16 multiply-adds)."""
    C = bm[j, B_C]
    R = bm[j, B_CIN] * bm[j, B_K]
    wo = bm[j, B_WCONV]
    bo = bm[j, B_BCONV]
    rb = bm[j, B_RO]
    R4 = R - R % 4
    o = 0
    while o < C:
        if o + 3 < C:
            v0 = wk[vo + o * M: vo + o * M + M]
            v1 = wk[vo + (o + 1) * M: vo + (o + 1) * M + M]
            v2 = wk[vo + (o + 2) * M: vo + (o + 2) * M + M]
            v3 = wk[vo + (o + 3) * M: vo + (o + 3) * M + M]
            b0 = wf[bo + o]
            b1 = wf[bo + o + 1]
            b2 = wf[bo + o + 2]
            b3 = wf[bo + o + 3]
            for t in range(M):
                v0[t] = b0
                v1[t] = b1
                v2[t] = b2
                v3[t] = b3
            w0 = wf[wo + o * R: wo + o * R + R]
            w1 = wf[wo + (o + 1) * R: wo + (o + 1) * R + R]
            w2 = wf[wo + (o + 2) * R: wo + (o + 2) * R + R]
            w3 = wf[wo + (o + 3) * R: wo + (o + 3) * R + R]
            for r in range(0, R4, 4):
                a0 = w0[r]
                a1 = w0[r + 1]
                a2 = w0[r + 2]
                a3 = w0[r + 3]
                c0 = w1[r]
                c1 = w1[r + 1]
                c2 = w1[r + 2]
                c3 = w1[r + 3]
                d0 = w2[r]
                d1 = w2[r + 1]
                d2 = w2[r + 2]
                d3 = w2[r + 3]
                e0 = w3[r]
                e1 = w3[r + 1]
                e2 = w3[r + 2]
                e3 = w3[r + 3]
                p0 = ro[rb + r]
                p1 = ro[rb + r + 1]
                p2 = ro[rb + r + 2]
                p3 = ro[rb + r + 3]
                u0 = wk[p0: p0 + M]
                u1 = wk[p1: p1 + M]
                u2 = wk[p2: p2 + M]
                u3 = wk[p3: p3 + M]
                for t in range(M):
                    x0 = u0[t]
                    x1 = u1[t]
                    x2 = u2[t]
                    x3 = u3[t]
                    v0[t] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
                    v1[t] += c0 * x0 + c1 * x1 + c2 * x2 + c3 * x3
                    v2[t] += d0 * x0 + d1 * x1 + d2 * x2 + d3 * x3
                    v3[t] += e0 * x0 + e1 * x1 + e2 * x2 + e3 * x3
            for r in range(R4, R):
                a0 = w0[r]
                c0 = w1[r]
                d0 = w2[r]
                e0 = w3[r]
                p0 = ro[rb + r]
                u0 = wk[p0: p0 + M]
                for t in range(M):
                    x0 = u0[t]
                    v0[t] += a0 * x0
                    v1[t] += c0 * x0
                    v2[t] += d0 * x0
                    v3[t] += e0 * x0
            o += 4
        else:
            v0 = wk[vo + o * M: vo + o * M + M]
            b0 = wf[bo + o]
            for t in range(M):
                v0[t] = b0
            w0 = wf[wo + o * R: wo + o * R + R]
            for r in range(0, R4, 4):
                a0 = w0[r]
                a1 = w0[r + 1]
                a2 = w0[r + 2]
                a3 = w0[r + 3]
                p0 = ro[rb + r]
                p1 = ro[rb + r + 1]
                p2 = ro[rb + r + 2]
                p3 = ro[rb + r + 3]
                u0 = wk[p0: p0 + M]
                u1 = wk[p1: p1 + M]
                u2 = wk[p2: p2 + M]
                u3 = wk[p3: p3 + M]
                for t in range(M):
                    v0[t] += a0 * u0[t] + a1 * u1[t] + a2 * u2[t] + a3 * u3[t]
            for r in range(R4, R):
                a0 = w0[r]
                p0 = ro[rb + r]
                u0 = wk[p0: p0 + M]
                for t in range(M):
                    v0[t] += a0 * u0[t]
            o += 1


@njit(**_JIT)
def _core(M, wf, ro, bm, gm, wk):
    """One aligned call of M samples (a multiple of P, at most max_block). The input is already in
    block 0's buffer after its history; the output is left in the audio buffer wk[G_AUDIO:]."""
    J = gm[G_J]
    H = gm[G_H]
    P = gm[G_P]
    F = M // P
    one = wf[1]
    invp = wf[2]
    wp = wf[gm[G_WP]: gm[G_WP] + P]
    wc = wf[gm[G_WC]: gm[G_WC] + P]
    vo = gm[G_V]
    zo = gm[G_Z]
    eo = gm[G_E]
    ao = gm[G_A]
    so = gm[G_S]
    a = wk[gm[G_AUDIO]: gm[G_AUDIO] + M]
    gates = wk[gm[G_G]: gm[G_G] + 4 * H]
    src = bm[0, B_OUB] + bm[0, B_SIG]
    for t in range(M):                       # a_0 = x (mono: s_0 = x too)
        a[t] = wk[src + t]
    for j in range(J):
        cin = bm[j, B_CIN]
        C = bm[j, B_C]
        sig = bm[j, B_SIG]
        oub = bm[j, B_OUB]
        us = bm[j, B_US]
        # 1. causal convolution over [U_j | s_j]
        _conv(wk, wf, ro, bm, j, vo, M)
        # U_j <- the last sigma_j columns of [U_j | s_j] (forward copy: safe when M < sigma_j)
        for i in range(cin):
            row = oub + i * us
            for q in range(sig):
                wk[row + q] = wk[row + M + q]
        # 2.-4. PReLU, average pooling over the frames, control FiLM
        alo = bm[j, B_ALPHA]
        gmo = bm[j, B_GAMMA]
        bto = bm[j, B_BETA]
        for c in range(C):
            al = wf[alo + c]
            vr = wk[vo + c * M: vo + c * M + M]
            for t in range(M):
                val = vr[t]
                vr[t] = val if val >= 0 else al * val
            gam = wf[gmo + c]
            bet = wf[bto + c]
            for f in range(F):
                zf = _frame_sum(vr, f * P, P) * invp
                wk[zo + f * C + c] = gam * zf + bet
        # 5. LSTM at frame rate; E[0] = h at the start of the call (= the interpolator's cache)
        ho = bm[j, B_H]
        co = bm[j, B_CC]
        wl = bm[j, B_WLSTM]
        bl = bm[j, B_BLSTM]
        for q in range(H):
            wk[eo + q] = wk[ho + q]
        G4 = 4 * H
        for f in range(F):
            for n in range(G4):
                gates[n] = wf[bl + n]
            for q in range(C):
                xi = wk[zo + f * C + q]
                wrow = wf[wl + q * G4: wl + q * G4 + G4]
                for n in range(G4):
                    gates[n] += wrow[n] * xi
            for q in range(H):
                hq = wk[ho + q]
                wrow = wf[wl + (C + q) * G4: wl + (C + q) * G4 + G4]
                for n in range(G4):
                    gates[n] += wrow[n] * hq
            for n in range(H):
                ig = one / (one + math.exp(-gates[n]))
                fg = one / (one + math.exp(-gates[H + n]))
                gg = math.tanh(gates[2 * H + n])
                og = one / (one + math.exp(-gates[3 * H + n]))
                cn = fg * wk[co + n] + ig * gg
                wk[co + n] = cn
                hn = og * math.tanh(cn)
                wk[ho + n] = hn
                wk[eo + (f + 1) * H + n] = hn
        # 7.-8. the 1x1 convolutions at frame rate: A = W_mu E + b_mu, S = W_s E + b_s
        wmu = bm[j, B_WMU]
        bmu = bm[j, B_BMU]
        series = bm[j, B_SERIES] != 0
        S2 = 2 * C
        wso = bm[j, B_WS]
        bso = bm[j, B_BS]
        for f in range(F + 1):
            g0 = wf[bmu]
            g1 = wf[bmu + 1]
            for q in range(H):
                e = wk[eo + f * H + q]
                g0 += wf[wmu + 2 * q] * e
                g1 += wf[wmu + 2 * q + 1] * e
            wk[ao + 2 * f] = g0
            wk[ao + 2 * f + 1] = g1
            if series:
                srow = wk[so + f * S2: so + f * S2 + S2]
                for n in range(S2):
                    srow[n] = wf[bso + n]
                for q in range(H):
                    e = wk[eo + f * H + q]
                    wrow = wf[wso + q * S2: wso + q * S2 + S2]
                    for n in range(S2):
                        srow[n] += wrow[n] * e
        # audio path: a <- g * a + o, (g, o) interpolated between frame ends
        for f in range(F):
            ga = wk[ao + 2 * f]
            gb = wk[ao + 2 * f + 2]
            oa = wk[ao + 2 * f + 1]
            ob = wk[ao + 2 * f + 3]
            af = a[f * P: f * P + P]
            for r in range(P):
                af[r] = (wp[r] * ga + wc[r] * gb) * af[r] + (wp[r] * oa + wc[r] * ob)
        # series modulation: s_{j+1} = scale * v_j + shift, written after U_{j+1}
        if series:
            oub1 = bm[j + 1, B_OUB]
            us1 = bm[j + 1, B_US]
            sig1 = bm[j + 1, B_SIG]
            for c in range(C):
                dst = oub1 + c * us1 + sig1
                for f in range(F):
                    sa = wk[so + f * S2 + c]
                    sb = wk[so + (f + 1) * S2 + c]
                    ta = wk[so + f * S2 + C + c]
                    tb = wk[so + (f + 1) * S2 + C + c]
                    vr = wk[vo + c * M + f * P: vo + c * M + f * P + P]
                    dr = wk[dst + f * P: dst + f * P + P]
                    for r in range(P):
                        dr[r] = (wp[r] * sa + wc[r] * sb) * vr[r] + (wp[r] * ta + wc[r] * tb)


@njit(**_JIT)
def frames_block(x, out, n, wf, ro, bm, gm, wk):
    """The aligned path: n (a multiple of P) samples of x -> out, in chunks of at most max_block."""
    maxb = gm[G_MAXB]
    dst = bm[0, B_OUB] + bm[0, B_SIG]
    aud = gm[G_AUDIO]
    pos = 0
    while pos < n:
        M = min(n - pos, maxb)
        for t in range(M):
            wk[dst + t] = x[pos + t]
        _core(M, wf, ro, bm, gm, wk)
        for t in range(M):
            out[pos + t] = wk[aud + t]
        pos += M
    return 0


@njit(**_JIT)
def stream_block(x, out, n, add_zeros, wf, ro, bm, gm, wk, ist):
    # a host that runs the model inside its own compiled code (an audio callback) calls this on
    # the arrays of SptModStream.arrays(): it is `process` without the Python wrapper
    """Any n: input FIFO of whole frames, output queue. add_zeros > 0 raises the latency by that
    many samples (zeros inserted at the head of the queue). Returns the number of output samples
    that could not be delivered (0 unless the latency bookkeeping is wrong)."""
    P = gm[G_P]
    maxb = gm[G_MAXB]
    dst = bm[0, B_OUB] + bm[0, B_SIG]
    aud = gm[G_AUDIO]
    ib = gm[G_IN]
    qb = gm[G_Q]
    qcap = gm[G_QCAP]
    nin = ist[0]
    nq = ist[1]
    if add_zeros > 0:
        if nq + add_zeros > qcap:
            return n
        for q in range(nq - 1, -1, -1):
            wk[qb + q + add_zeros] = wk[qb + q]
        for q in range(add_zeros):
            wk[qb + q] = 0
        nq += add_zeros
    pos = 0
    opos = 0
    while pos < n:
        take = min(n - pos, maxb - nin)
        total = nin + take
        nf = total - total % P
        if nf == 0:
            for q in range(take):
                wk[ib + nin + q] = x[pos + q]
            nin = total
            pos += take
            continue
        for q in range(nin):
            wk[dst + q] = wk[ib + q]
        used = nf - nin
        for q in range(used):
            wk[dst + nin + q] = x[pos + q]
        rest = total - nf
        for q in range(rest):
            wk[ib + q] = x[pos + used + q]
        nin = rest
        pos += take
        _core(nf, wf, ro, bm, gm, wk)
        # deliver: the queue first, then the new frames; what is not needed yet is queued
        k = min(n - opos, nq)
        for q in range(k):
            out[opos + q] = wk[qb + q]
        for q in range(nq - k):
            wk[qb + q] = wk[qb + k + q]
        nq -= k
        opos += k
        k2 = min(n - opos, nf)
        for q in range(k2):
            out[opos + q] = wk[aud + q]
        opos += k2
        if nq + nf - k2 > qcap:
            ist[0] = nin
            ist[1] = nq
            return n - opos + nf - k2
        for q in range(nf - k2):
            wk[qb + nq + q] = wk[aud + k2 + q]
        nq += nf - k2
    k = min(n - opos, nq)
    for q in range(k):
        out[opos + q] = wk[qb + q]
    for q in range(nq - k):
        wk[qb + q] = wk[qb + k + q]
    nq -= k
    opos += k
    missing = n - opos
    for q in range(missing):
        out[opos + q] = 0
    ist[0] = nin
    ist[1] = nq
    return missing
