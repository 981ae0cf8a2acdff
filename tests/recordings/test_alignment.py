"""Alignment by GCC-PHAT: exact integer lags through filters, drive, noise and inversion; the
refusals (ambiguous, silent, non-finite); the round trip through hardware (silence, clipping,
an echo beyond the range); the ESR and the report picture."""
import builtins

import numpy as np
import pytest
from scipy.signal import lfilter

from app.recordings.align import AlignmentError, estimate_lag, measure_round_trip, probe_signal
from app.recordings.metrics import esr
from app.recordings.report import ReportError, write_report

RATE = 48000
RNG = np.random.default_rng(11)
NOISE = 0.4 * RNG.uniform(-1, 1, 72000)


def late(y, d):
    return np.concatenate([np.zeros(d), y])[:y.size]


def one_pole(x, a=0.9):
    return lfilter([1 - a], [1, -a], x)


def drive(x):
    return np.tanh(2.5 * one_pole(x))


DEVICES = {
    "wire": lambda x: x,
    "one-pole": one_pole,
    "resonant biquad": lambda x: lfilter([0.02, 0.04, 0.02], [1, -1.8, 0.9], x),
    "one-pole into tanh": drive,
    "tanh with noise at -30 dB": lambda x: drive(x) + 0.03 * RNG.standard_normal(x.size),
}


@pytest.mark.parametrize("delay", [0, 1, 37, 245, 4800])
@pytest.mark.parametrize("device", DEVICES)
def test_the_lag_is_exact_through_filters_and_drive(device, delay):
    found = estimate_lag(NOISE, late(DEVICES[device](NOISE), delay), max_lag=24000)
    assert found.lag == delay and found.polarity == 1 and found.confidence > 5


def test_an_inverting_device_keeps_its_lag_and_says_so():
    found = estimate_lag(NOISE, -late(drive(NOISE), 245), max_lag=24000)
    assert (found.lag, found.polarity) == (245, -1)
    assert found.describe(RATE) .endswith("polarity inverted") and "245 samples (5.10 ms)" in found.describe(RATE)


def test_a_sweep_excerpt_and_a_slightly_shorter_wet_file():
    sweep = probe_signal(RATE, seconds=2.0)
    found = estimate_lag(sweep, late(drive(sweep), 300)[:-7], max_lag=4800)
    assert found.lag == 300


def test_a_wet_signal_ahead_of_the_dry_gives_a_negative_lag():
    assert estimate_lag(late(NOISE, 50), drive(NOISE), max_lag=1000).lag == -50


@pytest.mark.parametrize("hz", [50.0, 441.0, 1000.0])
def test_a_sine_is_ambiguous(hz):
    t = np.arange(RATE) / RATE
    with pytest.raises(AlignmentError, match="the alignment is ambiguous: lags .* give --align N"):
        estimate_lag(0.5 * np.sin(2 * np.pi * hz * t), 0.5 * np.sin(2 * np.pi * hz * (t - 37 / RATE)), 24000)


def test_silence_short_and_non_finite_signals_are_refused():
    with pytest.raises(AlignmentError, match="the dry signal is silent"):
        estimate_lag(np.zeros(5000), NOISE[:5000], 100)
    with pytest.raises(AlignmentError, match="the wet signal is silent"):
        estimate_lag(NOISE[:5000], np.zeros(5000), 100)
    with pytest.raises(AlignmentError, match="too short"):
        estimate_lag(NOISE[:500], NOISE[:500], 100)
    with pytest.raises(AlignmentError, match="NaN or infinite"):
        estimate_lag(np.where(np.arange(5000) == 9, np.nan, NOISE[:5000]), NOISE[:5000], 100)


def test_a_ten_minute_recording_is_aligned_from_its_loudest_stretch():
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.4, 0.4, RATE * 600).astype(np.float32).astype(np.float64)
    x[: RATE * 300] *= 0.01                     # the quiet first half is not where it looks
    assert estimate_lag(x, late(drive(x), 777), max_lag=24000).lag == 777


def _probe(max_latency=24000):
    s = probe_signal(RATE)
    return np.concatenate([s, np.zeros(2 * max_latency)])


@pytest.mark.parametrize("delay", [0, 293, 23999])
def test_the_round_trip_through_a_device_is_exact(delay):
    sent = _probe()
    back = late(np.tanh(2.0 * one_pole(sent)), delay) + 1e-4 * RNG.standard_normal(sent.size)
    found = measure_round_trip(sent, back, RATE, 24000)
    assert found.lag == delay and found.polarity == 1
    assert measure_round_trip(sent, -back, RATE, 24000).polarity == -1


def test_bad_returns_are_refused_in_one_line():
    sent = _probe()
    back = late(np.tanh(2.0 * one_pole(sent)), 293)
    cases = [(np.zeros(sent.size), "returned silence"),
             (np.clip(4.0 * back, -1.0, 1.0), "the return clips"),
             (late(np.tanh(2.0 * one_pole(sent)), 30000), "no echo of the test signal within 500 ms"),
             (1e-3 * RNG.standard_normal(sent.size), "no echo of the test signal within 500 ms")]
    for returned, words in cases:
        with pytest.raises(AlignmentError, match=words) as e:
            measure_round_trip(sent, returned, RATE, 24000)
        assert "\n" not in str(e.value)


def test_the_probe_signal_sweeps_the_band_at_its_level():
    s = probe_signal(RATE, seconds=0.5, level=0.5)
    assert s.size == RATE // 2 and abs(np.max(np.abs(s)) - 0.5) < 1e-3
    assert s[0] == 0.0 and abs(s[-1]) < 1e-3                      # faded in and out
    spectrum = np.abs(np.fft.rfft(s))
    f = np.fft.rfftfreq(s.size, 1 / RATE)
    band = spectrum[(f > 100) & (f < 20000)]
    assert band.min() > 0.05 * band.max()                          # every band excited


def test_esr():
    t = np.array([1.0, -1.0, 2.0, 0.0])
    assert esr(t, t) == 0.0
    assert esr(t, np.zeros(4)) == 1.0
    assert esr(t, 0.5 * t) == pytest.approx(0.25)
    assert esr(t, [1.0, -1.0, 2.0, np.nan]) == 0.0                 # the non-finite pair is left out
    assert np.isnan(esr(np.zeros(3), [1.0, 2.0, 3.0]))


def test_the_report_is_a_png(tmp_path):
    path = tmp_path / "r.png"
    write_report(str(path), drive(NOISE[:9600]), 0.9 * drive(NOISE[:9600]), RATE, "a test", {"drive": 2.5})
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    with pytest.raises(ReportError, match="cannot write it"):
        write_report(str(tmp_path / "no" / "r.png"), NOISE[:4800], NOISE[:4800], RATE, "x")


def test_without_matplotlib_the_report_says_how_to_get_it(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ReportError, match=r"--report needs matplotlib: pip install 'dualtone\[report\]'"):
        write_report(str(tmp_path / "r.png"), NOISE[:4800], NOISE[:4800], RATE, "x")
