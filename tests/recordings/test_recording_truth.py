"""A recording pair as the ground truth: reading the files (channels, rates, lengths), and the
recording processor playing dry and wet in sample lock through the callback's own code."""
import numpy as np
import pytest
import soundfile as sf

from app.recordings.pair import Recording, RecordingError, load_pair, read_channel
from app.truths import OfflineTruth, RecordingTruth


def _write(path, data, rate=48000):
    sf.write(str(path), data, rate, subtype="FLOAT")
    return str(path)


def _truth(n=1000, align=0):
    dry = np.arange(n, dtype=float)
    return RecordingTruth(Recording(dry, 10.0 * dry, 48000.0, 48000, "d", "w"), align, 4096)


@pytest.mark.parametrize("align", [0, 3, -2, 117])
def test_dry_and_wet_play_in_lock_over_their_aligned_overlap(align):
    truth = _truth(1000, align)
    dry, wet = OfflineTruth(truth).render(np.zeros(2500))       # x is ignored: the files play
    span = 1000 - abs(align)
    k = np.arange(2500) % span
    np.testing.assert_array_equal(dry, k + max(-align, 0))
    np.testing.assert_array_equal(wet, 10.0 * (k + max(align, 0)))
    np.testing.assert_array_equal(wet, 10.0 * (dry + align))     # wet[n + align] pairs with dry[n]


def test_the_alignment_knob_takes_effect_at_the_next_block():
    truth = _truth(1000, 0)
    offline = OfflineTruth(truth)
    offline.render(np.zeros(100))
    truth.set_control("align", 5)
    dry, wet = offline.render(np.zeros(10))
    assert dry[0] == 100.0 and wet[0] == 1000.0                   # not yet latched: a block start ...
    truth.processor.latch_now()                                   # ... which the callback supplies
    dry, wet = offline.render(np.zeros(10))
    np.testing.assert_array_equal(wet, 10.0 * (dry + 5))
    assert truth.align == 5 and truth.specs["align"].kind == "integer"


def test_a_mono_file_is_read_and_a_multichannel_one_needs_a_channel(tmp_path):
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (800, 2))
    path = _write(tmp_path / "st.wav", stereo)
    with pytest.raises(RecordingError, match="has 2 channels: pick one with --channel K"):
        read_channel(path)
    left, rate = read_channel(path, 1)
    np.testing.assert_allclose(left, stereo[:, 0].astype(np.float32))
    right, _ = read_channel(path, 2)
    np.testing.assert_allclose(right, stereo[:, 1].astype(np.float32))
    mix, _ = read_channel(path, "mix")
    np.testing.assert_allclose(mix, stereo.astype(np.float32).astype(np.float64).mean(axis=1))
    with pytest.raises(RecordingError, match="has 2 channel\\(s\\): there is no channel 3"):
        read_channel(path, 3)
    assert rate == 48000


def test_pairs_that_do_not_belong_together_are_refused(tmp_path):
    x = np.random.default_rng(4).uniform(-0.5, 0.5, 4800)
    dry = _write(tmp_path / "dry.wav", x)
    with pytest.raises(RecordingError, match="the dry file is 48000 Hz but the wet file is 44100 Hz"):
        load_pair(dry, _write(tmp_path / "w44.wav", x, 44100))
    longer = _write(tmp_path / "long.wav", np.concatenate([x, np.zeros(300)]))
    with pytest.raises(RecordingError, match="differ by 300, more than the alignment allows \\(100\\)"):
        load_pair(dry, longer, tolerance=100)
    pair = load_pair(dry, longer, tolerance=300)                 # the device's tail: cut
    assert pair.dry.size == pair.wet.size == 4800
    bad = _write(tmp_path / "nan.wav", np.where(np.arange(4800) == 7, np.nan, x))
    with pytest.raises(RecordingError, match="NaN or infinite"):
        load_pair(dry, bad)
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    with pytest.raises(RecordingError, match="cannot read audio file .*junk.wav"):
        load_pair(dry, str(tmp_path / "junk.wav"))


def test_both_files_are_resampled_alike_so_they_stay_in_lock(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.5, 0.5, 44100)
    dry = _write(tmp_path / "dry.wav", x, 44100)
    wet = _write(tmp_path / "wet.wav", 0.5 * x, 44100)
    pair = load_pair(dry, wet, rate=48000.0)
    assert pair.rate == 48000.0 and pair.file_rate == 44100 and pair.dry.size == 48000
    np.testing.assert_allclose(pair.wet, 0.5 * pair.dry, atol=1e-7)


def test_offline_renders_report_where_the_loop_starts_over():
    offline = OfflineTruth(_truth(1000, 3))                        # an overlap of 997 samples
    offline.render(np.zeros(1500))
    assert offline.seams == [997]
    offline.render(np.zeros(1000))
    assert offline.seams == [494]
    offline.render(np.zeros(300))
    assert offline.seams == []


def test_at_a_seam_the_learners_circuits_restart_from_rest_in_the_callback():
    """Learning off, a circuit with memory: after the loop starts over the learner's output is
    exactly what it was the first time through (the state was not carried across the seam),
    whatever the block size."""
    from app.host import layout as H
    from app.host.memory import Slot
    from engine.learn.learner import Learner, ParamSpec, Settings
    from tests.host_harness import Harness
    rng = np.random.default_rng(8)
    dry = rng.uniform(-0.5, 0.5, 1000)
    for frames in (128, 100, 1000, 37):
        h = Harness()
        learner = Learner("y = (1 - a)*x + a*y@1", [ParamSpec("a", 0.99, 0.0, 0.999)], target="y = recording",
                          settings=Settings(learning=False))
        truth = RecordingTruth(Recording(dry, 0.5 * dry, 48000.0, 48000, "d", "w"), 0, h.mem.max_frames)
        h.mem.install(0, Slot(learner, h.mem.x, h.mem.max_frames, truth=truth))
        h.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES["learned"]
        for _ in range(-(-2500 // frames)):
            h.run(frames)
        head = int(h.mem.ring_index[H.R_SCOPE_HEAD])
        learned = h.mem.scope[np.arange(head) % h.mem.scope.shape[0], H.SC_LEARNED]
        np.testing.assert_array_equal(learned[1000:2000], learned[:1000])
        np.testing.assert_array_equal(learned[2000:2500], learned[:500])
        assert learned[999] != 0.0 and abs(learned[1000]) < abs(learned[999])   # from rest, not carried
