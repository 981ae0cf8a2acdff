"""The main window: panels around a running workspace. A 30 fps timer drains the telemetry rings
and feeds the plots; every user action is a session/workspace call. Compiling (Apply, Open) runs on
a worker thread, so the window never freezes and the audio never waits for it."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import time
from collections import deque
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from app.host.quiet import quiet_stderr
from app.preset import document as presets
from app.preset import store
from app.words import plural
from app.workspace import Workspace, format_declarations
from engine.learn.banks import split_display_name
from engine.learn.health import retry_for
from ui.plots.banks import BankView
from ui.panels.circuit import CircuitPanel
from ui.gui_thread_gc import GuiThreadCollector
from ui.panels.controls import AudioControls, LearningControls
from ui.panels.knobs import HiddenPanel, LearnedPanel
from ui.theme import DIM, dark_palette, tint
from ui.plots.loss import LossHistory, LossMeter
from ui.plots.scope import ScopeView
from ui.plots.trajectory import TrajectoryPlot, trajectory_ranges

FPS = 30
SPANS = (("10 s", 10), ("30 s", 30), ("1 min", 60), ("2 min", 120), ("5 min", 300), ("10 min", 600))
SCOPE_SAMPLES = 4096


class _Bridge(QtCore.QObject):
    """Tells the GUI thread about a worker's progress and end (queued signals). Only Qt value types
    cross threads: Python objects sent through a queued Signal(object) from another thread
    corrupted reference counts in PySide (the GUI thread's garbage collector then crashed), so the
    result itself travels through a queue."""
    progress = QtCore.Signal(str, float)
    finished = QtCore.Signal()


def _reads(spec) -> str | None:
    """The outside ground truth spec's target reads (`sptmod`, `plugin`, `recording`, `device`),
    None when none (the texts were checked already; a failure is none)."""
    from engine.circuit.language import CircuitError, parse
    if not spec.target:
        return None
    try:
        return parse(spec.target, 48000.0, "target").external_name
    except CircuitError:
        return None


class DivergenceBanner(QtWidgets.QFrame):
    """Says that learning diverged (and paused itself), with the one click that usually helps."""
    retry_requested = QtCore.Signal()

    def __init__(self):
        super().__init__()
        self.setObjectName("divergence")
        self.setStyleSheet("#divergence { background: #5a1d1d; border-radius: 4px; }")
        self.text = QtWidgets.QLabel()
        self.text.setWordWrap(True)
        self.retry = QtWidgets.QPushButton(retry_for(False).label)
        self.retry.clicked.connect(self.retry_requested.emit)
        dismiss = QtWidgets.QPushButton("Dismiss")
        dismiss.clicked.connect(self.hide)
        row = QtWidgets.QHBoxLayout(self)
        row.addWidget(self.text, 1)
        row.addWidget(self.retry)
        row.addWidget(dismiss)
        self.hide()

    def show_divergence(self, text: str, own_step: bool = False):
        """own_step: the optimiser has no learning rate (Gauss-Newton): the click lowers p0."""
        self.text.setText(f"Learning paused: {text}.")
        self.retry.setText(retry_for(own_step).label)
        self.show()


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, workspace: Workspace, devices=(), midi_ports=(), autosave_seconds: float = 5.0,
                 autosave: bool = True, verbose: bool = False):
        super().__init__()
        self.workspace, self.session = workspace, workspace.session
        self.autosave_enabled = autosave
        self.verbose = verbose              # let libjack's probes reach the terminal (--verbose)
        self.setWindowTitle("Dualtone")
        app = QtWidgets.QApplication.instance()
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
        self.collector = GuiThreadCollector(self)      # before any worker thread starts
        self._jobs = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dualtone-gui-job")
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._job_progress)
        self._bridge.finished.connect(self._job_finished)
        self._results: queue.SimpleQueue = queue.SimpleQueue()      # (on_done, error) per job
        self.busy = False
        self.error_dialog: QtWidgets.QMessageBox | None = None
        self.frame_ms: deque = deque(maxlen=2000)      # GUI frame times, for the benchmark
        self.loaded = 0                                # circuits loaded so far (tests wait on it)

        self.circuit = CircuitPanel(store.factory_presets(), lambda: self.session.sample_rate,
                                    self._hidden_values, self._settings)
        self.circuit.apply_requested.connect(self.apply_spec)
        self.circuit.factory_chosen.connect(lambda name: self.open_preset(name))
        self.circuit.edited.connect(self._edited)
        self.circuit.description.textChanged.connect(self._description_typed)
        self._clean: tuple = ()             # the applied texts and the description when opened or saved
        self.hidden = HiddenPanel(self.session, workspace.midi)
        self.hidden.channel_requested.connect(self.set_plugin_channel)
        self.plugin_browser = None                     # made on first use, then kept
        self.recording_window = self.device_window = None
        self.learned = LearnedPanel()
        self.bank_view = BankView()
        self.bank_view.setVisible(False)
        self.bank_view.boundaries_changed.connect(self.move_bank_boundaries)
        self.learning = LearningControls(self.session)
        self.learning.reset_requested.connect(self.reset_learning)
        self.learning.rebuild_requested.connect(self.rebuild_for_settings)
        self.audio = AudioControls(self.session, list(devices), list(midi_ports))
        self.audio.device_requested.connect(self.change_device)
        self.audio.source_requested.connect(self.change_source)
        self.audio.midi_requested.connect(self.change_midi)
        self.audio.insert_remove.clicked.connect(lambda: self.use_insert(None))
        self.insert_bypass = self.audio.insert_bypass
        self.insert_bypass.toggled.connect(self.bypass_insert)
        for panel in (self.hidden, self.learning, self.audio):
            panel.status.connect(self.say)

        self.loss_meter = LossMeter(orientation=QtCore.Qt.Orientation.Horizontal)
        self.loss_history = LossHistory()
        self.trajectories = TrajectoryPlot()
        self.scope = ScopeView(self.session.sample_rate)
        self.span = QtWidgets.QComboBox()
        for label, seconds in SPANS:
            self.span.addItem(label, seconds)
        self.span.setCurrentIndex(2)
        self.span.currentIndexChanged.connect(lambda _: self.set_span(self.span.currentData()))
        self.set_span(self.span.currentData())
        self.banner = DivergenceBanner()
        self.banner.retry_requested.connect(self.retry_gentler)
        self._build_layout()
        self._build_menus()

        self.status_label = QtWidgets.QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
        self._timer = QtCore.QTimer(self, interval=int(1000 / FPS))
        self._timer.timeout.connect(self.tick)
        self._timer.start()
        self._autosave = QtCore.QTimer(self, interval=int(autosave_seconds * 1000))
        self._autosave.timeout.connect(self.autosave)
        if autosave:
            self._autosave.start()
        self._last_status = 0.0
        self._ticks = 0
        self.resize(1600, 1000)

    # ---- layout
    def _build_layout(self):
        """Three columns: the circuit (its editors take the height); the knobs with the learning
        and audio controls; the plots, the loss meter a bar above the loss history. Nothing
        scrolls at 1280x720, and at 1024x640 only the middle column may."""
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(4, 4, 4, 4)
        lv.addWidget(self.circuit, 1)
        middle = QtWidgets.QWidget()
        mv = QtWidgets.QVBoxLayout(middle)
        mv.setContentsMargins(4, 4, 4, 4)
        for w in (self.hidden, self.learned, self.learning, self.audio):
            mv.addWidget(w)
        mv.addWidget(self.bank_view, 2)
        mv.addStretch(1)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        loss_box = QtWidgets.QWidget()
        lb = QtWidgets.QVBoxLayout(loss_box)
        lb.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        title = QtWidgets.QLabel("loss (log)")
        title.setToolTip("drag to pan, wheel to zoom, double-click to follow")
        tint(title, DIM)
        row.addWidget(title)
        row.addWidget(self.loss_meter, 1)
        row.addWidget(self.span)
        lb.addLayout(row)
        lb.addWidget(self.loss_history, 1)
        for w in (loss_box, self.trajectories, self.scope):
            right.addWidget(w)
        right.setSizes([280, 280, 440])
        right_box = QtWidgets.QWidget()
        rb = QtWidgets.QVBoxLayout(right_box)
        rb.setContentsMargins(0, 0, 0, 0)
        rb.addWidget(self.banner)
        rb.addWidget(right, 1)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.middle_scroll = QtWidgets.QScrollArea()
        self.middle_scroll.setWidget(middle)
        self.middle_scroll.setWidgetResizable(True)
        self.middle_scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit_middle()
        split.addWidget(left)
        split.addWidget(self.middle_scroll)
        split.addWidget(right_box)
        for k, stretch in enumerate((3, 3, 5)):        # the same proportions for every preset
            split.setStretchFactor(k, stretch)
        split.setSizes([360, 360, 600])
        self.columns = split
        self.setCentralWidget(split)

    def _fit_middle(self):
        """The knobs' column never narrower than its panels (they were clipped at 1280x720)."""
        bar = self.middle_scroll.verticalScrollBar().sizeHint().width()
        need = self.middle_scroll.widget().minimumSizeHint().width() + bar + 4
        if need != self.middle_scroll.minimumWidth():
            self.middle_scroll.setMinimumWidth(need)

    def _build_menus(self):
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.factory_menu = file.addMenu("New from factory preset")
        for name in store.factory_presets():
            self.factory_menu.addAction(name, lambda n=name: self.open_preset(n))
        file.addAction("&Open…", QtGui.QKeySequence.StandardKey.Open, self.open_dialog)
        self.recent_menu = file.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file.addSeparator()
        file.addAction("&Save", QtGui.QKeySequence.StandardKey.Save, self.save)
        file.addAction("Save &as…", QtGui.QKeySequence.StandardKey.SaveAs, lambda: self.save_as())
        file.addSeparator()
        file.addAction("Ground truth from an SPTMod &model…", self.use_model_dialog)
        file.addAction("Ground truth from a &plugin…", lambda: self.plugin_dialog("truth"))
        file.addAction("Ground truth from a &recording…", self.recording_dialog)
        file.addAction("Ground truth from an input &channel (a device in the loop)…", self.device_dialog)
        file.addAction("Ground truth from the circuit (no model, plugin, recording or device)", self.drop_model)
        file.addAction("&Insert an SPTMod model on the output…", self.insert_dialog)
        file.addAction("Insert a plugin on the output…", lambda: self.plugin_dialog("insert"))
        file.addAction("Remove the output insert", lambda: self.use_insert(None))
        file.addSeparator()
        file.addAction("&Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        learn = bar.addMenu("&Learning")
        self.run_action = learn.addAction("Run / pause", self.learning.run.toggle)
        self.run_action.setShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Space))
        mute = learn.addAction("Mute / unmute the output", self.audio.mute.toggle)
        mute.setShortcut(QtGui.QKeySequence("M"))
        learn.addAction("Reset parameters", self.reset_learning)
        learn.addAction("Measure the device's round trip again", self.measure_device)
        helpm = bar.addMenu("&Help")
        helpm.addAction("Quick tour", self.show_tour)
        helpm.addAction("Circuit language", lambda: self.open_doc("circuit-language.md"))
        helpm.addAction("Learning: losses and optimisers", lambda: self.open_doc("learning.md"))
        helpm.addAction("Keyboard shortcuts", self.show_shortcuts)
        tool = self.addToolBar("main")
        tool.setMovable(False)
        tool.addAction("Open…", self.open_dialog)
        tool.addAction("Save", self.save)
        tool.addSeparator()
        tool.addWidget(self.learning.run)
        tool.addWidget(self.learning.reset)      # beside run/pause: a row less in the knobs' column

    TOUR = ("Circuit (left): pick a factory preset, edit the learnable circuit, the ground truth "
            "and the declarations; Apply swaps them in live.\n"
            "Learning: optimiser, loss, window, learning rate (Pause/Run and Reset in the toolbar).\n"
            "Audio / MIDI: device, source, what you hear, output insert, volume and mute, source "
            "level, CPU/limiter/xrun meters.\n"
            "Ground truth (middle): the hidden knobs you turn; Learned: where the learner is now.\n"
            "Right: the loss over time, each parameter's trajectory, and the scope and spectra "
            "of target and learned output.")

    def show_tour(self):
        QtWidgets.QMessageBox.information(self, "Quick tour", self.TOUR)

    def shortcuts(self) -> list[tuple[str, str]]:
        """Every menu action with a shortcut, as (keys, what it does)."""
        out = []
        for menu in self.menuBar().findChildren(QtWidgets.QMenu):
            for action in menu.actions():
                keys = action.shortcut().toString()
                if keys:
                    out.append((keys, action.text().replace("&", "")))
        return sorted(set(out))

    def show_shortcuts(self):
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts",
                                          "\n".join(f"{k}\t{t}" for k, t in self.shortcuts()))

    def open_doc(self, name: str) -> Path:
        """A page of the docs in the system's viewer (the path is returned, and said)."""
        path = Path(__file__).resolve().parent.parent / "docs" / name
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(path)))
        self.say(f"opened {path}")
        return path

    def _fill_recent(self):
        self.recent_menu.clear()
        for path in store.recent():
            self.recent_menu.addAction(path, lambda p=path: self.open_preset(p))
        if not self.recent_menu.actions():
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def set_span(self, seconds: float):
        self.loss_history.set_span(seconds)
        self.trajectories.set_span(seconds)

    # ---- status and dialogs
    def say(self, message: str, seconds: float = 8.0):
        self.statusBar().showMessage(message, int(seconds * 1000))

    def show_problems(self, title: str, intro: str, problems: list[str]):
        """One non-blocking dialog listing every problem in plain words."""
        if self.error_dialog is not None:
            self.error_dialog.close()
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, intro, parent=self)
        box.setInformativeText("\n".join(f"• {p}" for p in problems[:30])
                               + (f"\n… and {len(problems) - 30} more" if len(problems) > 30 else ""))
        box.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        box.open()
        self.error_dialog = box
        self.say(f"{title}: {problems[0]}" if problems else title)

    def confirm_overwrite(self, path: Path) -> bool:
        answer = QtWidgets.QMessageBox.question(self, "Replace file?",
                                                f"{path.name} already exists. Replace it?")
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    # ---- jobs on the worker thread
    def _run_job(self, work, on_done, stage: str):
        if self.busy:
            self.say("still compiling the previous change; try again in a moment")
            return False
        self.busy = True
        self.circuit.set_busy(stage, 0.05)
        bridge, results = self._bridge, self._results

        def job():
            try:
                work(lambda s, f: bridge.progress.emit(str(s), float(f)))
                results.put((on_done, None))
            except Exception as e:          # shown to the user; the old circuit keeps playing
                results.put((on_done, e))
            bridge.finished.emit()
        self._jobs.submit(job)
        return True

    def _job_progress(self, stage: str, fraction: float):
        self.circuit.set_busy(stage, fraction)

    def _job_finished(self):
        on_done, error = self._results.get_nowait()
        self.busy = False
        self.circuit.set_busy(None)
        on_done(error)

    # ---- circuits and presets
    def rebuild_for_settings(self, settings):
        """A setting the running kernel cannot take (the spectral loss): the same circuit compiled
        again with it, in the background, what it learned kept; the old one plays meanwhile."""
        if self.session.spec is not None:
            self.apply_spec(dataclasses.replace(self.session.spec, settings=settings),
                            message=f"compiled for the {settings.loss} loss")

    def apply_spec(self, spec, message: str = "circuit applied", problem: tuple[str, str] | None = None,
                   on_error=None) -> bool:
        """Compile and swap spec in; parameters whose names survive keep what they learned. An
        edited circuit keeps the SPTMod model or the plugin (and its knob positions) the running
        one uses while its target still reads it. problem: (title, intro) of the dialog a failure
        gives (else the circuit panel's error line); on_error(text) is told too. False when the
        worker was busy."""
        kept = self.session.params()
        current = self.session.spec
        outside = (spec.model, spec.plugin, spec.recording, spec.device)
        if all(v is None for v in outside) and current is not None:
            reads = _reads(spec)
            if current.model is not None and reads == "sptmod":
                controls = {k: v for k, v in self.session.hidden().items()
                            if k in self.session.model_controls()}
                spec = dataclasses.replace(spec, model=current.model, model_sha256=current.model_sha256,
                                           hidden={**controls, **spec.hidden})
            elif current.plugin is not None and reads == "plugin":
                spec = dataclasses.replace(spec, plugin=current.plugin, plugin_channel=current.plugin_channel,
                                           hidden={**self._plugin_values(), **spec.hidden})
            elif current.recording is not None and reads == "recording":
                spec = dataclasses.replace(spec, recording=current.recording,
                                           hidden={"align": self.session.hidden().get("align", 0.0), **spec.hidden})
            elif current.device is not None and reads == "device":
                spec = dataclasses.replace(spec, device=current.device)

        def work(progress):
            self.session.load(spec, progress)
            names = set(self.session.param_names)
            self.session.reset_learning({k: v for k, v in kept.items() if k in names})

        def done(error):
            if error is not None:
                if on_error is not None:
                    on_error(str(error))
                if problem is not None:
                    self.show_problems(problem[0], problem[1], [str(error)])
                    return
                self.circuit.error.setText(str(error))
                self.say(f"the circuit was not applied: {error}")
                return
            self._circuit_changed()
            self.say(message)
        return self._run_job(work, done, "compiling…")

    def _choose_model(self, title: str) -> str:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, title, str(store.FACTORY_DIR),
                                                        "SPTMod models (*.npz)")
        return path

    def use_model_dialog(self):
        path = self._choose_model("SPTMod model as the ground truth")
        if path:
            self.use_model(path)

    def use_model(self, path) -> bool:
        """Make an SPTMod model the ground truth: the target becomes  y = sptmod  and the model's
        controls become the hidden knobs. A file that is not a usable model: one dialog."""
        from engine.sptmod.file import ModelError, load_model
        spec = self.session.spec
        if spec is None:
            return False
        try:
            model = load_model(path)
        except (ModelError, OSError) as e:
            problems = e.problems if isinstance(e, ModelError) else [str(e)]
            self.show_problems("Cannot use the model", f"{Path(path).name} is not a usable SPTMod model:",
                               problems)
            return False
        if not self.may_replace_edits():
            return False
        hidden = {c["name"]: c["default"] for c in model.controls}
        learnable = {p.name for p in spec.params}
        self.apply_spec(dataclasses.replace(spec, target="y = sptmod", hidden=hidden, hidden_params=[],
                                            model=str(Path(path).resolve()), model_sha256=model.sha256,
                                            plugin=None, plugin_channel=0,
                                            params=[p for p in spec.params if p.name in learnable]),
                        f"ground truth: the SPTMod model {Path(path).name}")
        return True

    def insert_dialog(self):
        path = self._choose_model("SPTMod model as an insert on the output")
        if path:
            self.use_insert(path)

    def use_insert(self, path) -> bool:
        """An SPTMod model as an insert effect on the output (None removes it); its controls
        become knobs in the ground-truth panel. A file that is not a usable model: one dialog."""
        from app.session import SessionError
        try:
            self.session.set_insert(None if path is None else str(path))
        except SessionError as e:
            self.show_problems("Cannot use the model", f"{Path(str(path)).name} is not a usable SPTMod model:",
                               [str(e)])
            return False
        self.hidden.rebuild()
        self._show_insert()
        self.say("output insert removed" if path is None else f"output insert: the SPTMod model {Path(path).name}")
        return True

    def drop_model(self):
        """Back to a circuit as the ground truth (the learnable circuit with its hidden values),
        from an SPTMod model or a plugin."""
        spec = self.session.spec
        if spec is None:
            return
        what = next((w for w, v in (("SPTMod model", spec.model), ("plugin", spec.plugin),
                                    ("recording", spec.recording), ("device", spec.device)) if v is not None), None)
        if what is None or not self.may_replace_edits():
            return
        hidden = {p.name: p.init for p in spec.params}
        self.apply_spec(dataclasses.replace(spec, target=None, hidden=hidden, hidden_params=[],
                                            model=None, model_sha256=None, plugin=None, plugin_channel=0,
                                            recording=None, device=None),
                        f"ground truth: the circuit again (no {what})")

    def _outside_spec(self, target: str, **truth):
        """The running spec with a new ground truth from outside (the others cleared), its
        target reading it, and the learning rate decaying as it converges."""
        from app.truths import outside_settings
        spec = self.session.spec
        fields = dict(model=None, model_sha256=None, plugin=None, plugin_channel=0, recording=None, device=None)
        fields.update(truth)
        return dataclasses.replace(spec, target=target, hidden_params=[], settings=outside_settings(spec.settings),
                                   **fields)

    # ---- recordings and devices
    def recording_dialog(self):
        from ui.panels.recording import RecordingDialog
        spec = self.session.spec
        if spec is None:
            return None
        align = int(self.session.hidden().get("align", 0)) if spec.recording is not None else 0
        dialog = RecordingDialog(self.session.sample_rate, spec.recording, align, self)
        dialog.accepted.connect(lambda: self.use_recording(dialog.spec(), dialog.align()))
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.open()
        self.recording_window = dialog
        return dialog

    def use_recording(self, recording, align: int) -> bool:
        """Make a dry/wet pair the ground truth: the target reads `recording`, the alignment is
        the knob 'align'. A pair that cannot be used: one dialog, nothing changes."""
        if self.session.spec is None or not self.may_replace_edits():
            return False
        name = Path(recording.wet).name
        spec = self._outside_spec("y = recording", recording=recording)
        return self.apply_spec(dataclasses.replace(spec, hidden={"align": float(align)}),
                               f"ground truth: the recording {name}, aligned by {plural(align, 'sample')}",
                               problem=("Cannot use the recording", f"{name} was not loaded:"))

    def device_dialog(self):
        from ui.panels.device import DeviceDialog
        spec = self.session.spec
        if spec is None:
            return None
        info = self.session.info
        dialog = DeviceDialog(spec.device, (info.n_in, info.n_out) if info is not None else (2, 2), self)
        dialog.measure_requested.connect(self.use_device)
        dialog.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        dialog.open()
        self.device_window = dialog
        return dialog

    def use_device(self, device) -> bool:
        """Make a device on the audio interface the ground truth (input channel as the target,
        the source sent to it), then measure its round trip."""
        s = self.session
        if s.spec is None:
            return False
        dialog = self.device_window
        if s.info is not None and s.info.virtual:
            text = f"a device in the loop needs an audio interface, but the audio runs on a virtual clock ({s.info.reason})"
            self.say(text)
            if dialog is not None:
                dialog.show_error(text)
            return False
        if s.spec.device == device and s.memory.active.truth is not None:
            return self.measure_device()             # the same channels: measure again
        if not self.may_replace_edits():
            return False
        spec = dataclasses.replace(self._outside_spec("y = device", device=device), hidden={})
        return self.apply_spec(spec, f"ground truth: the device on input {device.return_channel + 1}",
                               problem=("Cannot use the device", "the input channel was not set up:"),
                               on_error=None if dialog is None else dialog.show_error)

    def measure_device(self) -> bool:
        """Measure the device's round trip on the worker thread (learning waits meanwhile); the
        result goes to the status bar and the device dialog. A failure leaves learning paused."""
        s = self.session
        if s.spec is None or s.spec.device is None:
            self.say("no device is in the loop: File > Ground truth from an input channel…")
            return False

        def done(error):
            dialog = getattr(self, "device_window", None)
            if error is not None:
                s.set_learning(False)
                self.learning.show_settings(s.settings)
                self.say(f"the round trip was not measured: {error}")
                if dialog is not None:
                    dialog.show_error(str(error))
                self.hidden.rebuild()
                return
            found = s.memory.active.truth.alignment
            self.say(f"device: {found.describe(s.sample_rate)}")
            if dialog is not None:
                dialog.show_result(found, s.sample_rate)
            self.hidden.rebuild()
        return self._run_job(lambda progress: s.measure_latency(), done, "measuring the round trip…")

    # ---- plugins
    def plugin_dialog(self, mode: str = "truth"):
        """The plugin browser (made once, then kept with its probes); its choice comes back
        through use_plugin or use_insert_plugin."""
        from ui.panels.plugin_browser import PluginBrowser
        if self.plugin_browser is None:
            QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
            self.say("reading the plugin catalogue…")
            try:                                # under a second (discovered once per process)
                self.plugin_browser = PluginBrowser(self.session.sample_rate, self, mode)
            except Exception as e:             # the catalogue could not be read
                self.show_problems("Cannot list the plugins", "The plugin catalogue could not be read:", [str(e)])
                return None
            finally:
                QtWidgets.QApplication.restoreOverrideCursor()
            self.plugin_browser.chosen.connect(self._plugin_chosen)
        self.plugin_browser.set_mode(mode)
        self.plugin_browser.setWindowModality(QtCore.Qt.WindowModality.WindowModal)
        self.plugin_browser.open()
        self.plugin_browser.search.setFocus()
        return self.plugin_browser

    def _plugin_chosen(self, action: str, plugin_id: str, channel: int, controls=None):
        """The browser's choice; controls: the starting values of its chosen preset ({}: defaults)."""
        if action == "truth":
            self.use_plugin(plugin_id, channel, controls)
        else:
            self.use_insert_plugin(plugin_id, controls)

    @staticmethod
    def _plugin_start(info, controls: dict | None) -> dict:
        """The plugin's controls at their defaults, overlaid with the given values (a factory
        preset's), each clamped to what the control accepts; symbols it does not have are left out."""
        values = {c.symbol: c.clamp(c.default) for c in info.controls}
        for symbol, value in (controls or {}).items():
            control = info.control(symbol)
            if control is not None:
                values[symbol] = control.clamp(value)
        return values

    def _find_plugin(self, plugin_id: str, what: str):
        """The usable plugin with this id or alias, else one dialog and None."""
        from app.plugins import registry
        from app.plugins.instance import PluginError
        try:
            info = registry.find(str(plugin_id), self.session.sample_rate)
        except (PluginError, ImportError, OSError) as e:
            self.show_problems("Cannot use the plugin", f"'{plugin_id}' cannot be {what}:", [str(e)])
            return None
        if info.unusable:
            self.show_problems("Cannot use the plugin", f"{info.name} ({info.id}) cannot be {what}:",
                               [info.unusable])
            return None
        return info

    def use_plugin(self, plugin_id: str, channel: int | None = None, controls: dict | None = None) -> bool:
        """Make a LADSPA/LV2 plugin the ground truth: the target becomes  y = plugin  and its
        controls become the hidden knobs, at their defaults or at the given values (a factory
        preset's, {symbol: value}, clamped). channel: the output of a stereo plugin that is
        learned (None: the one learned now if it is the same plugin, else left).
        An unknown or unusable plugin, or one that fails to load: one dialog, nothing changes."""
        spec = self.session.spec
        if spec is None:
            return False
        info = self._find_plugin(plugin_id, "the ground truth")
        if info is None or not self.may_replace_edits():
            return False
        if channel is None:
            channel = spec.plugin_channel if spec.plugin == info.id else 0
        channel = int(channel) if 0 <= int(channel) < len(info.audio_outputs) else 0
        hidden = self._plugin_start(info, controls)
        return self.apply_spec(                           # the rate decays against float32 output
            dataclasses.replace(self._outside_spec("y = plugin", plugin=info.id, plugin_channel=channel),
                                hidden=hidden),
            f"ground truth: the plugin {info.name} ({info.id}); the learning rate decays as it converges",
            problem=("Cannot use the plugin", f"{info.name} ({info.id}) was not loaded:"))

    def use_insert_plugin(self, plugin_id: str | None, controls: dict | None = None) -> bool:
        """A LADSPA/LV2 plugin as the insert effect on the output (None removes the insert); its
        controls become knobs 'insert:SYMBOL' beside the hidden ones, at their defaults or at the
        given values (a factory preset's, {symbol: value}, clamped). Loaded on the worker thread
        (its first use runs the probe); a failure: one dialog, the insert stays as it was."""
        if plugin_id is None:
            return self.use_insert(None)
        info = self._find_plugin(plugin_id, "inserted on the output")
        if info is None:
            return False

        def work(progress):
            progress("loading the plugin (probed in a separate process on first use)", 0.3)
            self.session.set_insert_plugin(info.id, self._plugin_start(info, controls) if controls else None)

        def done(error):
            if error is not None:
                self.show_problems("Cannot use the plugin", f"{info.name} ({info.id}) was not inserted:",
                                   [str(error)])
                return
            self.hidden.rebuild()
            self._show_insert()
            self.say(f"output insert: the plugin {info.name} ({info.id})")
        return self._run_job(work, done, f"inserting {info.name}…")

    def set_plugin_channel(self, channel: int):
        """Learn the other output of a stereo plugin ground truth (its knobs stay where they are)."""
        spec = self.session.spec
        if spec is None or spec.plugin is None or int(channel) == spec.plugin_channel:
            return
        side = "right" if channel else "left"
        self.apply_spec(dataclasses.replace(self._live_spec(), plugin_channel=int(channel)),
                        f"learning the plugin's {side} channel",
                        problem=("Cannot change the channel", f"the {side} channel of {spec.plugin} was not loaded:"))

    def _plugin_values(self) -> dict:
        """The plugin ground truth's controls where its knobs are, in the plugin's own units
        (an enumerated control's knob is an index, the plugin's value is the point)."""
        from app.plugins import registry
        from app.truths import plugin_value
        s = self.session
        spec = s.spec
        if spec is None or spec.plugin is None or s.learner is None:
            return {}
        try:
            info = registry.find(spec.plugin, s.sample_rate)
        except Exception:
            return {}
        live = s.hidden()
        return {c.symbol: plugin_value(c, live[c.symbol]) for c in info.controls if c.symbol in live}

    def _live_spec(self):
        """The running spec with its plugin's controls where the knobs are now."""
        spec = self.session.spec
        if spec.plugin is None:
            return spec
        return dataclasses.replace(spec, hidden={**spec.hidden, **self._plugin_values()})

    def move_bank_boundaries(self, boundaries: list):
        spec = self.session.spec
        if spec is None or spec.banks is None:
            return
        spec = self._live_spec()
        banks = dataclasses.replace(spec.banks, boundaries=list(boundaries))
        self.apply_spec(dataclasses.replace(spec, banks=banks),
                        "bank boundaries moved: " + ", ".join(f"{b:.3g}" for b in boundaries))

    def open_preset(self, name_or_path) -> bool:
        """Validate and apply a preset (factory name or file). Problems: one dialog, nothing changes.
        Unapplied edits in the circuit panel are never dropped without asking."""
        if not self.may_replace_edits():
            return False
        try:
            path = store.resolve(str(name_or_path))
            preset = presets.load(path)
        except presets.PresetError as e:
            self.show_problems("Cannot open preset", f"{e.origin} cannot be used:", e.problems)
            return False
        return self.apply_preset(preset, path)

    def apply_preset(self, preset: presets.Preset, path: Path) -> bool:
        """Apply a preset already read and checked (from path) on the worker thread."""
        factory = path.parent.resolve() == store.FACTORY_DIR.resolve()

        def done(error):
            if error is not None:
                self.show_problems("Cannot open preset", f"{path.name} does not compile:", [str(error)])
                return
            if not factory:
                store.add_recent(path)
            self._circuit_changed()
            self._mark_clean()
            for w in self.workspace.warnings:
                self.say(w)
            ins = self.session.insert()
            self.say(f"opened {preset.name}" + ("" if ins is None else
                     f" — with its output insert {self.audio.insert_label.text()} (Remove it under Audio / MIDI)"))
        return self._run_job(lambda progress: self.workspace.apply(preset, progress, None if factory else path),
                             done, f"opening {preset.name}…")

    def restore_autosave(self) -> bool:
        preset = store.read_autosave()
        if preset is None:
            return False

        def done(error):
            if error is None:
                self._circuit_changed()
                self._mark_clean()
                ins = self.session.insert()
                self.say(f"restored your last session ({preset.name})" + ("" if ins is None else
                         f" — with its output insert {self.audio.insert_label.text()}"))
            else:
                self.say(f"the autosaved session could not be restored: {error}")
                self.open_preset(store.STARTUP_PRESET)
        return self._run_job(lambda progress: self.workspace.apply(preset, progress, None), done,
                             "restoring the last session…")

    def _circuit_changed(self):
        s = self.session
        self.loaded += 1
        if not s.running:
            try:
                s.start()
            except Exception as e:
                self.say(f"audio could not start: {e}")
        spec = s.spec
        self.circuit.show_spec(spec, format_declarations(list(spec.params) + list(spec.hidden_params)))
        self.hidden.rebuild()
        self.learned.rebuild(s)
        self.learning.show_settings(s.settings)
        self._show_source()
        self._show_insert()
        self.audio.show_volume(s.volume_db, s.muted)
        self.audio.show_source_level(s.source_level_db)
        QtCore.QTimer.singleShot(100, self._fit_middle)      # once the new rows are laid out
        self.loss_history.clear_data()            # a new circuit's loss starts a new history
        self.trajectories.set_names(s.param_names, list(s.hidden()),
                                    trajectory_ranges(s.learner.param_names, s.learner.specs, s.knobs()))
        self.bank_view.set_banks(spec.banks, [sp.name for sp in s.learner.base_specs])
        self.scope.set_sample_rate(s.sample_rate)
        self._edited()
        truth = s.memory.active.truth
        if spec.device is not None and truth is not None and truth.alignment is None:
            QtCore.QTimer.singleShot(0, self.measure_device)      # a device is measured whenever loaded

    def _hidden_values(self) -> dict:
        return self.session.hidden() if self.session.learner is not None else {}

    def _settings(self):
        from app.session import Settings
        return self.session.settings if self.session.learner is not None else Settings()

    def open_dialog(self):
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open preset", str(store.FACTORY_DIR),
                                                        "Dualtone presets (*.json)")
        if path:
            self.open_preset(path)

    def save(self):
        path = self.workspace.path
        if path is None or Path(path).resolve().parent == store.FACTORY_DIR.resolve():
            return self.save_as()
        return self._write(Path(path), overwrite=True)

    def save_as(self, path=None):
        if self.runs_another_circuit():
            # a different circuit under the old words would mislead whoever opens it
            text = self.ask_description(self.workspace.description)
            if text is None:
                self.say("not saved")
                return None
            self.workspace.description = text
            self.circuit.show_description(text)
        if path is None:
            try:
                start = str(store.config_dir() / f"{self.workspace.name}.json")
            except store.ConfigUnavailable:
                start = str(Path.home() / f"{self.workspace.name}.json")
            chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save preset", start,
                                                              "Dualtone presets (*.json)")
            if not chosen:
                return None
            path = Path(chosen if chosen.endswith(".json") else chosen + ".json")
            return self._write(path, overwrite=True)      # the file dialog asked about replacing
        path = Path(path)
        if path.exists() and not self.confirm_overwrite(path):
            self.say(f"not saved: {path.name} was kept")
            return None
        return self._write(path, overwrite=True)

    def _write(self, path: Path, overwrite: bool):
        try:
            out = self.workspace.save(path, overwrite=overwrite)
        except (OSError, presets.PresetError) as e:
            self.show_problems("Cannot save preset", f"{path} was not written:", [str(e)])
            return None
        self._mark_clean()
        if self.circuit.has_unapplied_edits():      # the file holds what runs, not what is typed
            self.say(f"saved {out} — without the circuit panel's unapplied edits (Apply, then save again)")
        else:
            self.say(f"saved {out}")
        return out

    # ---- what is open, and whether it changed
    def _mark_clean(self):
        """What runs now is what was opened or saved."""
        self.circuit.show_description(self.workspace.description)
        self._clean = (self.circuit.applied_texts, self.workspace.description)
        self._edited()

    def _description_typed(self):
        self.workspace.description = self.circuit.description.toPlainText()
        self._edited()

    def modified(self) -> bool:
        """Changed since opened or saved: unapplied edits, a different circuit applied, or the
        description."""
        return bool(self._clean) and (self.circuit.has_unapplied_edits() or
                                      (self.circuit.applied_texts, self.workspace.description) != self._clean)

    def runs_another_circuit(self) -> bool:
        """The running circuits (learnable, ground truth) are not those opened or last saved."""
        return bool(self._clean) and self.circuit.applied_texts[:2] != self._clean[0][:2]

    def _edited(self):
        modified = self.modified()
        name = self.workspace.name
        self.circuit.show_name(name, modified)
        title = f"Dualtone — {name}" + (" •" if modified else "")
        if title != self.windowTitle():
            self.setWindowTitle(title)

    def may_replace_edits(self) -> bool:
        """Whatever replaces the circuit panel's texts (a preset, a model, a plugin, a recording,
        a device) asks here first when they hold unapplied edits. True: go on (none, or Discard);
        False: nothing else is loaded (Cancel keeps the edits, Apply applies them instead)."""
        if not self.circuit.has_unapplied_edits():
            return True
        answer = self.ask_unapplied_edits()
        if answer == "cancel":
            self.say("kept your edits; nothing was opened")
            return False
        if answer == "apply":
            self.circuit.request_apply()
            if self.circuit.checked is None or self.circuit.checked.spec is None:
                self.say("your edits have problems (see the circuit panel); nothing was opened")
            else:
                self.say("applying your edits; nothing was opened")
            return False
        return True

    def ask_unapplied_edits(self) -> str:
        """'apply', 'discard' or 'cancel': what to do with the circuit panel's unapplied edits
        before something else replaces them (tests replace this method: the box is modal)."""
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, "Unapplied edits",
                                    "The circuit panel has edits that were not applied. Opening another "
                                    "preset, model, plugin, recording or device replaces them.", parent=self)
        apply = box.addButton("Apply them", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard and open", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.exec()
        return {apply: "apply", discard: "discard"}.get(box.clickedButton(), "cancel")

    def ask_description(self, current: str) -> str | None:
        """A description for a preset whose circuit changed (None: cancel the save)."""
        text, ok = QtWidgets.QInputDialog.getMultiLineText(
            self, "Describe the preset", "The circuit changed since this preset was opened. "
            "What is it for now?", current)
        return text if ok else None

    def autosave(self):
        try:
            self.workspace.autosave()
        except Exception as e:
            self.say(f"autosave failed: {e}")

    # ---- live controls that need the window
    def reset_learning(self):
        try:
            self.session.reset_learning()
            self.session.restart_limiter_count()
            self.loss_history.clear_data()
            self.trajectories.clear_data()        # every history view starts over
            self.say("parameters reset to their initial values")
        except Exception as e:
            self.say(str(e))

    def retry_gentler(self):
        """The divergence banner's one click: half the learning rate (Gauss-Newton: a tenth of p0,
        the size of its first steps), parameters reset, learning on."""
        s = self.session
        try:
            retry = retry_for(s.sets_its_own_step)
            value = getattr(s.settings, retry.field) / retry.divisor
            s.configure(**{retry.field: value})
            s.reset_learning()
            s.set_learning(True)
        except Exception as e:
            self.say(str(e))
            return
        self.banner.hide()
        self.loss_history.clear_data()
        self.trajectories.clear_data()
        self.learning.show_settings(s.settings)
        self.say(f"learning again from the start at {retry.name} {value:.3g}")

    def _show_health(self):
        """The banner when learning diverged (it paused itself); the stall hint on the status line."""
        s = self.session
        found = s.health.diverged
        if found is not None and not self.banner.isVisible():
            self.banner.show_divergence(found.describe(s.sample_rate, s.sets_its_own_step), s.sets_its_own_step)
            self.learning.show_settings(s.settings)

    def change_device(self, device, blocksize: int):
        try:
            self.session.reopen(device=device, blocksize=blocksize)
            self.say(self.session.status_message)
        except Exception as e:
            self.say(f"audio device: {e}")

    def change_source(self, kind: str, hz: float):
        file = None
        if kind == "file":
            file, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Play a file", "",
                                                            "Audio (*.wav *.flac *.ogg *.aiff)")
            if not file:
                return
        self.workspace.warnings = []
        self.workspace.set_source(kind, hz, file)
        if self.workspace.warnings:        # the workspace fell back to lcg-noise: say it plainly
            self.show_problems("Cannot play the source", f"{Path(file).name if file else kind} was not played:",
                               list(self.workspace.warnings))
        self._show_source()

    def _show_source(self):
        """The source box as the workspace has it (a failed choice does not stick), the file's name
        and length beside it."""
        ws, s = self.workspace, self.session
        self.audio.show_state(ws.source, ws.source_hz, s.output)
        text = ""
        if ws.source == "file" and ws.source_file:
            seconds = len(s.memory.files[0]) / s.sample_rate      # resampled to the session's rate
            text = f"{Path(ws.source_file).name} ({seconds:.1f} s, looping)"
        self.audio.show_source_file(text)

    def _show_insert(self):
        ins = self.session.insert()
        self._show_bypass(ins is not None and ins["bypass"], ins is not None)
        if ins is None:
            self.audio.show_insert(None)
            return
        what = ins.get("plugin") or Path(str(ins.get("model", "?"))).name
        self.audio.show_insert(f"{what}")

    def _show_bypass(self, on: bool, enabled: bool = True):
        b = self.insert_bypass
        b.blockSignals(True)              # showing the state is not a request to change it
        b.setChecked(on)
        b.blockSignals(False)
        b.setText("Bypassed" if on else "Bypass")
        b.setEnabled(enabled)

    def bypass_insert(self, on: bool):
        """The output insert skipped (the dry output is heard) or running again."""
        if self.session.insert() is None:
            self._show_bypass(False, False)
            return
        self.session.set_insert_bypass(on)
        self._show_bypass(on)
        self.say("output insert bypassed" if on else "output insert on")

    def change_midi(self, choice):
        try:
            if choice is None:
                self.workspace.close_midi()
                self.say("MIDI off")
            else:
                with quiet_stderr(not self.verbose):       # the MIDI client probes for JACK
                    port = self.workspace.open_midi(connect=choice or None)
                self.say("MIDI: 'Dualtone MIDI in'" + (f" connected to {port.connected_to}" if port.connected_to else ""))
        except Exception as e:
            self.say(f"MIDI: {e}")

    # ---- the frame
    def tick(self):
        t0 = time.perf_counter()
        s = self.session
        f = s.frame()
        if f is not None:
            hidden = s.hidden()
            self.loss_history.append(f.time, f.loss)
            if self.trajectories.names[0] == f.names:   # else a swap is landing: rebuilt next
                self.trajectories.append(f.time, f.params, hidden)
            self.loss_meter.set_loss(float(f.loss[-1]))
            latest = f.latest
            self.learned.show_values(latest, hidden)
            if self.bank_view.isVisible() and s.learner.banks is not None:
                per_bank = [{} for _ in range(s.learner.banks.K)]
                for name, v in latest.items():
                    base, k = split_display_name(name)
                    if k is not None:
                        per_bank[k][base] = v
                self.bank_view.show_state(f.bank, f.condition, per_bank, hidden)
            self.audio.show_meters(f.cpu_load, s.counters()["xruns"], s.limiter())
            self._show_health()
        self._ticks += 1
        if self.scope.isVisible() and s.running and self._ticks % 2 == 0:   # 15 fps: the eye cannot follow noise faster
            self.scope.show_signals(*s.telemetry.signals(SCOPE_SAMPLES))
            self.scope.show_spectral(s.spectral_view(), s.frequency_lock())
        self.loss_history.refresh()
        self.trajectories.refresh()
        self.hidden.sync()
        now = time.monotonic()
        if now - self._last_status > 0.5:
            self._last_status = now
            self._fit_middle()                    # panels that grew since (a plugin's knobs)
            self.audio.follow_volume(self.session.volume_db, self.session.muted,   # MIDI may turn them
                                     self.session.source_level_db)
            self.status_label.setText(self.status_text())
        self.frame_ms.append(1000 * (time.perf_counter() - t0))

    def status_text(self) -> str:
        s = self.session
        c = s.counters()
        text = f"{self.workspace.name} — {s.status_message}"
        if s.learner is not None:
            text += f" — learning {'on' if s.settings.learning else 'paused'}"
        problems = [f"{plural(c[k], noun)}{rest}" for k, noun, rest in (
                        ("nonfinite_out", "NaN/Inf sample", " silenced"),
                        ("bad_input", "bad input sample", ""),
                        ("skipped", "bad sample", " skipped by the learner"),
                        ("diverged_steps", "step", " lost to divergence"))
                    if c.get(k)]
        stall = s.health.stall if s.learner is not None else None
        if stall is not None:
            problems.append(stall.describe())
        return text + (" — " + ", ".join(problems) if problems else "")

    def closeEvent(self, e):
        self._timer.stop()
        self._autosave.stop()
        self._jobs.shutdown(wait=True)
        self.collector.stop()
        try:
            self.workspace.close(autosave=self.autosave_enabled)
        except Exception as err:            # never lose the exit over a failed autosave
            print(f"warning: {err}")
        super().closeEvent(e)
