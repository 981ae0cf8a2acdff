"""SPTMod as the ground truth inside the real audio callback (driven directly, no device): the
target is exactly the streaming model over the source, the learnable circuit sees the source
delayed by the model's FIFO latency, bad input never reaches the model's state, and the session
exposes the model's controls as hidden knobs."""
import json

import numpy as np
import pytest

from app.host import layout as H
from app.host.memory import Slot
from app.truths import SptModTruth
from app.session import CircuitSpec, Session, SessionError
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sptmod.stream import SptModStream
from engine.sptmod.file import load_model
from tests.host_harness import Harness
from tests.paths import REFERENCE

GOLDEN = REFERENCE / "sptmod" / "golden_SPTMod25_p7.npz"


def _model_slot(h, circuit="y = g*x + d"):
    model = load_model(GOLDEN)
    stream = SptModStream(model.config, model.weights, max_block=h.mem.max_frames)
    controls = dict(zip(model.control_names, model.control_defaults))
    stream.set_controls(list(controls.values()))
    learner = Learner(circuit, [ParamSpec("g", 1.0, -2, 2), ParamSpec("d", 0.0, -1, 1)], target="y = sptmod",
                      settings=Settings(learning=False))
    slot = Slot(learner, h.mem.x, h.mem.max_frames, truth=SptModTruth(stream, model, controls, h.mem.max_frames))
    h.mem.install(0, slot)
    return model, slot


def _source_noise(h):
    h.ctl[H.C_SOURCE] = H.SOURCES["lcg-noise"]
    h.ctl[H.C_SOURCE_GAIN] = 0.5


@pytest.mark.parametrize("frames", [128, 100])
def test_the_target_is_the_streaming_model_and_the_learner_sees_the_source_delayed_by_its_latency(frames):
    h = Harness()
    model, slot = _model_slot(h)
    _source_noise(h)
    blocks = 40
    for _ in range(blocks):
        h.run(frames)
    n = blocks * frames
    sc = h.scope(n)
    x = sc[:, H.SC_SOURCE]
    ref = SptModStream(model.config, model.weights)
    ref.set_controls(model.control_defaults)
    want = np.concatenate([ref.process(x[k:k + frames]) for k in range(0, n, frames)])
    latency = ref.latency_for(frames)
    assert latency == (0 if frames == 128 else 60)
    np.testing.assert_array_equal(sc[:, H.SC_TARGET], want)
    x_delayed = np.concatenate([np.zeros(latency), x[:n - latency]])
    np.testing.assert_array_equal(sc[:, H.SC_LEARNED], 1.0 * x_delayed + 0.0)   # g = 1, d = 0


def test_bad_input_is_kept_out_of_the_model_and_a_blown_up_model_restarts_silently():
    h = Harness()
    model, slot = _model_slot(h)
    h.ctl[H.C_SOURCE] = H.SOURCES["input"]
    inp = np.full((128, 1), 0.25, dtype=np.float32)
    inp[10] = np.nan
    h.run(128, inp)
    h.run(128, np.full((128, 1), 0.25, dtype=np.float32))
    assert np.all(np.isfinite(h.scope(256)[:, H.SC_TARGET]))
    assert slot.model_restarts == 0 and h.ctl[H.C_BAD_INPUT] == 1
    _, _, _, _, wk, _ = slot.processor.stream.arrays()
    wk[:] = np.inf                                  # the state poisoned: the next block restarts it
    h.run(128, np.full((128, 1), 0.25, dtype=np.float32))
    assert slot.model_restarts == 1 and np.all(np.isfinite(wk))
    out = h.run(128, np.full((128, 1), 0.25, dtype=np.float32))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(h.scope(128)[:, H.SC_TARGET]))


def test_a_slot_refuses_a_model_without_sptmod_in_the_target_and_the_reverse():
    h = Harness()
    model = load_model(GOLDEN)
    stream = SptModStream(model.config, model.weights)
    plain = Learner("y = g*x", [ParamSpec("g", 0.0)], target="y = 0.5*x")
    with pytest.raises(ValueError, match="needs a target that reads 'sptmod'"):
        Slot(plain, h.mem.x, h.mem.max_frames, truth=SptModTruth(stream, model, {}, h.mem.max_frames))
    reads = Learner("y = g*x", [ParamSpec("g", 0.0)], target="y = sptmod")
    with pytest.raises(ValueError, match="no SPTMod model is loaded"):
        Slot(reads, h.mem.x, h.mem.max_frames)


def test_the_session_turns_model_controls_as_hidden_knobs_and_checks_the_models_hash():
    s = Session(48000, 128, device="virtual")
    model = load_model(GOLDEN)
    spec = CircuitSpec("y = g*x + d", [ParamSpec("g", 0.0, -2, 2), ParamSpec("d", 0.0, -1, 1)],
                       target="y = sptmod", hidden={"p2": 0.5}, model=str(GOLDEN), model_sha256=model.sha256)
    s.load(spec)
    hidden = s.hidden()
    assert list(hidden) == model.control_names and hidden["p2"] == 0.5
    assert hidden["p0"] == model.control_defaults[0]
    assert s.knobs()["hidden:p3"].lo == 0.0 and s.knobs()["hidden:p3"].hi == 1.0
    s.set_knob("hidden:p3", 0.25)
    assert s.hidden()["p3"] == 0.25 and s.spec.hidden["p3"] == 0.25
    np.testing.assert_array_equal(s.memory.active.processor.stream.controls[3], 0.25)
    s.set_hidden("p4", 7.0)                        # clamped to the control's range
    assert s.hidden()["p4"] == 1.0
    with pytest.raises(SessionError, match="not the model this was saved with"):
        s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], target="y = sptmod", model=str(GOLDEN),
                           model_sha256="0" * 64))
    with pytest.raises(SessionError, match="no SPTMod model is loaded"):
        s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], target="y = sptmod"))
    with pytest.raises(SessionError, match="nonexistent.npz: no such file"):
        s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], target="y = sptmod", model="/nonexistent.npz"))
    s.close()


def test_run_headless_learns_against_the_model_and_reports_it(capsys):
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "1.5", "--device", "virtual", "--quiet",
               "--sptmod", str(GOLDEN), "--circuit", "y = d", "--param", "d=0:-1:1", "--hidden", "p3=0.2",
               "--optimizer", "sgd", "--lr", "0.001", "--window", "64"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = load_model(GOLDEN)
    assert res["sptmod"]["sha256"] == model.sha256 and res["sptmod"]["controls"]["p3"] == 0.2
    assert res["sptmod"]["restarts"] == 0 and res["nonfinite_out"] == 0
    # y = d learns the mean of the model's output over the source (the LCG noise at gain 1)
    from engine.sources import LcgNoise
    stream = SptModStream(model.config, model.weights)
    stream.set_controls([0.2 if n == "p3" else v for n, v in zip(model.control_names, model.control_defaults)])
    y = stream.process(LcgNoise().read(48000))
    assert abs(res["params"]["d"] - y[24000:].mean()) < 0.01 * np.abs(y).max()


def test_run_headless_refuses_a_model_the_target_does_not_read(capsys):
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "1", "--device", "virtual", "--quiet",
               "--sptmod", str(GOLDEN), "--target", "y = x", "--circuit", "y = g*x", "--param", "g=0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: an SPTMod model is loaded but the target does not read")


# ------------------------------------------------------------------ SPTMod as an output insert

def test_the_insert_is_the_streaming_model_over_each_output_channel_before_the_limiter():
    from app.host.memory import Insert
    h = Harness(learner=Learner("y = g*x", [ParamSpec("g", 0.0)], target="y = 0.5*x",
                                settings=Settings(learning=False)))
    model = load_model(GOLDEN)
    h.mem.set_insert(Insert(model, h.mem.max_frames, {"p3": 0.25}))
    _source_noise(h)
    h.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["stereo"]       # left: target, right: learned (0)
    h.ctl[H.C_MODE_NOW] = h.ctl[H.C_OUTPUT_MODE]
    h.ctl[H.C_DC_BLOCK] = 0.0            # the insert's output sample for sample (the blocker comes after it)
    out = np.concatenate([h.run(128) for _ in range(30)])
    x = h.scope(30 * 128)[:, H.SC_SOURCE]
    controls = [0.25 if n == "p3" else v for n, v in zip(model.control_names, model.control_defaults)]
    for channel, dry in ((0, 0.5 * x), (1, np.zeros_like(x))):
        ref = SptModStream(model.config, model.weights)
        ref.set_controls(controls)
        want = np.concatenate([ref.process(dry[k:k + 128]) for k in range(0, dry.size, 128)])
        np.testing.assert_array_equal(out[:, channel], want.astype(np.float32))
    assert np.array_equal(h.scope(30 * 128)[:, H.SC_OUT_LEFT].astype(np.float32), out[:, 0])
    h.mem.set_insert(None)                                   # removed: the dry output again
    out = h.run(128)
    np.testing.assert_array_equal(out[:, 0], (0.5 * h.scope(128)[:, H.SC_SOURCE]).astype(np.float32))


def test_a_bypassed_insert_lets_the_dry_output_through_and_runs_again_when_unbypassed():
    from app.host.memory import Insert
    h = Harness(learner=Learner("y = g*x", [ParamSpec("g", 0.0)], target="y = 0.5*x",
                                settings=Settings(learning=False)))
    h.mem.set_insert(Insert(load_model(GOLDEN), h.mem.max_frames))
    _source_noise(h)
    h.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["stereo"]       # left: the target, 0.5*x
    h.ctl[H.C_MODE_NOW] = h.ctl[H.C_OUTPUT_MODE]
    h.ctl[H.C_DC_BLOCK] = 0.0

    def left_and_dry():
        out = np.concatenate([h.run(128) for _ in range(8)])
        return out[:, 0], (0.5 * h.scope(8 * 128)[:, H.SC_SOURCE]).astype(np.float32)
    wet, dry = left_and_dry()
    assert np.max(np.abs(wet - dry)) > 1e-3                  # the model changes the sound
    h.ctl[H.C_INSERT_BYPASS] = 1.0
    wet, dry = left_and_dry()
    np.testing.assert_array_equal(wet, dry)                 # bypassed: the dry output, sample for sample
    h.ctl[H.C_INSERT_BYPASS] = 0.0
    wet, dry = left_and_dry()
    assert np.max(np.abs(wet - dry)) > 1e-3


def test_the_session_bypasses_the_insert_through_its_control_word():
    s = Session(48000, 128, device="virtual")
    s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5}))
    s.set_insert(str(GOLDEN))
    assert s.memory.ctl[H.C_INSERT_BYPASS] == 0.0 and s.insert()["bypass"] is False
    s.set_insert_bypass(True)
    assert s.memory.ctl[H.C_INSERT_BYPASS] == 1.0 and s.insert()["bypass"] is True and s.insert_bypassed
    s.set_insert_bypass(False)
    assert s.memory.ctl[H.C_INSERT_BYPASS] == 0.0 and not s.insert_bypassed
    s.set_insert_bypass(True)
    s.set_insert(str(GOLDEN))                                # a new insert is heard
    assert s.memory.ctl[H.C_INSERT_BYPASS] == 0.0
    s.set_insert_bypass(True)
    s.set_insert(None)                                       # removed: nothing left bypassed
    assert s.memory.ctl[H.C_INSERT_BYPASS] == 0.0 and s.insert() is None
    s.close()


def test_the_session_runs_an_insert_with_its_controls_as_knobs():
    s = Session(48000, 128, device="virtual")
    s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5}))
    model = load_model(GOLDEN)
    s.set_insert(str(GOLDEN), {"p1": 0.5}, model.sha256)
    info = s.insert()
    assert info["sha256"] == model.sha256 and info["controls"]["p1"] == 0.5 and info["restarts"] == 0
    assert "insert:p1" in s.knobs() and "hidden:p1" not in s.knobs()
    s.set_knob("insert:p1", 1.0)
    assert s.insert()["controls"]["p1"] == 1.0
    with pytest.raises(SessionError, match="no control named 'volume'"):
        s.set_insert(str(GOLDEN), {"volume": 1.0})
    with pytest.raises(SessionError, match="not the model this was saved with"):
        s.set_insert(str(GOLDEN), None, "0" * 64)
    assert s.insert()["controls"]["p1"] == 1.0              # a refused change keeps the old insert
    s.set_insert(None)
    assert s.insert() is None and "insert:p1" not in s.knobs()
    s.close()


def _coefficients(model, **controls):
    """The weights (FiLM coefficients included) a fresh stream holds with these control values."""
    ref = SptModStream(model.config, model.weights)
    ref.set_controls([controls.get(n, v) for n, v in zip(model.control_names, model.control_defaults)])
    return ref.arrays()[0]


def _weights(streams):
    return [st.arrays()[0].copy() for st in streams]


def test_insert_controls_change_both_channels_at_one_block_boundary():
    from app.host.memory import Insert
    h = Harness(learner=Learner("y = g*x", [ParamSpec("g", 0.0)], target="y = 0.5*x",
                                settings=Settings(learning=False)))
    model = load_model(GOLDEN)
    insert = Insert(model, h.mem.max_frames)
    h.mem.set_insert(insert)
    _source_noise(h)
    h.run(128)
    before = _weights(insert.streams)
    insert.set_control("p3", 0.9)              # prepared off the audio thread...
    for now, was in zip(_weights(insert.streams), before):
        np.testing.assert_array_equal(now, was)        # ...while the callback keeps reading the old
    h.run(128)
    for now, was in zip(_weights(insert.streams), before):
        np.testing.assert_array_equal(now, was)        # nothing changes without a request
    h.ctl[H.C_CONTROL_REQ] += 1.0
    h.run(128)                                          # one block start takes both channels
    assert h.ctl[H.C_CONTROL_ACK] == h.ctl[H.C_CONTROL_REQ]
    want = _coefficients(model, p3=0.9)
    for now in _weights(insert.streams):
        np.testing.assert_array_equal(now, want)


def test_a_ground_truth_model_control_changes_at_a_block_boundary():
    h = Harness()
    model, slot = _model_slot(h)
    _source_noise(h)
    h.run(128)
    before = _weights([slot.processor.stream])
    slot.set_model_control("p3", 0.1)
    np.testing.assert_array_equal(_weights([slot.processor.stream])[0], before[0])
    h.ctl[H.C_CONTROL_REQ] += 1.0
    h.run(128)
    np.testing.assert_array_equal(_weights([slot.processor.stream])[0], _coefficients(model, p3=0.1))


def test_the_session_applies_insert_and_model_controls_when_no_audio_runs():
    s = Session(48000, 128, device="virtual")
    s.load(CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5}))
    model = load_model(GOLDEN)
    s.set_insert(str(GOLDEN), {"p1": 0.5}, model.sha256)
    s.set_insert_control("p1", 0.75)
    for now in _weights(s.memory.insert.streams):
        np.testing.assert_array_equal(now, _coefficients(model, p1=0.75))
    assert s.memory.ctl[H.C_CONTROL_ACK] == s.memory.ctl[H.C_CONTROL_REQ]
    s.close()


def test_run_headless_plays_a_presets_insert_bypassed_when_it_was_saved_so(capsys, tmp_path):
    import dataclasses
    from app.cli.main import main
    from app.preset import document as presets
    from app.preset import store
    p = presets.load(store.resolve("gain+dc"))
    p = dataclasses.replace(p, insert={"model": str(GOLDEN), "sha256": load_model(GOLDEN).sha256,
                                       "controls": {}, "bypass": True})
    presets.save(p, tmp_path / "off.json")
    rc = main(["run", "--headless", "--seconds", "0.3", "--device", "virtual", "--quiet", "--preset",
               str(tmp_path / "off.json")])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["insert"]["bypass"] is True


def test_run_headless_with_an_insert_reports_it(capsys):
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "1", "--device", "virtual", "--quiet", "--circuit", "y = g*x",
               "--param", "g=0", "--hidden", "g=0.5", "--insert", str(GOLDEN), "--insert-control", "p0=0.5"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["insert"]["controls"]["p0"] == 0.5 and res["insert"]["restarts"] == 0
    assert res["nonfinite_out"] == 0
