"""Learning controls (run/pause, reset, optimiser, loss, window, learning rate) and the audio/MIDI
controls (device, source, output, block size, MIDI port, CPU and xrun meters). Every change is a
session or workspace call; errors come back as one status line, never an exception in Qt."""
from __future__ import annotations


from pyqtgraph.Qt import QtCore, QtWidgets

from app.host import layout as H
from app.knobs import SETTING_KNOBS, SOURCE_LEVEL
from engine.sources import SOURCES
from app.session import LOSSES, OPTIMIZERS, SETS_ITS_OWN_STEP, RebuildNeeded

LR_KNOB, LR_STEPS = SETTING_KNOBS["lr"], 800     # one range for every preset: 100 steps a decade
BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 2048)
LIVE_SOURCES = tuple(s.name for s in SOURCES)
def _db_text(db: int) -> str:
    return f"{db:+d} dB" if db else "0 dB"


LIMITER_METER_DB = 12          # the limiter meter's full scale, dB of gain reduction


def _narrow(combo: QtWidgets.QComboBox) -> QtWidgets.QComboBox:
    """A combo box whose long entries (device and port names) do not widen the column."""
    combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)
    return combo


def _combo(items, name):
    c = _narrow(QtWidgets.QComboBox())
    c.addItems(list(items))
    c.setObjectName(name)
    return c


def _guard(status, fn, rebuild=None):
    """Run fn; report a failure on the status line instead of raising into Qt's event loop. A
    setting the running kernel cannot take goes to rebuild(settings) when one is given."""
    try:
        fn()
    except RebuildNeeded as e:
        if rebuild is None:
            status(str(e))
        else:
            rebuild(e.settings)
    except Exception as e:
        status(str(e).splitlines()[0] if str(e) else type(e).__name__)


class LearningControls(QtWidgets.QGroupBox):
    status = QtCore.Signal(str)
    reset_requested = QtCore.Signal()
    rebuild_requested = QtCore.Signal(object)         # Settings the running kernel cannot take

    def __init__(self, session):
        super().__init__("Learning")
        self.session = session
        self.run = QtWidgets.QPushButton("Pause")
        self.run.setCheckable(True)
        self.run.setChecked(True)
        self.run.setToolTip("run / pause learning (Space); the audio keeps playing")
        self.run.toggled.connect(self._run_toggled)
        self.reset = QtWidgets.QPushButton("Reset")
        self.reset.setToolTip("parameters back to their initial values, optimiser state cleared")
        self.reset.clicked.connect(self.reset_requested.emit)
        self.optimizer = _combo(OPTIMIZERS, "optimizer")
        self.loss = _combo(LOSSES, "loss")
        self.window = QtWidgets.QSpinBox()
        self.window.setRange(1, 4096)
        self.window.setSuffix(" samples")
        self.lr = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.lr.setRange(0, LR_STEPS)
        self.lr.setObjectName("lr")
        self.lr_label = QtWidgets.QLabel()
        self.lr_label.setFixedWidth(70)
        self.optimizer.currentTextChanged.connect(lambda t: self._set(optimizer=t))
        self.optimizer.currentTextChanged.connect(self._lr_in_use)
        self.loss.currentTextChanged.connect(lambda t: self._set(loss=t))
        self.window.valueChanged.connect(lambda v: self._set(window=int(v)))
        self.window.valueChanged.connect(self._window_suffix)
        self.lr.valueChanged.connect(lambda v: self._set(lr=self.lr_at(v)))
        g = QtWidgets.QGridLayout(self)          # run/pause and reset live in the window's toolbar
        g.addWidget(QtWidgets.QLabel("optimiser"), 1, 0)
        g.addWidget(self.optimizer, 1, 1)
        g.addWidget(QtWidgets.QLabel("loss"), 2, 0)
        g.addWidget(self.loss, 2, 1)
        g.addWidget(QtWidgets.QLabel("window"), 3, 0)
        g.addWidget(self.window, 3, 1)
        g.addWidget(QtWidgets.QLabel("learning rate"), 4, 0)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.lr, 1)
        row.addWidget(self.lr_label)
        g.addLayout(row, 4, 1)

    def _lr_in_use(self, optimizer: str):
        """Gauss-Newton sets its own step: the rate slider is greyed out (its value is kept for
        when a first-order optimiser is chosen again)."""
        own = optimizer in SETS_ITS_OWN_STEP
        self.lr.setEnabled(not own)
        self.lr_label.setEnabled(not own)
        self.lr.setToolTip(f"{optimizer} sets its own step size: no learning rate to tune" if own
                           else "learning rate (log scale)")

    def _window_suffix(self, v: int):
        self.window.setSuffix(" sample" if v == 1 else " samples")

    @staticmethod
    def lr_at(position: int) -> float:
        return LR_KNOB.value_at(position / LR_STEPS)

    @staticmethod
    def lr_position(lr: float) -> int:
        return int(round(LR_KNOB.fraction_of(lr) * LR_STEPS))

    def _set(self, **change):
        if self.session.learner is not None:
            _guard(self.status.emit, lambda: self._configure(change), self.rebuild_requested.emit)
        if "lr" in change:
            self.lr_label.setText(f"{change['lr']:.2e}")

    def _configure(self, change: dict):
        """The change, live; one that needs another kernel says so while it compiles (the old one
        plays on), and then that it applied or why not. The compile thread never touches Qt: a
        timer owned by this widget watches the future."""
        pending = self.session.configure(**change)
        if pending.done():
            return
        self.status.emit("compiling the kernel for these settings; the current one plays until it is ready")
        timer = QtCore.QTimer(self)

        def check():
            if pending.done():
                timer.stop()
                timer.deleteLater()
                error = pending.exception()
                self.status.emit("settings applied" if error is None else str(error).splitlines()[0])
        timer.timeout.connect(check)
        timer.start(50)

    def _run_toggled(self, on: bool):
        self.run.setText("Pause" if on else "Run")
        if self.session.learner is not None:
            _guard(self.status.emit, lambda: self.session.set_learning(on))

    def show_settings(self, s):
        widgets = (self.optimizer, self.loss, self.window, self.lr, self.run)
        for w in widgets:
            w.blockSignals(True)
        self.optimizer.setCurrentText(s.optimizer)
        self.loss.setCurrentText(s.loss)
        self.window.setValue(int(s.window))
        self._window_suffix(int(s.window))
        self.lr.setValue(self.lr_position(s.lr))
        self.lr_label.setText(f"{s.lr:.2e}")
        self.run.setChecked(bool(s.learning))
        self.run.setText("Pause" if s.learning else "Run")
        for w in widgets:
            w.blockSignals(False)
        self._lr_in_use(s.optimizer)


class AudioControls(QtWidgets.QGroupBox):
    status = QtCore.Signal(str)
    device_requested = QtCore.Signal(object, int)     # device (name, or "virtual"), block size
    source_requested = QtCore.Signal(str, float)      # kind, Hz
    midi_requested = QtCore.Signal(object)            # None = off, "" = virtual port only, name = connect

    def __init__(self, session, devices: list[dict], midi_ports: list[str]):
        super().__init__("Audio / MIDI")
        self.session = session
        self.device = _narrow(QtWidgets.QComboBox())
        self.device.setObjectName("device")
        self.device.addItem("system default", None)
        for d in devices:
            if d["outputs"] > 0:
                self.device.addItem(f"{d['name']} ({d['host_api']})", d["name"])
        self.device.addItem("virtual clock (no sound)", "virtual")
        self.blocksize = _combo([str(b) for b in BLOCK_SIZES], "blocksize")
        self.blocksize.setCurrentText(str(session.blocksize))
        self.source = _combo(LIVE_SOURCES, "source")
        self.hz = QtWidgets.QDoubleSpinBox()
        self.hz.setRange(1.0, 20000.0)
        self.hz.setDecimals(1)
        self.hz.setSuffix(" Hz")
        self.hz.setValue(220.0)
        self.output = _combo(H.OUTPUT_MODES, "output")
        self.output.setToolTip("stereo: target left, learned right; error: their difference; "
                               "loss: the loss as a pitch")
        self.volume = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.volume.setObjectName("volume")
        self.volume.setRange(-60, 12)
        self.volume.setToolTip("output volume in dB (what you hear only; the learner is unaffected)")
        self.volume_label = QtWidgets.QLabel("0 dB")
        self.volume_label.setFixedWidth(48)
        self.mute = QtWidgets.QPushButton("Mute")
        self.mute.setObjectName("mute")
        self.mute.setCheckable(True)
        self.volume.valueChanged.connect(self._volume_changed)
        self.level = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.level.setObjectName("source_level")
        self.level.setRange(int(SOURCE_LEVEL.lo), int(SOURCE_LEVEL.hi))
        self.level.setToolTip("the source's level in dB from its full scale (noise: -4.8 dBFS RMS at 0 dB; "
                              "-13 dB puts it near -18 dBFS RMS). The circuits and the learner hear it")
        self.level_label = QtWidgets.QLabel("0 dB")
        self.level_label.setFixedWidth(48)
        self.level.valueChanged.connect(self._level_changed)
        self.mute.toggled.connect(lambda on: _guard(self.status.emit, lambda: session.set_mute(on)))
        self.midi = _narrow(QtWidgets.QComboBox())
        self.midi.setObjectName("midi")
        self.midi.addItem("MIDI off", None)
        self.midi.addItem("Dualtone MIDI in (virtual port)", "")
        for p in midi_ports:
            self.midi.addItem(f"connect: {p}", p)
        self.source_note = QtWidgets.QLabel()         # the file playing: its name and length
        self.source_note.setObjectName("source_note")
        self.insert_label = QtWidgets.QLabel("none")
        self.insert_label.setObjectName("insert")
        self.insert_remove = QtWidgets.QPushButton("Remove")
        self.insert_remove.setEnabled(False)
        self.insert_bypass = QtWidgets.QPushButton("Bypass")
        self.insert_bypass.setObjectName("insert_bypass")
        self.insert_bypass.setCheckable(True)
        self.insert_bypass.setEnabled(False)
        self.insert_bypass.setToolTip("hear the output without the insert (it keeps its controls)")
        self.cpu = QtWidgets.QProgressBar()
        self.cpu.setRange(0, 100)
        self.cpu.setFormat("CPU %p%")
        self.cpu.setObjectName("cpu")
        self.xruns = QtWidgets.QLabel("xruns 0")
        self.xruns.setObjectName("xruns")
        self.limiter = QtWidgets.QProgressBar()       # a meter, not an alarm: how hard, how often
        self.limiter.setObjectName("limiter")
        self.limiter.setRange(0, LIMITER_METER_DB * 10)
        self.limiter.setToolTip("the safety limiter on the speakers: gain reduction now, and the share "
                                "of the time it has turned the output down since the circuit was loaded")
        self.limiter.setFormat("limiter 0 dB")
        self.device.activated.connect(lambda _: self._device_changed())
        self.blocksize.activated.connect(lambda _: self._device_changed())
        self.source.activated.connect(lambda _: self.source_requested.emit(self.source.currentText(), self.hz.value()))
        self.hz.editingFinished.connect(lambda: self.source_requested.emit(self.source.currentText(), self.hz.value()))
        self.output.currentTextChanged.connect(lambda t: _guard(self.status.emit, lambda: session.set_output(t)))
        self.midi.activated.connect(lambda _: self.midi_requested.emit(self.midi.currentData()))
        g = QtWidgets.QGridLayout(self)
        self.blocksize.setToolTip("block size: frames per callback")
        self.hz.setToolTip("the sine or saw source's frequency")
        # one row each: (label or None, ((widget, stretch), ...)); paired widgets share a row (720 px fit)
        rows = (("device", ((self.device, 2), (self.blocksize, 1))), ("source", ((self.source, 2), (self.hz, 1))),
                ("you hear", ((self.output, 2),)), ("MIDI", ((self.midi, 2),)),
                ("", ((self.source_note, 0),)),
                ("output insert", ((self.insert_label, 1), (self.insert_bypass, 0), (self.insert_remove, 0))),
                ("volume", ((self.volume, 1), (self.volume_label, 0), (self.mute, 0))),
                ("source level", ((self.level, 1), (self.level_label, 0))),
                (None, ((self.cpu, 1), (self.limiter, 1), (self.xruns, 0))))      # meters: the full width
        for r, (label, widgets) in enumerate(rows):
            line = QtWidgets.QHBoxLayout()
            for w, stretch in widgets:
                line.addWidget(w, stretch)
            if label is None:
                g.addLayout(line, r, 0, 1, 2)
                continue
            if label:
                g.addWidget(QtWidgets.QLabel(label), r, 0)
            g.addLayout(line, r, 1)

    def _volume_changed(self, db: int):
        self.volume_label.setText(_db_text(db))
        _guard(self.status.emit, lambda: self.session.set_volume_db(float(db)))

    def show_volume(self, db: float, muted: bool):
        for w in (self.volume, self.mute):
            w.blockSignals(True)
        self.volume.setValue(int(round(db)))
        self.volume_label.setText(_db_text(int(round(db))))
        self.mute.setChecked(muted)
        for w in (self.volume, self.mute):
            w.blockSignals(False)

    def follow_volume(self, db: float, muted: bool, source_db: float = 0.0):
        """Show a volume, mute or source level changed elsewhere (a MIDI controller); a no-op when
        nothing did."""
        if int(round(db)) != self.volume.value() or muted != self.mute.isChecked():
            self.show_volume(db, muted)
        if int(round(source_db)) != self.level.value():
            self.show_source_level(source_db)

    def _level_changed(self, db: int):
        self.level_label.setText(_db_text(db))
        _guard(self.status.emit, lambda: self.session.set_source_level_db(float(db)))

    def show_source_level(self, db: float):
        self.level.blockSignals(True)
        self.level.setValue(int(round(db)))
        self.level.blockSignals(False)
        self.level_label.setText(_db_text(int(round(db))))

    def _device_changed(self):
        self.device_requested.emit(self.device.currentData(), int(self.blocksize.currentText()))

    def show_state(self, source: str, hz: float, output: str):
        for w in (self.source, self.hz, self.output):
            w.blockSignals(True)
        self.source.setCurrentText(source)
        self.hz.setValue(hz)
        self.output.setCurrentText(output)
        for w in (self.source, self.hz, self.output):
            w.blockSignals(False)

    def show_source_file(self, text: str):
        """The file source's name and length under the source box ('' hides it)."""
        self.source_note.setText(text)
        self.source_note.setVisible(bool(text))

    def show_insert(self, text: str | None):
        """The output insert in words (None: no insert), with its Remove button."""
        self.insert_label.setText(text or "none")
        self.insert_remove.setEnabled(text is not None)

    def show_meters(self, cpu_fraction: float, xruns: int, limiter: dict | None = None):
        self.cpu.setValue(int(min(max(cpu_fraction, 0.0), 1.0) * 100))
        self.xruns.setText(f"xruns {xruns}")
        if limiter is not None:
            db = limiter["reduction_db"]
            self.limiter.setValue(int(round(10 * min(db, LIMITER_METER_DB))))
            self.limiter.setFormat(limiter_text(db, limiter["fraction"]))


def limiter_text(reduction_db: float, fraction: float) -> str:
    """'limiter -2.5 dB · 0.4 %': the reduction now and the share of time spent reducing."""
    now = f"-{reduction_db:.1f} dB" if reduction_db >= 0.05 else "0 dB"
    share = f" · {100 * fraction:.1f} %" if fraction >= 0.0005 else ""
    return f"limiter {now}{share}"
