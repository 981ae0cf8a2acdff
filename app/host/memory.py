"""The memory the audio callback works in, allocated once: the host table, the control mailbox,
the rings and two circuit slots (one playing, one being swapped in). Python code here runs on
the main thread only; the callback reads it through addresses (app/host/layout.py)."""
from __future__ import annotations

import math

import numpy as np

from engine import blockabi as B
from engine import layout as LY
from engine.learn.learner import Learner
from app.host import layout as H
from app.host.callback import SCRATCH_WORDS
from app.host.processors import SptModProcessor

DEFAULT_MAX_FRAMES = 4096


PAGE_BYTES = 4096


def resident(a: np.ndarray) -> np.ndarray:
    """Write every page of a once now (keeping its values), so the callback never takes a
    first-touch page fault: filling the 4 MB scope ring for the first time cost xruns in a
    stream's first seconds. One element per page is rewritten in place: no copy, so a large
    state does not need twice its size on the way."""
    flat = a.reshape(-1)                       # a view: the host's arrays are contiguous
    step = max(PAGE_BYTES // max(a.itemsize, 1), 1)
    # through a copy of those few elements: numpy skips an assignment of memory onto itself
    flat[::step] = flat[::step].copy()
    if flat.size:
        flat[-1:] = flat[-1:].copy()
    return a


class Slot:
    """A learner wired for the callback: its arrays (kept alive here) and its slot table."""

    def __init__(self, learner: Learner, x: np.ndarray, max_frames: int, truth=None):
        """truth: a ground truth from outside (app/truths.py: an SPTMod model or a plugin) whose
        output the target reads by the kind's name (required exactly when the target reads one)."""
        reads = learner.target_graph.external_name
        if reads is None and truth is not None:
            raise ValueError(f"{truth.title} is loaded but the target does not read '{truth.kind}' "
                             f"(the ground truth needs a target that reads '{truth.kind}', e.g. y = {truth.kind})")
        if reads is not None and (truth is None or truth.kind != reads):
            raise ValueError(f"the target reads '{reads}' but no {'SPTMod model' if reads == 'sptmod' else reads} "
                             "is loaded")
        self.learner = learner
        self.truth = truth
        self.processor = None if truth is None else truth.processor
        lay = learner.layout
        self.out = np.zeros((max_frames, 3))
        self.trace = np.zeros((1, lay.trace_width))
        learner.cfg[LY.CF_TRACE_EVERY] = 0.0
        P, Hn = len(lay.params), len(lay.hidden)
        self.init = np.array([sp.init for sp in learner.specs] or [0.0])
        # where each hidden knob is heading: a view of the kernel's cfg (it glides there per sample)
        self.hidden_goal = learner.cfg[lay.cfg_goal:lay.cfg_goal + Hn]
        t = np.zeros(B.SLOT_WORDS, dtype=np.int64)
        t[B.S_X] = B.address(x) if truth is None else self.processor.dry_address()
        t[B.S_OUT] = B.address(self.out)
        t[B.S_TRACE], t[B.S_TRACE_ROWS], t[B.S_TRACE_COLS] = B.address(self.trace), 1, lay.trace_width
        t[B.S_ST], t[B.S_ST_LEN] = B.address(learner.st), learner.st.size
        t[B.S_CFG], t[B.S_CFG_LEN] = B.address(learner.cfg), learner.cfg.size
        t[B.S_MAX_FRAMES] = max_frames
        t[B.S_N_PARAMS], t[B.S_THETA] = P, lay.theta
        t[B.S_INIT] = B.address(self.init)
        t[B.S_LO], t[B.S_HI] = lay.cfg_lo, lay.cfg_hi
        t[B.S_BANK_INDEX] = lay.bank_index
        rest = learner.circuit_states()
        t[B.S_REST:B.S_REST + 4] = [-1] * 4 if rest is None else [*rest[0], *rest[1]]
        self.staged = np.zeros(LY.CF_HEADER)      # settings a kernel swap hands the callback (stage_kernel)
        t[B.S_NEXT_SETTINGS] = B.address(self.staged)
        t[B.S_BLOCK_FN] = learner.compiled.block_address   # last: the slot is complete
        if truth is not None:
            t[B.S_PROCESSOR] = B.address(self.processor.table)
            for a in self.processor.arrays():
                resident(a)
        for a in (self.out, self.trace, learner.st, learner.cfg):
            resident(a)
        self.table = t

    @property
    def names(self) -> list[str]:
        return self.learner.param_names

    @property
    def model_controls(self) -> dict:
        """The ground truth's controls (name -> knob value); {} without one."""
        return {} if self.truth is None else self.truth.controls

    def set_model_control(self, name: str, value: float):
        """Turn one of the ground truth's control knobs: prepared here, off the audio thread
        (a model's FiLM coefficients), taking effect at a block start once requested
        (HostMemory.latch_controls)."""
        self.truth.set_control(name, value)

    def close(self):
        """Free the ground truth (only once the callback no longer runs this slot)."""
        if self.truth is not None:
            self.truth.close()

    @property
    def processors(self) -> list:
        return [] if self.processor is None else [self.processor]

    @property
    def model_restarts(self) -> int:
        return 0 if self.processor is None else self.processor.restarts


class ChannelProcessors:
    """What every output insert has: one processor per speaker channel (left, right)."""
    processors: list

    def close(self):
        """Free what the processors hold (only once no callback runs them); nothing by default."""

    @property
    def restarts(self) -> int:
        return sum(p.restarts for p in self.processors)

    @property
    def latency(self) -> int:
        return self.processors[0].latency


class Insert(ChannelProcessors):
    """An SPTMod model as an insert effect on the output: one float64 stream per channel (left,
    right), their tables, and the control values (shared by both channels)."""

    def __init__(self, model, max_frames: int, controls: dict | None = None):
        from engine.sptmod.stream import SptModStream
        self.model = model                 # the SptModel (controls, sha256)
        self.controls = {c["name"]: c["default"] for c in model.controls}
        self.controls.update(controls or {})
        block = min(8192, max(64, -(-max_frames // 64) * 64))
        self.streams = [SptModStream(model.config, model.weights, dtype=np.float64, max_block=block)
                        for _ in range(2)]
        for st in self.streams:
            st.set_controls(list(self.controls.values()))      # not yet seen by the callback
        self.processors = [SptModProcessor(st, max_frames) for st in self.streams]
        self.addresses = np.array([B.address(p.table) for p in self.processors], dtype=np.int64)
        for p in self.processors:
            for a in p.arrays():
                resident(a)

    def set_control(self, name: str, value: float):
        """Both channels' coefficients are prepared; they change together at one block start
        once requested (HostMemory.latch_controls)."""
        self.controls[name] = float(value)
        for p in self.processors:
            p.prepare_controls(list(self.controls.values()))


class HostMemory:
    def __init__(self, sample_rate: float, n_in: int, n_out: int, max_frames: int = DEFAULT_MAX_FRAMES,
                 telemetry_rows: int = 4096, scope_rows: int = 1 << 17, midi_rows: int = 1024):
        self.max_frames = int(max_frames)
        self.ctl = np.zeros(H.CTL_WORDS)
        self.ring_index = np.zeros(H.R_WORDS, dtype=np.int64)
        self.x = np.zeros(self.max_frames)
        self.telemetry = np.zeros((telemetry_rows, H.TEL_COLS))
        self.scope = np.zeros((scope_rows, H.SCOPE_COLS))
        self.midi = np.zeros((midi_rows, H.MIDI_COLS))
        self.scratch = np.zeros(SCRATCH_WORDS, dtype=np.int64)
        self.noise = np.array([0x9E3779B97F4A7C15], dtype=np.uint64)
        self.empty_slots = [np.zeros(B.SLOT_WORDS, dtype=np.int64) for _ in range(2)]
        self.empty_out = np.zeros((self.max_frames, 3))
        self.pre = np.zeros((2, self.max_frames))     # the output before the insert and limiter
        self.device_return = np.zeros(self.max_frames)  # a device's return channel, each chunk
        self.device_send = np.zeros(self.max_frames)    # what the send channel plays to it
        for t in self.empty_slots:
            t[B.S_OUT], t[B.S_MAX_FRAMES], t[B.S_BANK_INDEX] = B.address(self.empty_out), self.max_frames, -1
        for a in (self.ctl, self.ring_index, self.x, self.telemetry, self.scope, self.midi,
                  self.scratch, self.empty_out, self.pre, self.device_return, self.device_send):
            resident(a)
        self.slots: list[Slot | None] = [None, None]
        self.insert: Insert | None = None
        self._retired: list = []
        self.files = [np.zeros(1), np.zeros(1)]     # the playing file and the one coming in
        h = np.zeros(H.HOST_WORDS, dtype=np.int64)
        h[H.H_CTL] = B.address(self.ctl)
        h[H.H_SLOT0], h[H.H_SLOT1] = (B.address(t) for t in self.empty_slots)
        h[H.H_X], h[H.H_MAX_FRAMES] = B.address(self.x), self.max_frames
        h[H.H_PRE] = B.address(self.pre)
        h[H.H_RETURN], h[H.H_SEND] = B.address(self.device_return), B.address(self.device_send)
        h[H.H_TEL], h[H.H_TEL_ROWS] = B.address(self.telemetry), telemetry_rows
        h[H.H_SCOPE], h[H.H_SCOPE_ROWS] = B.address(self.scope), scope_rows
        h[H.H_MIDI], h[H.H_MIDI_ROWS] = B.address(self.midi), midi_rows
        h[H.H_RING_INDEX] = B.address(self.ring_index)
        h[H.H_FILE], h[H.H_FILE_LEN] = B.address(self.files[0]), 0
        h[H.H_NIN], h[H.H_NOUT] = n_in, n_out
        h[H.H_SCRATCH] = B.address(self.scratch)
        h[H.H_NOISE] = B.address(self.noise)
        self.table = h
        c = self.ctl
        c[H.C_SAMPLE_RATE] = sample_rate
        c[H.C_SOURCE] = H.SOURCES["lcg-noise"]
        c[H.C_SOURCE_HZ] = 220.0
        c[H.C_SOURCE_GAIN] = 1.0
        c[H.C_MASTER_GAIN] = 1.0
        c[H.C_LIMIT_CEILING] = 10 ** (-1.0 / 20)          # -1 dBFS
        c[H.C_RELEASE_S] = 0.05
        c[H.C_LIMIT_GAIN] = 1.0
        c[H.C_DC_BLOCK] = 1.0
        c[H.C_RETURN_CHANNEL] = c[H.C_SEND_CHANNEL] = -1.0    # no device in the loop
        c[H.C_FADE_LEN] = round(0.02 * sample_rate)      # 20 ms circuit crossfade
        c[H.C_FADE_POS] = -1.0
        c[H.C_KNOB_TAU] = 0.02
        c[H.C_VOICE_FREQ] = 220.0
        c[H.C_VOICE_AMP] = 0.8

    @property
    def address(self) -> int:
        return B.address(self.table)

    def set_channels(self, n_in: int, n_out: int):
        self.table[H.H_NIN], self.table[H.H_NOUT] = n_in, n_out

    def set_insert(self, insert: Insert | None):
        """The output insert (None: none). The one replaced is kept alive: the callback may be
        in the middle of a block with it."""
        if self.insert is not None:
            self._retired.append((self.insert, self.ctl[H.C_CALLBACKS]))
        self.insert = insert
        self.free_retired()
        self.table[H.H_INSERT] = 0 if insert is None else B.address(insert.addresses)

    def free_retired(self, stopped: bool = False):
        """Close replaced inserts that the callback has let go of: two callbacks have started
        since (or `stopped`: none runs any more). Plugins are freed here, never on the audio thread."""
        keep = []
        for insert, stamp in self._retired:
            if stopped or self.ctl[H.C_CALLBACKS] >= stamp + 2:
                insert.close()
            else:
                keep.append((insert, stamp))
        self._retired = keep

    def latch_controls_here(self):
        """With no callback running: take every prepared control now, as a block start would."""
        for slot in self.slots:
            for p in ([] if slot is None else slot.processors):
                p.latch_now()
        for p in ([] if self.insert is None else self.insert.processors):
            p.latch_now()
        self.ctl[H.C_CONTROL_ACK] = self.ctl[H.C_CONTROL_REQ]

    def install(self, index: int, slot: Slot | None):
        """Point slot `index` at `slot` (only when the callback is not using that slot)."""
        self.slots[index] = slot
        table = self.empty_slots[index] if slot is None else slot.table
        self.table[H.H_SLOT0 + index] = B.address(table)

    @property
    def active_index(self) -> int:
        return int(self.ctl[H.C_ACTIVE_SLOT])

    @property
    def active(self) -> Slot | None:
        return self.slots[self.active_index]

    def finite(self, value: float, what: str) -> float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value}")
        return value
