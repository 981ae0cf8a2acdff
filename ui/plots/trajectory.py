"""Parameter trajectories: each parameter drawn as the fraction of its declared range (log where
declared log), learned values solid, hidden ones dashed, one colour per parameter (or bank), and a
legend beside the plot that names each parameter with its current real value and range."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from engine.learn.banks import split_display_name
from ui.plots.base import _TimePlot, _curve
from ui.plots.history import History, _thin
from ui.theme import FG, PALETTE

Range = tuple[float, float, bool]           # (lo, hi, log)
MIN_DATA_WIDTH = 0.5                        # the legend moves under the data rather than take more
LEGEND_INTERVAL_S = 0.25                    # the legend's values change at most 4 times a second
LEGEND_FONT_PT = 8


def as_range(spec) -> Range | None:
    """(lo, hi, log) of a ParamSpec or KnobSpec (anything with lo, hi and log) or a (lo, hi[, log])
    tuple; None when that is not a finite, non-empty range (log needs lo > 0)."""
    if spec is None:
        return None
    if isinstance(spec, (tuple, list)):
        lo, hi, log = spec[0], spec[1], (spec[2] if len(spec) > 2 else False)
    else:
        lo, hi, log = spec.lo, spec.hi, getattr(spec, "log", False)
    lo, hi, log = float(lo), float(hi), bool(log)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo) or (log and lo <= 0):
        return None
    return lo, hi, log


def trajectory_ranges(param_names, specs, knobs: dict) -> dict[str, Range]:
    """The ranges TrajectoryPlot.set_names wants: each learned parameter's declared range (zip of
    the learner's display names and ParamSpecs), or, when that is not finite, its hidden knob's;
    and each hidden knob's ("hidden:<name>" in session.knobs())."""
    out: dict[str, Range] = {}
    for key, knob in knobs.items():
        if key.startswith("hidden:") and (r := as_range(knob)) is not None:
            out[key[len("hidden:"):]] = r
    for name, spec in zip(param_names, specs):
        r = as_range(spec) or out.get(split_display_name(name)[0])
        if r is not None:
            out[name] = r
    return out


def format_value(v: float | None) -> str:
    """Three significant digits, a k or M prefix from a thousand on: 2700 -> '2.70 k'."""
    if v is None or not math.isfinite(v):
        return "—"
    for div, prefix in ((1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{v / div:#.3g}".rstrip(".") + prefix
    return f"{v:#.3g}".rstrip(".")


class _Normaliser:
    """Maps columns of real values to fractions of their ranges (0 = lo, 1 = hi; log columns on a
    log scale); a column without a range passes through unchanged."""

    def __init__(self, ranges: list[Range | None]):
        self.offset = np.array([0.0 if r is None else (math.log(r[0]) if r[2] else r[0]) for r in ranges])
        self.span = np.array([1.0 if r is None else (math.log(r[1] / r[0]) if r[2] else r[1] - r[0])
                              for r in ranges])
        self.log = np.array([r is not None and r[2] for r in ranges], dtype=bool)
        self.identity = not any(r is not None for r in ranges)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.identity:
            return values
        v = np.array(values, dtype=float)
        if self.log.any():
            cols = v[..., self.log]
            with np.errstate(divide="ignore", invalid="ignore"):
                v[..., self.log] = np.where(cols > 0, np.log(np.where(cols > 0, cols, 1.0)), np.nan)
        return (v - self.offset) / self.span


class _Swatch(pg.ItemSample):
    """A legend sample one text line high: the curve's pen as a short line (dim when hidden).
    A click toggles the curve, as in pyqtgraph's legend."""
    W, H = 18, 12

    def __init__(self, item):
        super().__init__(item)
        self.setFixedWidth(self.W)
        self.setFixedHeight(self.H)

    def boundingRect(self):
        return QtCore.QRectF(0, 0, self.W, self.H)

    def paint(self, p, *args):
        pen = pg.mkPen(self.item.opts["pen"])
        if not self.item.isVisible():
            pen.setColor(QtGui.QColor(FG).darker(300))
        pen.setWidth(2)
        p.setPen(pen)
        p.drawLine(1, self.H // 2, self.W - 1, self.H // 2)


class _SideLegend(pg.LegendItem):
    """A legend laid out in the plot's grid to the right of the view box, so it never covers the
    data: per parameter a swatch, the name, and a value label. Entries flow into more columns
    when they do not fit the height. It cannot be dragged (it has its own place)."""

    def __init__(self):
        super().__init__(offset=None, labelTextColor=FG, labelTextSize=f"{LEGEND_FONT_PT}pt",
                         horSpacing=4, verSpacing=0, frame=False)
        self.values: list[pg.LabelItem] = []
        self._rows = 1_000_000          # entries per column
        self._value_width = 0.0         # the widest value text yet: the legend only grows
        # as tall as its entries, at the top of its cell (not spread over the plot's height)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)
        self.layout.setContentsMargins(8, 0, 0, 0)     # clear of the view box's edge

    @staticmethod
    def _compact(label: pg.LabelItem):
        """No margin around the text: a row is one text line high."""
        label.item.document().setDocumentMargin(0)
        label.setText(label.text)

    def add_entry(self, item, name: str) -> pg.LabelItem:
        value = pg.LabelItem("", color=self.opts["labelTextColor"], justify="left",
                             size=self.opts["labelTextSize"])
        self._compact(value)
        self.values.append(value)
        self.addItem(_Swatch(item), name)
        self._compact(self.items[-1][1])
        return value

    def entry_width(self) -> float:
        """One column of entries: swatch, the widest name, the widest value, the spacing."""
        names = [label.item.boundingRect().width() for _, label in self.items] or [0.0]
        return _Swatch.W + max(names) + self._value_width + 4 * 2 + 12 + 8

    @property
    def row_height(self) -> float:
        """One entry's height: a line of text (or the swatch, if taller)."""
        return max([_Swatch.H] + [label.minimumHeight() for _, label in self.items[:1]])

    def set_value(self, k: int, text: str):
        """Entry k's value text; the value column keeps its widest width so far, so a value
        that gets shorter does not re-lay out the plot."""
        label = self.values[k]
        label.setText(text)
        if label.minimumWidth() > self._value_width:
            self._value_width = label.minimumWidth()
            for col in range(2, self.layout.columnCount(), 3):
                self.layout.setColumnMinimumWidth(col, self._value_width)

    def _addItemToLayout(self, sample, label):
        k = len(self.items) - 1
        row, col = k % self._rows, 3 * (k // self._rows)
        self.layout.addItem(sample, row, col, alignment=QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.layout.addItem(label, row, col + 1)
        if k < len(self.values):
            self.layout.addItem(self.values[k], row, col + 2)
            self.layout.setColumnSpacing(col + 2, 12)      # between columns of entries
            if self._value_width:
                self.layout.setColumnMinimumWidth(col + 2, self._value_width)
        self.rowCount = max(self.rowCount, row + 1)

    def set_rows(self, rows: int):
        """Lay the entries out `rows` to a column (re-laid out only when that changes)."""
        rows = max(1, int(rows))
        if rows == self._rows:
            return
        self._rows = rows
        for i in range(self.layout.count() - 1, -1, -1):
            self.layout.removeAt(i)
        entries = self.items
        self.items = []
        for sample, label in entries:
            self.items.append((sample, label))
            self._addItemToLayout(sample, label)
        self.updateSize()

    def clear(self):
        for value in self.values:
            self._removeItemFromLayout(value)
        self.values = []
        super().clear()
        for col in range(self.layout.columnCount()):
            self.layout.setColumnMinimumWidth(col, 0)
        self._value_width = 0.0

    def updateSize(self):
        """Sized by the plot's layout, not placed by hand as a floating legend is."""
        self.layout.invalidate()
        self.updateGeometry()

    def hoverEvent(self, ev):
        pass

    def mouseDragEvent(self, ev):
        pass


@dataclass
class _Entry:
    """One legend row: a parameter (or a bank of them, or a hidden value without a parameter)."""
    name: str
    label: str
    color: str
    columns: list[int]                   # its learned columns
    hidden: int | None                   # its hidden column
    range: Range | None
    text: str = ""


class TrajectoryPlot(_TimePlot):
    """Learned parameter values over time (solid) and the hidden values as dashed steps of the same
    colour. Each parameter given a range is drawn as the fraction of that range (0 = lo, 1 = hi,
    logarithmic where the range is log), so all use the full height; a parameter without one is
    drawn as its value. A bank ("gain@0", "gain@1", ...) shares one colour and one legend entry.
    The legend sits beside the view box and shows each parameter's current real value and range,
    refreshed at most every LEGEND_INTERVAL_S and only when a value changed."""
    HIDDEN_CAPACITY = 8192      # changes of the hidden values remembered
    _clock = staticmethod(time.monotonic)   # for the legend's pace (tests substitute it)

    def __init__(self, capacity_seconds: float = 600, rows_per_second: float = 100, parent=None):
        super().__init__(parent, capacity_seconds)
        self.rows_per_second = float(rows_per_second)
        pi = self.getPlotItem()
        pi.setLabel("left", "value")
        pi.getAxis("left").enableAutoSIPrefix(False)
        self._legend = _SideLegend()
        pi.layout.addItem(self._legend, 2, 3, alignment=QtCore.Qt.AlignmentFlag.AlignTop)
        self._legend_beside = True
        self._legend.sigSampleClicked.connect(self._sample_clicked)
        self._learned: list[str] = []
        self._hidden: list[str] = []
        self._ranges: dict = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._hcurves: dict[str, pg.PlotDataItem] = {}
        self._entries: list[_Entry] = []
        self._norm = self._hnorm = _Normaliser([])
        self._ranged = False
        self._hist = History(1, 0)
        self._hhist = History(self.HIDDEN_CAPACITY, 0)
        self._hlast: np.ndarray | None = None
        self._latest: np.ndarray | None = None          # the newest learned row, real values
        self._appended = 0                               # counts appends: has anything changed?
        self._legend_state = (-1, 0.0)                   # (appends shown, when)
        self._drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._hdrawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _cache_legend(self):
        """Paint the legend from pixmaps: only a label whose text changed is rendered again."""
        mode = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        todo = [self._legend]
        while todo:
            item = todo.pop()
            item.setCacheMode(mode)
            todo.extend(item.childItems())

    @property
    def names(self) -> tuple[list[str], list[str]]:
        return list(self._learned), list(self._hidden)

    @property
    def legend(self) -> _SideLegend:
        return self._legend

    def legend_texts(self) -> list[str]:
        """Each legend entry as shown: 'name value (lo…hi)'."""
        return [f"{e.label} {e.text}".strip() for e in self._entries]

    def set_names(self, learned: list[str], hidden: list[str], ranges: dict | None = None):
        """Rebuild the curves for a new circuit (clears the data). `ranges` maps a name (or a
        bank's base name) to (lo, hi, log), a ParamSpec or a KnobSpec (see trajectory_ranges);
        a hidden value takes its parameter's range so both lines stay comparable."""
        pi = self.getPlotItem()
        for item in list(self._curves.values()) + list(self._hcurves.values()):
            pi.removeItem(item)
        self._legend.clear()
        self._learned, self._hidden = list(learned), list(hidden)
        self._ranges = dict(ranges or {})
        rows = max(1, int(round(self.capacity_seconds * self.rows_per_second)))
        self._hist = History(rows, len(self._learned))
        self._hhist = History(self.HIDDEN_CAPACITY, len(self._hidden))
        self._hlast = self._latest = None
        self._newest = self._ref = None
        self._drawn, self._hdrawn = {}, {}
        self._build_entries(self._ranges)
        self._fit_legend()
        self._cache_legend()
        self._legend_state = (-1, 0.0)
        self._update_legend(force=True)
        self._dirty = True
        self.refresh()

    def _build_entries(self, ranges: dict):
        pi = self.getPlotItem()
        entries: dict[str, _Entry] = {}
        self._curves = {}
        for k, name in enumerate(self._learned):
            base = split_display_name(name)[0]
            e = entries.get(base)
            if e is None:
                rng = as_range(ranges.get(name)) or as_range(ranges.get(base))
                e = entries[base] = _Entry(base, base, PALETTE[len(entries) % len(PALETTE)], [], None, rng)
            e.columns.append(k)
            self._curves[name] = _curve(pi, pen=pg.mkPen(e.color, width=1))
        learned_ranges = [entries[split_display_name(n)[0]].range for n in self._learned]
        hidden_ranges = []
        self._hcurves = {}
        for k, name in enumerate(self._hidden):
            e = entries.get(name)
            if e is None:
                e = entries[name] = _Entry(name, f"{name} (hidden)", PALETTE[len(entries) % len(PALETTE)],
                                           [], None, as_range(ranges.get(name)))
            e.hidden = k
            hidden_ranges.append(e.range)
            pen = pg.mkPen(e.color, width=1, style=QtCore.Qt.PenStyle.DashLine)
            self._hcurves[name] = _curve(pi, pen=pen)
        self._norm, self._hnorm = _Normaliser(learned_ranges), _Normaliser(hidden_ranges)
        self._entries = list(entries.values())
        for e in self._entries:
            if len(e.columns) > 1:
                e.label = f"{e.name} ×{len(e.columns)}"
            sample = self._curves[self._learned[e.columns[0]]] if e.columns else self._hcurves[self._hidden[e.hidden]]
            self._legend.add_entry(sample, e.label)
        self._ranged = any(e.range is not None for e in self._entries)
        every = self._ranged and all(e.range is not None for e in self._entries)
        pi.setLabel("left", "fraction of range" if every else
                    "value / fraction of range" if self._ranged else "value")

    def _group_curves(self, item) -> list[pg.PlotDataItem]:
        """The curves a legend entry stands for: its bank's and its hidden value's."""
        for e in self._entries:
            curves = [self._curves[self._learned[k]] for k in e.columns]
            if e.hidden is not None:
                curves.append(self._hcurves[self._hidden[e.hidden]])
            if item in curves:
                return curves
        return []

    def _sample_clicked(self, item):
        for curve in self._group_curves(item):
            curve.setVisible(item.isVisible())

    def _fit_legend(self):
        """Beside the view box, as many rows per column as fit, while that leaves the data most
        of the width; under it, as many columns as fit, when the plot is narrow (at 1024 px the
        knobs' column takes the room and a LACTOSE legend left the data a sliver)."""
        pi = self.getPlotItem()
        n = max(1, len(self._legend.items))
        entry = self._legend.entry_width()
        room = self.viewport().height() - pi.getAxis("bottom").height() - 12
        rows = max(1, int(room // self._legend.row_height))
        beside = entry * math.ceil(n / rows) <= (1 - MIN_DATA_WIDTH) * self.width()
        if beside != self._legend_beside:
            self._legend_beside = beside
            pi.layout.removeItem(self._legend)
            pi.layout.addItem(self._legend, *((2, 3) if beside else (4, 1)),
                              alignment=QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        if not beside:
            rows = math.ceil(n / max(1, int(self.width() // entry)))
        self._legend.set_rows(rows)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if hasattr(self, "_legend"):        # pyqtgraph may resize before __init__ ends
            self._fit_legend()

    def _entry_text(self, e: _Entry) -> str:
        if e.columns:
            vals = [] if self._latest is None else [float(self._latest[k]) for k in e.columns]
        else:
            vals = [] if self._hlast is None else [float(self._hlast[e.hidden])]
        finite = [v for v in vals if math.isfinite(v)]
        if not vals:
            text = ""
        elif len(finite) > 1 and min(finite) != max(finite):
            text = f"{format_value(min(finite))}…{format_value(max(finite))}"
        else:
            text = format_value(finite[0] if finite else None)
        if e.range is not None:
            text = f"{text} ({e.range[0]:g}…{e.range[1]:g})".strip()
        return text

    def _update_legend(self, force: bool = False):
        """Show the newest real values: at most every LEGEND_INTERVAL_S, and only the labels
        whose text changed (a label's new text costs a layout pass and a re-render)."""
        shown, at = self._legend_state
        now = self._clock()
        if not force and (shown == self._appended or now - at < LEGEND_INTERVAL_S):
            return
        self._legend_state = (self._appended, now)
        widest = self._legend.entry_width()
        for k, e in enumerate(self._entries):
            text = self._entry_text(e)
            if text != e.text:
                e.text = text
                self._legend.set_value(k, text)
        if self._legend.entry_width() != widest:     # wider values: beside or under may change
            self._fit_legend()

    def update_legend(self):
        """Show the newest values in the legend now (refresh does it at its own pace)."""
        self._update_legend(force=True)

    def refresh(self, force: bool = False):
        """Draw (see _TimePlot.refresh) and, at most every LEGEND_INTERVAL_S, show new values in
        the legend; `force` redraws the curves, not the legend."""
        super().refresh(force)
        if self.isVisible():
            self._update_legend()

    def clear_data(self):
        """Forget all rows, keeping the names."""
        self.set_names(self._learned, self._hidden, self._ranges)

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
        self._latest = learned[-1].copy()
        self._appended += 1
        if self._hidden:
            prev = self._hlast
            hidden = hidden or {}
            vec = np.array([float(hidden[name]) if name in hidden else
                            (math.nan if prev is None else prev[k])
                            for k, name in enumerate(self._hidden)])
            if prev is None or not np.array_equal(vec, prev, equal_nan=True):
                self._hhist.append(t[:1], self._hnorm(vec[None, :]))
                self._hlast = vec
                self._dirty = True          # show a knob turn at once
        keep = _thin(t, self._hist.last_time, self.rows_per_second)
        self._hist.append(t[keep], self._norm(learned[keep]))

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
        if self._ranged:                # fractions of ranges: show all of [0, 1]
            lo, hi = min(lo, 0.0), max(hi, 1.0)
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
        """The learned curve's drawn x (relative seconds) and y (a fraction of its range when it
        has one)."""
        if name not in self._curves:
            raise KeyError(name)
        return self._drawn.get(name, (np.empty(0), np.empty(0)))

    def hidden_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The hidden value's drawn step line x (relative seconds) and y."""
        if name not in self._hcurves:
            raise KeyError(name)
        return self._hdrawn.get(name, (np.empty(0), np.empty(0)))
