"""The Python side of a processor: its table, the buffers the table points to (kept alive here),
and controls prepared off the audio thread for the callback to latch at a block start."""
import math

import numpy as np
from numba import carray, njit

from engine import blockabi as B
from app.host.processors.words import (
    KINDS, PR_CTL_INDEX, PR_CTL_LEN, PR_CTL_PENDING, PR_CTL_READY, PR_CTL_TARGET, PR_CTL_TARGET_LEN,
    PR_DRY, PR_IN, PR_KIND, PR_LATENCY, PR_MAX_FRAMES, PR_OUT, PR_RESTARTS, PR_RING, PR_RING_LEN, PR_SEAM,
    PROCESSOR_WORDS)


class Processor:
    """kind: a KINDS name; max_frames: the largest chunk; max_latency: the most samples its output
    can lag; controls_target, controls_index: the float64 array the kind reads its controls from
    and where in it the prepared values go."""

    def __init__(self, kind: str, max_frames: int, max_latency: int,
                 controls_target: np.ndarray, controls_index: np.ndarray):
        self.buffers: list = []
        t = np.zeros(PROCESSOR_WORDS, dtype=np.int64)
        t[PR_KIND], t[PR_MAX_FRAMES], t[PR_SEAM] = KINDS[kind], max_frames, -1
        self.input, self.output, self.dry = (np.zeros(max_frames) for _ in range(3))
        t[PR_IN], t[PR_OUT], t[PR_DRY] = (self._keep(a) for a in (self.input, self.output, self.dry))
        ring_len = 1 << int(math.ceil(math.log2(max(2 * max_latency, 2))))
        t[PR_RING], t[PR_RING_LEN] = self._keep(np.zeros(ring_len)), ring_len
        self.controls_index = np.ascontiguousarray(controls_index, dtype=np.int64)
        self.controls_pending = np.zeros(self.controls_index.size)
        t[PR_CTL_PENDING] = self._keep(self.controls_pending)
        t[PR_CTL_INDEX], t[PR_CTL_LEN] = self._keep(self.controls_index), self.controls_index.size
        t[PR_CTL_TARGET], t[PR_CTL_TARGET_LEN] = B.address(controls_target), controls_target.size
        self.table = t

    def _keep(self, a: np.ndarray) -> int:
        self.buffers.append(a)
        return B.address(a)

    def arrays(self) -> tuple:
        """Every array the callback reaches through the table (to keep resident)."""
        return tuple(self.buffers)

    def dry_address(self) -> int:
        """Where a ground truth leaves its input delayed by its latency (the learner's x)."""
        return B.address(self.dry)

    def prepare(self, coefficients: np.ndarray):
        """Stage control coefficients (controls_index order) for the next latch; the caller
        waits for any earlier request to be taken first."""
        self.controls_pending[:] = coefficients
        self.table[PR_CTL_READY] = 1

    def latch_now(self):
        """Take the prepared controls here (only while the callback does not run this table)."""
        latch_controls(self.table)

    def service(self):
        """Work the audio thread asked for, done here off it (none for most kinds)."""

    @property
    def restarts(self) -> int:
        return int(self.table[PR_RESTARTS])

    @property
    def latency(self) -> int:
        return int(self.table[PR_LATENCY])


@njit(nogil=True, cache=True)
def f64(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.float64)


@njit(nogil=True, cache=True)
def i64(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.int64)


@njit(nogil=True, cache=True)
def latch_controls(t):
    """Pending controls (if any) into what the kind reads: at a block start, or with no callback."""
    if t[PR_CTL_READY] == 0:
        return
    target = f64(t[PR_CTL_TARGET], t[PR_CTL_TARGET_LEN])
    pending = f64(t[PR_CTL_PENDING], t[PR_CTL_LEN])
    index = i64(t[PR_CTL_INDEX], t[PR_CTL_LEN])
    for k in range(t[PR_CTL_LEN]):
        target[index[k]] = pending[k]
    t[PR_CTL_READY] = 0
