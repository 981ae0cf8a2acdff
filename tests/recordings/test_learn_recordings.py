"""`learn --input DRY --target-file WET`: a circuit learned from a recording pair made by a known
circuit (rendered through `render --circuit`) and delayed by a known latency, which --align auto
recovers exactly; batches of pairs; the ESR and the report; every refusal one line, exit 2."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.app.test_cli import assert_one_line_error
from tests.paths import REPO

DEVICE = "c = exp(-2*pi*1000*khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)"
LEARN = ["--circuit", DEVICE, "--param", "khz=5:0.02:20", "--param", "drive=1:0.1:10",
         "--optimizer", "adam", "--lr", "0.01", "--quiet"]


def main(*args):
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def result_of(r):
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def make_pair(folder, name, khz, drive, delay, seconds=1.5, seed=0, rate=48000):  # noqa: PLR0913
    """dry: seeded noise; wet: the device circuit rendered by `render --circuit`, then `delay`
    samples late (a device's latency)."""
    dry = str(folder / f"{name}-dry.wav")
    x = 0.4 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * rate))
    sf.write(dry, x, rate, subtype="FLOAT")
    rendered = str(folder / f"{name}-rendered.wav")
    result_of(main("render", "--quiet", "--circuit", DEVICE, "--hidden", f"khz={khz}", "--hidden",
                   f"drive={drive}", "--input", dry, "--output", rendered))
    y, _ = sf.read(rendered)
    wet = str(folder / f"{name}-wet.wav")
    sf.write(wet, np.concatenate([np.zeros(delay), y])[:y.size], rate, subtype="FLOAT")
    return dry, wet


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_pair(tmp_path_factory.mktemp("pair"), "a", 0.8, 2.5, 245)


# the pair (72000 samples, 71755 once aligned) loops; end between two seams, where the learner's
# circuit state, carried across, meets the recording starting again from rest
SAMPLES = str(4 * 71755 + 36000)


def test_align_auto_finds_the_delay_and_the_values_are_learned(pair, tmp_path):
    dry, wet = pair
    png = str(tmp_path / "report.png")
    res = result_of(main("learn", "--input", dry, "--target-file", wet, "--align", "auto",
                         "--samples", SAMPLES, "--report", png, *LEARN))
    assert res["align"] == 245 and res["align_confidence"] > 2.0
    assert "polarity_inverted" not in res
    assert abs(res["params"]["khz"] - 0.8) < 1e-4 and abs(res["params"]["drive"] - 2.5) < 1e-4
    assert res["esr"] < 1e-8                   # the frozen learned circuit over the whole pair
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_wrong_alignment_learns_worse_and_the_esr_says_so(pair):
    dry, wet = pair
    right = result_of(main("learn", "--input", dry, "--target-file", wet, "--align", "245",
                           "--samples", "144000", *LEARN))
    wrong = result_of(main("learn", "--input", dry, "--target-file", wet, "--align", "0",
                           "--samples", "144000", *LEARN))
    assert right["align"] == 245 and wrong["align"] == 0 and "align_confidence" not in right
    assert right["esr"] < 1e-6 and wrong["esr"] > 1000 * right["esr"]


def test_any_target_text_may_read_the_recording(pair):
    dry, wet = pair
    res = result_of(main("learn", "--input", dry, "--target-file", wet, "--align", "245",
                         "--target", "y = recording - 0.1*x", "--samples", SAMPLES,
                         "--circuit", DEVICE.replace("y = tanh(drive*v)", "y = tanh(drive*v) - k*x"),
                         "--param", "khz=5:0.02:20", "--param", "drive=1:0.1:10", "--param", "k=0:-1:1",
                         "--optimizer", "adam", "--lr", "0.01", "--quiet"))
    p = res["params"]
    assert abs(p["k"] - 0.1) < 1e-3 and abs(p["khz"] - 0.8) < 1e-3 and abs(p["drive"] - 2.5) < 1e-3


def test_batches_of_pairs_each_with_its_own_alignment(tmp_path):
    a = make_pair(tmp_path, "a", 1.5, 2.0, 17, seconds=1.0, seed=1)
    b = make_pair(tmp_path, "b", 1.5, 2.0, 300, seconds=1.2, seed=2)
    res = result_of(main("learn", "--input", a[0], "--target-file", a[1], "--input", b[0],
                         "--target-file", b[1], "--align", "auto", "--samples", "192000", *LEARN))
    assert res["streams"] == 2 and res["align"] == [17, 300]
    assert abs(res["params"]["khz"] - 1.5) < 1e-3 and abs(res["params"]["drive"] - 2.0) < 1e-3
    assert len(res["esr"]) == 2 and max(res["esr"]) < 1e-6


def test_an_inverting_device_is_learned_and_reported(tmp_path):
    dry, wet = make_pair(tmp_path, "inv", 0.8, 2.5, 64, seconds=1.0, seed=3)
    y, rate = sf.read(wet)
    sf.write(wet, -y, rate, subtype="FLOAT")
    res = result_of(main("learn", "--input", dry, "--target-file", wet, "--align", "auto",
                         "--target", "y = -recording", "--samples", "96000", *LEARN))
    assert res["align"] == 64 and res["polarity_inverted"] is True


def test_bad_pairs_are_refused_in_one_line(pair, tmp_path):
    dry, wet = pair
    x, _ = sf.read(dry)
    stereo = str(tmp_path / "stereo.wav")
    sf.write(stereo, np.stack([x, x], axis=1), 48000, subtype="FLOAT")
    assert_one_line_error(main("learn", "--input", stereo, "--target-file", wet, "--samples", "100", *LEARN),
            "has 2 channels", "--channel")
    other_rate = str(tmp_path / "w44.wav")
    sf.write(other_rate, x, 44100, subtype="FLOAT")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", other_rate, "--samples", "100", *LEARN),
            "48000 Hz", "44100 Hz")
    short = str(tmp_path / "short.wav")
    sf.write(short, x[:-1000], 48000, subtype="FLOAT")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", short, "--align", "10", "--samples", "100", *LEARN),
            "differ by 1000")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", wet, "--target-file", wet, "--samples", "100", *LEARN),
            "--target-file is given 2 time(s) and --input 1")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", wet, "--target", "y = 2*x", "--samples", "100", *LEARN),
            "does not read 'recording'")
    assert_one_line_error(main("learn", "--input", dry, "--align", "3", "--samples", "100", *LEARN), "--target-file")
    assert_one_line_error(main("learn", "--target", "y = recording", "--samples", "100", *LEARN), "--target-file WET")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", wet, "--align", "soon", "--samples", "100", *LEARN),
            "--align soon")


def test_an_ambiguous_alignment_is_refused(tmp_path):
    rate = 48000
    t = np.arange(rate) / rate
    dry = str(tmp_path / "sine.wav")
    sf.write(dry, 0.5 * np.sin(2 * np.pi * 441 * t), rate, subtype="FLOAT")
    wet = str(tmp_path / "sine-wet.wav")
    sf.write(wet, 0.5 * np.sin(2 * np.pi * 441 * (t - 37 / rate)), rate, subtype="FLOAT")
    assert_one_line_error(main("learn", "--input", dry, "--target-file", wet, "--align", "auto", "--samples", "100", *LEARN),
            "--align auto", "ambiguous")
