"""Drives the real audio callback directly (through its C address, as PortAudio would), without
a device: for exact, deterministic tests of the block pipeline."""
import numpy as np

from app.host import layout as H
from app.host.stream import direct_caller
from app.host.memory import HostMemory, Slot
from engine.learn.learner import Learner, ParamSpec, Settings


def make_learner(circuit="y = gain*x + dc", params=(("gain", 0.0), ("dc", 0.0)), hidden=None,
                 target=None, **settings):
    specs = [p if isinstance(p, ParamSpec) else ParamSpec(*p) for p in params]
    return Learner(circuit, specs, target=target, hidden=hidden or {"gain": 0.5, "dc": 0.5},
                   settings=Settings(**{"optimizer": "sgd", **settings}))   # the rate-driven cases


class Harness:
    def __init__(self, learner=None, n_in=1, n_out=2, sample_rate=48000.0, **memory_kw):
        self.mem = HostMemory(sample_rate, n_in, n_out, **memory_kw)
        self.ctl = self.mem.ctl
        self.call = direct_caller()
        self.n_in, self.n_out = n_in, n_out
        if learner is not None:
            self.install(0, learner)

    def install(self, index, learner):
        slot = Slot(learner, self.mem.x, self.mem.max_frames)
        self.mem.install(index, slot)
        return slot

    def run(self, frames, inp=None, status=0):
        """One callback of `frames`; inp is (frames, n_in) float32 or None; returns (frames, n_out)."""
        out = np.zeros((frames, self.n_out), dtype=np.float32)
        if inp is not None:
            inp = np.ascontiguousarray(inp, dtype=np.float32).reshape(frames, self.n_in)
        rc = self.call(None if inp is None else inp.ctypes.data, out.ctypes.data, frames, None, status,
                       self.mem.address)
        assert rc == 0
        return out

    def run_many(self, blocks, frames):
        return np.concatenate([self.run(frames) for _ in range(blocks)])

    def scope(self, n):
        head = int(self.mem.ring_index[H.R_SCOPE_HEAD])
        return self.mem.scope[np.arange(head - n, head) % self.mem.scope.shape[0]]
