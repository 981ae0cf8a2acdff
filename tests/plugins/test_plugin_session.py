"""A plugin ground truth in the session (no audio started: the session runs its slot as the
callback would when asked) and in presets."""
import json

import numpy as np
import pytest

from app.preset import document as presets
from app.preset import store
from app.session import CircuitSpec, Session, SessionError
from engine.learn.learner import ParamSpec, Settings

ONE_POLE = "c = exp(-2*pi*cutoff/SR)\ny = (1 - c)*x + c*y@1"


def _spec(**kw):
    base = dict(circuit=ONE_POLE, params=[ParamSpec("cutoff", 2000.0, 20.0, 20000.0, log=True)],
                target="y = plugin", hidden={"cutoff_frequency_hz": 700.0}, plugin="ladspa:lpf",
                settings=Settings(optimizer="adam", lr=20.0))
    base.update(kw)
    return CircuitSpec(**base)


def test_the_plugins_controls_are_hidden_knobs_and_turning_one_reaches_its_port():
    with Session(48000, 128) as s:
        s.load(_spec())
        knob = s.knobs()["hidden:cutoff_frequency_hz"]
        assert (knob.lo, knob.hi, knob.kind) == (0.0, 24000.0, "linear")
        assert s.hidden() == {"cutoff_frequency_hz": 700.0}
        truth = s.memory.active.truth
        assert truth.processor.instance.controls[0] == np.float32(700.0)
        s.set_hidden("cutoff_frequency_hz", 1500.0)
        assert truth.processor.goals[0] == 1500.0 and s.spec.hidden["cutoff_frequency_hz"] == 1500.0
        s.set_hidden("cutoff_frequency_hz", 99999.0)                # clamped to the control's range
        assert s.hidden()["cutoff_frequency_hz"] == 24000.0


def test_a_swapped_out_plugin_is_freed_and_a_missing_one_is_a_one_line_error():
    with Session(48000, 128) as s:
        s.load(_spec())
        first = s.memory.active.truth.processor.instance
        s.load(_spec(hidden={"cutoff_frequency_hz": 300.0}))
        assert first._closed and not s.memory.active.truth.processor.instance._closed
        with pytest.raises(SessionError, match="no plugin 'ladspa:nothing_here' is installed"):
            s.load(_spec(plugin="ladspa:nothing_here"))
        with pytest.raises(SessionError, match="the target does not read 'plugin'"):
            s.load(_spec(target="y = 0.5*x"))


def test_a_preset_with_a_plugin_round_trips(tmp_path):
    preset = presets.load(store.resolve("plugin-lowpass"))
    assert preset.spec.plugin == "ladspa:1041" and preset.spec.hidden == {"cutoff_frequency_hz": 500.0}
    path = tmp_path / "mine.json"
    presets.save(preset, path)
    again = presets.load(path)
    assert again.spec.plugin == preset.spec.plugin and again.spec.hidden == preset.spec.hidden
    assert json.loads(path.read_text())["plugin"] == {"id": "ladspa:1041", "version": "", "channel": "left"}


def test_a_preset_whose_plugin_is_missing_or_mismatched_lists_every_problem():
    doc = json.loads(store.resolve("plugin-lowpass").read_text())
    doc["plugin"] = {"id": "lv2:http://plugin.org.uk/swh-plugins/no_such", "version": "1.2", "channel": "left"}
    with pytest.raises(presets.PresetError) as e:
        presets.loads(json.dumps(doc))
    assert any("is not installed (Debian ships it in the package swh-lv2)" in p for p in e.value.problems)
    doc["plugin"] = {"id": "ladspa:lpf", "version": "", "channel": "right"}
    doc["hidden"] = {"cutoff_frequency_hz": 30000.0, "resonance": 1.0}
    with pytest.raises(presets.PresetError) as e:
        presets.loads(json.dumps(doc))
    problems = " | ".join(e.value.problems)
    assert "outside the plugin control's range [0, 24000]" in problems
    assert "hidden 'resonance'" in problems
    assert "channel 'right' does not exist" in problems


def test_a_plugin_insert_is_saved_in_a_preset_and_restored(tmp_path):
    from app.workspace import Workspace
    with Session(48000, 128) as s:
        w = Workspace(s)
        w.apply(presets.load(store.resolve("plugin-lowpass")))
        s.set_insert_plugin("ladspa:amp_mono", {"gain": 0.5})
        path = tmp_path / "with-insert.json"
        presets.save(w.snapshot(), path)
        doc = json.loads(path.read_text())
        assert doc["insert"] == {"plugin": "ladspa:1048", "version": "", "controls": {"gain": 0.5}}
        s.set_insert(None)
        assert s.insert() is None
        w.apply(presets.load(path))
        assert s.insert()["plugin"] == "ladspa:1048" and s.insert()["controls"] == {"gain": 0.5}
    doc["insert"]["controls"] = {"gain": 0.5, "volume": 1.0}
    with pytest.raises(presets.PresetError, match="has no control 'volume'"):
        presets.loads(json.dumps(doc))


def test_turning_a_knob_restarts_a_decaying_learning_rate():
    from engine import layout as LY
    from app.truths import outside_settings
    with Session(48000, 128) as s:
        s.load(_spec(settings=outside_settings(Settings(optimizer="adam", lr=20.0))))
        learner = s.learner
        assert learner.settings.lr_decay_every == 4800 and learner.settings.lr_min == 20.0 * 0.001
        learner.process(np.random.default_rng(0).uniform(-1, 1, 48000),
                        external=np.zeros(48000))                     # ten decays
        assert learner.st[LY.ST_SCHED] == pytest.approx(0.7 ** 10)
        s.set_hidden("cutoff_frequency_hz", 900.0)
        assert learner.st[LY.ST_SCHED] == 1.0 and learner.st[LY.ST_SCHED_COUNT] == 0.0
