"""Turning MIDI messages into instrument actions: a monophonic voice, knobs, program changes.

Runs on the MIDI input thread, never in the audio callback. The sink decides how its actions
reach the audio path.
"""
from __future__ import annotations

import threading
from typing import Any, Mapping, Protocol

from app.midi.parse import (CC, NOTE_OFF, NOTE_ON, PITCH_BEND, PITCH_BEND_CENTRE, PROGRAM,
                            MidiMessage, MidiParser)

ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123
MAX_MAPPABLE_CC = 119   # 120-127 are channel mode messages, not controllers


class Sink(Protocol):
    def voice(self, freq_hz: float, gate: bool, amplitude: float, timestamp: float) -> None: ...
    def set_knob(self, name: str, fraction: float) -> None: ...
    def program_change(self, number: int) -> None: ...


def note_frequency(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


class MidiControl:
    """Last-note-priority mono voice, CC-to-knob mappings with MIDI learn, program changes.

    channel=None listens on every channel (omni), otherwise only on that channel (0-15).
    Sink exceptions are caught and counted so a faulty sink cannot kill the MIDI thread.
    """

    def __init__(self, sink: Sink, bend_range: float = 2.0, channel: int | None = None):
        if channel is not None and not 0 <= channel <= 15:
            raise ValueError(f"MIDI channel must be 0-15 or None, got {channel}")
        self.sink = sink
        self.bend_range = float(bend_range)
        self.channel = channel
        self.parser = MidiParser()
        self.errors = 0
        self.last_error: str | None = None
        self._held: list[int] = []          # note stack, most recent last
        self._note: int | None = None       # sounding (or last sounded) note
        self._gate = False
        self._amplitude = 0.0
        self._bend = 0.0                    # semitones
        self._mappings: dict[int, str] = {}
        self._learning: str | None = None
        # learn()/map_cc() come from the GUI thread while handle() runs on the MIDI thread.
        self._lock = threading.Lock()

    # --- input -------------------------------------------------------------------------------

    def feed_bytes(self, data: Any, timestamp: float) -> None:
        for msg in self.parser.feed(data):
            self.handle(msg, timestamp)

    def handle(self, msg: MidiMessage, timestamp: float) -> None:
        if msg.channel < 0 or (self.channel is not None and msg.channel != self.channel):
            return
        if msg.kind == NOTE_ON:
            self._note_on(msg.data[0], msg.data[1], timestamp)
        elif msg.kind == NOTE_OFF:
            self._note_off(msg.data[0], timestamp)
        elif msg.kind == PITCH_BEND:
            self._pitch_bend(msg.data[0], timestamp)
        elif msg.kind == CC:
            self._control_change(msg.data[0], msg.data[1], timestamp)
        elif msg.kind == PROGRAM:
            self._call(self.sink.program_change, msg.data[0])

    # --- voice -------------------------------------------------------------------------------

    @property
    def frequency(self) -> float | None:
        return None if self._note is None else note_frequency(self._note + self._bend)

    @property
    def gate(self) -> bool:
        return self._gate

    def _emit_voice(self, timestamp: float) -> None:
        self._call(self.sink.voice, self.frequency, self._gate, self._amplitude, timestamp)

    def _note_on(self, note: int, velocity: int, timestamp: float) -> None:
        if note in self._held:
            self._held.remove(note)
        self._held.append(note)
        self._note = note
        self._gate = True
        self._amplitude = velocity / 127
        self._emit_voice(timestamp)

    def _note_off(self, note: int, timestamp: float) -> None:
        if note not in self._held:
            return
        was_top = self._held[-1] == note
        self._held.remove(note)
        if not was_top:
            return
        if self._held:
            self._note = self._held[-1]     # legato back to the previous held note
        else:
            self._gate = False              # keep the frequency for the release
        self._emit_voice(timestamp)

    def _all_notes_off(self, timestamp: float) -> None:
        self._held.clear()
        if self._note is not None:
            self._gate = False
            self._emit_voice(timestamp)

    def _pitch_bend(self, value: int, timestamp: float) -> None:
        # Linear in the value, as the MIDI spec's sensitivity implies: 0 is exactly -bend_range,
        # the top (16383) is 8191/8192 of +bend_range.
        self._bend = self.bend_range * (value - PITCH_BEND_CENTRE) / PITCH_BEND_CENTRE
        if self._note is not None:
            self._emit_voice(timestamp)

    # --- controllers ---------------------------------------------------------------------------

    def _control_change(self, cc: int, value: int, timestamp: float) -> None:
        if cc in (ALL_SOUND_OFF, ALL_NOTES_OFF):
            self._all_notes_off(timestamp)
            return
        if cc > MAX_MAPPABLE_CC:
            return
        with self._lock:
            if self._learning is not None:
                self._bind(cc, self._learning)
                self._learning = None
            knob = self._mappings.get(cc)
        if knob is not None:
            self._call(self.sink.set_knob, knob, value / 127)

    @property
    def mappings(self) -> dict[int, str]:
        """A copy of the CC -> knob bindings (json.dumps turns the keys into strings;
        load_mappings accepts those)."""
        with self._lock:
            return dict(self._mappings)

    def map_cc(self, cc: int, knob: str) -> None:
        """Bind cc to knob; a knob has one CC, so any older CC of that knob is unbound."""
        cc, knob = _checked_binding(cc, knob)
        with self._lock:
            self._bind(cc, knob)

    def unmap_cc(self, cc: int) -> None:
        with self._lock:
            self._mappings.pop(cc, None)

    def load_mappings(self, mappings: Mapping[Any, Any]) -> None:
        """Replace all bindings; on any invalid entry raise ValueError and keep the old ones."""
        if not isinstance(mappings, Mapping):
            raise ValueError(f"MIDI mappings must be a mapping of CC number to knob name, "
                             f"got {type(mappings).__name__}")
        checked: dict[int, str] = {}
        for cc, knob in mappings.items():
            cc, knob = _checked_binding(cc, knob)
            if cc in checked:
                raise ValueError(f"CC {cc} appears twice in the MIDI mappings")
            if knob in checked.values():
                raise ValueError(f"knob {knob!r} is bound to more than one CC")
            checked[cc] = knob
        with self._lock:
            self._mappings = checked

    def _bind(self, cc: int, knob: str) -> None:
        for other in [c for c, k in self._mappings.items() if k == knob]:
            del self._mappings[other]
        self._mappings[cc] = knob

    # --- MIDI learn ----------------------------------------------------------------------------

    def learn(self, knob: str) -> None:
        """Bind the next CC that arrives (on a listened channel) to knob."""
        _, knob = _checked_binding(0, knob)
        with self._lock:
            self._learning = knob

    def cancel_learn(self) -> None:
        with self._lock:
            self._learning = None

    @property
    def learning(self) -> str | None:
        """The knob waiting for a CC, or None."""
        return self._learning

    # --- sink calls ------------------------------------------------------------------------------

    def _call(self, action, *args) -> None:
        try:
            action(*args)
        except Exception as e:   # noqa: BLE001 - the MIDI thread must survive any sink bug
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"


def _checked_binding(cc: Any, knob: Any) -> tuple[int, str]:
    if isinstance(cc, str) and cc.strip().isdigit():
        cc = int(cc)
    if isinstance(cc, bool) or not isinstance(cc, int) or not 0 <= cc <= MAX_MAPPABLE_CC:
        raise ValueError(f"CC number must be 0-{MAX_MAPPABLE_CC}, got {cc!r}")
    if not isinstance(knob, str) or not knob:
        raise ValueError(f"knob name must be a non-empty string, got {knob!r}")
    return cc, knob
