"""A device on the audio interface as a processor kind (hardware in the loop): the learner's
input goes out on a send channel to the device, and the device's return, read on an input
channel, is the target. The callback copies the return channel into the host's return buffer
and plays the host's send buffer on the send channel (app/host/callback.py); this kind fills
the send buffer and reads the return. Its latency is the round trip through the device, measured
first (RO_PROBE_*: a test signal sent instead of x, the return captured sample for sample) and
then set, so that the learner's input is delayed to match."""
import numpy as np
from numba import njit

from engine import blockabi as B
from engine.words import declare
from app.host.processors.base import Processor, f64
from app.host.processors.words import KIND_WORDS, PR_IN, PR_LATENCY, PR_MAX_FRAMES, PR_OUT, PROCESSOR_WORDS

declare(globals(), "DV_", """
    RETURN             # float64[max_frames]: the return channel this chunk (the host's)
    SEND               # float64[max_frames]: what the send channel plays this chunk (the host's)
    PROBE              # float64[probe_len]: the test signal of a latency measurement
    CAPTURE            # float64[probe_len]: the return recorded while it played
    PROBE_LEN
    PROBE_POS          # written by the callback
    PROBE_REQ          # +1 by the session: play the probe from its start
    PROBE_ACK          # = PROBE_REQ by the callback once the capture is complete
""", start=KIND_WORDS, end=PROCESSOR_WORDS)


class DeviceProcessor(Processor):
    """return_buffer, send_buffer: the host's (HostMemory.device_return / device_send);
    probe_len: the longest measurement (test signal plus the latency search range);
    max_latency: the largest round trip the learner's input can be delayed by."""

    def __init__(self, return_buffer: np.ndarray, send_buffer: np.ndarray, probe_len: int,
                 max_latency: int, max_frames: int):
        super().__init__("device", max_frames, max_latency, np.zeros(1), np.zeros(0, dtype=np.int64))
        self.max_latency = max_latency
        self.probe = np.zeros(probe_len)
        self.capture = np.zeros(probe_len)
        t = self.table
        t[DV_RETURN], t[DV_SEND] = B.address(return_buffer), B.address(send_buffer)
        t[DV_PROBE], t[DV_CAPTURE], t[DV_PROBE_LEN] = self._keep(self.probe), self._keep(self.capture), probe_len

    def set_latency(self, samples: int):
        """The learner's input is delayed by this many samples from the next block on (a word
        the callback reads whole; the delay line is always written, so no stale samples)."""
        if not 0 <= samples <= self.max_latency:
            raise ValueError(f"the latency must be between 0 and {self.max_latency} samples")
        self.table[PR_LATENCY] = int(samples)

    def start_probe(self, signal: np.ndarray):
        """Play signal (zero-padded to the probe length) on the send channel from the next block
        on, recording the return; probe_done() tells when the capture is complete."""
        if signal.size > self.probe.size:
            raise ValueError("the test signal is longer than the probe buffer")
        self.probe[:] = 0.0
        self.probe[:signal.size] = signal
        self.table[DV_PROBE_REQ] += 1

    def probe_done(self) -> bool:
        return self.table[DV_PROBE_ACK] == self.table[DV_PROBE_REQ]


@njit(nogil=True, cache=True)
def device_step(t, n):
    maxf = t[PR_MAX_FRAMES]
    xin = f64(t[PR_IN], maxf)
    y = f64(t[PR_OUT], maxf)
    ret = f64(t[DV_RETURN], maxf)
    send = f64(t[DV_SEND], maxf)
    if t[DV_PROBE_REQ] != t[DV_PROBE_ACK]:
        probe = f64(t[DV_PROBE], t[DV_PROBE_LEN])
        capture = f64(t[DV_CAPTURE], t[DV_PROBE_LEN])
        p = t[DV_PROBE_POS]
        for i in range(n):
            if p < t[DV_PROBE_LEN]:
                send[i] = probe[p]
                capture[p] = ret[i]
                p += 1
            else:
                send[i] = 0.0
            y[i] = 0.0                  # no target while measuring (learning waits for it)
        if p >= t[DV_PROBE_LEN]:
            t[DV_PROBE_POS] = 0
            t[DV_PROBE_ACK] = t[DV_PROBE_REQ]
        else:
            t[DV_PROBE_POS] = p
        return True
    for i in range(n):
        send[i] = xin[i]
        y[i] = ret[i]
    return True


@njit(nogil=True, cache=True)
def device_reset(t):
    """Nothing to clear: the device's state is outside, and its return is made finite before
    this kind reads it."""
    pass
