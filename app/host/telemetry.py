"""Reading what the audio callback publishes: telemetry rows (one per callback) and the scope
(recent samples). The callback is the only producer; one reader drains each ring. The reader side
may take a Python lock (several Python threads may ask); the callback never does."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from app.host import layout as H


@dataclass
class Snapshot:
    """The latest state, decoded from the newest telemetry row."""
    callbacks: int
    time: float
    loss: float
    params: dict
    skipped: int
    xruns: int
    cpu_us: float
    in_peak: float
    out_peak: float
    nonfinite_out: int
    limited: int
    bad_input: int
    learning: bool
    bank: int
    samples: int
    condition: float = 0.0
    diverged_steps: int = 0


@dataclass
class Frame:
    """What the window draws after one drain: the rows the running circuit published since the
    last drain (rows of a slot being swapped out, or of another parameter count, are left out)."""
    names: list[str]            # the learnable parameters, the columns of `params`
    time: np.ndarray            # seconds of audio, one per callback
    loss: np.ndarray
    params: np.ndarray          # (rows, len(names))
    bank: int                   # at the newest row
    condition: float
    cpu_load: float             # the slowest callback's time / the block's duration
    samples: int = 0            # the learner's sample count at the newest row
    diverged_steps: int = 0     # the learner's steps lost to divergence so far (newest row)

    @property
    def latest(self) -> dict:
        return dict(zip(self.names, self.params[-1].tolist()))


class TelemetryReader:
    def __init__(self, memory, param_names=lambda: []):
        self.mem = memory
        self._names = param_names
        self._lock = threading.Lock()
        self._scope_pos = 0

    def drain(self) -> np.ndarray:
        """All rows published since the last drain (oldest first), as a copy."""
        with self._lock:
            idx, tel = self.mem.ring_index, self.mem.telemetry
            tail, head = int(idx[H.R_TEL_TAIL]), int(idx[H.R_TEL_HEAD])
            rows = tel.shape[0]
            if head <= tail:
                return np.empty((0, H.TEL_COLS))
            picks = np.arange(tail, head) % rows
            out = tel[picks].copy()
            idx[H.R_TEL_TAIL] = head        # frees the rows for the callback
            return out

    def decode(self, row: np.ndarray) -> Snapshot:
        names = self._names()
        P = min(int(row[H.T_N_PARAMS]), len(names), H.TEL_MAX_PARAMS)
        return Snapshot(
            callbacks=int(row[H.T_BLOCK]) + 1, time=float(row[H.T_TIME]), loss=float(row[H.T_LOSS]),
            params={names[k]: float(row[H.TEL_HEADER + k]) for k in range(P)},
            skipped=int(row[H.T_SKIPPED]), xruns=int(row[H.T_XRUNS]), cpu_us=float(row[H.T_CPU_US]),
            in_peak=float(row[H.T_IN_PEAK]), out_peak=float(row[H.T_OUT_PEAK]),
            nonfinite_out=int(row[H.T_NONFINITE]), limited=int(row[H.T_LIMITED]),
            bad_input=int(row[H.T_BAD_INPUT]), learning=bool(row[H.T_LEARNING]),
            bank=int(row[H.T_BANK]), samples=int(row[H.T_SAMPLES]), condition=float(row[H.T_CONDITION]),
            diverged_steps=int(row[H.T_DIVERGED]))

    def frame(self, rows: np.ndarray, active_slot: int, names: list[str], deadline_us: float) -> Frame | None:
        """The rows of the active slot as a Frame (None when none of them belongs to it)."""
        if not rows.shape[0] or not names:
            return None
        keep = rows[(rows[:, H.T_SLOT] == active_slot) & (rows[:, H.T_N_PARAMS] == len(names))]
        if not keep.shape[0]:
            return None
        last = keep[-1]
        return Frame(names=list(names), time=keep[:, H.T_TIME], loss=keep[:, H.T_LOSS],
                     params=keep[:, H.TEL_HEADER:H.TEL_HEADER + len(names)], bank=int(last[H.T_BANK]),
                     condition=float(last[H.T_CONDITION]),
                     cpu_load=float(np.max(keep[:, H.T_CPU_US])) / deadline_us,
                     samples=int(last[H.T_SAMPLES]), diverged_steps=int(last[H.T_DIVERGED]))

    def signals(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The most recent n samples of the target and the learned output (for the scope)."""
        data = self.scope(n, [H.SC_TARGET, H.SC_LEARNED])
        return data[:, 0], data[:, 1]

    def scope(self, n: int, columns=None) -> np.ndarray:
        """The most recent n scope samples (oldest first); columns from host_layout SC_*."""
        scope = self.mem.scope
        n = min(int(n), scope.shape[0] // 2)
        for _ in range(4):
            head = int(self.mem.ring_index[H.R_SCOPE_HEAD])
            start = max(head - n, 0)
            data = scope[np.arange(start, head) % scope.shape[0]]
            # if the callback lapped the copied region meanwhile, copy again
            if int(self.mem.ring_index[H.R_SCOPE_HEAD]) - start <= scope.shape[0]:
                break
        return data if columns is None else data[:, columns]

    def scope_since(self, position: int) -> tuple[np.ndarray, int]:
        """Scope samples from absolute position on (for gap-free capture); returns (data, next)."""
        scope = self.mem.scope
        head = int(self.mem.ring_index[H.R_SCOPE_HEAD])
        start = max(position, head - scope.shape[0] // 2)
        data = scope[np.arange(start, head) % scope.shape[0]].copy()
        if start != position:
            raise OverflowError(f"scope overrun: {start - position} samples lost")
        return data, head

    @property
    def scope_position(self) -> int:
        return int(self.mem.ring_index[H.R_SCOPE_HEAD])


class RunStats:
    """Accumulates drained rows for a summary: callback CPU-time percentiles and counts."""

    def __init__(self):
        self.cpu_us: list[np.ndarray] = []
        self.rows = 0
        self.last = None

    def add(self, rows: np.ndarray):
        if rows.shape[0]:
            self.cpu_us.append(rows[:, H.T_CPU_US].copy())
            self.rows += rows.shape[0]
            self.last = rows[-1].copy()

    def cpu_percentiles(self) -> tuple[float, float, float]:
        """Median, 99th percentile and maximum of the callback's time per block, microseconds."""
        if not self.cpu_us:
            return float("nan"), float("nan"), float("nan")
        allv = np.concatenate(self.cpu_us)
        return float(np.median(allv)), float(np.percentile(allv, 99)), float(np.max(allv))

    def late_callbacks(self, deadline_us: float) -> int:
        """Callbacks that took longer than their block lasts: the xruns Dualtone's own processing
        caused, as distinct from the ones the system causes by not scheduling the audio thread."""
        return int(sum(int(np.count_nonzero(c > deadline_us)) for c in self.cpu_us))
