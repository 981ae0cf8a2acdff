"""The differentiable primitives: one table entry per primitive.

Each entry gives the value rule and the derivative rule (the partial derivative of the value with
respect to each argument) as two small Numba functions, the guard used at singular points, and the
domain over which the finite-difference property test checks it. The compiler applies the chain
rule (t = sum_k partial_k * t_k) for every entry the same way, so adding a primitive is adding one
entry here: the parser, the compiler and tests/engine/test_primitives_fd.py pick it up automatically.

Guard policy (Dualtone's, not diff.lib's): no tangent may become NaN or Inf near a singular point.
Where a function is singular at a point, the denominator of its derivative is bounded away from
zero by TINY. Where an argument lies outside the real domain (log of a negative number, asin of
2, ...), the function is evaluated at the nearest point of its domain and, being constant there,
its derivative is 0. Every guard is written beside its rule below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import njit

from engine.jit import STRICT

TINY = 1e-12          # smallest magnitude a derivative's denominator may take
EXP_MAX = 700.0       # exp(700) ~ 1e304: larger arguments are capped so values stay finite


@dataclass(frozen=True)
class Primitive:
    name: str                      # name in the circuit language (function name or operator word)
    arity: int
    value: Callable                # njit: args -> value
    partials: Callable             # njit: args -> partial (arity 1) or tuple of partials
    rule: str                      # the derivative rule, as documented
    guard: str = ""                # what happens at singular / out-of-domain points
    domain: tuple = ()             # per-argument (lo, hi) for the finite-difference test
    avoid: Callable | None = None  # python predicate: True where FD is invalid (kinks, jumps)
    zero_derivative: bool = False  # derivative is 0 everywhere: tangents structurally zero
    symbol: str = ""               # operator spelling, if any (for messages)
    constant_partials: tuple | None = None  # partials that are constants (the compiler then
                                            # sums or aliases tangents instead of calling partials)
    argument_partials: tuple | None = None  # partial k is argument j's value (mul: d(uv)/du = v):
                                            # the compiler names the argument instead of calling
                                            # partials, and knows a tangent that is an input sample
                                            # to be finite
    extra: dict = field(default_factory=dict)


def _j(f):
    return njit(**STRICT)(f)


# ---------------------------------------------------------------- arithmetic
@_j
def add_v(u, v): return u + v
@_j
def add_d(u, v): return 1.0, 1.0
@_j
def sub_v(u, v): return u - v
@_j
def sub_d(u, v): return 1.0, -1.0
@_j
def mul_v(u, v): return u * v
@_j
def mul_d(u, v): return v, u
@_j
def neg_v(u): return -u
@_j
def neg_d(u): return -1.0


@_j
def _safe_den(v):
    if v >= TINY or v <= -TINY:
        return v
    return -TINY if v < 0.0 else TINY


@_j
def div_v(u, v): return u / _safe_den(v)
@_j
def div_d(u, v):
    d = _safe_den(v)
    return 1.0 / d, -u / (d * d)


@_j
def mod_v(u, v):
    d = _safe_den(v)
    return u - d * np.floor(u / d)
@_j
def mod_d(u, v):
    d = _safe_den(v)
    return 1.0, -np.floor(u / d)


@_j
def _pow_base(u, v):
    # a negative exponent is singular at u = 0: |u| is bounded below by TINY, like a denominator
    if v < 0.0 and -TINY < u < TINY:
        return -TINY if u < 0.0 else TINY
    return u


@_j
def pow_v(u, v):
    b = _pow_base(u, v)
    if b > 0.0 or v == np.floor(v):        # u > 0, or an integer exponent (defined for u <= 0)
        return b ** v
    return 0.0                             # u < 0, non-integer v: outside the real domain


@_j
def pow_d(u, v):
    b = _pow_base(u, v)
    if b > 0.0:
        bm = b if (v >= 1.0 or b > TINY) else TINY    # u^(v-1) is singular at 0 when v < 1
        return v * bm ** (v - 1.0), (b ** v) * math.log(b)
    if v == np.floor(v):
        bm = b if (v >= 1.0 or b < -TINY or b > TINY) else -TINY
        return v * bm ** (v - 1.0), 0.0
    return 0.0, 0.0


# ---------------------------------------------------------------- elementary functions
@_j
def sin_v(u): return math.sin(u)
@_j
def sin_d(u): return math.cos(u)
@_j
def cos_v(u): return math.cos(u)
@_j
def cos_d(u): return -math.sin(u)
@_j
def tan_v(u): return math.tan(u)
@_j
def tan_d(u):
    c2 = math.cos(u) ** 2
    return 1.0 / (c2 if c2 > TINY else TINY)


@_j
def asin_v(u): return math.asin(min(max(u, -1.0), 1.0))
@_j
def asin_d(u):
    if u <= -1.0 or u >= 1.0:
        return 0.0
    r = 1.0 - u * u
    return 1.0 / math.sqrt(r if r > TINY else TINY)
@_j
def acos_v(u): return math.acos(min(max(u, -1.0), 1.0))
@_j
def acos_d(u): return -asin_d(u)
@_j
def atan_v(u): return math.atan(u)
@_j
def atan_d(u): return 1.0 / (1.0 + u * u)


@_j
def atan2_v(u, v): return math.atan2(u, v)
@_j
def atan2_d(u, v):
    r2 = u * u + v * v
    if r2 < TINY:
        r2 = TINY
    return v / r2, -u / r2


@_j
def exp_v(u): return math.exp(min(u, EXP_MAX))
@_j
def exp_d(u): return math.exp(u) if u < EXP_MAX else 0.0


@_j
def log_v(u): return math.log(u if u > TINY else TINY)
@_j
def log_d(u): return 1.0 / u if u > TINY else 0.0
@_j
def log10_v(u): return math.log10(u if u > TINY else TINY)
@_j
def log10_d(u): return 1.0 / (u * math.log(10.0)) if u > TINY else 0.0


@_j
def sqrt_v(u): return math.sqrt(u) if u > 0.0 else 0.0
@_j
def sqrt_d(u):
    if u <= 0.0:
        return 0.0
    return 0.5 / math.sqrt(u if u > TINY else TINY)


@_j
def abs_v(u): return abs(u)
@_j
def abs_d(u):
    if u > 0.0:
        return 1.0
    if u < 0.0:
        return -1.0
    return 0.0


@_j
def min_v(u, v): return u if u < v else v
@_j
def min_d(u, v): return (1.0, 0.0) if u < v else (0.0, 1.0)
@_j
def max_v(u, v): return u if u >= v else v
@_j
def max_d(u, v): return (1.0, 0.0) if u >= v else (0.0, 1.0)


@_j
def clip_v(u, lo, hi):
    m = u if u >= lo else lo
    return m if m < hi else hi
@_j
def clip_d(u, lo, hi):
    m = u if u >= lo else lo
    if m >= hi:
        return 0.0, 0.0, 1.0
    return (1.0, 0.0, 0.0) if u >= lo else (0.0, 1.0, 0.0)


@_j
def tanh_v(u): return math.tanh(u)
@_j
def tanh_d(u):
    t = math.tanh(u)
    return 1.0 - t * t
@_j
def sinh_v(u): return math.sinh(min(max(u, -EXP_MAX), EXP_MAX))
@_j
def sinh_d(u): return math.cosh(min(max(u, -EXP_MAX), EXP_MAX))
@_j
def cosh_v(u): return math.cosh(min(max(u, -EXP_MAX), EXP_MAX))
@_j
def cosh_d(u): return math.sinh(min(max(u, -EXP_MAX), EXP_MAX))


# ---------------------------------------------------------------- piecewise constant (derivative 0)
@_j
def floor_v(u): return np.floor(u)      # np.: float results (math.floor overflows int64 at 1e19)
@_j
def ceil_v(u): return np.ceil(u)
@_j
def int_v(u): return np.trunc(u)
@_j
def sign_v(u): return 1.0 if u > 0.0 else (-1.0 if u < 0.0 else 0.0)
@_j
def zero1(u): return 0.0
@_j
def zero2(u, v): return 0.0, 0.0
@_j
def lt_v(u, v): return 1.0 if u < v else 0.0
@_j
def le_v(u, v): return 1.0 if u <= v else 0.0
@_j
def gt_v(u, v): return 1.0 if u > v else 0.0
@_j
def ge_v(u, v): return 1.0 if u >= v else 0.0
@_j
def eq_v(u, v): return 1.0 if u == v else 0.0
@_j
def ne_v(u, v): return 1.0 if u != v else 0.0
@_j
def and_v(u, v): return 1.0 if (u != 0.0 and v != 0.0) else 0.0
@_j
def or_v(u, v): return 1.0 if (u != 0.0 or v != 0.0) else 0.0
@_j
def not_v(u): return 1.0 if u == 0.0 else 0.0


def _near_int(*a):
    return abs(a[0] - round(a[0])) < 1e-4


def _near_zero(*args):
    return any(abs(a) < 1e-4 for a in args)


def _near_tie(*a):
    return abs(a[0] - a[1]) < 1e-4


def _near_mod_jump(u, v):
    q = u / v
    return abs(q - round(q)) < 1e-4 or abs(v) < 1e-2


def _near_clip_kink(u, lo, hi):
    return abs(u - lo) < 1e-4 or abs(u - hi) < 1e-4 or abs(lo - hi) < 1e-4 or \
        abs(max(u, lo) - hi) < 1e-4


def _near_cos_zero(u):
    return abs(math.cos(u)) < 0.05


_R = (-10.0, 10.0)
_POS = (1e-3, 100.0)
_UNIT = (-0.99, 0.99)

TABLE: dict[str, Primitive] = {p.name: p for p in [
    Primitive("add", 2, add_v, add_d, "u' + v'", domain=(_R, _R), symbol="+", constant_partials=(1.0, 1.0)),
    Primitive("sub", 2, sub_v, sub_d, "u' - v'", domain=(_R, _R), symbol="-", constant_partials=(1.0, -1.0)),
    Primitive("mul", 2, mul_v, mul_d, "u'v + uv'", domain=(_R, _R), symbol="*", argument_partials=(1, 0)),
    Primitive("neg", 1, neg_v, neg_d, "-u'", domain=(_R,), symbol="-", constant_partials=(-1.0,)),
    Primitive("div", 2, div_v, div_d, "(u'v - uv')/v^2",
              "|v| < 1e-12 divides by +-1e-12 (sign of v; +1e-12 at 0): value and tangent finite",
              domain=(_R, (0.05, 10.0)), symbol="/"),
    Primitive("mod", 2, mod_v, mod_d, "u' - floor(u/v) v'",
              "floored modulo (result has the sign of v); v guarded as in div; jumps where u/v is an integer",
              domain=(_R, (0.5, 5.0)), avoid=_near_mod_jump, symbol="%"),
    Primitive("pow", 2, pow_v, pow_d, "v u^(v-1) u' + u^v ln(u) v'",
              "|u| >= 1e-12 in u^v when v < 0 and in u^(v-1) when v < 1 (singular at 0); "
              "u <= 0 with integer v: v u^(v-1) u' only; "
              "u < 0 with non-integer v is outside the real domain: value 0, derivative 0; "
              "a constant exponent drops the ln term structurally (so x^2 of negative x is exact)",
              domain=((0.05, 5.0), (-3.0, 3.0)), symbol="**"),
    Primitive("sin", 1, sin_v, sin_d, "cos(u) u'", domain=(_R,)),
    Primitive("cos", 1, cos_v, cos_d, "-sin(u) u'", domain=(_R,)),
    Primitive("tan", 1, tan_v, tan_d, "u'/cos^2(u)", "cos^2(u) >= 1e-12 in the denominator",
              domain=((-1.5, 1.5),), avoid=_near_cos_zero),
    Primitive("asin", 1, asin_v, asin_d, "u'/sqrt(1-u^2)",
              "|u| >= 1: value asin(+-1), derivative 0; 1-u^2 >= 1e-12 in the denominator",
              domain=(_UNIT,)),
    Primitive("acos", 1, acos_v, acos_d, "-u'/sqrt(1-u^2)", "as asin", domain=(_UNIT,)),
    Primitive("atan", 1, atan_v, atan_d, "u'/(1+u^2)", domain=(_R,)),
    Primitive("atan2", 2, atan2_v, atan2_d, "(u'v - uv')/(u^2+v^2)",
              "u^2+v^2 >= 1e-12 in the denominator (finite at the origin); jump across v<0, u=0",
              domain=(_R, _R), avoid=lambda u, v: (u * u + v * v) < 1e-2 or (v < 0 and abs(u) < 1e-3)),
    Primitive("exp", 1, exp_v, exp_d, "e^u u'", "u capped at 700 (e^700 ~ 1e304); derivative 0 above",
              domain=((-20.0, 20.0),)),
    Primitive("log", 1, log_v, log_d, "u'/u",
              "u <= 1e-12 is evaluated at 1e-12 (value -27.6), derivative 0", domain=(_POS,)),
    Primitive("log10", 1, log10_v, log10_d, "u'/(u ln 10)", "as log", domain=(_POS,)),
    Primitive("sqrt", 1, sqrt_v, sqrt_d, "u'/(2 sqrt(u))",
              "u <= 0: value 0, derivative 0; 0 < u < 1e-12: denominator 2 sqrt(1e-12)", domain=(_POS,)),
    Primitive("abs", 1, abs_v, abs_d, "sign(u) u' (0 at u = 0)", domain=(_R,),
              avoid=lambda u: abs(u) < 1e-4),
    Primitive("min", 2, min_v, min_d, "u' if u < v else v'", domain=(_R, _R), avoid=_near_tie),
    Primitive("max", 2, max_v, max_d, "u' if u >= v else v'", domain=(_R, _R), avoid=_near_tie),
    Primitive("clip", 3, clip_v, clip_d, "u' inside [lo, hi], else lo' or hi' (max then min)",
              domain=(_R, (-5.0, 0.0), (0.0, 5.0)), avoid=_near_clip_kink),
    Primitive("tanh", 1, tanh_v, tanh_d, "(1 - tanh^2 u) u'", domain=(_R,)),
    Primitive("sinh", 1, sinh_v, sinh_d, "cosh(u) u'", "u capped at +-700", domain=(_R,)),
    Primitive("cosh", 1, cosh_v, cosh_d, "sinh(u) u'", "u capped at +-700", domain=(_R,)),
    Primitive("floor", 1, floor_v, zero1, "0 (piecewise constant)", domain=(_R,), avoid=_near_int,
              zero_derivative=True),
    Primitive("ceil", 1, ceil_v, zero1, "0 (piecewise constant)", domain=(_R,), avoid=_near_int,
              zero_derivative=True),
    Primitive("int", 1, int_v, zero1, "0 (truncation is piecewise constant)", domain=(_R,),
              avoid=_near_int, zero_derivative=True),
    Primitive("sign", 1, sign_v, zero1, "0", domain=(_R,), avoid=lambda u: abs(u) < 1e-4,
              zero_derivative=True),
    Primitive("lt", 2, lt_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol="<"),
    Primitive("le", 2, le_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol="<="),
    Primitive("gt", 2, gt_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol=">"),
    Primitive("ge", 2, ge_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol=">="),
    Primitive("eq", 2, eq_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol="=="),
    Primitive("ne", 2, ne_v, zero2, "0", domain=(_R, _R), avoid=_near_tie, zero_derivative=True, symbol="!="),
    # logic steps at 0: the finite-difference test keeps its probe away from the step
    Primitive("and", 2, and_v, zero2, "0", domain=(_R, _R), avoid=_near_zero, zero_derivative=True, symbol="and"),
    Primitive("or", 2, or_v, zero2, "0", domain=(_R, _R), avoid=_near_zero, zero_derivative=True, symbol="or"),
    Primitive("not", 1, not_v, zero1, "0", domain=(_R,), avoid=_near_zero, zero_derivative=True, symbol="not"),
]}

# Names a circuit may call as functions: every table entry without an operator spelling, plus the
# stateful and sugar functions the compiler handles itself (see engine/circuit/language.py).
CALLABLE = sorted(n for n, p in TABLE.items() if not p.symbol)


def markdown_table() -> str:
    """The primitive table as Markdown (docs/circuit-language.md embeds it; a test keeps it current)."""
    rows = ["| primitive | spelling | derivative rule | guard at singular / out-of-domain points |",
            "|---|---|---|---|"]
    for p in TABLE.values():
        args = ", ".join("uvw"[k] for k in range(p.arity))
        spelling = f"`{p.symbol}`" if p.symbol else f"`{p.name}({args})`"
        cells = [p.name, spelling, p.rule, p.guard or "—"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
