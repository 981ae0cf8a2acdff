"""Ground truth from an input channel: a device on the audio interface, in the loop. The source
goes out to it on a send output, its return comes back on an input channel, and the round trip
is measured before learning (a test signal played and cross-correlated). The measuring itself is
the window's (it owns the session's worker); this dialog picks the channels and shows results."""
from __future__ import annotations

from pyqtgraph.Qt import QtCore, QtWidgets

from app.recordings.hardware import DeviceSpec
from ui.theme import DIM, ERROR, LEARNED, tint


class DeviceDialog(QtWidgets.QDialog):
    """measure_requested(DeviceSpec): apply this device and measure its round trip; the window
    answers with show_result() or show_error()."""
    measure_requested = QtCore.Signal(object)

    def __init__(self, current: DeviceSpec | None = None, channels: tuple[int, int] = (2, 2), parent=None):
        super().__init__(parent)
        self.setWindowTitle("Ground truth from an input channel")
        layout = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel(
            "A device on your audio interface, in the loop: the source is sent to it on the send output, "
            "and what comes back on the return input is the target. The send output then carries the "
            "device's feed instead of the monitor. The round trip is measured first with a short sweep "
            "at -6 dBFS.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QtWidgets.QFormLayout()
        self.return_box, self.send_box = QtWidgets.QSpinBox(), QtWidgets.QSpinBox()
        for box, name, have in ((self.return_box, "return_channel", channels[0]),
                                (self.send_box, "send_channel", channels[1])):
            box.setObjectName(name)
            box.setRange(1, 64)
            box.setToolTip(f"from 1; this audio device has {have}")
        current = current or DeviceSpec(0, 1)
        self.return_box.setValue(current.return_channel + 1)
        self.send_box.setValue(current.send_channel + 1)
        form.addRow("return: input channel", self.return_box)
        form.addRow("send: output channel", self.send_box)
        layout.addLayout(form)
        self.measure_button = QtWidgets.QPushButton("Measure latency")
        self.measure_button.setObjectName("measure")
        self.measure_button.clicked.connect(lambda: self._request())
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 0)                  # busy: the round trip takes a second or two
        self.progress.hide()
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.measure_button)
        row.addWidget(self.progress, 1)
        layout.addLayout(row)
        self.result = QtWidgets.QLabel("not measured yet")
        self.result.setObjectName("result")
        self.result.setWordWrap(True)
        tint(self.result, DIM)
        layout.addWidget(self.result)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def spec(self) -> DeviceSpec:
        return DeviceSpec(self.return_box.value() - 1, self.send_box.value() - 1)

    def _request(self):
        self.measure_button.setEnabled(False)
        self.progress.show()
        self.result.setText("measuring the round trip…")
        tint(self.result, DIM)
        self.measure_requested.emit(self.spec())

    def show_result(self, alignment, sample_rate: float):
        """A measurement: the latency and its confidence; an inverting device in a warning colour."""
        self._idle()
        self.result.setText(f"{alignment.describe(sample_rate)}: learning from the device")
        tint(self.result, LEARNED if alignment.polarity < 0 else DIM)
        self._fit()

    def show_error(self, text: str):
        self._idle()
        self.result.setText(f"{text} (learning is paused until a measurement succeeds)")
        tint(self.result, ERROR)
        self._fit()

    def _idle(self):
        self.measure_button.setEnabled(True)
        self.progress.hide()

    def _fit(self):
        """Grow to show a long result whole (wrapped labels do not grow their window themselves)."""
        self.layout().activate()
        needed = self.heightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)
