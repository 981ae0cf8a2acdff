"""SPTMod in PyTorch, for offline training (app/train/sptmod_train.py). Not used at run time: the live
path is the Numba port in engine/sptmod/stream.py, which this module agrees with on exported weights.

Written from the project's specification, shared/reference/sptmod/README.md (sections 2, 3, 4.3,
4.4); no upstream code was used.

    model = SptModTorch(config, dtype=torch.float32)   # config: engine.sptmod.SptConfig
    model.reset_state()
    y = model.forward_unpadded(x_in, p, L)              # TBPTT sub-sequence 1 (spec 4.4)
    model.detach_state()
    y = model.forward_stream(x, p)                      # sub-sequences 2..N, or plain streaming
    weights = model.export_weights()                    # name -> float64 array, for SptModStream

Parameters carry exactly the upstream state_dict names of `SptConfig.weight_shapes()` (e.g.
`s_convs.0.conv.weight`, `s_tfilms.0.rnn.rnn.weight_ih_l0`, `s_tfilms.0.film_nn.0.0.weight`),
so `named_parameters()` lists the inference path's weights and nothing else: the fixed
interpolation kernel is regenerated from the formula (it is not a parameter) and the last block's
unused series 1x1 convolution is not built. Initialisation is PyTorch's default for every layer
(Conv1d, Linear, LSTM; PReLU slopes 0.25).

Computation (batch B >= 1, everything vectorised over time; the only loop over frames is inside
nn.LSTM):

* cached causal convolution over [history U_j | block] (cross-correlation, Conv1d semantics),
  PReLU, average pooling over P-sample frames, control FiLM after pooling, LSTM at frame rate;
* the two 1x1 convolutions (audio gain/offset and series scale/shift) are applied to the LSTM's
  frame outputs and the results interpolated linearly to sample rate (the exact reordering of
  spec 2.5; identical up to rounding, and what engine/sptmod/stream.py does as well);
* the interpolator's previous frame is the LSTM's h at the start of the call (spec 3.6).

Streaming state (spec 2.3): U_j (the last sigma_j samples of block j's input: the raw input for
j = 0, the series-modulated signal for j >= 1; always stored detached) and the LSTM states
(h_j, c_j), kept in the autograd graph until `detach_state()` (TBPTT).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["IndexPlan", "index_plan", "SptModTorch"]


# ------------------------------------------------------------------------------------------------
# index arithmetic of the unpadded forward (spec 4.3)


@dataclass(frozen=True)
class IndexPlan:
    """Crops and slice starts of an unpadded call producing L output samples (spec 4.3).

    c_mm[n]: crop of block n's series output (virtual for the last block); c_ma[n]: crop of block
    n's interpolated sequence before the audio-path 1x1; k_m[n]: frames pooled by block n;
    t_m0: start of the modulation-path input relative to the first output sample;
    L_in: input samples needed; i0m / i0a: where the modulation / audio path read the input
    buffer (the output covers input samples [i0a, i0a + L)); i0spn: where an SPN would read."""
    L: int
    c_mm: tuple
    c_ma: tuple
    k_m: tuple
    t_m0: int
    L_in: int
    i0m: int
    i0a: int
    i0spn: int


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def index_plan(config, L: int, lookback: int = 0) -> IndexPlan:
    """The index arithmetic of spec 4.3 for output length L (any L >= 1), with c_a = sigma_a = 0
    (SPTMod's audio path has no convolutions) and an optional SPN lookback (0: no SPN)."""
    L = int(L)
    if L < 1:
        raise ValueError(f"the output length must be >= 1, got {L}")
    P = int(config.pool)
    J = len(config.channels)
    sig = [(int(k) - 1) * int(d) for k, d in zip(config.kernels, config.dilations)]
    c_mm, c_ma, k_m = [0] * J, [0] * J, [0] * J
    for n in range(J - 1, -1, -1):
        rest = sum(sig[n + 1:]) + sum(c_mm[n + 1:])
        k = max((J - n) + _ceil_div(L + rest, P), 1 + _ceil_div(L, P))
        k_m[n] = k
        c_mm[n] = (k - (J - n)) * P - L - rest
        c_ma[n] = (k - 1) * P - L
    t_m0 = L - sig[0] - k_m[0] * P
    low = min(t_m0, 0, -int(lookback))
    return IndexPlan(L=L, c_mm=tuple(c_mm), c_ma=tuple(c_ma), k_m=tuple(k_m), t_m0=t_m0,
                     L_in=L - low, i0m=t_m0 - low, i0a=-low, i0spn=-int(lookback) - low)


# ------------------------------------------------------------------------------------------------
# the modules (nested so that named_parameters() gives the upstream state_dict names)


class _Conv(nn.Module):
    def __init__(self, cin, cout, k, d, **fk):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, dilation=d, **fk)


class _Rnn(nn.Module):
    def __init__(self, cin, hidden, **fk):
        super().__init__()
        self.rnn = nn.LSTM(cin, hidden, num_layers=1, batch_first=True, **fk)


class _TFilm(nn.Module):
    def __init__(self, channels, hidden, n_params, film_hidden, **fk):
        super().__init__()
        if n_params > 0:
            layers, width = [], n_params
            for h in film_hidden:
                layers.append(nn.Sequential(nn.Linear(width, h, **fk), nn.PReLU(h, **fk)))
                width = h
            layers.append(nn.Linear(width, 2 * channels, **fk))
            self.film_nn = nn.Sequential(*layers)
        else:
            self.film_nn = None
        self.rnn = _Rnn(channels, hidden, **fk)


class SptModTorch(nn.Module):
    """An SPTMod network (mono, no sidechain, average pooling, LSTM) for training."""

    def __init__(self, config, dtype=torch.float32, device=None):
        super().__init__()
        config.validate()
        self.config = config
        fk = {"dtype": dtype, "device": device}
        J, H, P = config.blocks, int(config.hidden), int(config.pool)
        self.P, self.H, self.J = P, H, J
        self.sigma = [(int(k) - 1) * int(d) for k, d in zip(config.kernels, config.dilations)]
        cin = int(config.input_channels)
        self.s_convs = nn.ModuleList()
        self.s_acts = nn.ModuleList()
        self.s_tfilms = nn.ModuleList()
        self.s_conv11f = nn.ModuleList()
        self.s_conv11s = nn.ModuleList()
        prev = cin
        for j in range(J):
            C = int(config.channels[j])
            self.s_convs.append(_Conv(prev, C, int(config.kernels[j]), int(config.dilations[j]), **fk))
            self.s_acts.append(nn.PReLU(C, **fk))
            self.s_tfilms.append(_TFilm(C, H, int(config.n_params), list(config.film_hidden), **fk))
            self.s_conv11f.append(nn.Conv1d(H, 2 * cin, 1, **fk))
            if j < J - 1:
                self.s_conv11s.append(nn.Conv1d(H, 2 * C, 1, **fk))
            prev = C
        r = torch.arange(P, dtype=torch.float64) / P          # exact: P is a power of two
        self.register_buffer("_wc", r.to(dtype), persistent=False)          # weight of frame f
        self.register_buffer("_wp", (1.0 - r).to(dtype), persistent=False)  # weight of frame f-1
        names = [n for n, _ in self.named_parameters()]
        shapes = config.weight_shapes()
        assert sorted(names) == sorted(shapes), (sorted(set(names) ^ set(shapes)))
        self.reset_state()

    # ------------------------------------------------------------------ state

    @property
    def dtype(self):
        return self._wc.dtype

    def reset_state(self):
        """Zero convolution histories and LSTM states (created at the next call's batch size)."""
        self._U = [None] * self.J
        self._h = [None] * self.J
        self._c = [None] * self.J

    def detach_state(self):
        """Keep the LSTM states' values, cut their gradient history (TBPTT)."""
        self._h = [None if h is None else h.detach() for h in self._h]
        self._c = [None if c is None else c.detach() for c in self._c]

    def lstm_state(self) -> torch.Tensor:
        """(B, J, 2H): row j = block j's [h_j | c_j] (zeros after a reset: B = 1)."""
        rows = []
        for j in range(self.J):
            h, c = self._h[j], self._c[j]
            if h is None:
                h = c = torch.zeros(1, 1, self.H, dtype=self.dtype, device=self._wc.device)
            rows.append(torch.cat([h[0], c[0]], dim=-1))
        return torch.stack(rows, dim=1)

    # ------------------------------------------------------------------ pieces

    def _as_input(self, x) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(x, dtype=self.dtype, device=self._wc.device)
        if x.dim() == 1:
            return x[None], True
        if x.dim() != 2:
            raise ValueError(f"expected input of shape (B, M) or (M,), got {tuple(x.shape)}")
        return x, False

    def _film(self, j, p, batch):
        """(gamma, beta), each (B or 1, C_j, 1), or None without controls."""
        t = self.s_tfilms[j]
        if t.film_nn is None:
            return None
        if p is None:
            raise ValueError(f"the model has {self.config.n_params} controls: pass p")
        p = torch.as_tensor(p, dtype=self.dtype, device=self._wc.device)
        if p.dim() == 1:
            p = p[None]
        if p.shape[-1] != self.config.n_params or p.shape[0] not in (1, batch):
            raise ValueError(f"controls of shape {tuple(p.shape)}, expected ({self.config.n_params},) "
                             f"or ({batch}, {self.config.n_params})")
        gb = t.film_nn(p)
        C = int(self.config.channels[j])
        return gb[:, :C, None], gb[:, C:, None]

    def _interp(self, q: torch.Tensor) -> torch.Tensor:
        """q: (B, K, F+1) frame values e_{-1} .. e_{F-1} -> (B, K, F*P):
        out[f*P + r] = (1 - r/P) * q[f] + (r/P) * q[f+1]  (spec 2.5 step 6)."""
        B, K, F1 = q.shape
        out = q[:, :, :-1, None] * self._wp + q[:, :, 1:, None] * self._wc
        return out.reshape(B, K, (F1 - 1) * self.P)

    def _modulation(self, j, v, gb, h0, c0):
        """PReLU'd conv output v (B, C, F*P) -> pooled, FiLM, LSTM; returns the LSTM frame outputs
        (B, F, H) and the final (h, c)."""
        B, C, T = v.shape
        z = v.reshape(B, C, T // self.P, self.P).mean(dim=-1)
        if gb is not None:
            z = gb[0] * z + gb[1]
        # PyTorch's own CPU LSTM: oneDNN's is ~20x slower in backward at these sizes (B x 31)
        was = torch._C._get_mkldnn_enabled()
        torch._C._set_mkldnn_enabled(False)
        try:
            e, (h, c) = self.s_tfilms[j].rnn.rnn(z.transpose(1, 2), (h0, c0))
        finally:
            torch._C._set_mkldnn_enabled(was)
        return e, h, c

    def _zeros_state(self, batch):
        z = torch.zeros(1, batch, self.H, dtype=self.dtype, device=self._wc.device)
        return z, z

    # ------------------------------------------------------------------ forward passes

    def forward_stream(self, x, p=None) -> torch.Tensor:
        """One streaming (cached-padding) call: x (B, M) or (M,), M a multiple of P; the output
        is aligned one-to-one with x. States carry over from the previous call."""
        x, flat = self._as_input(x)
        B, M = x.shape
        if M % self.P:
            raise ValueError(f"a streaming call needs a multiple of {self.P} samples, got {M}")
        a = x
        s = x[:, None, :]
        for j in range(self.J):
            sig = self.sigma[j]
            U = self._U[j]
            if U is None or U.shape[0] != B:
                if U is not None:
                    raise ValueError(f"batch size changed from {U.shape[0]} to {B} without reset_state()")
                U = x.new_zeros(B, s.shape[1], sig)
            u = torch.cat([U, s], dim=2)
            self._U[j] = u[:, :, u.shape[2] - sig:].detach()
            v = self.s_acts[j](self.s_convs[j].conv(u))
            h0, c0 = self._h[j], self._c[j]
            if h0 is None:
                h0, c0 = self._zeros_state(B)
            e, h, c = self._modulation(j, v, self._film(j, p, B), h0, c0)
            self._h[j], self._c[j] = h, c
            E = torch.cat([h0[0][:, :, None], e.transpose(1, 2)], dim=2)     # (B, H, F+1)
            mu = self._interp(self.s_conv11f[j](E))
            a = mu[:, 0] * a + mu[:, 1]
            if j < self.J - 1:
                C = v.shape[1]
                S = self._interp(self.s_conv11s[j](E))
                s = S[:, :C] * v + S[:, C:]
        return a[0] if flat else a

    def forward_unpadded(self, x_in, p=None, L=None, plan: IndexPlan | None = None) -> torch.Tensor:
        """The unpadded first sub-sequence of a TBPTT group (spec 4.4, without the SPN: zero
        initial LSTM states). x_in: (B, L_in) with L_in = index_plan(config, L).L_in; returns the
        L output samples aligned with x_in[:, i0a:i0a + L]. Leaves the streaming state primed
        (U_j = last sigma_j samples of block j's input, the final LSTM states), so that
        forward_stream continues seamlessly."""
        x_in, flat = self._as_input(x_in)
        if plan is None:
            if L is None:
                raise ValueError("pass L (or a plan)")
            plan = index_plan(self.config, L)
        L = plan.L
        B, n_in = x_in.shape
        if n_in != plan.L_in:
            raise ValueError(f"an unpadded call for {L} outputs needs {plan.L_in} input samples, "
                             f"got {n_in}")
        P = self.P
        a = x_in[:, plan.i0a:plan.i0a + L]
        s = x_in[:, None, plan.i0m:]
        for j in range(self.J):
            sig = self.sigma[j]
            self._U[j] = s[:, :, s.shape[2] - sig:].detach()
            v = self.s_acts[j](self.s_convs[j].conv(s))
            assert v.shape[2] == plan.k_m[j] * P, (j, v.shape, plan)
            h0, c0 = self._zeros_state(B)
            e, h, c = self._modulation(j, v, self._film(j, p, B), h0, c0)
            self._h[j], self._c[j] = h, c
            E = e.transpose(1, 2)                                           # (B, H, k)
            mu = self._interp(self.s_conv11f[j](E))[:, :, plan.c_ma[j]:]
            a = mu[:, 0] * a + mu[:, 1]
            if j < self.J - 1:
                C = v.shape[1]
                S = self._interp(self.s_conv11s[j](E))
                s = (S[:, :C] * v[:, :, P:] + S[:, C:])[:, :, plan.c_mm[j]:]
        assert a.shape[1] == L
        return a[0] if flat else a

    forward = forward_stream

    # ------------------------------------------------------------------ weights

    def export_weights(self) -> dict:
        """name -> float64 numpy array: exactly the inference path's weights (weight_shapes())."""
        return {n: p.detach().cpu().to(torch.float64).numpy().copy()
                for n, p in self.named_parameters()}

    def load_weights(self, weights: dict):
        """Load name -> array (numpy or tensor). Entries the inference path ignores (the SPN, the
        fixed interpolation kernels, the last block's series 1x1) are skipped; a missing,
        unknown or misshapen weight raises ValueError."""
        shapes = self.config.weight_shapes()
        last = self.J - 1
        ignorable = (lambda n: n.startswith("spnet.") or n.endswith(".upsample.convt.weight")
                     or n in (f"s_conv11s.{last}.weight", f"s_conv11s.{last}.bias"))
        missing = [n for n in shapes if n not in weights]
        unknown = [n for n in weights if n not in shapes and not ignorable(n)]
        if missing or unknown:
            raise ValueError("weights: " + "; ".join(
                ([f"missing {', '.join(missing[:6])}"] if missing else [])
                + ([f"unknown {', '.join(unknown[:6])}"] if unknown else [])))
        params = dict(self.named_parameters())
        with torch.no_grad():
            for n, shape in shapes.items():
                w = torch.as_tensor(np.asarray(weights[n]) if not torch.is_tensor(weights[n])
                                    else weights[n])
                if tuple(w.shape) != tuple(shape):
                    raise ValueError(f"weight {n}: shape {tuple(w.shape)}, expected {tuple(shape)}")
                if not bool(torch.isfinite(w).all()):
                    raise ValueError(f"weight {n}: non-finite values")
                params[n].copy_(w.to(params[n].dtype))
        return self
