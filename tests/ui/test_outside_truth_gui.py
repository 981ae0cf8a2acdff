"""Recordings and devices in the window, offscreen (pytest-qt): the recording dialog reads the
shipped pair, offers a channel only for multichannel files, estimates the alignment on a thread
and refuses a bad pair inline; the window then learns from the recording with its alignment as a
knob; the device dialog shows a measurement or its refusal; back to the circuit target."""
import numpy as np
import pytest
import soundfile as sf

from app.recordings.align import Alignment
from app.recordings.hardware import DeviceSpec
from app.session import Session
from app.workspace import Workspace
from tests.paths import REPO

PAIR = REPO / "presets" / "recordings"
SR = 48000.0


@pytest.fixture
def window(qtbot):
    from ui.main_window import MainWindow
    w = MainWindow(Workspace(Session(48000, 128, device="virtual")), [], [], autosave=False)
    qtbot.addWidget(w)
    w.show()
    w.open_preset("gain+dc")
    qtbot.waitUntil(lambda: w.loaded >= 1 and not w.busy, timeout=60000)
    yield w
    w.close()


def recording_dialog(qtbot, dry="", wet=""):
    from ui.panels.recording import RecordingDialog
    d = RecordingDialog(SR)
    qtbot.addWidget(d)
    d.dry.setText(str(dry))
    d.wet.setText(str(wet))
    d.reload()
    return d


def test_the_dialog_reads_the_pair_and_estimates_its_alignment(qtbot):
    d = recording_dialog(qtbot, PAIR / "drive-dry.wav", PAIR / "drive-wet.wav")
    assert d.recording is not None and d.ok.isEnabled()
    assert not d.channel.isVisibleTo(d)                          # mono files: no channel to pick
    assert "2.00 s at 48000 Hz" in d.status.text()
    assert len(d.overview.getPlotItem().listDataItems()) == 2
    d.estimate()
    qtbot.waitUntil(lambda: not d.estimating(), timeout=30000)
    assert d.align() == 96 and "latency 96 samples (2.00 ms)" in d.status.text()
    assert d.align_ms.text() == "2.00 ms"
    spec = d.spec()
    assert spec.wet == str(PAIR / "drive-wet.wav") and spec.channel is None and len(spec.wet_sha256) == 64


def test_a_multichannel_file_offers_its_channels_and_a_bad_pair_is_refused_inline(qtbot, tmp_path):
    x, _ = sf.read(PAIR / "drive-dry.wav")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([x, 0.5 * x], axis=1), 48000, subtype="FLOAT")
    d = recording_dialog(qtbot, stereo, stereo)
    assert d.channel.isVisibleTo(d)
    assert [d.channel.itemText(i) for i in range(d.channel.count())] == ["1", "2", "mix"]
    assert d.recording is not None and d.selected_channel() == 1
    d.channel.setCurrentText("2")
    d.reload()
    np.testing.assert_allclose(d.recording.dry, 0.5 * x.astype(np.float32), atol=1e-7)
    other = tmp_path / "44k.wav"
    sf.write(other, x, 44100, subtype="FLOAT")
    d = recording_dialog(qtbot, PAIR / "drive-dry.wav", other)
    assert d.recording is None and not d.ok.isEnabled()
    assert "the dry file is 48000 Hz but the wet file is 44100 Hz" in d.status.text()


def test_a_periodic_pair_is_refused_by_the_estimate(qtbot, tmp_path):
    t = np.arange(48000) / 48000
    dry, wet = tmp_path / "sine.wav", tmp_path / "sine-wet.wav"
    sf.write(dry, 0.5 * np.sin(2 * np.pi * 441 * t), 48000, subtype="FLOAT")
    sf.write(wet, 0.5 * np.sin(2 * np.pi * 441 * (t - 37 / 48000)), 48000, subtype="FLOAT")
    d = recording_dialog(qtbot, dry, wet)
    d.align_box.setValue(5)
    d.estimate()
    qtbot.waitUntil(lambda: not d.estimating(), timeout=30000)
    assert "ambiguous" in d.status.text() and d.align() == 5


def test_the_window_learns_from_a_recording_and_goes_back_to_the_circuit(qtbot, window):
    from app.recordings.pair import RecordingSpec
    from app.recordings.pair import sha256_of
    spec = RecordingSpec(str(PAIR / "drive-dry.wav"), str(PAIR / "drive-wet.wav"), None,
                         sha256_of(PAIR / "drive-dry.wav"), sha256_of(PAIR / "drive-wet.wav"))
    window.circuit.circuit.setPlainText("c = exp(-2*pi*1000*cutoff_khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)")
    window.circuit.params.setPlainText("cutoff_khz = 5 : 0.02 : 20\ndrive = 1 : 0.1 : 10")
    window.circuit.target.setPlainText("")
    window.circuit.apply.click()
    qtbot.waitUntil(lambda: window.loaded >= 2 and not window.busy, timeout=60000)
    window.session.configure(optimizer="adam", lr=0.01)
    assert window.use_recording(spec, 96)
    qtbot.waitUntil(lambda: window.loaded >= 3 and not window.busy, timeout=60000)
    s = window.session
    assert s.ground_truth()["kind"] == "recording" and s.ground_truth()["align"] == 96
    assert "align" in window.hidden.rows and window.hidden.title() == "Ground truth: the recording drive-wet.wav"
    assert s.spec.settings.lr_decay_every > 0                     # the rate decays as it converges
    qtbot.waitUntil(lambda: abs(s.params()["cutoff_khz"] - 1.2) < 1e-3 and abs(s.params()["drive"] - 3.0) < 1e-3,
                    timeout=30000)
    window.hidden.set_value("align", 90)                          # the knob moves the alignment
    qtbot.waitUntil(lambda: s.ground_truth()["align"] == 90, timeout=5000)
    assert s.spec.hidden["align"] == 90.0
    window.drop_model()
    qtbot.waitUntil(lambda: window.loaded >= 4 and not window.busy, timeout=60000)
    assert s.ground_truth() is None and s.spec.recording is None and s.spec.target is None


def test_the_device_dialog_shows_a_measurement_or_its_refusal(qtbot):
    from ui.panels.device import DeviceDialog
    d = DeviceDialog(DeviceSpec(2, 3), (4, 4))
    qtbot.addWidget(d)
    assert (d.return_box.value(), d.send_box.value()) == (3, 4)
    asked = []
    d.measure_requested.connect(asked.append)
    d.measure_button.click()
    assert asked == [DeviceSpec(2, 3)] and not d.measure_button.isEnabled()
    d.show_error("the input channel returned silence: is the device connected?")
    assert "returned silence" in d.result.text() and "learning is paused" in d.result.text()
    assert d.measure_button.isEnabled()
    d.show_result(Alignment(293, 41.0, -1), SR)
    assert d.result.text() == "latency 293 samples (6.10 ms), confidence 41.0, polarity inverted: learning from the device"


def test_a_device_needs_an_audio_interface_in_the_window_too(qtbot, window):
    d = window.device_dialog()
    d.measure_button.click()
    assert "needs an audio interface" in d.result.text()
    assert window.session.spec.device is None                     # nothing changed
