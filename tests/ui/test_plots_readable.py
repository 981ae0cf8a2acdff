"""Readable plots (issue 14): trajectories drawn as fractions of their declared ranges (log where
declared) with banks grouped, a legend beside the data that shows real values at a modest pace,
the scope's colour key, and the compact horizontal loss meter."""
import math

import numpy as np
import pytest

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
from app.knobs import KnobSpec
from engine.learn.learner import ParamSpec
from ui.plots.loss import LossMeter
from ui.plots.scope import ScopeView
from ui.plots.trajectory import TrajectoryPlot, format_value, trajectory_ranges
from ui.theme import BG, LOSS
from tests.ui import test_views

SR = 48000.0
MID_LOG = math.sqrt(20.0 * 20000.0)          # the middle of 20…20000 Hz on a log scale


def shown(qtbot, widget, size=(800, 300)):
    return test_views.shown(qtbot, widget, size)      # a lower default: the plots as the window lays them out


def feed(tp, values, hidden=None, t0=0.0, seconds=2.0):
    t = t0 + np.arange(0.0, seconds, 0.01)
    tp.append(t, np.tile(np.asarray(values, dtype=float), (t.size, 1)), hidden or {})
    return t


# ---------------------------------------------------------------------- fractions of ranges
def test_parameters_are_drawn_as_fractions_of_their_declared_ranges(qtbot):
    tp = shown(qtbot, TrajectoryPlot())
    tp.set_names(["res", "cutoff", "free"], ["res", "cutoff"],
                 {"res": (-6.0, 30.0, False), "cutoff": (20.0, 20000.0, True)})
    feed(tp, [12.0, MID_LOG, 7.5], {"res": 30.0, "cutoff": 200.0})
    tp.refresh(force=True)
    assert np.allclose(tp.curve_data("res")[1], 0.5)
    assert np.allclose(tp.curve_data("cutoff")[1], 0.5)
    assert np.allclose(tp.curve_data("free")[1], 7.5)            # no range: drawn as its value
    assert np.allclose(tp.hidden_data("res")[1], 1.0)
    assert np.allclose(tp.hidden_data("cutoff")[1], 1.0 / 3.0)   # log: 200 Hz is a third up
    lo, hi = tp.getPlotItem().getViewBox().viewRange()[1]
    assert lo <= 0.0 and hi >= 7.5                               # all of [0, 1] and the free one
    assert "fraction of range" in tp.getPlotItem().getAxis("left").labelText
    # the old call (no ranges) still draws plain values
    tp.set_names(["res"], [])
    feed(tp, [12.0])
    tp.refresh(force=True)
    assert np.allclose(tp.curve_data("res")[1], 12.0)


def test_ranges_come_from_param_specs_and_hidden_knobs(qtbot):
    specs = [ParamSpec("cutoff", 1000.0, 20.0, 20000.0, True), ParamSpec("gain@0", 1.0, 0.0, 2.0),
             ParamSpec("gain@1", 1.0, 0.0, 2.0), ParamSpec("drive", 1.0)]         # drive: unbounded
    knobs = {"hidden:drive": KnobSpec("drive", 0.5, 8.0), "hidden:q": KnobSpec("q", 0.1, 10.0, "log"),
             "lr": KnobSpec("lr", 1e-5, 1.0, "log")}
    ranges = trajectory_ranges([s.name for s in specs], specs, knobs)
    assert ranges == {"cutoff": (20.0, 20000.0, True), "gain@0": (0.0, 2.0, False),
                      "gain@1": (0.0, 2.0, False), "drive": (0.5, 8.0, False), "q": (0.1, 10.0, True)}
    tp = shown(qtbot, TrajectoryPlot())
    tp.set_names([s.name for s in specs], ["drive", "q"], {s.name: s for s in specs} | {"q": knobs["hidden:q"]})
    feed(tp, [MID_LOG, 1.0, 2.0, 4.25], {"drive": 0.5, "q": 1.0})
    tp.refresh(force=True)
    assert np.allclose(tp.curve_data("cutoff")[1], 0.5)
    assert np.allclose(tp.curve_data("gain@1")[1], 1.0)
    assert np.allclose(tp.curve_data("drive")[1], 4.25)          # its ParamSpec has no finite range
    assert np.allclose(tp.hidden_data("q")[1], 0.5)              # a KnobSpec of kind log


# ------------------------------------------------------------------------ legend and banks
def test_banks_share_a_colour_and_one_legend_entry(qtbot):
    tp = shown(qtbot, TrajectoryPlot())
    names = [f"a@{k}" for k in range(4)] + [f"d@{k}" for k in range(4)]
    tp.set_names(names, ["drive", "soft"], {"a": (0.0, 4.0, False), "d": (0.1, 10.0, True),
                                            "drive": (0.5, 8.0, False)})
    feed(tp, [1, 2, 3, 4, 1, 1, 1, 1], {"drive": 2.0, "soft": 0.5})
    tp.refresh(force=True)
    tp.update_legend()
    assert [lab.text for _, lab in tp.legend.items] == ["a ×4", "d ×4", "drive (hidden)", "soft (hidden)"]
    colors = {n: tp._curves[n].opts["pen"].color().name() for n in names}
    assert len({colors[f"a@{k}"] for k in range(4)}) == 1
    assert colors["a@0"] != colors["d@0"]
    assert tp.legend_texts() == ["a ×4 1.00…4.00 (0…4)", "d ×4 1.00 (0.1…10)",
                                 "drive (hidden) 2.00 (0.5…8)", "soft (hidden) 0.500"]
    assert np.allclose(tp.curve_data("a@2")[1], 0.75)
    # a click on a bank's swatch hides (and shows) the whole bank
    sample = tp.legend.items[0][0]
    sample.item.setVisible(False)                # what the swatch's click does to its own curve
    tp.legend.sigSampleClicked.emit(sample.item)
    assert not any(tp._curves[f"a@{k}"].isVisible() for k in range(4))
    assert tp._curves["d@0"].isVisible()


def test_legend_values_update_at_a_modest_pace_and_only_on_change(qtbot):
    tp = shown(qtbot, TrajectoryPlot())
    clock = [100.0]
    tp._clock = lambda: clock[0]
    tp.set_names(["cutoff"], [], {"cutoff": (800.0, 9100.0, False)})
    feed(tp, [2700.0])
    clock[0] += 1.0
    tp.refresh()
    assert tp.legend_texts() == ["cutoff 2.70 k (800…9100)"]
    feed(tp, [3000.0], t0=2.0)
    clock[0] += 0.1                               # too soon: the text waits
    tp.refresh()
    assert tp.legend_texts() == ["cutoff 2.70 k (800…9100)"]
    clock[0] += 0.2
    tp.refresh()
    assert tp.legend_texts() == ["cutoff 3.00 k (800…9100)"]
    calls = []
    real = tp.legend.set_value
    tp.legend.set_value = lambda *a: (calls.append(a), real(*a))
    for _ in range(10):                           # no new rows: no text work at all
        clock[0] += 1.0
        tp.refresh()
    feed(tp, [3000.0], t0=4.0)                   # new rows, same value: no label is touched
    clock[0] += 1.0
    tp.refresh()
    assert calls == []


@pytest.mark.parametrize("count,size", [(10, (800, 300)), (24, (800, 220))], ids=["10-names", "24-names"])
def test_legend_never_covers_the_data(qtbot, count, size):
    tp = shown(qtbot, TrajectoryPlot(), size)
    names = [f"param_{k}" for k in range(count)]
    tp.set_names(names, names[:3], {n: (0.0, 1.0, False) for n in names})
    feed(tp, np.linspace(0.05, 0.95, count), {n: 0.5 for n in names[:3]})
    tp.refresh(force=True)
    tp.grab()
    QtWidgets.QApplication.processEvents()
    vb = tp.getPlotItem().getViewBox()
    legend = tp.legend.mapRectToScene(tp.legend.rect())
    data = vb.mapRectToScene(vb.rect())           # the data area (its drawn edge is half a pixel out)
    assert len(tp.legend.items) == count
    assert not legend.intersects(data)
    assert legend.left() >= data.right()
    view = QtCore.QRectF(tp.viewport().rect())
    for sample, label in tp.legend.items:         # every entry is on screen, none under the data
        for item in (sample, label):
            r = item.sceneBoundingRect()
            assert view.contains(r) and not r.intersects(data), (label.text, r, data)
    assert data.width() > 0.5 * size[0]          # the data keeps most of the width


def test_format_value():
    assert format_value(2700.0) == "2.70 k"
    assert format_value(20000.0) == "20.0 k"
    assert format_value(2.5e6) == "2.50 M"
    assert format_value(100.0) == "100"
    assert format_value(0.5) == "0.500"
    assert format_value(-6.0) == "-6.00"
    assert format_value(math.nan) == "—" and format_value(None) == "—"


# ---------------------------------------------------------------------------------- scope
def test_scope_has_a_colour_key_above_the_traces(qtbot):
    sc = shown(qtbot, ScopeView(SR), (700, 440))
    x = np.sin(2 * np.pi * 440 * np.arange(4096) / SR)
    sc.show_signals(x, 0.8 * x)

    def rgb(curve):
        return curve.opts["pen"].color().name()
    assert sc.key.entries() == [("target", rgb(sc._t_curve)), ("learned", rgb(sc._l_curve)),
                                ("error", rgb(sc._err_curve))]
    assert rgb(sc._ts_curve) == rgb(sc._t_curve) and rgb(sc._ls_curve) == rgb(sc._l_curve)
    for name, color in sc.key.entries():
        label = sc.key.labels[name]
        assert name in label.text()
        assert label.palette().color(QtGui.QPalette.ColorRole.WindowText).name() == color
    # a line of its own above both plots: it hides no trace
    top = sc.key.mapTo(sc, QtCore.QPoint(0, sc.key.height()))
    assert 0 < sc.key.height() < 40 and top.y() <= sc.wave.geometry().top()
    sc.set_show_error(False)
    assert [n for n, _ in sc.key.entries()] == ["target", "learned"]
    sc.set_show_error(True)
    assert [n for n, _ in sc.key.entries()] == ["target", "learned", "error"]


# ------------------------------------------------------------------------------ loss meter
def test_horizontal_loss_meter_is_a_compact_strip_with_the_value_inside(qtbot):
    box = QtWidgets.QWidget()
    lay = QtWidgets.QVBoxLayout(box)
    meter = LossMeter(orientation=QtCore.Qt.Orientation.Horizontal)
    lay.addWidget(meter)
    lay.addWidget(QtWidgets.QWidget(), 1)
    shown(qtbot, box, (500, 400))
    assert meter.sizeHint().height() < 40
    assert 22 <= meter.height() <= 28            # stays a strip in a tall layout
    meter.set_loss(100.0, now=0.0)                # +20 dB: the bar fills the track
    assert meter.text == "20.0 dB"
    track, text = meter.layout_rects()
    assert track.contains(text) and track.width() > 0.9 * meter.width()
    img = meter.grab().toImage()
    inside = {img.pixelColor(x, track.center().y()).name() for x in range(track.left() + 1, track.right())}
    assert QtGui.QColor(LOSS).name() in inside
    assert QtGui.QColor(BG).name() in inside or len(inside) > 2     # the text drawn over the bar
    meter.set_loss(math.nan, now=1.0)
    assert meter.text == "—"
    meter.grab()


def test_vertical_loss_meter_keeps_its_column(qtbot):
    meter = shown(qtbot, LossMeter(), (60, 300))
    assert meter.orientation == QtCore.Qt.Orientation.Vertical
    meter.set_loss(1e-6, now=0.0)
    track, text = meter.layout_rects()
    assert text.top() >= track.bottom() and track.height() > 200
    assert meter.text == "-60.0 dB"
    meter.grab()


def test_a_narrow_plot_puts_the_legend_under_the_data_not_beside_it(qtbot):
    """At 1024 px the LACTOSE preset's trajectories got 320 px, and the side legend left the data
    a 40 px sliver: a narrow plot lays the legend out under the data, which keeps the width."""
    tp = shown(qtbot, TrajectoryPlot(), (320, 300))
    learned = [f"{n}@{k}" for n in ("a", "d") for k in range(4)]
    tp.set_names(learned, ["drive", "soft"], {"a": (0.0, 4.0, False), "d": (0.1, 10.0, True),
                                              "drive": (0.5, 8.0, False), "soft": (0.1, 1.0, False)})
    feed(tp, np.linspace(0.5, 1.5, 8), {"drive": 2.0, "soft": 0.5})
    tp.update_legend()
    tp.refresh(force=True)
    tp.grab()
    QtWidgets.QApplication.processEvents()
    vb = tp.getPlotItem().getViewBox()
    data = vb.mapRectToScene(vb.rect())
    legend = tp.legend.mapRectToScene(tp.legend.rect())
    assert data.width() > 0.5 * 320, data
    assert not legend.intersects(data) and legend.top() >= data.bottom()
    view = QtCore.QRectF(tp.viewport().rect())
    for sample, label in tp.legend.items:
        assert view.contains(label.sceneBoundingRect()), label.text
    tp.resize(900, 300)                            # room again: back beside the data
    tp.grab()
    QtWidgets.QApplication.processEvents()
    data = vb.mapRectToScene(vb.rect())
    assert tp.legend.mapRectToScene(tp.legend.rect()).left() >= data.right()
