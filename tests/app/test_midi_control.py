"""MidiControl: last-note priority, velocity, pitch bend, CC mappings and MIDI learn."""
import json

import pytest

from app.midi.control import MidiControl, note_frequency
from app.midi.parse import CC, NOTE_OFF, NOTE_ON, PITCH_BEND, PROGRAM, MidiMessage, encode


class RecordingSink:
    def __init__(self):
        self.voices = []
        self.knobs = []
        self.programs = []

    def voice(self, freq_hz, gate, amplitude, timestamp):
        self.voices.append((freq_hz, gate, amplitude, timestamp))

    def set_knob(self, name, fraction):
        self.knobs.append((name, fraction))

    def program_change(self, number):
        self.programs.append(number)


def on(note, vel=100, ch=0):
    return MidiMessage(NOTE_ON, ch, (note, vel))


def off(note, ch=0):
    return MidiMessage(NOTE_OFF, ch, (note, 0))


def cc(number, value, ch=0):
    return MidiMessage(CC, ch, (number, value))


def bend(value, ch=0):
    return MidiMessage(PITCH_BEND, ch, (value,))


@pytest.fixture
def sink():
    return RecordingSink()


@pytest.fixture
def control(sink):
    return MidiControl(sink)


def play(control, *messages):
    for t, msg in enumerate(messages):
        control.handle(msg, float(t))


def test_note_frequencies():
    assert note_frequency(69) == 440.0
    assert note_frequency(81) == 880.0
    assert note_frequency(57) == 220.0


def test_single_note_on_and_off(control, sink):
    play(control, on(69, 127), off(69))
    assert sink.voices == [(440.0, True, 1.0, 0.0), (440.0, False, 1.0, 1.0)]


def test_last_note_priority_returns_legato_to_held_note(control, sink):
    play(control, on(57, 127), on(69, 64), off(69), off(57))
    assert sink.voices == [
        (220.0, True, 1.0, 0.0),
        (440.0, True, 64 / 127, 1.0),
        (220.0, True, 64 / 127, 2.0),    # back to the held note, gate still on
        (220.0, False, 64 / 127, 3.0),   # last release: gate off, frequency kept
    ]


def test_releasing_a_note_under_the_top_changes_nothing(control, sink):
    play(control, on(57), on(69), off(57))
    assert len(sink.voices) == 2
    play(control, off(69))
    assert sink.voices[-1][:2] == (440.0, False)


def test_three_note_stack_skips_released_notes(control, sink):
    play(control, on(57), on(64), on(69), off(64), off(69))
    assert sink.voices[-1][:2] == (220.0, True)


def test_repressing_a_held_note_moves_it_to_the_top(control, sink):
    play(control, on(57), on(69), on(57), off(57))
    assert sink.voices[-1][:2] == (440.0, True)


def test_note_off_for_unknown_note_is_ignored(control, sink):
    play(control, off(60))
    assert sink.voices == []


def test_velocity_sets_amplitude_at_note_on(control, sink):
    play(control, on(60, 1), on(62, 127))
    assert [v[2] for v in sink.voices] == [1 / 127, 1.0]


@pytest.mark.parametrize("value, semitones", [(8192, 0.0), (16383, 2.0 * 8191 / 8192), (0, -2.0),
                                             (12288, 1.0), (4096, -1.0)])
def test_pitch_bend_frequency(sink, value, semitones):
    control = MidiControl(sink, bend_range=2.0)
    play(control, on(69), bend(value))
    assert sink.voices[-1][0] == pytest.approx(440.0 * 2 ** (semitones / 12), rel=1e-12)
    assert sink.voices[-1][1] is True


def test_pitch_bend_exact_values_with_wider_range(sink):
    control = MidiControl(sink, bend_range=24.0)
    play(control, on(69), bend(12288))
    assert sink.voices[-1][0] == 880.0
    play(control, bend(0))
    assert sink.voices[-1][0] == 110.0
    play(control, bend(8192))
    assert sink.voices[-1][0] == 440.0


def test_pitch_bend_before_note_applies_to_next_note(control, sink):
    play(control, bend(0))
    assert sink.voices == []
    play(control, on(69))
    assert sink.voices[-1][0] == pytest.approx(440.0 * 2 ** (-2 / 12))


def test_all_notes_off_and_all_sound_off(control, sink):
    for number in (123, 120):
        play(control, on(57), on(69), cc(number, 0))
        assert sink.voices[-1][:2] == (440.0, False)
        play(control, off(69))          # the stack is empty now: nothing to return to
        assert sink.voices[-1][:2] == (440.0, False)
    assert sink.knobs == []


def test_cc_mapping_sets_knob_fraction(control, sink):
    control.map_cc(74, "cutoff")
    play(control, cc(74, 127), cc(74, 0), cc(75, 50))
    assert sink.knobs == [("cutoff", 1.0), ("cutoff", 0.0)]


def test_a_knob_has_one_cc(control):
    control.map_cc(74, "cutoff")
    control.map_cc(71, "cutoff")
    control.map_cc(71, "drive")
    assert control.mappings == {71: "drive"}
    control.unmap_cc(71)
    control.unmap_cc(5)
    assert control.mappings == {}


def test_midi_learn_binds_next_cc(control, sink):
    control.map_cc(20, "drive")
    control.map_cc(21, "cutoff")
    control.learn("cutoff")
    assert control.learning == "cutoff"
    play(control, on(60), cc(20, 64))   # a note does not complete learning; any CC does
    assert control.learning is None
    assert control.mappings == {20: "cutoff"}   # CC 20 rebound, cutoff's old CC 21 released
    assert sink.knobs == [("cutoff", 64 / 127)]


def test_cancel_learn(control, sink):
    control.learn("cutoff")
    control.cancel_learn()
    play(control, cc(30, 10))
    assert control.learning is None and control.mappings == {} and sink.knobs == []


def test_learn_ignores_channel_mode_messages(control):
    control.learn("cutoff")
    play(control, cc(123, 0))
    assert control.learning == "cutoff"


def test_mappings_round_trip_through_json(control, sink):
    control.map_cc(1, "mod")
    control.map_cc(74, "cutoff")
    saved = json.loads(json.dumps(control.mappings))
    other = MidiControl(sink)
    other.load_mappings(saved)
    assert other.mappings == {1: "mod", 74: "cutoff"}


@pytest.mark.parametrize("bad", [{"x": "cutoff"}, {128: "cutoff"}, {120: "cutoff"}, {-1: "a"},
                                 {1: ""}, {1: 5}, {1: "a", 2: "a"}, {"1": "a", 1: "b"},
                                 {True: "a"}, ["not", "a", "dict"]])
def test_load_mappings_validates_and_keeps_old_ones(control, bad):
    control.map_cc(7, "volume")
    with pytest.raises(ValueError):
        control.load_mappings(bad)
    assert control.mappings == {7: "volume"}


def test_program_change(control, sink):
    play(control, MidiMessage(PROGRAM, 0, (5,)))
    assert sink.programs == [5]


def test_omni_listens_on_every_channel(control, sink):
    play(control, on(69, ch=0), on(57, ch=9))
    assert len(sink.voices) == 2


def test_channel_filter(sink):
    control = MidiControl(sink, channel=2)
    control.map_cc(74, "cutoff")
    play(control, on(69, ch=0), cc(74, 10, ch=1), MidiMessage(PROGRAM, 3, (1,)), on(57, ch=2))
    assert sink.voices == [(220.0, True, 100 / 127, 3.0)]
    assert sink.knobs == [] and sink.programs == []
    with pytest.raises(ValueError):
        MidiControl(sink, channel=16)


def test_feed_bytes_parses_a_raw_stream(control, sink):
    control.map_cc(74, "cutoff")
    control.feed_bytes(encode(on(69, 100)) + bytes([0xB0, 74]), 1.5)
    control.feed_bytes(bytes([127, 0xF8]), 2.5)
    assert sink.voices == [(440.0, True, 100 / 127, 1.5)]
    assert sink.knobs == [("cutoff", 1.0)]


def test_sink_errors_are_counted_not_raised():
    class BrokenSink(RecordingSink):
        def voice(self, *args):
            raise RuntimeError("synth exploded")

    sink = BrokenSink()
    control = MidiControl(sink)
    play(control, on(69), off(69), MidiMessage(PROGRAM, 0, (3,)))
    assert control.errors == 2
    assert control.last_error == "RuntimeError: synth exploded"
    assert sink.programs == [3]   # later messages still reach the sink
