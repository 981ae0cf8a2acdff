"""Ground truth from a recording: the dry file (what went into the device) and the wet file
(what came out), the channel of multichannel files, an overview of both waveforms and a close
look where the dry signal is loudest, with the wet one drawn shifted by the alignment so the
two line up when it is right. The alignment can be typed or estimated (GCC-PHAT, on a thread)."""
from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from app.recordings.pair import (Recording, RecordingError, RecordingSpec, SEARCH_SECONDS, estimate_alignment,
                                 load_pair)
from ui.theme import BG, DIM, ERROR, FG, LEARNED, TARGET, tint

OVERVIEW_POINTS = 4000
DETAIL_SECONDS = 0.01
AUDIO_FILES = "Audio files (*.wav *.flac *.ogg *.aiff *.aif);;All files (*)"


def envelope(x: np.ndarray, points: int = OVERVIEW_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(sample index, value) of a min/max envelope with at most `points` points: the overview
    of a long file without drawing every sample."""
    if x.size <= points:
        return np.arange(x.size), x
    step = -(-x.size // (points // 2))
    n = (x.size // step) * step
    blocks = x[:n].reshape(-1, step)
    idx = np.repeat(np.arange(blocks.shape[0]) * step, 2)
    val = np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1).reshape(-1)
    return idx, val


class RecordingDialog(QtWidgets.QDialog):
    """exec()/open() it; on accept, spec() and align() are the choice (align in samples at
    the session's rate, which the files are resampled to)."""

    def __init__(self, sample_rate: float, current: RecordingSpec | None = None, align: int = 0, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Ground truth from a recording")
        self.sample_rate = float(sample_rate)
        self.recording: Recording | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dualtone-align")
        self._estimate = None
        layout = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel("A device's dry input and its wet output, recorded together. The "
                                 "circuit learns to turn the dry file into the wet one.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QtWidgets.QFormLayout()
        self.dry, self.wet = QtWidgets.QLineEdit(), QtWidgets.QLineEdit()
        for edit, what, name in ((self.dry, "dry", "what went into the device"),
                                 (self.wet, "wet", "what came out")):
            edit.setObjectName(f"{what}_path")
            edit.setPlaceholderText(name)
            edit.editingFinished.connect(self.reload)
            row = QtWidgets.QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QtWidgets.QPushButton("Browse…")
            browse.clicked.connect(lambda _=False, e=edit, w=what: self._browse(e, w))
            row.addWidget(browse)
            form.addRow(f"{what} file", row)
        self.channel = QtWidgets.QComboBox()
        self.channel.setObjectName("channel")
        self.channel.activated.connect(lambda _i: self.reload())
        self.channel_label = QtWidgets.QLabel("channel")
        form.addRow(self.channel_label, self.channel)
        align_row = QtWidgets.QHBoxLayout()
        self.align_box = QtWidgets.QSpinBox()
        self.align_box.setObjectName("align")
        self.align_box.setRange(-int(SEARCH_SECONDS * sample_rate), int(SEARCH_SECONDS * sample_rate))
        self.align_box.setSuffix(" samples")
        self.align_box.setToolTip("the wet file is played this many samples earlier: the device's latency")
        self.align_box.valueChanged.connect(self._draw_detail)
        self.align_ms = QtWidgets.QLabel()
        tint(self.align_ms, DIM)
        self.estimate_button = QtWidgets.QPushButton("Estimate")
        self.estimate_button.setToolTip("find the alignment by cross-correlation (GCC-PHAT)")
        self.estimate_button.clicked.connect(self.estimate)
        align_row.addWidget(self.align_box)
        align_row.addWidget(self.align_ms)
        align_row.addWidget(self.estimate_button)
        align_row.addStretch(1)
        form.addRow("alignment", align_row)
        layout.addLayout(form)
        self.overview = pg.PlotWidget(background=BG)
        self.detail = pg.PlotWidget(background=BG)
        for plot, title in ((self.overview, "both files"), (self.detail, "where the dry file is loudest")):
            plot.setMinimumHeight(130)
            plot.addLegend(offset=(-5, 5), brush=pg.mkBrush(BG), labelTextColor=FG)
            plot.setTitle(title, color=DIM, size="9pt")
            plot.setLabel("bottom", "time", units="s")
            layout.addWidget(plot)
        self.status = QtWidgets.QLabel("")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok = buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Learn from it")
        layout.addWidget(buttons)
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)
        self._channels = 1
        self._show_channels(1, None)
        if current is not None:
            self.dry.setText(current.dry)
            self.wet.setText(current.wet)
            self._selected = current.channel
        self.align_box.setValue(int(align))
        self.reload()
        self.resize(720, 620)

    # ---- files
    def _browse(self, edit, what):
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, f"The {what} file", edit.text(), AUDIO_FILES)
        if path:
            edit.setText(path)
            self.reload()

    def _show_channels(self, count: int, selected):
        """The channel choice is offered only for multichannel files."""
        self._channels = count
        self.channel.clear()
        if count > 1:
            self.channel.addItems([str(k) for k in range(1, count + 1)] + ["mix"])
            if selected is not None:
                self.channel.setCurrentText(str(selected))
        visible = count > 1
        self.channel.setVisible(visible)
        self.channel_label.setVisible(visible)

    def selected_channel(self):
        if self._channels <= 1:
            return None
        text = self.channel.currentText()
        return "mix" if text == "mix" else int(text)

    def reload(self):
        """Read both files (when both are named): errors inline, the plots redrawn."""
        import soundfile as sf
        dry, wet = self.dry.text().strip(), self.wet.text().strip()
        self.recording = None
        self.ok.setEnabled(False)
        self.estimate_button.setEnabled(False)
        if not dry or not wet:
            self._say("pick the dry and the wet file")
            self._draw()
            return
        missing = [f"the {what} file does not exist: {path}" for what, path in (("dry", dry), ("wet", wet))
                   if not os.path.isfile(path)]
        if missing:
            self._say(missing[0], error=True)
            self._draw()
            return
        try:
            count = max(sf.info(dry).channels, sf.info(wet).channels)
        except (RuntimeError, OSError) as e:
            self._say(" ".join(str(e).split()), error=True)
            self._draw()
            return
        if count != self._channels:
            self._show_channels(count, getattr(self, "_selected", None))
        try:
            self.recording = load_pair(dry, wet, self.selected_channel(), rate=self.sample_rate)
        except RecordingError as e:
            self._say(str(e), error=True)
            self._draw()
            return
        r = self.recording
        self._say(f"{r.seconds:.2f} s at {r.file_rate} Hz" + ("" if r.file_rate == self.sample_rate
                                                                else f", played at {self.sample_rate:g} Hz"))
        self.ok.setEnabled(True)
        self.estimate_button.setEnabled(True)
        self._draw()

    def _say(self, text: str, error: bool = False):
        self.status.setText(text)
        tint(self.status, ERROR if error else DIM)

    # ---- alignment
    def estimate(self):
        if self.recording is None or self._estimate is not None:
            return
        self._estimate = self._pool.submit(estimate_alignment, self.recording)
        self.estimate_button.setEnabled(False)
        self._say("estimating the alignment…")
        self._timer.start()

    def _poll(self):
        from app.recordings.align import AlignmentError
        if self._estimate is None or not self._estimate.done():
            return
        self._timer.stop()
        future, self._estimate = self._estimate, None
        self.estimate_button.setEnabled(self.recording is not None)
        try:
            found = future.result()
        except AlignmentError as e:
            self._say(str(e), error=True)
            return
        self.align_box.setValue(found.lag)
        self._say(found.describe(self.sample_rate))

    def estimating(self) -> bool:
        return self._estimate is not None

    # ---- plots
    def _draw(self):
        self.overview.clear()
        r = self.recording
        if r is not None:
            # the wet file under the dry one, which is drawn see-through: both stay visible
            for data, name, colour, alpha in ((r.wet, "wet", LEARNED, 255), (r.dry, "dry", TARGET, 150)):
                idx, val = envelope(data)
                pen = pg.mkPen(pg.mkColor(colour).lighter(100), width=1)
                c = pen.color()
                c.setAlpha(alpha)
                pen.setColor(c)
                self.overview.plot(idx / r.rate, val, pen=pen, name=name)
        self._draw_detail()

    def _draw_detail(self):
        align = self.align_box.value()
        self.align_ms.setText(f"{1000.0 * align / self.sample_rate:.2f} ms")
        self.detail.clear()
        r = self.recording
        if r is None:
            return
        half = int(DETAIL_SECONDS * r.rate / 2)
        centre = int(np.argmax(np.abs(np.diff(r.dry)))) if r.dry.size > 1 else 0
        lo, hi = max(centre - half, 0), min(centre + half, r.dry.size)
        k = np.arange(lo, hi)
        shifted = np.clip(k + align, 0, r.wet.size - 1)
        for data, name, colour in ((r.dry[k], "dry", TARGET), (r.wet[shifted], "wet, aligned", LEARNED)):
            peak = float(np.max(np.abs(data))) or 1.0
            self.detail.plot(k / r.rate, data / peak, pen=pg.mkPen(colour, width=1.5), name=name)

    # ---- the choice
    def spec(self) -> RecordingSpec:
        r = self.recording
        return RecordingSpec(os.path.abspath(r.dry_path), os.path.abspath(r.wet_path), self.selected_channel(),
                             r.dry_sha256, r.wet_sha256)

    def align(self) -> int:
        return int(self.align_box.value())

    def done(self, result):
        self._timer.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().done(result)
