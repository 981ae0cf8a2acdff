"""MIDI over a real JACK server (the dummy one `./dev test` starts): bytes sent from an rtmidi
output reach MidiInput and drive MidiControl."""
import os
import threading
import time

import pytest
import rtmidi

from app.midi.control import MidiControl
from app.midi.ports import MidiInput, MidiUnavailable, list_output_ports, list_ports

TIMEOUT = 5.0
NOTE_ON_69 = bytes([0x90, 69, 100])
CC_74 = bytes([0xB0, 74, 127])


@pytest.fixture
def jack_env(jack_server, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server)
    return jack_server


def connection_settles():
    """JACK makes a new connection live at a later cycle's start: an event sent before then is
    dropped, so the tests wait a few 128-frame cycles after connecting before they send."""
    time.sleep(0.05)


def unique(label):
    # Other test processes may share the server; unique names keep the ports apart.
    return f"dtmidi-{label}-{os.getpid()}"


class Received:
    def __init__(self, control=None):
        self.lock = threading.Lock()
        self.chunks = []
        self.control = control

    def __call__(self, data, timestamp):
        with self.lock:
            self.chunks.append(data)
        if self.control is not None:
            self.control.feed_bytes(data, timestamp)

    def wait_for(self, expected):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                if b"".join(self.chunks) == expected:
                    return
            time.sleep(0.01)
        with self.lock:
            assert b"".join(self.chunks) == expected


class RecordingSink:
    def __init__(self):
        self.voices = []
        self.knobs = []

    def voice(self, freq_hz, gate, amplitude, timestamp):
        self.voices.append((freq_hz, gate, amplitude, timestamp))

    def set_knob(self, name, fraction):
        self.knobs.append((name, fraction))

    def program_change(self, number):
        pass


@pytest.fixture
def midi_out(jack_env):
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=unique("sender"))
    yield out
    out.close_port()
    out.delete()


def test_loopback_drives_midi_control(jack_env, midi_out):
    sink = RecordingSink()
    control = MidiControl(sink)
    control.map_cc(74, "cutoff")
    received = Received(control)
    name = unique("in")
    with MidiInput(received, api=rtmidi.API_UNIX_JACK, virtual_name=name) as midi_in:
        ports = midi_out.get_ports()
        matches = [i for i, p in enumerate(ports) if p.endswith(":" + name)]
        assert len(matches) == 1, ports
        assert any(p.endswith(":" + name) for p in list_output_ports(rtmidi.API_UNIX_JACK))
        midi_out.open_port(matches[0])
        connection_settles()
        midi_out.send_message(NOTE_ON_69)
        midi_out.send_message(CC_74)
        received.wait_for(NOTE_ON_69 + CC_74)
        assert midi_in.errors == 0
    assert not midi_in.is_open
    assert len(sink.voices) == 1
    freq, gate, amplitude, timestamp = sink.voices[0]
    assert (freq, gate, amplitude) == (440.0, True, 100 / 127)
    assert isinstance(timestamp, float)
    assert sink.knobs == [("cutoff", 1.0)]
    assert control.errors == 0


def test_connect_to_an_existing_source(jack_env, midi_out):
    source = unique("source")
    midi_out.open_virtual_port(source)
    assert any(source in p for p in list_ports(rtmidi.API_UNIX_JACK))
    received = Received()
    sysex = bytes([0xF0, 0x7D, 1, 2, 3, 0xF7])
    with MidiInput(received, api=rtmidi.API_UNIX_JACK, virtual_name=unique("in2"),
                   connect=source) as midi_in:
        assert midi_in.connected_to.endswith(":" + source)
        connection_settles()
        midi_out.send_message(NOTE_ON_69)
        midi_out.send_message(sysex)
        received.wait_for(NOTE_ON_69 + sysex)


def test_connect_to_a_missing_port_lists_the_available_ones(jack_env):
    with pytest.raises(ValueError, match="no-such-port.*available"):
        MidiInput(lambda data, t: None, api=rtmidi.API_UNIX_JACK, connect="no-such-port")


def test_consumer_errors_do_not_stop_input(jack_env, midi_out):
    calls = []

    def flaky(data, timestamp):
        calls.append(data)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    name = unique("in3")
    with MidiInput(flaky, api=rtmidi.API_UNIX_JACK, virtual_name=name) as midi_in:
        midi_out.open_port([p.endswith(":" + name) for p in midi_out.get_ports()].index(True))
        connection_settles()
        midi_out.send_message(NOTE_ON_69)
        midi_out.send_message(CC_74)
        deadline = time.monotonic() + TIMEOUT
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == [NOTE_ON_69, CC_74]
        assert midi_in.errors == 1 and midi_in.last_error == "RuntimeError: consumer bug"
        midi_in.close()
        midi_in.close()


def test_no_server_gives_midi_unavailable(jack_env, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", unique("no-such-server"))
    with pytest.raises(MidiUnavailable, match="JACK server"):
        MidiInput(lambda data, t: None, api=rtmidi.API_UNIX_JACK)
    with pytest.raises(MidiUnavailable):
        list_ports(rtmidi.API_UNIX_JACK)
