"""Optimisers: one small function each over one parameter's state (m, v), and one table,
OPTIMIZERS, from which the compiler, the command line (its flags for the constants too), the
window and presets take their choices. Adding an optimiser is one function and one table entry.

Every function has the same signature (g, lr, m, v, t, c1, c2, eps) -> (step, m, v); the learner
subtracts the step from the parameter's accumulator one sample later (diff.lib's timing:
theta[n] = theta[n-1] - step[n-1]). t counts updates from 1. c1, c2 are the optimiser's constants,
in the order its table entry names them: momentum mu; RMSProp rho; Adam beta1, beta2.

Gauss-Newton (engine/learn/gauss_newton.py) is not a per-parameter rule: it steps all parameters
together from the output's sensitivities and the residual. Its entry has no `step`; the kernel
writes its block for the entry's code. Its constants are the final and the starting forgetting
factor; its initial P comes from the setting p0 (times each parameter's range width squared).
"""
import math
from dataclasses import dataclass
from typing import Callable

from numba import njit

from engine.jit import HELPER


TINY = 1e-290    # optimiser moments below this are flushed to 0: subnormal doubles cost ~100x


@njit(**HELPER)
def _flush(v):
    return 0.0 if abs(v) < TINY else v


@njit(**HELPER)
def sgd(g, lr, m, v, t, c1, c2, eps):
    return g * lr, m, v


@njit(**HELPER)
def momentum(g, lr, m, v, t, mu, c2, eps):
    # heavy ball, lr inside the velocity (diff.lib README's recipe): V = lr g + mu V
    m = _flush(g * lr + mu * m)
    return m, m, v


@njit(**HELPER)
def rmsprop(g, lr, m, v, t, rho, c2, eps):
    v = _flush((1.0 - rho) * g * g + rho * v)
    return g / (math.sqrt(v) + eps) * lr, m, v


@njit(**HELPER)
def adam(g, lr, m, v, t, beta1, beta2, eps):
    # standard bias correction by 1 - beta^t (diff.lib divides by the constants 1 - beta)
    m = _flush((1.0 - beta1) * g + beta1 * m)
    v = _flush((1.0 - beta2) * g * g + beta2 * v)
    mhat = m / (1.0 - beta1 ** t)
    vhat = v / (1.0 - beta2 ** t)
    return lr * mhat / (math.sqrt(vhat) + eps), m, v


@dataclass(frozen=True)
class Optimizer:
    name: str
    code: int                              # the value of the kernel's optimiser word
    step: Callable | None                  # @njit (g, lr, m, v, t, c1, c2, eps) -> (step, m, v);
                                           #   None: Gauss-Newton, stepped by the kernel as a whole
    description: str
    constants: tuple = ()                  # ((flag name, default), ...) in the slots c1, c2
    eps: float = 0.0                       # default epsilon (0: it has none)
    linear_in_gradient: bool = False       # step(s*g, lr) == step(g, s*lr): clipping may scale the rate

    @property
    def sets_its_own_step(self) -> bool:
        """Gauss-Newton: no learning rate, schedule or clipping is read, and its constants are
        forgetting factors in [0.5, 1] (the others' are in [0, 1))."""
        return self.step is None


OPTIMIZERS = (
    Optimizer("sgd", 0, sgd, "plain gradient descent", linear_in_gradient=True),
    Optimizer("momentum", 1, momentum, "heavy-ball momentum", (("momentum", 0.9),), linear_in_gradient=True),
    Optimizer("rmsprop", 2, rmsprop, "RMSProp, no bias correction", (("rho", 0.9),), 1e-8),
    Optimizer("adam", 3, adam, "Adam with bias correction", (("beta1", 0.9), ("beta2", 0.999)), 1e-8),
    Optimizer("gauss-newton", 4, None, "online Gauss-Newton (recursive prediction error): no learning rate",
              (("forgetting", 0.9995), ("forgetting-start", 0.95))),
)
GAUSS_NEWTON = next(o.code for o in OPTIMIZERS if o.sets_its_own_step)
FIRST_ORDER = tuple(o for o in OPTIMIZERS if not o.sets_its_own_step)
CODES = {o.name: o.code for o in OPTIMIZERS}
NAMES = tuple(CODES)
DEFAULT = "gauss-newton"       # learn, run and the factory presets (benchmarks/README.md: convergence)
# Gauss-Newton's initial P in units of each range's width squared: large, so the data outweighs the
# starting point within a few samples; 200-1000 all do as well on benchmarks/convergence.py
DEFAULT_P0 = 500.0
BY_NAME = {o.name: o for o in OPTIMIZERS}


def defaults(name: str) -> tuple[float, float, float]:
    """(c1, c2, eps) when the settings leave them unset."""
    o = BY_NAME[name]
    c = [value for _, value in o.constants] + [0.0, 0.0]
    return c[0], c[1], o.eps


def markdown_table() -> str:
    """The optimisers as a Markdown table (docs/learning.md holds a copy; a test keeps it current)."""
    rows = ["| name | what it is | constants (default) | epsilon |", "|---|---|---|---|"]
    for o in OPTIMIZERS:
        constants = ", ".join(f"`--{flag}` ({value:g})" for flag, value in o.constants)
        rows.append(f"| {o.name} | {o.description} | {constants} | {f'{o.eps:g}' if o.eps else ''} |")
    return "\n".join(rows) + "\n"
