"""The ground-truth panel (a knob widget per hidden parameter or control: a slider, a stepped
slider, a check box or a combo box by the knob's kind) and the learned panel (a bar per learnable
parameter with the hidden value it chases). Both only call the session's mailbox methods."""
from __future__ import annotations

import math
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from app.knobs import KnobSpec, around
from app.words import plural
from engine.learn.banks import split_display_name
from ui import theme
from ui.theme import DIM, tint

TARGET = QtGui.QColor(theme.TARGET)
LEARNED = QtGui.QColor(theme.LEARNED)
STEPS = 1000


def fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.5g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


class ValueField(QtWidgets.QLineEdit):
    """Shows a value; double-click to type one (Return applies, Escape cancels). `parse` turns
    the typed text into a value (NaN: not one); `text_of` shows a value."""
    typed = QtCore.Signal(float)

    def __init__(self, text_of=fmt, parse=None):
        super().__init__()
        self.text_of = text_of
        self.parse = parse or _number
        self.setReadOnly(True)
        self.setFixedWidth(90)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.setToolTip("double-click to type a value")
        self.returnPressed.connect(self._commit)

    def mouseDoubleClickEvent(self, e):
        self.setReadOnly(False)
        self.selectAll()
        self.setFocus()

    def keyPressEvent(self, e):
        if e.key() == QtCore.Qt.Key.Key_Escape and not self.isReadOnly():
            self.setReadOnly(True)
            self.clearFocus()
            return
        super().keyPressEvent(e)

    def focusOutEvent(self, e):
        self.setReadOnly(True)
        super().focusOutEvent(e)

    def _commit(self):
        if self.isReadOnly():
            return
        v = self.parse(self.text())
        self.setReadOnly(True)
        self.clearFocus()
        if math.isfinite(v):
            self.typed.emit(v)

    def show_value(self, v: float):
        if self.isReadOnly():
            self.setText(self.text_of(v))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def knob_text(knob: KnobSpec, value: float) -> str:
    """A knob's value as the panel shows it: a label, on/off, a whole number or a number."""
    if value is None or not math.isfinite(value):
        return "—"
    if knob.kind in ("enum", "toggle", "integer"):
        return knob.text(value)
    return fmt(value)


def knob_parser(knob: KnobSpec):
    """What a typed text means for this knob: a number, or (enum) a label, (toggle) on/off."""
    def parse(text: str) -> float:
        t = text.strip().lower()
        if knob.kind == "enum":
            labels = [lab.lower() for lab in knob.labels]
            if t in labels:
                return math.ceil(knob.lo) + labels.index(t)
        if knob.kind == "toggle" and t in ("on", "off", "true", "false", "yes", "no"):
            return knob.hi if t in ("on", "true", "yes") else knob.lo
        return _number(t)
    return parse


def describe(knob: KnobSpec) -> str:
    if knob.kind == "enum":
        return " / ".join(knob.labels)
    if knob.kind == "toggle":
        return "on / off"
    extra = {"log": " (log)", "integer": " (whole numbers)"}.get(knob.kind, "")
    return f"{knob.lo:g} … {knob.hi:g}{extra}"


class KnobSlider(QtWidgets.QSlider):
    """A linear or log knob (STEPS positions), or an integer one (one position per whole
    number). `turned` carries the knob's value at the new position."""
    turned = QtCore.Signal(float)

    def __init__(self, knob: KnobSpec):
        super().__init__(QtCore.Qt.Orientation.Horizontal)
        self.knob = knob
        self.stepped = knob.kind in ("integer", "enum") and knob.steps > 1
        self.base = math.ceil(knob.lo)
        if self.stepped:
            self.setRange(0, knob.steps - 1)
            self.setPageStep(max(1, knob.steps // 10))
            if knob.steps <= 64:
                self.setTickPosition(QtWidgets.QSlider.TickPosition.TicksBelow)
        else:
            self.setRange(0, STEPS)
        self.valueChanged.connect(lambda p: self.turned.emit(self.value_at(p)))

    def value_at(self, position: int) -> float:
        if self.stepped:
            return self.knob.clamp(self.base + position)
        return self.knob.value_at(position / STEPS)

    def position(self, value: float) -> int:
        if self.stepped:
            return int(round(self.knob.clamp(value) - self.base))
        return int(round(STEPS * min(max(self.knob.fraction_of(value), 0.0), 1.0)))

    def show_value(self, value: float):
        self.blockSignals(True)
        self.setValue(self.position(value))
        self.blockSignals(False)

    def shows(self, value: float) -> bool:
        return abs(self.value_at(self.value()) - value) <= 1e-12 * max(1.0, abs(value)) \
            or self.position(value) == self.value()

    def held(self) -> bool:
        return self.isSliderDown()


class KnobCheck(QtWidgets.QCheckBox):
    """A toggle knob: checked is the knob's high value."""
    turned = QtCore.Signal(float)

    def __init__(self, knob: KnobSpec):
        super().__init__()
        self.knob = knob
        self.toggled.connect(lambda on: self.turned.emit(self.knob.hi if on else self.knob.lo))

    def show_value(self, value: float):
        self.blockSignals(True)
        self.setChecked(self.knob.clamp(value) == self.knob.hi)
        self.blockSignals(False)

    def shows(self, value: float) -> bool:
        return self.isChecked() == (self.knob.clamp(value) == self.knob.hi)

    def held(self) -> bool:
        return False


class KnobCombo(QtWidgets.QComboBox):
    """An enumerated knob: one entry per label; the value is lo + the entry's index."""
    turned = QtCore.Signal(float)

    def __init__(self, knob: KnobSpec):
        super().__init__()
        self.knob = knob
        self.base = math.ceil(knob.lo)
        self.addItems(list(knob.labels))
        self.currentIndexChanged.connect(lambda i: self.turned.emit(self.knob.clamp(self.base + i))
                                         if i >= 0 else None)

    def show_value(self, value: float):
        self.blockSignals(True)
        self.setCurrentIndex(int(self.knob.clamp(value) - self.base))
        self.blockSignals(False)

    def shows(self, value: float) -> bool:
        return self.currentIndex() == int(self.knob.clamp(value) - self.base)

    def held(self) -> bool:
        return self.view().isVisible()          # the list is open: the user is choosing


def knob_widget(knob: KnobSpec) -> QtWidgets.QWidget:
    """The widget that turns a knob of this kind: a check box (toggle), a combo box (enum), a
    stepped slider (integer) or a slider (linear, log). Each has `turned` (the chosen value),
    show_value(v) (no signal), shows(v) and held()."""
    if knob.kind == "toggle":
        return KnobCheck(knob)
    if knob.kind == "enum" and knob.labels:
        return KnobCombo(knob)
    return KnobSlider(knob)


class HiddenPanel(QtWidgets.QGroupBox):
    """One knob widget per hidden parameter or ground-truth control (and per control of the
    output insert); range, scale and kind from session.knobs(). A stereo plugin ground truth
    adds the choice of the channel that is learned (channel_requested)."""
    status = QtCore.Signal(str)
    channel_requested = QtCore.Signal(int)
    TITLE = "Ground truth (hidden knobs)"

    def __init__(self, session, midi):
        super().__init__(self.TITLE)
        self.session, self.midi = session, midi
        outer = QtWidgets.QVBoxLayout(self)
        self.channel_row = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.channel_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("learned channel"))
        self.channel = QtWidgets.QComboBox()
        self.channel.addItems(["left", "right"])
        self.channel.setObjectName("plugin_channel")
        self.channel.setToolTip("which output of the stereo plugin the circuit learns (and you hear)")
        self.channel.activated.connect(self.channel_requested.emit)
        row.addWidget(self.channel)
        row.addStretch(1)
        self.channel_row.hide()
        outer.addWidget(self.channel_row)
        self.grid = QtWidgets.QGridLayout()
        outer.addLayout(self.grid)
        self.rows: dict[str, tuple] = {}
        self.knobs = {}
        self.plugin = None                    # the plugin ground truth's PluginInfo, if any

    def rebuild(self):
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.rows.clear()
        self._show_truth()
        # rows are keyed by the hidden parameter's (or ground-truth control's) name, or by
        # "insert:NAME" for a control of the output insert
        self.knobs = {(k.split(":", 1)[1] if k.startswith("hidden:") else k): v
                      for k, v in self.session.knobs().items() if k.startswith(("hidden:", "insert:"))}
        values = self._values()
        for r, (name, knob) in enumerate(self.knobs.items()):
            label = QtWidgets.QLabel(name)
            control = None if self.plugin is None or name.startswith("insert:") else self.plugin.control(name)
            label.setToolTip((f"{control.name}; " if control is not None else "")
                             + "right-click the knob for MIDI learn")
            widget = knob_widget(knob)
            widget.setObjectName(self._knob(name))
            widget.setToolTip(f"{describe(knob)}; right-click: MIDI learn")
            widget.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
            widget.customContextMenuRequested.connect(lambda pos, n=name, w=widget: self._menu(n, w, pos))
            field = ValueField(lambda v, k=knob: knob_text(k, v), knob_parser(knob))
            cc = QtWidgets.QLabel("")
            tint(cc, DIM)
            cc.setFixedWidth(48)
            widget.turned.connect(lambda v, n=name: self._turned(n, v))
            field.typed.connect(lambda v, n=name: self.set_value(n, v))
            for c, w in enumerate((label, widget, field, cc)):
                self.grid.addWidget(w, r, c)
            self.rows[name] = (widget, field, cc)
            self._show(name, values.get(name, knob.lo))
        if not self.knobs and self.session.spec is not None:
            spec = self.session.spec
            if spec.model:
                text = f"nothing to turn: the SPTMod model {Path(spec.model).name} has no controls"
            elif spec.device is not None:
                text = ("nothing to turn here: turn the device's own knobs, and the circuit follows "
                        "(Learning > Measure the device's round trip again after changing cables)")
            elif spec.plugin:
                text = f"nothing to turn: the plugin {spec.plugin} has no controls"
            else:
                text = "nothing to turn: the target has no hidden parameters"
            note = QtWidgets.QLabel(text)
            note.setWordWrap(True)
            tint(note, DIM)
            self.grid.addWidget(note, 0, 0, 1, 4)
        self.grid.setColumnStretch(1, 1)

    def _show_truth(self):
        """The title names a plugin ground truth; a stereo one shows its learned channel."""
        spec = self.session.spec
        self.plugin = None
        if spec is not None and spec.plugin:
            from app.plugins import registry
            try:
                self.plugin = registry.find(spec.plugin, self.session.sample_rate)
            except Exception:                  # it was loaded, so this is unlikely: the id will do
                self.plugin = None
        if spec is not None and spec.recording is not None:
            self.setTitle(f"Ground truth: the recording {Path(spec.recording.wet).name}")
        elif spec is not None and spec.device is not None:
            truth = self.session.memory.active.truth if self.session.memory.active is not None else None
            lat = (f", round trip {plural(truth.processor.latency, 'sample')}"
                   if truth is not None and getattr(truth, "alignment", None) is not None else ", not measured")
            self.setTitle(f"Ground truth: a device, input {spec.device.return_channel + 1} "
                          f"(fed from output {spec.device.send_channel + 1}{lat})")
        elif spec is None or not spec.plugin:
            self.setTitle(self.TITLE)
        elif self.plugin is None:
            self.setTitle(f"Ground truth: {spec.plugin}")
        else:
            self.setTitle(f"Ground truth: {self.plugin.name} ({self.plugin.id})")
        stereo = self.plugin is not None and len(self.plugin.audio_outputs) > 1
        self.channel_row.setVisible(stereo)
        if stereo:
            self.channel.setCurrentIndex(min(max(int(spec.plugin_channel), 0), 1))

    def fraction(self, name: str, value: float) -> float:
        return self.knobs[name].fraction_of(value)

    def _show(self, name: str, value: float):
        widget, field, _ = self.rows[name]
        widget.show_value(value)
        field.show_value(value)

    @staticmethod
    def _knob(name: str) -> str:
        return name if name.startswith("insert:") else f"hidden:{name}"

    def _values(self) -> dict:
        """Every row's value, as its knob holds it (an enumerated control: the index)."""
        if self.session.learner is None:
            return {}
        values = dict(self.session.hidden())
        values.update({f"insert:{k}": v for k, v in self.session.knob_bank.values("insert:").items()})
        return values

    def _set(self, name: str, value: float) -> bool:
        try:
            if name.startswith("insert:"):
                self.session.set_insert_control(name.split(":", 1)[1], value)
            else:
                self.session.set_hidden(name, value)
        except Exception as e:                 # one status line, never an exception into Qt
            self.status.emit(f"{name}: {e}")
            return False
        return True

    def _turned(self, name: str, value: float):
        if self._set(name, value):
            self.rows[name][1].show_value(value)

    def set_value(self, name: str, value: float):
        """A typed value: clamped to the knob's range (and kind)."""
        value = self.knobs[name].clamp(value)
        if self._set(name, value):
            self._show(name, value)

    def _menu(self, name: str, widget, pos):
        menu = QtWidgets.QMenu(self)
        learn = menu.addAction("MIDI learn")
        cc = next((c for c, k in self.midi.mappings.items() if k == self._knob(name)), None)
        forget = menu.addAction(f"Forget CC {cc}") if cc is not None else None
        chosen = menu.exec(widget.mapToGlobal(pos))
        if chosen is learn:
            self.start_midi_learn(name)
        elif forget is not None and chosen is forget:
            self.midi.unmap_cc(cc)

    def start_midi_learn(self, name: str):
        self.midi.learn(self._knob(name))
        self.status.emit(f"MIDI learn: move a controller to map it to '{name}'")

    def sync(self):
        """Follow changes made elsewhere (MIDI CC, presets) without echoing them back."""
        if not self.rows or self.session.learner is None:
            return
        values = self._values()
        mappings = {k: c for c, k in self.midi.mappings.items()}
        for name, (widget, field, cc) in self.rows.items():
            if name in values and not widget.held():
                v = values[name]
                if not widget.shows(v):
                    widget.show_value(v)
                if field.isReadOnly() and field.text() != field.text_of(v):
                    field.show_value(v)
            c = mappings.get(self._knob(name))
            text = "learn…" if self.midi.learning == self._knob(name) else ("" if c is None else f"CC {c}")
            if cc.text() != text:
                cc.setText(text)


class ParamBar(QtWidgets.QWidget):
    """A horizontal bar: the learned value (orange fill from the range's zero or low end) and a
    blue tick at the hidden value it chases."""

    def __init__(self, knob: KnobSpec):
        super().__init__()
        self.knob = knob
        self.lo, self.hi, self.log = knob.lo, knob.hi, knob.log
        self.learned: float | None = None
        self.hidden: float | None = None
        self.setMinimumHeight(18)
        self.setMinimumWidth(80)

    def set_values(self, learned, hidden):
        if (learned, hidden) != (self.learned, self.hidden):
            self.learned, self.hidden = learned, hidden
            self.update()

    def _x(self, v: float) -> float:
        return 2 + self.knob.fraction_of(v) * (self.width() - 4)

    def paintEvent(self, e):
        p = QtGui.QPainter(self)
        r = self.rect().adjusted(0, 3, -1, -4)
        p.fillRect(r, QtGui.QColor(theme.TRACK))
        if self.learned is not None and math.isfinite(self.learned):
            base = self._x(self.lo if self.log else min(max(0.0, self.lo), self.hi))
            x = self._x(self.learned)
            p.fillRect(QtCore.QRectF(min(base, x), r.top() + 2, max(abs(x - base), 2), r.height() - 4), LEARNED)
        if self.hidden is not None and math.isfinite(self.hidden):
            x = self._x(self.hidden)
            p.setPen(QtGui.QPen(TARGET, 3))
            p.drawLine(QtCore.QPointF(x, r.top() - 2), QtCore.QPointF(x, r.bottom() + 2))
        p.end()


class LearnedPanel(QtWidgets.QGroupBox):
    """A bar, the value and the distance to the hidden value, per learnable parameter."""

    def __init__(self):
        super().__init__("Learned")
        self.grid = QtWidgets.QGridLayout(self)
        self.rows: dict[str, tuple] = {}

    def rebuild(self, session):
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.rows.clear()
        learner = session.learner
        if learner is None:
            return
        knobs = session.knobs()
        for r, (name, sp) in enumerate(zip(learner.param_names, learner.specs)):
            base = split_display_name(name)[0]          # banks: "gain@2" chases gain
            knob = around(name, sp.init, sp.lo, sp.hi, sp.log)
            if not (math.isfinite(sp.lo) and math.isfinite(sp.hi)):    # the hidden knob's range
                knob = knobs.get(f"hidden:{base}", KnobSpec(name, -1.0, 1.0))
            bar = ParamBar(knob)
            bar.setObjectName(f"learned:{name}")
            value, dist = QtWidgets.QLabel("—"), QtWidgets.QLabel("")
            value.setFixedWidth(72)
            value.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
            dist.setFixedWidth(86)
            tint(dist, DIM)
            for c, w in enumerate((QtWidgets.QLabel(name), bar, value, dist)):
                self.grid.addWidget(w, r, c)
            self.rows[name] = (bar, value, dist)
        self.grid.setColumnStretch(1, 1)

    def show_values(self, learned: dict, hidden: dict):
        for name, (bar, value, dist) in self.rows.items():
            v, h = learned.get(name), hidden.get(split_display_name(name)[0])
            bar.set_values(v, h)
            value.setText(fmt(v))
            dist.setText("" if v is None or h is None else f"Δ {fmt(abs(v - h))}")
