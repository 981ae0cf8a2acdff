"""The window with a device in the loop on the JACK dummy server: Ground truth from an input
channel, Measure latency — the dialog shows the round trip through the stand-in device
(tests/live/loop_device.py) exactly, and the circuit learns the device."""
import os

from app.session import Session
from app.workspace import Workspace
from tests.live.loop_device import loop_device


def test_the_window_measures_the_device_and_learns_it(qtbot, jack_server, tmp_path, monkeypatch):
    from ui.main_window import MainWindow
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path))
    # the device first: it routes itself to the ports our stream opens after it
    with loop_device(f"gui-device-{os.getpid()}", 37, khz=1.2, drive=3.0):
        session = Session(48000, 128)
        w = MainWindow(Workspace(session), [], [], autosave=False)
        qtbot.addWidget(w)
        w.show()
        w.open_preset("recording-drive")            # its circuit; the ground truth is replaced
        qtbot.waitUntil(lambda: w.loaded >= 1 and not w.busy, timeout=60000)
        assert not session.info.virtual
        qtbot.wait(300)                              # the device's router has connected it
        dialog = w.device_dialog()
        dialog.return_box.setValue(1)
        dialog.send_box.setValue(2)
        dialog.measure_button.click()
        qtbot.waitUntil(lambda: dialog.measure_button.isEnabled(), timeout=60000)
        assert dialog.result.text().startswith("latency 293 samples (6.10 ms)"), dialog.result.text()
        assert session.ground_truth()["latency"] == 293 and session.spec.device.latency == 293
        assert "round trip 293 samples" in w.hidden.title()
        qtbot.waitUntil(lambda: abs(session.params()["cutoff_khz"] - 1.2) < 2e-3
                        and abs(session.params()["drive"] - 3.0) < 5e-3, timeout=30000)
        w.close()
