"""CPU time per block of the real audio callback (the Numba cfunc, called through its C address
as PortAudio would), for circuits with 2, 16 and 64 learnable parameters at 64/128/256 frames.

    .venv/bin/python benchmarks/callback_cpu.py [--blocks 4000] [--warmup 500] [--no-paced]

The figure is the telemetry column T_CPU_US: the callback reads CLOCK_MONOTONIC at its entry and
exit and publishes the difference; this script drains it with TelemetryReader.

Two schedules: `back-to-back` calls the callback in a tight loop (hot caches: the optimistic
figure) and `paced` calls it once per block period, as a sound card would (caches and branch
predictors go cold between blocks).

A converged learner (loss below 1e-12) is included in every run: the callback flushes its
loss-sonification level to 0 instead of letting it decay into subnormal doubles, which used to cost
about 10 us per block (found by this benchmark).

Target: median <= 5 % of the deadline for 16 parameters at 128 frames.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root
from benchmarks.common import CASES, SR, learner_from_args  # noqa: E402
from benchmarks.learn_throughput import cpu_name, fir_args  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from app.host import layout as H  # noqa: E402
from app.host.stream import direct_caller  # noqa: E402
from app.host.memory import HostMemory, Slot  # noqa: E402
from app.host.telemetry import TelemetryReader  # noqa: E402

FRAMES = (64, 128, 256)
# learnable parameters -> (name, `learn` arguments); all have hidden values, so they learn
CIRCUITS = {
    2: ("gain+dc", CASES["gain+dc"]["args"]),          # y = gain*x + dc, W = 32, sgd
    16: ("fir16", fir_args(16, 16, 0.1)),               # W = 16, sgd
    64: ("fir64", fir_args(64, 16, 0.05)),              # W = 16, sgd
}
TARGET = (16, 128, 5.0)   # (parameters, frames, median % of the deadline)


TINY = 2.2250738585072014e-308   # the smallest normal double


class Rig:
    """One HostMemory with one circuit installed, driven like a duplex 2-in/2-out stream."""

    def __init__(self, learner, frames):
        self.mem = HostMemory(SR, 2, 2, telemetry_rows=8192)
        self.ctl = self.mem.ctl
        self.ctl[H.C_SOURCE] = H.SOURCES["lcg-noise"]
        self.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["stereo"]
        self.mem.install(0, Slot(learner, self.mem.x, self.mem.max_frames))
        self.reader = TelemetryReader(self.mem, lambda: self.mem.active.names)
        self.call = direct_caller()
        self.frames = frames
        self.inp = np.zeros((frames, 2), dtype=np.float32)     # silent input (the source is LCG)
        self.out = np.zeros((frames, 2), dtype=np.float32)
        self.args = (self.inp.ctypes.data, self.out.ctypes.data, frames, None, 0, self.mem.address)

    def subnormal(self):
        v = abs(self.ctl[H.C_SONIFY_LEVEL])
        return 0.0 < v < TINY

    def run(self, blocks, paced=False, flush=False):
        """Callback CPU times (us) of `blocks` calls. flush: set a subnormal sonification level
        to 0 between blocks (outside the timed region)."""
        call, args, ctl = self.call, self.args, self.ctl
        period = self.frames / SR
        chunks = []
        nxt = time.perf_counter()
        for i in range(blocks):
            call(*args)
            if flush and abs(ctl[H.C_SONIFY_LEVEL]) < TINY:
                ctl[H.C_SONIFY_LEVEL] = 0.0
            if paced:
                nxt += period
                d = nxt - time.perf_counter()
                if d > 0:
                    time.sleep(d)
                else:
                    nxt = time.perf_counter()
            if i % 2048 == 2047:
                chunks.append(self.reader.drain()[:, H.T_CPU_US])
        chunks.append(self.reader.drain()[:, H.T_CPU_US])
        cpu = np.concatenate(chunks)
        assert cpu.size == blocks and ctl[H.C_TEL_DROPPED] == 0
        return cpu

    def converge(self, max_samples):
        """Run (untimed, back-to-back) until the sonification level is subnormal; seconds of audio."""
        step = max(1, 48000 // self.frames)
        n = 0
        while not self.subnormal() and n * self.frames < max_samples:
            self.run(step)
            n += step
        return n * self.frames / SR

    def loss(self):
        return self.mem.active.learner.loss


def pct(us, deadline):
    return f"{100 * us / deadline:.2f} %"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=3000, help="measured blocks per cell (>= 2000)")
    ap.add_argument("--warmup", type=int, default=500, help="unmeasured blocks before each cell")
    ap.add_argument("--no-paced", action="store_true", help="only the back-to-back schedule")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one core")
    a = ap.parse_args()
    pinned = "not pinned"
    if not a.no_pin and hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = f"pinned to CPU {cpu}"
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, {pinned}; Python {platform.python_version()}, "
          f"numpy {np.__version__}, numba {numba.__version__}")
    print(f"the cfunc audio callback through its C address; {SR:g} Hz, LCG noise source, duplex 2 in / "
          f"2 out, output 'stereo'; {a.warmup} warm-up + {a.blocks} measured blocks per cell; "
          f"T_CPU_US (clock_gettime at callback entry/exit)")
    schedules = ["back-to-back"] + ([] if a.no_paced else ["paced"])
    states = ["normal"]
    rows = []
    t_start = time.perf_counter()
    for P, (name, args) in CIRCUITS.items():
        for frames in FRAMES:
            deadline = frames / SR * 1e6
            for state in states:
                for sched in schedules:
                    learner = learner_from_args(args)          # compiled (or loaded from cache) here
                    assert len(learner.layout.params) == P
                    rig = Rig(learner, frames)
                    rig.run(a.warmup)
                    note = ""
                    if state == "subnormal":
                        waited = rig.converge(a.max_converge * SR)
                        if not rig.subnormal():
                            note = f"not reached in {waited:.0f} s"
                        else:
                            note = f"reached after {waited + a.warmup * frames / SR:.0f} s"
                    cpu = rig.run(a.blocks, paced=sched == "paced")
                    if state == "subnormal" and not rig.subnormal():
                        note += "; left the subnormal state"
                    med, p99 = float(np.median(cpu)), float(np.percentile(cpu, 99))
                    rows.append(dict(P=P, name=name, frames=frames, sched=sched, state=state,
                                     deadline=deadline, med=med, p99=p99, mx=float(cpu.max()),
                                     loss=rig.loss(), note=note))
                    print(f"  {name:8s} {frames:4d} frames {state:9s} {sched:12s} median {med:7.2f} us  "
                          f"p99 {p99:7.2f} us  {note}", file=sys.stderr, flush=True)

    print()
    print("| params | circuit | frames | deadline µs | state | schedule | median µs | p99 µs | max µs "
          "| median % | p99 % | loss at end | note |")
    print("|---:|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['P']} | {r['name']} | {r['frames']} | {r['deadline']:.0f} | {r['state']} | {r['sched']} "
              f"| {r['med']:.2f} | {r['p99']:.2f} | {r['mx']:.1f} | {pct(r['med'], r['deadline'])} "
              f"| {pct(r['p99'], r['deadline'])} | {r['loss']:.1e} | {r['note']} |")
    P, frames, target = TARGET
    print()
    for r in rows:
        if r["P"] == P and r["frames"] == frames:
            got = 100 * r["med"] / r["deadline"]
            print(f"target: {P} parameters at {frames} frames, median <= {target:g} % of the deadline; "
                  f"{r['state']}, {r['sched']}: {got:.2f} % ({'within' if got <= target else 'OVER'} the target)")
    print(f"({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
