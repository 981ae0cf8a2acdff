"""Losses on windowed means: one small function each (diff.lib's definitions, README 2.3-2.4)
and one table, LOSSES, from which the compiler, the command line, the window and presets take
their choices. Adding a loss is one function and one table entry.

Each takes m_learned = M(yhat)[n], m_target = M(y)[n] and the loss's own parameter, and returns
(loss, slope) where slope = dL/dM(yhat). The raw gradient of parameter i is slope * M(t_i): the
window is applied to target, output and each tangent separately, and the loss to the means.

For the Gauss-Newton optimiser each loss also says how it is a (weighted) least-squares problem:
`residual(m_learned, m_target, parameter) -> (r, dr, w)` with the loss ~ w*r^2 near the current
point, r the residual (learned side minus target side), dr = dr/dM(yhat) (the tangents are scaled
by it) and w the iteratively-reweighted-least-squares weight (1 for a squared loss).
"""
import math
from dataclasses import dataclass
from typing import Callable

from numba import njit

from engine.jit import HELPER

MAE_GUARD = 1e-10       # diff.lib: sign(e) becomes the ramp e/1e-10 for |e| < 1e-10
MSLE_GUARD = 1e-12      # ours: M+1 is bounded below by this (diff.lib has no guard: NaN below -1)
IRLS_FLOOR = 1e-6       # MAE's reweighting 1/|e| is capped at 1/1e-6 (-120 dBFS): an exact fit
                        # would otherwise weigh one sample without bound


@njit(**HELPER)
def mse(m_learned, m_target, _delta):
    e = m_learned - m_target
    return e * e, 2.0 * e


@njit(**HELPER)
def mse_half_slope(m_learned, m_target, _delta):
    """mse with half its slope: the kernel doubles the tangent means instead (Loss.slope_factor)."""
    e = m_learned - m_target
    return e * e, e


@njit(**HELPER)
def mae(m_learned, m_target, _delta):
    e = m_learned - m_target
    a = abs(e)
    return a, e / (a if a > MAE_GUARD else MAE_GUARD)


@njit(**HELPER)
def _log_ratio(m_learned, m_target):
    """(a, d): the guarded M(yhat) + 1 and log(a) - log(M(y) + 1), what MSLE squares."""
    a = m_learned + 1.0
    b = m_target + 1.0
    a = a if a > MSLE_GUARD else MSLE_GUARD
    b = b if b > MSLE_GUARD else MSLE_GUARD
    return a, math.log(a) - math.log(b)


@njit(**HELPER)
def msle(m_learned, m_target, _delta):
    a, d = _log_ratio(m_learned, m_target)
    return d * d, 2.0 * d / a


@njit(**HELPER)
def huber(m_learned, m_target, delta):
    e = m_learned - m_target
    a = abs(e)
    if a <= delta:                      # |e| = delta takes the quadratic branch (diff.lib's)
        return 0.5 * e * e, e
    return delta * (a - 0.5 * delta), delta if e > 0.0 else -delta


@njit(**HELPER)
def mse_residual(m_learned, m_target, _delta):
    return m_learned - m_target, 1.0, 1.0


@njit(**HELPER)
def mae_residual(m_learned, m_target, _delta):
    # IRLS: |e| = w e^2 with w = 1/|e| at the current point
    e = m_learned - m_target
    return e, 1.0, 1.0 / max(abs(e), IRLS_FLOOR)


@njit(**HELPER)
def msle_residual(m_learned, m_target, _delta):
    # a least-squares loss already, in log(1 + M): the residual's slope 1/(M + 1) scales the tangents
    a, d = _log_ratio(m_learned, m_target)
    return d, 1.0 / a, 1.0


@njit(**HELPER)
def huber_residual(m_learned, m_target, delta):
    # IRLS: quadratic inside delta (weight 1), linear beyond (weight delta/|e|)
    e = m_learned - m_target
    a = abs(e)
    return e, 1.0, 1.0 if a <= delta else delta / a


@dataclass(frozen=True)
class Loss:
    name: str
    code: int                     # the value of the kernel's loss word
    fn: Callable                  # @njit (m_learned, m_target, parameter) -> (loss, slope)
    description: str
    residual: Callable | None     # @njit (m_learned, m_target, parameter) -> (r, dr, w): Gauss-Newton's view
    parameter: str | None = None  # the Settings field of its parameter, if it has one
    # what the kernel calls instead of fn: (loss, slope / slope_factor), the factor applied to the
    # tangent means, off the learning recurrence (one dependent multiply less per sample). An exact
    # power of two, so the gradient is fn's bit for bit.
    kernel_fn: Callable | None = None
    slope_factor: float = 1.0

    @property
    def streaming(self) -> bool:
        """A loss with its own state and block (the spectral loss), computed by the kernel's own
        section rather than per sample from the window means."""
        return self.fn is None


LOSSES = (
    Loss("mse", 0, mse, "mean squared error", mse_residual, kernel_fn=mse_half_slope, slope_factor=2.0),
    Loss("mae", 1, mae, "mean absolute error (diff.lib's ramp below 1e-10)", mae_residual),
    Loss("msle", 2, msle, "mean squared log error (guarded below -1)", msle_residual),
    Loss("huber", 3, huber, "Huber: quadratic within delta, linear beyond", huber_residual, "huber_delta"),
    Loss("spectral", 4, None, "Wasserstein distance between constant-Q power spectra on a log-frequency "
         "axis, plus a level term, a frequency-locked loop for a pitch and a lag-locked one for a delay; "
         "one step per block "
         "(engine/learn/spectral.py)", None, "spectral_hop"),
)
SPECTRAL = next(loss.code for loss in LOSSES if loss.streaming)
CODES = {loss.name: loss.code for loss in LOSSES}
NAMES = tuple(CODES)
DEFAULT = "mse"


def markdown_table() -> str:
    """The losses as a Markdown table (docs/learning.md holds a copy; a test keeps it current)."""
    rows = ["| name | what it is | its parameter |", "|---|---|---|"]
    for loss in LOSSES:
        parameter = f"`--{loss.parameter.replace('_', '-')}`" if loss.parameter else ""
        rows.append(f"| {loss.name} | {loss.description} | {parameter} |")
    return "\n".join(rows) + "\n"
