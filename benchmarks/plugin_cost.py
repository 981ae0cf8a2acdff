"""Cost of hosting plugins: one plugin block called the way the callback calls it (Numba,
through the run address, with the NaN guard, FTZ/DAZ and the dry delay line: run_as_target)
against the same block called through ctypes from Python, side by side in one run; and the whole
ground-truth path per 128-frame block as a share of the deadline (2667 us at 48 kHz).

    .venv/bin/python benchmarks/plugin_cost.py [--blocks 4000] [--frames 128]

Overhead = (ours - ctypes) per call; the target is <= 1 us per call (the callback's extra work
is the float64 <-> float32 copies and the delay line, which ctypes' figure does not include, so
ours may even be the larger one by that copy)."""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo root
import numpy as np  # noqa: E402

from app.host.processors import run_as_target  # noqa: E402
from app.plugins import registry  # noqa: E402
from app.truths import PluginTruth  # noqa: E402
from numba import njit  # noqa: E402

PLUGINS = [("ladspa:lpf", {"cutoff_frequency_hz": 800.0}), ("ladspa:amp_mono", {"gain": 0.5}),
           ("ladspa:fastLookaheadLimiter", {"limit_db": -6.0}), ("ladspa:1216", {}),
           ("lv2:http://plugin.org.uk/swh-plugins/lowpass_iir", {}),
           ("lv2:http://drobilla.net/plugins/fomp/mvclpf1", {})]


@njit(nogil=True)
def _many(table, x, out, n, blocks):
    """Call the ground-truth path `blocks` times, as the callback does (timed around the batch)."""
    for _ in range(blocks):
        run_as_target(table, x, out, n)


def _median_us(f, repeats=7):
    return statistics.median(f() for _ in range(repeats))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=4000)
    ap.add_argument("--frames", type=int, default=128)
    a = ap.parse_args()
    n, blocks = a.frames, a.blocks
    x = np.random.default_rng(0).uniform(-0.5, 0.5, n)
    out = np.zeros((n, 3))
    deadline_us = 1e6 * n / 48000
    print(f"{'plugin':52s} {'ctypes us':>10s} {'ours us':>9s} {'overhead':>9s} {'% deadline':>10s}")
    for pid, controls in PLUGINS:
        try:
            info = registry.find(pid)
        except Exception as e:             # not installed here
            print(f"{pid:52s} skipped: {e}")
            continue
        ours_inst = registry.instantiate(info, 48000, n)
        truth = PluginTruth(ours_inst, controls, n)
        ref = registry.instantiate(info, 48000, n)
        for k, c in enumerate(info.controls):
            ref.controls[k] = truth.plugin_values()[c.symbol]
        ref.activate()
        for ch in range(ref.audio_in.shape[0]):
            ref.audio_in[ch, :n] = x.astype(np.float32)
        _many(truth.processor.table, x, out, n, 10)          # compile and warm
        import ctypes
        from app.plugins.instance import API_LADSPA
        count = ctypes.c_ulong if ref.api_code == API_LADSPA else ctypes.c_uint32
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, count)(ref.run_address)

        def ctypes_batch():
            t0 = time.perf_counter()
            for _ in range(blocks):
                fn(ref.handle, n)
            return 1e6 * (time.perf_counter() - t0) / blocks

        def ours_batch():
            t0 = time.perf_counter()
            _many(truth.processor.table, x, out, n, blocks)
            return 1e6 * (time.perf_counter() - t0) / blocks
        c_us, o_us = _median_us(ctypes_batch), _median_us(ours_batch)
        print(f"{info.name[:38] + ' (' + info.api + ')':52s} {c_us:10.2f} {o_us:9.2f} {o_us - c_us:+9.2f} "
              f"{100 * o_us / deadline_us:9.2f}%")
        truth.close()
        ref.close()
    whole_callback(n, blocks)
    return 0


def whole_callback(frames: int, blocks: int):
    """The real callback (the cfunc through its C address, duplex 2/2, LCG source) with a one-pole
    circuit learning against ladspa-sdk's low-pass, side by side with the same circuit learning a
    hidden circuit: median and 99th percentile of T_CPU_US, and as a share of the deadline."""
    from app.host import layout as H
    from app.host.memory import HostMemory, Slot
    from app.host.stream import direct_caller
    from app.host.telemetry import TelemetryReader
    from engine.learn.learner import Learner, ParamSpec, Settings
    from app.truths import open_plugin
    circuit = "c = exp(-2*pi*cutoff/SR)\ny = (1 - c)*x + c*y@1"
    deadline = 1e6 * frames / 48000
    print(f"\nthe whole callback, {frames} frames, {blocks} blocks (deadline {deadline:.0f} us)")
    print(f"{'ground truth':40s} {'median us':>10s} {'p99 us':>8s} {'median % deadline':>18s}")
    for label, plugin in (("a hidden one-pole circuit", None), ("ladspa-sdk lpf (plugin)", "ladspa:lpf"),
                          ("swh-lv2 lowpass_iir (plugin)", "lv2:http://plugin.org.uk/swh-plugins/lowpass_iir")):
        mem = HostMemory(48000, 2, 2, telemetry_rows=8192)
        mem.ctl[H.C_SOURCE] = H.SOURCES["lcg-noise"]
        mem.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["stereo"]
        settings = Settings(optimizer="adam", lr=20.0)
        params = [ParamSpec("cutoff", 2000.0, 20.0, 20000.0)]
        if plugin is None:
            learner = Learner(circuit, params, hidden={"cutoff": 500.0}, settings=settings, sample_rate=48000)
            truth = None
        else:
            learner = Learner(circuit, params, target="y = plugin", settings=settings, sample_rate=48000)
            truth = open_plugin(plugin, {}, 48000, mem.max_frames)
        mem.install(0, Slot(learner, mem.x, mem.max_frames, truth=truth))
        reader = TelemetryReader(mem, lambda: mem.active.names)
        call = direct_caller()
        inp = np.zeros((frames, 2), dtype=np.float32)
        out = np.zeros((frames, 2), dtype=np.float32)
        args = (inp.ctypes.data, out.ctypes.data, frames, None, 0, mem.address)
        for _ in range(500):
            call(*args)
        reader.drain()
        cpu = []
        for k in range(blocks):
            call(*args)
            if k % 2048 == 2047:
                cpu.append(reader.drain()[:, H.T_CPU_US])
        cpu.append(reader.drain()[:, H.T_CPU_US])
        cpu = np.concatenate(cpu)
        med, p99 = float(np.median(cpu)), float(np.percentile(cpu, 99))
        print(f"{label:40s} {med:10.2f} {p99:8.2f} {100 * med / deadline:17.2f}%")
        if truth is not None:
            truth.close()


if __name__ == "__main__":
    sys.exit(main())
