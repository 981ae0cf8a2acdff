"""A triggered scope (target and learned) and both spectra."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtGui, QtWidgets

from ui.plots.base import _Plot, _curve, _nice_up, log_frequency_ticks
from ui.plots.spectral_loss import SpectralLossView
from ui.theme import DIM, LEARNED, TARGET, tint

DB_FLOOR = -200.0           # what the spectrum reports for silence (below the -120 dB plot floor)
FFT_SIZE = 4096
ERROR_COLOR = QtGui.QColor(229, 115, 115, 110)      # faint: the difference is a hint, not a trace


class ScopeKey(QtWidgets.QWidget):
    """The scope's legend as one line of coloured labels above the plots, so it never hides a
    trace: '━ target', '━ learned' and (while it is shown) '━ error'. The labels are set once;
    the frames never touch them."""

    def __init__(self, entries: list[tuple[str, str, QtGui.QColor]], parent=None):
        super().__init__(parent)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.setSpacing(14)
        self.labels: dict[str, QtWidgets.QLabel] = {}
        self.colors: dict[str, QtGui.QColor] = {}
        for name, text, color in entries:
            label = QtWidgets.QLabel(f"━ {text}")
            label.setToolTip(text)
            tint(label, QtGui.QColor(color).name())         # opaque: a faint colour is unreadable
            lay.addWidget(label)
            self.labels[name], self.colors[name] = label, QtGui.QColor(color)
        lay.addStretch(1)
        hint = QtWidgets.QLabel("spectra below: same colours")
        tint(hint, DIM)
        # the hint gives way first: the key must never widen the plots' column
        hint.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        lay.addWidget(hint)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Fixed)

    def entries(self) -> list[tuple[str, str]]:
        """The visible entries as (name, colour '#rrggbb')."""
        return [(name, self.colors[name].name()) for name, label in self.labels.items()
                if not label.isHidden()]


class ScopeView(QtWidgets.QWidget):
    """Stacked plots: (1) the target and learned waveforms overlaid (and, optionally, their
    difference faintly), triggered on the last rising zero crossing of the target that a full
    window follows, with sub-sample alignment so a periodic signal stands still; free-running
    (newest window) when there is none; (2) their magnitude spectra in dBFS on a log-frequency
    axis; (3) while the spectral loss learns, what it compares (ui/plots/spectral_loss.py). A mouse
    zoom holds a plot's range; a double-click restores it."""
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
        self.key = ScopeKey([("target", "target", QtGui.QColor(TARGET)),
                             ("learned", "learned", QtGui.QColor(LEARNED)),
                             ("error", "error (target − learned)", ERROR_COLOR)])
        lay.addWidget(self.key)
        lay.addWidget(self.wave, 1)
        lay.addWidget(self.spec, 1)
        self.bank = SpectralLossView()          # shown while the spectral loss learns; a frequency
        self.bank.hide()                        #   sits at the same x as in the spectrum above
        self.bank.setXLink(self.spec)
        lay.addWidget(self.bank, 1)

        wp = self.wave.getPlotItem()
        wp.setLabel("bottom", "time", units="s")
        self._err_curve = _curve(wp, pen=pg.mkPen(ERROR_COLOR, width=1))
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
        for plot in (self.spec, self.bank):
            plot.getPlotItem().getAxis("bottom").setTicks(log_frequency_ticks(sr / 2))
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
        self.key.labels["error"].setHidden(not self._show_error)
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

    def show_spectral(self, view, lock=None):
        """What the spectral loss compares - (bin frequencies, target's and learned's normalised
        powers) - or None to hide that plot (another loss is learning); lock: its frequency-locked
        loop for a pitch (engine/learn/spectral.py FineLock), or None."""
        if view is None:
            self.bank.setVisible(False)
            return
        self.bank.setVisible(True)
        self.bank.show_bank(*view, lock=lock)

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
