"""Parameter trajectories: learned values solid, hidden ones dashed, one colour per parameter."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from ui.plots.base import _TimePlot, _curve
from ui.plots.history import History, _thin
from ui.theme import FG, PALETTE


class TrajectoryPlot(_TimePlot):
    """Learned parameter values over time (solid, a palette colour per parameter) and the hidden
    values as dashed steps of the same colour (a hidden value without a learned parameter of the
    same name gets the next palette colour), with a legend."""
    HIDDEN_CAPACITY = 8192      # changes of the hidden values remembered

    def __init__(self, capacity_seconds: float = 600, rows_per_second: float = 100, parent=None):
        super().__init__(parent, capacity_seconds)
        self.rows_per_second = float(rows_per_second)
        pi = self.getPlotItem()
        pi.setLabel("left", "value")
        pi.getAxis("left").enableAutoSIPrefix(False)
        self._legend = pi.addLegend(offset=(8, 8), labelTextColor=FG,
                                    brush=pg.mkBrush(21, 23, 28, 200), labelTextSize="8pt")
        self._cache_legend()
        self._learned: list[str] = []
        self._hidden: list[str] = []
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._hcurves: dict[str, pg.PlotDataItem] = {}
        self._hist = History(1, 0)
        self._hhist = History(self.HIDDEN_CAPACITY, 0)
        self._hlast: np.ndarray | None = None
        self._drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._hdrawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _cache_legend(self):
        """The legend is static: paint it from pixmaps instead of redrawing it every frame."""
        mode = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        todo = [self._legend]
        while todo:
            item = todo.pop()
            item.setCacheMode(mode)
            todo.extend(item.childItems())

    @property
    def names(self) -> tuple[list[str], list[str]]:
        return list(self._learned), list(self._hidden)

    def set_names(self, learned: list[str], hidden: list[str]):
        """Rebuild the curves for a new circuit (clears the data)."""
        pi = self.getPlotItem()
        for item in list(self._curves.values()) + list(self._hcurves.values()):
            pi.removeItem(item)
        self._legend.clear()
        self._learned, self._hidden = list(learned), list(hidden)
        rows = max(1, int(round(self.capacity_seconds * self.rows_per_second)))
        self._hist = History(rows, len(self._learned))
        self._hhist = History(self.HIDDEN_CAPACITY, len(self._hidden))
        self._hlast = None
        self._newest = self._ref = None
        self._drawn, self._hdrawn = {}, {}
        colors = {}
        self._curves = {}
        for k, name in enumerate(self._learned):
            colors[name] = PALETTE[k % len(PALETTE)]
            self._curves[name] = _curve(pi, pen=pg.mkPen(colors[name], width=1), name=name)
        extra = len(self._learned)
        self._hcurves = {}
        for name in self._hidden:
            if name in colors:
                color, label = colors[name], None
            else:
                color, label = PALETTE[extra % len(PALETTE)], f"{name} (hidden)"
                extra += 1
            pen = pg.mkPen(color, width=1, style=QtCore.Qt.PenStyle.DashLine)
            self._hcurves[name] = _curve(pi, pen=pen, name=label)
        self._cache_legend()
        self._dirty = True
        self.refresh()

    def clear_data(self):
        """Forget all rows, keeping the names."""
        self.set_names(self._learned, self._hidden)

    def append(self, t: np.ndarray, learned: np.ndarray, hidden: dict[str, float]):
        t = np.asarray(t, dtype=float).reshape(-1)
        n = t.size
        if n == 0:
            return
        learned = np.asarray(learned, dtype=float)
        if learned.size != n * len(self._learned):
            raise ValueError(f"TrajectoryPlot.append: expected {n} rows of {len(self._learned)} values, "
                             f"got shape {learned.shape}")
        learned = learned.reshape(n, len(self._learned))
        self._newest = float(t[-1])
        if self._hidden:
            prev = self._hlast
            hidden = hidden or {}
            vec = np.array([float(hidden[name]) if name in hidden else
                            (math.nan if prev is None else prev[k])
                            for k, name in enumerate(self._hidden)])
            if prev is None or not np.array_equal(vec, prev, equal_nan=True):
                self._hhist.append(t[:1], vec[None, :])
                self._hlast = vec
                self._dirty = True          # show a knob turn at once
        keep = _thin(t, self._hist.last_time, self.rows_per_second)
        self._hist.append(t[keep], learned[keep])

    def _draw(self):
        w = self._window()
        ref = self._ref if self._ref is not None else 0.0
        lo, hi = math.inf, -math.inf
        if w is None:
            t, v = np.empty(0), np.empty((0, len(self._learned)))
        else:
            t, v = self._hist.between(*w)
        x = t - ref
        for k, name in enumerate(self._learned):
            y = np.ascontiguousarray(v[:, k])      # a copy: the ring buffer is reused
            self._drawn[name] = (x, y)
            self._curves[name].setData(x, y)
        if v.size and np.isfinite(v).any():
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        if self._hidden:
            th, vh = self._hhist.since(-math.inf)
            if w is not None and th.size:
                # from the value in force at the window's start to the newest change in it
                i = max(0, int(np.searchsorted(th, w[0], side="right")) - 1)
                j = int(np.searchsorted(th, w[1], side="right"))
                th, vh = th[i:j], vh[i:j]
            xs, ys = np.empty(0), np.empty((0, len(self._hidden)))
            if w is not None and th.size:
                end = max(self._newest if self._newest is not None else th[-1], th[-1])
                if not self._follow_x:
                    end = min(end, w[1])
                xs = np.empty(2 * th.size)
                xs[0::2] = th
                xs[1:-1:2] = th[1:]
                xs[-1] = end
                xs -= ref
                ys = np.repeat(vh, 2, axis=0)
                if np.isfinite(ys).any():
                    lo = min(lo, float(np.nanmin(ys)))
                    hi = max(hi, float(np.nanmax(ys)))
            for k, name in enumerate(self._hidden):
                y = np.ascontiguousarray(ys[:, k])
                self._hdrawn[name] = (xs, y)
                self._hcurves[name].setData(xs, y)
        if self._auto_y and math.isfinite(lo) and math.isfinite(hi):
            self._range_y(lo, hi)

    def _range_y(self, lo: float, hi: float):
        """Move the y range only when the data leaves it or would fit in under half of it (a
        range change re-lays out the axis, so a slowly drifting curve must not cause one per
        frame); a flat curve gets a small range around its value."""
        mid = 0.5 * (lo + hi)
        need = max(0.5 * (hi - lo) * 1.1, 1e-3 * abs(mid), 1e-9)
        cur = self._yrange
        if cur is not None and cur[0] <= lo and hi <= cur[1] and need >= 0.25 * (cur[1] - cur[0]):
            return
        half = need * 1.25 if cur is not None and not (cur[0] <= lo and hi <= cur[1]) else need
        self._set_y(mid - half, mid + half)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The learned curve's drawn x (relative seconds) and y."""
        if name not in self._curves:
            raise KeyError(name)
        return self._drawn.get(name, (np.empty(0), np.empty(0)))

    def hidden_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The hidden value's drawn step line x (relative seconds) and y."""
        if name not in self._hcurves:
            raise KeyError(name)
        return self._hdrawn.get(name, (np.empty(0), np.empty(0)))
