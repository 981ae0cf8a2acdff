"""The lag lock: where a learnable parameter sets a delay's length, the spectral loss steps it by
the positions of the two signals' strongest autocorrelation peaks (a lag-locked loop, the delay's
counterpart of the pitch kernels' frequency-locked loop in engine/learn/spectral.py).

W1 over constant-Q bins cannot see a comb's teeth (they are finer than the bins above the first
few), and W1 along log-lag of the autocorrelation has an exact derivative that is useless: the
interpolated delay's power ripples with its fraction, and on noise the estimate at the ~1000 lags
with no structure is noise whose tangent is ~delay x the signal's slope (benchmarks/README.md, T6).
The strongest peak of a comb's autocorrelation sits at its delay, far above that noise, so:
  * per sample (every SUBSAMPLE-th): the autocorrelation of target and output at lags 0..L, and of
    the output's tangents, d R(k) = E[t(n) y(n-k) + y(n) t(n-k)], smoothed over SMOOTH_SECONDS;
  * per block: each signal's strongest peak k at lags >= 2, refined to the vertex p of the parabola
    through R(k-1), R(k), R(k+1); the error is log(p_out / p_target). Its derivative is the learned
    delay's own, d log(length) / d theta from the length's tangents: the output's peak sits at that
    delay. The vertex's own derivative, from the autocorrelation's tangents, is exact too but noisy
    on noise (a wrong sign in some blocks sent the delay across the range: 32 of 40 within 2 s
    against 38), so it only checks that the peak moves with the delay;
  * the step is the pitch lock's: a Gauss-Newton step on the error, RATE of the way per lag of the
    reading (the smoothing plus the peak's own lag), at most STEP_MAX nepers per block, the Polyak
    step on W1 keeping only its part across the lock's direction.
From any start: the error is the whole log ratio of the two delays, not a local slope.

State at st[base:] (size()): the rings of target, output and each tangent (ring samples each), then
the autocorrelations R_target, R_output and dR per tangent (L + 2 lags each), then the last block's
error, whether it was engaged (for tests), the samples fed since the start (no step before the
averages have filled: 2 smoothing times), and the learned delay's length at this sample with its
tangent per parameter (the kernel writes them, amount_at)."""
import math

from numba import njit

from engine.circuit.analysis import ring_length as circuit_ring_length

SUBSAMPLE = 4                 # the autocorrelations take every 4th sample (an unbiased estimate)
SMOOTH_SECONDS = 0.05         # their one-pole smoothing
RATE = 0.5                    # of the way per lag of the reading, per block
STEP_MAX = 0.5                # nepers per block
MAX_LAGS = 8192               # the longest delay a lock follows, in samples
LAST_ERROR, ENGAGED, FED, AMOUNT = 0, 1, 2, 3   # words after the autocorrelations (FED: samples since the
                              #   start; AMOUNT: the learned delay's length now, then its tangents)


def ring_length(lags: int) -> int:
    """The rings' length: read back up to lags + 1 samples (the parabola's right neighbour)."""
    return circuit_ring_length(lags + 1)


def size(lags: int, tangents: int) -> int:
    return (2 + tangents) * (ring_length(lags) + lags + 2) + 4 + tangents


@njit(cache=True, nogil=True, error_model="numpy")
def feed(st, base, ring, lags, tangents, n, y, yh, tan_at, beta):
    """Sample n of the target y, the output yh and its tangents st[tan_at:] into the rings, and
    every SUBSAMPLE-th sample into the autocorrelations (beta: the smoothing's factor per update)."""
    lanes = 2 + tangents
    i = n & (ring - 1)
    st[base + i] = y
    st[base + ring + i] = yh
    for j in range(tangents):
        st[base + (2 + j) * ring + i] = st[tan_at + j]
    R = base + lanes * ring
    width = lags + 2
    st[R + lanes * width + FED] += 1.0
    if n & (SUBSAMPLE - 1) != 0:          # SUBSAMPLE is a power of two: no per-sample division
        return
    rt, ro = R, R + width
    for k in range(width):
        q = (n - k) & (ring - 1)
        st[rt + k] += beta * (y * st[base + q] - st[rt + k])
        st[ro + k] += beta * (yh * st[base + ring + q] - st[ro + k])
    for j in range(tangents):
        t = st[tan_at + j]
        tr = base + (2 + j) * ring
        dr = R + (2 + j) * width
        for k in range(width):
            q = (n - k) & (ring - 1)
            st[dr + k] += beta * (t * st[base + ring + q] + yh * st[tr + q] - st[dr + k])


@njit(cache=True, nogil=True, error_model="numpy")
def _peak(st, r, lags):
    """The strongest lag >= 2 of the autocorrelation at st[r:], and the vertex of the parabola
    through it and its neighbours (-1 when it is not a peak)."""
    k = 2
    for m in range(3, lags + 1):
        if st[r + m] > st[r + k]:
            k = m
    a, b, c = st[r + k - 1], st[r + k], st[r + k + 1]
    den = a - 2.0 * b + c
    if not (b > 0.0 and den < 0.0):
        return k, -1.0
    return k, k + 0.5 * (a - c) / den


def amount_at(lags: int, tangents: int, ring: int) -> int:
    """The offset in the lock's state of the learned delay's length (then one word per tangent)."""
    return (2 + tangents) * (ring + lags + 2) + AMOUNT


@njit(cache=True, nogil=True, error_model="numpy")
def lock_error(st, base, ring, lags, tangents, grad_at, smooth):
    """At a block's end: (engaged, error, lag). error = log(p_output / p_target), the vertices of
    the strongest autocorrelation peaks; lag = how late the reading follows the signals, in
    samples. The step's derivative, into st[grad_at:] per unit of each parameter, is the learned
    delay's own, d log(length) / d theta, from its tangents (exact and noise-free: the output's
    peak is that delay's). engaged when both peaks are peaks, the averages have filled, and the
    peak's own derivative (the vertex's, from the autocorrelation's tangents: exact, but noisy on
    noise) agrees in direction with the delay's - else the strongest peak is not the delay's."""
    lanes = 2 + tangents
    width = lags + 2
    R = base + lanes * ring
    kt, pt = _peak(st, R, lags)
    ko, po = _peak(st, R + width, lags)
    out = R + lanes * width
    amount = st[out + AMOUNT]
    engaged = pt > 0.0 and po > 0.0 and amount > 0.0 and st[out + FED] >= 2.0 * smooth
    ro = R + width
    a, b, c = st[ro + ko - 1], st[ro + ko], st[ro + ko + 1]
    den = a - 2.0 * b + c
    agree = 0.0
    for j in range(tangents):
        dl = st[out + AMOUNT + 1 + j] / amount if amount > 0.0 else 0.0
        if engaged:
            dr = R + (2 + j) * width
            da, db, dc = st[dr + ko - 1], st[dr + ko], st[dr + ko + 1]
            agree += dl * (0.5 * (da - dc) * den - 0.5 * (a - c) * (da - 2.0 * db + dc)) / (den * den) / po
        st[grad_at + j] = dl
    engaged = engaged and agree > 0.0
    err = math.log(po / pt) if engaged else 0.0
    st[out + LAST_ERROR] = err
    st[out + ENGAGED] = 1.0 if engaged else 0.0
    return engaged, err, smooth + (po if engaged else 0.0)
