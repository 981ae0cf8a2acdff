"""The audio callback: a Numba cfunc that PortAudio calls directly, so no Python (and no GIL)
runs on the audio thread. It only touches preallocated arrays reached through the host table
(app/host/layout.py) and never allocates, locks or waits.

Per block: source -> (MIDI voice events at their sample offsets) -> knob glide rate, reset and swap
requests -> the active slot's kernel (and the incoming one during a crossfade) -> output mode
-> safety stage (NaN/Inf to silence, peak limiter below 0 dBFS) -> telemetry and scope rings.
"""
import math

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from engine import blockabi as B
from engine import layout as LY
from engine.sources import SOURCE_CODES, blep, lcg_block, loop_block, oscillator_block, white_block
from app.host import layout as H
from app.host.processors import PROCESSOR_WORDS, latch_controls, run_as_insert, run_as_target
from app.host.processors.words import PR_SEAM

CALLBACK_SIGNATURE = types.int32(types.voidptr, types.voidptr, types.uint64, types.voidptr,
                                 types.uint64, types.voidptr)
PA_CONTINUE = 0
MAX_EVENTS_PER_BLOCK = 64
SCRATCH_WORDS = 2 + 2 * MAX_EVENTS_PER_BLOCK   # int64: timespec, event offsets, event rows
HUGE_INPUT = 1.0e4          # +80 dBFS: beyond this an input sample is garbage, not audio
DC_BLOCK_HZ = 10.0          # the speaker path's high-pass: removes offsets, keeps the audio band
GARBAGE_OUT = 16.0          # +24 dBFS before the limiter: an explosion, not audio (silenced)

# the source word's values (engine/sources.py's table), as compile-time constants
SRC_INPUT, SRC_LCG, SRC_NOISE = SOURCE_CODES["input"], SOURCE_CODES["lcg-noise"], SOURCE_CODES["noise"]
SRC_SINE, SRC_SAW = SOURCE_CODES["sine"], SOURCE_CODES["saw"]
SRC_MIDI, SRC_FILE = SOURCE_CODES["midi"], SOURCE_CODES["file"]

CLOCK_MONOTONIC = 1          # what Python's time.monotonic() reads on Linux


@intrinsic
def _clock_gettime(typingctx, clock, timespec):
    """libc clock_gettime, declared directly so the cached callback holds no ctypes object."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [i32, ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        return builder.call(fn, [builder.trunc(args[0], i32), args[1]])
    return types.int32(clock, timespec), codegen


@njit(nogil=True, cache=True)
def _now(ts):
    _clock_gettime(CLOCK_MONOTONIC, B.address_as_voidptr(ts.ctypes.data))
    return ts[0] + ts[1] * 1e-9


@njit(nogil=True, cache=True)
def _f64(address, n):
    return carray(B.address_as_voidptr(address), (n,), dtype=np.float64)


@njit(nogil=True, cache=True)
def _f64_2d(address, rows, cols):
    return carray(B.address_as_voidptr(address), (rows, cols), dtype=np.float64)


@njit(nogil=True, cache=True)
def _slot(address):
    return carray(B.address_as_voidptr(address), (B.SLOT_WORDS,), dtype=np.int64)


@njit(nogil=True, cache=True)
def _take_events(midi, ridx, t_now, block_seconds, sr, n, offsets, rows):
    """Due MIDI events, each with its sample offset in this block. Events that arrived during
    the previous block are replayed one block later with their relative timing kept."""
    k = 0
    nrows = midi.shape[0]
    while ridx[H.R_MIDI_TAIL] < ridx[H.R_MIDI_HEAD] and k < offsets.shape[0]:
        r = ridx[H.R_MIDI_TAIL] % nrows
        off = (midi[r, H.M_TIME] - (t_now - block_seconds)) * sr
        offsets[k] = min(max(int(off), 0), n - 1)
        rows[k] = r
        k += 1
        ridx[H.R_MIDI_TAIL] += 1
    return k


@njit(nogil=True, cache=True)
def _apply_event(ctl, midi, r):
    if midi[r, H.M_KIND] == H.EV_VOICE:
        f = midi[r, H.M_A]
        if math.isfinite(f) and 0.0 < f < 0.5 * ctl[H.C_SAMPLE_RATE]:
            ctl[H.C_VOICE_FREQ] = f
        ctl[H.C_VOICE_GATE] = 1.0 if midi[r, H.M_B] > 0.0 else 0.0
        a = midi[r, H.M_C]
        if math.isfinite(a):
            ctl[H.C_VOICE_AMP] = min(max(a, 0.0), 1.0)
    ctl[H.C_MIDI_APPLIED] += 1.0


@njit(nogil=True, cache=True)
def _voice(ctl, midi, x, n, gain, sr, offsets, rows, nev):
    """A MIDI-driven saw voice; gate and velocity drive a linear attack/release envelope."""
    attack, release = 1.0 / (0.002 * sr), 1.0 / (0.030 * sr)
    ph, env = ctl[H.C_VOICE_PHASE], ctl[H.C_VOICE_ENV]
    e = 0
    for i in range(n):
        while e < nev and offsets[e] <= i:
            _apply_event(ctl, midi, rows[e])
            e += 1
        goal = ctl[H.C_VOICE_AMP] if ctl[H.C_VOICE_GATE] > 0.0 else 0.0
        if env < goal:
            env = min(env + attack, goal)
        elif env > goal:
            env = max(env - release, goal)
        dt = min(ctl[H.C_VOICE_FREQ] / sr, 0.5)
        x[i] = gain * env * (2.0 * ph - 1.0 - blep(ph, dt))
        ph += dt
        if ph >= 1.0:
            ph -= 1.0
    while e < nev:
        _apply_event(ctl, midi, rows[e])
        e += 1
    ctl[H.C_VOICE_PHASE], ctl[H.C_VOICE_ENV] = ph, env


@njit(nogil=True, cache=True)
def _set_midi_controls(slot, ctl):
    """The voice's note number and velocity, for circuits (bank conditions) that read them; they
    change at block boundaries."""
    if slot[B.S_BLOCK_FN] == 0:
        return
    cfg = _f64(slot[B.S_CFG], slot[B.S_CFG_LEN])
    cfg[LY.CF_NOTE] = 69.0 + 12.0 * math.log2(max(ctl[H.C_VOICE_FREQ], 1e-3) / 440.0)
    cfg[LY.CF_VELOCITY] = 127.0 * ctl[H.C_VOICE_AMP]


@njit(nogil=True, cache=True)
def _processor(address):
    return carray(B.address_as_voidptr(address), (PROCESSOR_WORDS,), dtype=np.int64)


@njit(nogil=True, cache=True)
def _latch_processors(h, slot_a, slot_b):
    """Every processor's prepared controls take effect here, together, at one block start."""
    for slot in (slot_a, slot_b):
        if slot[B.S_BLOCK_FN] != 0 and slot[B.S_PROCESSOR] != 0:
            latch_controls(_processor(slot[B.S_PROCESSOR]))
    if h[H.H_INSERT] != 0:
        tables = carray(B.address_as_voidptr(h[H.H_INSERT]), (2,), dtype=np.int64)
        for c in range(2):
            latch_controls(_processor(tables[c]))


@njit(nogil=True, cache=True)
def _set_glide(slot, sr, tau):
    """The kernel glides hidden knobs to their goals per sample; tell it how fast (tau seconds)."""
    if slot[B.S_BLOCK_FN] == 0:
        return
    cfg = _f64(slot[B.S_CFG], slot[B.S_CFG_LEN])
    cfg[LY.CF_GLIDE] = 1.0 if tau <= 0.0 else 1.0 - math.exp(-1.0 / (tau * sr))


@njit(nogil=True, cache=True)
def _reset_slot(slot):
    """Same as Learner.reset(): all state cleared, parameters back to the reset values."""
    st = _f64(slot[B.S_ST], slot[B.S_ST_LEN])
    P = slot[B.S_N_PARAMS]
    init = _f64(slot[B.S_INIT], max(P, 1))
    for i in range(st.shape[0]):
        st[i] = 0.0
    for k in range(P):
        st[slot[B.S_THETA] + k] = init[k]
    st[LY.ST_SCHED] = 1.0


@njit(nogil=True, cache=True)
def _take_kernel(slot):
    """A kernel specialised for new settings (engine/circuit/compiler.py: Variant) and those
    settings, taken together at a block start: never one block of a kernel on the other's words."""
    if slot[B.S_BLOCK_FN] == 0 or slot[B.S_NEXT_FN] == 0:
        return
    cfg = _f64(slot[B.S_CFG], slot[B.S_CFG_LEN])
    staged = _f64(slot[B.S_NEXT_SETTINGS], LY.CF_HEADER)
    for word in LY.SETTINGS:
        cfg[word] = staged[word]
    slot[B.S_BLOCK_FN] = slot[B.S_NEXT_FN]
    slot[B.S_NEXT_FN] = 0


@njit(nogil=True, cache=True)
def _restart_schedule(slot):
    """The learning-rate schedule back to its start (the rate decays again from --lr)."""
    st = _f64(slot[B.S_ST], slot[B.S_ST_LEN])
    st[LY.ST_SCHED] = 1.0
    st[LY.ST_SCHED_COUNT] = 0.0


@njit(nogil=True, cache=True)
def _run_slot(slot, n, x):
    """Run the slot's kernel on the shared source block x; False when the slot is empty. A slot
    whose target reads `sptmod` first runs its ground-truth processor on x (app/host/processors)."""
    if slot[B.S_BLOCK_FN] == 0:
        return False
    seam = -1
    if slot[B.S_PROCESSOR] != 0:
        out = carray(B.address_as_voidptr(slot[B.S_OUT]), (slot[B.S_MAX_FRAMES], 3), dtype=np.float64)
        t = _processor(slot[B.S_PROCESSOR])
        run_as_target(t, x, out, n)
        seam = t[PR_SEAM]
    if seam < 0 or slot[B.S_REST] < 0:
        B.call_block(slot[B.S_BLOCK_FN], B.address_as_voidptr(slot.ctypes.data), n)
        return True
    # a looping recording started over at `seam`: the circuits restart from rest there, as the
    # device's output does (the kernel runs up to it, then on from it)
    if seam > 0:
        B.call_block(slot[B.S_BLOCK_FN], B.address_as_voidptr(slot.ctypes.data), seam)
    _restart_circuits(slot)
    slot[B.S_X] += 8 * seam
    slot[B.S_OUT] += 24 * seam
    B.call_block(slot[B.S_BLOCK_FN], B.address_as_voidptr(slot.ctypes.data), n - seam)
    slot[B.S_X] -= 8 * seam
    slot[B.S_OUT] -= 24 * seam
    return True


@njit(nogil=True, cache=True)
def _restart_circuits(slot):
    """Learner.restart_circuits() for a slot: both circuits' state cleared, parameters kept."""
    st = _f64(slot[B.S_ST], slot[B.S_ST_LEN])
    for r in range(2):
        for i in range(slot[B.S_REST + 2 * r], slot[B.S_REST + 2 * r + 1]):
            st[i] = 0.0


@njit(nogil=True, cache=True)
def _mode_value(mode, tgt, lrn, sono, right):
    if mode == 0:
        return tgt
    if mode == 1:
        return lrn
    if mode == 2:
        return lrn if right else tgt
    if mode == 3:
        return tgt - lrn
    return sono


@njit(nogil=True, cache=True)
def _chunk(h, ctl, ridx, inp, nin, outp, nout, pos, n, t_now, offsets, rows):
    """One stretch of a callback between MIDI events: source -> requests -> circuits -> mix ->
    insert -> safety -> speakers."""
    x = _f64(h[H.H_X], h[H.H_MAX_FRAMES])
    _fill_source(h, ctl, ridx, x, inp, nin, pos, n, t_now, offsets, rows)
    _device_io(h, ctl, inp, nin, pos, n)
    active = int(ctl[H.C_ACTIVE_SLOT])
    slot_a = _slot(h[H.H_SLOT0 + active])
    slot_b = _slot(h[H.H_SLOT0 + 1 - active])
    fading = _take_requests(h, ctl, slot_a, slot_b)
    have_a, have_b = _run_circuits(ctl, slot_a, slot_b, fading, x, n)
    fade_pos = _mix(h, ctl, ridx, x, inp, nin, pos, n, slot_a, slot_b, have_a, have_b, fading)
    _run_insert(h, ctl, n)
    _safety(h, ctl, ridx, outp, nout, pos, n)
    if fading:
        if fade_pos >= max(ctl[H.C_FADE_LEN], 1.0):
            # the incoming circuit is now the one playing; the session may free the old one
            ctl[H.C_ACTIVE_SLOT] = 1 - active
            ctl[H.C_FADE_POS] = -1.0
            ctl[H.C_SWAP_ACK] = ctl[H.C_SWAP_REQ]
        else:
            ctl[H.C_FADE_POS] = fade_pos


@njit(nogil=True, cache=True)
def _fill_source(h, ctl, ridx, x, inp, nin, pos, n, t_now, offsets, rows):
    """x[:n]: the selected source (a file swapped in at this boundary, MIDI events applied at
    their sample offsets); garbage input becomes NaN, which the learner skips."""
    sr = ctl[H.C_SAMPLE_RATE]
    midi = _f64_2d(h[H.H_MIDI], h[H.H_MIDI_ROWS], H.MIDI_COLS)
    source = int(ctl[H.C_SOURCE])
    gain = ctl[H.C_SOURCE_GAIN]
    if ctl[H.C_FILE_REQ] != ctl[H.C_FILE_ACK]:
        h[H.H_FILE], h[H.H_FILE_LEN] = h[H.H_FILE_NEXT], h[H.H_FILE_NEXT_LEN]
        ctl[H.C_FILE_POS] = 0.0
        ctl[H.C_FILE_ACK] = ctl[H.C_FILE_REQ]
    nev = _take_events(midi, ridx, t_now, n / sr, sr, n, offsets, rows)
    if source == SRC_INPUT:
        ch = int(ctl[H.C_IN_CHANNEL])
        if nin > 0 and 0 <= ch < nin:
            for i in range(n):
                x[i] = gain * inp[(pos + i) * nin + ch]
        else:
            for i in range(n):
                x[i] = 0.0
    elif source == SRC_LCG:
        ctl[H.C_LCG] = lcg_block(x, n, np.int64(ctl[H.C_LCG]), gain)     # diff.lib's sequence
    elif source == SRC_NOISE:
        white_block(x, n, carray(B.address_as_voidptr(h[H.H_NOISE]), (1,), dtype=np.uint64), gain)
    elif source == SRC_SINE or source == SRC_SAW:
        ctl[H.C_PHASE] = oscillator_block(x, n, ctl[H.C_PHASE], ctl[H.C_SOURCE_HZ], sr, gain,
                                          source == SRC_SAW)
    elif source == SRC_FILE and h[H.H_FILE_LEN] > 0:
        data = _f64(h[H.H_FILE], h[H.H_FILE_LEN])
        ctl[H.C_FILE_POS] = loop_block(x, n, data, int(ctl[H.C_FILE_POS]), gain)
    else:
        for i in range(n):
            x[i] = 0.0
    if source == SRC_MIDI:
        _voice(ctl, midi, x, n, gain, sr, offsets, rows, nev)
    else:
        for e in range(nev):
            _apply_event(ctl, midi, rows[e])
    # garbage never reaches the learner's parameters (NaN samples are skipped)
    in_peak = 0.0
    for i in range(n):
        v = x[i]
        if not (abs(v) <= HUGE_INPUT):
            x[i] = math.nan
            ctl[H.C_BAD_INPUT] += 1.0
        else:
            in_peak = max(in_peak, abs(v))
    ctl[H.C_IN_PEAK] = max(ctl[H.C_IN_PEAK], in_peak)


@njit(nogil=True, cache=True)
def _device_io(h, ctl, inp, nin, pos, n):
    """A device in the loop: its return channel into H_RETURN (garbage becomes silence, counted
    as bad input) and H_SEND cleared, so the send channel is silent unless a device ground
    truth fills it this chunk."""
    if ctl[H.C_RETURN_CHANNEL] < 0.0 and ctl[H.C_SEND_CHANNEL] < 0.0:
        return                           # no device in the loop: nothing to copy or clear
    maxf = h[H.H_MAX_FRAMES]
    ret = _f64(h[H.H_RETURN], maxf)
    send = _f64(h[H.H_SEND], maxf)
    ch = int(ctl[H.C_RETURN_CHANNEL])
    live = 0 <= ch < nin
    for i in range(n):
        send[i] = 0.0
        v = inp[(pos + i) * nin + ch] if live else 0.0
        if not (abs(v) <= HUGE_INPUT):
            v = 0.0
            ctl[H.C_BAD_INPUT] += 1.0
        ret[i] = v


@njit(nogil=True, cache=True)
def _take_requests(h, ctl, slot_a, slot_b):
    """The session's requests, taken at this boundary: processors' prepared controls, a reset,
    a kernel for new settings, the start of a circuit swap. Returns whether a crossfade runs."""
    if ctl[H.C_CONTROL_REQ] != ctl[H.C_CONTROL_ACK]:
        _latch_processors(h, slot_a, slot_b)
        ctl[H.C_CONTROL_ACK] = ctl[H.C_CONTROL_REQ]
    if ctl[H.C_RESET_REQ] != ctl[H.C_RESET_ACK]:
        if slot_a[B.S_BLOCK_FN] != 0:
            _reset_slot(slot_a)
        ctl[H.C_RESET_ACK] = ctl[H.C_RESET_REQ]
    if ctl[H.C_KERNEL_REQ] != ctl[H.C_KERNEL_ACK]:
        _take_kernel(slot_a)
        _take_kernel(slot_b)
        ctl[H.C_KERNEL_ACK] = ctl[H.C_KERNEL_REQ]
    if ctl[H.C_SCHEDULE_REQ] != ctl[H.C_SCHEDULE_ACK]:
        for slot in (slot_a, slot_b):
            if slot[B.S_BLOCK_FN] != 0:
                _restart_schedule(slot)
        ctl[H.C_SCHEDULE_ACK] = ctl[H.C_SCHEDULE_REQ]
    fading = ctl[H.C_FADE_POS] >= 0.0
    if not fading and ctl[H.C_SWAP_REQ] != ctl[H.C_SWAP_ACK]:
        ctl[H.C_FADE_POS] = 0.0
        fading = True
    return fading


@njit(nogil=True, cache=True)
def _run_circuits(ctl, slot_a, slot_b, fading, x, n):
    """The playing circuit's kernel (and the incoming one's during a crossfade) on x."""
    sr = ctl[H.C_SAMPLE_RATE]
    tau = ctl[H.C_KNOB_TAU]
    _set_midi_controls(slot_a, ctl)
    _set_glide(slot_a, sr, tau)
    have_a = _run_slot(slot_a, n, x)
    have_b = False
    if fading:
        _set_midi_controls(slot_b, ctl)
        _set_glide(slot_b, sr, tau)
        have_b = _run_slot(slot_b, n, x)
    return have_a, have_b


@njit(nogil=True, cache=True)
def _mix(h, ctl, ridx, x, inp, nin, pos, n, slot_a, slot_b, have_a, have_b, fading):
    """The two speaker channels before the insert and the safety stage (H_PRE), by output mode
    (crossfaded over one block when it changes, and between circuits during a swap); the scope
    rows. Returns the crossfade position after this chunk."""
    sr = ctl[H.C_SAMPLE_RATE]
    maxf = h[H.H_MAX_FRAMES]
    scope = _f64_2d(h[H.H_SCOPE], h[H.H_SCOPE_ROWS], H.SCOPE_COLS)
    out_a = _f64_2d(slot_a[B.S_OUT], slot_a[B.S_MAX_FRAMES], 3)
    out_b = _f64_2d(slot_b[B.S_OUT], slot_b[B.S_MAX_FRAMES], 3)
    fade_len = max(ctl[H.C_FADE_LEN], 1.0)
    fade_pos = ctl[H.C_FADE_POS]
    mode_new = int(ctl[H.C_OUTPUT_MODE])
    mode_old = int(ctl[H.C_MODE_NOW])
    sono_ph, sono_lv = ctl[H.C_SONIFY_PHASE], ctl[H.C_SONIFY_LEVEL]
    sono_a = 1.0 - math.exp(-1.0 / (0.01 * sr))
    loss_mode = H.MODE_LOSS
    sonify = mode_new == loss_mode or mode_old == loss_mode     # only computed when heard
    shead = ridx[H.R_SCOPE_HEAD]
    srows = scope.shape[0]
    pre_l = _f64(h[H.H_PRE], maxf)
    pre_r = _f64(h[H.H_PRE] + 8 * maxf, maxf)
    for i in range(n):
        tgt = out_a[i, 0] if have_a else 0.0
        lrn = out_a[i, 1] if have_a else 0.0
        loss = out_a[i, 2] if have_a else 0.0
        if fading:
            r = min(fade_pos / fade_len, 1.0)
            tb = out_b[i, 0] if have_b else 0.0
            lb = out_b[i, 1] if have_b else 0.0
            tgt = (1.0 - r) * tgt + r * tb
            lrn = (1.0 - r) * lrn + r * lb
            fade_pos += 1.0
        sono = 0.0
        if sonify:
            # the loss heard as pitch: 110 Hz at 1e-8 up to 1760 Hz at 1 and above
            if math.isfinite(loss):
                lv = min(max(math.log10(max(loss, 1e-12)) + 8.0, 0.0), 8.0)
                sono_lv += (lv - sono_lv) * sono_a
                if sono_lv < 1e-9:
                    sono_lv = 0.0     # never decay into subnormals: they cost ~10 us per block
            sono = 0.25 * math.sin(2.0 * math.pi * sono_ph)
            sono_ph += 110.0 * 2.0 ** (0.5 * sono_lv) / sr
            if sono_ph >= 1.0:
                sono_ph -= 1.0
        left = _mode_value(mode_new, tgt, lrn, sono, False)
        right = _mode_value(mode_new, tgt, lrn, sono, True)
        if mode_old != mode_new:
            r = (i + 1.0) / n
            left = r * left + (1.0 - r) * _mode_value(mode_old, tgt, lrn, sono, False)
            right = r * right + (1.0 - r) * _mode_value(mode_old, tgt, lrn, sono, True)
        pre_l[i] = left
        pre_r[i] = right
        srow = (shead + i) % srows
        scope[srow, H.SC_SOURCE] = x[i]
        scope[srow, H.SC_INPUT] = inp[(pos + i) * nin] if nin > 0 else 0.0
        scope[srow, H.SC_TARGET] = tgt
        scope[srow, H.SC_LEARNED] = lrn
    ctl[H.C_SONIFY_PHASE], ctl[H.C_SONIFY_LEVEL] = sono_ph, sono_lv
    ctl[H.C_MODE_NOW] = mode_new
    return fade_pos


@njit(nogil=True, cache=True)
def _run_insert(h, ctl, n):
    """The insert on the output (one processor per channel), before the safety stage; bypassed,
    H_PRE passes untouched."""
    if h[H.H_INSERT] == 0 or ctl[H.C_INSERT_BYPASS] != 0.0:
        return
    maxf = h[H.H_MAX_FRAMES]
    tables = carray(B.address_as_voidptr(h[H.H_INSERT]), (2,), dtype=np.int64)
    for c in range(2):
        run_as_insert(_processor(tables[c]), _f64(h[H.H_PRE] + 8 * maxf * c, maxf), n)


@njit(nogil=True, cache=True)
def _safety(h, ctl, ridx, outp, nout, pos, n):
    """H_PRE to the speakers: master gain, NaN/Inf to silence (counted), the DC blocker, the peak
    limiter below the ceiling (onsets counted); the scope's output column."""
    sr = ctl[H.C_SAMPLE_RATE]
    maxf = h[H.H_MAX_FRAMES]
    scope = _f64_2d(h[H.H_SCOPE], h[H.H_SCOPE_ROWS], H.SCOPE_COLS)
    pre_l = _f64(h[H.H_PRE], maxf)
    pre_r = _f64(h[H.H_PRE] + 8 * maxf, maxf)
    ceiling = min(max(ctl[H.C_LIMIT_CEILING], 0.0), 0.999)
    release = 1.0 / max(ctl[H.C_RELEASE_S] * sr, 1.0)
    master = 0.0 if ctl[H.C_MUTE] != 0.0 else ctl[H.C_MASTER_GAIN]
    g = ctl[H.C_LIMIT_GAIN]
    out_peak = 0.0
    shead = ridx[H.R_SCOPE_HEAD]
    srows = scope.shape[0]
    dc_on = ctl[H.C_DC_BLOCK] != 0.0
    dc_r = math.exp(-2.0 * math.pi * DC_BLOCK_HZ / sr)
    dxl, dyl = ctl[H.C_DC_STATE], ctl[H.C_DC_STATE + 1]
    dxr, dyr = ctl[H.C_DC_STATE + 2], ctl[H.C_DC_STATE + 3]
    send_ch = int(ctl[H.C_SEND_CHANNEL])
    send = _f64(h[H.H_SEND], maxf)
    for i in range(n):
        left = pre_l[i] * master
        right = pre_r[i] * master
        if not math.isfinite(left):
            left = 0.0
            ctl[H.C_NONFINITE_OUT] += 1.0
        if not math.isfinite(right):
            right = 0.0
            ctl[H.C_NONFINITE_OUT] += 1.0
        if dc_on:                        # y[n] = x[n] - x[n-1] + r y[n-1]: a one-pole DC blocker
            if abs(left) > GARBAGE_OUT:  # would ring through the blocker for a second
                left = 0.0
            if abs(right) > GARBAGE_OUT:
                right = 0.0
            dyl = left - dxl + dc_r * dyl
            dyr = right - dxr + dc_r * dyr
            dxl, dxr = left, right
            if abs(dyl) < 1e-30:
                dyl = 0.0                # never decay into subnormals
            if abs(dyr) < 1e-30:
                dyr = 0.0
            left, right = dyl, dyr
        peak = max(abs(left), abs(right))
        was_limiting = g < 1.0
        if peak * g > ceiling:
            g = ceiling / peak           # instant attack: the ceiling is never crossed
        elif g < 1.0:
            g = min(g + release, 1.0)    # linear release back to exactly 1 (bit-exact when quiet)
            if peak * g > ceiling:
                g = ceiling / peak
        if g < 1.0:
            ctl[H.C_LIMITED_SAMPLES] += 1.0
            if not was_limiting:
                ctl[H.C_LIMITED] += 1.0  # an onset: a count that means something at any level
        left *= g
        right *= g
        # float32 rounding can lift a value just above the ceiling; clamp to keep the promise
        left = min(max(left, -ceiling), ceiling)
        right = min(max(right, -ceiling), ceiling)
        out_peak = max(out_peak, abs(left), abs(right))
        o = (pos + i) * nout
        if nout > 0:
            outp[o] = left
        if nout > 1:
            outp[o + 1] = right
        for c in range(2, nout):
            outp[o + c] = left
        if 0 <= send_ch < nout:          # the device's feed replaces the monitor on its channel
            v = send[i]
            outp[o + send_ch] = min(max(v, -1.0), 1.0) if v - v == 0.0 else 0.0
        scope[(shead + i) % srows, H.SC_OUT_LEFT] = left
    ridx[H.R_SCOPE_HEAD] = shead + n
    ctl[H.C_LIMIT_GAIN] = g
    ctl[H.C_DC_STATE], ctl[H.C_DC_STATE + 1] = dxl, dyl
    ctl[H.C_DC_STATE + 2], ctl[H.C_DC_STATE + 3] = dxr, dyr
    ctl[H.C_OUT_PEAK] = max(ctl[H.C_OUT_PEAK], out_peak)


@njit(nogil=True, cache=True)
def _publish(h, ctl, ridx, t_start, frames, status, cpu_us):
    tel = _f64_2d(h[H.H_TEL], h[H.H_TEL_ROWS], H.TEL_COLS)
    head = ridx[H.R_TEL_HEAD]
    if head - ridx[H.R_TEL_TAIL] >= tel.shape[0]:
        ctl[H.C_TEL_DROPPED] += 1.0
        return
    row = tel[head % tel.shape[0]]
    active = int(ctl[H.C_ACTIVE_SLOT])
    slot = _slot(h[H.H_SLOT0 + active])
    row[H.T_BLOCK] = ctl[H.C_CALLBACKS]
    row[H.T_TIME] = t_start
    row[H.T_FRAMES] = frames
    row[H.T_STATUS] = status
    row[H.T_CPU_US] = cpu_us
    row[H.T_IN_PEAK] = ctl[H.C_IN_PEAK]
    row[H.T_OUT_PEAK] = ctl[H.C_OUT_PEAK]
    row[H.T_NONFINITE] = ctl[H.C_NONFINITE_OUT]
    row[H.T_LIMITED] = ctl[H.C_LIMITED]
    row[H.T_SLOT] = active
    row[H.T_XRUNS] = ctl[H.C_XRUNS]
    row[H.T_BAD_INPUT] = ctl[H.C_BAD_INPUT]
    P = slot[B.S_N_PARAMS]
    row[H.T_N_PARAMS] = P
    if slot[B.S_BLOCK_FN] != 0:
        st = _f64(slot[B.S_ST], slot[B.S_ST_LEN])
        cfg = _f64(slot[B.S_CFG], slot[B.S_CFG_LEN])
        row[H.T_LOSS] = st[LY.ST_LOSS]
        row[H.T_SKIPPED] = st[LY.ST_SKIPPED]
        row[H.T_DIVERGED] = st[LY.ST_DIVERGED]
        row[H.T_SAMPLES] = st[LY.ST_N]
        row[H.T_RESETS] = st[LY.ST_RESETS]
        row[H.T_LEARNING] = cfg[LY.CF_LEARN]
        row[H.T_BANK] = st[slot[B.S_BANK_INDEX]] if slot[B.S_BANK_INDEX] >= 0 else 0.0
        row[H.T_CONDITION] = st[slot[B.S_BANK_INDEX] + 1] if slot[B.S_BANK_INDEX] >= 0 else 0.0
        th, lo, hi = slot[B.S_THETA], slot[B.S_LO], slot[B.S_HI]
        for k in range(min(P, H.TEL_MAX_PARAMS)):
            row[H.TEL_HEADER + k] = min(max(st[th + k], cfg[lo + k]), cfg[hi + k])
    else:
        row[H.T_LOSS] = math.nan
        row[H.T_SKIPPED] = 0.0
        row[H.T_DIVERGED] = 0.0
        row[H.T_SAMPLES] = 0.0
        row[H.T_RESETS] = 0.0
        row[H.T_LEARNING] = 0.0
        row[H.T_BANK] = 0.0
        row[H.T_CONDITION] = 0.0
    ridx[H.R_TEL_HEAD] = head + 1


@cfunc(CALLBACK_SIGNATURE, nogil=True, cache=True, error_model="numpy")
def audio_callback(inp, outp, frames, time_info, status, user):
    h = carray(user, (H.HOST_WORDS,), dtype=np.int64)
    ts = carray(B.address_as_voidptr(h[H.H_SCRATCH]), (2,), dtype=np.int64)
    t_start = _now(ts)
    ctl = _f64(h[H.H_CTL], H.CTL_WORDS)
    ridx = carray(B.address_as_voidptr(h[H.H_RING_INDEX]), (H.R_WORDS,), dtype=np.int64)
    nin, nout = h[H.H_NIN], h[H.H_NOUT]
    n_all = np.int64(frames)
    if B.voidptr_address(inp) != 0:
        ins = carray(inp, (max(n_all * nin, 1),), dtype=np.float32)
    else:                       # output-only stream: nothing is read from `ins`
        nin = 0
        ins = carray(B.address_as_voidptr(h[H.H_X]), (1,), dtype=np.float32)
    outs = carray(outp, (max(n_all * nout, 1),), dtype=np.float32)
    if np.int64(status) & H.XRUN_FLAGS:
        ctl[H.C_XRUNS] += 1.0
    ctl[H.C_STATUS_BITS] = float(np.int64(ctl[H.C_STATUS_BITS]) | np.int64(status))
    ctl[H.C_IN_PEAK] = 0.0
    ctl[H.C_OUT_PEAK] = 0.0
    offsets = carray(B.address_as_voidptr(h[H.H_SCRATCH] + 16), (MAX_EVENTS_PER_BLOCK,), dtype=np.int64)
    rows = carray(B.address_as_voidptr(h[H.H_SCRATCH] + 16 + 8 * MAX_EVENTS_PER_BLOCK),
                  (MAX_EVENTS_PER_BLOCK,), dtype=np.int64)
    maxf = h[H.H_MAX_FRAMES]
    pos = np.int64(0)
    while pos < n_all:
        n = min(n_all - pos, maxf)
        _chunk(h, ctl, ridx, ins, nin, outs, nout, pos, n, t_start, offsets, rows)
        pos += n
    ctl[H.C_FRAMES] += n_all
    cpu_us = (_now(ts) - t_start) * 1e6
    _publish(h, ctl, ridx, t_start, n_all, np.int64(status), cpu_us)
    ctl[H.C_CALLBACKS] += 1.0
    return PA_CONTINUE
