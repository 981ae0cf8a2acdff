"""The desktop window's cost, on a JACK dummy server this script starts (and stops), offscreen.

    .venv/bin/python benchmarks/gui_frames.py [--seconds 20] [--blocksize 128]

a) start-up: `main.py --preset gain+dc --seconds 0.2 --screenshot` as a new process on a warm
   Numba cache; the process's wall time, and inside it the time from entering ui.app.run to the
   window's first paint and to the preset learning (the summary line reports both).
b) frame time: the window with every plot live (tanh-drive preset, 8 frames of telemetry per frame),
   each frame = drain + plot updates + a synchronous repaint of the whole window; median / p95 ms.
c) xruns attributable to the GUI: the same session headless (main thread draining every 50 ms)
   and then with the window open at 30 fps (resized every 0.5 s, a menu opened every 2 s), each
   for --seconds; PortAudio-flagged callbacks / callbacks for both, side by side.
d) idle cost: the window open on the default preset (gain+dc) with nothing changing on screen but
   the live plots, for --seconds; the GUI thread's CPU time / wall time (the issue's target: at
   most 10 % of a core).
Nothing is asserted.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["DUALTONE_CONFIG_DIR"] = tempfile.mkdtemp(prefix="dualtone-bench-cfg-")


def startup(repeats=3):
    out = []
    for _ in range(repeats):
        shot = Path(tempfile.mkdtemp()) / "s.png"
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--preset", "gain+dc", "--seconds", "0.2",
                            "--screenshot", str(shot)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        out.append((wall, summary["window_shown_s"], summary["learning_s"]))
    return out


def frames(session_factory, seconds):
    from pyqtgraph.Qt import QtWidgets
    from app.workspace import Workspace
    from ui.main_window import MainWindow
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    w = MainWindow(Workspace(session_factory()), [], [], autosave=False)
    w._timer.stop()                       # frames are driven by hand below, at 30 fps
    w.show()
    w.open_preset("tanh-drive")
    while not (w.loaded and not w.busy):
        app.processEvents()
        time.sleep(0.01)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        w.tick()
        w.repaint()
        app.processEvents()
        times.append(1000 * (time.perf_counter() - t0))
        time.sleep(max(0.0, 1 / 30 - (time.perf_counter() - t0)))
    w.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times))], len(times)


def xruns(session_factory, seconds, with_gui):
    from pyqtgraph.Qt import QtCore, QtWidgets
    from app.workspace import Workspace
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    session = session_factory()
    ws = Workspace(session)
    if with_gui:
        from ui.main_window import MainWindow
        w = MainWindow(ws, [], [], autosave=False)
        w.show()
        w.open_preset("tanh-drive")
        while not (w.loaded and not w.busy):
            app.processEvents()
            time.sleep(0.01)
    else:
        from app.preset import document as presets
        from app.preset import store
        ws.apply(presets.load(store.resolve("tanh-drive")))
        session.start()
    time.sleep(1.0)                        # stream start-up is not counted
    c0 = session.counters()
    t0 = time.monotonic()
    step = 0
    while time.monotonic() - t0 < seconds:
        step += 1
        if with_gui:
            if step % 15 == 0:
                w.resize(1200 + 200 * (step % 3), 800 + 100 * (step % 2))
            if step % 60 == 0:
                menu = w.menuBar().actions()[0].menu()
                menu.popup(w.mapToGlobal(QtCore.QPoint(10, 10)))
            if step % 60 == 20:
                w.menuBar().actions()[0].menu().hide()
            app.processEvents()
            time.sleep(1 / 30)
        else:
            time.sleep(0.05)
            session.telemetry.drain()
    elapsed = time.monotonic() - t0
    c1 = session.counters()
    if with_gui:
        w.close()
    else:
        ws.close(autosave=False)
    return dict(seconds=elapsed, callbacks=c1["callbacks"] - c0["callbacks"], xruns=c1["xruns"] - c0["xruns"],
                expected=round(elapsed * 48000 / session.blocksize))


def idle_cost(session_factory, seconds) -> float:
    """The GUI thread's share of one core with the window open on gain+dc for `seconds`."""
    from pyqtgraph.Qt import QtWidgets
    from app.workspace import Workspace
    from ui.main_window import MainWindow
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    w = MainWindow(Workspace(session_factory()), [], [], autosave=False)
    w.show()
    w.open_preset("gain+dc")
    while w.busy or w.loaded < 1:
        app.processEvents()
        time.sleep(0.005)
    end = time.monotonic() + 2.0                # settle: the first frames draw everything
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.002)
    cpu0, t0 = time.thread_time(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.002)
    share = (time.thread_time() - cpu0) / (time.monotonic() - t0)
    w.close()
    return share


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--blocksize", type=int, default=128)
    a = ap.parse_args()
    from live_realtime import JackServer
    server = JackServer(a.blocksize)
    from app.session import Session

    def session():
        return Session(48000, a.blocksize, allow_virtual=False)

    print(f"JACK dummy '{server.name}' ({server.mode[0][2:]}), 48000 Hz, {a.blocksize} frames, offscreen Qt")
    runs = startup()
    print("\n| start-up run | process wall s | window shown s | learning s |\n|---:|---:|---:|---:|")
    for k, (wall, shown, learning) in enumerate(runs, 1):
        print(f"| {k} | {wall:.2f} | {shown:.2f} | {learning:.2f} |")
    med, p95, n = frames(session, min(a.seconds, 10.0))
    print(f"\nframe (drain + plots + full repaint), {n} frames at 30 fps: median {med:.2f} ms, p95 {p95:.2f} ms")
    print("\n| main thread | s | callbacks | expected | xruns (PortAudio-flagged) | xruns / callbacks |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, gui in (("headless (drain every 50 ms)", False), ("window open, 30 fps, resizes, menus", True)):
        r = xruns(session, a.seconds, gui)
        print(f"| {label} | {r['seconds']:.1f} | {r['callbacks']} | {r['expected']} | {r['xruns']} | "
              f"{r['xruns'] / max(r['callbacks'], 1):.4%} |", flush=True)
    share = idle_cost(session, a.seconds)
    print(f"\nidle: the window open on gain+dc for {a.seconds:g} s: the GUI thread used {share:.1%} of a core")


if __name__ == "__main__":
    main()
