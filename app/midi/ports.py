"""MIDI input ports through python-rtmidi (ALSA sequencer or JACK).

With JACK, the server is the one named by JACK_DEFAULT_SERVER. Messages are polled from a
Python thread rather than delivered by rtmidi's callback: rtmidi's JACK backend runs the callback
inside the JACK process cycle, so a Python callback waiting for the GIL stalls the whole JACK
graph (measured: hundreds of xruns in 4 s on a 128-frame dummy server while the main thread runs
Python, against none when polling).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

import rtmidi

ALSA_SEQUENCER = "/dev/snd/seq"
POLL_INTERVAL = 0.001   # seconds between polls when no message is waiting


class MidiUnavailable(RuntimeError):
    """No MIDI backend could be opened (one-line message)."""


def choose_api() -> int:
    """ALSA when its sequencer device can be opened, else JACK (never rtmidi's own guess, which
    needs ports to already exist)."""
    try:
        os.close(os.open(ALSA_SEQUENCER, os.O_RDWR | os.O_NONBLOCK))
        return rtmidi.API_LINUX_ALSA
    except OSError:
        return rtmidi.API_UNIX_JACK


def _describe(api: int) -> str:
    if api == rtmidi.API_UNIX_JACK:
        return f"JACK server '{os.environ.get('JACK_DEFAULT_SERVER', 'default')}'"
    return rtmidi.get_api_display_name(api)


def _client(kind: type, api: int, name: str):
    try:
        return kind(api, name=name)
    except rtmidi.RtMidiError as e:
        raise MidiUnavailable(f"cannot open MIDI via {_describe(api)}: {e}") from None


def _port_names(kind: type, api: int | None) -> list[str]:
    api = choose_api() if api is None else api
    client = _client(kind, api, "Dualtone port list")
    try:
        return client.get_ports()
    finally:
        client.delete()


def list_ports(api: int | None = None) -> list[str]:
    """Names of the MIDI sources we could read from."""
    return _port_names(rtmidi.MidiIn, api)


def list_output_ports(api: int | None = None) -> list[str]:
    """Names of the MIDI destinations we could send to."""
    return _port_names(rtmidi.MidiOut, api)


def find_port(available: list[str], name_part: str) -> int:
    """The index of the first port whose name contains name_part; else ValueError (one line,
    naming the ports there are, or saying there are none)."""
    for i, name in enumerate(available):
        if name_part in name:
            return i
    listing = ", ".join(repr(n) for n in available)
    raise ValueError(f"no MIDI input port name contains {name_part!r}; "
                     + (f"available: {listing}" if available else "none are available"))


class MidiInput:
    """A virtual MIDI input port (others connect to it), optionally also connected to the first
    existing source whose name contains `connect`. Every message is passed as
    on_bytes(raw bytes, time.monotonic()) from a background thread."""

    def __init__(self, on_bytes: Callable[[bytes, float], None], api: int | None = None,
                 virtual_name: str = "Dualtone MIDI in", connect: str | None = None,
                 client_name: str = "Dualtone"):
        self.api = choose_api() if api is None else api
        self.on_bytes = on_bytes
        self.errors = 0                     # exceptions raised by on_bytes
        self.last_error: str | None = None
        self.connected_to: str | None = None
        self._ports: list = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._opening(self._new_port(client_name).open_virtual_port, virtual_name)
            if connect is not None:
                self._connect(self._new_port(client_name), connect)
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._poll, name="dualtone-midi-in", daemon=True)
        self._thread.start()

    def _new_port(self, client_name: str) -> rtmidi.MidiIn:
        port = _client(rtmidi.MidiIn, self.api, client_name)
        self._ports.append(port)
        port.ignore_types(sysex=False, timing=True, active_sense=True)
        return port

    def _opening(self, open_port: Callable, *args) -> None:
        try:
            open_port(*args)
        except rtmidi.RtMidiError as e:
            raise MidiUnavailable(f"cannot open a MIDI port via {_describe(self.api)}: {e}") from None

    def _connect(self, port: rtmidi.MidiIn, name_part: str) -> None:
        available = port.get_ports()
        k = find_port(available, name_part)
        self._opening(port.open_port, k)
        self.connected_to = available[k]

    def _poll(self) -> None:
        try:
            while not self._stop.is_set():
                received = False
                for port in self._ports:
                    while not self._stop.is_set() and (event := port.get_message()) is not None:
                        received = True
                        self._deliver(bytes(event[0]))
                if not received:
                    self._stop.wait(POLL_INTERVAL)
        finally:
            self._release_ports()

    def _deliver(self, data: bytes) -> None:
        try:
            self.on_bytes(data, time.monotonic())
        except Exception as e:   # noqa: BLE001 - keep reading MIDI whatever the consumer does
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"

    @property
    def is_open(self) -> bool:
        return bool(self._ports)

    def close(self) -> None:
        """Stop reading and close the ports; safe to call twice, and from on_bytes."""
        self._stop.set()
        thread = self._thread
        if thread is threading.current_thread():
            return   # the polling thread releases the ports when it leaves its loop
        if thread is not None:
            thread.join()
        self._release_ports()

    def _release_ports(self) -> None:
        ports, self._ports = self._ports, []
        for port in ports:
            port.close_port()
            port.delete()   # closes the backend client now, not whenever the GC runs

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
