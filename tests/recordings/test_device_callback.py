"""A device in the loop, through the real audio callback (no audio device: the harness plays
the device, one block of round trip plus its own delay): the send channel carries the learner's
input, the return channel is the target, the latency measurement finds the round trip exactly,
and the learner then learns the device's circuit."""
import math

import numpy as np
import pytest

from app.host import layout as H
from app.host.memory import Slot
from app.recordings.align import measure_round_trip
from app.truths import DeviceTruth
from engine.learn.learner import Learner, ParamSpec, Settings
from tests.host_harness import Harness

BLOCK = 128
RETURN, SEND = 1, 2                   # input 2 and output 3 (from 0 here)
CIRCUIT = "c = exp(-2*pi*1000*khz/SR)\nv = (1 - c)*x + c*v@1\ny = tanh(drive*v)"


class FakeDevice:
    """One-pole at `khz` into tanh(drive*v), `delay` samples late; what it hears in one callback
    comes back in the next (the interface's round trip)."""

    def __init__(self, khz, drive, delay, post=1.0):
        self.c = math.exp(-2 * math.pi * 1000 * khz / 48000)
        self.drive, self.post, self.v = drive, post, 0.0
        self.line = np.zeros(delay)
        self.pending = np.zeros(BLOCK)

    def process(self, sent: np.ndarray) -> np.ndarray:
        y = np.empty(sent.size)
        for i, s in enumerate(sent.astype(np.float64)):
            self.v = (1 - self.c) * s + self.c * self.v
            y[i] = self.post * math.tanh(self.drive * self.v)
        both = np.concatenate([self.line, y])
        self.line, out = both[y.size:], both[:y.size]
        back, self.pending = self.pending, out
        return back


def _rig(device, learn=True):
    h = Harness(n_in=2, n_out=3)
    learner = Learner(CIRCUIT, [ParamSpec("khz", 5.0, 0.02, 20.0), ParamSpec("drive", 1.0, 0.1, 10.0)],
                      target="y = device", settings=Settings(optimizer="adam", lr=0.01, learning=learn))
    truth = DeviceTruth(h.mem, RETURN, SEND)
    slot = Slot(learner, h.mem.x, h.mem.max_frames, truth=truth)
    h.mem.install(0, slot)
    h.ctl[H.C_RETURN_CHANNEL], h.ctl[H.C_SEND_CHANNEL] = RETURN, SEND
    h.ctl[H.C_SOURCE_GAIN] = 0.5

    def tick(garbage=None):
        inp = np.zeros((BLOCK, 2), dtype=np.float32)
        inp[:, RETURN] = device.pending if garbage is None else garbage
        out = h.run(BLOCK, inp)
        device.process(out[:, SEND])
        return out
    return h, learner, truth, tick


def _measure(truth, tick):
    p = truth.processor
    p.start_probe(truth.probe_signal)
    blocks = 0
    while not p.probe_done():
        tick()
        blocks += 1
    return measure_round_trip(p.probe.copy(), p.capture.copy(), 48000.0, truth.max_latency), blocks


@pytest.mark.parametrize("delay", [0, 37, 293])
def test_the_round_trip_is_measured_exactly(delay):
    _, _, truth, tick = _rig(FakeDevice(1.2, 3.0, delay), learn=False)
    found, blocks = _measure(truth, tick)
    assert found.lag == delay + BLOCK and found.polarity == 1
    assert blocks == math.ceil(truth.processor.probe.size / BLOCK)


def test_an_inverting_device_is_reported():
    _, _, truth, tick = _rig(FakeDevice(1.2, 3.0, 50, post=-1.0), learn=False)
    found, _ = _measure(truth, tick)
    assert found.lag == 50 + BLOCK and found.polarity == -1


def test_after_the_measurement_the_device_is_learned():
    device = FakeDevice(1.2, 3.0, 37)
    h, learner, truth, tick = _rig(device, learn=False)
    found, _ = _measure(truth, tick)
    truth.processor.set_latency(found.lag)
    learner.reset()
    learner.configure(Settings(optimizer="adam", lr=0.01, lr_decay=0.7, lr_decay_every=4800, lr_min=1e-5))
    for _ in range(3 * 48000 // BLOCK):
        out = tick()
    p = learner.params()
    # the return arrives as float32, as from an audio interface
    assert abs(p["khz"] - 1.2) < 2e-3 and abs(p["drive"] - 3.0) < 5e-3, p
    assert np.max(np.abs(out[:, SEND])) > 0.1                     # the send carries the source
    assert np.max(np.abs(out[:, SEND])) <= 0.5 + 1e-6


def test_the_send_channel_carries_the_learners_input_and_garbage_returns_are_silenced():
    device = FakeDevice(1.2, 3.0, 0)
    h, learner, truth, tick = _rig(device, learn=False)
    out = tick()
    x = h.scope(BLOCK)[:, H.SC_SOURCE]                            # latency 0: the learner saw x
    np.testing.assert_array_equal(out[:, SEND], x.astype(np.float32))
    assert np.any(out[:, 0] != out[:, SEND])                      # the monitor is elsewhere
    bad = np.full(BLOCK, np.nan, dtype=np.float32)
    bad[::2] = 1e30
    before = h.ctl[H.C_BAD_INPUT]
    tick(garbage=bad)
    assert h.ctl[H.C_BAD_INPUT] - before == BLOCK
    assert truth.processor.restarts == 0
    assert np.all(h.mem.device_return[:BLOCK] == 0.0)


def test_without_a_device_the_send_channel_is_silent_and_the_monitor_plays():
    h = Harness(n_in=2, n_out=3)
    h.ctl[H.C_SEND_CHANNEL] = -1.0
    out = h.run(BLOCK)
    assert np.all(out[:, SEND] == out[:, 0])                      # channels past 2 copy the left
    h.ctl[H.C_SEND_CHANNEL] = SEND                                # routed, but no device truth runs
    out = h.run(BLOCK)
    assert np.all(out[:, SEND] == 0.0)
