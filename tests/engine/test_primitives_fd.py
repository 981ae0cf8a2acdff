"""Every primitive's derivative rule against central finite differences (hypothesis).

Two levels, both driven by engine.circuit.primitives.TABLE so a new entry is covered automatically:
  1. the rule itself: partials(args) vs (value(args + h) - value(args - h)) / 2h over the domain;
  2. through a circuit: the primitive inside a feedback loop, fed by delayed signals, with
     learnable parameters in its arguments; the engine's tangent of the output at every sample
     vs the finite difference of the whole run with each parameter nudged by +-h.
Plus the structural parts the compiler handles itself: IF, constant, fractional and parameter
delays, feedback through a parameter delay, phasor and osc.
"""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from engine.learn.learner import Learner, ParamSpec, Settings
from engine.circuit.primitives import TABLE

PRIMS = sorted(TABLE)
N_SAMPLES = 48
FD_SETTINGS = settings(max_examples=12, deadline=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _partials(p, args):
    d = p.partials(*args)
    return (d,) if p.arity == 1 else tuple(d)


@pytest.mark.parametrize("name", [n for n in PRIMS if TABLE[n].argument_partials is not None])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_declared_argument_partials_are_what_partials_returns(name, data):
    """A primitive whose partials are its arguments (mul) has them named in the kernel instead of
    computed by partials(): the declaration must give what partials() does, bit for bit."""
    p = TABLE[name]
    args = [data.draw(st.floats(allow_nan=False)) for _ in range(p.arity)]
    assert _partials(p, args) == tuple(args[j] for j in p.argument_partials)


@pytest.mark.parametrize("name", PRIMS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_rule_matches_finite_difference(name, data):
    p = TABLE[name]
    args = [data.draw(st.floats(lo, hi)) for lo, hi in p.domain]
    assume(p.avoid is None or not p.avoid(*args))
    got = _partials(p, args)
    assert len(got) == p.arity
    for k in range(p.arity):
        h = 1e-6 * max(1.0, abs(args[k]))
        up, dn = list(args), list(args)
        up[k] += h
        dn[k] -= h
        fd = (p.value(*up) - p.value(*dn)) / (2 * h)
        assert math.isfinite(got[k])
        assert abs(got[k] - fd) <= 1e-5 * max(1.0, abs(fd)), f"{name} d/darg{k} at {args}: {got[k]} vs {fd}"


@pytest.mark.parametrize("name", PRIMS)
def test_guards_keep_values_and_tangents_finite(name):
    """At and around singular points and far outside the domain nothing is NaN or Inf."""
    p = TABLE[name]
    specials = [0.0, -0.0, 1e-300, -1e-300, 1e-13, -1e-13, 1.0, -1.0, 1.0 + 1e-15, -1.0 - 1e-15,
                math.pi / 2, 0.5, -0.5, 2.0, -2.0, 7.5, -7.5]
    for a in specials:
        for b in specials[:: (1 if p.arity > 1 else len(specials))]:
            for c in ([3.0] if p.arity < 3 else [b + 1.0]):
                args = (a, b, c)[: p.arity]
                v = p.value(*args)
                assert math.isfinite(v), f"{name}{args} -> {v}"
                for d in _partials(p, args):
                    assert math.isfinite(d), f"{name}{args} partial -> {d}"


@pytest.mark.parametrize("name", PRIMS)
def test_huge_arguments_never_give_nan(name):
    """Far outside any sensible range a value may overflow to +-Inf (the kernel then skips the
    sample and restarts the circuit), but it is never NaN."""
    p = TABLE[name]
    for a in (710.0, -710.0, 1e6, -1e6, 1e300, -1e300):
        for b in (a, 2.0, -2.0, 0.5):
            args = (a, b, b + 1.0)[: p.arity]
            assert not math.isnan(p.value(*args)), f"{name}{args}"
            assert not any(math.isnan(d) for d in _partials(p, args)), f"{name}{args} partials"


# ---------------------------------------------------------------- through a circuit
def output_scale(p):
    """1 / (largest |value| over the domain), so the loop stays near unit level and a small
    nudge of a parameter is a small change (exp reaches 5e8 on its domain)."""
    grid = np.linspace(0.05, 0.95, 7)
    pts = np.array(np.meshgrid(*[lo + grid * (hi - lo) for lo, hi in p.domain])).reshape(p.arity, -1).T
    return 1.0 / max(1.0, max(abs(p.value(*a)) for a in pts))


def circuit_for(p):
    """PRIM inside a feedback loop; argument k = A_k + B_k * (a mix of delayed inputs and the
    fed-back output), staying inside the primitive's domain."""
    lines, names = [], []
    for k, (lo, hi) in enumerate(p.domain):
        half = (hi - lo) / 2
        mix = ["0.8*x + 0.1*x@2 + 0.1*tanh(y@1)", "0.8*x@1 + 0.2*tanh(y@2)", "0.7*x@3 + 0.3*tanh(y@1)"][k]
        lines.append(f"u{k} = A{k} + {0.8 * half!r}*({mix})")
        names.append(f"A{k}")
    args = ", ".join(f"u{k}" for k in range(p.arity))
    call = {"add": "u0 + u1", "sub": "u0 - u1", "mul": "u0*u1", "div": "u0/u1", "neg": "-u0",
            "mod": "u0 % u1", "pow": "u0^u1", "lt": "u0 < u1", "le": "u0 <= u1", "gt": "u0 > u1",
            "ge": "u0 >= u1", "eq": "u0 == u1", "ne": "u0 != u1", "and": "u0 and u1",
            "or": "u0 or u1", "not": "not u0"}.get(p.name, f"{p.name}({args})")
    lines.append(f"s = {call}")
    lines.append(f"y = G*{output_scale(p)!r}*s + c*y@1")
    return "\n".join(lines), names + ["G", "c"]


def arguments_per_sample(p, A, x, y):
    """The primitive's arguments at each sample, recomputed in numpy from the run."""
    xd = lambda k: np.concatenate([np.zeros(k), x[:-k]])
    yd = lambda k: np.concatenate([np.zeros(k), y[:-k]])
    mixes = [0.8 * x + 0.1 * xd(2) + 0.1 * np.tanh(yd(1)), 0.8 * xd(1) + 0.2 * np.tanh(yd(2)),
             0.7 * xd(3) + 0.3 * np.tanh(yd(1))]
    return [A[k] + 0.8 * (hi - lo) / 2 * mixes[k] for k, (lo, hi) in enumerate(p.domain)]


_learners = {}


def make_learner(text, names, target_text=None):
    key = (text, target_text)
    if key not in _learners:
        specs = [ParamSpec(n, 0.0) for n in names]
        # The target is the same circuit plus 0.5, so e = yhat - y = -0.5 and, with MSE and W = 1,
        # the raw gradient the kernel reports is exactly -(tangent of the output).
        target = target_text or (text + "\nyt = y + 0.5")
        _learners[key] = Learner(text, specs, target=target, hidden={n: 0.0 for n in names},
                                 settings=Settings(loss="mse", window=1, optimizer="sgd", learning=False))
    return _learners[key]


def run(learner, values, x):
    learner.reset(values)
    for n, v in values.items():
        if n in learner.hidden:
            learner.set_hidden(n, v)
    out, trace = learner.process(x, trace_every=1)
    P = len(learner.param_names)
    return out[:, 1].copy(), -trace[:, 2 + P: 2 + 2 * P].copy()


def check_tangents(learner, values, x, valid, rtol=2e-5):
    y, tangents = run(learner, values, x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(tangents))
    scale = 1.0 + np.abs(y).max()
    for j, name in enumerate(learner.param_names):
        h = 1e-6 * max(1.0, abs(values[name]))
        up, _ = run(learner, {**values, name: values[name] + h}, x)
        dn, _ = run(learner, {**values, name: values[name] - h}, x)
        fd = (up - dn) / (2 * h)
        t = tangents[:, j]
        err = np.abs(fd - t)[valid]
        tol = (rtol * np.maximum(np.abs(t), np.abs(fd)) + 1e-7 * scale / max(1.0, abs(values[name])))[valid]
        k = int(np.argmax(err - tol)) if err.size else 0
        assert err.size == 0 or np.all(err <= tol), \
            f"d/d{name} at sample {np.flatnonzero(valid)[k]}: engine {t[valid][k]!r} vs fd {fd[valid][k]!r}"
    return y


@pytest.mark.parametrize("name", PRIMS)
@FD_SETTINGS
@given(seed=st.integers(0, 2**31), offsets=st.lists(st.floats(-0.1, 0.1), min_size=3, max_size=3),
       gain=st.floats(0.1, 0.5), fb=st.floats(-0.4, 0.4))
def test_tangent_through_feedback_and_delays(name, seed, offsets, gain, fb):
    p = TABLE[name]
    text, names = circuit_for(p)
    learner = make_learner(text, names)
    x = np.random.default_rng(seed).uniform(-1, 1, N_SAMPLES)
    A = [(lo + hi) / 2 + offsets[k] * (hi - lo) / 2 for k, (lo, hi) in enumerate(p.domain)]
    values = {**{f"A{k}": A[k] for k in range(p.arity)}, "G": gain, "c": fb}
    y, _ = run(learner, values, x)
    valid = np.ones(N_SAMPLES, bool)
    if p.avoid is not None:     # after the first sample near a kink or jump, FD is meaningless
        args = arguments_per_sample(p, A, x, y)
        bad = np.array([p.avoid(*[a[n] for a in args]) for n in range(N_SAMPLES)])
        if bad.any():
            valid[np.argmax(bad):] = False
    assume(valid.sum() >= 8)
    check_tangents(learner, values, x, valid)


# ---------------------------------------------------------------- structural parts
@FD_SETTINGS
@given(seed=st.integers(0, 2**31), d=st.floats(0.1, 6.9), g=st.floats(-2, 2))
def test_parameter_delay_interpolates_and_differentiates(seed, d, g):
    assume(abs(d - round(d)) > 0.02)
    learner = make_learner("y = g*x@d + 0.3*x", ["g", "d"])
    x = np.random.default_rng(seed).uniform(-1, 1, N_SAMPLES)
    y = check_tangents(learner, {"g": g, "d": d}, x, np.ones(N_SAMPLES, bool))
    k, f = int(d), d - int(d)
    xd = lambda m: np.concatenate([np.zeros(m), x[:-m]]) if m else x
    np.testing.assert_allclose(y, g * ((1 - f) * xd(k) + f * xd(k + 1)) + 0.3 * x, rtol=1e-12, atol=1e-12)


@FD_SETTINGS
@given(seed=st.integers(0, 2**31), d=st.floats(1.1, 4.9), c=st.floats(-0.6, 0.6))
def test_feedback_through_parameter_delay(seed, d, c):
    assume(abs(d - round(d)) > 0.02)
    learner = make_learner("y = x + c*tanh(y@d)", ["c", "d"])
    x = np.random.default_rng(seed).uniform(-1, 1, N_SAMPLES)
    check_tangents(learner, {"c": c, "d": d}, x, np.ones(N_SAMPLES, bool))


@FD_SETTINGS
@given(seed=st.integers(0, 2**31), a=st.floats(-1, 1), b=st.floats(-1, 1), th=st.floats(-0.5, 0.5))
def test_if_takes_the_derivative_of_the_branch_taken(seed, a, b, th):
    learner = make_learner("s = x@1\ny = a*x if s > th else b*x*x + 0.1*y@1", ["a", "b", "th"])
    x = np.random.default_rng(seed).uniform(-1, 1, N_SAMPLES)
    xd = np.concatenate([[0.0], x[:-1]])
    near = np.abs(xd - th) < 1e-4
    valid = np.ones(N_SAMPLES, bool)
    if near.any():
        valid[np.argmax(near):] = False
    check_tangents(learner, {"a": a, "b": b, "th": th}, x, valid)


@FD_SETTINGS
@given(seed=st.integers(0, 2**31), f=st.floats(50, 2000), amp=st.floats(0.2, 1.0))
def test_osc_and_phasor_frequency_derivative(seed, f, amp):
    learner = make_learner("y = amp*osc(f) + 0.2*phasor(f)*x", ["amp", "f"])
    x = np.random.default_rng(seed).uniform(-1, 1, N_SAMPLES)
    n = np.arange(1, N_SAMPLES + 1)
    ph = (n * f / 48000.0) % 1.0
    near_wrap = np.minimum(ph, 1 - ph) < 1e-6
    valid = np.ones(N_SAMPLES, bool)
    if near_wrap.any():
        valid[np.argmax(near_wrap):] = False
    y = check_tangents(learner, {"amp": amp, "f": f}, x, valid, rtol=1e-4)
    np.testing.assert_allclose(y[~near_wrap], (amp * np.sin(2 * np.pi * ph) + 0.2 * ph * x)[~near_wrap], atol=1e-9)
    # at a whole number of cycles the accumulated phase may round to just below 1 or to 0: either
    wrap_value = amp * np.sin(2 * np.pi * ph)[near_wrap]
    assert np.all(np.minimum(np.abs(y[near_wrap] - wrap_value), np.abs(y[near_wrap] - wrap_value - 0.2 * x[near_wrap]))
                  < 1e-9)


@FD_SETTINGS
@given(f=st.floats(200, 6000), amp=st.floats(0.2, 1.0))
def test_blsaw_frequency_derivative_includes_the_moving_jump(f, amp):
    """blsaw's tangent against finite differences at every sample - also the two samples around
    each jump, where it carries the jump's movement with f (the naive saw's jump is a step in
    time whose movement no sample's tangent shows; blsaw is continuous in f). Samples within
    1e-6 of a branch's edge are skipped (the derivative changes form there)."""
    n = 400
    learner = make_learner("y = amp*blsaw(f)", ["amp", "f"])
    ph = np.arange(1, n + 1) * f / 48000.0 % 1.0
    dt = f / 48000.0
    edges = np.minimum.reduce([np.abs(ph - dt), np.abs(ph - (1.0 - dt)), ph, 1.0 - ph])
    valid = edges > 1e-6 * np.arange(1, n + 1)          # f +- h moves the phase by ~ n h / SR
    y = check_tangents(learner, {"amp": amp, "f": f}, np.zeros(n), valid, rtol=1e-4)
    assert np.max(np.abs(np.diff(y))) < 1.5 * amp      # the drop of 2 amp is spread over two steps
