"""A real LADSPA plugin as the ground truth on the JACK dummy server: `run --headless --plugin`
learns its setting live, the callback calls the plugin itself, and the audio keeps its pace."""
import os
import sys

import numpy as np

from tests.live.host_xruns import run_live
from tests.live.test_live_jack import _with_one_retry
from tests.paths import REPO


def test_run_learns_a_plugins_cutoff_live(jack_server, tmp_path):
    cmd = [sys.executable, os.path.join(str(REPO), "main.py"), "run", "--headless", "--seconds", "10",
           "--plugin", "ladspa:lpf", "--hidden", "cutoff_frequency_hz=500",
           "--circuit", "c = exp(-2*pi*cutoff/SR)\ny = (1 - c)*x + c*y@1", "--param", "cutoff=2000:20:20000",
           "--optimizer", "adam", "--lr", "20", "--source", "lcg-noise",
           "--insert-plugin", "ladspa:amp_mono", "--insert-control", "gain=0.5"]
    env = dict(os.environ, DUALTONE_CONFIG_DIR=str(tmp_path))

    def check():
        _, res = run_live(cmd, env)
        c = 2 - np.cos(2 * np.pi * 500 / 48000)             # the plugin's pole, as a one-pole cutoff
        cutoff = -np.log(c - np.sqrt(c * c - 1)) * 48000 / (2 * np.pi)
        assert abs(res["params"]["cutoff"] - cutoff) < 0.05, res["params"]
        assert res["plugin"]["id"] == "ladspa:1041" and res["plugin"]["restarts"] == 0
        assert res["insert"]["plugin"] == "ladspa:1048" and res["insert"]["controls"] == {"gain": 0.5}
    _with_one_retry(check)
