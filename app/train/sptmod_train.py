"""`train-sptmod`: offline training of an SPTMod model (PyTorch, truncated backpropagation through
time) from recordings of a device, exported as a Dualtone model file for the live Numba path.

    python main.py train-sptmod --input dry.wav --target wet.wav --out comp.sptmod \\
        [--controls-file controls.json] [--config sptmod25] [--epochs 20] [-N 3] [-B 8] [-L 8192]

PyTorch is optional (`pip install -e '.[train]'`); without it the command fails with one line.
Written from shared/reference/sptmod/README.md section 4; no upstream code was used.

Protocol (spec 4.1, 4.2, without the State Prediction Network: the live host has no device output
to feed it, so every group starts from zero states, as the model does at run time):

* every (input, target) pair is split in time: the first (1 - v) of it trains, the last v
  validates (--validation v, default 0.2; 0 = no validation, the last weights are exported);
* the training parts are cut into long sequences of L_in(L) + (N - 1)·L samples taken every N·L
  samples (L_in = index_plan(config, L).L_in, e.g. L + 450 for SPTMod25), so every output sample
  belongs to one sequence; the list is shuffled every epoch (a seeded NumPy generator) and cut into
  batches of B (the last batch may be smaller);
* a batch is one TBPTT group of N iterations: reset the states; iteration 1 runs the unpadded
  forward on the first L_in samples (spec 4.4) and compares its L outputs with the target over
  input samples [i0a, i0a + L); iterations 2..N detach the LSTM states and stream the next L
  samples (cached padding); each iteration is one Adam step (lr 5e-4 by default, betas 0.9 and
  0.999, eps 1e-8);
* per-pair controls (--controls-file) are fed to the network as given (every value within the
  control's [min, max]);
* audio files are read with soundfile; a stereo or multi-channel file is averaged to mono; the
  input and target of a pair must have the same length and rate, all pairs the same rate (the
  model's sample rate), and every sample must be finite;
* initialisation: PyTorch's defaults (seeded with --seed), then `align_output_sign` gives the
  output the target's sign (negating the last audio 1x1 convolution if the initial output
  correlates negatively with the target): the sign-blind MR-STFT and MR-EESR terms can otherwise
  trap a model that starts with a negative gain near zero gain.

Loss (spec 4.5): 100·MAE + ESR + MR-STFT + MR-EESR, computed per batch item and averaged over the
batch. Choices where the paper is silent (spec 4.8):

* ESR = sum (y - yhat)^2 / (sum y^2 + 1e-8);
* MR-STFT over window sizes 512, 1024, 2048 (each capped at the largest power of two <= the
  length): periodic Hann window, hop = window/4, no centring or padding (only whole frames);
  |Y| = sqrt(max(|Y|^2, 1e-8)) (eps = 1e-8 on the power, as auraloss, which the paper cites:
  magnitudes are floored at 1e-4, which guards the logs and keeps the square root's gradient
  finite); per resolution ||Y| - |Yhat||_F / ||Y||_F plus the mean over all STFT values of
  |log|Y| - log|Yhat||; averaged over the resolutions;
* MR-EESR over W = 512, 1024, 2048 (capped likewise): K = floor(len / (W/4)) windows starting at
  k·W/4, truncated at the end of the signal; E_k = mean of y^2 over the window's samples;
  mean over k of |Ehat_k - E_k| / (E_k + 1e-8); averaged over the resolutions.

Validation after every epoch, on the validation parts:

* WT (windowed, as in training): the same cutting and TBPTT protocol without gradients; loss and
  ESR are the means over all sub-sequences (weighted by batch size);
* ST (streamed, as in use): each pair's validation part (rounded down to whole frames) streamed
  from zero states in calls of L samples, states kept; loss and ESR over the whole part, averaged
  over the pairs weighted by length.

The exported model is the one with the lowest ST validation loss. After every epoch a checkpoint
(model, optimiser, epoch, best weights and validation, history, RNG states) is written atomically
to OUT + ".ckpt"; `--resume` continues from it and gives the same result as an uninterrupted run
(same thread count). The model is written with engine.sptmod.file.save_model; an existing file is
replaced only with --force, or on --resume when it is the file this run exported.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from app.progress import Progress

NEEDS_TORCH = "train-sptmod needs PyTorch: pip install -e '.[train]'"
TRAINER = "dualtone train-sptmod"
CKPT_FORMAT = "dualtone-sptmod-checkpoint"
CKPT_VERSION = 1
EPS = 1e-8
RESOLUTIONS = (512, 1024, 2048)
MAE_WEIGHT = 100.0

# spec 2.10: the two papers' configurations (n_params comes from the controls file)
NAMED_CONFIGS = {
    "sptmod24": {"channels": [21, 19, 32], "kernels": [9, 29, 25], "dilations": [1, 1, 1],
                 "pool": 64, "hidden": 31, "film_hidden": [26, 26]},
    "sptmod25": {"channels": [15, 15, 15, 15], "kernels": [3, 3, 3, 3], "dilations": [1, 1, 1, 1],
                 "pool": 64, "hidden": 31, "film_hidden": [32, 32]},
}


class TrainInputError(ValueError):
    """Bad input to the trainer (cmd_train_sptmod reports it as a UsageError: one line, exit 2)."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------------
# losses (torch tensors (B, T) -> scalar)


def _pow2_floor(n: int) -> int:
    return 1 << (max(int(n), 1).bit_length() - 1)


def _stft_term(yhat, y, W):
    import torch
    win = torch.hann_window(W, periodic=True, dtype=y.dtype, device=y.device)

    def mag(s):
        X = torch.stft(s, n_fft=W, hop_length=W // 4, win_length=W, window=win, center=False,
                       return_complex=True)
        power = torch.view_as_real(X).pow(2).sum(-1)
        return torch.sqrt(torch.clamp(power, min=EPS))

    Y, Yh = mag(y), mag(yhat)
    sc = torch.linalg.vector_norm(Y - Yh, dim=(1, 2)) / torch.linalg.vector_norm(Y, dim=(1, 2))
    lm = (torch.log(Y) - torch.log(Yh)).abs().mean(dim=(1, 2))
    return (sc + lm).mean()


def _eesr_term(yhat, y, W):
    import torch
    from torch.nn import functional as tf
    T = y.shape[1]
    hop = W // 4
    K = T // hop
    need = (K - 1) * hop + W
    counts = torch.clamp(T - torch.arange(K, device=y.device) * hop, max=W).to(y.dtype)

    def energy(s):
        sq = tf.pad(s * s, (0, max(0, need - T)))
        return tf.avg_pool1d(sq[:, None, :], W, hop)[:, 0, :K] * W / counts

    E, Eh = energy(y), energy(yhat)
    return ((Eh - E).abs() / (E + EPS)).mean()


def esr(yhat, y):
    """Error-to-signal ratio per batch item, averaged: sum (y - yhat)^2 / (sum y^2 + 1e-8)."""
    return (((y - yhat) ** 2).sum(dim=1) / ((y * y).sum(dim=1) + EPS)).mean()


def sptmod_loss(yhat, y, parts: bool = False):
    """100·MAE + ESR + MR-STFT + MR-EESR of spec 4.5 (choices in the module docstring).
    yhat, y: (B, T) or (T,). With parts=True also returns a dict of the four terms (floats)."""
    if y.dim() == 1:
        y, yhat = y[None], yhat[None]
    T = y.shape[1]
    sizes = [min(W, _pow2_floor(T)) for W in RESOLUTIONS]
    mae = (yhat - y).abs().mean()
    e = esr(yhat, y)
    stft = sum(_stft_term(yhat, y, W) for W in sizes) / len(sizes)
    eesr = sum(_eesr_term(yhat, y, W) for W in sizes) / len(sizes)
    loss = MAE_WEIGHT * mae + e + stft + eesr
    if parts:
        return loss, {"mae": float(mae.detach()), "esr": float(e.detach()),
                      "mrstft": float(stft.detach()),
                      "mreesr": float(eesr.detach())}
    return loss


# ------------------------------------------------------------------------------------------------
# data


@dataclass
class Pair:
    x: np.ndarray               # float32 input
    y: np.ndarray               # float32 target
    p: np.ndarray               # control values (n_params,)
    n_train: int                # samples [0, n_train) train, [n_train, len) validate
    input_file: dict
    target_file: dict


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (the provenance of training data)."""
    from engine.sptmod.file import model_hash         # the same digest the model files use
    return model_hash(path)


def read_audio(path: str, flag: str) -> tuple[np.ndarray, int]:
    """Mono float64 samples (stereo and multi-channel files are averaged) and the rate."""
    if not os.path.exists(path):
        raise TrainInputError(f"{flag} {path}: no such file")
    if os.path.isdir(path):
        raise TrainInputError(f"{flag} {path}: is a folder, not an audio file")
    import soundfile as sf
    try:
        data, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as e:          # libsndfile errors on anything it cannot decode
        raise TrainInputError(f"{flag} {path}: cannot read audio ({_one_line(e)})") from None
    if data.shape[0] == 0:
        raise TrainInputError(f"{flag} {path}: the file holds no samples")
    x = np.ascontiguousarray(data.mean(axis=1))
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise TrainInputError(f"{flag} {path}: {bad} non-finite sample{'s' if bad > 1 else ''} "
                              "(NaN or Inf)")
    return x, int(rate)


def read_controls_file(path: str | None, n_pairs: int) -> tuple[list, list]:
    """(controls [{name, min, max, default}], values per pair [[...], ...]); ([], [[]]*n) without
    a file."""
    if path is None:
        return [], [[] for _ in range(n_pairs)]
    flag = "--controls-file"
    if not os.path.exists(path):
        raise TrainInputError(f"{flag} {path}: no such file")
    d = _read_json(path, flag)
    if not isinstance(d, dict) or set(d) != {"controls", "items"}:
        raise TrainInputError(f"{flag} {path}: expected an object with exactly the keys "
                              "\"controls\" and \"items\"")
    controls, items = d["controls"], d["items"]
    if not isinstance(controls, list) or not controls:
        raise TrainInputError(f"{flag} {path}: \"controls\" must be a non-empty list")
    from engine.sptmod.file import check_controls
    problems = check_controls(controls, len(controls))
    if problems:
        raise TrainInputError(f"{flag} {path}: {problems[0]}")
    if not isinstance(items, list) or len(items) != n_pairs:
        raise TrainInputError(f"{flag} {path}: \"items\" must list the control values of each of "
                              f"the {n_pairs} input/target pair{'s' if n_pairs > 1 else ''}, "
                              f"found {len(items) if isinstance(items, list) else 'no list'}")
    values = [_control_values(row, i, controls, f"{flag} {path}") for i, row in enumerate(items)]
    controls = [{"name": c["name"], "min": float(c["min"]), "max": float(c["max"]),
                 "default": float(c["default"])} for c in controls]
    return controls, values


def _control_values(row, i: int, controls: list, where: str) -> list:
    """items[i] of a controls file as floats, each a finite number inside its control's range."""
    if not isinstance(row, list) or len(row) != len(controls):
        raise TrainInputError(f"{where}: items[{i}] must be a list of {len(controls)} numbers")
    vals = []
    for c, v in zip(controls, row):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TrainInputError(f"{where}: items[{i}]: {v!r} is not a finite number")
        if not c["min"] <= v <= c["max"]:
            raise TrainInputError(f"{where}: items[{i}]: {c['name']} = {v:g} is outside "
                                  f"[{c['min']:g}, {c['max']:g}]")
        vals.append(float(v))
    return vals


def _read_json(path: str, flag: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise TrainInputError(f"{flag} {path}: not readable JSON ({_one_line(e)})") from None


def resolve_config(spec: str, n_params: int):
    """(SptConfig, name) for --config sptmod24|sptmod25|FILE.json."""
    from engine.sptmod.stream import SptConfig
    key = spec.lower()
    if key in NAMED_CONFIGS:
        d = dict(NAMED_CONFIGS[key], n_params=n_params)
        return SptConfig.from_dict(d), key
    if not os.path.isfile(spec):
        raise TrainInputError(f"--config {spec}: neither sptmod24, sptmod25 nor an existing JSON file")
    d = _read_json(spec, "--config")
    if not isinstance(d, dict):
        raise TrainInputError(f"--config {spec}: expected a JSON object (an SptConfig dictionary)")
    d = dict(d)
    d.setdefault("n_params", n_params)
    if n_params > 0:
        d.setdefault("film_hidden", [32, 32])
    try:
        cfg = SptConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise TrainInputError(f"--config {spec}: {_one_line(e)}") from None
    if cfg.n_params != n_params:
        raise TrainInputError(f"--config {spec}: n_params is {cfg.n_params} but the controls file "
                              f"gives {n_params} control{'s' if n_params != 1 else ''}")
    return cfg, os.path.basename(spec)


def sequence_starts(n_samples: int, length: int, step: int) -> list:
    """Starts of the windows [s, s + length) inside [0, n_samples), every `step` samples."""
    if n_samples < length:
        return []
    return list(range(0, n_samples - length + 1, step))


# ------------------------------------------------------------------------------------------------
# options and the training run


@dataclass
class TrainOptions:
    inputs: list
    targets: list
    out: str
    controls_file: str | None = None
    config: str = "sptmod25"
    epochs: int = 20
    N: int = 3
    B: int = 8
    L: int = 8192
    lr: float = 5e-4
    validation: float = 0.2
    seed: int = 0
    resume: bool = False
    force: bool = False
    quiet: bool = False
    dtype: str = "float32"
    threads: int = 0
    log: object = None                  # a text stream for progress (default stderr)


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(v) else None


def _ckpt_path(out: str) -> str:
    return out + ".ckpt"


def _check_options(o: TrainOptions):
    if not o.inputs:
        raise TrainInputError("train-sptmod needs --input")
    if not o.targets:
        raise TrainInputError("train-sptmod needs --target")
    if len(o.inputs) != len(o.targets):
        raise TrainInputError(f"--input is given {len(o.inputs)} file(s) and --target "
                              f"{len(o.targets)}: give one target per input")
    if not o.out:
        raise TrainInputError("train-sptmod needs --out")
    if o.epochs < 1:
        raise TrainInputError(f"--epochs {o.epochs}: must be >= 1")
    if o.N < 1:
        raise TrainInputError(f"--subsequences {o.N}: must be >= 1")
    if o.B < 1:
        raise TrainInputError(f"--batch {o.B}: must be >= 1")
    if not (math.isfinite(o.lr) and o.lr > 0):
        raise TrainInputError(f"--lr {o.lr}: must be a positive number")
    if not (math.isfinite(o.validation) and 0 <= o.validation < 1):
        raise TrainInputError(f"--validation {o.validation}: must be a fraction in [0, 1)")
    if o.dtype not in ("float32", "float64"):
        raise TrainInputError(f"--dtype {o.dtype}: use float32 or float64")
    if o.threads < 0:
        raise TrainInputError(f"--threads {o.threads}: must be >= 0 (0 = automatic)")
    folder = os.path.dirname(os.path.abspath(o.out))
    if not os.path.isdir(folder):
        raise TrainInputError(f"--out {o.out}: the folder {folder} does not exist")


def load_data(o: TrainOptions, n_params_hint=None):
    """(pairs, controls, sample_rate) from the options' files."""
    controls, values = read_controls_file(o.controls_file, len(o.inputs))
    pairs, rate = [], None
    for i, (fi, ft) in enumerate(zip(o.inputs, o.targets)):
        x, rx = read_audio(fi, "--input")
        y, ry = read_audio(ft, "--target")
        if rx != ry:
            raise TrainInputError(f"--input {fi} is {rx} Hz but --target {ft} is {ry} Hz")
        if x.size != y.size:
            raise TrainInputError(f"--input {fi} has {x.size} samples but --target {ft} has "
                                  f"{y.size}: a pair must have equal lengths")
        if rate is None:
            rate = rx
        elif rx != rate:
            raise TrainInputError(f"--input {fi} is {rx} Hz but {o.inputs[0]} is {rate} Hz: all "
                                  "pairs need the same sample rate")
        n_val = int(math.floor(o.validation * x.size))
        pairs.append(Pair(x=x.astype(np.float32), y=y.astype(np.float32),
                          p=np.asarray(values[i], dtype=np.float64), n_train=x.size - n_val,
                          input_file={"file": os.path.basename(fi), "sha256": file_sha256(fi)},
                          target_file={"file": os.path.basename(ft), "sha256": file_sha256(ft)}))
    from engine.sptmod.file import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise TrainInputError(f"--input: {rate} Hz is outside {MIN_SAMPLE_RATE:g} to "
                              f"{MAX_SAMPLE_RATE:g} Hz")
    return pairs, controls, rate


def _signature(o: TrainOptions, cfg, pairs, controls) -> dict:
    """What must not change between a checkpoint and --resume."""
    return {"config": cfg.to_dict(), "N": o.N, "B": o.B, "L": o.L, "lr": o.lr,
            "validation": o.validation, "seed": o.seed, "dtype": o.dtype,
            "inputs": [p.input_file["sha256"] for p in pairs],
            "targets": [p.target_file["sha256"] for p in pairs],
            "controls": controls, "items": [[float(v) for v in p.p] for p in pairs]}


def _save_ckpt(path: str, state: dict):
    import torch
    from engine.atomic_file import atomic_write
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data), overwrite=True)


def _load_ckpt(path: str) -> dict:
    import torch
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainInputError(f"--resume: {path} is not a readable checkpoint ({_one_line(e)})") from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise TrainInputError(f"--resume: {path} is not a train-sptmod checkpoint")
    if state.get("version") != CKPT_VERSION:
        raise TrainInputError(f"--resume: {path} has checkpoint version {state.get('version')!r}; "
                              f"this build reads version {CKPT_VERSION}")
    return state


class _Batches:
    """Long sequences (pair, start) and their batched tensors."""

    def __init__(self, pairs, which: str, seq_len: int, step: int):
        self.items = []
        for k, pr in enumerate(pairs):
            lo, hi = (0, pr.n_train) if which == "train" else (pr.n_train, pr.x.size)
            self.items += [(k, lo + s) for s in sequence_starts(hi - lo, seq_len, step)]
        self.pairs, self.seq_len = pairs, seq_len

    def __len__(self):
        return len(self.items)

    def tensors(self, idx, dtype):
        import torch
        xs = np.stack([self.pairs[k].x[s:s + self.seq_len] for k, s in (self.items[i] for i in idx)])
        ys = np.stack([self.pairs[k].y[s:s + self.seq_len] for k, s in (self.items[i] for i in idx)])
        ps = np.stack([self.pairs[self.items[i][0]].p for i in idx])
        return (torch.from_numpy(xs).to(dtype), torch.from_numpy(ys).to(dtype),
                torch.from_numpy(ps).to(dtype))


def _group(model, plan, X, Y, Pc, N, L, step=None):
    """One TBPTT group: N sub-sequences; `step(loss)` after each (None: no gradients).
    Returns [(loss, esr)] per sub-sequence."""
    model.reset_state()
    out = []
    for k in range(N):
        if k == 0:
            yhat = model.forward_unpadded(X[:, :plan.L_in], Pc, plan=plan)
            tgt = Y[:, plan.i0a:plan.i0a + L]
        else:
            model.detach_state()
            lo = plan.L_in + (k - 1) * L
            yhat = model.forward_stream(X[:, lo:lo + L], Pc)
            tgt = Y[:, lo:lo + L]
        loss = sptmod_loss(yhat, tgt)
        if step is not None:
            step(loss)
        out.append((float(loss.detach()), float(esr(yhat.detach(), tgt))))
    return out


def _validate(model, pairs, val_batches, plan, o, dtype):
    """{'loss_wt', 'esr_wt', 'loss_st', 'esr_st'} (None where there is nothing to measure)."""
    import torch
    res = {"loss_wt": None, "esr_wt": None, "loss_st": None, "esr_st": None}
    with torch.no_grad():
        if len(val_batches):
            res["loss_wt"], res["esr_wt"] = _validate_windows(model, val_batches, plan, o, dtype)
        st = _validate_streamed(model, pairs, o, dtype)
        if st is not None:
            res["loss_st"], res["esr_st"] = st
    model.reset_state()
    return res


def _validate_windows(model, val_batches, plan, o, dtype):
    """(loss, ESR) over the validation sequences, run as the training runs them (TBPTT groups),
    weighted by sequence."""
    tot_l = tot_e = wsum = 0.0
    for b0 in range(0, len(val_batches), o.B):
        idx = list(range(b0, min(b0 + o.B, len(val_batches))))
        X, Y, Pc = val_batches.tensors(idx, dtype)
        for loss, e in _group(model, plan, X, Y, Pc, o.N, o.L):
            tot_l += loss * len(idx)
            tot_e += e * len(idx)
            wsum += len(idx)
    return tot_l / wsum, tot_e / wsum


def _validate_streamed(model, pairs, o, dtype):
    """(loss, ESR) over each pair's whole validation part streamed in blocks of L, weighted by
    sample; None when no pair has a validation part of at least one pool."""
    import torch
    P = model.P
    tot_l = tot_e = wsum = 0.0
    for pr in pairs:
        n = (pr.x.size - pr.n_train) // P * P
        if n < P:
            continue
        x = torch.from_numpy(pr.x[pr.n_train:pr.n_train + n]).to(dtype)[None]
        y = torch.from_numpy(pr.y[pr.n_train:pr.n_train + n]).to(dtype)[None]
        pc = torch.from_numpy(pr.p).to(dtype)[None]
        model.reset_state()
        yhat = torch.cat([model.forward_stream(x[:, i:i + o.L], pc) for i in range(0, n, o.L)],
                         dim=1)
        tot_l += float(sptmod_loss(yhat, y)) * n
        tot_e += float(esr(yhat, y)) * n
        wsum += n
    return (tot_l / wsum, tot_e / wsum) if wsum else None


def align_output_sign(model, plan, batches, o, dtype) -> bool:
    """Choose the sign of the freshly initialised model's output: if the model's output on the
    first training sequences correlates negatively with the target, negate the last block's
    audio 1x1 convolution (weight and bias), which negates the whole output. PyTorch's default
    initialisation is symmetric, so this is as likely a draw from it; it avoids a trap of the
    loss: MR-STFT and MR-EESR do not see the sign, and their log/ratio gradients grow as the
    gain approaches zero, so a model whose initial gain has the wrong sign can settle near zero
    gain instead of crossing it (seen in half the seeds of a plain gain-fitting test).
    Returns True when the sign was flipped."""
    import torch
    idx = list(range(min(o.B, len(batches))))
    X, Y, Pc = batches.tensors(idx, dtype)
    with torch.no_grad():
        model.reset_state()
        yhat = model.forward_unpadded(X[:, :plan.L_in], Pc, plan=plan)
        model.reset_state()
        y = Y[:, plan.i0a:plan.i0a + plan.L]
        c = float(((yhat - yhat.mean(1, keepdim=True)) * (y - y.mean(1, keepdim=True))).sum())
        if c < 0:
            last = model.s_conv11f[model.J - 1]
            last.weight.neg_()
            last.bias.neg_()
            return True
    return False


def train(o: TrainOptions) -> dict:
    """Run (or resume) a training; export the model; return the summary dict. Raises
    TrainInputError for bad input."""
    import torch  # noqa: F401  (first: without PyTorch, ImportError before any input check)
    _check_options(o)
    t_start = time.perf_counter()
    ckpt_path = _ckpt_path(o.out)
    _check_outputs(o, ckpt_path)
    run = _Training(o, _TrainingData(o), ckpt_path, t_start)
    run.announce(o.log if o.log is not None else sys.stderr)
    run.epochs()
    return run.export()


def _check_outputs(o: TrainOptions, ckpt_path: str):
    """Refuse to overwrite a checkpoint or a model unless asked to."""
    if o.resume:
        if not os.path.exists(ckpt_path):
            raise TrainInputError(f"--resume: no checkpoint {ckpt_path}")
    else:
        if os.path.exists(ckpt_path) and not o.force:
            raise TrainInputError(f"{ckpt_path} exists: add --resume to continue that training or "
                                  "--force to start over")
        if os.path.exists(o.out) and not o.force:
            raise TrainInputError(f"--out {o.out}: the file exists (add --force to replace it)")


class _TrainingData:
    """The pairs, controls and configuration, cut into training and validation sequences."""

    def __init__(self, o: TrainOptions):
        from app.train.sptmod_torch import index_plan
        self.pairs, self.controls, self.rate = load_data(o)
        self.cfg, self.cfg_name = resolve_config(o.config, len(self.controls))
        P = self.cfg.pool
        if o.L < P or o.L % P:
            raise TrainInputError(f"--length {o.L}: must be a positive multiple of {P}")
        self.plan = index_plan(self.cfg, o.L)
        self.seq_len = self.plan.L_in + (o.N - 1) * o.L
        self.train = _Batches(self.pairs, "train", self.seq_len, o.N * o.L)
        self.val = _Batches(self.pairs, "val", self.seq_len, o.N * o.L)
        if not len(self.train):
            longest = max(p.n_train for p in self.pairs)
            raise TrainInputError(f"the data are too short: one training sequence needs {self.seq_len} "
                                  f"samples (L_in {self.plan.L_in} + (N-1)·L) but the longest training part "
                                  f"has {longest}; use a smaller --length or --subsequences")
        self.signature = _signature(o, self.cfg, self.pairs, self.controls)


class _Training:
    """One training run: the model, the optimiser, the random streams and the counters that a
    checkpoint saves, fresh or resumed."""

    def __init__(self, o: TrainOptions, data: _TrainingData, ckpt_path: str, t_start: float):
        import torch
        from app.train.sptmod_torch import SptModTorch
        self.o, self.data, self.ckpt_path, self.t_start = o, data, ckpt_path, t_start
        if o.threads:
            torch.set_num_threads(o.threads)
        self.dtype = torch.float32 if o.dtype == "float32" else torch.float64
        torch.manual_seed(o.seed)
        self.model = SptModTorch(data.cfg, dtype=self.dtype)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=(0.9, 0.999), eps=1e-8)
        self.rng = np.random.Generator(np.random.PCG64(o.seed))
        self.epoch0, self.iters, self.history, self.best = 0, 0, [], None
        self.seconds0, self.exported, self.flipped = 0.0, None, False
        if o.resume:
            self._resume()
        else:
            self.flipped = align_output_sign(self.model, data.plan, data.train, o, self.dtype)
        self.n_batches = -(-len(data.train) // o.B)
        self.per_epoch = self.n_batches * o.N

    def _resume(self):
        import torch
        from engine.sptmod.file import model_hash
        o, sig = self.o, self.data.signature
        st = _load_ckpt(self.ckpt_path)
        if st["signature"] != sig:
            diff = sorted(k for k in set(sig) | set(st["signature"])
                          if sig.get(k) != st["signature"].get(k))
            raise TrainInputError(f"--resume: {self.ckpt_path} was made with different settings or data "
                                  f"({', '.join(diff)})")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.rng.bit_generator.state = json.loads(st["rng_numpy"])
        torch.set_rng_state(st["rng_torch"])
        self.epoch0, self.iters, self.history = int(st["epoch"]), int(st["iterations"]), list(st["history"])
        self.best, self.seconds0, self.exported = st["best"], float(st["seconds"]), st.get("exported_sha256")
        self.flipped = bool(st["sign_flipped"])
        if os.path.exists(o.out) and not o.force and (self.exported is None
                                                      or model_hash(o.out) != self.exported):
            raise TrainInputError(f"--out {o.out}: the file exists and is not the model this "
                                  "training exported (add --force to replace it)")

    def announce(self, log):
        o, d = self.o, self.data
        self.prog = Progress(o.epochs * self.per_epoch, not o.quiet, stream=log, unit="iterations",
                             delay=0.0, tty_only=True, start=self.iters)
        if not o.quiet:
            self.prog.line(f"train-sptmod: {d.cfg_name}, {len(d.pairs)} pair(s) at {d.rate} Hz, "
                           f"{len(d.train)} training / {len(d.val)} validation sequences of "
                           f"{d.seq_len} samples, {self.per_epoch} iterations per epoch"
                           + (f", resuming after epoch {self.epoch0}" if o.resume else ""))

    def _checkpoint(self, epoch: int, seconds: float):
        import torch
        _save_ckpt(self.ckpt_path, {
            "format": CKPT_FORMAT, "version": CKPT_VERSION, "signature": self.data.signature,
            "epoch": epoch, "iterations": self.iters, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "best": self.best, "history": self.history,
            "rng_numpy": json.dumps(self.rng.bit_generator.state), "rng_torch": torch.get_rng_state(),
            "seconds": seconds, "exported_sha256": self.exported, "sign_flipped": self.flipped})

    def epochs(self):
        import torch
        # PyTorch's native CPU kernels: oneDNN's LSTM backward is ~20x slower at these sizes
        mkldnn_was = torch._C._get_mkldnn_enabled()
        torch._C._set_mkldnn_enabled(False)
        try:
            for epoch in range(self.epoch0, self.o.epochs):
                self._epoch(epoch)
        finally:
            torch._C._set_mkldnn_enabled(mkldnn_was)

    def _epoch(self, epoch: int):
        o, d = self.o, self.data
        self.model.train()
        perm = self.rng.permutation(len(d.train))
        self.run_loss, self.run_n = 0.0, 0
        t_ep = time.perf_counter()
        for bi in range(self.n_batches):
            idx = perm[bi * o.B:(bi + 1) * o.B]
            X, Y, Pc = d.train.tensors(idx, self.dtype)
            _group(self.model, d.plan, X, Y, Pc, o.N, o.L, lambda loss: self._step(loss, epoch))
        self.model.eval()
        t_val = time.perf_counter()
        v = _validate(self.model, d.pairs, d.val, d.plan, o, self.dtype)
        self._end_epoch(epoch, v, t_ep, t_val)

    def _end_epoch(self, epoch: int, v: dict, t_ep: float, t_val: float):
        """Record the epoch, keep the best weights, write the checkpoint, report one line."""
        o = self.o
        now = time.perf_counter()
        rec = {"epoch": epoch + 1, "iterations": self.iters, "train_loss": self.run_loss / max(self.run_n, 1),
               "seconds": now - t_ep, "train_seconds": t_val - t_ep,
               "validation_seconds": now - t_val, **v}
        self.history.append(rec)
        key = v["loss_st"]
        if self.best is None or key is None or key < self.best["loss_st"]:
            self.best = {"epoch": epoch + 1, "weights": {n: p.detach().clone()
                                                         for n, p in self.model.named_parameters()}, **v}
        self._checkpoint(epoch + 1, self.seconds0 + time.perf_counter() - self.t_start)
        fmt = lambda x: "-" if x is None else f"{x:.4e}"   # noqa: E731
        self.prog.line(f"epoch {epoch + 1}/{o.epochs}: train loss {fmt(rec['train_loss'])}, "
                       f"validation loss ST {fmt(v['loss_st'])} WT {fmt(v['loss_wt'])}, "
                       f"ESR ST {fmt(v['esr_st'])} WT {fmt(v['esr_wt'])}"
                       f"{'  (best)' if self.best['epoch'] == epoch + 1 else ''}  "
                       f"[{rec['train_seconds']:.1f} s + validation "
                       f"{rec['validation_seconds']:.1f} s]")

    def _step(self, loss, epoch: int):
        import torch
        if not torch.isfinite(loss):
            raise TrainInputError(f"training diverged (non-finite loss) at epoch {epoch + 1}, "
                                  f"iteration {self.iters + 1}: lower --lr")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.iters += 1
        self.run_loss += float(loss.detach())
        self.run_n += 1
        self.prog.update(self.iters, self.run_loss / self.run_n,
                         prefix=f"epoch {epoch + 1}/{self.o.epochs}  it {self.iters - epoch * self.per_epoch}"
                                f"/{self.per_epoch}  ")

    def export(self) -> dict:
        """The best weights as a model file (provenance included), a last checkpoint, the summary."""
        import torch
        from engine.sptmod.file import SptModel, model_hash, save_model
        o, d, best = self.o, self.data, self.best
        epochs_done = self.history[-1]["epoch"] if self.history else self.epoch0
        if best is None:
            raise TrainInputError("nothing was trained (--epochs is not above the checkpoint's epoch)")
        weights = {n: t.detach().cpu().to(torch.float64).numpy().copy()
                   for n, t in best["weights"].items()}
        provenance = {
            "trainer": TRAINER, "torch": torch.__version__, "config": d.cfg_name,
            "inputs": [p.input_file for p in d.pairs], "targets": [p.target_file for p in d.pairs],
            "epochs": epochs_done, "iterations": self.iters, "best_epoch": best["epoch"],
            "N": o.N, "B": o.B, "L": o.L, "lr": o.lr, "dtype": o.dtype,
            "validation_fraction": o.validation,
            "validation": {k: _finite_or_none(best[k]) for k in ("esr_st", "esr_wt", "loss_st", "loss_wt")},
            "seed": o.seed, "initial_output_sign_flipped": self.flipped}
        model_obj = SptModel(d.cfg, weights, float(d.rate), d.controls, provenance)
        overwrite = o.force or (o.resume and self.exported is not None and os.path.exists(o.out)
                                and model_hash(o.out) == self.exported)
        try:
            save_model(model_obj, o.out, overwrite=overwrite)
        except FileExistsError:
            raise TrainInputError(f"--out {o.out}: the file exists (add --force to replace it)") from None
        except OSError as e:
            raise TrainInputError(f"--out {o.out}: cannot write ({_one_line(e)})") from None
        self.exported = model_hash(o.out)
        seconds = self.seconds0 + time.perf_counter() - self.t_start
        self._checkpoint(epochs_done, seconds)
        # model_sha256 is the content hash, as presets store it; the file's bytes hash is named so
        return {"out": o.out, "model_sha256": model_obj.sha256, "model_file_sha256": self.exported,
                "config": d.cfg_name, "epochs": epochs_done, "iterations": self.iters,
                "best_epoch": best["epoch"],
                "validation": provenance["validation"], "seconds": seconds,
                "loss_st_history": [_finite_or_none(h["loss_st"]) for h in self.history]}
