"""Learning throughput of the engine (samples/s of Learner.process only), side by side with a
plain scalar C++ learner compiled here (benchmarks/cpp_anchor) and the Faust anchor of
shared/reference/difflib/README.md section 5.

    .venv/bin/python benchmarks/learn_throughput.py [--repeats 5] [--only gain,fir16] [--no-cpp]
"""
import argparse
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root, so engine imports
from benchmarks.common import CASES, ROOT, SR, learner_from_args  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from engine.sources import LcgNoise  # noqa: E402

BLOCK = 1 << 16            # our block length
CPP_BLOCK = 256            # the anchor's
CXXFLAGS = ["-O3", "-march=native", "-std=c++17"]   # issue 17: the C++ at its best on this CPU
FULL = 4_800_000           # 100 s at 48 kHz
CPP_SRC = ROOT / "benchmarks" / "cpp_anchor" / "difflib_anchor.cpp"
AGREE = 1e-6               # final parameters of ours and the C++ must agree to this ...
CHECK = 1_200_000          # ... after this many samples (README 3.6: MAE runs diverge later)
# README section 5, double precision, M samples/s
FAUST = {"gain": 54.3, "gain+dc": 64.5, "one-pole": 80.2, "fir": 12.2, "dcsq": 85.9}
# Butterworth low-pass, 6 kHz at 48 kHz (b0 b1 b2 a1 a2); the C++ has the same literals
BIQUAD = [0.09763107293781749, 0.19526214587563498, 0.09763107293781749,
          -0.9428090415820632, 0.3333333333333333]


def fir_args(taps, window, lr):
    circuit = "y = " + " + ".join(["b0*x"] + [f"b{k}*x@{k}" for k in range(1, taps)])
    args = ["--circuit", circuit]
    for k in range(taps):
        args += ["--param", f"b{k}=0", "--hidden", f"b{k}={math.sin(k) * 0.9 ** k!r}"]
    return args + ["--loss", "mse", "--window", str(window), "--optimizer", "sgd", "--lr", str(lr)]


def biquad_args():
    names = ["b0", "b1", "b2", "a1", "a2"]
    args = ["--circuit", "y = b0*x + b1*x@1 + b2*x@2 - a1*y@1 - a2*y@2"]
    for name, h in zip(names, BIQUAD):
        args += ["--param", f"{name}=0", "--hidden", f"{name}={h!r}"]
    return args + ["--loss", "mse", "--window", "1", "--optimizer", "sgd", "--lr", "1e-3"]


# name -> (learn arguments, samples); the C++ knows the same circuits by the same names
CIRCUITS = {name: (case["args"], FULL) for name, case in CASES.items()}
CIRCUITS.update({
    "fir16": (fir_args(16, 16, 0.1), FULL),
    "biquad": (biquad_args(), FULL),
    "fir64": (fir_args(64, 16, 0.05), FULL // 5),
})


def time_ours(learner, x, repeats):
    """Best total seconds of the process() calls over x, each repeat from a reset learner."""
    out = np.empty((BLOCK, 3))
    learner.process(x[:BLOCK], out=out)                      # warm-up block
    best = math.inf
    for _ in range(repeats):
        learner.reset()
        total = 0.0
        for i in range(0, x.shape[0], BLOCK):
            xb = x[i:i + BLOCK]
            t0 = time.perf_counter()
            learner.process(xb, out=out[:xb.shape[0]])
            total += time.perf_counter() - t0
        best = min(best, total)
    return best


def run_ours(learner, x):
    learner.reset()
    for i in range(0, x.shape[0], BLOCK):
        learner.process(x[i:i + BLOCK])
    return np.array(list(learner.params().values()))


def build_cpp(tmp):
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    exe = Path(tmp) / "difflib_anchor"
    subprocess.run([gxx, *CXXFLAGS, "-o", str(exe), str(CPP_SRC)], check=True)
    return exe


def time_cpp(exe, name, samples, repeats, check):
    """(best seconds, parameters after `samples`, parameters after an untimed run of `check`)."""
    r = subprocess.run([str(exe), name, str(samples), str(CPP_BLOCK), str(repeats), str(check)],
                       capture_output=True, text=True, check=True)
    f = {k: v for k, *v in (line.split() for line in r.stdout.splitlines())}
    return float(f["seconds"][0]), np.array(f["params"], float), np.array(f["check"], float)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", help="comma-separated circuit names (default: all)")
    ap.add_argument("--no-cpp", action="store_true", help="skip the local C++ calibration")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(CIRCUITS)
    pinned = "not pinned"
    if not a.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})                       # inherited by the C++ process
        pinned = f"pinned to CPU {cpu}"
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {pinned}; Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}")
    print(f"C++: g++ {' '.join(CXXFLAGS)}")
    print(f"input: LCG noise; ours in blocks of {BLOCK}, C++ in blocks of {CPP_BLOCK}; "
          f"best of {a.repeats} repeats after a warm-up; only the learning loop is timed")

    x_all = LcgNoise().read(max([CHECK] + [CIRCUITS[n][1] for n in names]))
    with tempfile.TemporaryDirectory() as tmp:
        exe = None if a.no_cpp else build_cpp(tmp)
        if exe is None and not a.no_cpp:
            print("note: g++ not found - the local C++ columns are skipped")
        rows, warnings = [], []
        for name in names:
            args, samples = CIRCUITS[name]
            learner = learner_from_args(args)
            ours = samples / time_ours(learner, x_all[:samples], a.repeats) / 1e6
            if learner.skipped:
                warnings.append(f"warning: {name}: {learner.skipped} samples skipped (non-finite)")
            cpp = None
            if exe is not None:
                end = np.array(list(learner.params().values()))
                check = min(samples, CHECK)
                secs, cpp_end, cpp_check = time_cpp(exe, name, samples, a.repeats, check)
                cpp = samples / secs / 1e6
                d_check = float(np.max(np.abs(run_ours(learner, x_all[:check]) - cpp_check)))
                d_end = float(np.max(np.abs(end - cpp_end)))
                print(f"{name}: max |ours - C++| over the parameters: {d_check:.2g} at n = {check:,}, "
                      f"{d_end:.2g} at n = {samples:,}")
                mae = learner.settings.loss == "mae"
                if not d_check <= AGREE:
                    warnings.append(f"warning: {name}: parameters differ from the C++ by {d_check:.3g} "
                                    f"(> {AGREE:g}) at n = {check:,}")
                elif not d_end <= AGREE:       # MAE never contracts: last bits can flip its path
                    warnings.append(f"{'note' if mae else 'warning'}: {name}: parameters differ from "
                                    f"the C++ by {d_end:.3g} at n = {samples:,}"
                                    + (" (expected for MAE, README 3.6)" if mae else ""))
            rows.append((name, len(learner.param_names), samples, ours, FAUST.get(name), cpp))

    dash = "—"
    print()
    print(f"{'circuit':<9} {'P':>3} {'samples':>9} {'M samp/s':>9} {'×RT':>7} {'ns/samp':>8} "
          f"{'Faust M/s':>9} {'ours/Faust':>10} {'C++ M/s':>8} {'ours/C++':>8} {'C++/Faust':>9}")
    for name, P, samples, ours, faust, cpp in rows:
        f = lambda v, fmt: dash if v is None else format(v, fmt)   # noqa: E731
        print(f"{name:<9} {P:>3} {samples:>9,} {ours:>9.1f} {ours * 1e6 / SR:>7,.0f} {1e3 / ours:>8.1f} "
              f"{f(faust, '.1f'):>9} {f(faust and ours / faust, '.2f'):>10} {f(cpp, '.1f'):>8} "
              f"{f(cpp and ours / cpp, '.2f'):>8} {f(cpp and faust and cpp / faust, '.2f'):>9}")
    for w in warnings:
        print(w)


if __name__ == "__main__":
    main()
