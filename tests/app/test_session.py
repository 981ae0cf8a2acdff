"""The session on the virtual clock (no audio device): mailbox controls, swaps, sources, knobs."""
import math
import time

import numpy as np
import pytest
import soundfile as sf

from app.host import layout as H
from app.knobs import KnobSpec
from app.session import CircuitSpec, RebuildNeeded, Session, SessionError
from engine.learn.learner import ParamSpec, Settings

GAIN_DC = CircuitSpec("y = gain*x + dc", [ParamSpec("gain", 0.0, -2, 2), ParamSpec("dc", 0.0)],
                      hidden={"gain": 0.5, "dc": 0.5}, settings=Settings(optimizer="sgd", window=32, lr=0.01))


@pytest.fixture
def session():
    s = Session(48000, 256, device="virtual")
    s.load(CircuitSpec(**{**GAIN_DC.__dict__, "hidden": dict(GAIN_DC.hidden)}))
    yield s
    s.close()


def _wait(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_virtual_clock_runs_learning_and_says_so(session):
    info = session.start()
    assert info.virtual and "virtual clock" in session.status_message
    _wait(lambda: session.counters()["callbacks"] >= 200)
    p = session.params()
    assert abs(p["gain"] - 0.5) < 1e-3 and abs(p["dc"] - 0.5) < 1e-3
    rows = session.telemetry.drain()
    assert rows.shape[0] >= 200
    snap = session.telemetry.decode(rows[-1])
    assert set(snap.params) == {"gain", "dc"}


def test_live_controls_reach_the_callback(session):
    session.start()
    session.set_hidden("gain", -0.25)
    session.configure(optimizer="adam", lr=0.003).result(timeout=120)   # its kernel, swapped in
    assert session.learner.cfg[4] == 3          # CF_OPT: adam
    _wait(lambda: abs(session.params()["gain"] + 0.25) < 1e-2)
    session.set_learning(False)
    before = session.params()
    _wait(lambda: session.counters()["callbacks"] > 50)
    time.sleep(0.05)
    assert session.params() == before
    session.reset_learning({"gain": 1.5})
    assert session.params() == {"gain": 1.5, "dc": 0.0}
    session.reset_learning()
    assert session.params() == {"gain": 0.0, "dc": 0.0}
    assert session.spec.hidden["gain"] == -0.25 and session.spec.settings.optimizer == "adam"


def test_bad_control_values_give_clear_errors(session):
    with pytest.raises(SessionError, match="no parameter named 'nope'"):
        session.set_hidden("nope", 1.0)
    with pytest.raises(ValueError, match="finite"):
        session.set_hidden("gain", math.nan)
    with pytest.raises(SessionError, match="unknown optimizer"):
        session.configure(optimizer="lbfgs")
    with pytest.raises(SessionError, match="unknown output 'mono'"):
        session.set_output("mono")
    with pytest.raises(SessionError, match="unknown source"):
        session.set_source("radio")
    with pytest.raises(SessionError, match="between 0 and 24000"):
        session.set_source("sine", hz=30000)
    with pytest.raises(SessionError, match="no learnable parameter named 'x1'"):
        session.reset_learning({"x1": 0.0})
    with pytest.raises(SessionError, match="NaN or infinite"):
        session.set_source("file", data=np.array([0.0, np.nan]))
    with pytest.raises(SessionError, match="output level"):
        session.set_master_gain(10)


def test_swap_while_running_crossfades_to_the_new_circuit(session):
    session.start()
    _wait(lambda: session.counters()["callbacks"] > 20)
    stages = []
    session.load(CircuitSpec("y = a*x", [ParamSpec("a", 0.0)], hidden={"a": 0.3}),
                 progress=lambda stage, f: stages.append(f))
    assert session.param_names == ["a"] and stages[-1] == 1.0
    assert session.memory.slots[1 - session.memory.active_index] is None
    _wait(lambda: abs(session.params()["a"] - 0.3) < 1e-3)


def test_a_bad_circuit_is_reported_and_the_old_one_keeps_running(session):
    session.start()
    fut = session.load_async(CircuitSpec("y = gain*x +", [ParamSpec("gain", 0.0)]))
    with pytest.raises(ValueError, match="line 1"):
        fut.result(timeout=60)
    assert session.param_names == ["gain", "dc"]
    n = session.counters()["callbacks"]
    _wait(lambda: session.counters()["callbacks"] > n + 5)


def test_file_source_is_resampled_and_looped(session, tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(22050) / 22050
    sf.write(path, 0.5 * np.sin(2 * np.pi * 441 * t), 22050)
    session.load_file(str(path))
    assert session.memory.files[0].size == 48000
    session.set_output("target")
    session.start()
    _wait(lambda: session.counters()["callbacks"] > 300)
    src = session.telemetry.scope(1 << 15)[:, H.SC_SOURCE]
    spectrum = np.abs(np.fft.rfft(src * np.hanning(src.size)))
    assert abs(np.argmax(spectrum) * 48000 / src.size - 441) < 5


def test_knobs_map_midi_fractions_to_values(session):
    knobs = session.knobs()
    assert knobs["hidden:gain"] == KnobSpec("hidden:gain", -2.0, 2.0)
    assert knobs["hidden:dc"].lo == -1.0                 # unbounded params get a [-1, 1] knob
    session.set_knob("hidden:gain", 0.75)
    assert session.hidden()["gain"] == 1.0
    session.set_knob("lr", 0.5)                          # half way along 1e-6 ... 100, log
    assert math.isclose(session.learner.settings.lr, 1e-2)
    with pytest.raises(SessionError, match="no knob named"):
        session.set_knob("volume11", 0.5)
    got = []
    session.on_program_change.append(got.append)
    session.program_change(7)
    assert got == [7]


def test_midi_voice_events_reach_the_oscillator(session):
    session.set_source("midi")
    session.start()
    session.voice(330.0, True, 0.5)
    _wait(lambda: session.memory.ctl[H.C_VOICE_FREQ] == 330.0)
    assert session.memory.ctl[H.C_VOICE_GATE] == 1.0 and session.memory.ctl[H.C_VOICE_AMP] == 0.5
    assert session.counters()["midi_applied"] == 1


def test_session_rejects_bad_stream_settings():
    with pytest.raises(SessionError, match="sample rate"):
        Session(100, 128)
    with pytest.raises(SessionError, match="block size"):
        Session(48000, 3)


def test_a_knob_turned_while_a_new_circuit_compiles_is_kept(session):
    """Apply with dc = 0.5, turn dc to -0.8 during the compile: after the swap the hidden value,
    the spec, the new slot's goal and the kernel's cfg all read -0.8 (they snapped back to 0.5)."""
    import threading
    session.start()
    real_build, compiling, turned = session.build, threading.Event(), threading.Event()

    def slow_build(spec, progress=lambda s, f: None):
        compiling.set()
        assert turned.wait(10)                  # the knob moves while this compiles
        return real_build(spec, progress)

    session.build = slow_build
    edited = CircuitSpec("y = gain*x + dc + 0*x@3", list(GAIN_DC.params), hidden={"gain": 0.5, "dc": 0.5},
                         settings=GAIN_DC.settings)
    future = session.load_async(edited)
    assert compiling.wait(10)
    session.set_hidden("dc", -0.8)
    turned.set()
    future.result(timeout=60)
    slot = session.memory.active
    assert session.spec is edited and "x@3" in slot.learner.graph.text
    k = slot.learner.layout.hidden.index("dc")
    assert session.hidden()["dc"] == -0.8 and session.spec.hidden["dc"] == -0.8
    assert slot.hidden_goal[k] == -0.8
    _wait(lambda: abs(slot.learner.cfg[slot.learner.layout.cfg_hidden + k] + 0.8) < 1e-3)
    _wait(lambda: abs(session.params()["dc"] + 0.8) < 1e-2)     # the learner chases the new value


def test_the_knob_bank_owns_the_values_the_window_midi_and_presets_read(session):
    """One value per knob, in the session's KnobBank: a slider turn (set_knob) lands there and is
    pushed to the kernel's goal and to the spec a preset is saved from; hidden() reads the bank."""
    session.set_knob("hidden:dc", 0.25)            # dc has no declared range: around 0.5 -> [-1, 1]
    assert session.knob_bank.value("hidden:dc") == -0.5
    assert session.hidden() == session.knob_bank.values("hidden:") == {"gain": 0.5, "dc": -0.5}
    slot = session.memory.active
    assert slot.hidden_goal[slot.learner.layout.hidden.index("dc")] == -0.5
    assert session.spec.hidden["dc"] == -0.5
    assert session.knobs()["hidden:dc"] == session.knob_bank.spec("hidden:dc")
    with pytest.raises(SessionError, match="no knob named 'hidden:nope'"):
        session.set_knob("hidden:nope", 0.5)


def test_a_spec_loaded_with_its_own_hidden_values_keeps_them(session):
    """Only knobs turned during the compile carry over: a preset's own values win otherwise."""
    session.start()
    session.set_hidden("dc", -0.8)
    session.load(CircuitSpec("y = gain*x + dc + 0*x@2", list(GAIN_DC.params), hidden={"gain": 0.5, "dc": 0.25},
                             settings=GAIN_DC.settings))
    assert session.hidden()["dc"] == 0.25 and session.spec.hidden["dc"] == 0.25


def test_a_new_spectral_range_while_running_is_swapped_in_not_written_live():
    """A bank's constants are hundreds of words: written from this thread while the callback runs,
    a block could run on half of them. Running, a new range asks for a rebuild (swapped in at a
    block boundary) and leaves the live bank as it is; stopped, it is written at once."""
    spec = CircuitSpec("y = osc(f)", [ParamSpec("f", 300.0, 50.0, 5000.0, log=True)], target="y = osc(ft)",
                       hidden={"ft": 500.0}, settings=Settings(loss="spectral"))
    with Session(48000, 256, device="virtual") as s:
        s.load(spec)
        s.start()
        _wait(lambda: s.counters()["callbacks"] > 10)
        before = s.learner.cfg.copy()
        with pytest.raises(RebuildNeeded, match="^a new spectral range starts the bank over") as e:
            s.configure(spectral_fmin=50.0)
        assert e.value.settings.spectral_fmin == 50.0 and s.learner.spectral_range == (25.0, 16000.0)
        assert np.array_equal(s.learner.cfg, before)
        s.configure(lr=0.02)                          # other settings still apply live
        s.load(CircuitSpec(**{**spec.__dict__, "settings": e.value.settings}))
        assert s.learner.spectral_range == (50.0, 16000.0)
        s.stop()
        s.configure(spectral_fmin=100.0)
        assert s.learner.spectral_range == (100.0, 16000.0)


def test_the_dropdowns_swap_specialised_kernels_at_a_block_boundary_with_no_gap():
    """Each loss, optimiser, range mode and window class has its own kernel: a change compiles
    it on the compile thread while the old one plays, then the callback takes it and its settings
    together at a block start. Every sample meanwhile is the learned circuit's, on a converged
    learner equal to the target: no silence, no block on half-written settings."""
    spec = CircuitSpec("y = gain*x + dc", [ParamSpec("gain", 0.0, -2, 2), ParamSpec("dc", 0.0)],
                       hidden={"gain": 0.5, "dc": 0.25}, settings=Settings(optimizer="sgd", lr=0.05))
    from engine import blockabi as B
    with Session(48000, 128, device="virtual") as s:
        s.load(spec)
        s.start()
        _wait(lambda: abs(s.params()["gain"] - 0.5) < 1e-9 and abs(s.params()["dc"] - 0.25) < 1e-9, 30.0)
        position, heard = int(s.memory.ring_index[H.R_SCOPE_HEAD]), []
        first = s.memory.active.table[B.S_BLOCK_FN]
        kernels = {first}
        for change in [dict(optimizer="adam", lr=1e-7), dict(loss="mae"), dict(window=8),
                       dict(optimizer="gauss-newton"), dict(range_mode="straight-through"),
                       dict(loss="mse", window=1), dict(optimizer="sgd", lr=0.05, range_mode="project")]:
            s.configure(**change).result(timeout=120)
            learner, table = s.learner, s.memory.active.table
            assert all(getattr(learner.settings, k) == v for k, v in change.items())
            assert table[B.S_BLOCK_FN] == learner.kernel(learner.settings).block_address and table[B.S_NEXT_FN] == 0
            kernels.add(table[B.S_BLOCK_FN])
            assert s.memory.ctl[H.C_KERNEL_ACK] == s.memory.ctl[H.C_KERNEL_REQ]
            blocks = s.counters()["callbacks"]
            _wait(lambda: s.counters()["callbacks"] >= blocks + 4)      # it plays on the new kernel
            data, position = s.telemetry.scope_since(position)         # every sample since the last
            heard.append(data)
        s.stop()
        assert s.memory.active.table[B.S_BLOCK_FN] == first   # the last change is the first variant again
    data = np.concatenate(heard)
    assert len(kernels) == 7                        # the first and one per change but the last
    assert data.shape[0] > 7 * 4 * 128
    target, learned = data[:, H.SC_TARGET], data[:, H.SC_LEARNED]
    # Adam's first steps are lr-sized whatever the gradient: 1e-7 keeps them far below a gap's error
    assert np.all(np.isfinite(learned)) and np.max(np.abs(learned - target)) < 1e-4
    assert np.mean(np.abs(target)) > 0.05            # it played: the source was not silent


def test_a_pause_asked_while_a_kernel_compiles_applies_at_once_and_stays():
    """A divergence pauses learning from the health watch: that must not wait for a kernel the
    user asked for a moment before. The playing kernel takes the pause at once; the new one
    arrives with it."""
    from engine import layout as LY
    with Session(48000, 128, device="virtual") as s:
        s.load(CircuitSpec("y = gain*x", [ParamSpec("gain", 0.0, -2, 2)], hidden={"gain": 0.5},
                           settings=Settings(optimizer="sgd", lr=0.01)))
        s.start()
        compiled = s.configure(optimizer="momentum", loss="huber")
        s.configure(learning=False)
        assert s.learner.cfg[LY.CF_LEARN] == 0.0 and s.settings.learning is False
        assert s.settings.optimizer == "momentum"                      # what was asked, shown and saved
        compiled.result(timeout=120)
        _wait(lambda: not s.settings_pending)
        got = s.learner.settings
        assert (got.optimizer, got.loss, got.learning) == ("momentum", "huber", False)
        assert s.learner.cfg[LY.CF_LEARN] == 0.0 and s.spec.settings.optimizer == "momentum"
