"""`main.py run` and `main.py devices` as a user runs them (subprocesses, JACK server up)."""
import json
import os
import subprocess
import sys
from tests.paths import REPO

REPO = str(REPO)
BASE = ["--circuit", "y = gain*x + dc", "--param", "gain=0", "--param", "dc=0",
        "--hidden", "gain=0.5", "--hidden", "dc=0.5", "--window", "32", "--lr", "0.01"]


def main_py(*args, timeout=120):
    return subprocess.run([sys.executable, os.path.join(REPO, "main.py"), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_run_on_the_virtual_clock_reports_the_contract_json(jack_server):
    r = main_py("run", "--headless", "--seconds", "1.5", "--device", "virtual", "--source", "sine:440",
                "--output", "error", *BASE)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("callbacks", "expected_callbacks", "xruns", "callback_us_median", "callback_us_p99",
                "loss", "params", "skipped", "device"):
        assert key in res
    assert res["device"].startswith("virtual clock")
    assert "virtual clock" in r.stderr
    assert 0.8 * res["expected_callbacks"] <= res["callbacks"] <= 1.1 * res["expected_callbacks"]
    assert set(res["params"]) == {"gain", "dc"}


def test_run_errors_are_one_line_with_exit_code_2(jack_server):
    cases = [(["run", "--seconds", "1", *BASE], "add --headless"),
             (["run", "--headless", "--seconds", "1", "--source", "nowhere.wav", *BASE], "no such file"),
             (["run", "--headless", "--seconds", "1", "--device", "no-such-card", *BASE], "no-such-card"),
             (["run", "--headless", "--seconds", "0", *BASE], "positive"),
             (["run", "--headless", "--seconds", "1", "--source", "sine:99999", *BASE], "between 0 and"),
             (["run", "--headless", "--seconds", "1", "--circuit", "y = g*x +", "--param", "g=0"], "line 1")]
    for args, message in cases:
        r = main_py(*args)
        assert r.returncode == 2, (args, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if "error:" in ln]
        assert len(lines) == 1 and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_devices_lists_audio_devices_and_midi_ports(jack_server):
    r = main_py("devices")
    assert r.returncode == 0, r.stderr
    assert "JACK Audio Connection Kit" in r.stdout and "MIDI inputs:" in r.stdout
    j = json.loads(main_py("devices", "--json").stdout)
    assert any(d["host_api"] == "JACK Audio Connection Kit" and d["outputs"] >= 2 for d in j["audio"])
    assert isinstance(j["midi_inputs"], list) and isinstance(j["midi_outputs"], list)
