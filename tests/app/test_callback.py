"""The audio callback's block pipeline, called through its C entry exactly as PortAudio calls it."""
import math
import mmap
import resource
import time

import numpy as np
import pytest

from app.host import layout as H
from app.host.memory import HostMemory
from app.host.telemetry import TelemetryReader
from engine import layout as LY
from engine.sources import LcgNoise
from tests.host_harness import Harness, make_learner

CEILING = 10 ** (-1 / 20)


def test_learning_in_the_callback_matches_offline_learning_bit_for_bit():
    live = make_learner(window=32, lr=0.01)
    h = Harness(live)
    h.run_many(300, 128)
    offline = make_learner(window=32, lr=0.01)
    offline.process(LcgNoise().read(300 * 128))
    assert live.params() == offline.params()
    assert live.samples == 300 * 128
    assert abs(live.params()["gain"] - 0.5) < 1e-3 and abs(live.params()["dc"] - 0.5) < 1e-3


@pytest.mark.parametrize("frames", [1, 17, 64, 100, 4096 + 5])
def test_any_block_schedule_gives_the_same_result(frames):
    total = 4096 * 3 + 5
    ref = make_learner(window=16, lr=0.01)
    Harness(ref).run(total)
    other = make_learner(window=16, lr=0.01)
    h = Harness(other)
    done = 0
    while done < total:
        n = min(frames, total - done)
        h.run(n)
        done += n
    np.testing.assert_array_equal(other.theta(), ref.theta())


def _sine_harness(mode, gain=0.5, learn_init=0.25):
    learner = make_learner("y = g*x", [("g", learn_init)], hidden={"g": 0.5}, learning=False)
    h = Harness(learner)
    h.ctl[H.C_SOURCE] = H.SOURCES["sine"]
    h.ctl[H.C_SOURCE_HZ] = 1000.0
    h.ctl[H.C_SOURCE_GAIN] = gain
    h.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES[mode]
    h.ctl[H.C_MODE_NOW] = H.OUTPUT_MODES[mode]
    h.ctl[H.C_DC_BLOCK] = 0.0        # these tests check the modes' arithmetic sample for sample
    return h


@pytest.mark.parametrize("mode,left,right", [("target", 0.5, 0.5), ("learned", 0.25, 0.25),
                                             ("stereo", 0.5, 0.25), ("error", 0.25, 0.25)])
def test_output_modes(mode, left, right):
    h = _sine_harness(mode)
    out = h.run(256)
    x = h.scope(256)[:, H.SC_SOURCE]
    np.testing.assert_array_equal(out[:, 0], (left * x).astype(np.float32))
    np.testing.assert_array_equal(out[:, 1], (right * x).astype(np.float32))


def test_switching_output_mode_crossfades_over_one_block():
    h = _sine_harness("target")
    h.run(128)
    h.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["learned"]
    out = h.run(128)
    x = h.scope(128)[:, H.SC_SOURCE]
    r = np.arange(1, 129) / 128
    np.testing.assert_allclose(out[:, 0], (r * 0.25 + (1 - r) * 0.5) * x, atol=1e-7)
    out = h.run(128)
    np.testing.assert_array_equal(out[:, 0], (0.25 * h.scope(128)[:, H.SC_SOURCE]).astype(np.float32))


def test_loss_output_is_a_tone_that_rises_with_the_loss():
    def zero_crossings(loss_hidden):
        learner = make_learner("y = g*x", [("g", 0.0)], hidden={"g": loss_hidden}, learning=False)
        h = Harness(learner)
        h.ctl[H.C_OUTPUT_MODE] = h.ctl[H.C_MODE_NOW] = H.OUTPUT_MODES["loss"]
        h.ctl[H.C_DC_BLOCK] = 0.0        # the tone's own level (the blocker overshoots it by 0.5 %)
        out = h.run_many(40, 128)[2000:, 0]
        assert np.max(np.abs(out)) <= 0.25 + 1e-6
        return np.count_nonzero(np.diff(np.signbit(out)))
    assert zero_crossings(1.0) > 4 * zero_crossings(1e-3)


def test_limiter_keeps_every_sample_below_the_ceiling_and_is_transparent_when_quiet():
    h = _sine_harness("target", gain=40.0)
    h.ctl[H.C_DC_BLOCK] = 0.0                # the limiter alone: bit-exact when quiet
    loud = h.run_many(20, 128)
    assert np.max(np.abs(loud)) <= np.float32(CEILING)
    assert h.ctl[H.C_LIMITED] > 0
    h.ctl[H.C_SOURCE_GAIN] = 0.5
    h.run_many(40, 128)                      # 50 ms release back to unity gain
    out = h.run(256)
    np.testing.assert_array_equal(out[:, 0], (0.5 * h.scope(256)[:, H.SC_SOURCE]).astype(np.float32))


def test_bad_input_never_reaches_the_output_or_the_parameters():
    learner = make_learner(window=8, lr=0.01)
    h = Harness(learner, n_in=1)
    h.ctl[H.C_SOURCE] = H.SOURCES["input"]
    rng = np.random.default_rng(1)
    injected = 0
    for b in range(200):
        x = rng.uniform(-1, 1, 128).astype(np.float32)
        if b % 3 == 0:
            bad = rng.choice(128, 5, replace=False)
            x[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30, -3e38], dtype=np.float32), 5)
            injected += 5
        out = h.run(128, x.reshape(128, 1))
        assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= np.float32(CEILING)
    assert h.ctl[H.C_BAD_INPUT] == injected
    assert learner.skipped == injected
    p = learner.params()
    assert all(math.isfinite(v) for v in p.values())
    assert abs(p["gain"] - 0.5) < 1e-2 and abs(p["dc"] - 0.5) < 1e-2


def test_a_circuit_that_overflows_is_reset_by_the_kernel_and_plays_silence():
    learner = make_learner("y = g*x", [("g", 1.0)], target="y = h*x*1e10", hidden={"h": 1e300},
                           learning=False)
    h = Harness(learner)
    h.ctl[H.C_OUTPUT_MODE] = h.ctl[H.C_MODE_NOW] = H.OUTPUT_MODES["target"]
    out = h.run_many(10, 128)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= np.float32(CEILING)
    assert np.count_nonzero(out[:, 0]) < 20        # finite-but-huge samples are limited, the rest silent
    assert learner.st[LY.ST_RESETS] > 1000


def test_the_safety_stage_turns_non_finite_output_into_silence_and_counts_it():
    h = _sine_harness("target")
    h.ctl[H.C_MASTER_GAIN] = math.inf         # the session refuses this; the callback must survive it
    out = h.run_many(4, 128)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= np.float32(CEILING)
    assert h.ctl[H.C_NONFINITE_OUT] > 0


def test_a_schedule_restart_request_sets_the_decaying_rate_back_at_a_block_boundary():
    learner = make_learner(window=1, lr=0.01, lr_decay=0.5, lr_decay_every=100)
    h = Harness(learner)
    h.run_many(10, 128)                         # 1280 learning steps: 12 decays, 80 steps into the 13th
    assert learner.st[LY.ST_SCHED] == 0.5 ** 12 and learner.st[LY.ST_SCHED_COUNT] == 80
    h.ctl[H.C_SCHEDULE_REQ] += 1
    h.run(64)                                   # taken before this block's 64 steps
    assert h.ctl[H.C_SCHEDULE_ACK] == h.ctl[H.C_SCHEDULE_REQ]
    assert learner.st[LY.ST_SCHED] == 1.0 and learner.st[LY.ST_SCHED_COUNT] == 64


def test_reset_request_restores_the_initial_values_at_a_block_boundary():
    learner = make_learner(window=8, lr=0.01)
    h = Harness(learner)
    h.run_many(50, 128)
    assert learner.params()["gain"] != 0.0
    h.ctl[H.C_RESET_REQ] += 1
    learner.cfg[LY.CF_LEARN] = 0.0            # learning off so the restored values stay put
    h.run(64)
    assert h.ctl[H.C_RESET_ACK] == h.ctl[H.C_RESET_REQ]
    assert learner.params() == {"gain": 0.0, "dc": 0.0}
    assert learner.samples == 64


def test_hidden_knobs_glide_to_their_new_value_without_steps():
    learner = make_learner(learning=False)
    h = Harness(learner)
    slot = h.mem.active
    k = learner.layout.hidden.index("gain")
    slot.hidden_goal[k] = 0.9
    seen = []
    for _ in range(200):
        h.run(128)
        seen.append(learner.cfg[learner.layout.cfg_hidden + k])
    assert np.all(np.diff(seen) >= 0) and seen[0] < 0.6
    assert seen[-1] == 0.9


def _knob_turn_heard(frames):
    """The target's output, sample by sample, after a hidden knob jumps from 0 to 1 (the target is
    the knob's value itself), played in blocks of `frames`."""
    learner = make_learner("y = c + 0*x", [("c", 0.0)], hidden={"c": 0.0}, learning=False)
    h = Harness(learner)
    h.run(frames)
    h.mem.active.hidden_goal[learner.layout.hidden.index("c")] = 1.0
    total = 4096
    for _ in range(total // frames):
        h.run(frames)
    return h.scope(total)[:, H.SC_TARGET]


def test_a_knob_glides_sample_by_sample_whatever_the_block_size():
    tau, sr = 0.02, 48000.0
    heard = {frames: _knob_turn_heard(frames) for frames in (128, 2048)}
    natural = 1.0 - math.exp(-1.0 / (tau * sr))        # the first step of a per-sample ramp
    for frames, y in heard.items():
        steps = np.diff(np.concatenate([[0.0], y]))
        assert np.max(np.abs(steps)) <= natural * 1.0001, frames      # no staircase
        assert y[-1] == pytest.approx(1.0 - math.exp(-4096 / (tau * sr)), rel=1e-9)
    np.testing.assert_allclose(heard[128], heard[2048], rtol=0, atol=1e-12)


def test_circuit_swap_crossfades_and_then_hands_over():
    h = Harness(make_learner())
    h.ctl[H.C_SOURCE_GAIN] = 0.5
    new = make_learner("y = tanh(a*x)", [("a", 1.0)], hidden={"a": 3.0})
    h.install(1, new)
    h.ctl[H.C_SWAP_REQ] += 1
    fade = int(h.ctl[H.C_FADE_LEN])
    out = h.run_many(fade // 128 + 2, 128)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= np.float32(CEILING)
    assert h.ctl[H.C_SWAP_ACK] == h.ctl[H.C_SWAP_REQ]
    assert h.ctl[H.C_ACTIVE_SLOT] == 1 and h.ctl[H.C_FADE_POS] == -1
    assert new.samples == (fade // 128 + 2) * 128


def test_xrun_status_flags_are_counted():
    h = Harness(make_learner())
    h.run(128, status=0)
    h.run(128, status=H.PA_OUTPUT_UNDERFLOW)
    h.run(128, status=16)                         # priming output is not an xrun
    h.run(128, status=H.PA_INPUT_OVERFLOW)
    assert h.ctl[H.C_XRUNS] == 2 and h.ctl[H.C_CALLBACKS] == 4


def test_telemetry_rows_carry_loss_and_parameters_and_a_full_ring_counts_drops():
    learner = make_learner(window=8, lr=0.01)
    h = Harness(learner, telemetry_rows=8)
    reader = TelemetryReader(h.mem, lambda: learner.param_names)
    for _ in range(5):
        h.run(128)
    rows = reader.drain()
    assert rows.shape[0] == 5 and list(rows[:, H.T_BLOCK]) == [0, 1, 2, 3, 4]
    snap = reader.decode(rows[-1])
    assert snap.params == learner.params() and snap.loss == learner.loss and snap.samples == 640
    assert snap.cpu_us > 0
    for _ in range(12):
        h.run(128)
    assert reader.drain().shape[0] == 8 and h.ctl[H.C_TEL_DROPPED] == 4
    assert reader.drain().shape[0] == 0


def test_midi_voice_event_starts_at_its_sample_offset():
    h = Harness(make_learner(learning=False))
    h.ctl[H.C_SOURCE] = H.SOURCES["midi"]
    h.run(128)
    assert np.all(h.scope(128)[:, H.SC_SOURCE] == 0.0)
    # an event that arrived half a block into the previous block plays half a block in
    row = h.mem.midi[0]
    row[H.M_TIME] = time.monotonic() - 128 / 48000 / 2
    row[H.M_KIND], row[H.M_A], row[H.M_B], row[H.M_C] = H.EV_VOICE, 440.0, 1.0, 1.0
    h.mem.ring_index[H.R_MIDI_HEAD] += 1
    h.run(128)
    x = h.scope(128)[:, H.SC_SOURCE]
    first = int(np.flatnonzero(x != 0.0)[0])
    assert 20 <= first <= 108                      # ~64, allowing for the clock between calls
    assert h.ctl[H.C_VOICE_FREQ] == 440.0 and h.ctl[H.C_MIDI_APPLIED] == 1
    x = h.run_many(40, 128)
    src = h.scope(40 * 128)[:, H.SC_SOURCE]
    spectrum = np.abs(np.fft.rfft(src * np.hanning(src.size)))
    peak_hz = np.argmax(spectrum) * 48000 / src.size
    assert abs(peak_hz - 440.0) < 10


@pytest.mark.parametrize("kind", ["lcg-noise", "noise", "sine", "saw"])
def test_generators_are_bounded_and_not_silent(kind):
    h = Harness(make_learner(learning=False))
    h.ctl[H.C_SOURCE] = H.SOURCES[kind]
    h.run_many(10, 128)
    x = h.scope(1280)[:, H.SC_SOURCE]
    assert np.all(np.abs(x) <= 1.0 + 1e-9) and np.std(x) > 0.2


def test_lcg_generator_is_diff_libs_sequence():
    h = Harness(make_learner(learning=False))
    h.run_many(3, 100)
    np.testing.assert_array_equal(h.scope(300)[:, H.SC_SOURCE], LcgNoise().read(300))


def test_a_silent_loss_never_leaves_subnormal_numbers_in_the_callback_state():
    learner = make_learner("y = g*x", [("g", 0.5)], hidden={"g": 0.5}, learning=False)
    h = Harness(learner)
    h.run_many(4000, 128)                     # ~10 s of audio with a loss of exactly 0
    level = h.ctl[H.C_SONIFY_LEVEL]
    assert level == 0.0 or abs(level) >= np.finfo(np.float64).tiny


def test_the_rings_are_resident_before_the_callback_first_writes_them():
    """A first-touch page fault inside the callback cost xruns in a stream's first seconds."""
    def faults():
        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt

    mem = HostMemory(48000.0, 1, 2)
    pages = (mem.scope.nbytes + mem.telemetry.nbytes) // 4096
    before = faults()
    mem.scope[:] = 1.0
    mem.telemetry[:] = 1.0
    assert faults() - before < pages // 10, f"{faults() - before} faults writing {pages} pages"
    fresh = np.frombuffer(mmap.mmap(-1, mem.scope.nbytes), dtype=np.float64)   # never touched
    before = faults()
    fresh[:] = 1.0
    assert faults() - before > (fresh.nbytes // 4096) // 2   # the witness sees first touches


@pytest.mark.parametrize("kind", ["lcg-noise", "sine", "file"])
def test_live_sources_are_the_offline_generators_sample_for_sample(kind):
    """One generator per source (engine/sources.py): what the callback feeds the learner live is
    what `learn --input` feeds it offline, over odd block sizes too."""
    from engine.sources import Looped, Sine
    h = Harness(make_learner(learning=False))
    h.ctl[H.C_SOURCE] = H.SOURCES[kind]
    h.ctl[H.C_SOURCE_HZ] = 441.0
    data = np.linspace(-0.9, 0.9, 1001)
    offline = {"lcg-noise": LcgNoise(), "sine": Sine(441.0, 48000.0), "file": Looped(data)}[kind]
    if kind == "file":
        h.mem.files[0] = data
        h.mem.table[H.H_FILE], h.mem.table[H.H_FILE_LEN] = data.ctypes.data, data.size
    for frames in (128, 37, 500, 1):
        h.run(frames)
    np.testing.assert_array_equal(h.scope(666)[:, H.SC_SOURCE], offline.read(666))


def test_making_memory_resident_keeps_the_values_and_copies_nothing():
    """resident() used to copy the whole array (a large circuit state needed twice its size)."""
    import tracemalloc
    from app.host.memory import resident
    a = np.zeros(8 * 2 ** 20)                        # 64 MB of calloc'd, untouched pages
    a[12345], a[-1] = 1.5, -2.0
    tracemalloc.start()
    resident(a)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 ** 20, f"{peak} bytes allocated"
    assert a[12345] == 1.5 and a[-1] == -2.0 and np.count_nonzero(a) == 2


def test_the_speakers_get_no_dc_but_the_learner_does():
    """gain+dc (hidden 0.5, 0.5) on lcg-noise sent a 0.5 offset to both speakers and held the
    limiter down on 479,989 of 480,000 samples: the speaker path blocks DC, the learner keeps it."""
    h = Harness(make_learner(learning=False))
    out = h.run_many(375, 128)                                   # 1 s
    tail = out[24000:]
    assert np.all(np.abs(tail.mean(axis=0)) < 1e-2)             # no offset on either channel
    assert abs(h.scope(24000)[:, H.SC_TARGET].mean() - 0.5) < 2e-2   # the learner's target keeps it
    assert h.ctl[H.C_LIMITED] <= 5                               # not limited all the time


def test_the_limited_counter_counts_onsets_not_samples():
    h = _sine_harness("target", gain=40.0)
    h.ctl[H.C_DC_BLOCK] = 0.0
    h.run_many(20, 128)                                          # 2560 samples, limited throughout
    assert h.ctl[H.C_LIMITED] == 1.0          # one onset: the gain never returns to 1 on a steady loud sine
