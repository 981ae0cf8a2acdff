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
    return 0


if __name__ == "__main__":
    sys.exit(main())
