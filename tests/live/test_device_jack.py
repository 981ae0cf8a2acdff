"""Hardware in the loop on the JACK dummy server: a second JACK client, in its own process, plays
"the device" (tests/live/loop_device.py: a one-pole at 1.2 kHz into tanh drive 3, with an extra
delay of its own). `run --headless --target-input 1 --send-output 2` sends the source to it,
measures the round trip with its test signal, and learns the device from its return; the audio
keeps its pace (tests/live/host_xruns.py)."""
import json
import os
import subprocess
import sys

from tests.live.host_xruns import run_live
from tests.live.loop_device import loop_device
from tests.live.test_live_jack import _with_one_retry
from tests.paths import REPO

CIRCUIT = "c = exp(-2*pi*1000*khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)"
BLOCK = 128


def _run(delay, seconds="10"):
    cmd = [sys.executable, os.path.join(str(REPO), "main.py"), "run", "--headless", "--seconds", seconds,
           "--target-input", "1", "--send-output", "2", "--source", "lcg-noise", "--circuit", CIRCUIT,
           "--param", "khz=5:0.02:20", "--param", "drive=1:0.1:10", "--optimizer", "adam", "--lr", "0.01",
           "--blocksize", str(BLOCK)]
    with loop_device(f"device-{os.getpid()}-{delay}", delay, khz=1.2, drive=3.0):
        return run_live(cmd)


def test_the_device_round_trip_is_measured_exactly_and_the_device_learned(jack_server):
    def check():
        r, res = _run(37)
        dev = res["hardware"]
        # JACK adds two periods around a loop through another client (as in our self-loopback,
        # tests/live/test_live_jack.py); the device adds its 37
        assert dev["latency"] == 37 + 2 * BLOCK, dev
        assert dev["polarity"] == "normal" and dev["confidence"] > 5
        assert dev["return_channel"] == 1 and dev["send_channel"] == 2
        assert "device: latency" in r.stderr
        p = res["params"]
        # the return crosses JACK as float32, as from an audio interface
        assert abs(p["khz"] - 1.2) < 2e-3 and abs(p["drive"] - 3.0) < 5e-3, p
    _with_one_retry(check)


def test_the_measured_latency_follows_the_devices_own_delay_sample_for_sample(jack_server):
    def check():
        _, short = _run(0, seconds="1")
        _, long = _run(293, seconds="1")
        assert long["hardware"]["latency"] - short["hardware"]["latency"] == 293
    _with_one_retry(check)


def _refused(post):
    cmd = [sys.executable, os.path.join(str(REPO), "main.py"), "run", "--headless", "--seconds", "1",
           "--target-input", "1", "--send-output", "2", "--circuit", CIRCUIT, "--param", "khz=5:0.02:20",
           "--param", "drive=1:0.1:10"]
    with loop_device(f"device-{os.getpid()}-post{post}", 10, khz=1.2, drive=3.0, post=post):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_silent_or_clipping_device_is_refused_before_learning(jack_server):
    for post, words in ((0.0, "the input channel returned silence"), (4.0, "the return clips")):
        r = _refused(post)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: --target-input 1: ") and words in last, r.stderr


def test_an_inverting_device_is_measured_and_reported(jack_server):
    cmd = [sys.executable, os.path.join(str(REPO), "main.py"), "run", "--headless", "--seconds", "1",
           "--target-input", "1", "--send-output", "2", "--circuit", CIRCUIT, "--param", "khz=5:0.02:20",
           "--param", "drive=1:0.1:10", "--quiet"]
    with loop_device(f"device-{os.getpid()}-inverted", 10, khz=1.2, drive=3.0, post=-1.0):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["hardware"]["polarity"] == "inverted" and res["hardware"]["latency"] == 10 + 2 * BLOCK
