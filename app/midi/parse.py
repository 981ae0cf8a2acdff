"""MIDI 1.0 byte-stream parsing and encoding.

The parser is fed whatever the transport delivers (whole messages, fragments, a raw serial
stream) and yields complete messages. Malformed input is dropped and counted, never raised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

# Message kinds (MidiMessage.kind).
NOTE_ON = "note_on"
NOTE_OFF = "note_off"
POLY_AFTERTOUCH = "poly_aftertouch"
CC = "cc"
PROGRAM = "program"
CHANNEL_AFTERTOUCH = "channel_aftertouch"
PITCH_BEND = "pitch_bend"
SYSEX = "sysex"
SYSTEM_COMMON = "system_common"
REALTIME = "realtime"

PITCH_BEND_CENTRE = 8192
SYSEX_LIMIT = 64 * 1024

# Channel voice messages: high nibble -> (kind, number of data bytes).
_CHANNEL_KINDS = {
    0x80: (NOTE_OFF, 2),
    0x90: (NOTE_ON, 2),
    0xA0: (POLY_AFTERTOUCH, 2),
    0xB0: (CC, 2),
    0xC0: (PROGRAM, 1),
    0xD0: (CHANNEL_AFTERTOUCH, 1),
    0xE0: (PITCH_BEND, 2),
}
_STATUS_OF_KIND = {kind: status for status, (kind, _) in _CHANNEL_KINDS.items()}
# Defined system common messages -> number of data bytes (F4/F5 are undefined).
_SYSTEM_COMMON_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}
_UNDEFINED_REALTIME = (0xF9, 0xFD)
_SYSEX_START, _SYSEX_END = 0xF0, 0xF7


@dataclass(frozen=True)
class MidiMessage:
    """One MIDI message.

    data: channel messages hold their data bytes (pitch_bend: one 14-bit value, centre 8192);
    sysex holds the payload without F0/F7; system_common and realtime hold the status byte
    followed by any data bytes. channel is 0-15, or -1 for system messages.
    """
    kind: str
    channel: int
    data: tuple[int, ...]


class MidiParser:
    """Stateful parser; messages may be split across feed() calls at any byte."""

    def __init__(self, sysex_limit: int = SYSEX_LIMIT):
        self.sysex_limit = sysex_limit
        self.garbage = 0      # bytes dropped on their own (stray data, undefined status, non-bytes)
        self.truncated = 0    # messages cut off by a status byte before they were complete
        self.overflowed = 0   # sysex messages dropped for exceeding sysex_limit
        self.messages = 0     # messages emitted
        self._running: int | None = None   # channel status reusable by running status
        self._status: int | None = None    # status of the message being collected
        self._data: list[int] = []
        self._explicit = False             # the status byte itself arrived for this message
        self._sysex: bytearray | None = None
        self._sysex_over = False

    def feed(self, data: bytes | bytearray | Iterable[int]) -> list[MidiMessage]:
        out: list[MidiMessage] = []
        for byte in data:
            if not isinstance(byte, int) or not 0 <= byte <= 0xFF:
                self.garbage += 1
            elif byte >= 0xF8:
                self._realtime(byte, out)
            elif byte >= 0x80:
                self._status_byte(byte, out)
            else:
                self._data_byte(byte, out)
        self.messages += len(out)
        return out

    def _realtime(self, byte: int, out: list[MidiMessage]) -> None:
        # Real-time bytes may interleave with anything and leave the parse state untouched.
        if byte in _UNDEFINED_REALTIME:
            self.garbage += 1
        else:
            out.append(MidiMessage(REALTIME, -1, (byte,)))

    def _abort_partial(self) -> None:
        if self._sysex is not None or self._explicit or self._data:
            self.truncated += 1
        self._sysex = None
        self._sysex_over = False
        self._data = []
        self._explicit = False
        self._status = self._running

    def _status_byte(self, byte: int, out: list[MidiMessage]) -> None:
        if byte == _SYSEX_END and self._sysex is not None:
            self._finish_sysex(out)
            return
        self._abort_partial()
        if byte < 0xF0:
            self._running = self._status = byte
            self._explicit = True
            return
        # Sysex and system common messages cancel running status.
        self._running = self._status = None
        if byte == _SYSEX_START:
            self._sysex = bytearray()
        elif byte not in _SYSTEM_COMMON_LENGTH:   # stray F7, undefined F4/F5
            self.garbage += 1
        elif _SYSTEM_COMMON_LENGTH[byte] == 0:
            out.append(MidiMessage(SYSTEM_COMMON, -1, (byte,)))
        else:
            self._status = byte
            self._explicit = True

    def _finish_sysex(self, out: list[MidiMessage]) -> None:
        if self._sysex_over:
            self.overflowed += 1
        else:
            out.append(MidiMessage(SYSEX, -1, tuple(self._sysex)))
        self._sysex = None
        self._sysex_over = False

    def _data_byte(self, byte: int, out: list[MidiMessage]) -> None:
        if self._sysex is not None:
            if len(self._sysex) < self.sysex_limit:
                self._sysex.append(byte)
            else:
                self._sysex_over = True
            return
        if self._status is None:
            self.garbage += 1
            return
        self._data.append(byte)
        status = self._status
        if status >= 0xF0:
            if len(self._data) == _SYSTEM_COMMON_LENGTH[status]:
                out.append(MidiMessage(SYSTEM_COMMON, -1, (status, *self._data)))
                self._status = None
                self._data = []
                self._explicit = False
            return
        kind, length = _CHANNEL_KINDS[status & 0xF0]
        if len(self._data) < length:
            return
        data = tuple(self._data)
        self._data = []
        self._explicit = False
        if kind == PITCH_BEND:
            data = (data[0] | data[1] << 7,)
        elif kind == NOTE_ON and data[1] == 0:
            kind = NOTE_OFF
        out.append(MidiMessage(kind, status & 0x0F, data))


def encode(msg: MidiMessage) -> bytes:
    """The bytes of one message, always with its status byte (no running status)."""
    if msg.kind == SYSEX:
        _check_data_bytes(msg.data, msg)
        return bytes((_SYSEX_START, *msg.data, _SYSEX_END))
    if msg.kind == SYSTEM_COMMON:
        if not msg.data or msg.data[0] not in _SYSTEM_COMMON_LENGTH \
                or len(msg.data) != 1 + _SYSTEM_COMMON_LENGTH[msg.data[0]]:
            raise ValueError(f"malformed system common message: {msg}")
        _check_data_bytes(msg.data[1:], msg)
        return bytes(msg.data)
    if msg.kind == REALTIME:
        if len(msg.data) != 1 or not 0xF8 <= msg.data[0] <= 0xFF or msg.data[0] in _UNDEFINED_REALTIME:
            raise ValueError(f"malformed realtime message: {msg}")
        return bytes(msg.data)
    status = _STATUS_OF_KIND.get(msg.kind)
    if status is None:
        raise ValueError(f"unknown MIDI message kind: {msg.kind!r}")
    if not 0 <= msg.channel <= 15:
        raise ValueError(f"MIDI channel must be 0-15: {msg}")
    data = msg.data
    if msg.kind == PITCH_BEND:
        if len(data) != 1 or not 0 <= data[0] <= 0x3FFF:
            raise ValueError(f"pitch bend needs one value 0-16383: {msg}")
        data = (data[0] & 0x7F, data[0] >> 7)
    if len(data) != _CHANNEL_KINDS[status][1]:
        raise ValueError(f"wrong number of data bytes: {msg}")
    _check_data_bytes(data, msg)
    return bytes((status | msg.channel, *data))


def _check_data_bytes(data: tuple[int, ...], msg: MidiMessage) -> None:
    if not all(isinstance(b, int) and 0 <= b <= 0x7F for b in data):
        raise ValueError(f"MIDI data bytes must be 0-127: {msg}")
