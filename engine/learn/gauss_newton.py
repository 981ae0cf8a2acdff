"""Online Gauss-Newton: the recursive prediction-error method (Ljung & Soederstroem) on the
forward-mode tangents the kernel already has.

Per learning sample, for a group of n parameters with output sensitivities psi (the window means of
their tangents, scaled by the loss's dr/dM) and residual e = -(r) (target minus output, in the
loss's residual), with the loss's reweighting w:

    u = P psi,   s = lambda/w + psi.u,   K = u/s,   theta += K e,   P <- (P - u u^T/s)/lambda

P lives in the learner's state as a dense n x n block (row-major), beside psi (the caller writes
the sensitivities there; the update uses it as scratch), u (which holds the step K e after the
update) and d0, P's initial diagonal. Guards, each cheap:
  * symmetric by construction: only the upper triangle is computed, and mirrored;
  * Levenberg-Marquardt damping: each sample one coordinate c (cycling) gets the pseudo-measurement
    "theta_c stays where it is" with weight DAMPING/d0_c - a zero-residual rank-one update that
    moves nothing but keeps P's eigenvalues bounded where the input does not excite;
  * no wind-up: when some P_ii exceeds d0_i (silence makes P grow by 1/lambda per sample), all of
    P is scaled down so that max_i P_ii/d0_i = 1 - at most the uncertainty learning started with;
  * a P gone non-finite or non-positive on its diagonal is set back to diag(d0) and the step dropped.
A parameter declared on a log axis (a frequency, a time) is stepped in log space: its sensitivity
is p*dy/dp and its step multiplies p by exp(step) - equal steps for equal ratios, so a cutoff moves
as readily at 100 Hz as at 10 kHz.
The forgetting factor lambda ramps from its start value to its final one (Ljung's recommendation:
forget fast while the estimate is poor, slowly once it is good): lambda <- end + (lambda - end)*RAMP.
"""
import math

from numba import njit

DAMPING = 1e-4       # Levenberg-Marquardt pseudo-measurement weight, relative to 1/d0
RAMP = 0.999          # the forgetting factor covers 63 % of the way to its final value in 1000 steps
WIDTH_FALLBACK = 1.0 # P's initial scale for a parameter with an infinite range: a unit width


def region_size(n: int) -> int:
    """st words one group of n parameters needs: P (n*n), psi, u, d0."""
    return n * n + 3 * n


@njit(cache=True, nogil=True, error_model="numpy")
def initial_variance(p0, lo, hi, log):
    """d0 of one parameter: p0 times its range's width squared (a unit width if unbounded); on a
    log axis the width is log(hi/lo)."""
    width = math.log(hi / lo) if log else hi - lo
    if not (width - width == 0.0) or width <= 0.0:
        width = WIDTH_FALLBACK
    return p0 * width * width


@njit(cache=True, nogil=True, error_model="numpy")
def reset_p(st, base, n):
    """P = diag(d0)."""
    d0 = base + n * n + 2 * n
    for i in range(n):
        for j in range(n):
            st[base + i * n + j] = 0.0
        st[base + i * n + i] = st[d0 + i]


@njit(cache=True, nogil=True, error_model="numpy")
def update(st, base, n, e, w, lam, c):
    """One Gauss-Newton step for the group at st[base:]: reads psi, writes the step K*e into u and
    the new P. c is the coordinate damped this sample. False (and P reset, u zero) when the update
    went non-finite."""
    pm = base
    psi = base + n * n
    u = psi + n
    d0 = u + n
    s = lam / w
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += st[pm + i * n + j] * st[psi + j]
        st[u + i] = acc
        s += st[psi + i] * acc
    if not (s > 0.0 and s - s == 0.0):
        reset_p(st, base, n)
        for i in range(n):
            st[u + i] = 0.0
        return False
    inv_s = 1.0 / s
    inv_lam = 1.0 / lam
    for i in range(n):
        ui = st[u + i] * inv_s
        for j in range(i, n):
            v = (st[pm + i * n + j] - ui * st[u + j]) * inv_lam
            st[pm + i * n + j] = v
            st[pm + j * n + i] = v
    # Levenberg-Marquardt: "theta_c stays" with weight mu = DAMPING/d0_c (zero residual: no step);
    # P's column c is copied into psi's words first (psi is not needed any more)
    mu = DAMPING / st[d0 + c]
    for i in range(n):
        st[psi + i] = st[pm + i * n + c]
    g = mu / (1.0 + mu * st[psi + c])
    for i in range(n):
        qi = st[psi + i] * g
        for j in range(i, n):
            v = st[pm + i * n + j] - qi * st[psi + j]
            st[pm + i * n + j] = v
            st[pm + j * n + i] = v
    worst = 0.0
    for i in range(n):
        pii = st[pm + i * n + i]
        if not (pii > 0.0 and pii - pii == 0.0):
            reset_p(st, base, n)
            for k in range(n):
                st[u + k] = 0.0
            return False
        worst = max(worst, pii / st[d0 + i])
    if worst > 1.0:                      # no wind-up beyond the starting uncertainty
        scale = 1.0 / worst
        for i in range(n * n):
            st[pm + i] *= scale
    for i in range(n):
        st[u + i] = st[u + i] * inv_s * e
    return True
