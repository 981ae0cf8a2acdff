"""The circuit language (DESIGN.md, "The circuit language"): what a circuit text means, checked by
running it through a Learner with learning off and comparing the learned output with numpy, and
how a bad text is reported (CircuitError with a 1-based line and column and a readable message)."""
import math
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.circuit.language import STATEFUL, CircuitError, parse
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.circuit.primitives import CALLABLE, TABLE

X = np.random.default_rng(1).uniform(-1.0, 1.0, 64)       # a time-varying test input
RAMP = np.arange(1.0, 17.0)                                   # positive, distinct samples


def run(circuit, x=X, sample_rate=48000.0, **params):
    """The learnable circuit's output for input x, parameters fixed at the given values."""
    learner = Learner(circuit, [ParamSpec(k, v) for k, v in params.items()],
                      settings=Settings(learning=False), sample_rate=sample_rate)
    out, _ = learner.process(np.asarray(x, dtype=np.float64))
    return out[:, 1].copy()


def delayed(x, k):
    """x[n - k], zero before the start."""
    return np.concatenate([np.zeros(k), x[:len(x) - k]])


def parse_error(text) -> CircuitError:
    with pytest.raises(CircuitError) as info:
        parse(text)
    return info.value


# ---------------------------------------------------------------- names

def test_free_names_become_params_in_order_of_first_appearance():
    assert parse("y = b*x + a + b*c").params == ["b", "a", "c"]


def test_x_pi_SR_and_function_names_are_not_params():
    assert parse("y = g*sin(pi*x)/SR + abs(x)").params == ["g"]


def test_param_order_follows_the_text_in_an_if_expression():
    assert parse("y = a if c else b").params == ["a", "c", "b"]


def test_param_order_follows_the_text_across_lines_in_any_order():
    assert parse("s = g*t\nt = x + h\ny = s").params == ["g", "h"]


def test_input_is_x():
    np.testing.assert_array_equal(run("y = x"), X)


def test_numeric_constants():
    np.testing.assert_allclose(run("y = 2.5*x + 1e-1"), 2.5 * X + 0.1, rtol=1e-15)


def test_pi_and_SR_are_constants():
    out = run("y = x*pi + SR", sample_rate=44100.0)
    np.testing.assert_allclose(out, X * math.pi + 44100.0, rtol=1e-15)


def test_parameter_takes_its_value():
    np.testing.assert_allclose(run("y = g*x + dc", g=0.5, dc=-0.25), 0.5 * X - 0.25, rtol=1e-15)


# ---------------------------------------------------------------- operators and precedence

@pytest.mark.parametrize("text, expected", [
    ("y = x + d^2", lambda x, d: x + d ** 2),
    ("y = d*x^2", lambda x, d: d * x ** 2),
    ("y = -x^2 + d", lambda x, d: -(x ** 2) + d),
    ("y = x^2^d", lambda x, d: x ** (2 ** d)),          # right-associative, as **
    ("y = x**2 + d", lambda x, d: x ** 2 + d),
], ids=["sum", "product", "unary-minus", "right-assoc", "double-star"])
def test_caret_is_power_with_power_precedence(text, expected):
    np.testing.assert_allclose(run(text, d=3.0), expected(X, 3.0), rtol=1e-13)


def test_arithmetic_operators():
    out = run("y = (x - d)/e + x*d", d=0.5, e=4.0)
    np.testing.assert_allclose(out, (X - 0.5) / 4.0 + X * 0.5, rtol=1e-14)


def _sum_shape(graph, i=None):
    """The add/sub structure of a parsed circuit's output, e.g. '((a+b)+(c-d))'."""
    n = graph.node(graph.output if i is None else i)
    if n.kind == "prim" and n.prim in ("add", "sub"):
        a, b = (_sum_shape(graph, k) for k in n.args)
        return f"({a}{'+' if n.prim == 'add' else '-'}{b})"
    if n.kind == "prim" and n.prim == "neg":
        return "-" + _sum_shape(graph, n.args[0])
    return n.name


@pytest.mark.parametrize("text, shape", [
    ("y = a + b", "(a+b)"),
    ("y = a + b - c", "((a+b)-c)"),                        # up to three terms: left to right
    ("y = a + b + c + d", "((a+b)+(c+d))"),
    ("y = a - b + c - d - e", "(((a-b)+(c-d))-e)"),
    ("y = a + b - c - d", "((a+b)-(c+d))"),                # -c - d = -(c + d), exactly
    ("y = a - b - c + d", "((a-b)+(d-c))"),                # -c + d = d - c, exactly
    ("y = -a - b - c - d", "((-a-b)-(c+d))"),
    ("y = (a + b) + c + d", "(((a+b)+c)+d)"),              # a parenthesized operand stays whole
    ("y = a + (b + c + d + e)", "(a+((b+c)+(d+e)))"),
])
def test_a_chain_of_additions_is_summed_pairwise(text, shape):
    assert _sum_shape(parse(text)) == shape


def test_pairwise_sum_is_what_the_kernel_computes():
    """1e16 + 1 + 1 + 1: left to right each 1 is lost to rounding (1e16); pairwise the ones add
    up first, (1e16 + 1) + (1 + 1) = 1e16 + 2, which is exact."""
    learner = Learner("y = g*x + x + x + x", [ParamSpec("g", 1e16)], hidden={"g": 1e16},
                      settings=Settings(learning=False))
    out, _ = learner.process(np.ones(1))
    assert 1e16 + 1 + 1 + 1 == 1e16                           # what left to right gives
    assert out[0, 0] == 1e16 + 2 and out[0, 1] == 1e16 + 2    # the target and the learnable circuit


def test_delay_binds_tighter_than_multiplication():
    np.testing.assert_allclose(run("y = x*x@1"), X * delayed(X, 1), rtol=1e-15)


def test_delay_binds_tighter_than_multiplication_in_a_chain():
    np.testing.assert_allclose(run("y = a*x*x@1", a=2.0), 2.0 * X * delayed(X, 1), rtol=1e-15)


def test_parenthesised_product_is_delayed_as_a_whole():
    np.testing.assert_allclose(run("y = (a*x*x)@1", a=2.0), 2.0 * delayed(X * X, 1), rtol=1e-15)


def test_delay_binds_tighter_than_power():
    # language.py: "s@k delays s by k samples and binds tighter than * and ^ (as in Faust)"
    out = run("y = x^x@1", x=RAMP)
    np.testing.assert_allclose(out, RAMP ** delayed(RAMP, 1), rtol=1e-13)


def test_modulo_is_floored():
    np.testing.assert_allclose(run("y = x % m", m=0.3), np.mod(X, 0.3), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- lines

def test_intermediate_names():
    out = run("d = x@1\ne = d*g\ny = e + x", g=0.5)
    np.testing.assert_allclose(out, X + 0.5 * delayed(X, 1), rtol=1e-15)


def test_lines_in_any_order():
    out = run("s = t*g\nt = x + 1\ny = s", g=3.0)
    np.testing.assert_allclose(out, (X + 1.0) * 3.0, rtol=1e-15)


def test_last_assigned_name_is_the_output():
    np.testing.assert_allclose(run("y = 3*x\nz = 2*x"), 2.0 * X, rtol=1e-15)


# ---------------------------------------------------------------- delays and feedback

def test_integer_delay():
    np.testing.assert_array_equal(run("y = x@3"), delayed(X, 3))


def test_fractional_constant_delay_interpolates_linearly():
    expected = 0.5 * (delayed(X, 1) + delayed(X, 2))
    np.testing.assert_allclose(run("y = x@1.5"), expected, rtol=1e-14, atol=1e-16)


def test_fractional_delay_below_one_sample_mixes_current_and_previous():
    expected = 0.75 * X + 0.25 * delayed(X, 1)
    np.testing.assert_allclose(run("y = x@0.25"), expected, rtol=1e-14, atol=1e-16)


def test_one_line_feedback_matches_the_recursion():
    a = 0.7
    expected = np.zeros_like(X)
    prev = 0.0
    for n, xn in enumerate(X):
        prev = expected[n] = xn + a * prev
    np.testing.assert_allclose(run("y = x + a*y@1", a=a), expected, rtol=1e-13)


def test_two_line_feedback_loop_through_a_delay():
    a, b = 0.6, 0.5
    u = np.zeros_like(X)
    v = np.zeros_like(X)
    for n in range(len(X)):
        u[n] = X[n] + a * (v[n - 1] if n >= 1 else 0.0)
        v[n] = b * u[n]
    np.testing.assert_allclose(run("u = x + a*v@1\nv = b*u", a=a, b=b), v, rtol=1e-13)


def test_feedback_through_a_later_line():
    a = 0.5
    u = np.zeros_like(X)
    for n in range(len(X)):
        u[n] = X[n] + a * (u[n - 2] if n >= 2 else 0.0)
    np.testing.assert_allclose(run("u = x + a*v\nv = u@2\ny = u", a=a), u, rtol=1e-13)


# ---------------------------------------------------------------- if, comparisons

def test_if_else_takes_the_branch_of_the_condition():
    out = run("y = a if x > 0 else b", a=2.0, b=-3.0)
    np.testing.assert_array_equal(out, np.where(X > 0, 2.0, -3.0))


CMP_X = np.array([0.0, 0.25, 0.5, 0.75, 0.5, 1.0])


@pytest.mark.parametrize("op, f", [
    ("<", np.less), ("<=", np.less_equal), (">", np.greater), (">=", np.greater_equal),
    ("==", np.equal), ("!=", np.not_equal)])
def test_comparison_gives_one_or_zero(op, f):
    np.testing.assert_array_equal(run(f"y = x {op} h", x=CMP_X, h=0.5), f(CMP_X, 0.5).astype(float))


def test_chained_comparison_means_both():
    out = run("y = 0.25 < x < h", x=CMP_X, h=0.75)
    np.testing.assert_array_equal(out, ((CMP_X > 0.25) & (CMP_X < 0.75)).astype(float))


# ---------------------------------------------------------------- oscillators

SR_POW2 = 32768.0          # with f = 2048 Hz the phase step 1/16 is exact in binary
F_POW2 = 2048.0


def expected_phase(n, f, sr):
    return np.mod(np.arange(1, n + 1) * f / sr, 1.0)


def test_phasor_starts_at_f_over_SR_and_wraps_to_zero():
    out = run("y = phasor(f)", x=np.zeros(40), sample_rate=SR_POW2, f=F_POW2)
    assert out[0] == F_POW2 / SR_POW2
    np.testing.assert_array_equal(out, expected_phase(40, F_POW2, SR_POW2))


def test_phasor_stays_in_zero_one():
    out = run("y = phasor(f)", x=np.zeros(5000), f=1234.5)
    assert np.all((out >= 0.0) & (out < 1.0))
    np.testing.assert_allclose(out, expected_phase(5000, 1234.5, 48000.0), atol=1e-9)


def test_osc_is_sine_of_the_phasor():
    out = run("y = osc(f)", x=np.zeros(40), sample_rate=SR_POW2, f=F_POW2)
    np.testing.assert_allclose(out, np.sin(2 * np.pi * expected_phase(40, F_POW2, SR_POW2)), atol=1e-14)


def test_saw_is_the_phasor_scaled_to_minus_one_one():
    out = run("y = saw(f)", x=np.zeros(40), sample_rate=SR_POW2, f=F_POW2)
    np.testing.assert_allclose(out, 2.0 * expected_phase(40, F_POW2, SR_POW2) - 1.0, atol=1e-15)


@pytest.mark.parametrize("f", [440.0, 1000.0, 3333.0])
def test_blsaw_is_the_saw_with_a_polyblep_at_each_jump(f):
    """PolyBLEP written out independently: the naive saw minus a polynomial step residual over the
    sample before and the sample after each wrap; elsewhere exactly the saw, and never a jump of 2."""
    out = run("y = blsaw(f)", x=np.zeros(400), f=f)
    ph = np.arange(1, 401) * f / 48000.0 % 1.0
    dt = f / 48000.0
    residual = np.zeros_like(ph)
    after, before = ph < dt, ph > 1.0 - dt
    residual[after] = 2 * ph[after] / dt - (ph[after] / dt) ** 2 - 1.0
    residual[before] = ((ph[before] - 1.0) / dt) ** 2 + 2 * (ph[before] - 1.0) / dt + 1.0
    np.testing.assert_allclose(out, 2.0 * ph - 1.0 - residual, atol=1e-12)
    assert np.count_nonzero(after) >= 3 and np.all(out[~(after | before)] == pytest.approx(2.0 * ph[~(after | before)] - 1.0))
    assert np.max(np.abs(np.diff(out))) < 2.0 - 2.0 * dt       # the naive saw drops by 2 - 2 dt


# ---------------------------------------------------------------- the function table

REFERENCE = {
    "abs": abs, "acos": math.acos, "asin": math.asin, "atan": math.atan, "atan2": math.atan2,
    "ceil": math.ceil, "clip": lambda u, lo, hi: min(max(u, lo), hi), "cos": math.cos,
    "cosh": math.cosh, "exp": math.exp, "floor": math.floor, "int": math.trunc, "log": math.log,
    "log10": math.log10, "max": max, "min": min, "sign": lambda u: float(np.sign(u)),
    "sin": math.sin, "sinh": math.sinh, "sqrt": math.sqrt, "tan": math.tan, "tanh": math.tanh,
}


def in_domain_point(name):
    prim = TABLE[name]
    rng = random.Random(name)
    while True:
        point = [rng.uniform(lo, hi) for lo, hi in prim.domain]
        if prim.avoid is None or not prim.avoid(*point):
            return point


@pytest.mark.parametrize("name", CALLABLE)
def test_callable_function_evaluates_like_its_math_counterpart(name):
    assert name in REFERENCE, f"add a reference implementation of {name}() to this test"
    point = in_domain_point(name)
    names = ["a", "b", "c"][:len(point)]
    out = run(f"y = {name}({', '.join(names)})", x=np.zeros(1), **dict(zip(names, point)))
    assert out[0] == pytest.approx(float(REFERENCE[name](*point)), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("name", ["floor", "ceil", "int"])
def test_rounding_functions_keep_large_values(name):
    out = run(f"y = {name}(a)", x=np.zeros(1), a=1e19)
    assert out[0] == 1e19


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("text, line, col, words", [
    ("y = a*x\nz = (y + 1", 2, 5, ["syntax", "never closed"]),
    ("y = x\nz = y +", 2, 8, ["syntax"]),
    ("y = x\nz = foo(x)", 2, 5, ["unknown function", "foo"]),
    ("y = print(x)", 1, 5, ["unknown function", "print"]),
    ("y = x.sin()", 1, 5, ["function"]),
    ("y = a.b", 1, 5, ["attribute"]),
    ("y = x[1]", 1, 5, ["subscript", "@"]),
    ("y = lambda: x", 1, 5, ["lambda"]),
    ("y = [x for q in x]", 1, 5, ["comprehension"]),
    ("import os", 1, 1, ["import"]),
    ("y = x\nfrom os import path", 2, 1, ["import"]),
    ("y = sin(x=1)", 1, 5, ["sin", "positional"]),
    ("y = 'a'", 1, 5, ["number"]),
    ("y = x & 2", 1, 5, ["&"]),
    ("y = atan2(x)", 1, 5, ["atan2", "2 argument", "got 1"]),
    ("y = sin(x, x)", 1, 5, ["sin", "1 argument", "got 2"]),
    ("y = x\nz = 2*y\ny = x", 3, 1, ["twice"]),
    ("y = y + x", 1, 5, ["itself", "delay"]),
    ("y = x + y@0.5", 1, 9, ["feedback", "one sample"]),
    ("y = g@1", 1, 5, ["parameter", "g"]),
    ("y = x\nz = pi@1", 2, 5, ["constant", "pi"]),
    ("", 1, 1, ["empty"]),
    ("  \n\n", 1, 1, ["empty"]),
    ("# a comment, no formula\n", 1, 1, ["empty"]),
], ids=["syntax-unclosed", "syntax-dangling", "unknown-function", "non-listed-call",
        "method-call", "attribute", "subscript", "lambda", "list-comprehension", "import",
        "from-import", "keyword-argument", "string", "bitwise-and", "too-few-arguments",
        "too-many-arguments", "assigned-twice", "self-reference-without-delay",
        "feedback-half-sample", "delayed-parameter", "delayed-constant", "empty", "blank",
        "comment-only"])
def test_error_position_and_message(text, line, col, words):
    e = parse_error(text)
    assert (e.line, e.col) == (line, col), e.message
    for w in words:
        assert w.lower() in e.message.lower()


def test_floor_division_is_reported_at_the_operator_or_the_expression():
    e = parse_error("y = x // 2")
    assert "//" in e.message
    assert e.line == 1 and e.col in (5, 7), f"col {e.col}: '2' is not the problem"


@pytest.mark.parametrize("name", ["x", "pi", "SR", "sin", "phasor"])
def test_assigning_a_builtin_name_is_an_error(name):
    e = parse_error(f"y = x\n{name} = 2*y")
    assert (e.line, e.col) == (2, 1)
    assert name in e.message and "built-in" in e.message


def test_two_line_feedback_loop_without_delay_is_an_error():
    e = parse_error("a = b + x\nb = a")
    assert e.line in (1, 2)
    assert "feedback" in e.message and "delay" in e.message
    assert "a -> b" in e.message or "b -> a" in e.message


def test_error_column_after_caret_is_in_the_users_text():
    e = parse_error("y = x^2 + a.b")
    assert (e.line, e.col) == (1, 11)


def test_error_column_after_two_carets_is_in_the_users_text():
    e = parse_error("y = x ^ 2 + z^3 + a.b")
    assert (e.line, e.col) == (1, 19)


def test_syntax_error_column_after_caret_is_in_the_users_text():
    e = parse_error("y = x^2 $")
    assert (e.line, e.col) == (1, 9)


def test_error_column_counts_characters_not_bytes():
    e = parse_error("y = gé*x + a.b")
    assert (e.line, e.col) == (1, 12)


def test_integer_literal_too_large_for_a_float_is_a_circuit_error():
    e = parse_error("y = 1" + "0" * 400 + "*x")
    assert e.line == 1 and e.col == 5


@pytest.mark.parametrize("terms", [600, 5000])
def test_long_sum_parses_or_is_a_circuit_error(terms):
    text = "y = " + " + ".join(["x"] * terms)
    try:
        parse(text)
    except CircuitError:
        pass


def test_undeclared_parameter_names_it():
    with pytest.raises(CircuitError) as info:
        Learner("y = g*x\nz = y + h", [ParamSpec("g", 1.0)], settings=Settings(learning=False))
    e = info.value
    assert "'h'" in e.message
    assert (e.line, e.col) == (2, 9)


def test_declared_parameter_the_circuit_lacks_is_a_value_error():
    with pytest.raises(ValueError, match="'q'"):
        Learner("y = g*x", [ParamSpec("g", 1.0), ParamSpec("q", 0.0)],
                settings=Settings(learning=False))


# ---------------------------------------------------------------- robustness

def parses_or_circuit_error(text):
    try:
        parse(text)
    except CircuitError as e:
        assert e.line >= 1 and e.col >= 1
        assert e.message


@settings(max_examples=400, deadline=2000, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\n\t"),
               max_size=120))
def test_random_text_parses_or_raises_circuit_error(text):
    parses_or_circuit_error(text)


TOKENS = (["x", "y", "z", "a", "g", "pi", "SR", "0", "1", "2", "0.5", "1e3", "-1", "1e400"]
          + sorted(set(CALLABLE) | set(STATEFUL))
          + ["+", "-", "*", "/", "**", "^", "@", "%", "<", "<=", ">", ">=", "==", "!=",
             "if", "else", "and", "or", "not", "(", ")", ",", "=", "\n", "#", ".", "[", "]",
             "lambda", ":", "'s'", "//", "&", "|", "~", ";"])
LINE = st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join)
CIRCUIT = st.lists(st.tuples(st.sampled_from(["y", "z", "u", "x", "pi"]), LINE), min_size=1,
                   max_size=4).map(lambda lines: "\n".join(f"{n} = {e}" for n, e in lines))


@settings(max_examples=400, deadline=2000, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(LINE, CIRCUIT))
def test_token_soup_parses_or_raises_circuit_error(text):
    parses_or_circuit_error(text)


@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_a_very_deep_expression_is_a_circuit_error_not_a_crash(depth):
    """CPython's parser gives up on deep nesting with MemoryError (30,000 unary minuses) or
    RecursionError: both are a positioned one-line CircuitError."""
    with pytest.raises(CircuitError, match=r"^circuit line 1, col 1: the circuit is nested too deeply"):
        parse("y = " + "-" * depth + "x")


def _sixteen_long_delays():
    lines = ["s0 = x*g"] + [f"s{k} = s{k - 1}@16777216 + x" for k in range(1, 17)]
    return "\n".join(lines)


def test_a_circuit_whose_delay_lines_need_gigabytes_is_refused_before_allocating():
    """Sixteen signals each delayed by 2^24 samples would take many GB of state (the OOM killer
    ended the app with no message): the parser sizes the delay lines and refuses past the cap."""
    text = _sixteen_long_delays()
    with pytest.raises(CircuitError) as e:
        parse(text)
    msg = str(e.value)
    assert re.fullmatch(r"circuit line \d+, col \d+: the delay lines need [\d,]+ MB of state "
                        r"\(at most 256 MB\); use shorter delays", msg), msg


def test_state_size_counts_a_ring_per_delayed_signal_and_per_tangent():
    from engine.circuit.language import MAX_STATE_BYTES, state_bytes
    assert MAX_STATE_BYTES == 256 * 2 ** 20
    assert state_bytes(parse("y = g*x")) == 0
    # y@1000 feeds back through g: a 1024-sample ring for y and one for dy/dg (2^10 >= 1000 + 2)
    assert state_bytes(parse("y = x + g*y@1000")) == 2 * 1024 * 8
    # x's delay line has no tangents
    assert state_bytes(parse("y = g*x@1000")) == 1024 * 8
    parse("y = x + g*y@4000000")              # 2 x 32 MB: fine
