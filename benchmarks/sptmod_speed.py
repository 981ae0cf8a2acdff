"""SPTMod inference speed: cost per block of `SptModStream.process` at 48 kHz, one thread.

    export NUMBA_CACHE_DIR=$PWD/.cache/numba
    .venv/bin/python benchmarks/sptmod_speed.py            # about half a minute

* Models: the two golden files of tests/reference/sptmod (SPTMod24 with 0 controls, SPTMod25 with
  7; random, untrained weights: speed does not depend on the values).
* Input: the golden input, tiled to `--seconds` of audio (default 10 s) after one unmeasured
  second. Each call is `stream.process(block, out)` with a preallocated `out`, timed with
  perf_counter_ns around the call (so the Python wrapper, about 2 us, is included, as in a Python
  audio callback). Blocks of 64, 128, 256 and 1024 samples, float64 and float32.
* Columns: median, p99 and max microseconds per block, and median and p99 as a percentage of the
  block's real-time deadline (block / 48 kHz: 2.667 ms for 128 samples). The process is pinned to
  one core; Numba runs single-threaded. p99 and max are sensitive to the machine's load.
* If PyTorch is importable, a PyTorch streaming reference written from the specification (README
  sections 2-3, upstream's ordering: 1x1 convolutions at sample rate; torch.set_num_threads(1),
  inference mode) is timed on the same blocks and its median and the ratio torch / ours are
  printed, with its max deviation from y64 as a check. Without torch the columns say "skipped".
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from engine.sptmod.stream import SptConfig, SptModStream  # noqa: E402

SR = 48000.0
REF = ROOT / "tests" / "reference" / "sptmod"      # an unedited copy of the shared reference
MODELS = {"SPTMod24 (n_p=0)": "golden_SPTMod24_p0.npz", "SPTMod25 (n_p=7)": "golden_SPTMod25_p7.npz"}
BLOCKS = (64, 128, 256, 1024)


def load(fname):
    z = np.load(REF / fname, allow_pickle=False)
    cfg = SptConfig.from_upstream(json.loads(str(z["config"])))
    w = {k[2:]: z[k] for k in z.files if k.startswith("w/")}
    return cfg, w, z["p"], z["x"], z["y64"]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_blocks(process, x, block, skip):
    """Per-call wall time in microseconds of process(x[i:i+block]) over x, the first `skip`
    samples unmeasured."""
    ts = []
    n = len(x) - len(x) % block
    for i in range(0, n, block):
        t0 = time.perf_counter_ns()
        process(x[i:i + block])
        t1 = time.perf_counter_ns()
        if i >= skip:
            ts.append(t1 - t0)
    return np.asarray(ts, dtype=np.float64) / 1e3


# -- PyTorch streaming reference (written from the specification; used only if torch exists) ------

class TorchSpt:
    """Streaming SPTMod in PyTorch, spec sections 2.5 and 3: cached causal convolution, PReLU,
    average pooling, control FiLM, nn.LSTM over the frames, linear interpolation of the LSTM
    output at sample rate (upstream's ordering) and the 1x1 convolutions at sample rate."""

    def __init__(self, torch, cfg, w, p, dtype):
        F = torch.nn.functional
        self.torch, self.F, self.cfg = torch, F, cfg
        self.dt = torch.float64 if dtype == np.float64 else torch.float32
        T = lambda a: torch.tensor(np.asarray(a), dtype=self.dt)  # noqa: E731
        H, P, J = cfg.hidden, cfg.pool, len(cfg.channels)
        r = torch.arange(P, dtype=self.dt)
        self.wc = r / P
        self.wp = 1 - self.wc
        self.blocks = []
        prev = 1
        pt = T(p)
        for j in range(J):
            C = cfg.channels[j]
            b = dict(C=C, cin=prev, sig=(cfg.kernels[j] - 1) * cfg.dilations[j], d=cfg.dilations[j],
                     W=T(w[f"s_convs.{j}.conv.weight"]), b=T(w[f"s_convs.{j}.conv.bias"]),
                     alpha=T(w[f"s_acts.{j}.weight"]),
                     Wmu=T(w[f"s_conv11f.{j}.weight"][:, :, 0]), bmu=T(w[f"s_conv11f.{j}.bias"]))
            if j < J - 1:
                b["Ws"] = T(w[f"s_conv11s.{j}.weight"][:, :, 0])
                b["bs"] = T(w[f"s_conv11s.{j}.bias"])
            lstm = torch.nn.LSTM(C, H).to(self.dt)
            rnn = f"s_tfilms.{j}.rnn.rnn."
            with torch.no_grad():
                for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                    getattr(lstm, name).copy_(T(w[rnn + name]))
            lstm.eval()
            b["lstm"] = lstm
            if cfg.n_params:
                z = pt
                pre = f"s_tfilms.{j}.film_nn."
                for li in range(len(cfg.film_hidden)):
                    z = F.prelu((T(w[f"{pre}{li}.0.weight"]) @ z + T(w[f"{pre}{li}.0.bias"]))[None],
                                T(w[f"{pre}{li}.1.weight"]))[0]
                last = len(cfg.film_hidden)
                gb = T(w[f"{pre}{last}.weight"]) @ z + T(w[f"{pre}{last}.bias"])
                b["gamma"], b["beta"] = gb[:C], gb[C:]
            else:
                b["gamma"], b["beta"] = torch.ones(C, dtype=self.dt), torch.zeros(C, dtype=self.dt)
            self.blocks.append(b)
            prev = C
        self.reset()

    def reset(self):
        torch, H = self.torch, self.cfg.hidden
        for b in self.blocks:
            b["U"] = torch.zeros(b["cin"], b["sig"], dtype=self.dt)
            b["h"] = torch.zeros(1, 1, H, dtype=self.dt)
            b["c"] = torch.zeros(1, 1, H, dtype=self.dt)

    def process(self, x):
        torch, F, P = self.torch, self.F, self.cfg.pool
        with torch.inference_mode():
            xt = torch.as_tensor(x, dtype=self.dt)
            M = xt.shape[0]
            nf = M // P
            wp = self.wp.repeat(nf)[:, None]
            wc = self.wc.repeat(nf)[:, None]
            a = xt
            s = xt[None, :]
            for b in self.blocks:
                u = torch.cat([b["U"], s], dim=1)
                if b["sig"]:
                    b["U"] = u[:, u.shape[1] - b["sig"]:]
                v = F.conv1d(u[None], b["W"], b["b"], dilation=b["d"])
                v = F.prelu(v, b["alpha"])[0]                              # (C, M)
                z = F.avg_pool1d(v[None], P)[0]                            # (C, F)
                z = b["gamma"][:, None] * z + b["beta"][:, None]
                e, (h, c) = b["lstm"](z.T[:, None, :], (b["h"], b["c"]))
                E = torch.cat([b["h"][0], e[:, 0, :]], dim=0)              # (F + 1, H)
                b["h"], b["c"] = h, c
                m = wp * E[:-1].repeat_interleave(P, dim=0) + wc * E[1:].repeat_interleave(P, dim=0)
                mu = m @ b["Wmu"].T + b["bmu"]                             # (M, 2)
                a = mu[:, 0] * a + mu[:, 1]
                if "Ws" in b:
                    S = (m @ b["Ws"].T + b["bs"]).T                        # (2C, M)
                    s = S[:b["C"]] * v + S[b["C"]:]
            return a.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured audio per cell")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    a = ap.parse_args()
    pinned = "not pinned"
    if not a.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = f"pinned to CPU {cpu}"
    try:
        import torch
        torch.set_num_threads(1)
        torch_note = f"torch {torch.__version__} (1 thread)"
    except ImportError:
        torch = None
        torch_note = "torch not importable: the PyTorch reference was skipped"
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {pinned}; Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}; {torch_note}")
    print(f"{SR:g} Hz; golden input tiled to 1 s unmeasured + {a.seconds:g} s measured per cell; "
          f"wall time per process() call")
    print()
    rows = []
    for label, fname in MODELS.items():
        cfg, w, p, x0, y64 = load(fname)
        n = int((1.0 + a.seconds) * SR)
        x = np.resize(x0, n)
        for dtype in (np.float64, np.float32):
            xd = x.astype(dtype)
            ref = None
            if torch is not None:
                ref = TorchSpt(torch, cfg, w, p, dtype)
                chk = np.concatenate([ref.process(x0[i:i + 256]) for i in range(0, len(x0), 256)])
                ref_err = float(np.abs(chk - y64).max())
            for block in BLOCKS:
                s = SptModStream(cfg, w, dtype=dtype)
                s.set_controls(p)
                out = np.empty(block, dtype=dtype)
                s.process(xd[:block], out)                                   # compile / load
                s.reset()
                us = time_blocks(lambda b: s.process(b, out), xd, block, int(SR))
                deadline = block / SR * 1e6
                row = dict(model=label, dtype=np.dtype(dtype).name, block=block, deadline=deadline,
                           med=float(np.median(us)), p99=float(np.percentile(us, 99)),
                           mx=float(us.max()), torch=None)
                if ref is not None:
                    ref.reset()
                    tus = time_blocks(ref.process, xd[: int(3 * SR)], block, int(SR))
                    row["torch"] = float(np.median(tus))
                    row["torch_err"] = ref_err
                rows.append(row)
                print(f"  {label} {row['dtype']} {block:5d}: median {row['med']:8.1f} us  "
                      f"p99 {row['p99']:8.1f} us", file=sys.stderr, flush=True)

    print("| model | dtype | block | deadline µs | median µs | p99 µs | max µs | median % | p99 % "
          "| torch median µs | torch / ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["torch"] is None:
            t1 = t2 = "skipped"
        else:
            t1 = f"{r['torch']:.0f} (err {r['torch_err']:.1e})"
            t2 = f"{r['torch'] / r['med']:.1f}×"
        print(f"| {r['model']} | {r['dtype']} | {r['block']} | {r['deadline']:.0f} | {r['med']:.1f} "
              f"| {r['p99']:.1f} | {r['mx']:.1f} | {100 * r['med'] / r['deadline']:.2f} % "
              f"| {100 * r['p99'] / r['deadline']:.2f} % | {t1} | {t2} |")
    print()
    print("Targets at 128 samples: SPTMod25 <= 10 % of the deadline, SPTMod24 <= 30 %.")


if __name__ == "__main__":
    main()
