"""A 20-second soak of the window on the JACK dummy server: live plots at 30 fps, resizes, a menu
opened and closed, a slow plot — and the audio keeps its pace with no more xruns than the host's
own rate, measured side by side (tests/live/host_xruns.py), and no callback late by its own doing."""
import sys
import time

import numpy as np

from app.host import layout as H
from app.session import Session
from app.workspace import Workspace
from tests.live.host_xruns import XrunListener, host_xruns, xrun_allowance


def test_twenty_second_soak_with_live_plots_keeps_the_hosts_xrun_rate(qtbot, jack_server, tmp_path, monkeypatch):
    from pyqtgraph.Qt import QtCore
    from ui.main_window import MainWindow
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path))
    session = Session(48000, 128)
    w = MainWindow(Workspace(session), [], [], autosave=False)
    qtbot.addWidget(w)
    w.show()
    w.open_preset("tanh-drive")
    qtbot.waitUntil(lambda: w.loaded >= 1 and not w.busy, timeout=60000)
    info = session.info
    assert not info.virtual and "JACK" in info.device, info
    host = host_xruns(10.0)               # the host's own rate, with the window open and learning
    heard = XrunListener()
    cpu_us = []                            # every block's callback time, as the window drains them
    drain = session.telemetry.drain
    def recording_drain():
        rows = drain()
        cpu_us.append(rows[:, H.T_CPU_US].copy())
        return rows
    session.telemetry.drain = recording_drain       # an instance attribute over the method
    c0 = session.counters()
    t0 = time.monotonic()
    step = 0
    menu = w.menuBar().actions()[0].menu()
    slow = QtCore.QTimer(w, interval=500)
    def slow_plot():                                       # a plot that holds the GIL for ~80 ms
        end = time.perf_counter() + 0.08
        while time.perf_counter() < end:
            pass
    slow.timeout.connect(slow_plot)
    slow.start()
    while time.monotonic() - t0 < 20.0:
        step += 1
        w.resize(1200 + 300 * (step % 3), 800 + 150 * (step % 2))
        if step % 10 == 0:
            menu.popup(w.mapToGlobal(QtCore.QPoint(20, 20)))
            qtbot.wait(150)
            menu.hide()
        if step % 7 == 0:
            w.hidden.rows["drive"][0].setValue((step * 37) % 1000)
        qtbot.wait(100)
    slow.stop()
    elapsed = time.monotonic() - t0
    c1 = session.counters()
    heard.close()
    callbacks = c1["callbacks"] - c0["callbacks"]
    expected = elapsed * info.sample_rate / info.blocksize
    assert callbacks >= 0.95 * expected, (callbacks, expected)
    assert heard.count <= xrun_allowance(callbacks, host), (heard.count, callbacks, host)
    del session.telemetry.drain                # the window's later ticks drain as before
    block_us = np.concatenate(cpu_us + [session.telemetry.drain()[:, H.T_CPU_US]])
    late = int(np.count_nonzero(block_us > 1e6 * info.blocksize / info.sample_rate))
    assert block_us.size >= 0.95 * callbacks and late <= 0.001 * callbacks, (late, block_us.size, callbacks)
    assert c1["nonfinite_out"] == 0
    # the plots were live the whole time
    t, loss = w.loss_history.visible_data()
    assert len(loss) > 100 and np.all(np.isfinite(loss))
    print(f"{len(w.frame_ms)} frames in 20 s", file=sys.stderr)
    assert len(w.frame_ms) > 20 * 20
    w.close()
