"""Optimisers, one small function each over one parameter's state (m, v).

Every function has the same signature (g, lr, m, v, t, c1, c2, eps) -> (step, m, v); the learner
subtracts the step from the parameter's accumulator one sample later (diff.lib's timing:
theta[n] = theta[n-1] - step[n-1]). t counts updates from 1. c1, c2 are the optimiser's constants:
momentum mu; RMSProp rho; Adam beta1, beta2.
"""
import math

from numba import njit

SGD, MOMENTUM, RMSPROP, ADAM = 0, 1, 2, 3
CODES = {"sgd": SGD, "momentum": MOMENTUM, "rmsprop": RMSPROP, "adam": ADAM}
DEFAULTS = {  # (c1, c2, eps)
    SGD: (0.0, 0.0, 0.0),
    MOMENTUM: (0.9, 0.0, 0.0),
    RMSPROP: (0.9, 0.0, 1e-8),
    ADAM: (0.9, 0.999, 1e-8),
}


TINY = 1e-290    # optimiser moments below this are flushed to 0: subnormal doubles cost ~100x


@njit(cache=True, nogil=True, error_model="numpy")
def _flush(v):
    return 0.0 if abs(v) < TINY else v


@njit(cache=True, nogil=True, error_model="numpy")
def sgd(g, lr, m, v, t, c1, c2, eps):
    return g * lr, m, v


@njit(cache=True, nogil=True, error_model="numpy")
def momentum(g, lr, m, v, t, mu, c2, eps):
    # heavy ball, lr inside the velocity (diff.lib README's recipe): V = lr g + mu V
    m = _flush(g * lr + mu * m)
    return m, m, v


@njit(cache=True, nogil=True, error_model="numpy")
def rmsprop(g, lr, m, v, t, c1, rho, eps):
    v = _flush((1.0 - rho) * g * g + rho * v)
    return g / (math.sqrt(v) + eps) * lr, m, v


@njit(cache=True, nogil=True, error_model="numpy")
def adam(g, lr, m, v, t, beta1, beta2, eps):
    # standard bias correction by 1 - beta^t (diff.lib divides by the constants 1 - beta)
    m = _flush((1.0 - beta1) * g + beta1 * m)
    v = _flush((1.0 - beta2) * g * g + beta2 * v)
    mhat = m / (1.0 - beta1 ** t)
    vhat = v / (1.0 - beta2 ** t)
    return lr * mhat / (math.sqrt(vhat) + eps), m, v


@njit(cache=True, nogil=True, error_model="numpy")
def optimizer_step(code, g, lr, m, v, t, c1, c2, eps):
    if code == SGD:
        return sgd(g, lr, m, v, t, c1, c2, eps)
    if code == MOMENTUM:
        return momentum(g, lr, m, v, t, c1, c2, eps)
    if code == RMSPROP:
        return rmsprop(g, lr, m, v, t, c1, c2, eps)
    return adam(g, lr, m, v, t, c1, c2, eps)
