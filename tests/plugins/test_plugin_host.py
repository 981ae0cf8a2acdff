"""Plugins as processors: the callback's code path (run_as_target / run_as_insert, calling `run`
through its address from Numba) against the plugin called through ctypes; latency alignment;
learning a plugin's known setting; bad input kept out; one-line errors."""
import json

import numpy as np
import pytest
from numba import njit

from app.cli.main import main
from app.host.processors import PluginProcessor, run_as_insert, run_as_target
from app.host.processors.plugin import _read_mxcsr_or_zero, plugin_step
from app.plugins import registry
from app.truths import OfflineTruth, PluginTruth, open_plugin

LPF, AMP, LIMITER = "ladspa:lpf", "ladspa:amp_mono", "ladspa:fastLookaheadLimiter"
ONE_POLE = "c = exp(-2*pi*cutoff/SR)\ny = (1 - c)*x + c*y@1"


@pytest.fixture(autouse=True)
def _own_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path))      # probe results land here


def _noise(n, seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).uniform(-1.0, 1.0, n)


def _ctypes_render(plugin_id, controls, blocks, frames=256):
    """The plugin called from Python through ctypes, block by block (the reference)."""
    info = registry.find(plugin_id)
    inst = registry.instantiate(info, 48000, frames)
    for c, v in controls.items():
        inst.controls[[k.symbol for k in info.controls].index(c)] = v
    inst.activate()
    out = []
    for x in blocks:
        for ch in range(inst.audio_in.shape[0]):
            inst.audio_in[ch, :x.size] = x.astype(np.float32)
        inst.run(x.size)
        out.append(inst.audio_out[0, :x.size].astype(np.float64))
    inst.close()
    return np.concatenate(out)


LV2_LIMITER = "lv2:http://plugin.org.uk/swh-plugins/fastLookaheadLimiter"


@pytest.mark.parametrize("plugin_id,controls", [
    (LPF, {"cutoff_frequency_hz": 700.0}),
    (LIMITER, {"input_gain_db": 6.0, "limit_db": -3.0}),                  # a latency port
    ("lv2:http://plugin.org.uk/swh-plugins/amp", {"gain": -6.0}),
    ("lv2:http://drobilla.net/plugins/fomp/mvclpf1", {"res": 0.5}),       # a Moog ladder with CV ports
    (LV2_LIMITER, {"ingain": 6.0, "limit": -3.0})])                       # LV2 with a latency port
def test_the_callbacks_call_equals_a_ctypes_call_bit_for_bit(plugin_id, controls):
    blocks = [_noise(n, seed=k) for k, n in enumerate([256, 17, 1, 200, 256, 64])]
    expected = _ctypes_render(plugin_id, controls, blocks)
    truth = open_plugin(plugin_id, controls, 48000, 256)
    out = np.zeros((256, 3))
    got = []
    for x in blocks:
        run_as_target(truth.processor.table, x, out, x.size)
        got.append(out[:x.size, 0].copy())
    truth.close()
    np.testing.assert_array_equal(np.concatenate(got), expected)


def test_an_insert_replaces_the_buffer_with_the_plugins_output():
    truth = open_plugin(AMP, {"gain": 0.5}, 48000, 256)
    buf = _noise(256)
    expected = (buf.astype(np.float32) * np.float32(0.5)).astype(np.float64)
    run_as_insert(truth.processor.table, buf, 256)
    truth.close()
    np.testing.assert_array_equal(buf, expected)


def test_controls_glide_continuous_and_step_when_stepped():
    truth = open_plugin(LPF, {"cutoff_frequency_hz": 1000.0}, 48000, 256)
    p, port = truth.processor, truth.processor.instance.controls
    assert port[0] == 1000.0                          # the first block starts at the set value
    truth.set_control("cutoff_frequency_hz", 2000.0)
    p.latch_now()
    x, out = np.zeros(256), np.zeros((256, 3))
    seen = []
    for _ in range(12):
        run_as_target(p.table, x, out, 128)
        seen.append(float(port[0]))
    truth.close()
    # a one-pole glide over 20 ms: 128 samples of 960 move 1 - exp(-128/960) of the way each block
    a = 1 - np.exp(-128 / 960)
    expected = 2000 - 1000 * (1 - a) ** np.arange(1, 13)
    np.testing.assert_allclose(seen, expected, rtol=1e-5)
    assert 1000 < seen[0] < seen[-1] < 2000


def test_nan_input_reaches_the_plugin_as_zero_and_the_output_stays_finite():
    truth = open_plugin(LPF, {"cutoff_frequency_hz": 500.0}, 48000, 256)
    x = _noise(256)
    x[[3, 50, 51]] = [np.nan, np.inf, -np.inf]
    out = np.zeros((256, 3))
    run_as_target(truth.processor.table, x, out, 256)
    fed = truth.processor.instance.audio_in[0]
    assert np.all(fed[[3, 50, 51]] == 0.0) and np.all(np.isfinite(out[:, 0]))
    assert truth.processor.restarts == 0
    truth.close()


@njit
def _step_and_read_mxcsr(t, n):
    before = _read_mxcsr_or_zero()
    plugin_step(t, n)
    return before, _read_mxcsr_or_zero()


def test_flush_to_zero_is_set_only_around_the_plugin_call():
    truth = open_plugin(LPF, {}, 48000, 256)
    truth.processor.input[:256] = _noise(256)
    before, after = _step_and_read_mxcsr(truth.processor.table, 256)
    truth.close()
    assert before == after and before & 0x8040 == 0     # the caller's mode is restored


def test_the_learners_input_is_delayed_by_the_latency_the_plugin_reports():
    truth = OfflineTruth(open_plugin(LIMITER, {"input_gain_db": -12.0}, 48000, OfflineTruth.FRAMES))
    x = _noise(48000, scale=0.5)
    dry, target = truth.render(x)
    assert truth.latencies == {240}
    gain = np.float32(10 ** (-12 / 20))
    np.testing.assert_allclose(target[240:], dry[240:] * gain, atol=2e-7)
    np.testing.assert_array_equal(dry[240:], x[:-240])
    truth.close()


def _learn(capsys, *argv):
    assert main(["learn", "--quiet", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_learn_finds_the_one_pole_of_ladspa_lpf(capsys):
    res = _learn(capsys, "--plugin", LPF, "--hidden", "cutoff_frequency_hz=500", "--circuit", ONE_POLE,
                 "--param", "cutoff=2000:20:20000", "--optimizer", "adam", "--lr", "20", "--samples", "96000")
    # the plugin's pole a = c - sqrt(c^2 - 1), c = 2 - cos(2 pi 500 / SR), is a one-pole at:
    c = 2 - np.cos(2 * np.pi * 500 / 48000)
    pole = c - np.sqrt(c * c - 1)
    cutoff = -np.log(pole) * 48000 / (2 * np.pi)
    assert abs(res["params"]["cutoff"] - cutoff) < 0.01 * 1, (res, cutoff)
    assert res["plugin"]["controls"] == {"cutoff_frequency_hz": 500.0} and res["plugin"]["latency"] == 0


def test_learning_with_and_without_a_latency_reporting_plugin_in_front_gives_the_same_gain(capsys):
    common = ["--circuit", "y = g*x", "--param", "g=1:-4:4", "--optimizer", "adam", "--lr", "0.01",
              "--samples", "96000"]
    x = _noise(4096, scale=0.5)
    y = _ctypes_render(LIMITER, {"input_gain_db": -12.0}, [x], frames=4096)
    gain = float(np.median(y[240:] / x.astype(np.float32)[:-240]))   # swh's dB table: not exactly 10^(-12/20)
    assert abs(gain - 10 ** (-12 / 20)) < 1e-3
    aligned = _learn(capsys, "--plugin", LIMITER, "--hidden", "input_gain_db=-12", *common)
    direct = _learn(capsys, "--target", f"y = {gain!r}*x", *common)
    assert aligned["plugin"]["latency"] == 240
    assert abs(aligned["params"]["g"] - gain) < 1e-5
    assert abs(aligned["params"]["g"] - direct["params"]["g"]) < 1e-5


def test_against_a_plugin_the_learning_rate_decays_and_the_value_stays_put(capsys, tmp_path):
    """float32 output: with a constant rate Adam keeps taking full-size steps on the rounding
    noise; the default decay against a plugin makes the learned value settle."""
    args = ["--plugin", LPF, "--hidden", "cutoff_frequency_hz=800", "--circuit", ONE_POLE,
            "--param", "cutoff=3000:20:20000", "--optimizer", "adam", "--lr", "20", "--samples", "240000",
            "--trace-every", "480"]
    wander = {}
    for name, extra in (("decaying", []), ("constant", ["--lr-decay", "1"])):
        trace = tmp_path / f"{name}.csv"
        _learn(capsys, *args, *extra, "--trace", str(trace))
        rows = np.loadtxt(trace, delimiter=",", skiprows=1)
        late = rows[rows[:, 0] >= 144000, 2]              # the last two seconds
        wander[name] = float(np.ptp(late))
    assert wander["decaying"] < 0.05, wander
    assert wander["constant"] > 10 * wander["decaying"], wander


@pytest.mark.parametrize("argv,message", [
    (["--plugin", "ladspa:no_such_plugin"], "no plugin 'ladspa:no_such_plugin' is installed"),
    (["--plugin", "vst:thing"], "is not a plugin id"),
    (["--plugin", LPF, "--hidden", "cutoff_frequency_hz=90000"], "outside its range [0, 24000]"),
    (["--plugin", LPF, "--hidden", "resonance=1"], "no parameter"),
])
def test_bad_plugin_input_is_one_line_and_exit_2(capsys, argv, message):
    rc = main(["learn", "--quiet", "--circuit", "y = g*x", "--param", "g=0", "--samples", "100", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_a_plugin_truth_closes_its_instance_once():
    truth = open_plugin(AMP, {}, 48000, 64)
    assert isinstance(truth, PluginTruth) and truth.processor.instance.active
    truth.close()
    truth.close()
    assert not truth.processor.instance.active


def test_a_plugin_whose_output_goes_nan_is_silenced_counted_and_restarted_off_the_audio_thread(crash_plugins):
    truth = open_plugin(crash_plugins["nan"], {}, 48000, 64, probe=False)   # the probe would refuse it
    p = truth.processor
    p._closed.set()                               # no watcher: this test plays the main thread's part
    x, out = _noise(64), np.zeros((64, 3))
    run_as_target(p.table, x, out, 64)
    assert p.restarts == 1 and np.all(out[:, 0] == 0.0)
    runs = p.runs
    run_as_target(p.table, x, out, 64)            # pending restart: run is not called, silence
    assert p.runs == runs and p.restarts == 1 and np.all(out[:, 0] == 0.0)
    p.service()                                   # deactivate + activate, then the callback may call it again
    run_as_target(p.table, x, out, 64)
    assert p.runs == runs + 1 and p.restarts == 2 and np.all(out[:, 0] == 0.0)
    truth.close()


def test_a_plugin_that_crashes_in_the_probe_is_never_loaded(crash_plugins, capsys):
    rc = main(["learn", "--quiet", "--circuit", "y = g*x", "--param", "g=0", "--samples", "100",
               "--plugin", crash_plugins["crash"]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "ladspa:4242001" in err[0] and "crashed (SIGSEGV) when probed" in err[0], err


def test_a_stereo_plugins_chosen_channel_is_the_one_learned_and_heard():
    info = registry.find("ladspa:bwxover_iir")              # a crossover: low band left, high band right
    assert len(info.audio_inputs) == 1 and len(info.audio_outputs) == 2
    n = 256
    x = _noise(n)
    ref = registry.instantiate(info, 48000, n)
    ref.activate()
    ref.audio_in[0] = x.astype(np.float32)
    ref.run(n)
    left, right = ref.audio_out.astype(np.float64)
    ref.close()
    assert not np.array_equal(left, right)
    out = np.zeros((n, 3))
    for channel, expected in ((0, left), (1, right)):
        truth = open_plugin("ladspa:bwxover_iir", {}, 48000, n, channel=channel)
        run_as_target(truth.processor.table, x, out, n)
        truth.close()
        np.testing.assert_array_equal(out[:, 0], expected)
    with pytest.raises(Exception, match="has 2 output channel"):
        open_plugin("ladspa:bwxover_iir", {}, 48000, 256, channel=2)


def test_render_writes_the_plugins_output_aligned_with_its_input(tmp_path, capsys):
    x = _noise(10000, seed=3, scale=0.5)
    np.save(tmp_path / "in.npy", x)
    assert main(["render", "--quiet", "--plugin", LIMITER, "--hidden", "input_gain_db=-12",
                 "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    y = np.load(tmp_path / "out.npy")
    assert res["latency_samples"] == 240 and y.shape == x.shape
    expected = _ctypes_render(LIMITER, {"input_gain_db": -12.0}, [x, np.zeros(240)], frames=10240)
    np.testing.assert_array_equal(y, expected[240:240 + x.size])


def test_an_lv2_plugins_latency_is_aligned_as_a_ladspa_ones(capsys):
    common = ["--circuit", "y = g*x", "--param", "g=1:-4:4", "--optimizer", "adam", "--lr", "0.01",
              "--samples", "96000"]
    lv2 = _learn(capsys, "--plugin", LV2_LIMITER, "--hidden", "ingain=-12", *common)
    ladspa = _learn(capsys, "--plugin", LIMITER, "--hidden", "input_gain_db=-12", *common)
    assert lv2["plugin"]["latency"] == ladspa["plugin"]["latency"] == 240
    assert abs(lv2["params"]["g"] - ladspa["params"]["g"]) < 1e-6


def test_learn_finds_an_lv2_amplifiers_gain_in_db(capsys):
    res = _learn(capsys, "--plugin", "lv2:http://plugin.org.uk/swh-plugins/amp", "--hidden", "gain=-9.5",
                 "--circuit", "y = exp(db*log(10)/20)*x", "--param", "db=0:-40:40", "--optimizer", "adam",
                 "--lr", "0.5", "--samples", "96000")
    assert abs(res["params"]["db"] - (-9.5)) < 1e-4, res


def test_when_the_reported_latency_changes_the_learners_input_follows():
    """swh's Artificial latency reports its delay control as latency (and passes audio through)."""
    truth = open_plugin("ladspa:artificialLatency", {"delay_ms": 2.0}, 48000, 256)
    p = truth.processor
    out = np.zeros((256, 3))
    x = _noise(256 * 40, seed=7)
    run_as_target(p.table, x[:256], out, 256)
    assert p.latency == 96
    truth.set_control("delay_ms", 5.0)
    p.latch_now()
    k = 256
    while k < x.size:                               # the control glides; the latency follows it
        run_as_target(p.table, x[k:k + 256], out, 256)
        k += 256
    assert p.latency == 240
    np.testing.assert_array_equal(p.dry[:256], x[-256 - 240:-240])
    truth.close()
