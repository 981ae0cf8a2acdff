"""A device on the audio interface as the ground truth: which channels reach it, and what was
measured of it. The measurement itself runs through the session (it owns the stream)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeviceSpec:
    """return_channel: the input channel the device's output comes back on (from 0);
    send_channel: the output channel that feeds the device (from 0); latency: the round trip
    last measured, in samples (None: not yet; a preset's is remeasured when it is opened)."""
    return_channel: int
    send_channel: int
    latency: int | None = None
    polarity: int = 1


def check_channels(spec: DeviceSpec, n_in: int, n_out: int) -> str | None:
    """Why the stream cannot carry this device (one line), or None."""
    if spec.return_channel >= n_in:
        return (f"the audio device has {n_in} input channel(s): there is no input {spec.return_channel + 1} "
                "for the device's return")
    if spec.send_channel >= n_out:
        return (f"the audio device has {n_out} output channel(s): there is no output {spec.send_channel + 1} "
                "to feed the device")
    return None
