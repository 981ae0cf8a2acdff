"""The ground-truth panel (a slider per hidden parameter) and the learned panel (a bar per learnable
parameter with the hidden value it chases). Both only call the session's mailbox methods."""
from __future__ import annotations

import math
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from app.knobs import KnobSpec, around
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
    """Shows a value; double-click to type one (Return applies, Escape cancels)."""
    typed = QtCore.Signal(float)

    def __init__(self):
        super().__init__()
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
        try:
            v = float(self.text())
        except ValueError:
            v = math.nan
        self.setReadOnly(True)
        self.clearFocus()
        if math.isfinite(v):
            self.typed.emit(v)

    def show_value(self, v: float):
        if self.isReadOnly():
            self.setText(fmt(v))


class HiddenPanel(QtWidgets.QGroupBox):
    """One slider per hidden parameter; range and scale from its declaration (session.knobs())."""
    status = QtCore.Signal(str)

    def __init__(self, session, midi):
        super().__init__("Ground truth (hidden knobs)")
        self.session, self.midi = session, midi
        self.grid = QtWidgets.QGridLayout(self)
        self.rows: dict[str, tuple] = {}
        self.knobs = {}

    def rebuild(self):
        while self.grid.count():
            self.grid.takeAt(0).widget().deleteLater()
        self.rows.clear()
        # rows are keyed by the hidden parameter's name, or by "insert:NAME" for a control of the
        # output insert (an SPTMod model on the output)
        self.knobs = {(k.split(":", 1)[1] if k.startswith("hidden:") else k): v
                      for k, v in self.session.knobs().items() if k.startswith(("hidden:", "insert:"))}
        hidden = self._values()
        for r, (name, knob) in enumerate(self.knobs.items()):
            label = QtWidgets.QLabel(name)
            label.setToolTip("right-click the slider for MIDI learn")
            slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            slider.setRange(0, STEPS)
            slider.setObjectName(self._knob(name))
            slider.setToolTip(f"{knob.lo:g} … {knob.hi:g}{' (log)' if knob.log else ''}; right-click: MIDI learn")
            slider.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
            slider.customContextMenuRequested.connect(lambda pos, n=name, s=slider: self._menu(n, s, pos))
            field = ValueField()
            cc = QtWidgets.QLabel("")
            tint(cc, DIM)
            cc.setFixedWidth(48)
            slider.valueChanged.connect(lambda v, n=name: self._moved(n, v))
            field.typed.connect(lambda v, n=name: self.set_value(n, v))
            for c, w in enumerate((label, slider, field, cc)):
                self.grid.addWidget(w, r, c)
            self.rows[name] = (slider, field, cc)
            self._show(name, hidden.get(name, knob.lo))
        if not self.knobs and self.session.spec is not None:
            spec = self.session.spec
            text = (f"nothing to turn: the SPTMod model {Path(spec.model).name} has no controls"
                    if spec.model else "nothing to turn: the target has no hidden parameters")
            note = QtWidgets.QLabel(text)
            note.setWordWrap(True)
            tint(note, DIM)
            self.grid.addWidget(note, 0, 0, 1, 4)
        self.grid.setColumnStretch(1, 1)

    def fraction(self, name: str, value: float) -> float:
        return self.knobs[name].fraction_of(value)

    def _show(self, name: str, value: float):
        slider, field, _ = self.rows[name]
        slider.blockSignals(True)
        slider.setValue(int(round(STEPS * min(max(self.fraction(name, value), 0.0), 1.0))))
        slider.blockSignals(False)
        field.show_value(value)

    @staticmethod
    def _knob(name: str) -> str:
        return name if name.startswith("insert:") else f"hidden:{name}"

    def _values(self) -> dict:
        if self.session.learner is None:
            return {}
        values = dict(self.session.hidden())
        ins = self.session.insert()
        values.update({f"insert:{k}": v for k, v in (ins or {}).get("controls", {}).items()})
        return values

    def _set(self, name: str, value: float):
        if name.startswith("insert:"):
            self.session.set_insert_control(name.split(":", 1)[1], value)
        else:
            self.session.set_hidden(name, value)

    def _moved(self, name: str, position: int):
        v = self.knobs[name].value_at(position / STEPS)
        self._set(name, v)
        self.rows[name][1].show_value(v)

    def set_value(self, name: str, value: float):
        """A typed value: clamped to the knob's range."""
        k = self.knobs[name]
        value = min(max(value, k.lo), k.hi)
        self._set(name, value)
        self._show(name, value)

    def _menu(self, name: str, slider, pos):
        menu = QtWidgets.QMenu(self)
        learn = menu.addAction("MIDI learn")
        cc = next((c for c, k in self.midi.mappings.items() if k == self._knob(name)), None)
        forget = menu.addAction(f"Forget CC {cc}") if cc is not None else None
        chosen = menu.exec(slider.mapToGlobal(pos))
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
        hidden = self._values()
        mappings = {k: c for c, k in self.midi.mappings.items()}
        for name, (slider, field, cc) in self.rows.items():
            if name in hidden and not slider.isSliderDown():
                v = hidden[name]
                if abs(self.knobs[name].value_at(slider.value() / STEPS) - v) > 1e-12 * max(1, abs(v)) \
                        and int(round(STEPS * self.fraction(name, v))) != slider.value():
                    self._show(name, v)
                elif field.isReadOnly() and field.text() != fmt(v):
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
        self.setMinimumWidth(120)

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
            value.setFixedWidth(90)
            value.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
            dist.setFixedWidth(110)
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
