"""The spectral loss: a streaming constant-Q view of target and output, and the distance between
them, with exact forward-mode derivatives. Runs inside the kernel, per sample.

Per sample, for the target and for the output (and each of the output's tangents, which pass
through every linear stage unchanged in form):
  1. an analytic front end: two chains of eight second-order allpass sections whose outputs differ
     by 90 degrees (within 0.0056 degrees from 15 Hz to 21 kHz at 48 kHz), I + jQ - so a sine
     excites only its own bin, not an image at its mirror (86 dB down);
  2. a bank of complex one-pole resonators, BINS_PER_OCTAVE per octave from fmin to fmax, each
     X <- r e^{iw} X + (1 - r) z with a bandwidth of BANDWIDTH_SPACINGS bin spacings (narrower bins
     leave spurious minima between them);
  3. each bin's power |X|^2 smoothed over SMOOTH_SECONDS.
Once per block (the hop), from the smoothed powers (each times its bin's weight: 1, or in a pitch
kernel fmin / f, power per hertz: see the note on the weights below):
  * W1, the 1-D Wasserstein distance between the two normalised power distributions along
    log-frequency (in octaves): sum_k |C_out(k) - C_tgt(k)| * (octaves per bin), where C is the
    cumulative distribution. It has no spurious minima where a time-domain loss has many: a
    distribution that sits too high is pulled down from anywhere. Its derivative is
    sum_k sign(C_out(k) - C_tgt(k)) * dC_out(k) * (octaves per bin);
  * a level term, W1 ignoring level: |log2 of the amplitude ratio| = |0.5 log2(sum S_out / sum S_tgt)|,
    in doublings as W1 is in octaves (both linear in the distance, so one Polyak gain suits both);
  * in a pitch kernel (a learnable frequency drives an oscillator), the fine stage: the frequency
    error in the target's strongest bin, a frequency-locked loop (fine_track, fine_error below).
    Where a parameter sets a delay's length, the lag lock plays that part (engine/learn/lag_lock.py).

An oscillator's phase tangent (d phase / d frequency) grows with time: it is the unwrapped phase's.
A bin's power discards a common phase, so for an analytic signal that growth cancels exactly - but
the image the front end leaves does not, and its error grows with the tangent: at 53 dB of
rejection a converged 90 Hz sine drifted away within 40 s. Zeroing the tangent at each block
removes the gradient itself (the frequency information is the phase difference across a bin's
memory, 13-110 ms at 48 kHz, not one block), and letting it leak removes it too (a steady tangent
carries no difference). So under this loss, every RESTART_SECONDS the oscillators' phase tangents
and the bank's tangent lanes restart from zero - the derivative becomes "the parameter changes from
now on", exact again after a bin's memory - and no step is taken for WARM_SECONDS after. The
tangent stays below RESTART_SECONDS of phase per hertz, and with 86 dB of rejection its error term
below ~2e-5 x f per neper against a gradient of ~1.4. (An IIR filter after the oscillator keeps
its own tangent state across a restart: that error decays with the filter's memory.)

State per channel (the target: one lane; the output: one lane per value and tangent), in st:
per lane, the allpass chains' memories (LANE_FRONT words) and each bin's complex X (2 words); then
per lane each bin's smoothed power (the value lane) or its tangent.
The bank's constants (per bin r cos w, r sin w, 1 - r) and the smoothing factor live in cfg.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

BINS_PER_OCTAVE = 12
BANDWIDTH_SPACINGS = 2.0      # each bin's -3 dB bandwidth, in bin spacings
SMOOTH_SECONDS = 0.015        # the powers' one-pole smoothing
DEFAULT_FMIN = 25.0
DEFAULT_FMAX = 16000.0
NYQUIST_SHARE = 0.45          # fmax is kept below this share of the sample rate
MIN_FMIN = 20.0               # the lowest fmin; a kernel has room for the bins from here up
DEFAULT_HOP = 128             # samples per block: one step per block
POLYAK_FLOOR = 0.25           # |g|^2 in the Polyak step is at least this: near the optimum the loss
                              #   and its gradient both vanish, in any ratio (W1 measures octaves: a
                              #   healthy gradient is ~1.4 per neper, so this floor is 0.5 per neper)
RESTART_SECONDS = 1.0         # the oscillators' phase tangents and the bank's tangents restart this
WARM_SECONDS = 0.15           #   often, and no step is taken for this long after (see above)
POLYAK_RATE = 0.25            # an optimiser without a rate steps -gain * loss * g / |g|^2 per block, with
                              #   gain = POLYAK_RATE * hop / lag: this share of the way per lag time (the
                              #   smoothing's plus the bins' memory, loss_and_gradient), whatever the
                              #   hop; faster overshoots (benchmarks/README.md)
POLYAK_AVERAGING = 0.8        # the Polyak step follows the gradient averaged over about a lag time:
                              #   each block moves the average this share of hop / lag towards the new
                              #   one (noise through a sharp resonance makes single blocks' gradients
                              #   point the wrong way; none, or a longer one: benchmarks/README.md)
HANDOVER = 0.1                # with Gauss-Newton: once the error's power is below this share of the
HANDBACK = 0.5                #   target's (-10 dB: the signals agree sample by sample, not only in
ALIGN_SECONDS = 0.02          #   their spectra), its per-sample step on the squared error takes over
ALIGN_WORDS = 3               #   from the Polyak step, until the error grows above HANDBACK (-3 dB);
                              #   both powers smoothed over ALIGN_SECONDS (st: error, target, flag)
HANDOVER_P0 = 1e-2            # Gauss-Newton then starts afresh with this p0 (the spectral stage has
                              #   brought the parameters near: the default 500 throws some out again)
                              #   and its forgetting at its end value (a fast start wanders on a low,
                              #   sharp resonance; benchmarks/README.md)
LEVEL_FLOOR = 1e-30           # a channel's total power is at least this (silence: no NaN)
# The weights. Where a learnable frequency drives an oscillator (a pitch), W1 compares each bin's
# power times fmin / f: its power per hertz rather than per bin. A bright tone's upper bins each
# hold several partials, whose beating makes a derivative that grows with the time since the phase
# tangents restarted; per bin a saw's power falls only as 1/f up there, per hertz as 1/f^2, so the
# fundamental's region leads. Elsewhere (a cutoff, a Q: noise through a filter) the plain power per
# bin serves better. The level term compares the same weighted totals. (benchmarks/README.md)
# Pitch kernels also have the fine stage below, a frequency-locked loop: once the output's strongest
# bin is within FINE_REACH bins of the target's, the step follows the frequency error measured in
# the target's strongest bin instead of W1, a Gauss-Newton step on it scaled to FINE_RATE of the way
# per lag of that measurement and at most FINE_STEP_MAX (nepers) per block.
FINE_REACH = 3
FINE_RATE = 0.5
FINE_STEP_MAX = math.log(2.0) / BINS_PER_OCTAVE     # a bin spacing
J_AVERAGING = 0.25            # each block moves the step's derivative this share of hop / lag towards
                              #   the block's own (fine_error)

# The allpass pair, designed for a 90-degree difference from 15 Hz to 21 kHz at 48 kHz (a least-
# squares fit of the phase error, reweighted towards minimax: within 0.0056 degrees, an image 86 dB
# down). Each section: y[n] = c*(u[n] + y[n-2]) - u[n-2]; the Q chain is followed by one sample of
# delay. Five sections a side gave 0.33 degrees (53 dB): enough for the distance, not for the phase
# tangent (see above).
ALLPASS_I = (0.05162076, 0.36074007, 0.67283943, 0.855272, 0.94003969, 0.97591612, 0.9907019, 0.99711425)
ALLPASS_Q = (0.18678667, 0.53091286, 0.77978717, 0.90636298, 0.96187992, 0.98491059, 0.99450107, 0.99910263)
SECTIONS = len(ALLPASS_I)
LANE_FRONT = 8 * SECTIONS + 1   # per section u1, u2, y1, y2 for both chains; Q's delay


def bin_count(sample_rate: float, fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX) -> int:
    top = min(fmax, NYQUIST_SHARE * sample_rate)
    if not (0.0 < fmin < top):
        raise ValueError(f"the spectral range needs 0 < fmin < fmax <= {NYQUIST_SHARE:g} x the sample rate, "
                         f"got {fmin:g} to {fmax:g} Hz")
    return int(math.floor(BINS_PER_OCTAVE * math.log2(top / fmin) + 1e-9)) + 1


def bin_capacity(sample_rate: float) -> int:
    """The most bins any range allowed at this sample rate needs (what a kernel allocates)."""
    return bin_count(sample_rate, MIN_FMIN, NYQUIST_SHARE * sample_rate)


def bin_frequencies(sample_rate: float, fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX) -> np.ndarray:
    nb = bin_count(sample_rate, fmin, fmax)
    return fmin * 2.0 ** (np.arange(nb) / BINS_PER_OCTAVE)


def cfg_size(nb: int) -> int:
    """cfg words of the bank's constants: four per bin, then the smoothing factor."""
    return 4 * nb + 1


def write_constants(cfg, base: int, sample_rate: float, fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX,
                    density: bool = False) -> int:
    """The bank's constants for fmin..fmax into cfg[base:]; returns the number of bins. Each bin's
    power enters the distributions times a weight: 1, or with `density` fmin / f, its power per
    hertz (see the note on the weights above)."""
    f = bin_frequencies(sample_rate, fmin, fmax)
    nb = len(f)
    spacing = 2.0 ** (1.0 / BINS_PER_OCTAVE) - 1.0
    bandwidth = BANDWIDTH_SPACINGS * spacing * f
    r = np.exp(-math.pi * bandwidth / sample_rate)
    w = 2.0 * math.pi * f / sample_rate
    cfg[base:base + nb] = r * np.cos(w)
    cfg[base + nb:base + 2 * nb] = r * np.sin(w)
    cfg[base + 2 * nb:base + 3 * nb] = 1.0 - r
    cfg[base + 3 * nb:base + 4 * nb] = fmin / f if density else 1.0
    cfg[base + 4 * nb] = 1.0 - math.exp(-1.0 / (SMOOTH_SECONDS * sample_rate))
    return nb


def lane_size(nb: int) -> int:
    return LANE_FRONT + 3 * nb          # the front end, X (2 per bin), the smoothed power or its tangent


def channel_size(nb: int, tangents: int) -> int:
    return (1 + tangents) * lane_size(nb)


@njit(cache=True, nogil=True, error_model="numpy")
def _allpass_chain(st, at, coefs, u):
    """Run u through one chain whose memories start at st[at]; returns its output."""
    for c in coefs:
        y = c * (u + st[at + 3]) - st[at + 1]
        st[at + 1] = st[at]
        st[at] = u
        st[at + 3] = st[at + 2]
        st[at + 2] = y
        u = y
        at += 4
    return u


@njit(cache=True, nogil=True, error_model="numpy")
def feed(st, base, cfg, cb, nb, lanes, value, tan_at):
    """One sample into a channel at st[base:]: lane 0 is `value`, lanes 1.. are st[tan_at + lane - 1]
    (the output's tangents). Updates the front end, the bins and the smoothed powers."""
    lsz = LANE_FRONT + 3 * nb
    X = LANE_FRONT                      # each lane: front end, then Re X, Im X per bin
    S = LANE_FRONT + 2 * nb             # then the smoothed power (lane 0) or its tangent
    beta = cfg[cb + 4 * nb]
    for lane in range(lanes):
        at = base + lane * lsz
        u = value if lane == 0 else st[tan_at + lane - 1]
        i_out = _allpass_chain(st, at, ALLPASS_I, u)
        q_chain = _allpass_chain(st, at + 4 * SECTIONS, ALLPASS_Q, u)
        q_out = st[at + 8 * SECTIONS]             # one sample late: the pair's designed delay
        st[at + 8 * SECTIONS] = q_chain
        for k in range(nb):
            cr = cfg[cb + k]
            ci = cfg[cb + nb + k]
            g = cfg[cb + 2 * nb + k]
            xr = st[at + X + 2 * k]
            xi = st[at + X + 2 * k + 1]
            st[at + X + 2 * k] = cr * xr - ci * xi + g * i_out
            st[at + X + 2 * k + 1] = cr * xi + ci * xr + g * q_out
    v = base                            # the value lane: power and its smoothing; tangents: d|X|^2
    for k in range(nb):
        xr = st[v + X + 2 * k]
        xi = st[v + X + 2 * k + 1]
        st[v + S + k] += beta * (xr * xr + xi * xi - st[v + S + k])
        for lane in range(1, lanes):
            at = base + lane * lsz
            dp = 2.0 * (xr * st[at + X + 2 * k] + xi * st[at + X + 2 * k + 1])
            st[at + S + k] += beta * (dp - st[at + S + k])


@njit(cache=True, nogil=True, error_model="numpy")
def restart_tangents(st, base, nb, lanes):
    """The tangent lanes (1..) of the channel at st[base:] back to rest: the front end's memories,
    the bins and the smoothed powers' tangents."""
    lsz = LANE_FRONT + 3 * nb
    for i in range(base + lsz, base + lanes * lsz):
        st[i] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def loss_and_gradient(st, tgt, out, cfg, cb, nb, tangents, grad_at, octave_per_bin):
    """W1 along log-frequency plus the level term, from the smoothed powers of the target channel at
    st[tgt:] and the output channel at st[out:], each bin's times its weight (cfg, write_constants);
    writes d(loss)/d(parameter) for each tangent lane into st[grad_at:]. Returns (loss, lag): lag,
    in samples, is how far the powers trail the signals - the smoothing's time constant plus the
    bins' memory 1/(1 - r), averaged over each distribution, whichever channel's is longer (a low
    pitch is seen late: 53 ms at 50 Hz)."""
    lsz = LANE_FRONT + 3 * nb
    S = LANE_FRONT + 2 * nb
    W = cb + 3 * nb                       # the bins' weights
    tot_t = LEVEL_FLOOR
    tot_o = LEVEL_FLOOR
    for k in range(nb):
        tot_t += st[tgt + S + k] * cfg[W + k]
        tot_o += st[out + S + k] * cfg[W + k]
    c_t = 0.0
    c_o = 0.0
    w1 = 0.0
    mem_t = 0.0
    mem_o = 0.0
    for k in range(nb):
        p_t = st[tgt + S + k] * cfg[W + k] / tot_t
        p_o = st[out + S + k] * cfg[W + k] / tot_o
        c_t += p_t
        c_o += p_o
        w1 += abs(c_o - c_t) * octave_per_bin
        memory = 1.0 / cfg[cb + 2 * nb + k]
        mem_t += p_t * memory
        mem_o += p_o * memory
    lag = 1.0 / cfg[cb + 4 * nb] + max(mem_t, mem_o)
    lv = math.log2(tot_o / tot_t)         # d|0.5 log2(ratio)| = 0.5 sign * d_tot / (tot_o ln 2)
    for j in range(tangents):             # one pass over the bins per tangent: no scratch
        lane = out + (1 + j) * lsz
        d_tot = 0.0
        for k in range(nb):
            d_tot += st[lane + S + k] * cfg[W + k]
        c_t = 0.0
        c_o = 0.0
        dc = 0.0
        g = 0.0
        for k in range(nb):
            p = st[out + S + k] * cfg[W + k] / tot_o
            c_t += st[tgt + S + k] * cfg[W + k] / tot_t
            c_o += p
            dc += (st[lane + S + k] * cfg[W + k] - p * d_tot) / tot_o
            d = c_o - c_t
            if d > 0.0:
                g += dc * octave_per_bin
            elif d < 0.0:
                g -= dc * octave_per_bin
        if lv != 0.0:
            g += math.copysign(0.5 / math.log(2.0), lv) * d_tot / tot_o
        st[grad_at + j] = g
    return w1 + 0.5 * abs(lv), lag


def distributions(st, tgt: int, out: int, cfg, cb: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """What the distance compares, read from the channels at st[tgt:] and st[out:] and the bank's
    constants at cfg[cb:]: each one's smoothed, weighted bin powers normalised to sum 1 (all zeros
    for silence). Their cumulative sums are the curves whose gap, summed in octaves, is W1."""
    S = LANE_FRONT + 2 * nb
    weight = np.asarray(cfg[cb + 3 * nb:cb + 4 * nb], dtype=float)
    pt = np.array(st[tgt + S:tgt + S + nb], dtype=float) * weight
    po = np.array(st[out + S:out + S + nb], dtype=float) * weight
    return pt / (pt.sum() + LEVEL_FLOOR), po / (po.sum() + LEVEL_FLOOR)


# The fine stage, a frequency-locked loop (pitch kernels only). W1 brings the output's spectrum over
# the target's but resolves a pitch to about a bin only slowly, and with a different timbre its
# minimum is not at the pitch at all. The phase advance per sample of a narrow filter's output is
# the frequency of what dominates it; in the target's strongest bin (its fundamental, for the tones
# this is for) the difference of the two advances, averaged over a block, is the frequency error
# itself, in radians per sample, whatever the timbres. Its derivative is the difference of
# d arg X / d theta = Im(conj(X) dX) / |X|^2 between samples, exact like every other tangent here.
# A partial an octave up (a saw's second harmonic) leaks into the bin's phase at -22 dB, and the
# derivative of that leak grows with the time since the phase tangents restarted, as its beat's
# phase tangent does: it swamps the derivative, and its wobble biases the error. So each reading is
# taken twice - from the bin's X, and from Z, X through FINE_STAGES more one-poles with the bin's
# own pole (another 22 dB off each, a bin's memory more lag each) - and a block uses Z where either
# signal has more than FINE_LEAK of its strongest bin's power an octave above it, X elsewhere (a
# sine: the faster lock). What is left of the leak's derivative is a fast, zero-mean wobble, so the
# step uses the derivative averaged over blocks (J_AVERAGING); the error is used as measured.
# (benchmarks/README.md: stages, the averaging, the reach.)
# State (fine_size words): the bin, the samples accumulated, the summed errors (from X, from Z),
# the last block's mean error and whether it was engaged (for displays and tests), the samples
# since the stages started on this bin, the previous sample's X and Z of target and output, then
# per tangent the previous d arg X and d arg Z, the summed derivatives (X, Z) and the last block's
# (fine_derivative), then the stages' complex state for the target's lane and each of the
# output's (value, tangents).
FINE_STAGES = 1
FINE_LEAK = 0.05              # -13 dB: a sine's own skirt in the bin an octave up is -22 dB
(FINE_BIN, FINE_COUNT, FINE_ERROR_X, FINE_ERROR_Z, FINE_LAST, FINE_ENGAGED, FINE_SETTLE,
 FINE_PREV) = 0, 1, 2, 3, 4, 5, 6, 7


def fine_derivative(tangents: int) -> int:
    """The offset in the fine stage's state of the last block's derivative, one word per tangent."""
    return FINE_PREV + 8 + 4 * tangents


def fine_size(tangents: int) -> int:
    return FINE_PREV + 8 + 5 * tangents + 2 * FINE_STAGES * (2 + tangents)


@njit(cache=True, nogil=True, error_model="numpy")
def _stages(st, at, cr, ci, g, ur, ui):
    """u through the FINE_STAGES one-poles whose complex states start at st[at]; returns the output."""
    for s in range(FINE_STAGES):
        yr = cr * st[at] - ci * st[at + 1] + g * ur
        yi = cr * st[at + 1] + ci * st[at] + g * ui
        st[at], st[at + 1] = yr, yi
        ur, ui = yr, yi
        at += 2
    return ur, ui


@njit(cache=True, nogil=True, error_model="numpy")
def _advance(st, at, ur, ui):
    """The phase advance from the complex value stored at st[at] to u (then stored there), and
    whether both had a phase."""
    pr, pi = st[at], st[at + 1]
    st[at], st[at + 1] = ur, ui
    ok = pr * pr + pi * pi >= LEVEL_FLOOR and ur * ur + ui * ui >= LEVEL_FLOOR
    return math.atan2(ui * pr - ur * pi, ur * pr + ui * pi), ok


@njit(cache=True, nogil=True, error_model="numpy")
def fine_track(st, tgt, out, fine, cfg, cb, nb, tangents):
    """Per sample: the stages on the fine stage's bin for every lane; the phase advances of target
    and output and the derivative of the output's, from X and from Z, into the block's sums."""
    lsz = LANE_FRONT + 3 * nb
    P = tangents
    k = int(st[fine + FINE_BIN])
    x = LANE_FRONT + 2 * k
    cr, ci, g = cfg[cb + k], cfg[cb + nb + k], cfg[cb + 2 * nb + k]
    pv = fine + FINE_PREV
    darg, sums, stages = pv + 8, pv + 8 + 2 * P, pv + 8 + 5 * P
    xr, xi = st[out + x], st[out + x + 1]
    ztr, zti = _stages(st, stages, cr, ci, g, st[tgt + x], st[tgt + x + 1])
    zr, zi = _stages(st, stages + 2 * FINE_STAGES, cr, ci, g, xr, xi)
    st[fine + FINE_SETTLE] += 1.0
    adv_tx, ok_tx = _advance(st, pv, st[tgt + x], st[tgt + x + 1])
    adv_ox, ok_ox = _advance(st, pv + 2, xr, xi)
    adv_tz, ok_tz = _advance(st, pv + 4, ztr, zti)
    adv_oz, ok_oz = _advance(st, pv + 6, zr, zi)
    measured = ok_tx and ok_ox and ok_tz and ok_oz
    if measured:
        st[fine + FINE_COUNT] += 1.0
        st[fine + FINE_ERROR_X] += adv_ox - adv_tx
        st[fine + FINE_ERROR_Z] += adv_oz - adv_tz
    mx = xr * xr + xi * xi
    mz = zr * zr + zi * zi
    for j in range(P):
        lane = out + (1 + j) * lsz
        dxr, dxi = st[lane + x], st[lane + x + 1]
        dzr, dzi = _stages(st, stages + 2 * FINE_STAGES * (2 + j), cr, ci, g, dxr, dxi)
        d_x = (xr * dxi - xi * dxr) / mx if mx >= LEVEL_FLOOR else 0.0
        d_z = (zr * dzi - zi * dzr) / mz if mz >= LEVEL_FLOOR else 0.0
        if measured:
            st[sums + j] += d_x - st[darg + j]
            st[sums + P + j] += d_z - st[darg + P + j]
        st[darg + j] = d_x
        st[darg + P + j] = d_z


@njit(cache=True, nogil=True, error_model="numpy")
def _strongest(st, at, nb):
    best = 0
    for k in range(1, nb):
        if st[at + k] > st[at + best]:
            best = k
    return best


@njit(cache=True, nogil=True, error_model="numpy")
def _leaky(st, at, k, nb):
    """The channel whose smoothed powers start at st[at] has more than FINE_LEAK of bin k's power an
    octave above it."""
    up = k + BINS_PER_OCTAVE
    return up < nb and st[at + up] > FINE_LEAK * st[at + k]


@njit(cache=True, nogil=True, error_model="numpy")
def fine_error(st, tgt, out, fine, cfg, cb, nb, tangents, grad_at, hop, settled):
    """At a block's end: (engaged, error, lag). engaged when the output's strongest bin is within
    FINE_REACH of the target's, the stages have settled on it (FINE_STAGES + 1 memories of the
    bin) and the block measured something; error = the block's mean frequency error in radians per
    sample, from Z where a partial sits an octave above, from X elsewhere; lag = how late that
    reading follows the signals, in samples (the memories it went through). Its derivative per
    tangent goes to the state (fine_derivative), and, once the tangents have `settled` after a
    restart, its average over about lag / J_AVERAGING into st[grad_at:], for the step."""
    S = LANE_FRONT + 2 * nb
    P = tangents
    pv = fine + FINE_PREV
    sums = pv + 8 + 2 * P
    n = st[fine + FINE_COUNT]
    k = int(st[fine + FINE_BIN])
    memory = 1.0 / cfg[cb + 2 * nb + k]
    kt = _strongest(st, tgt + S, nb)
    engaged = (n > 0.0 and k == kt and st[fine + FINE_SETTLE] >= (FINE_STAGES + 1) * memory
               and abs(_strongest(st, out + S, nb) - kt) <= FINE_REACH)
    staged = _leaky(st, tgt + S, k, nb) or _leaky(st, out + S, k, nb)
    lag = (FINE_STAGES + 1) * memory if staged else memory
    src = P if staged else 0
    err = (st[fine + (FINE_ERROR_Z if staged else FINE_ERROR_X)] / n) if n > 0.0 else 0.0
    # and only while the reading is of the reach's size: just after the target jumps, its old
    # strongest bin still leads the smoothed powers but its phase already follows the new pitch
    engaged = engaged and abs(err) <= (2.0 ** ((FINE_REACH + 1) / BINS_PER_OCTAVE) - 1.0) * math.atan2(cfg[cb + nb + k], cfg[cb + k])
    st[fine + FINE_LAST] = err
    st[fine + FINE_ENGAGED] = 1.0 if engaged else 0.0
    avg = min(J_AVERAGING * hop / lag, 1.0)
    for j in range(P):
        if n > 0.0:
            d = st[sums + src + j] / n
            st[pv + 8 + 4 * P + j] = d          # fine_derivative
            if settled:                   # not while restarted tangents build up
                st[grad_at + j] += avg * (d - st[grad_at + j])
    return engaged, err, lag


@njit(cache=True, nogil=True, error_model="numpy")
def fine_rebase(st, tgt, fine, nb, tangents, restarted):
    """After a block's end: the sums to zero; the bin to the target's strongest now (the stages
    start over on a new one); after a restart of the tangents, the stages' tangents too."""
    P = tangents
    k = _strongest(st, tgt + LANE_FRONT + 2 * nb, nb)
    pv = fine + FINE_PREV
    darg, sums, stages = pv + 8, pv + 8 + 2 * P, pv + 8 + 5 * P
    st[fine + FINE_COUNT] = 0.0
    st[fine + FINE_ERROR_X] = 0.0
    st[fine + FINE_ERROR_Z] = 0.0
    for i in range(sums, sums + 2 * P):
        st[i] = 0.0
    if k != int(st[fine + FINE_BIN]):
        st[fine + FINE_BIN] = k
        st[fine + FINE_SETTLE] = 0.0
        for i in range(pv, stages + 2 * FINE_STAGES * (2 + P)):
            st[i] = 0.0
    elif restarted:
        for i in range(stages + 4 * FINE_STAGES, stages + 2 * FINE_STAGES * (2 + P)):
            st[i] = 0.0
        for i in range(darg, darg + 2 * P):
            st[i] = 0.0


class FineLock(NamedTuple):
    engaged: bool          # the last block stepped on the frequency error
    bin_hz: float          # the centre of the bin it reads (the target's strongest)
    error_cents: float     # output against target there, in cents (nan before a block measured one)


def fine_lock(st, fine: int, sample_rate: float, fmin: float = DEFAULT_FMIN, fmax: float = DEFAULT_FMAX) -> FineLock:
    """The fine stage's state at st[fine:] as of its last block, for display."""
    f = bin_frequencies(sample_rate, fmin, fmax)
    k = min(max(int(st[fine + FINE_BIN]), 0), len(f) - 1)
    err_hz = float(st[fine + FINE_LAST]) * sample_rate / (2.0 * math.pi)
    ratio = (f[k] + err_hz) / f[k]
    cents = 1200.0 * math.log2(ratio) if ratio > 0.0 and math.isfinite(ratio) else math.nan
    return FineLock(bool(st[fine + FINE_ENGAGED]), float(f[k]), cents)
