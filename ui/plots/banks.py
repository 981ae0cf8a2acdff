"""The LACTOSE bank view: the condition axis with its bank boundaries (the inner ones draggable),
the active bank lit, the live condition value, and per bank the learned value of one parameter as a
step beside the hidden value it chases."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from ui.theme import BG, DIM, HIGHLIGHT, LEARNED, LOSS, TARGET

LIT = (79, 195, 247, 45)      # the active bank: TARGET, faint
UNITS = {"level": "level (dBFS)", "input": "input sample", "note": "MIDI note", "velocity": "velocity"}


class BankView(QtWidgets.QWidget):
    boundaries_changed = QtCore.Signal(list)      # the new sorted boundaries after a drag

    def __init__(self):
        super().__init__()
        self.plot = pg.PlotWidget(background=BG)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.param = QtWidgets.QComboBox()
        self.param.currentTextChanged.connect(lambda _: self._draw_values())
        self.title = QtWidgets.QLabel("banks")
        self.title.setWordWrap(True)          # never what sets the knobs' column width
        self.setToolTip("drag an inner boundary to move it (what was learned is kept)")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.title, 1)
        row.addWidget(self.param)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.plot, 1)
        pi = self.plot.getPlotItem()
        self.lit = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(*LIT), pen=pg.mkPen(None))
        pi.addItem(self.lit)
        self.now = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(LOSS, width=2))
        pi.addItem(self.now)
        self.steps = pg.PlotDataItem(pen=pg.mkPen(LEARNED, width=3), connect="pairs")
        self.hidden_line = pg.InfiniteLine(angle=0, movable=False,
                                           pen=pg.mkPen(TARGET, width=1, style=QtCore.Qt.PenStyle.DashLine))
        pi.addItem(self.steps)
        pi.addItem(self.hidden_line)
        self.lines: list[pg.InfiniteLine] = []
        self.boundaries: list[float] = []
        self.values: list[dict] = []
        self.hidden: dict = {}
        self.active = 0

    def set_banks(self, banks, names: list[str]):
        """A new circuit: banks (engine Banks or None) and the base parameter names."""
        pi = self.plot.getPlotItem()
        for line in self.lines:
            pi.removeItem(line)
        self.lines = []
        self.setVisible(banks is not None)
        if banks is None:
            return
        self.boundaries = [float(v) for v in banks.boundaries]
        lo, hi = self.boundaries[0], self.boundaries[-1]
        for j, b in enumerate(self.boundaries):
            inner = 0 < j < len(self.boundaries) - 1
            line = pg.InfiniteLine(b, angle=90, movable=inner, pen=pg.mkPen(DIM, width=2 if inner else 1),
                                   hoverPen=pg.mkPen(HIGHLIGHT, width=3))
            if inner:
                line.setBounds((lo, hi))
                line.sigPositionChangeFinished.connect(self._dragged)
            pi.addItem(line)
            self.lines.append(line)
        pi.setXRange(lo, hi, padding=0.02)
        pi.setLabel("bottom", UNITS.get(banks.condition, banks.condition))
        self.title.setText(f"{banks.K} banks on the {UNITS.get(banks.condition, banks.condition)} "
                           f"({banks.mode})")
        self.param.blockSignals(True)
        self.param.clear()
        self.param.addItems(names)
        self.param.blockSignals(False)
        self.values = [{} for _ in range(banks.K)]
        self.show_state(0, lo, self.values, {})

    def _dragged(self):
        new = sorted(line.value() for line in self.lines)
        if all(b2 > b1 for b1, b2 in zip(new, new[1:])) and new != self.boundaries:
            self.boundaries_changed.emit([float(v) for v in new])

    def show_state(self, active: int, condition: float, values: list[dict], hidden: dict):
        """The live condition and active bank; per bank, its learned values (base names)."""
        if not self.lines:
            return
        self.active = min(max(int(active), 0), len(self.boundaries) - 2)
        self.lit.setRegion((self.boundaries[self.active], self.boundaries[self.active + 1]))
        lo, hi = self.boundaries[0], self.boundaries[-1]
        if math.isfinite(condition):
            self.now.setValue(min(max(condition, lo), hi))
        self.values, self.hidden = values, hidden
        self._draw_values()

    def _draw_values(self):
        name = self.param.currentText()
        xs, ys = [], []
        for k, vals in enumerate(self.values):
            if name in vals and math.isfinite(vals[name]):
                xs += [self.boundaries[k], self.boundaries[k + 1]]
                ys += [vals[name], vals[name]]
        self.steps.setData(np.array(xs), np.array(ys))
        h = self.hidden.get(name)
        self.hidden_line.setVisible(h is not None)
        if h is not None:
            self.hidden_line.setValue(h)

    def step_data(self):
        """(x, y) of the drawn per-bank steps (for tests)."""
        return self.steps.getData()
