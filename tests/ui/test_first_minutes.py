"""The first ten minutes in the window: a divergence is said in a banner with one click that
helps, and the output has a volume and a mute."""
import dataclasses

import pytest

from engine.learn.learner import ParamSpec, Settings
from tests.ui.test_gui import config_dir, make_window, wait_loaded, window   # noqa: F401 (fixtures)


def test_a_divergence_pauses_learning_shows_a_banner_and_halving_starts_over(qtbot, window):
    s = window.session
    unstable = dataclasses.replace(s.spec, circuit="y = x + a*y@1", target=None,
                                   params=[ParamSpec("a", 0.0, -3, 3)], hidden={"a": 0.95},
                                   settings=Settings(lr=1.0))
    window.apply_spec(unstable)
    wait_loaded(qtbot, window, 2)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=20000)
    assert "Learning paused: diverged at" in window.banner.text.text()
    assert "learning rate is probably too high" in window.banner.text.text()
    assert s.learner.settings.learning is False
    assert window.learning.run.text() == "Run"                   # the controls say paused too
    assert "steps lost to divergence" in window.status_text()
    window.banner.halve.click()
    assert not window.banner.isVisible()
    assert s.learner.settings.lr == 0.5 and s.learner.settings.learning is True
    assert window.learning.lr_label.text() == "5.00e-01"


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
