"""What calls the audio callback: a PortAudio stream (through sounddevice, which accepts a C
callback pointer), or, when no audio device can be opened, a thread on a paced virtual clock
that calls the very same callback so learning, the GUI and the command line still work."""
from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass

import numpy as np

from app.host.callback import audio_callback
from app.host.layout import PA_OUTPUT_UNDERFLOW

_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                  ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p)
VIRTUAL_DEVICE = "virtual clock (no audio device)"


class AudioUnavailable(Exception):
    pass


@dataclass
class StreamInfo:
    device: str
    host_api: str
    sample_rate: float
    blocksize: int
    n_in: int
    n_out: int
    input_latency: float
    output_latency: float
    virtual: bool
    reason: str = ""          # why the virtual clock is in use


def _sounddevice():
    import sounddevice  # imported late: PortAudio sees a JACK server only if it is up at import
    return sounddevice


def _pick_device(sd, device, kind):
    try:
        return sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError):
        return None


def find_output_device(device=None) -> dict:
    """The output device PortAudio would open for `device` (name substring or index; None: the
    default); AudioUnavailable naming the devices there are when none matches. Cheap: the command
    line asks it before compiling anything."""
    sd = _sounddevice()
    out_dev = _pick_device(sd, device, "output")
    if out_dev is None:
        have = ", ".join(d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0) or "none"
        what = f"no audio output device matches '{device}'" if device else "no audio output device"
        raise AudioUnavailable(f"{what} (output devices: {have})")
    return out_dev


class PortAudioStream:
    def __init__(self, memory, sample_rate: float, blocksize: int, device=None, want_input=True,
                 channels: tuple[int, int] = (2, 2)):
        sd = _sounddevice()
        out_dev = find_output_device(device)
        in_dev = _pick_device(sd, out_dev["name"] if device is None else device, "input") if want_input else None
        # stereo, or as many channels as a device in the loop needs (channels: inputs, outputs)
        n_out = min(max(2, channels[1]), out_dev["max_output_channels"])
        n_in = min(max(2, channels[0]), in_dev["max_input_channels"]) if in_dev is not None else 0
        memory.set_channels(n_in, n_out)
        ffi = sd._ffi
        kw = dict(samplerate=sample_rate, blocksize=blocksize, dtype="float32",
                  callback=ffi.cast("PaStreamCallback *", audio_callback.address),
                  userdata=ffi.cast("void *", memory.address))
        try:
            if n_in:
                self.stream = sd._StreamBase("duplex", device=(in_dev["index"], out_dev["index"]),
                                             channels=(n_in, n_out), **kw)
            else:
                self.stream = sd._StreamBase("output", device=out_dev["index"], channels=n_out, **kw)
        except sd.PortAudioError as e:
            raise AudioUnavailable(f"cannot open '{out_dev['name']}': {e}") from None
        lat = self.stream.latency
        in_lat, out_lat = (lat if isinstance(lat, tuple) else (0.0, lat))
        api = sd.query_hostapis(out_dev["hostapi"])["name"]
        self.info = StreamInfo(device=f"{out_dev['name']} ({api})", host_api=api,
                               sample_rate=float(self.stream.samplerate), blocksize=blocksize,
                               n_in=n_in, n_out=n_out, input_latency=in_lat if n_in else 0.0,
                               output_latency=out_lat, virtual=False)
        self._memory = memory                 # the callback reads it: keep it alive

    def start(self):
        self.stream.start()

    def stop(self):
        self.stream.stop()

    def close(self):
        self.stream.close()

    @property
    def active(self) -> bool:
        return self.stream.active


class VirtualClockStream:
    """Calls the callback every blocksize/sample_rate seconds from a thread (output discarded).
    A block that starts more than one period late is flagged as an output underflow, and the
    clock skips ahead instead of bursting to catch up."""

    def __init__(self, memory, sample_rate: float, blocksize: int, reason: str):
        self._memory = memory
        memory.set_channels(0, 2)
        self.info = StreamInfo(device=VIRTUAL_DEVICE, host_api="none", sample_rate=sample_rate,
                               blocksize=blocksize, n_in=0, n_out=2, input_latency=0.0,
                               output_latency=0.0, virtual=True, reason=reason)
        self._out = np.zeros(blocksize * 2, dtype=np.float32)
        self._fn = direct_caller()
        self._stop = threading.Event()
        self._thread = None

    def _run(self):
        period = self.info.blocksize / self.info.sample_rate
        nxt = time.monotonic()
        addr, out = self._memory.address, self._out.ctypes.data
        status = 0
        while not self._stop.is_set():
            self._fn(None, out, self.info.blocksize, None, status, addr)   # ctypes drops the GIL
            nxt += period
            delay = nxt - time.monotonic()
            status = 0
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:
                status = PA_OUTPUT_UNDERFLOW
                nxt = time.monotonic()

    def start(self):
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="dualtone-virtual-clock", daemon=True)
            self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self):
        self.stop()

    @property
    def active(self) -> bool:
        return self._thread is not None


def open_stream(memory, sample_rate: float, blocksize: int, device=None, want_input=True,
                allow_virtual=True, channels: tuple[int, int] = (2, 2)):
    """A PortAudio stream on `device` (default: the system's), else the virtual clock.
    device="virtual" asks for the virtual clock outright. channels: the (input, output) channels
    wanted beyond stereo (a device in the loop on channel 3, ...), as far as the device has them."""
    if device == "virtual":
        return VirtualClockStream(memory, sample_rate, blocksize, "--device virtual was chosen")
    try:
        return PortAudioStream(memory, sample_rate, blocksize, device, want_input, channels)
    except (AudioUnavailable, OSError) as e:
        if device is not None or not allow_virtual:
            raise AudioUnavailable(str(e)) from None
        return VirtualClockStream(memory, sample_rate, blocksize, str(e))


def list_devices() -> list[dict]:
    """Audio devices PortAudio sees: name, host API, input/output channels, default rate."""
    try:
        sd = _sounddevice()
        apis = sd.query_hostapis()
        return [dict(index=d["index"], name=d["name"], host_api=apis[d["hostapi"]]["name"],
                     inputs=d["max_input_channels"], outputs=d["max_output_channels"],
                     default_samplerate=d["default_samplerate"]) for d in sd.query_devices()]
    except OSError:              # PortAudio library missing
        return []


def direct_caller():
    """The callback as a ctypes function (for the virtual clock, tests and benchmarks):
    f(input_ptr_or_None, output_ptr, frames, None, status_flags, memory.address)."""
    return _CALLBACK_TYPE(audio_callback.address)
