"""What the callback calls: a processor as a ground truth or as an insert, and the control latch.
The kind's step and reset are chosen here by the table's PR_KIND (the one place a new kind is
added). A processor never sees a non-finite input sample (it would stay in its state until a
reset), and one whose output goes non-finite restarts silent and is counted."""
from numba import njit

from app.host.processors.base import f64, latch_controls  # noqa: F401  (the callback calls it from here)
from app.host.processors.device import device_reset, device_step
from app.host.processors.plugin import plugin_reset, plugin_step
from app.host.processors.recording import recording_reset, recording_step
from app.host.processors.sptmod import sptmod_reset, sptmod_step
from app.host.processors.words import (
    KINDS, PR_DRY, PR_IN, PR_KIND, PR_LATENCY, PR_MAX_FRAMES, PR_OUT, PR_OWN_DRY, PR_RESTARTS, PR_RING,
    PR_RING_LEN, PR_RING_POS)

KIND_SPTMOD, KIND_PLUGIN, KIND_RECORDING, KIND_DEVICE = (
    KINDS["sptmod"], KINDS["plugin"], KINDS["recording"], KINDS["device"])


@njit(nogil=True, cache=True)
def _step(t, n):
    kind = t[PR_KIND]
    if kind == KIND_SPTMOD:
        return sptmod_step(t, n)
    if kind == KIND_PLUGIN:
        return plugin_step(t, n)
    if kind == KIND_RECORDING:
        return recording_step(t, n)
    if kind == KIND_DEVICE:
        return device_step(t, n)
    return False


@njit(nogil=True, cache=True)
def _reset(t):
    kind = t[PR_KIND]
    if kind == KIND_SPTMOD:
        sptmod_reset(t)
    elif kind == KIND_PLUGIN:
        plugin_reset(t)
    elif kind == KIND_RECORDING:
        recording_reset(t)
    elif kind == KIND_DEVICE:
        device_reset(t)


@njit(nogil=True, cache=True)
def _process(t, x, n):
    """processor(x[:n]) into the table's output buffer (returned)."""
    maxf = t[PR_MAX_FRAMES]
    xin = f64(t[PR_IN], maxf)
    y = f64(t[PR_OUT], maxf)
    for i in range(n):
        v = x[i]
        xin[i] = v if v - v == 0.0 else 0.0
    ok = _step(t, n)
    for i in range(n):
        if not (y[i] - y[i] == 0.0):
            ok = False
    if not ok:
        _reset(t)
        t[PR_RESTARTS] += 1
        for i in range(n):
            y[i] = 0.0
    return y


@njit(nogil=True, cache=True)
def run_as_target(t, x, out, n):
    """One chunk as a ground truth: processor(x) -> out[:n, 0]; x delayed by the processor's
    latency -> the dry buffer (the learner's input), so both compare the same input samples
    (unless the kind writes the dry buffer itself: PR_OWN_DRY)."""
    y = _process(t, x, n)
    for i in range(n):
        out[i, 0] = y[i]
    if t[PR_OWN_DRY] != 0:
        return
    dry = f64(t[PR_DRY], t[PR_MAX_FRAMES])
    ring = f64(t[PR_RING], t[PR_RING_LEN])
    lat = t[PR_LATENCY]
    mask = t[PR_RING_LEN] - 1
    pos = t[PR_RING_POS]
    for i in range(n):
        ring[pos & mask] = x[i]
        dry[i] = ring[(pos - lat) & mask]
        pos += 1
    t[PR_RING_POS] = pos


@njit(nogil=True, cache=True)
def run_as_insert(t, buf, n):
    """One chunk as an insert effect: buf[:n] is replaced by processor(buf[:n])."""
    y = _process(t, buf, n)
    for i in range(n):
        buf[i] = y[i]

