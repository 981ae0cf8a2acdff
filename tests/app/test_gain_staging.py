"""Gain staging: an output volume and mute (session, `run --volume`, presets) on the speaker path
only — the learner hears the same thing at any volume."""
import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest

from app.host import layout as H
from app.preset import document as presets
from app.session import Session, SessionError, Settings
from tests.app.test_cli import assert_one_line_error
from tests.app.test_presets import good_doc, problems_of
from tests.app.test_session import GAIN_DC, _wait
from tests.paths import REPO


def _speaker_peak(s: Session, seconds: float = 0.3) -> float:
    s.telemetry.drain()
    t0 = s.counters()["callbacks"]
    _wait(lambda: s.counters()["callbacks"] > t0 + int(seconds * 48000 / 256))
    return float(np.max(np.abs(s.telemetry.scope(4096, [H.SC_OUT_LEFT]))))


def test_volume_scales_the_speakers_only_and_mute_silences_them():
    with Session(48000, 256, device="virtual") as s:
        s.load(GAIN_DC)
        s.set_output("target")
        s.start()
        loud = _speaker_peak(s)
        s.set_volume_db(-20.0)
        assert s.volume_db == pytest.approx(-20.0)
        quiet = _speaker_peak(s)
        assert quiet == pytest.approx(0.1 * loud, rel=0.15)
        s.set_mute(True)
        assert s.muted and _speaker_peak(s) < 1e-6          # the DC blocker's tail, then silence
        s.set_mute(False)
        learned_loud = s.params()
        assert abs(learned_loud["gain"] - 0.5) < 0.05          # learning never heard the volume
        with pytest.raises(SessionError, match="from -60 to \\+12 dB, got 30"):
            s.set_volume_db(30.0)


def test_volume_and_mute_round_trip_through_a_preset_and_are_checked():
    doc = good_doc()
    doc["audio"].update(volume_db=-12.5, mute=True)
    p = presets.parse_document(doc)
    assert (p.volume_db, p.mute) == (-12.5, True)
    back = presets.parse_document(presets.to_json(p))
    assert (back.volume_db, back.mute) == (-12.5, True)
    doc["audio"].update(volume_db=40, mute="yes")
    problems = problems_of(doc)
    assert "audio: volume_db must be from -60 to 12 dB, got 40" in problems
    assert "audio: mute must be true or false, got 'yes'" in problems


def test_run_volume_out_of_range_is_one_line_before_anything_plays():
    r = subprocess.run([sys.executable, "main.py", "run", "--headless", "--preset", "gain+dc",
                        "--seconds", "0.2", "--device", "virtual", "--volume", "30"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert_one_line_error(r, "--volume", "from -60 to +12 dB")


def test_the_volume_and_mute_are_midi_knobs_and_a_preset_may_map_them():
    with Session(48000, 256, device="virtual") as s:
        s.load(GAIN_DC)
        assert {"volume", "mute"} <= set(s.knobs())
        s.set_knob("volume", 0.5)                    # half way along -60 ... +12 dB
        assert s.volume_db == pytest.approx(-24.0)
        s.set_knob("mute", 1.0)
        assert s.muted
        s.set_knob("mute", 0.2)
        assert not s.muted
    doc = good_doc()
    doc["midi"]["mappings"] = {"7": "volume", "8": "mute"}
    assert presets.parse_document(doc).midi == {7: "volume", 8: "mute"}


LOUD = dataclasses.replace(GAIN_DC, hidden={"gain": 2.0, "dc": 0.0},
                           settings=Settings(optimizer="sgd", window=32, lr=0.01, learning=False))


def test_the_limiter_counts_time_in_gain_reduction_and_starts_over_with_each_circuit():
    with Session(48000, 256, device="virtual") as s:
        s.load(LOUD)
        s.set_source("sine", hz=220.0)
        s.set_output("target")
        s.start()
        _wait(lambda: s.counters()["frames"] > 24000)
        loud = s.limiter()
        # a steady sine at twice full scale: one onset, then held down all the time, about 7 dB
        assert loud["onsets"] == 1 and loud["fraction"] > 0.95 and loud["samples"] > 20000
        assert 5.0 < loud["reduction_db"] < 8.0
        assert s.counters()["limited_samples"] == loud["samples"]
        s.load(dataclasses.replace(LOUD, hidden={"gain": 0.1, "dc": 0.0}))
        start = s.counters()["frames"]
        _wait(lambda: s.counters()["frames"] > start + 48000)
        quiet = s.limiter()
        assert quiet["onsets"] == 0 and quiet["reduction_db"] == 0.0
        assert quiet["fraction"] < 0.1            # only the release after the switch was counted
        s.restart_limiter_count()
        assert s.limiter() == {"onsets": 0, "samples": 0, "fraction": 0.0, "reduction_db": 0.0}


def test_the_source_level_scales_what_the_circuits_hear_and_round_trips_through_a_preset():
    with Session(48000, 256, device="virtual") as s:
        s.load(dataclasses.replace(GAIN_DC, settings=Settings(optimizer="sgd", window=32, lr=0.01, learning=False)))
        s.set_source("sine", hz=220.0)
        s.start()
        _wait(lambda: s.counters()["callbacks"] > 40)
        full = float(np.max(np.abs(s.telemetry.scope(4096, [H.SC_SOURCE]))))
        s.set_source_level_db(-20.0)
        assert s.source_level_db == pytest.approx(-20.0)
        t0 = s.counters()["callbacks"]
        _wait(lambda: s.counters()["callbacks"] > t0 + 40)
        quiet = float(np.max(np.abs(s.telemetry.scope(4096, [H.SC_SOURCE]))))
        assert full == pytest.approx(1.0, abs=0.01) and quiet == pytest.approx(0.1, abs=0.005)
        s.set_knob("source_level", 1.0)                    # a MIDI knob too: the top is +6 dB
        assert s.source_level_db == pytest.approx(6.0)
        with pytest.raises(SessionError, match="from -40 to \\+6 dB, got -50"):
            s.set_source_level_db(-50.0)
    doc = good_doc()
    doc["audio"]["source_db"] = -13.0
    assert presets.parse_document(presets.to_json(presets.parse_document(doc))).source_db == -13.0
    doc["audio"]["source_db"] = 20
    assert "audio: source_db must be from -40 to 6 dB, got 20" in problems_of(doc)


def test_run_source_level_out_of_range_is_one_line_before_anything_plays():
    r = subprocess.run([sys.executable, "main.py", "run", "--headless", "--preset", "gain+dc",
                        "--seconds", "0.2", "--device", "virtual", "--source-level", "-90"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert_one_line_error(r, "--source-level", "from -40 to +6 dB")
