"""The recording and device dialogs' smaller promises, offscreen (the main flows are in
test_outside_truth_gui.py): a missing file is named inline, a stereo pair kept without a channel
offers its channels with the first picked, and the device dialog shows its whole explanation."""
import numpy as np
import soundfile as sf

from app.recordings.pair import RecordingSpec
from tests.paths import REPO

PAIR = REPO / "presets" / "recordings"


def test_a_missing_file_is_named_inline(qtbot, tmp_path):
    from ui.panels.recording import RecordingDialog
    d = RecordingDialog(48000.0)
    qtbot.addWidget(d)
    d.dry.setText(str(PAIR / "drive-dry.wav"))
    d.wet.setText(str(tmp_path / "gone.wav"))
    d.reload()
    assert d.status.text() == f"the wet file does not exist: {tmp_path / 'gone.wav'}"
    assert d.recording is None and not d.ok.isEnabled() and not d.estimate_button.isEnabled()


def test_a_stereo_pair_without_a_channel_starts_on_the_first(qtbot, tmp_path):
    from ui.panels.recording import RecordingDialog
    x, _ = sf.read(PAIR / "drive-dry.wav")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([x, -x], axis=1), 48000, subtype="FLOAT")
    d = RecordingDialog(48000.0, RecordingSpec(str(stereo), str(stereo), None, "", ""), 12)
    qtbot.addWidget(d)
    assert d.channel.isVisibleTo(d) and d.selected_channel() == 1 and d.align() == 12
    assert d.recording is not None and d.spec().channel == 1
    np.testing.assert_allclose(d.recording.wet, x.astype(np.float32), atol=1e-7)


def test_the_device_dialog_shows_its_explanation_and_a_long_result_whole(qtbot):
    from pyqtgraph.Qt import QtWidgets
    from app.recordings.align import Alignment
    from ui.panels.device import DeviceDialog
    d = DeviceDialog()
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    d.show_error("the input channel returned only silence: is the device connected and switched on, "
                 "and is the send output routed to it?")
    intro = d.findChildren(QtWidgets.QLabel)[0]
    assert intro.text().startswith("A device on your audio interface")
    qtbot.waitUntil(lambda: all(label.height() >= label.heightForWidth(label.width()) for label in (intro, d.result)))
    d.show_result(Alignment(293, 41.0, -1), 48000.0)
    qtbot.waitUntil(lambda: all(label.height() >= label.heightForWidth(label.width()) for label in (intro, d.result)))
    assert d.result.text().startswith("latency 293 samples (6.10 ms), confidence 41.0, polarity inverted")
