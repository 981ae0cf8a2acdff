"""The raw-byte MIDI parser: round trips through running status, interleaved real-time bytes and
arbitrary fragmentation; malformed input is dropped and counted, never raised."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.midi.parse import (CC, NOTE_OFF, NOTE_ON, PITCH_BEND, POLY_AFTERTOUCH, PROGRAM, REALTIME,
                            SYSEX, SYSTEM_COMMON, CHANNEL_AFTERTOUCH, MidiMessage, MidiParser,
                            encode)

data_byte = st.integers(0, 127)
channel = st.integers(0, 15)
REALTIME_BYTES = [0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF]


def _two(kind, low=0):
    return st.builds(lambda c, a, b: MidiMessage(kind, c, (a, b)), channel, data_byte,
                     st.integers(low, 127))


def _one(kind):
    return st.builds(lambda c, a: MidiMessage(kind, c, (a,)), channel, data_byte)


channel_message = st.one_of(
    _two(NOTE_ON, low=1),   # velocity 0 would come back as note_off
    _two(NOTE_OFF), _two(POLY_AFTERTOUCH), _two(CC), _one(PROGRAM), _one(CHANNEL_AFTERTOUCH),
    st.builds(lambda c, v: MidiMessage(PITCH_BEND, c, (v,)), channel, st.integers(0, 16383)),
)
system_message = st.one_of(
    st.builds(lambda p: MidiMessage(SYSEX, -1, tuple(p)), st.lists(data_byte, max_size=20)),
    st.builds(lambda d: MidiMessage(SYSTEM_COMMON, -1, (0xF1, d)), data_byte),
    st.builds(lambda a, b: MidiMessage(SYSTEM_COMMON, -1, (0xF2, a, b)), data_byte, data_byte),
    st.builds(lambda d: MidiMessage(SYSTEM_COMMON, -1, (0xF3, d)), data_byte),
    st.just(MidiMessage(SYSTEM_COMMON, -1, (0xF6,))),
)
# Weighted towards channel messages so running status is exercised often.
any_message = st.one_of(channel_message, channel_message, channel_message, system_message)


def encode_running_status(messages):
    """Encode a message list omitting repeated channel status bytes, as a sender may."""
    out = bytearray()
    running = None
    for msg in messages:
        raw = encode(msg)
        if raw[0] < 0xF0:
            if raw[0] == running:
                raw = raw[1:]
            running = raw[0] if raw[0] >= 0x80 else running
        else:
            running = None   # sysex and system common cancel running status
        out += raw
    return bytes(out)


def feed_in_pieces(parser, data, cuts):
    out = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += parser.feed(data[start:cut])
        start = cut
    return out


@st.composite
def stream_with_realtime(draw):
    messages = draw(st.lists(any_message, max_size=30))
    stream = bytearray(encode_running_status(messages))
    inserted = draw(st.lists(st.tuples(st.integers(0, len(stream)), st.sampled_from(REALTIME_BYTES)),
                             max_size=10))
    # Insert from the back so earlier positions stay valid.
    for pos, byte in sorted(inserted, key=lambda t: t[0], reverse=True):
        stream.insert(pos, byte)
    realtime = [b for b in stream if b >= 0xF8]
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=8))
    return messages, realtime, bytes(stream), cuts


@settings(max_examples=400, deadline=None)
@given(stream_with_realtime())
def test_round_trip_with_running_status_realtime_and_fragments(case):
    messages, realtime, stream, cuts = case
    parser = MidiParser()
    out = feed_in_pieces(parser, stream, cuts)
    assert [m for m in out if m.kind != REALTIME] == messages
    assert [m.data[0] for m in out if m.kind == REALTIME] == realtime
    assert (parser.garbage, parser.truncated, parser.overflowed) == (0, 0, 0)
    assert parser.messages == len(out)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(-300, 600), max_size=200), st.lists(st.integers(0, 200), max_size=8))
def test_garbage_never_raises_and_counters_add_up(values, cuts):
    whole = MidiParser()
    out_whole = whole.feed(values)
    pieces = MidiParser()
    out_pieces = feed_in_pieces(pieces, values, [c for c in cuts if c <= len(values)])
    # Fragmentation changes nothing, neither the messages nor the counters.
    assert out_pieces == out_whole
    counters = lambda p: (p.garbage, p.truncated, p.overflowed, p.messages)  # noqa: E731
    assert counters(pieces) == counters(whole)
    assert whole.messages == len(out_whole)
    # Each counted event owns at least one distinct input value.
    assert whole.garbage + whole.truncated + whole.overflowed + whole.messages <= len(values)
    out_of_range = sum(1 for v in values if not 0 <= v <= 255)
    undefined = sum(1 for v in values if v in (0xF4, 0xF5, 0xF9, 0xFD))
    assert whole.garbage >= out_of_range + undefined
    assert sum(m.kind == REALTIME for m in out_whole) == sum(v in REALTIME_BYTES for v in values)
    # Whatever comes out is well-formed: it encodes and parses back to itself.
    for msg in out_whole:
        assert MidiParser().feed(encode(msg)) == [msg]


def test_note_on_with_velocity_zero_is_note_off():
    assert MidiParser().feed(bytes([0x93, 60, 0])) == [MidiMessage(NOTE_OFF, 3, (60, 0))]


def test_note_on_velocity_zero_under_running_status():
    out = MidiParser().feed(bytes([0x90, 60, 100, 60, 0, 62, 90]))
    assert [m.kind for m in out] == [NOTE_ON, NOTE_OFF, NOTE_ON]


def test_truncated_message_followed_by_new_status():
    parser = MidiParser()
    out = parser.feed(bytes([0x90, 60, 0xB1, 7, 100]))
    assert out == [MidiMessage(CC, 1, (7, 100))]
    assert parser.truncated == 1 and parser.garbage == 0


def test_status_byte_alone_then_another_status_counts_as_truncated():
    parser = MidiParser()
    assert parser.feed(bytes([0x90, 0x80, 60, 0])) == [MidiMessage(NOTE_OFF, 0, (60, 0))]
    assert parser.truncated == 1


def test_sysex_interrupted_by_status_byte():
    parser = MidiParser()
    out = parser.feed(bytes([0xF0, 1, 2, 3, 0x92, 64, 127]))
    assert out == [MidiMessage(NOTE_ON, 2, (64, 127))]
    assert parser.truncated == 1


def test_sysex_with_realtime_inside():
    out = MidiParser().feed(bytes([0xF0, 0x7E, 0xF8, 0x09, 0xF7]))
    assert out == [MidiMessage(REALTIME, -1, (0xF8,)), MidiMessage(SYSEX, -1, (0x7E, 0x09))]


def test_sysex_over_the_limit_is_dropped_and_counted():
    parser = MidiParser(sysex_limit=4)
    out = parser.feed(bytes([0xF0, 1, 2, 3, 4, 5, 0xF7, 0xF0, 1, 2, 3, 4, 0xF7]))
    assert out == [MidiMessage(SYSEX, -1, (1, 2, 3, 4))]
    assert parser.overflowed == 1


def test_stray_data_bytes_are_dropped():
    parser = MidiParser()
    assert parser.feed(bytes([1, 2, 3, 0xC0, 5])) == [MidiMessage(PROGRAM, 0, (5,))]
    assert parser.garbage == 3


def test_system_common_cancels_running_status():
    parser = MidiParser()
    out = parser.feed(bytes([0x90, 60, 100, 0xF6, 62, 100]))
    assert out == [MidiMessage(NOTE_ON, 0, (60, 100)), MidiMessage(SYSTEM_COMMON, -1, (0xF6,))]
    assert parser.garbage == 2


def test_realtime_inside_a_message_keeps_running_status():
    out = MidiParser().feed(bytes([0x90, 60, 0xF8, 100, 62, 0xFE, 90]))
    assert out == [MidiMessage(REALTIME, -1, (0xF8,)), MidiMessage(NOTE_ON, 0, (60, 100)),
                   MidiMessage(REALTIME, -1, (0xFE,)), MidiMessage(NOTE_ON, 0, (62, 90))]


def test_undefined_realtime_bytes_are_ignored_in_place():
    parser = MidiParser()
    assert parser.feed(bytes([0x90, 60, 0xF9, 0xFD, 100])) == [MidiMessage(NOTE_ON, 0, (60, 100))]
    assert parser.garbage == 2 and parser.truncated == 0


@pytest.mark.parametrize("lsb, msb, value", [(0, 0x40, 8192), (0, 0, 0), (0x7F, 0x7F, 16383),
                                             (0x01, 0x40, 8193)])
def test_pitch_bend_value(lsb, msb, value):
    msg = MidiMessage(PITCH_BEND, 5, (value,))
    assert MidiParser().feed(bytes([0xE5, lsb, msb])) == [msg]
    assert encode(msg) == bytes([0xE5, lsb, msb])


def test_ints_out_of_range_are_garbage():
    parser = MidiParser()
    assert parser.feed([0x90, 256, 60, -1, 100, 1000]) == [MidiMessage(NOTE_ON, 0, (60, 100))]
    assert parser.garbage == 3


def test_message_split_across_feeds():
    parser = MidiParser()
    assert parser.feed(b"\xe0") == []
    assert parser.feed(b"\x00") == []
    assert parser.feed(bytearray(b"\x40")) == [MidiMessage(PITCH_BEND, 0, (8192,))]


@pytest.mark.parametrize("msg", [MidiMessage(NOTE_ON, 16, (60, 1)), MidiMessage(CC, 0, (128, 0)),
                                 MidiMessage(PROGRAM, 0, (1, 2)), MidiMessage("bogus", 0, ()),
                                 MidiMessage(PITCH_BEND, 0, (16384,)),
                                 MidiMessage(SYSEX, -1, (0xF7,)),
                                 MidiMessage(SYSTEM_COMMON, -1, (0xF4,)),
                                 MidiMessage(REALTIME, -1, (0xF9,))])
def test_encode_rejects_malformed_messages(msg):
    with pytest.raises(ValueError):
        encode(msg)
