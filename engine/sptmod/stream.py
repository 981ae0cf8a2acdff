"""SPTMod inference: stateful, block-by-block, in Numba (no PyTorch at run time).

SPTMod (Series-Parallel Temporal Modulation; Bourdin, Legrand & Roche, EA 2024 and DAFx 2025) is
a convolutional-recurrent model of a compressor. This module implements its streaming inference
path from the project's specification, `shared/reference/sptmod/README.md` sections 2 and 3 (no
upstream code was used):

    cfg = SptConfig.from_upstream(json.loads(golden["config"]))
    stream = SptModStream(cfg, weights)          # weights: state_dict name -> array
    stream.set_controls(p)                       # once per control change (n_params > 0)
    y = stream.process(block)                    # any block length; the state carries over

Per call, for every ModBlock j in order: cached causal convolution (cross-correlation over
[history | block]), PReLU, average pooling over 64-sample frames aligned to the first sample after
reset, control FiLM, LSTM at frame rate, then the audio-path affine map a <- g*a + o and the series
modulation of the next block's input. The 1x1 convolutions run at frame rate and their outputs are
linearly interpolated (the exact reordering of spec 2.5), and the interpolator's one-frame cache is
the LSTM's h (spec 3.6), so the state is only the convolution histories U_j and the LSTM states
(h_j, c_j).

Block lengths (spec 3.3, 3.4). The model computes whole frames of P = 64 samples. `process_frames`
is the aligned core: every call must be a multiple of P, no delay. `process` accepts any length:
the samples go through a FIFO of whole frames, and the output is the aligned core's output stream
delayed by `latency` samples (zeros first). The rule:

    latency = P - gcd(P, L_1, L_2, ..., L_n)      over the lengths L_i of all calls since reset

so it is 0 while every call is a multiple of P, constant for a constant block size b
(`latency_for(b)` = P - gcd(P, b): 63 for odd b, 32 for b = 96, 0 for b = 128), and at most P - 1.
It never decreases. If a call's length lowers the gcd (a schedule that changes its block size),
the latency grows at that call: the missing samples are inserted as zeros at that point of the
output (an audible gap; since the gcd can only fall to a divisor, this happens at most log2(P)
times and inserts at most P - 1 samples in all); from there on the output is again the core's
stream delayed by the new latency. `reset()` returns to latency 0. A host with a fixed block size
never sees a change: it can read its delay before the first call with `latency_for(block)`.

Precision: dtype=np.float64 reproduces the upstream float64 golden outputs to ~1e-16;
dtype=np.float32 keeps all weights, states and scratch in float32 (the real-time build; ~1e-7 from
the upstream float32 run).

Real time: every call is one @njit(nogil=True) function over arrays allocated in __init__ (weights
packed into one flat array with an int64 offset table; states and scratch in one flat work array);
it allocates nothing (tests/engine/test_sptmod.py checks Numba's NRT statistics). Calls longer than
`max_block` are processed in chunks inside the same call. A NaN or Inf in the input stays in the
convolution histories and LSTM states until `reset()` (spec 3.9): the host must check its input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

__all__ = ["SptConfig", "SptModStream", "upsample_kernel"]


# ------------------------------------------------------------------------------------------------
# configuration


def _int_list(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"SptConfig.{name} must be a list of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"SptConfig.{name} must be a list of integers, got {value!r}")
        out.append(int(v))
    return out


def _int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"SptConfig.{name} must be an integer, got {v!r}")
    return int(v)


@dataclass
class SptConfig:
    """The inference-relevant hyperparameters of an SPTMod model (spec 2.1, 2.10).

    channels, kernels, dilations: C_j, k_j, d_j of the J ModBlocks' causal convolutions;
    pool: P, the frame length (pooling size; 64 in both papers' configurations);
    hidden: H, the LSTM size; n_params: number of controls; film_hidden: the hidden widths of each
    ModBlock's control MLP (used only when n_params > 0); input_channels: 1 (mono; the only
    supported value).
    """
    channels: list[int]
    kernels: list[int]
    dilations: list[int]
    pool: int = 64
    hidden: int = 31
    n_params: int = 0
    film_hidden: list[int] = field(default_factory=list)
    input_channels: int = 1

    _KEYS = ("channels", "kernels", "dilations", "pool", "hidden", "n_params", "film_hidden",
             "input_channels")

    @property
    def blocks(self) -> int:
        return len(self.channels)

    @classmethod
    def from_upstream(cls, cfg: dict) -> "SptConfig":
        """From the upstream constructor arguments (the golden files' `config` JSON, spec 2.10).
        Options this inference path does not implement (sidechain, max pooling, GRU, condnet,
        multi-channel input) raise ValueError; the SPN keys (spnet*) are ignored."""
        if not isinstance(cfg, dict):
            raise ValueError("the upstream configuration must be a JSON object")
        required = ("s_channels_list", "s_kernel_size_list", "s_dilation_list", "tfilm_block_size",
                    "rnn_hidden_size")
        missing = [k for k in required if k not in cfg]
        if missing:
            raise ValueError(f"upstream configuration: missing key(s) {', '.join(missing)}")
        checks = [("sidechain_channels", 0, "a sidechain is not supported"),
                  ("tfilm_pooling_type", "avg", "only average pooling ('avg') is supported"),
                  ("rnn_cell", "LSTM", "only the LSTM cell is supported"),
                  ("cond_size", None, "the condnet MLP (cond_size) is not supported")]
        for key, want, why in checks:
            if key in cfg and cfg[key] != want:
                raise ValueError(f"upstream configuration: {key} = {cfg[key]!r}: {why}")
        n_params = cfg.get("n_params", 0)
        film = cfg.get("film_hidden_neurons_list", None)
        if film is None:
            if n_params:
                raise ValueError("upstream configuration: n_params > 0 needs film_hidden_neurons_list")
            film = []
        c = cls(channels=_int_list("channels", cfg["s_channels_list"]),
                kernels=_int_list("kernels", cfg["s_kernel_size_list"]),
                dilations=_int_list("dilations", cfg["s_dilation_list"]),
                pool=cfg["tfilm_block_size"], hidden=cfg["rnn_hidden_size"], n_params=n_params,
                film_hidden=list(film), input_channels=cfg.get("input_channels", 1))
        c.validate()
        return c

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "kernels": list(self.kernels),
                "dilations": list(self.dilations), "pool": self.pool, "hidden": self.hidden,
                "n_params": self.n_params, "film_hidden": list(self.film_hidden),
                "input_channels": self.input_channels}

    @classmethod
    def from_dict(cls, d: dict) -> "SptConfig":
        if not isinstance(d, dict):
            raise ValueError("an SptConfig dictionary must be a dict")
        unknown = sorted(set(d) - set(cls._KEYS))
        if unknown:
            raise ValueError(f"SptConfig: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("channels", "kernels", "dilations") if k not in d]
        if missing:
            raise ValueError(f"SptConfig: missing key(s) {', '.join(missing)}")
        c = cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()})
        c.validate()
        return c

    def validate(self) -> None:
        """Raise ValueError with a clear message if the configuration is unusable."""
        ch = _int_list("channels", self.channels)
        ks = _int_list("kernels", self.kernels)
        ds = _int_list("dilations", self.dilations)
        fh = _int_list("film_hidden", self.film_hidden)
        if not ch:
            raise ValueError("SptConfig.channels: at least one ModBlock is needed")
        if not (len(ch) == len(ks) == len(ds)):
            raise ValueError(f"SptConfig: channels, kernels and dilations must have the same length "
                             f"(one entry per ModBlock), got {len(ch)}, {len(ks)}, {len(ds)}")
        for name, vals in (("channels", ch), ("kernels", ks), ("dilations", ds),
                           ("film_hidden", fh)):
            bad = [v for v in vals if v < 1]
            if bad:
                raise ValueError(f"SptConfig.{name}: every entry must be >= 1, got {vals}")
        pool = _int("pool", self.pool)
        if pool < 1:
            raise ValueError(f"SptConfig.pool (the frame length P) must be >= 1, got {pool}")
        if _int("hidden", self.hidden) < 1:
            raise ValueError(f"SptConfig.hidden (the LSTM size H) must be >= 1, got {self.hidden}")
        if _int("n_params", self.n_params) < 0:
            raise ValueError(f"SptConfig.n_params must be >= 0, got {self.n_params}")
        if _int("input_channels", self.input_channels) != 1:
            raise ValueError(f"SptConfig.input_channels must be 1 (mono; multi-channel SPTMod is "
                             f"not implemented), got {self.input_channels}")

    def weight_shapes(self) -> dict[str, tuple]:
        """The state_dict entries the inference path needs, with their shapes (spec 2.11). Not
        listed (and ignored if given): the fixed interpolation kernels `s_tfilms.{j}.upsample.*`
        (regenerated; checked against the formula when present), the last block's unused
        `s_conv11s.{J-1}.*`, and the SPN `spnet.*`."""
        self.validate()
        J, H, cin = self.blocks, self.hidden, self.input_channels
        shapes: dict[str, tuple] = {}
        prev = cin
        for j in range(J):
            C, k = self.channels[j], self.kernels[j]
            shapes[f"s_convs.{j}.conv.weight"] = (C, prev, k)
            shapes[f"s_convs.{j}.conv.bias"] = (C,)
            shapes[f"s_acts.{j}.weight"] = (C,)
            if self.n_params > 0:
                width = self.n_params
                for li, h in enumerate(self.film_hidden):
                    shapes[f"s_tfilms.{j}.film_nn.{li}.0.weight"] = (h, width)
                    shapes[f"s_tfilms.{j}.film_nn.{li}.0.bias"] = (h,)
                    shapes[f"s_tfilms.{j}.film_nn.{li}.1.weight"] = (h,)
                    width = h
                last = len(self.film_hidden)
                shapes[f"s_tfilms.{j}.film_nn.{last}.weight"] = (2 * C, width)
                shapes[f"s_tfilms.{j}.film_nn.{last}.bias"] = (2 * C,)
            shapes[f"s_tfilms.{j}.rnn.rnn.weight_ih_l0"] = (4 * H, C)
            shapes[f"s_tfilms.{j}.rnn.rnn.weight_hh_l0"] = (4 * H, H)
            shapes[f"s_tfilms.{j}.rnn.rnn.bias_ih_l0"] = (4 * H,)
            shapes[f"s_tfilms.{j}.rnn.rnn.bias_hh_l0"] = (4 * H,)
            shapes[f"s_conv11f.{j}.weight"] = (2 * cin, H, 1)
            shapes[f"s_conv11f.{j}.bias"] = (2 * cin,)
            if j < J - 1:
                shapes[f"s_conv11s.{j}.weight"] = (2 * C, H, 1)
                shapes[f"s_conv11s.{j}.bias"] = (2 * C,)
            prev = C
        return shapes


def upsample_kernel(hidden: int, pool: int) -> np.ndarray:
    """The fixed linear-interpolation kernel upstream stores as `s_tfilms.{j}.upsample.convt.weight`
    (H, 1, 2P): w[k] = k/P for k < P, 1 - (k - P)/P for P <= k < 2P (spec 2.5 step 6)."""
    k = np.arange(2 * pool, dtype=np.float64)
    w = np.where(k < pool, k / pool, 1.0 - (k - pool) / pool)
    return np.broadcast_to(w, (hidden, 1, 2 * pool)).copy()


# ------------------------------------------------------------------------------------------------
# the Numba kernels
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
def _frames(x, out, n, wf, ro, bm, gm, wk):
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
def _stream(x, out, n, add_zeros, wf, ro, bm, gm, wk, ist):
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


# A host that runs the model inside its own compiled code (an audio callback) calls this on the
# arrays of SptModStream.arrays(); it is `process` without the Python wrapper.
stream_block = _stream


# ------------------------------------------------------------------------------------------------
# the stream object


def _dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"dtype must be float64 or float32, got {dtype!r}") from e
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


_IO_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _weight(weights, name, shape):
    if name not in weights:
        raise ValueError(f"SPTMod weights: missing entry '{name}' (expected shape {shape})")
    try:
        a = np.asarray(weights[name], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"SPTMod weights: entry '{name}' is not a numeric array") from e
    if a.shape != tuple(shape):
        raise ValueError(f"SPTMod weights: entry '{name}' has shape {a.shape}, expected {tuple(shape)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"SPTMod weights: entry '{name}' contains NaN or Inf")
    return a


def _prelu(v, slope):
    return np.where(v >= 0, v, slope * v)


class SptModStream:
    """Stateful block-by-block SPTMod inference (Numba, no allocation per block).

    config: the SptConfig; weights: state_dict name -> array (the names of
    `config.weight_shapes()`; extra names such as `spnet.*`, the interpolation kernels and the last
    block's `s_conv11s` are ignored, except that interpolation kernels that are present must equal
    the formula). A missing, misshaped or non-finite entry raises ValueError naming it.
    dtype: np.float64 or np.float32 (weights, states and arithmetic). max_block: the largest chunk
    one kernel pass handles (longer calls are split inside the same call; rounded up to a multiple
    of P); the scratch is sized for it.

    Controls start at 0 (the MLP's output for p = 0) until `set_controls` is called.
    Construction compiles the kernels (or loads them from Numba's cache) for contiguous float32
    and float64 input and output in the model dtype; other layouts compile on first use.
    """

    def __init__(self, config: SptConfig, weights: dict, dtype=np.float64, max_block: int = 8192):
        if not isinstance(config, SptConfig):
            raise ValueError("config must be an SptConfig")
        config.validate()
        self.config = config
        self.dtype = _dtype(dtype)
        mb = _int("max_block", max_block)
        P = config.pool
        if mb < 1:
            raise ValueError(f"max_block must be >= 1, got {mb}")
        mb = -(-mb // P) * P
        self.max_block = mb
        if not isinstance(weights, dict):
            raise ValueError("weights must be a dict of state_dict name -> array")
        shapes = config.weight_shapes()
        w = {name: _weight(weights, name, shp) for name, shp in shapes.items()}
        ker = upsample_kernel(config.hidden, P)
        for j in range(config.blocks):
            name = f"s_tfilms.{j}.upsample.convt.weight"
            if name in weights:
                got = _weight(weights, name, ker.shape)
                if not np.array_equal(got, ker):
                    raise ValueError(f"SPTMod weights: entry '{name}' is not the linear "
                                     f"interpolation kernel of spec 2.5 (max deviation "
                                     f"{np.abs(got - ker).max():.3g})")
        self._w = w
        self._build()
        self._controls = np.zeros(config.n_params)
        self.set_controls(self._controls)
        self.reset()
        self._precompile()

    def _precompile(self):
        """Compile (or load from Numba's cache) the kernels for contiguous float32 and float64
        input with output in the model dtype, so that the first audio callback does not compile.
        Zero-length calls: nothing is computed and the state is untouched."""
        out = np.empty(0, dtype=self.dtype)
        for dt in _IO_DTYPES:
            x = np.empty(0, dtype=dt)
            _stream(x, out, 0, 0, *self._args(), self._ist)
            _frames(x, out, 0, *self._args())

    # -- packing --------------------------------------------------------------------------------

    def _build(self):
        cfg, w, dt = self.config, self._w, self.dtype
        J, H, P, mb = cfg.blocks, cfg.hidden, cfg.pool, self.max_block
        chunks: list[np.ndarray] = []
        size = [0]

        def put(a):
            a = np.ascontiguousarray(a, dtype=np.float64).ravel()
            off = size[0]
            chunks.append(a)
            size[0] += a.size
            return off

        put(np.array([0.0, 1.0, 1.0 / P]))
        r = np.arange(P, dtype=np.float64)
        off_wp = put(1.0 - r / P)
        off_wc = put(r / P)
        bm = np.zeros((J, B_N), dtype=np.int64)
        ro_parts = []
        ro_size = 0
        wk_size = 0
        prev = cfg.input_channels
        for j in range(J):
            C, k, d = cfg.channels[j], cfg.kernels[j], cfg.dilations[j]
            sig = (k - 1) * d
            us = sig + mb
            b = bm[j]
            b[B_CIN], b[B_C], b[B_K], b[B_D], b[B_SIG] = prev, C, k, d, sig
            b[B_OUB], b[B_US] = wk_size, us
            wk_size += prev * us
            b[B_H] = wk_size
            b[B_CC] = wk_size + H
            wk_size += 2 * H
            b[B_WCONV] = put(w[f"s_convs.{j}.conv.weight"].reshape(C, prev * k))
            b[B_BCONV] = put(w[f"s_convs.{j}.conv.bias"])
            b[B_ALPHA] = put(w[f"s_acts.{j}.weight"])
            rnn = f"s_tfilms.{j}.rnn.rnn."
            wcat = np.concatenate([w[rnn + "weight_ih_l0"], w[rnn + "weight_hh_l0"]], axis=1)
            b[B_WLSTM] = put(wcat.T)                              # (C + H) x 4H
            b[B_BLSTM] = put(w[rnn + "bias_ih_l0"] + w[rnn + "bias_hh_l0"])
            b[B_WMU] = put(w[f"s_conv11f.{j}.weight"][:, :, 0].T)  # H x 2
            b[B_BMU] = put(w[f"s_conv11f.{j}.bias"])
            if j < J - 1:
                b[B_WS] = put(w[f"s_conv11s.{j}.weight"][:, :, 0].T)  # H x 2C
                b[B_BS] = put(w[f"s_conv11s.{j}.bias"])
                b[B_SERIES] = 1
            b[B_GAMMA] = put(np.ones(C))
            b[B_BETA] = put(np.zeros(C))
            b[B_RO] = ro_size
            rows = np.array([b[B_OUB] + i * us + kk * d for i in range(prev) for kk in range(k)],
                            dtype=np.int64)
            ro_parts.append(rows)
            ro_size += rows.size
            prev = C
        cmax = max(cfg.channels)
        fmax = mb // P
        gm = np.zeros(G_N, dtype=np.int64)
        gm[G_J], gm[G_H], gm[G_P], gm[G_MAXB] = J, H, P, mb
        gm[G_WP], gm[G_WC] = off_wp, off_wc

        def scratch(n):
            nonlocal wk_size
            off = wk_size
            wk_size += n
            return off

        gm[G_V] = scratch(cmax * mb)
        gm[G_Z] = scratch(fmax * cmax)
        gm[G_E] = scratch((fmax + 1) * H)
        gm[G_G] = scratch(4 * H)
        gm[G_A] = scratch((fmax + 1) * 2)
        gm[G_S] = scratch((fmax + 1) * 2 * cmax)
        gm[G_AUDIO] = scratch(mb)
        gm[G_IN] = scratch(P)
        gm[G_QCAP] = 2 * P
        gm[G_Q] = scratch(2 * P)
        self._wf = np.concatenate(chunks).astype(dt)
        self._ro = np.concatenate(ro_parts)
        self._bm = bm
        self._gm = gm
        self._wk = np.zeros(wk_size, dtype=dt)
        self._ist = np.zeros(2, dtype=np.int64)

    # -- controls -------------------------------------------------------------------------------

    def set_controls(self, values) -> None:
        """Set the n_params control values (normalised to [0, 1] in the paper) and recompute every
        ModBlock's FiLM coefficients (gamma_j, beta_j) once (spec 2.4), in the model dtype. Takes
        effect from the next frame computed; call it outside the audio callback (a host whose
        callback runs the stream uses stage_controls and film_index to swap them at a block start)."""
        self._wf[self.film_index()] = self.stage_controls(values)

    def stage_controls(self, values) -> np.ndarray:
        """Record these control values as the stream's and return their FiLM coefficients
        (film_index order) without writing them: the caller puts them into the weights when the
        stream is between blocks."""
        coefficients = self._film_values(values)
        self._controls = np.asarray(values, dtype=np.float64).ravel().copy()
        return coefficients

    def film_index(self) -> np.ndarray:
        """Where the FiLM coefficients sit in the weights array (arrays()[0]): block by block,
        gamma then beta; in the order stage_controls returns them."""
        cfg = self.config
        if cfg.n_params == 0:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(self._bm[j, col], self._bm[j, col] + cfg.channels[j])
                               for j in range(cfg.blocks) for col in (B_GAMMA, B_BETA)]).astype(np.int64)

    def _film_values(self, values) -> np.ndarray:
        cfg = self.config
        p = np.asarray(values, dtype=np.float64).ravel()
        if p.size != cfg.n_params:
            raise ValueError(f"set_controls: expected {cfg.n_params} control value(s), got {p.size}")
        if not np.all(np.isfinite(p)):
            raise ValueError("set_controls: the control values must be finite")
        dt, w = self.dtype, self._w
        parts = []
        for j in range(cfg.blocks if cfg.n_params else 0):
            pre = f"s_tfilms.{j}.film_nn."
            z = p.astype(dt)
            for li in range(len(cfg.film_hidden)):
                z = _prelu(w[f"{pre}{li}.0.weight"].astype(dt) @ z + w[f"{pre}{li}.0.bias"].astype(dt),
                           w[f"{pre}{li}.1.weight"].astype(dt))
            last = len(cfg.film_hidden)
            parts.append(w[f"{pre}{last}.weight"].astype(dt) @ z + w[f"{pre}{last}.bias"].astype(dt))
        return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dtype=dt)

    @property
    def controls(self) -> np.ndarray:
        return self._controls.copy()

    # -- state ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Zero the convolution histories, the LSTM states and the FIFO; the latency returns to 0.
        The controls are kept."""
        self._wk[:] = 0
        self._ist[:] = 0
        self._g = self.config.pool         # gcd(P, all call lengths since reset)
        self._lat = 0

    def state(self) -> np.ndarray:
        """(J, 2H) float64: row j = [h_j | c_j] (the layout of the golden files' state_after*)."""
        H = self.config.hidden
        out = np.empty((self.config.blocks, 2 * H))
        for j in range(self.config.blocks):
            o = self._bm[j, B_H]
            out[j] = self._wk[o: o + 2 * H]
        return out

    @property
    def latency(self) -> int:
        """The FIFO delay in effect now, in samples: P - gcd(P, every call length since reset)
        (0 before the first call and while every call is a multiple of P)."""
        return self._lat

    def latency_for(self, block: int) -> int:
        """The delay a host calling `process` with a constant block size `block` sees:
        P - gcd(P, block) (0 for multiples of P, 63 for odd sizes with P = 64)."""
        b = _int("block", block)
        if b < 1:
            raise ValueError(f"block must be >= 1, got {b}")
        return self.config.pool - math.gcd(self.config.pool, b)

    # -- processing -----------------------------------------------------------------------------

    def _args(self):
        return self._wf, self._ro, self._bm, self._gm, self._wk

    def arrays(self) -> tuple:
        """(wf, ro, bm, gm, wk, ist): the arrays `stream_block` works on, for a host that calls it
        from compiled code. wk (with ist) is the whole state: zeroing both is a reset."""
        return self._wf, self._ro, self._bm, self._gm, self._wk, self._ist

    def _check_io(self, x, out):
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype not in _IO_DTYPES:
            raise ValueError(f"the input must be a 1-D float64 or float32 array, got {x.dtype} {x.shape}")
        n = x.shape[0]
        if out is None:
            out = np.empty(n, dtype=self.dtype)
        elif (not isinstance(out, np.ndarray) or out.ndim != 1 or out.dtype not in _IO_DTYPES
              or out.shape[0] < n):
            raise ValueError(f"out must be a 1-D float64 or float32 array of at least {n} samples")
        return x, out, n

    def process(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Process one block of any length; returns `out` (allocated in the model dtype if None;
        pass a preallocated `out` in a callback). The output is the aligned model output delayed
        by `latency` samples (see the module docstring for the rule)."""
        x, out, n = self._check_io(x, out)
        if n == 0:
            return out[:0]
        add = 0
        if n % self._g:
            g = math.gcd(self._g, n)
            add = (self.config.pool - g) - self._lat
            self._g = g
            self._lat = self.config.pool - g
        missing = _stream(x, out, n, add, *self._args(), self._ist)
        if missing:                                             # cannot happen with the rule above
            raise RuntimeError(f"SPTMod FIFO underrun by {missing} samples")
        return out if out.shape[0] == n else out[:n]

    def process_frames(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The aligned core: len(x) must be a multiple of P; no FIFO, no delay (the golden y64
        path). Raises ValueError if `process` left samples in the FIFO."""
        x, out, n = self._check_io(x, out)
        P = self.config.pool
        if n % P:
            raise ValueError(f"process_frames: the length {n} is not a multiple of P = {P}")
        if self._ist[0] or self._ist[1]:
            raise ValueError("process_frames: the FIFO of `process` holds samples; reset() first")
        _frames(x, out, n, *self._args())
        return out[:n]

    def warm_up(self, x, seconds: float | None = None, sample_rate: float = 48000.0) -> int:
        """Run the model over the first input (all of x, or its first `seconds` at `sample_rate`,
        truncated to whole frames) and discard the output, keeping the state it leaves; the FIFO
        is emptied and the latency returns to 0. Use it before the stream starts, on the first
        audio the model will see, so the LSTMs start settled rather than from zero.

        Start-up transient measured on the golden files' input (1.024 s at 48 kHz; checked by
        tests/engine/test_sptmod.py): the output of a stream started from zero state, compared with the
        same input processed after `warm_up` on it, deviates by 7.1e-2 (SPTMod24_p0) and 1.4e-2
        (SPTMod25_p7) at the first sample (whose output depends only on the biases, spec 3.2); the
        deviation is below 1e-4 after 0.017 / 0.016 s, below 1e-6 after 0.032 / 0.030 s and below
        1e-8 after 0.046 / 0.041 s; the LSTM states agree to 2e-16 after 2048 samples. These are
        random, untrained weights; a trained compressor settles over its release time (up to
        seconds), which is what warm_up hides. Returns the number of samples used."""
        x = np.asarray(x)
        n = x.shape[0] if x.ndim == 1 else 0
        if seconds is not None:
            if not (seconds >= 0):
                raise ValueError(f"warm_up: seconds must be >= 0, got {seconds}")
            n = min(n, int(round(seconds * sample_rate)))
        n -= n % self.config.pool
        self._ist[:] = 0
        self._g = self.config.pool
        self._lat = 0
        if n:
            out = np.empty(n, dtype=self.dtype)
            self.process_frames(x[:n], out)
        return n
