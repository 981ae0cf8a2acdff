"""Data-driven plot widgets of the main window: a loss meter, the loss history, the parameter
trajectories and a triggered scope with spectra. They take numpy arrays and draw them; they know
nothing of audio streams or sessions.

They are built to be cheap at 30 frames per second next to a real-time audio thread: data lives in
preallocated ring buffers, every frame is a `setData` on curves made once, pyqtgraph clips to the
view and peak-downsamples, nothing loops over samples in Python, hidden widgets skip their work
(and catch up when shown), antialiasing is off, and axis ranges move only when they must (a range
change re-lays out the ticks, which costs more than drawing the curve)."""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

pg.setConfigOptions(antialias=False)

BG = "#15171c"
FG = "#c8ccd4"
TARGET = "#4fc3f7"
LEARNED = "#ffb74d"
LOSS = "#e57373"
TRACK = "#23262e"
# One colour per learnable parameter, in order; a hidden value takes its parameter's colour.
PALETTE = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176",
           "#4db6ac", "#f06292", "#a1887f", "#90a4ae", "#aed581", "#7986cb")

SPAN_MIN, SPAN_MAX = 10.0, 600.0
DEFAULT_SPAN = 60.0
DB_FLOOR = -200.0           # what the spectrum reports for silence (below the -120 dB plot floor)
FFT_SIZE = 4096


# ---------------------------------------------------------------------------------------- data
class History:
    """Fixed-capacity ring of (t, columns) rows for plotting, oldest first.

    Rows live contiguously in a buffer of twice the capacity; when the end is reached the newest
    rows are moved to the front once (amortised O(1) per row), so `since` returns plain views
    without concatenating. Times must not decrease (they are searched with `searchsorted`).
    The views stay valid until the next `append`; copy them to keep them longer."""

    def __init__(self, capacity: int, columns: int):
        if capacity < 1 or columns < 0:
            raise ValueError("History needs capacity >= 1 and columns >= 0")
        self.capacity = int(capacity)
        self.columns = int(columns)
        self._t = np.empty(2 * self.capacity)
        self._v = np.empty((2 * self.capacity, self.columns))
        self._start = 0
        self._end = 0

    def append(self, t: np.ndarray, values: np.ndarray):
        t = np.asarray(t, dtype=float).reshape(-1)
        n = t.size
        if n == 0:
            return
        v = np.asarray(values, dtype=float).reshape(n, self.columns)
        cap = self.capacity
        if n >= cap:
            self._t[:cap] = t[-cap:]
            self._v[:cap] = v[-cap:]
            self._start, self._end = 0, cap
            return
        if self._end + n > 2 * cap:
            keep = min(self._end - self._start, cap - n)
            lo = self._end - keep           # lo >= cap >= keep: source and destination never overlap
            self._t[:keep] = self._t[lo:self._end]
            self._v[:keep] = self._v[lo:self._end]
            self._start, self._end = 0, keep
        e = self._end
        self._t[e:e + n] = t
        self._v[e:e + n] = v
        self._end = e + n
        self._start = max(self._start, self._end - cap)

    def since(self, t0: float) -> tuple[np.ndarray, np.ndarray]:
        """Views of the rows with t >= t0, oldest first."""
        t = self._t[self._start:self._end]
        i = int(np.searchsorted(t, t0, side="left"))
        return t[i:], self._v[self._start + i:self._end]

    def between(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Views of the rows with t0 <= t <= t1, oldest first."""
        t = self._t[self._start:self._end]
        i = int(np.searchsorted(t, t0, side="left"))
        j = int(np.searchsorted(t, t1, side="right"))
        j = max(i, j)
        return t[i:j], self._v[self._start + i:self._start + j]

    def clear(self):
        self._start = self._end = 0

    def __len__(self):
        return self._end - self._start

    @property
    def last_time(self) -> float | None:
        return float(self._t[self._end - 1]) if self._end > self._start else None


def _thin(t: np.ndarray, last: float | None, rate: float) -> slice:
    """A stride that keeps at most about `rate` rows per second of `t` (always the newest row)."""
    n = t.size
    if n < 2 or rate <= 0:
        return slice(None)
    t0 = last if last is not None else float(t[0])
    count = n if last is not None else n - 1
    dur = float(t[-1]) - t0
    if not dur > 0:
        return slice(n - 1, None)
    stride = math.ceil(count / (dur * rate) - 0.01)
    if stride <= 1:
        return slice(None)
    return slice((n - 1) % stride, None, stride)


def _nice_up(v: float) -> float:
    """The smallest 1-2-5 step number >= v (v > 0)."""
    e = math.floor(math.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0 ** e >= v * (1 - 1e-12):
            return m * 10.0 ** e
    return 10.0 ** (e + 1)


# ---------------------------------------------------------------------------------- the meter
class LossMeter(QtWidgets.QWidget):
    """A vertical (or horizontal) bar in dB: 10*log10(loss) over [lo_db, hi_db] (default -160..+20),
    with a peak-hold tick that holds the highest value for 1.5 s then falls at 20 dB/s, and a
    numeric label ("-87.3 dB", "—" for no value). Non-finite or <= 0 losses show the floor and
    "—" and never raise. Painted with QPainter."""
    HOLD_S = 1.5
    FALL_DB_PER_S = 20.0

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
            self.setMinimumSize(160, 22)
            self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)
        self.setToolTip("loss in dB (10·log10 loss); the tick holds the recent peak")

    def sizeHint(self):
        if self._orientation == QtCore.Qt.Orientation.Vertical:
            return QtCore.QSize(58, 240)
        return QtCore.QSize(320, 24)

    def set_range(self, lo_db: float, hi_db: float):
        lo, hi = float(lo_db), float(hi_db)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError("the meter range needs finite lo_db < hi_db")
        self._lo, self._hi = lo, hi
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
        fm = p.fontMetrics()
        label_h = fm.height() + 4
        vertical = self._orientation == QtCore.Qt.Orientation.Vertical
        if vertical:
            track = QtCore.QRect(w // 2 - 7, 4, 14, max(1, h - label_h - 8))
            label = QtCore.QRect(0, h - label_h, w, label_h)
        else:
            lw = fm.horizontalAdvance("-188.8 dB") + 8
            track = QtCore.QRect(4, h // 2 - 6, max(1, w - lw - 8), 12)
            label = QtCore.QRect(w - lw, 0, lw, h)
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
                p.drawLine(x, track.top() - 4, x, track.top() - 1)
            d += step
        f = self._frac(self._value)
        if f > 0:
            if vertical:
                bh = int(round(f * track.height()))
                p.fillRect(track.left(), track.bottom() - bh + 1, track.width(), bh, c["bar"])
            else:
                p.fillRect(track.left(), track.top(), int(round(f * track.width())), track.height(), c["bar"])
        if self._peak is not None:
            p.setPen(QtGui.QPen(c["fg"], 2))
            f = self._frac(self._peak)
            if vertical:
                y = track.bottom() - int(round(f * (track.height() - 1)))
                p.drawLine(track.left(), y, track.right(), y)
            else:
                x = track.left() + int(round(f * (track.width() - 1)))
                p.drawLine(x, track.top(), x, track.bottom())
        p.setPen(c["fg"])
        p.drawText(label, QtCore.Qt.AlignmentFlag.AlignCenter, self.text)
        p.end()


# --------------------------------------------------------------------------------- plot basics
def _style(plot: pg.PlotWidget):
    pi = plot.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        ax = pi.getAxis(name)
        ax.setPen(pg.mkPen(FG))
        ax.setTextPen(pg.mkPen(FG))
    pi.hideButtons()
    pi.getViewBox().disableAutoRange()
    # No showGrid: pyqtgraph's grid costs ~2.5 ms per plot per frame in the raster engine.


def _curve(pi: pg.PlotItem, **kw) -> pg.PlotDataItem:
    """A curve on `pi`, peak-downsampled to about one min/max pair per pixel column (pyqtgraph's
    default keeps ~5 samples per pixel, which costs paint time and shows nothing more)."""
    item = pi.plot(**kw)
    item.opts["autoDownsampleFactor"] = 1.0
    return item


class _Plot(pg.PlotWidget):
    """A dark PlotWidget that reports double-clicks (which restore its automatic ranges)."""
    doubleClicked = QtCore.Signal()

    def __init__(self, parent=None):
        super().__init__(parent, background=BG)
        _style(self)

    def mouseDoubleClickEvent(self, ev):
        super().mouseDoubleClickEvent(ev)
        ev.accept()
        self.doubleClicked.emit()


class _TimePlot(_Plot):
    """Shared by the loss history and the trajectories: x is seconds relative to the newest row
    (negative = past). While following, x shows [-span, 0] and y is ranged automatically; a mouse
    zoom or pan stops following (x and y independently) and freezes the time reference, so the
    view under the mouse stands still; set_span or a double-click follows again."""

    def __init__(self, parent=None, capacity_seconds: float = 600.0):
        super().__init__(parent)
        self.capacity_seconds = float(capacity_seconds)
        pi = self.getPlotItem()
        pi.setDownsampling(auto=True, mode="peak")
        pi.setClipToView(True)
        pi.setMouseEnabled(x=True, y=True)
        pi.setLabel("bottom", "time", units="s")
        self._span = DEFAULT_SPAN
        self._follow_x = True
        self._auto_y = True
        self._yrange: tuple[float, float] | None = None
        self._ref: float | None = None       # the time drawn at x = 0
        self._newest: float | None = None    # the newest time appended
        self._drawn_at: float | None = None  # the newest time when last drawn
        self._dirty = True                   # something besides new rows needs a redraw
        pi.getViewBox().sigRangeChangedManually.connect(self._manual)
        pi.getViewBox().sigXRangeChanged.connect(self._mark_dirty)
        self.doubleClicked.connect(self.follow)
        self._apply_x()

    # ---- span and following
    @property
    def span(self) -> float:
        return self._span

    def set_span(self, seconds: float):
        s = float(seconds)
        s = DEFAULT_SPAN if not math.isfinite(s) else min(SPAN_MAX, max(SPAN_MIN, s))
        self._span = s
        self.follow()

    def follow(self):
        """Auto-follow again: x shows the newest `span` seconds, y ranges itself."""
        self._follow_x = True
        self._auto_y = True
        self._yrange = None
        self._apply_x()
        self._dirty = True
        self.refresh()

    @property
    def following(self) -> bool:
        return self._follow_x

    def _mark_dirty(self, *_):
        self._dirty = True

    def _apply_x(self):
        self.getPlotItem().setXRange(-self._span, 0.0, padding=0)

    def _manual(self, mask):
        try:
            mx, my = bool(mask[0]), bool(mask[1])
        except (TypeError, IndexError):
            mx = my = True
        if mx:
            self._follow_x = False
        if my:
            self._auto_y = False

    def _window(self) -> tuple[float, float] | None:
        """Absolute times [t0, t1] to draw, or None when there is nothing yet."""
        if self._follow_x or self._ref is None:
            self._ref = self._newest
        if self._ref is None:
            return None
        if self._follow_x:
            return self._ref - self._span, math.inf
        (x0, x1), _ = self.getPlotItem().getViewBox().viewRange()
        pad = 0.02 * (x1 - x0)
        return self._ref + x0 - pad, self._ref + x1 + pad

    def _set_y(self, lo: float, hi: float):
        if self._yrange != (lo, hi):
            self._yrange = (lo, hi)
            self.getPlotItem().setYRange(lo, hi, padding=0)

    # ---- frames
    def refresh(self, force: bool = False):
        """Draw the current data; call once per frame. Does nothing while hidden, nor (unless
        `force`) while the newest row has moved less than one pixel since the last drawing and
        nothing else changed: at long spans the curves then move a whole pixel every few frames
        instead of being rebuilt every frame for no visible change."""
        if not self.isVisible():
            return
        if not (force or self._dirty or self._drawn_at is None or self._newest is None):
            vb = self.getPlotItem().getViewBox()
            (x0, x1), _ = vb.viewRange()
            if abs(self._newest - self._drawn_at) < (x1 - x0) / max(1.0, vb.width()):
                return
        self._redraw()

    def _redraw(self):
        self._dirty = False
        self._drawn_at = self._newest
        self._draw()

    def showEvent(self, ev):
        super().showEvent(ev)
        self._redraw()

    def _draw(self):
        raise NotImplementedError


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


# ------------------------------------------------------------------------------------- scope
class ScopeView(QtWidgets.QWidget):
    """Two stacked plots: (1) the target and learned waveforms overlaid (and, optionally, their
    difference faintly), triggered on the last rising zero crossing of the target that a full
    window follows, with sub-sample alignment so a periodic signal stands still; free-running
    (newest window) when there is none; (2) their magnitude spectra in dBFS on a log-frequency
    axis. A mouse zoom holds a plot's range; a double-click restores it."""
    HYSTERESIS = 0.02           # of the block's peak
    SPECTRUM_POINTS = 640

    def __init__(self, sample_rate: float = 48000.0, window: int = 1024, parent=None):
        super().__init__(parent)
        self.window_size = max(2, int(window))   # not `window`: QWidget.window() is a method
        self._sr = 48000.0
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.wave = _Plot()
        self.spec = _Plot()
        lay.addWidget(self.wave, 1)
        lay.addWidget(self.spec, 1)

        wp = self.wave.getPlotItem()
        wp.setLabel("bottom", "time", units="s")
        self._err_curve = _curve(wp, pen=pg.mkPen(QtGui.QColor(229, 115, 115, 110), width=1))
        self._t_curve = _curve(wp, pen=pg.mkPen(TARGET, width=1))
        self._l_curve = _curve(wp, pen=pg.mkPen(LEARNED, width=1))
        self._show_error = True
        self._err_action = QtGui.QAction("Show error (target − learned)", self.wave)
        self._err_action.setCheckable(True)
        self._err_action.setChecked(True)
        self._err_action.toggled.connect(self.set_show_error)
        menu = wp.getViewBox().menu
        if menu is not None:
            menu.addSeparator()
            menu.addAction(self._err_action)

        sp = self.spec.getPlotItem()
        sp.setLogMode(x=True)
        sp.setLabel("bottom", "frequency (Hz)")
        sp.getAxis("bottom").enableAutoSIPrefix(False)
        sp.setLabel("left", "dBFS")
        self._ts_curve = _curve(sp, pen=pg.mkPen(TARGET, width=1))
        self._ls_curve = _curve(sp, pen=pg.mkPen(LEARNED, width=1))
        for p in (wp, sp):
            p.setDownsampling(auto=True, mode="peak")
            p.setClipToView(True)

        self._auto_wave = True
        self._half = None
        wp.getViewBox().sigRangeChangedManually.connect(lambda *_: setattr(self, "_auto_wave", False))
        self.wave.doubleClicked.connect(self._reset_wave)
        self.spec.doubleClicked.connect(self._reset_spec)

        self._hann_cache: dict[int, tuple[np.ndarray, float]] = {}
        self._pending: tuple[np.ndarray, np.ndarray] | None = None
        self._wave_y = (np.empty(0), np.empty(0))
        self._trigger: int | None = None
        self.set_sample_rate(sample_rate)

    # ---- settings
    @property
    def sample_rate(self) -> float:
        return self._sr

    def set_sample_rate(self, sr: float):
        sr = float(sr)
        if not (math.isfinite(sr) and sr > 0):
            raise ValueError("the sample rate must be a positive number")
        self._sr = sr
        self._freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sr)
        # The plot shows the spectrum reduced to SPECTRUM_POINTS log-spaced groups of bins (the
        # maximum of each; a low group is a single bin): ~2 points per pixel instead of 2048
        # points piled up at the right of the log axis.
        edges = np.geomspace(self._freqs[1], self._freqs[-1], self.SPECTRUM_POINTS)
        starts = np.unique(np.searchsorted(self._freqs, edges, side="left"))
        self._groups = starts[(starts >= 1) & (starts < self._freqs.size)]
        self._group_f = self._freqs[self._groups]
        self._secs = np.arange(self.window_size) / sr
        ticks = [(math.log10(f), label) for f, label in
                 ((20, "20"), (50, "50"), (100, "100"), (200, "200"), (500, "500"), (1000, "1k"),
                  (2000, "2k"), (5000, "5k"), (10000, "10k"), (20000, "20k"), (50000, "50k"),
                  (100000, "100k")) if f <= sr / 2]
        minor = [(math.log10(m * d), "") for d in (10, 100, 1000, 10000) for m in range(2, 10)
                 if 20 <= m * d <= sr / 2 and m not in (2, 5)]
        self.spec.getPlotItem().getAxis("bottom").setTicks([ticks, minor])
        self._reset_wave()
        self._reset_spec()

    @property
    def show_error(self) -> bool:
        return self._show_error

    def set_show_error(self, on: bool):
        self._show_error = bool(on)
        if self._err_action.isChecked() != self._show_error:
            self._err_action.setChecked(self._show_error)
        self._err_curve.setVisible(self._show_error)
        if not self._show_error:
            self._err_curve.setData([], [])
        elif self._pending is not None:
            self._draw()

    def _reset_wave(self):
        self._auto_wave = True
        self._half = 1.0
        self.wave.getPlotItem().setXRange(0.0, self.window_size / self._sr, padding=0)
        self.wave.getPlotItem().setYRange(-1.0, 1.0, padding=0.02)

    def _reset_spec(self):
        nyq = self._sr / 2
        self.spec.getPlotItem().setXRange(math.log10(20.0), math.log10(max(nyq, 21.0)), padding=0)
        self.spec.getPlotItem().setYRange(-120.0, 0.0, padding=0)

    def _range_wave(self, peak: float):
        """A symmetric 1-2-5 y range that moves only when the signal outgrows it or shrinks a lot."""
        if not self._auto_wave:
            return
        h = self._half
        if h is not None and 0.3 * h <= peak <= h:
            return
        h = _nice_up(max(peak, 1e-4))
        if h != self._half:
            self._half = h
            self.wave.getPlotItem().setYRange(-h, h, padding=0.02)

    # ---- analysis (pure; public for tests)
    def trigger_index(self, target: np.ndarray) -> int | None:
        """The index i of the last rising zero crossing of `target` (a sample >= 0 whose last
        sample outside (-h, 0) before it was < -h, h = 2 % of the peak) with a full window
        from i on; None (free-run) when there is none. The window drawn starts at the
        interpolated crossing between i-1 and i."""
        x = np.nan_to_num(np.asarray(target, dtype=float).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
        n, w = x.size, self.window_size
        m = n - w + 1                       # candidates i in [1, m-1]
        if m < 2:
            return None
        peak = float(np.max(np.abs(x)))
        if not peak > 0:
            return None
        h = self.HYSTERESIS * peak
        xs = x[:m]
        s = np.zeros(m, dtype=np.int8)
        s[xs >= 0] = 1
        s[xs < -h] = -1
        idx = np.where(s != 0, np.arange(m), -1)
        last = np.maximum.accumulate(idx)[:-1]       # last decided sample at or before i-1
        prev = np.where(last >= 0, s[np.maximum(last, 0)], 0)
        hits = np.flatnonzero((s[1:] == 1) & (prev == -1))
        return int(hits[-1]) + 1 if hits.size else None

    def _hann(self, m: int) -> tuple[np.ndarray, float]:
        got = self._hann_cache.get(m)
        if got is None:
            w = np.hanning(m) if m >= 3 else np.ones(m)
            got = (w, 2.0 / float(w.sum()))
            if len(self._hann_cache) > 8:
                self._hann_cache.clear()
            self._hann_cache[m] = got
        return got

    def spectrum(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies in Hz, magnitude in dBFS) of the newest 4096 samples (Hann window,
        zero-padded when shorter); a full-scale sine reads about 0 dB; silence reads -200 dB."""
        seg = np.asarray(x, dtype=float).reshape(-1)[-FFT_SIZE:]
        if seg.size == 0:
            return self._freqs.copy(), np.full(self._freqs.size, DB_FLOOR)
        seg = np.nan_to_num(seg, nan=0.0, posinf=0.0, neginf=0.0)
        w, scale = self._hann(seg.size)
        mag = np.abs(np.fft.rfft(seg * w, n=FFT_SIZE)) * scale
        np.maximum(mag, 10.0 ** (DB_FLOOR / 20), out=mag)
        return self._freqs.copy(), 20.0 * np.log10(mag)

    # ---- frames
    def show_signals(self, target: np.ndarray, learned: np.ndarray):
        """Draw the newest samples of target and learned (aligned on their newest sample)."""
        target = np.asarray(target, dtype=float).reshape(-1)
        learned = np.asarray(learned, dtype=float).reshape(-1)
        n = min(target.size, learned.size)
        self._pending = (target[target.size - n:], learned[learned.size - n:])
        if self.isVisible():
            self._draw()

    def showEvent(self, ev):
        super().showEvent(ev)
        if self._pending is not None:
            self._draw()

    def _draw(self):
        target, learned = self._pending
        n, w = target.size, self.window_size
        i = self.trigger_index(target)
        self._trigger = i
        if i is None:
            k = min(n, w)
            ty, ly = target[n - k:], learned[n - k:]
        else:
            a, b = np.nan_to_num(target[i - 1:i + 1], nan=0.0, posinf=0.0, neginf=0.0)
            f = min(1.0, max(0.0, -a / (b - a))) if b > a else 1.0   # the crossing in (i-1, i]
            ty = target[i - 1:i - 1 + w] + f * (target[i:i + w] - target[i - 1:i - 1 + w])
            ly = learned[i - 1:i - 1 + w] + f * (learned[i:i + w] - learned[i - 1:i - 1 + w])
        xs = self._secs[:ty.size]
        self._wave_y = (ty, ly)
        self._t_curve.setData(xs, ty)
        self._l_curve.setData(xs, ly)
        if self._show_error:
            self._err_curve.setData(xs, ty - ly)
        if ty.size:
            with np.errstate(invalid="ignore"):
                both = np.abs(np.concatenate((ty, ly)))
                peak = float(np.max(both, initial=0.0, where=np.isfinite(both)))
            self._range_wave(peak if peak > 0 else 1.0)
        if n:
            f, td = self.spectrum(target)
            _, ld = self.spectrum(learned)
            g = self._groups
            self._ts_curve.setData(self._group_f, np.maximum.reduceat(td, g), skipFiniteCheck=True)
            self._ls_curve.setData(self._group_f, np.maximum.reduceat(ld, g), skipFiniteCheck=True)
        else:
            self._ts_curve.setData([], [])
            self._ls_curve.setData([], [])

    def waveform_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The drawn (target, learned) waveform samples."""
        return self._wave_y[0].copy(), self._wave_y[1].copy()

    @property
    def triggered(self) -> bool:
        """Whether the last drawn frame was triggered (False: free-running)."""
        return self._trigger is not None
