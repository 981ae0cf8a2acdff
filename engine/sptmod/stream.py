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

import numpy as np

from engine.sptmod import kernels as K
from engine.sptmod.config import SptConfig, upsample_kernel, whole_number

__all__ = ["SptConfig", "SptModStream", "upsample_kernel"]


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
        mb = whole_number("max_block", max_block)
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
            K.stream_block(x, out, 0, 0, *self._args(), self._ist)
            K.frames_block(x, out, 0, *self._args())

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
        bm = np.zeros((J, K.B_N), dtype=np.int64)
        ro_parts = []
        ro_size = 0
        wk_size = 0
        prev = cfg.input_channels
        for j in range(J):
            C, k, d = cfg.channels[j], cfg.kernels[j], cfg.dilations[j]
            sig = (k - 1) * d
            us = sig + mb
            b = bm[j]
            b[K.B_CIN], b[K.B_C], b[K.B_K], b[K.B_D], b[K.B_SIG] = prev, C, k, d, sig
            b[K.B_OUB], b[K.B_US] = wk_size, us
            wk_size += prev * us
            b[K.B_H] = wk_size
            b[K.B_CC] = wk_size + H
            wk_size += 2 * H
            b[K.B_WCONV] = put(w[f"s_convs.{j}.conv.weight"].reshape(C, prev * k))
            b[K.B_BCONV] = put(w[f"s_convs.{j}.conv.bias"])
            b[K.B_ALPHA] = put(w[f"s_acts.{j}.weight"])
            rnn = f"s_tfilms.{j}.rnn.rnn."
            wcat = np.concatenate([w[rnn + "weight_ih_l0"], w[rnn + "weight_hh_l0"]], axis=1)
            b[K.B_WLSTM] = put(wcat.T)                              # (C + H) x 4H
            b[K.B_BLSTM] = put(w[rnn + "bias_ih_l0"] + w[rnn + "bias_hh_l0"])
            b[K.B_WMU] = put(w[f"s_conv11f.{j}.weight"][:, :, 0].T)  # H x 2
            b[K.B_BMU] = put(w[f"s_conv11f.{j}.bias"])
            if j < J - 1:
                b[K.B_WS] = put(w[f"s_conv11s.{j}.weight"][:, :, 0].T)  # H x 2C
                b[K.B_BS] = put(w[f"s_conv11s.{j}.bias"])
                b[K.B_SERIES] = 1
            b[K.B_GAMMA] = put(np.ones(C))
            b[K.B_BETA] = put(np.zeros(C))
            b[K.B_RO] = ro_size
            rows = np.array([b[K.B_OUB] + i * us + kk * d for i in range(prev) for kk in range(k)],
                            dtype=np.int64)
            ro_parts.append(rows)
            ro_size += rows.size
            prev = C
        cmax = max(cfg.channels)
        fmax = mb // P
        gm = np.zeros(K.G_N, dtype=np.int64)
        gm[K.G_J], gm[K.G_H], gm[K.G_P], gm[K.G_MAXB] = J, H, P, mb
        gm[K.G_WP], gm[K.G_WC] = off_wp, off_wc

        def scratch(n):
            nonlocal wk_size
            off = wk_size
            wk_size += n
            return off

        gm[K.G_V] = scratch(cmax * mb)
        gm[K.G_Z] = scratch(fmax * cmax)
        gm[K.G_E] = scratch((fmax + 1) * H)
        gm[K.G_G] = scratch(4 * H)
        gm[K.G_A] = scratch((fmax + 1) * 2)
        gm[K.G_S] = scratch((fmax + 1) * 2 * cmax)
        gm[K.G_AUDIO] = scratch(mb)
        gm[K.G_IN] = scratch(P)
        gm[K.G_QCAP] = 2 * P
        gm[K.G_Q] = scratch(2 * P)
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
                               for j in range(cfg.blocks) for col in (K.B_GAMMA, K.B_BETA)]).astype(np.int64)

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
            o = self._bm[j, K.B_H]
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
        b = whole_number("block", block)
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
        missing = K.stream_block(x, out, n, add, *self._args(), self._ist)
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
        K.frames_block(x, out, n, *self._args())
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
