"""The command line, consistent and fast to fail: one `error:` line for argparse's errors too, with
a suggestion for a mistyped flag; --optimiser as --optimizer; negative lists without `=`;
propose-banks' --count; files, devices, MIDI ports and --hidden ranges refused before anything compiles;
Ctrl-C on learn still prints what was learned."""
import json
import signal
import subprocess
import sys
import time

import pytest

from app.cli.main import join_negative_values, main
from tests.app.test_cli import GAIN, assert_one_line_error, learn, learn_ok, result_of
from tests.paths import REPO


def test_a_mistyped_flag_is_one_line_with_the_nearest_flag():
    r = learn(*GAIN, "--samples", "10", "--optimser", "adam")
    assert_one_line_error(r, "unrecognized arguments: --optimser", "did you mean --optimiser?")


def test_optimiser_is_the_same_flag_as_optimizer():
    a = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--samples", "2000", "--optimiser", "adam", "--lr", "0.01"))
    b = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--samples", "2000", "--optimizer", "adam", "--lr", "0.01"))
    c = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--samples", "2000", "--lr", "0.01"))
    assert a["params"] == b["params"] != c["params"]          # adam, not the default sgd


def test_a_negative_list_needs_no_equals_sign():
    assert join_negative_values(["learn", "--banks", "-1,0,1", "--lr", "0.1", "--quiet"]) == \
        ["learn", "--banks=-1,0,1", "--lr", "0.1", "--quiet"]
    assert join_negative_values(["--banks=-1,0,1", "--hidden", "g=-1"]) == ["--banks=-1,0,1", "--hidden", "g=-1"]
    r = learn("--circuit", "y = a*x", "--param", "a=0:-2:2", "--hidden", "a=1", "--banks", "-1,0,1",
              "--condition", "input", "--samples", "4800", "--quiet")
    assert r.returncode == 0, r.stderr
    assert [b["range"] for b in result_of(r)["banks"]] == [[-1.0, 0.0], [0.0, 1.0]]


def test_a_hidden_value_outside_its_declared_range_is_refused_with_the_range():
    r = learn(*GAIN, "--hidden", "g=5", "--samples", "10")
    assert_one_line_error(r, "--hidden g=5 is outside g's range -1 … 1")


def test_propose_banks_counts_with_count_and_still_takes_the_old_spelling_with_a_note():
    args = [sys.executable, "main.py", "propose-banks", "--target", "y = tanh(2*x) if x > 0.3 else 0.5*x",
            "--condition", "input", "--samples", "24000", "--quiet"]
    new = subprocess.run(args + ["--count", "2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    old = subprocess.run(args + ["--banks", "2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert new.returncode == old.returncode == 0, new.stderr + old.stderr
    assert json.loads(new.stdout)["boundaries"] == json.loads(old.stdout)["boundaries"]
    assert len(json.loads(new.stdout)["boundaries"]) == 3
    assert new.stderr == "" and "note: --banks K is now --count K" in old.stderr


def _run_fails_fast(capsys, monkeypatch, *args):
    """run with these flags must fail before compiling: Session.load would raise if reached."""
    from app.session import Session

    def no_compile(*a, **k):
        raise AssertionError("compiled before refusing the command line")
    monkeypatch.setattr(Session, "load", no_compile)
    rc = main(["run", "--headless", "--preset", "gain+dc", "--seconds", "0.2", *args])
    return rc, capsys.readouterr().err


def test_run_refuses_a_missing_source_file_before_compiling(capsys, monkeypatch):
    rc, err = _run_fails_fast(capsys, monkeypatch, "--device", "virtual", "--source", "nope.wav")
    assert rc == 2 and err.startswith("error: --source nope.wav: no such file") and err.count("\n") == 1


def test_run_refuses_an_unknown_device_before_compiling(capsys, monkeypatch):
    rc, err = _run_fails_fast(capsys, monkeypatch, "--device", "Focusrite Scarlett 99i99")
    assert rc == 2 and err.startswith("error: --device Focusrite Scarlett 99i99: no audio output device matches")


KEYS = ["Midi Through:Midi Through Port-0 14:0", "KeyStep 37:KeyStep 37 MIDI 1 20:0"]


def test_run_refuses_an_unknown_midi_port_before_compiling_and_lists_the_ports(capsys, monkeypatch):
    from app.midi import ports
    monkeypatch.setattr(ports, "list_ports", lambda api=None: list(KEYS))
    rc, err = _run_fails_fast(capsys, monkeypatch, "--device", "virtual", "--midi-connect", "Oxygen")
    assert rc == 2 and err == ("error: --midi-connect Oxygen: no MIDI input port name contains 'Oxygen'; "
                               f"available: {KEYS[0]!r}, {KEYS[1]!r}\n")
    monkeypatch.setattr(ports, "list_ports", lambda api=None: [])
    rc, err = _run_fails_fast(capsys, monkeypatch, "--device", "virtual", "--midi-connect", "Oxygen")
    assert rc == 2 and err == "error: --midi-connect Oxygen: no MIDI input port name contains 'Oxygen'; none are available\n"

    def no_midi(api=None):
        raise ports.MidiUnavailable("cannot open MIDI via JACK server 'default': JACK server not running?")
    monkeypatch.setattr(ports, "list_ports", no_midi)
    rc, err = _run_fails_fast(capsys, monkeypatch, "--device", "virtual", "--midi-connect", "KeyStep")
    assert rc == 2 and err.startswith("error: --midi-connect KeyStep: cannot open MIDI") and err.count("\n") == 1


def test_run_lets_a_midi_port_that_exists_through_to_the_compile(capsys, monkeypatch):
    from app.midi import ports
    monkeypatch.setattr(ports, "list_ports", lambda api=None: list(KEYS))
    with pytest.raises(AssertionError, match="compiled before refusing"):     # the check passed
        _run_fails_fast(capsys, monkeypatch, "--device", "virtual", "--midi-connect", "KeyStep")


def test_ctrl_c_on_learn_prints_what_was_learned_so_far():
    p = subprocess.Popen([sys.executable, "main.py", "learn", *GAIN, "--hidden", "g=0.5", "--lr", "0.01",
                          "--samples", "100000000000"], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stderr.read(1) != ""                # the progress bar: compiled, and learning
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["interrupted"] is True and res["samples"] > 0
    assert abs(res["params"]["g"] - 0.5) < 1e-6
