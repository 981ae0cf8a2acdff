"""Recordings and devices through the session and presets: `run --source DRY --target-file WET`
learns on the virtual clock; a device needs an audio interface (one line, exit 2); presets keep a
recording (relative paths, content hashes: a changed file is refused) and a device (channels and
the last latency)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from app.preset import document as presets
from app.recordings.hardware import DeviceSpec
from app.recordings.pair import RecordingSpec
from app.session import CircuitSpec, Session, SessionError
from engine.learn.learner import ParamSpec, Settings
from tests.paths import REPO

SHIPPED = REPO / "presets" / "recordings"
CIRCUIT = "c = exp(-2*pi*1000*cutoff_khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)"


def run(*args):
    return subprocess.run([sys.executable, "main.py", "run", "--headless", "--device", "virtual", "--quiet", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_run_learns_from_a_recording_pair_live():
    r = run("--source", str(SHIPPED / "drive-dry.wav"), "--target-file", str(SHIPPED / "drive-wet.wav"),
            "--align", "auto", "--seconds", "5", "--circuit", CIRCUIT, "--param", "cutoff_khz=5:0.02:20",
            "--param", "drive=1:0.1:10", "--optimizer", "adam", "--lr", "0.01")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    rec = res["recording"]
    assert rec["align"] == 96 and rec["seconds"] == 2.0 and rec["wet"].endswith("drive-wet.wav")
    assert abs(res["params"]["cutoff_khz"] - 1.2) < 1e-3 and abs(res["params"]["drive"] - 3.0) < 1e-3
    assert res["nonfinite_out"] == 0 and res["skipped"] == 0


def test_the_factory_recording_preset_runs():
    r = run("--preset", "recording-drive", "--seconds", "4")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["recording"]["align"] == 96
    assert abs(res["params"]["cutoff_khz"] - 1.2) < 1e-3 and abs(res["params"]["drive"] - 3.0) < 1e-3


@pytest.mark.parametrize("args, words", [
    (["--target-input", "1"], "needs an audio interface"),
    (["--target-input", "0"], "channels are numbered from 1"),
    (["--send-output", "2"], "--send-output needs --target-input"),
    (["--target-file", "x.wav"], "--target-file needs --source DRY"),
    (["--align", "5"], "--align is for a recording pair"),
])
def test_bad_ground_truth_flags_are_one_line(args, words):
    r = run("--seconds", "1", "--circuit", "y = g*x", "--param", "g=0", *args)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1], r.stderr


def test_a_device_cannot_be_measured_without_an_audio_interface():
    spec = CircuitSpec("y = g*x", [ParamSpec("g", 0.0)], target="y = device",
                       device=DeviceSpec(0, 1), settings=Settings())
    with Session(48000, 128, device="virtual") as s:
        s.load(spec)
        with pytest.raises(SessionError, match="start the audio first"):
            s.measure_latency()
        s.start()
        with pytest.raises(SessionError, match="needs an audio interface, but the audio runs on a virtual clock"):
            s.measure_latency()
        assert s.ground_truth()["kind"] == "device"


def _recording_preset(folder):
    for name in ("drive-dry.wav", "drive-wet.wav"):
        shutil.copy(SHIPPED / name, folder / name)
    preset = presets.load(REPO / "presets" / "recording-drive.json")
    preset.spec.recording = RecordingSpec(str(folder / "drive-dry.wav"), str(folder / "drive-wet.wav"), None,
                                          preset.spec.recording.dry_sha256, preset.spec.recording.wet_sha256)
    preset.spec.hidden["align"] = 90.0
    return preset


def test_a_recording_preset_round_trips_with_relative_paths(tmp_path):
    preset = _recording_preset(tmp_path)
    path = presets.save(preset, tmp_path / "mine.json")
    doc = json.loads(path.read_text())
    assert doc["recording"]["dry"] == "drive-dry.wav" and doc["recording"]["wet"] == "drive-wet.wav"
    assert doc["hidden"] == {"align": 90.0} and doc["device"] is None
    again = presets.load(path)
    assert again.spec.recording == preset.spec.recording and again.spec.hidden["align"] == 90.0
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    assert presets.load(moved / "mine.json").spec.recording.wet == str(moved / "drive-wet.wav")


def test_a_changed_recording_is_refused(tmp_path):
    path = presets.save(_recording_preset(tmp_path), tmp_path / "mine.json")
    import soundfile as sf
    y, rate = sf.read(tmp_path / "drive-wet.wav")
    sf.write(tmp_path / "drive-wet.wav", 0.5 * y, rate, subtype="FLOAT")
    (tmp_path / "drive-dry.wav").unlink()
    with pytest.raises(presets.PresetError) as e:
        presets.load(path)
    text = "\n".join(e.value.problems)
    assert "drive-wet.wav is not the wet recording this preset was saved with" in text
    assert "the dry file" in text and "No such file" in text


def test_a_session_refuses_a_changed_recording_too(tmp_path):
    preset = _recording_preset(tmp_path)
    preset.spec.recording.wet_sha256 = "0" * 64
    with Session(48000, 128, device="virtual") as s:
        with pytest.raises(SessionError, match="not the recording this was saved with"):
            s.load(preset.spec)


def test_a_device_preset_keeps_its_channels_and_last_latency(tmp_path):
    preset = presets.load(REPO / "presets" / "gain.json")
    spec = preset.spec
    spec.target, spec.hidden, spec.hidden_params = "y = device", {}, []
    preset.midi = {}
    spec.device = DeviceSpec(2, 3, 245, -1)
    path = presets.save(preset, tmp_path / "device.json")
    doc = json.loads(path.read_text())
    assert doc["device"] == {"return_channel": 3, "send_channel": 4, "latency": 245, "polarity": "inverted"}
    assert presets.load(path).spec.device == DeviceSpec(2, 3, 245, -1)
    doc["device"]["return_channel"] = 0
    doc["recording"] = {"dry": "a.wav"}
    with pytest.raises(presets.PresetError) as e:
        presets.parse_document(doc, str(path))
    text = "\n".join(e.value.problems)
    assert "device: return_channel must be a channel number from 1 to 64, got 0" in text
    assert "recording: wet must be a file path" in text
