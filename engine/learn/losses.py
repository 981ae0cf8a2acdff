"""Losses on windowed means, one small function each (diff.lib's definitions, README 2.3-2.4).

Each takes m_learned = M(yhat)[n], m_target = M(y)[n] and the loss's own parameter, and returns
(loss, slope) where slope = dL/dM(yhat). The raw gradient of parameter i is slope * M(t_i): the
window is applied to target, output and each tangent separately, and the loss to the means.
"""
import math

from numba import njit

MSE, MAE, MSLE, HUBER = 0, 1, 2, 3
CODES = {"mse": MSE, "mae": MAE, "msle": MSLE, "huber": HUBER}
MAE_GUARD = 1e-10       # diff.lib: sign(e) becomes the ramp e/1e-10 for |e| < 1e-10
MSLE_GUARD = 1e-12      # ours: M+1 is bounded below by this (diff.lib has no guard: NaN below -1)


@njit(cache=True, nogil=True, error_model="numpy")
def mse(m_learned, m_target, _delta):
    e = m_learned - m_target
    return e * e, 2.0 * e


@njit(cache=True, nogil=True, error_model="numpy")
def mae(m_learned, m_target, _delta):
    e = m_learned - m_target
    a = abs(e)
    return a, e / (a if a > MAE_GUARD else MAE_GUARD)


@njit(cache=True, nogil=True, error_model="numpy")
def msle(m_learned, m_target, _delta):
    a = m_learned + 1.0
    b = m_target + 1.0
    a = a if a > MSLE_GUARD else MSLE_GUARD
    b = b if b > MSLE_GUARD else MSLE_GUARD
    d = math.log(a) - math.log(b)
    return d * d, 2.0 * d / a


@njit(cache=True, nogil=True, error_model="numpy")
def huber(m_learned, m_target, delta):
    e = m_learned - m_target
    a = abs(e)
    if a <= delta:                      # |e| = delta takes the quadratic branch (diff.lib's)
        return 0.5 * e * e, e
    return delta * (a - 0.5 * delta), delta if e > 0.0 else -delta


@njit(cache=True, nogil=True, error_model="numpy")
def loss_and_slope(code, m_learned, m_target, delta):
    if code == MSE:
        return mse(m_learned, m_target, delta)
    if code == MAE:
        return mae(m_learned, m_target, delta)
    if code == MSLE:
        return msle(m_learned, m_target, delta)
    return huber(m_learned, m_target, delta)
