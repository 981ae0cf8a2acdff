"""The loss: a dB meter with peak hold, and its log history over time."""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ui.plots.base import _TimePlot, _curve
from ui.plots.history import History, _thin
from ui.theme import BG, FG, LOSS, TRACK


class LossMeter(QtWidgets.QWidget):
    """A vertical (or horizontal) bar in dB: 10*log10(loss) over [lo_db, hi_db] (default -160..+20),
    with a peak-hold tick that holds the highest value for 1.5 s then falls at 20 dB/s, and a
    numeric label ("-87.3 dB", "—" for no value). Non-finite or <= 0 losses show the floor and
    "—" and never raise. Painted with QPainter.

    Vertical: a column with the label below the bar. Horizontal: a compact strip HEIGHT pixels
    high (to sit above the loss history) with the label inside the bar."""
    HOLD_S = 1.5
    FALL_DB_PER_S = 20.0
    HEIGHT = 24                 # the horizontal meter's fixed height

    def __init__(self, parent=None, orientation=QtCore.Qt.Orientation.Vertical,
                 lo_db: float = -160.0, hi_db: float = 20.0):
        super().__init__(parent)
        self._orientation = orientation
        self._lo, self._hi = -160.0, 20.0
        self.set_range(lo_db, hi_db)
        self._value: float | None = None
        self._held: float | None = None     # the peak at the moment it was taken
        self._held_t = 0.0
        self._peak: float | None = None     # the held peak as decayed at the last set_loss
        self._font = QtGui.QFont()
        self._font.setPointSizeF(8.5)
        self._colors = {k: QtGui.QColor(c) for k, c in
                        (("bg", BG), ("fg", FG), ("bar", LOSS), ("track", TRACK))}
        if orientation == QtCore.Qt.Orientation.Vertical:
            self.setMinimumSize(48, 120)
            self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        else:
            self.setMinimumSize(120, self.HEIGHT)
            self.setMaximumHeight(self.HEIGHT)
            self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    @property
    def orientation(self) -> QtCore.Qt.Orientation:
        return self._orientation

    def sizeHint(self):
        if self._orientation == QtCore.Qt.Orientation.Vertical:
            return QtCore.QSize(58, 240)
        return QtCore.QSize(320, self.HEIGHT)

    def minimumSizeHint(self):
        return self.minimumSize()

    def layout_rects(self) -> tuple[QtCore.QRect, QtCore.QRect]:
        """(the bar's track, the value text's box) at the current size: horizontally the text
        sits inside the bar; vertically below it."""
        fm = QtGui.QFontMetrics(self._font)
        w, h = self.width(), self.height()
        if self._orientation == QtCore.Qt.Orientation.Vertical:
            label_h = fm.height() + 4
            return (QtCore.QRect(w // 2 - 7, 4, 14, max(1, h - label_h - 8)),
                    QtCore.QRect(0, h - label_h, w, label_h))
        track = QtCore.QRect(2, 2, max(1, w - 4), max(1, h - 4))
        return track, QtCore.QRect(track)

    def set_range(self, lo_db: float, hi_db: float):
        lo, hi = float(lo_db), float(hi_db)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError("the meter range needs finite lo_db < hi_db")
        self._lo, self._hi = lo, hi
        self.setToolTip(f"loss in dB (10·log10 loss) on {lo:g}…{hi:g} dB, ticks every 20 dB; "
                        "the light tick holds the recent peak")
        self.update()

    @property
    def range_db(self) -> tuple[float, float]:
        return self._lo, self._hi

    def set_loss(self, loss: float, now: float | None = None):
        now = time.monotonic() if now is None else float(now)
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            loss = math.nan
        value = 10.0 * math.log10(loss) if (math.isfinite(loss) and loss > 0) else None
        peak = self._decayed(now)
        if value is not None and (peak is None or value >= peak):
            self._held, self._held_t, peak = value, now, value
        changed = (value, peak) != (self._value, self._peak)
        self._value, self._peak = value, peak
        if changed:
            self.update()

    def _decayed(self, now: float) -> float | None:
        if self._held is None:
            return None
        late = now - self._held_t - self.HOLD_S
        p = self._held if late <= 0 else self._held - self.FALL_DB_PER_S * late
        return max(p, min(self._held, self._lo))      # falls to the floor, not through it

    @property
    def value_db(self) -> float | None:
        return self._value

    @property
    def peak_db(self) -> float | None:
        return self._peak

    @property
    def text(self) -> str:
        return "—" if self._value is None else f"{self._value:.1f} dB"

    def _frac(self, db: float | None) -> float:
        if db is None:
            return 0.0
        return min(1.0, max(0.0, (db - self._lo) / (self._hi - self._lo)))

    def paintEvent(self, event):
        p = QtGui.QPainter(self)
        c = self._colors
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, c["bg"])
        p.setFont(self._font)
        vertical = self._orientation == QtCore.Qt.Orientation.Vertical
        track, label = self.layout_rects()
        p.fillRect(track, c["track"])
        # scale ticks every 20 dB
        p.setPen(QtGui.QPen(c["fg"].darker(220), 1))
        step = 20.0
        d = math.ceil(self._lo / step) * step
        while d <= self._hi:
            f = self._frac(d)
            if vertical:
                y = track.bottom() - int(round(f * (track.height() - 1)))
                p.drawLine(track.left() - 4, y, track.left() - 1, y)
                p.drawLine(track.right() + 1, y, track.right() + 4, y)
            else:
                x = track.left() + int(round(f * (track.width() - 1)))
                p.drawLine(x, track.bottom() - 3, x, track.bottom())
            d += step
        f = self._frac(self._value)
        bar = QtCore.QRect()
        if f > 0:
            if vertical:
                bh = int(round(f * track.height()))
                bar = QtCore.QRect(track.left(), track.bottom() - bh + 1, track.width(), bh)
            else:
                bar = QtCore.QRect(track.left(), track.top(), int(round(f * track.width())), track.height())
            p.fillRect(bar, c["bar"])
        if self._peak is not None:
            p.setPen(QtGui.QPen(c["fg"], 2))
            f = self._frac(self._peak)
            if vertical:
                y = track.bottom() - int(round(f * (track.height() - 1)))
                p.drawLine(track.left(), y, track.right(), y)
            else:
                x = track.left() + int(round(f * (track.width() - 1)))
                p.drawLine(x, track.top(), x, track.bottom())
        self._draw_text(p, label, QtCore.QRect() if vertical else bar)
        p.end()

    def _draw_text(self, p: QtGui.QPainter, label: QtCore.QRect, bar: QtCore.QRect):
        """The value, centred in `label`: dark where it lies over the bar, light elsewhere."""
        align = QtCore.Qt.AlignmentFlag.AlignCenter
        p.setPen(self._colors["fg"])
        if bar.isEmpty():
            p.drawText(label, align, self.text)
            return
        rest = QtGui.QRegion(label).subtracted(QtGui.QRegion(bar))
        p.setClipRegion(rest)
        p.drawText(label, align, self.text)
        p.setClipRect(bar)
        p.setPen(self._colors["bg"])
        p.drawText(label, align, self.text)
        p.setClipping(False)


class LossHistory(_TimePlot):
    """Loss over time on a log y axis, x in seconds relative to the newest row. Only positive
    finite losses are drawn; a run of others (e.g. while learning is paused) breaks the line."""

    def __init__(self, capacity_seconds: float = 600, rows_per_second: float = 400, parent=None):
        super().__init__(parent, capacity_seconds)
        self.rows_per_second = float(rows_per_second)
        self._hist = History(max(1, int(round(capacity_seconds * rows_per_second))), 1)
        self._last_valid = True
        pi = self.getPlotItem()
        pi.setLogMode(y=True)
        pi.setLabel("left", "loss")
        pi.getAxis("left").enableAutoSIPrefix(False)
        self._curve = _curve(pi, pen=pg.mkPen(LOSS, width=1), connect="finite")
        self._x = np.empty(0)
        self._y = np.empty(0)

    def append(self, t: np.ndarray, loss: np.ndarray):
        t = np.asarray(t, dtype=float).reshape(-1)
        loss = np.asarray(loss, dtype=float).reshape(-1)
        if t.size != loss.size:
            raise ValueError("LossHistory.append: t and loss differ in length")
        if t.size == 0:
            return
        self._newest = float(t[-1])
        keep = _thin(t, self._hist.last_time, self.rows_per_second)
        t, loss = t[keep], loss[keep]
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(loss) & (loss > 0)
        if not valid.all():
            # keep the valid rows plus one NaN where each invalid run starts: the line breaks there
            prev = np.empty_like(valid)
            prev[0] = self._last_valid
            prev[1:] = valid[:-1]
            rows = valid | prev
            t = t[rows]
            loss = np.where(valid, loss, np.nan)[rows]
        self._last_valid = bool(valid[-1])
        self._hist.append(t, loss[:, None])

    def clear_data(self):
        """Forget all rows. (Not `clear`: PlotWidget binds that name to PlotItem.clear.)"""
        self._hist.clear()
        self._newest = self._ref = None
        self._last_valid = True
        self._dirty = True
        self.refresh()

    def _draw(self):
        w = self._window()
        if w is None:
            t, y = np.empty(0), np.empty(0)
        else:
            t, v = self._hist.between(*w)
            y = v[:, 0].copy()
        x = t - (self._ref if self._ref is not None else 0.0)
        self._x, self._y = x, y
        self._curve.setData(x, y, connect="finite")
        if self._auto_y and y.size:
            finite = y[np.isfinite(y)]
            if finite.size:
                lo = math.floor(math.log10(float(finite.min())))
                hi = math.ceil(math.log10(float(finite.max())))
                self._set_y(lo, hi if hi > lo else lo + 1)

    def visible_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The points the curve shows (x relative to now, positive finite loss)."""
        m = np.isfinite(self._y)
        return self._x[m], self._y[m]
