"""What the spectral loss sees: the constant-Q bank's two power distributions (target and
learned, each normalised to sum 1) and their cumulative curves on a log-frequency axis. The shaded
area between the cumulative curves, in octaves, is the loss's W1 distance - so a learner that is
too high shows its cumulative curve lagging to the right, and the shading shrinks as it learns."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtGui

from ui.plots.base import _Plot, _curve
from ui.theme import LEARNED, TARGET

GAP_COLOR = QtGui.QColor(229, 115, 115, 70)     # the area that is W1: a hint beneath the curves


def _faint(color: str) -> QtGui.QColor:
    c = QtGui.QColor(color)
    c.setAlpha(120)
    return c


def _lock_text(lock) -> str:
    """The frequency-locked loop in a few words: locked with its error, or what it waits for."""
    if lock is None:
        return ""
    if not lock.engaged:
        return f"   pitch lock: waiting (the target's strongest bin: {lock.bin_hz:.0f} Hz)"
    return f"   pitch lock: on, {lock.error_cents:+.2f} cents at {lock.bin_hz:.0f} Hz"


class SpectralLossView(_Plot):
    def __init__(self, parent=None):
        super().__init__(parent)
        pi = self.getPlotItem()
        pi.setLogMode(x=True)
        pi.setLabel("bottom", "frequency (Hz) — the spectral loss's bins")
        pi.getAxis("bottom").enableAutoSIPrefix(False)
        pi.setLabel("left", "share")
        pi.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])   # readable when short
        self._tp = _curve(pi, pen=pg.mkPen(_faint(TARGET), width=1))       # the distributions
        self._lp = _curve(pi, pen=pg.mkPen(_faint(LEARNED), width=1))
        self._tc = _curve(pi, pen=pg.mkPen(TARGET, width=2))               # their cumulative curves
        self._lc = _curve(pi, pen=pg.mkPen(LEARNED, width=2))
        self._gap = pg.FillBetweenItem(self._tc, self._lc, brush=pg.mkBrush(GAP_COLOR))
        pi.addItem(self._gap)
        self._label = pg.TextItem(anchor=(0, 0), color=TARGET)
        self._label.setParentItem(pi.getViewBox())
        self._label.setPos(4, 2)
        pi.setYRange(0.0, 1.02, padding=0)
        self.w1 = math.nan            # the distance drawn, octaves (public for tests)
        self.doubleClicked.connect(self._reset)

    def _reset(self):
        self.getPlotItem().setYRange(0.0, 1.02, padding=0)

    def show_bank(self, freqs: np.ndarray, target: np.ndarray, learned: np.ndarray, lock=None):
        """Draw one snapshot: bin frequencies (Hz, 12 per octave) and the two normalised powers.
        The distributions are scaled so the larger peak reaches 1 (their shapes, not their shares,
        are what the eye compares); the cumulative curves are drawn as they are. lock: the pitch's
        frequency-locked loop (FineLock: engaged, bin_hz, error_cents), said in the label."""
        f = np.asarray(freqs, dtype=float)
        pt = np.nan_to_num(np.asarray(target, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        pl = np.nan_to_num(np.asarray(learned, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        if f.size == 0 or not (f.size == pt.size == pl.size):
            return
        ct, cl = np.cumsum(pt), np.cumsum(pl)
        octaves_per_bin = math.log2(f[1] / f[0]) if f.size > 1 else 1.0
        self.w1 = float(np.sum(np.abs(cl - ct)) * octaves_per_bin)
        peak = max(float(pt.max()), float(pl.max()), 1e-30)
        self._tp.setData(f, pt / peak)
        self._lp.setData(f, pl / peak)
        self._tc.setData(f, ct)
        self._lc.setData(f, cl)
        self._label.setText(f"W1 = {self.w1:.3f} octaves (the shaded gap)" + _lock_text(lock))

    def label(self) -> str:
        return self._label.toPlainText()

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The drawn data by name (for tests): target, learned, target cumulative, learned cumulative."""
        return {name: c.getData() for name, c in (("target", self._tp), ("learned", self._lp),
                                                  ("target cumulative", self._tc),
                                                  ("learned cumulative", self._lc))}
