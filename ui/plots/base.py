"""What every plot shares: the dark style, cheap curves, and the time axis that follows or can
be zoomed and panned."""
from __future__ import annotations

import math

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore

from ui.theme import BG, FG

# antialiasing off: the plots redraw at 30 fps beside the audio thread
pg.setConfigOptions(antialias=False)

SPAN_MIN, SPAN_MAX = 10.0, 600.0
DEFAULT_SPAN = 60.0


def _nice_up(v: float) -> float:
    """The smallest 1-2-5 step number >= v (v > 0)."""
    e = math.floor(math.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0 ** e >= v * (1 - 1e-12):
            return m * 10.0 ** e
    return 10.0 ** (e + 1)


def log_frequency_ticks(top: float) -> list[list[tuple[float, str]]]:
    """Major (labelled 20, 50, 100 ... 20k) and minor ticks for a log-frequency axis up to `top` Hz."""
    major = [(math.log10(f), label) for f, label in
             ((20, "20"), (50, "50"), (100, "100"), (200, "200"), (500, "500"), (1000, "1k"),
              (2000, "2k"), (5000, "5k"), (10000, "10k"), (20000, "20k"), (50000, "50k"),
              (100000, "100k")) if f <= top]
    minor = [(math.log10(m * d), "") for d in (10, 100, 1000, 10000) for m in range(2, 10)
             if 20 <= m * d <= top and m not in (2, 5)]
    return [major, minor]


def _style(plot: pg.PlotWidget):
    pi = plot.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        ax = pi.getAxis(name)
        ax.setPen(pg.mkPen(FG))
        ax.setTextPen(pg.mkPen(FG))
    pi.hideButtons()
    pi.getViewBox().disableAutoRange()


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
