"""Live real-time behaviour on a JACK dummy server this script starts (and stops): lost blocks of
our cfunc callback vs a Python callback while the main thread is busy, and the bit-exact
self-loopback round trip.

    .venv/bin/python benchmarks/live_realtime.py [--seconds 60] [--blocksize 128] [--qt]

a) cfunc: Session + CircuitSpec("y = gain*x + dc"), LCG noise, for --seconds while the main thread
   runs a pure-Python dict/list loop (draining telemetry every 50 ms, like `run --headless`).
   Baseline: the same with the main thread idle, for min(--seconds, 10) s (--no-idle skips it).
b) reference: a sounddevice.Stream with a Python callback that runs Learner.process (one njit
   kernel) on each block, under the same load, for min(--seconds, 10) s.
c) --qt: a) and b) with a pyqtgraph PlotWidget repainting at 30 fps (offscreen) instead of the loop.
d) round trip: output mode "target", y = g*x with g = 1 (learning off), a 997 Hz sine at 0.5; our
   JACK outputs are wired to our inputs, and the lag L with input[n] == float32(out_left[n-L])
   is searched in the scope (SC_INPUT, SC_OUT_LEFT).

Each measured window starts after a settle period, so stream start-up xruns are counted apart.
Two witnesses of lost audio: PortAudio's status flags in the callback (our C_XRUNS counter, or the
Python callback's `status`) and JACK's own xrun notifications (a jack.Client xrun callback).
Nothing is asserted.
"""
import argparse
import atexit
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

SR = 48000
SETTLE = 1.0            # seconds after a stream starts before its window is measured
DRAIN_EVERY = 0.05


# ---------------------------------------------------------------- JACK server (before sounddevice)
class JackServer:
    """jackd with the dummy driver under a unique name, like ./dev's start_jack."""

    def __init__(self, blocksize):
        if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
            sys.exit("jackd/jack_lsp not found (Debian package jackd2)")
        self.name = f"dualtone-bench-{os.getpid()}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="dualtone-bench-jackd-", suffix=".log")
        # real-time scheduling when allowed (as ./dev test and a musician's machine use it)
        rt_ok = subprocess.run(["chrt", "-f", "10", "true"], capture_output=True).returncode == 0
        self.mode = ["--realtime", "--realtime-priority", "70"] if rt_ok else ["--no-realtime"]
        self.proc = subprocess.Popen(
            ["jackd", *self.mode, "--name", self.name, "-d", "dummy", "-r", str(SR),
             "-p", str(blocksize), "-C", "2", "-P", "2"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # stopped at exit, after sounddevice's own exit handler (registered later, so run earlier)
        # has closed PortAudio's JACK client: PortAudio aborts if the server is gone first
        atexit.register(self.stop)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name)
        for _ in range(100):
            if subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0:
                os.environ["JACK_DEFAULT_SERVER"] = self.name
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.log.seek(0)
        sys.exit("the JACK dummy server did not start:\n" + self.log.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- loads
def busy_python(seconds, tick):
    """The main thread in pure Python (dict/list work) for `seconds`; tick() every 50 ms."""
    d, lst = {}, []
    end = time.monotonic() + seconds
    next_tick = time.monotonic() + DRAIN_EVERY
    while True:
        for k in range(2000):
            d[k % 509] = d.get(k % 499, 0) + k
            lst.append((k, str(k & 63)))
        if len(lst) > 100_000:
            lst.clear()
        now = time.monotonic()
        if now >= next_tick:
            tick()
            next_tick = now + DRAIN_EVERY
        if now >= end:
            return


def idle(seconds, tick):
    """The baseline: the main thread sleeps, waking every 50 ms for tick()."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(DRAIN_EVERY, max(end - time.monotonic(), 0.0)))
        tick()


class QtLoad:
    """A pyqtgraph PlotWidget (offscreen) whose curve is reset and repainted at 30 fps."""

    def __init__(self):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6 import QtCore, QtWidgets
        import pyqtgraph as pg
        self.QtCore = QtCore
        self.app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        self.plot = pg.PlotWidget()
        self.plot.resize(1000, 500)
        self.curve = self.plot.plot()
        self.plot.show()
        import numpy as np
        self.run(1.0, lambda: np.zeros(4096), lambda: None)     # warm-up: first paints, fonts

    def run(self, seconds, data, tick):
        """data() -> 1-D array to plot; tick() drains the telemetry. Returns frames painted."""
        QtCore = self.QtCore
        painted = [0]

        def frame():
            tick()
            self.curve.setData(data())
            self.plot.repaint()
            painted[0] += 1

        timer = QtCore.QTimer()
        timer.setTimerType(QtCore.Qt.PreciseTimer)
        timer.timeout.connect(frame)
        timer.start(33)
        QtCore.QTimer.singleShot(int(seconds * 1000), self.app.quit)
        self.app.exec()
        timer.stop()
        return painted[0]


# ---------------------------------------------------------------- JACK witness
class XrunWitness:
    """A second JACK client (no ports, no process callback) that counts JACK's xrun notifications."""

    def __init__(self, server):
        import jack
        self.client = jack.Client(f"dualtone-xrun-witness-{os.getpid()}", servername=server,
                                  no_start_server=True)
        self.count = 0
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, delayed_usecs):
        self.count += 1

    def read(self):
        """The count, after a moment for notifications still queued behind the GIL."""
        time.sleep(0.2)
        return self.count

    def close(self):
        self.client.deactivate()
        self.client.close()


def jack_device(sd):
    for d in sd.query_devices():
        if "JACK" in sd.query_hostapis(d["hostapi"])["name"] and d["max_output_channels"] >= 2:
            return d["index"]
    sys.exit("PortAudio sees no JACK device (was the server up before sounddevice was imported?)")


# ---------------------------------------------------------------- a) the cfunc callback
GAIN_DC = dict(circuit="y = gain*x + dc", hidden={"gain": 0.5, "dc": 0.5})


def run_cfunc(device, blocksize, seconds, load, witness, qt=None):
    from app.host import layout as H
    from app.session import CircuitSpec, ParamSpec, Session, Settings
    from app.host.telemetry import RunStats
    spec = CircuitSpec(GAIN_DC["circuit"], [ParamSpec("gain", 0.0), ParamSpec("dc", 0.0)],
                       hidden=dict(GAIN_DC["hidden"]), settings=Settings(optimizer="sgd", window=32, lr=1e-2))
    stats = RunStats()
    j_start = witness.read()
    with Session(SR, blocksize, device=device, allow_virtual=False) as s:
        s.load(spec)
        s.set_source("lcg-noise")
        s.set_output("stereo")
        info = s.start()

        def tick():
            stats.add(s.telemetry.drain())

        time.sleep(SETTLE)
        tick()
        j0 = witness.read()
        c0 = s.counters()
        stats = RunStats()
        t0 = time.monotonic()
        if load == "python":
            busy_python(seconds, tick)
        elif load == "idle":
            idle(seconds, tick)
        else:
            painted = qt.run(seconds, lambda: s.telemetry.scope(4096, H.SC_OUT_LEFT), tick)
        elapsed = time.monotonic() - t0
        c1 = s.counters()
        j1 = witness.read()
        tick()
        status_bits = int(s.memory.ctl[H.C_STATUS_BITS])
        med, p99, _worst = stats.cpu_percentiles()
        s.stop()
    r = dict(callback="cfunc (ours)", load=load, seconds=elapsed,
             callbacks=c1["callbacks"] - c0["callbacks"], expected=round(elapsed * SR / blocksize),
             flagged=c1["xruns"] - c0["xruns"], jack=j1 - j0, startup_flagged=c0["xruns"],
             startup_jack=j0 - j_start, status_bits=status_bits, cpu_med=med, cpu_p99=p99, device=info.device)
    if load == "qt":
        r["fps"] = painted / elapsed
    return r


# ---------------------------------------------------------------- b) a Python callback
def run_python(device, blocksize, seconds, load, witness, qt=None):
    import numpy as np
    import sounddevice as sd
    from engine.learn.learner import Learner, ParamSpec, Settings
    from engine.sources import LcgNoise
    learner = Learner(GAIN_DC["circuit"], [ParamSpec("gain", 0.0), ParamSpec("dc", 0.0)],
                      hidden=dict(GAIN_DC["hidden"]), settings=Settings(optimizer="sgd", window=32, lr=1e-2),
                      sample_rate=SR)
    noise = LcgNoise().read(SR)                  # 1 s of diff.lib's LCG, looped (as in a)
    out = np.zeros((blocksize, 3))
    learner.process(noise[:blocksize], out=out)  # compiled before the stream starts
    st = dict(calls=0, flagged=0, bits=0, pos=0)
    last = np.zeros(4096)

    def callback(indata, outdata, frames, time_info, status):
        st["calls"] += 1
        if status.input_overflow or status.input_underflow or status.output_underflow \
                or status.output_overflow:
            st["flagged"] += 1
            st["bits"] |= (status.input_underflow | status.input_overflow << 1
                           | status.output_underflow << 2 | status.output_overflow << 3)
        p = st["pos"]
        if p + frames > noise.shape[0]:
            p = 0
        o = out[:frames]
        learner.process(noise[p:p + frames], out=o)
        st["pos"] = p + frames
        outdata[:, 0] = o[:, 0]
        outdata[:, 1] = o[:, 1]

    stream = sd.Stream(device=device, samplerate=SR, blocksize=blocksize, channels=2,
                       dtype="float32", callback=callback)
    j_start = witness.read()
    with stream:
        time.sleep(SETTLE)
        j0 = witness.read()
        n0, f0 = st["calls"], st["flagged"]
        t0 = time.monotonic()
        if load == "python":
            busy_python(seconds, lambda: None)
        elif load == "idle":
            idle(seconds, lambda: None)
        else:
            painted = qt.run(seconds, lambda: last, lambda: None)
        elapsed = time.monotonic() - t0
        n1, f1 = st["calls"], st["flagged"]
        j1 = witness.read()
    r = dict(callback="Python + njit", load=load, seconds=elapsed, callbacks=n1 - n0,
             expected=round(elapsed * SR / blocksize), flagged=f1 - f0, jack=j1 - j0,
             startup_flagged=f0, startup_jack=j0 - j_start, status_bits=st["bits"],
             cpu_med=float("nan"), cpu_p99=float("nan"), device="")
    if load == "qt":
        r["fps"] = painted / elapsed
    return r


# ---------------------------------------------------------------- d) round trip
def run_latency(device, blocksize, server, window=48000, max_lag=8192):
    import jack
    import numpy as np
    from app.host import layout as H
    from app.session import CircuitSpec, ParamSpec, Session, Settings
    spec = CircuitSpec("y = g*x", [ParamSpec("g", 1.0)], hidden={"g": 1.0},
                       settings=Settings(learning=False))
    client = jack.Client(f"dualtone-patchbay-{os.getpid()}", servername=server, no_start_server=True)
    client.activate()
    with Session(SR, blocksize, device=device, allow_virtual=False) as s:
        s.load(spec)
        s.set_output("target")
        s.set_source("sine", hz=997)
        s.set_source_gain(0.5)
        info = s.start()
        time.sleep(0.3)
        skip = {"system", client.name}
        outs = sorted((p for p in client.get_ports(is_audio=True, is_output=True)
                       if p.name.split(":", 1)[0] not in skip), key=lambda p: p.name)
        ins = sorted((p for p in client.get_ports(is_audio=True, is_input=True)
                      if p.name.split(":", 1)[0] not in skip), key=lambda p: p.name)
        if not outs or not ins:
            return dict(error=f"our JACK ports not found (outputs {outs}, inputs {ins})")
        for p in ins:
            for c in client.get_all_connections(p):
                client.disconnect(c, p)
        for o, i in zip(outs, ins):
            client.connect(o, i)
        wiring = ", ".join(f"{o.name} -> {i.name}" for o, i in zip(outs, ins))
        time.sleep(0.5 + window / SR)
        data = s.telemetry.scope(window + max_lag, [H.SC_INPUT, H.SC_OUT_LEFT])
        s.stop()
    client.deactivate()
    client.close()
    inp = data[:, 0]
    out32 = data[:, 1].astype(np.float32).astype(np.float64)
    n = data.shape[0]
    exact = [L for L in range(1, max_lag) if np.array_equal(inp[L:], out32[:n - L])]
    # the nearest lag by least squares, whether or not it is exact
    errs = [float(np.max(np.abs(inp[L:] - out32[:n - L]))) for L in range(1, max_lag)]
    best = int(np.argmin(errs)) + 1
    return dict(exact_lags=exact, lag=exact[0] if exact else best, bit_exact=bool(exact),
                max_err=errs[best - 1], compared=n - best, wiring=wiring,
                pa_in_latency=info.input_latency, pa_out_latency=info.output_latency,
                in_peak=float(np.max(np.abs(inp))))


# ---------------------------------------------------------------- report
def fmt_row(r, blocksize):
    lost = r["expected"] - r["callbacks"]
    ratio = r["flagged"] / r["callbacks"] if r["callbacks"] else float("nan")
    load = {"idle": "idle (baseline)", "python": "pure-Python loop", "qt": f"pyqtgraph {r.get('fps', 0):.0f} fps"}[r["load"]]
    cpu = "" if r["cpu_med"] != r["cpu_med"] else f"{r['cpu_med']:.1f} / {r['cpu_p99']:.1f}"
    return (f"| {r['callback']} | {load} | {r['seconds']:.1f} | {r['callbacks']} | {r['expected']} "
            f"| {100 * lost / r['expected']:.2f} % | {r['flagged']} | {100 * ratio:.2f} % | {r['jack']} "
            f"| {r['startup_flagged']} / {r['startup_jack']} | {r['status_bits']} | {cpu} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of a) (b is min(this, 10))")
    ap.add_argument("--blocksize", type=int, default=128)
    ap.add_argument("--qt", action="store_true", help="also run a) and b) under a 30 fps pyqtgraph load")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,d")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-main-thread baselines")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))

    server = JackServer(a.blocksize)      # stopped at exit
    import numba
    import sounddevice as sd       # only now: PortAudio sees JACK only if the server is up
    device = jack_device(sd)
    nproc = os.cpu_count()
    print(f"{platform.processor() or platform.machine()}, {nproc} CPUs, Python {platform.python_version()}, "
          f"numba {numba.__version__}, sounddevice {sd.__version__}, "
          f"{sd.get_portaudio_version()[1]}; JACK dummy '{server.name}' ({server.mode[0][2:]}) {SR} Hz, "
          f"{a.blocksize} frames; settle {SETTLE:g} s before each window", flush=True)
    witness = XrunWitness(server.name)
    qt = QtLoad() if a.qt else None
    rows = []
    b_seconds = min(a.seconds, 10.0)
    plan = []
    if not a.no_idle:
        if "a" not in skip:
            plan.append(("a", run_cfunc, b_seconds, "idle"))
        if "b" not in skip:
            plan.append(("b", run_python, b_seconds, "idle"))
    if "a" not in skip:
        plan.append(("a", run_cfunc, a.seconds, "python"))
    if "b" not in skip:
        plan.append(("b", run_python, b_seconds, "python"))
    if a.qt:
        if "a" not in skip:
            plan.append(("c", run_cfunc, a.seconds, "qt"))
        if "b" not in skip:
            plan.append(("c", run_python, b_seconds, "qt"))
    for part, fn, seconds, load in plan:
        print(f"  {part}) {fn.__name__}, {load} load, {seconds:g} s ...", file=sys.stderr, flush=True)
        rows.append(fn(device, a.blocksize, seconds, load, witness, qt))
        print(f"     {rows[-1]}", file=sys.stderr, flush=True)
    lat = None
    if "d" not in skip:
        print("  d) round trip ...", file=sys.stderr, flush=True)
        lat = run_latency(device, a.blocksize, server.name)
    witness.close()

    print()
    if rows:
        print("| callback | main-thread load | s | callbacks | expected | missing callbacks | "
              "PortAudio-flagged | flagged / callbacks | JACK xruns | start-up flagged / JACK "
              "| status bits | callback µs median / p99 |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
        for r in rows:
            print(fmt_row(r, a.blocksize))
        print()
        print(f"The Python-callback rows and the idle baselines run min(--seconds, 10) = {b_seconds:g} s. "
              "'missing callbacks' = "
              "(expected - callbacks) / expected, expected = window x rate / blocksize. Status bits: "
              "1 input underflow, 2 input overflow, 4 output underflow, 8 output overflow.")
    if lat is not None:
        print()
        if "error" in lat:
            print(f"round trip: {lat['error']}")
        else:
            print("| round trip | samples | blocks | bit-exact | max abs error at that lag | "
                  "samples compared | PortAudio-reported in + out latency |")
            print("|---|---:|---:|---|---:|---:|---:|")
            print(f"| {lat['wiring']} | {lat['lag']} | {lat['lag'] / a.blocksize:g} | "
                  f"{'yes' if lat['bit_exact'] else 'no'} | {lat['max_err']:.3g} | {lat['compared']} "
                  f"| {1000 * (lat['pa_in_latency'] + lat['pa_out_latency']):.2f} ms |")
            if len(lat["exact_lags"]) > 1:
                print(f"(several exact lags: {lat['exact_lags'][:8]})")


if __name__ == "__main__":
    main()
