"""The first ten minutes in the window: a divergence is said in a banner with one click that
helps, and the output has a volume and a mute."""
import dataclasses

import pytest

from engine.learn.learner import ParamSpec, Settings
from tests.ui.test_gui import config_dir, make_window, wait_loaded, window   # noqa: F401 (fixtures)


def test_a_divergence_pauses_learning_shows_a_banner_and_halving_the_rate_starts_over(qtbot, window):
    s = window.session
    unstable = dataclasses.replace(s.spec, circuit="y = x + a*y@1", target=None,
                                   params=[ParamSpec("a", 0.0, -3, 3)], hidden={"a": 0.95},
                                   settings=Settings(optimizer="sgd", lr=1.0))
    window.apply_spec(unstable)
    wait_loaded(qtbot, window, 2)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20000)
    assert "Learning paused: diverged at" in window.banner.text.text()
    assert "learning rate is probably too high" in window.banner.text.text()
    assert s.learner.settings.learning is False
    assert window.learning.run.text() == "Run"                   # the controls say paused too
    assert "steps lost to divergence" in window.status_text()
    assert window.banner.retry.text() == "Halve the learning rate and start over"
    window.banner.retry.click()
    assert not window.banner.isVisible()
    assert s.learner.settings.lr == 0.5 and s.learner.settings.learning is True
    assert window.learning.lr_label.text() == "5.00e-01"


def test_with_gauss_newton_the_banner_divides_p0_by_10_not_a_rate_it_does_not_read(qtbot, window):
    from engine.learn.health import Divergence
    s = window.session
    s.configure(optimizer="gauss-newton", p0=500.0).result(timeout=120)
    found = Divergence(4800, "the loss grew a million-fold")
    window.banner.show_divergence(found.describe(s.sample_rate, s.sets_its_own_step), s.sets_its_own_step)
    assert "divide p0 by 10" in window.banner.text.text() and "learning rate" not in window.banner.text.text()
    assert window.banner.retry.text() == "Divide p0 by 10 and start over"
    lr = s.learner.settings.lr
    window.banner.retry.click()
    assert s.learner.settings.p0 == 50.0 and s.learner.settings.lr == lr
    assert window.statusBar().currentMessage() == "learning again from the start at p0 50"
    assert not window.banner.isVisible() and s.learner.settings.learning is True


def test_the_status_line_counts_one_sample_in_the_singular(qtbot, window, monkeypatch):
    # the real counters with these four replaced: the window's timer may tick (and read the rest) meanwhile
    counts = dict(window.session.counters(), nonfinite_out=1, bad_input=1, skipped=1, diverged_steps=1)
    monkeypatch.setattr(window.session, "counters", lambda: counts)
    assert (" — 1 NaN/Inf sample silenced, 1 bad input sample, 1 bad sample skipped by the learner, "
            "1 step lost to divergence") in window.status_text()
    counts.update(nonfinite_out=2, bad_input=0, skipped=0, diverged_steps=3)
    assert " — 2 NaN/Inf samples silenced, 3 steps lost to divergence" in window.status_text()


def test_a_recording_aligned_by_one_sample_says_so(qtbot, window):
    from app.preset import store
    from app.recordings.pair import RecordingSpec, sha256_of
    dry, wet = store.FACTORY_DIR / "recordings" / "drive-dry.wav", store.FACTORY_DIR / "recordings" / "drive-wet.wav"
    assert window.use_recording(RecordingSpec(str(dry), str(wet), None, sha256_of(dry), sha256_of(wet)), 1)
    wait_loaded(qtbot, window, 2)
    assert window.statusBar().currentMessage() == "ground truth: the recording drive-wet.wav, aligned by 1 sample"


def test_the_volume_slider_and_mute_button_reach_the_speaker_path(qtbot, window):
    s = window.session
    window.audio.volume.setValue(-20)
    assert s.volume_db == pytest.approx(-20.0) and window.audio.volume_label.text() == "-20 dB"
    window.audio.mute.click()
    assert s.muted
    snap = window.workspace.snapshot()
    assert (snap.volume_db, snap.mute) == (-20.0, True)
    window.audio.mute.click()
    assert not s.muted


def test_a_file_that_cannot_play_says_so_in_a_dialog_and_the_source_box_reverts(qtbot, window, tmp_path, monkeypatch):
    from pyqtgraph.Qt import QtWidgets
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    window.change_source("file", 220.0)
    assert window.error_dialog is not None and "notes.txt was not played" in window.error_dialog.text()
    assert window.audio.source.currentText() == "lcg-noise"       # not a "file" that is not playing
    assert not window.audio.source_note.isVisible()


def test_a_playing_file_is_named_with_its_length(qtbot, window, tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf
    from pyqtgraph.Qt import QtWidgets
    good = tmp_path / "loop.wav"
    sf.write(good, np.zeros(24000), 48000)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(good), ""))
    window.change_source("file", 220.0)
    assert window.audio.source.currentText() == "file"
    assert window.audio.source_note.text() == "loop.wav (0.5 s, looping)"


def test_the_output_insert_is_shown_with_a_remove_button(qtbot, window):
    from app.preset import store
    model = next(store.FACTORY_DIR.rglob("*.npz"))
    assert window.audio.insert_label.text() == "none" and not window.audio.insert_remove.isEnabled()
    assert window.use_insert(str(model))
    assert window.audio.insert_label.text() == model.name and window.audio.insert_remove.isEnabled()
    window.audio.insert_remove.click()
    assert window.session.insert() is None and window.audio.insert_label.text() == "none"


def test_the_output_insert_has_a_bypass_that_is_saved_with_it(qtbot, window, tmp_path):
    from app.host import layout as H
    from app.preset import store
    model = next(store.FACTORY_DIR.rglob("*.npz"))
    bypass, ctl = window.insert_bypass, window.session.memory.ctl
    assert not bypass.isEnabled()                              # no insert, nothing to bypass
    assert window.use_insert(str(model))
    assert bypass.isEnabled() and not bypass.isChecked() and bypass.text() == "Bypass"
    bypass.click()
    assert ctl[H.C_INSERT_BYPASS] == 1.0 and bypass.isChecked() and bypass.text() == "Bypassed"
    path = window.save_as(tmp_path / "bypassed.json")
    bypass.click()
    assert ctl[H.C_INSERT_BYPASS] == 0.0 and bypass.text() == "Bypass"
    assert window.open_preset(path)
    wait_loaded(qtbot, window, 2)
    assert ctl[H.C_INSERT_BYPASS] == 1.0 and bypass.isChecked() and bypass.text() == "Bypassed"
    window.audio.insert_remove.click()
    assert ctl[H.C_INSERT_BYPASS] == 0.0 and not bypass.isEnabled() and not bypass.isChecked()


def test_help_lists_the_shortcuts_and_opens_the_circuit_language(qtbot, window):
    keys = dict(window.shortcuts())
    assert keys.get("Space") == "Run / pause" and keys.get("M") == "Mute / unmute the output"
    assert window.open_doc("circuit-language.md").is_file()


def _fully_shown(widget) -> bool:
    return widget.isVisible() and widget.visibleRegion().boundingRect().size() == widget.size()


@pytest.mark.parametrize("preset", ["biquad", "tanh-drive", "gain+dc"])
def test_the_panels_fit_at_1280x720_and_1024x640_without_being_cut(qtbot, window, preset, tmp_path):
    window.open_preset(preset)
    wait_loaded(qtbot, window, 2)
    for width, height in ((1280, 720), (1024, 640)):
        window.resize(width, height)
        qtbot.wait(100)
        assert window.width() == width and window.height() == height, "the window cannot shrink this far"
        window.grab().save(str(tmp_path / f"{preset}-{width}.png"))     # the screenshot renders
        assert _fully_shown(window.learning), (preset, width)
        assert _fully_shown(window.circuit), (preset, width)
        if width == 1280:
            assert _fully_shown(window.audio), (preset, width)       # nothing scrolls at 1280x720
        else:                                  # the knobs' column may scroll, never clip sideways
            assert window.audio.visibleRegion().boundingRect().width() == window.audio.width()


def test_reset_clears_every_history_view_and_the_trajectories_use_the_declared_ranges(qtbot, window):
    window.open_preset("biquad")
    wait_loaded(qtbot, window, 2)
    qtbot.waitUntil(lambda: len(window.trajectories._hist) > 5 and len(window.loss_history.visible_data()[1]) > 5,
                    timeout=20000)
    texts = window.trajectories.legend_texts()
    assert any(t.startswith("cutoff") and t.endswith("(20…20000)") for t in texts), texts   # ranges reached it
    window.reset_learning()
    assert len(window.trajectories._hist) == 0
    assert len(window.loss_history.visible_data()[1]) == 0


def test_the_limiter_is_a_meter_and_a_midi_turned_volume_moves_the_slider(qtbot, window):
    s = window.session
    loud = dataclasses.replace(s.spec, hidden={"gain": 2.0, "dc": 0.0})
    window.apply_spec(loud)
    wait_loaded(qtbot, window, 2)
    s.set_source("sine", hz=220.0)
    qtbot.waitUntil(lambda: window.audio.limiter.value() > 30, timeout=10000)   # > 3 dB of reduction
    assert window.audio.limiter.format().startswith("limiter -")
    assert " %" in window.audio.limiter.format()             # the share of time it turned us down
    assert "limiter" not in window.status_text()               # a meter, not an alarm
    s.set_knob("volume", 0.25)                                 # a MIDI controller turns it: -42 dB
    s.set_knob("mute", 1.0)
    qtbot.waitUntil(lambda: window.audio.volume.value() == -42, timeout=5000)
    assert window.audio.mute.isChecked() and window.audio.volume_label.text() == "-42 dB"
    before = s.limiter()["samples"]
    window.reset_learning()                                    # the count starts over with Reset
    assert s.limiter()["samples"] < before


def test_limiter_text_reads_the_reduction_and_the_share_of_time():
    from ui.panels.controls import limiter_text
    assert limiter_text(0.0, 0.0) == "limiter 0 dB"
    assert limiter_text(2.54, 0.004) == "limiter -2.5 dB · 0.4 %"
    assert limiter_text(0.0, 0.0004) == "limiter 0 dB"


def test_the_learning_rate_slider_has_one_range_that_holds_every_factory_presets_rate():
    from app.preset import document as presets
    from app.preset import store
    from ui.panels.controls import LearningControls
    for name, path in store.factory_presets().items():
        lr = presets.load(path).spec.settings.lr
        shown = LearningControls.lr_at(LearningControls.lr_position(lr))
        assert abs(shown / lr - 1) < 0.013, f"{name}: lr {lr:g} shows as {shown:g}"  # 100 steps a decade
    assert LearningControls.lr_at(0) == 1e-6 and LearningControls.lr_at(800) == 100.0


def test_a_lactose_preset_fits_1024x640_its_knobs_scroll_and_its_legend_goes_under_the_data(qtbot, window):
    """Ten learned and hidden rows and a bank view do not fit one column at 720 px: that column
    scrolls (never clips sideways), and at 1024 px the window still shrinks to the screen (the
    bank view's title set a 1154 px minimum) with the trajectory legend under the data."""
    window.open_preset("lactose-asymmetric")
    wait_loaded(qtbot, window, 2)
    for width, height in ((1280, 720), (1024, 640)):
        window.resize(width, height)
        qtbot.wait(100)
        assert window.width() == width and window.height() == height, "the window cannot shrink this far"
        assert _fully_shown(window.learning) and _fully_shown(window.circuit), width
        assert window.audio.visibleRegion().boundingRect().width() == window.audio.width()
        assert window.bank_view.width() <= window.middle_scroll.viewport().width()   # below, not beside
    tp = window.trajectories
    vb = tp.getPlotItem().getViewBox()
    data = vb.mapRectToScene(vb.rect())
    assert data.width() > 0.5 * tp.width()
    assert tp.legend.mapRectToScene(tp.legend.rect()).top() >= data.bottom()
