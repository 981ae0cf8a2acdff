"""A recording pair as a processor kind: the dry file (what went into the device) and the wet
file (what came out), played together in sample lock. The kind writes the learner's input (the
dry file) itself, so nothing can drift between the two; x is ignored. The alignment (the wet
file played `align` samples earlier: the device's latency) is the kind's one control, so it
changes at a block start like any knob. Both files loop over the stretch where they overlap
once aligned: dry[d0 + k] with wet[w0 + k], d0 = max(-align, 0), w0 = max(align, 0). Where they
start over (PR_SEAM) the device's output starts from rest, so the learner's circuits restart
there too (the callback's _run_slot, OfflineTruth): a state carried across would be a false
error for the optimiser to chase."""
import numpy as np
from numba import njit

from engine.words import declare
from app.host.processors.base import Processor, f64
from app.host.processors.words import (KIND_WORDS, PR_CTL_TARGET, PR_DRY, PR_MAX_FRAMES, PR_OUT, PR_OWN_DRY,
                                       PR_SEAM, PROCESSOR_WORDS)

declare(globals(), "RC_", """
    DRY                # float64[len]: the dry file at the session's rate
    WET                # float64[len]: the wet file at the session's rate (same length)
    LEN
    POS                # samples into the aligned overlap
    PLAYED             # 1 once a sample was played (the very first start is not a seam; a pair
                       # shorter than a chunk starts over more than once in it: the first counts)
""", start=KIND_WORDS, end=PROCESSOR_WORDS)


class RecordingProcessor(Processor):
    def __init__(self, dry: np.ndarray, wet: np.ndarray, align: int, max_frames: int):
        dry = np.ascontiguousarray(dry, dtype=np.float64)
        wet = np.ascontiguousarray(wet, dtype=np.float64)
        if dry.shape != wet.shape or dry.ndim != 1:
            raise ValueError("the dry and wet recordings must be mono and of one length")
        self.align_value = np.array([float(align)])
        super().__init__("recording", max_frames, 0, self.align_value, np.zeros(1, dtype=np.int64))
        t = self.table
        t[PR_OWN_DRY] = 1
        t[RC_DRY], t[RC_WET], t[RC_LEN] = self._keep(dry), self._keep(wet), dry.size
        self.buffers.append(self.align_value)       # the control the step reads (PR_CTL_TARGET)

    def prepare_controls(self, values):
        """values: [align] (samples; rounded to a whole number)."""
        self.prepare(np.array([float(round(values[0]))]))


@njit(nogil=True, cache=True)
def recording_step(t, n):
    maxf = t[PR_MAX_FRAMES]
    dry_out = f64(t[PR_DRY], maxf)
    y = f64(t[PR_OUT], maxf)
    dry = f64(t[RC_DRY], t[RC_LEN])
    wet = f64(t[RC_WET], t[RC_LEN])
    align = int(f64(t[PR_CTL_TARGET], 1)[0])
    span = t[RC_LEN] - abs(align)
    if span <= 0:                       # an alignment as long as the files: nothing overlaps
        for i in range(n):
            dry_out[i] = 0.0
            y[i] = 0.0
        return True
    d0 = max(-align, 0)
    w0 = max(align, 0)
    pos = t[RC_POS] % span
    t[PR_SEAM] = -1
    for i in range(n):
        if pos == 0 and (i > 0 or t[RC_PLAYED] != 0) and t[PR_SEAM] < 0:
            t[PR_SEAM] = i              # the files start over here: so do the learner's circuits
        dry_out[i] = dry[d0 + pos]
        y[i] = wet[w0 + pos]
        pos += 1
        if pos >= span:
            pos = 0
    t[RC_POS] = pos
    t[RC_PLAYED] = 1
    return True


@njit(nogil=True, cache=True)
def recording_reset(t):
    """The files' samples are finite (checked when loaded): nothing to clear but the position."""
    t[RC_POS] = 0
    t[RC_PLAYED] = 0
