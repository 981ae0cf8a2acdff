"""A recording pair as the ground truth, live on the JACK dummy server: `run --headless --source
DRY --target-file WET --align auto` plays both files in sample lock and learns the circuit that
made the wet file, while the audio keeps its pace."""
import os
import sys

from tests.live.host_xruns import run_live
from tests.live.test_live_jack import _with_one_retry
from tests.paths import REPO

PAIR = REPO / "presets" / "recordings"


def test_run_learns_a_recording_pair_live(jack_server):
    cmd = [sys.executable, os.path.join(str(REPO), "main.py"), "run", "--headless", "--seconds", "8",
           "--source", str(PAIR / "drive-dry.wav"), "--target-file", str(PAIR / "drive-wet.wav"), "--align", "auto",
           "--circuit", "c = exp(-2*pi*1000*khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)",
           "--param", "khz=5:0.02:20", "--param", "drive=1:0.1:10", "--optimizer", "adam", "--lr", "0.01",
           "--output", "target"]

    def check():
        r, res = run_live(cmd)
        assert "alignment: latency 96 samples (2.00 ms)" in r.stderr
        assert res["recording"]["align"] == 96 and res["recording"]["restarts"] == 0
        assert abs(res["params"]["khz"] - 1.2) < 1e-3 and abs(res["params"]["drive"] - 3.0) < 1e-3, res["params"]
    _with_one_retry(check)
