"""The online Gauss-Newton optimiser (engine/learn/gauss_newton.py): the kernel's step against a
direct numpy implementation of the same recursion, convergence in a number of samples (these runs
are deterministic), no wind-up in silence, NaN input, the losses' reweighting, banks and batches."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from engine.learn import gauss_newton as GN
from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise, oscillator_block
from tests.paths import REPO

BIQUAD = "y = b0*x + b1*x@1 + b2*x@2 - a1*y@1 - a2*y@2"
BUTTERWORTH = dict(b0=0.0976, b1=0.1953, b2=0.0976, a1=-0.9428, a2=0.3333)
BIQUAD_PARAMS = [ParamSpec("b0"), ParamSpec("b1"), ParamSpec("b2"), ParamSpec("a1", 0.0, -1.99, 1.99),
                 ParamSpec("a2", 0.0, -0.99, 0.99)]


def gn(**kw):
    return Settings(optimizer="gauss-newton", **kw)


class Reference:
    """The recursion of engine/learn/gauss_newton.py written directly with numpy matrices."""

    def __init__(self, specs, lam_end=0.9995, lam_start=0.95, p0=Settings().p0):
        self.log = np.array([s.log for s in specs])
        widths = np.array([math.log(s.hi / s.lo) if s.log else s.hi - s.lo if math.isfinite(s.hi - s.lo) else 1.0
                           for s in specs])
        self.log_width = np.array([math.log(s.hi / s.lo) if s.log else 0.0 for s in specs])
        self.d0 = p0 * widths ** 2
        self.P = np.diag(self.d0)
        self.lam_end, self.lam = lam_end, lam_start
        self.lo = np.array([s.lo for s in specs])
        self.hi = np.array([s.hi for s in specs])
        self.theta = np.array([s.init for s in specs], dtype=float)
        self.t = 0

    def step(self, psi, e, w=1.0):
        """psi: dy/dp (a log parameter's is turned into dy/dlog p here)."""
        psi = np.where(self.log, psi * self.value(), psi)
        self.t += 1
        self.lam = self.lam_end + (self.lam - self.lam_end) * GN.RAMP
        u = self.P @ psi
        s = self.lam / w + psi @ u
        P = (self.P - np.outer(u, u) / s) / self.lam
        c = self.t % len(psi)
        mu = GN.DAMPING / self.d0[c]
        P = P - mu * np.outer(P[:, c], P[c, :]) / (1.0 + mu * P[c, c])
        worst = np.max(np.diag(P) / self.d0)
        self.P = P / worst if worst > 1.0 else P
        width = np.where(self.log, self.log_width, self.hi - self.lo)
        step = np.clip(u / s * e, -width, width)
        moved = np.where(self.log, self.value() * np.exp(step), self.theta + step)
        self.theta = np.clip(moved, self.lo, self.hi)

    def value(self):
        return np.clip(self.theta, self.lo, self.hi)


def test_the_kernels_step_is_the_recursion_on_a_linear_circuit():
    specs = [ParamSpec("g", 0.1, -2.0, 2.0), ParamSpec("d", 0.0)]
    x = LcgNoise().read(3000)
    L = Learner("y = g*x + d", specs, hidden={"g": 0.7, "d": -0.2}, settings=gn())
    _, tr = L.process(x, trace_every=1)
    ref = Reference(specs)
    for n, xn in enumerate(x):
        np.testing.assert_allclose(tr[n, 2:4], ref.value(), rtol=1e-12, atol=1e-14)
        g, d = ref.value()
        ref.step(np.array([xn, 1.0]), (0.7 * xn - 0.2) - (g * xn + d))
    np.testing.assert_allclose(list(L.params().values()), ref.value(), rtol=1e-12, atol=1e-14)
    assert ref.value() == pytest.approx([0.7, -0.2], abs=1e-12)


def test_the_kernels_step_is_the_recursion_through_feedback_with_huber_reweighting():
    """One-pole: psi carried through the recursion; Huber with a small delta so that most early
    steps are reweighted by delta/|e|; non-default forgetting factors and p0."""
    specs = [ParamSpec("a", 0.0, -0.95, 0.95)]
    x = LcgNoise().read(2000)
    delta, lam_end, lam_start, p0 = 0.02, 0.999, 0.9, 0.5
    L = Learner("y = x + a*y@1", specs, hidden={"a": 0.6},
                settings=gn(loss="huber", huber_delta=delta, c1=lam_end, c2=lam_start, p0=p0))
    _, tr = L.process(x, trace_every=1)
    ref = Reference(specs, lam_end, lam_start, p0)
    y = yh = psi = 0.0
    reweighted = 0
    for n, xn in enumerate(x):
        a = ref.value()[0]
        assert tr[n, 2] == pytest.approx(a, rel=1e-12, abs=1e-14)
        psi = yh + a * psi                  # d/da of yh[n] = x[n] + a*yh[n-1]
        yh = xn + a * yh
        y = xn + 0.6 * y
        e = y - yh
        w = 1.0 if abs(e) <= delta else delta / abs(e)
        reweighted += w < 1.0
        ref.step(np.array([psi]), e, w)
    assert reweighted > 20
    assert L.params()["a"] == pytest.approx(0.6, abs=1e-9)


@pytest.mark.parametrize("p0, rtol, atol", [(0.5, 1e-12, 1e-14), (Settings().p0, 1e-10, 1e-10)])
def test_a_log_parameter_is_stepped_in_log_space(p0, rtol, atol):
    """A gain declared on a log axis: sensitivity g*x, and each step multiplies g by exp(K e).
    At the default p0 (P0 = 500 * log(1e4)^2 = 42,000) the first update cancels P's huge prior
    against one sample's information, which amplifies the order of operations' rounding to ~1e-10."""
    specs = [ParamSpec("g", 0.2, 0.01, 100.0, log=True), ParamSpec("d", 0.0, -1.0, 1.0)]
    x = LcgNoise().read(2000)
    L = Learner("y = g*x + d", specs, hidden={"g": 7.0, "d": 0.1}, settings=gn(p0=p0))
    _, tr = L.process(x, trace_every=1)
    ref = Reference(specs, p0=p0)
    for n, xn in enumerate(x):
        np.testing.assert_allclose(tr[n, 2:4], ref.value(), rtol=rtol, atol=atol)
        g, d = ref.value()
        ref.step(np.array([xn, 1.0]), (7.0 * xn + 0.1) - (g * xn + d))
    assert L.params()["g"] == pytest.approx(7.0, rel=1e-9)


def test_direct_form_biquad_from_zero_converges_within_500_samples():
    """The issue's target: <= 500 samples with the defaults (best-tuned SGD: 7,947; Adam fails
    within 480,000). Samples until every parameter is within 1e-3 and stays there."""
    L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn())
    _, tr = L.process(LcgNoise().read(20000), trace_every=1)
    assert samples_to_converge(tr, list(BUTTERWORTH.values())) <= 500
    assert all(abs(L.params()[k] - v) < 1e-12 for k, v in BUTTERWORTH.items())


def test_one_pole_converges_within_100_samples():
    L = Learner("y = x + a*y@1", [ParamSpec("a", 0.0)], hidden={"a": 0.5}, settings=gn())
    _, tr = L.process(LcgNoise().read(5000), trace_every=1)
    assert samples_to_converge(tr, [0.5]) <= 100


def samples_to_converge(trace, truth, tol=1e-3):
    truth = np.asarray(truth)
    tol = np.where(np.abs(truth) > 1.0, tol * np.abs(truth), tol)
    values = trace[:, 2:2 + len(truth)]
    off = np.nonzero(np.any(np.abs(values - truth) > tol, axis=1))[0]
    return int(off[-1] + 1) if len(off) else 0


def preset_run(name, samples):
    """A factory preset's circuit learning from its own source at Gauss-Newton's defaults: the
    trace and the learner."""
    from app.preset import document, store
    preset = document.load(store.resolve(name))
    spec = preset.spec
    L = Learner(spec.circuit, spec.params, target=spec.target, hidden=spec.hidden, settings=gn(),
                sample_rate=48000.0, banks=spec.banks)
    if preset.source == "lcg-noise":
        x = LcgNoise().read(samples)
    else:
        x = np.empty(samples)
        oscillator_block(x, samples, 0.0, preset.source_hz, 48000.0, 1.0, preset.source == "saw")
    _, tr = L.process(x, trace_every=1)
    return tr, L


@pytest.mark.parametrize("name, within, best_first_order", [
    ("gain", 18, 9), ("ring-mod", 10, 5), ("gain+dc", 20, 86), ("compressor", 5000, 50074)])
def test_factory_presets_converge_at_the_defaults_within_the_issues_margin(name, within, best_first_order):
    """benchmarks/convergence.py's rows as assertions with margin: 2x the best-tuned SGD/Adam of
    the grid where that is a few samples, 10x fewer where it needs thousands."""
    from app.preset import document, store
    spec = document.load(store.resolve(name)).spec
    truth = [spec.hidden[p.name] for p in spec.params]
    tr, _ = preset_run(name, 48000)
    at = samples_to_converge(tr, truth)
    assert at <= within and (at <= 2 * best_first_order or at * 10 <= best_first_order), at


def test_the_lactose_preset_converges_within_a_tenth_of_a_second():
    """Four banks of tanh shapers on a 110 Hz sine (at p0 0.5 this took 10.8 s of audio)."""
    tr, L = preset_run("lactose-asymmetric", 9600)
    truth = {f"{p}@{k}": v for k in range(4) for p, v in (("a", 0.5 if k < 2 else 1.0), ("d", 0.7 if k < 2 else 2.0))}
    order = [truth[k] for k in L.param_names]
    assert samples_to_converge(tr, order) <= 4800


def test_ten_seconds_of_silence_neither_explode_nor_forget():
    L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn())
    noise = LcgNoise()
    L.process(noise.read(4800))
    learned = L.params()
    base, members, _ = L.layout.gn_groups[0]
    n = len(members)
    d0 = L.st[base + n * n + 2 * n:base + n * n + 3 * n].copy()
    L.process(np.zeros(480000))
    P = L.st[base:base + n * n].reshape(n, n)
    assert np.all(np.diag(P) <= d0 * (1 + 1e-12))          # wound up no further than it started
    assert np.all(np.isfinite(P)) and np.allclose(P, P.T, rtol=0, atol=0)
    assert np.linalg.eigvalsh(P).min() > 0.0
    assert L.params() == learned                            # silence: zero error, no step
    _, tr = L.process(noise.read(48000), trace_every=1)
    drift = np.max(np.abs(tr[:, 2:7] - np.array(list(BUTTERWORTH.values()))))
    assert drift < 1e-9                                     # the noise returns: nothing forgotten
    assert L.diverged_steps == 0


def test_nan_input_skips_the_step_and_keeps_p_finite():
    L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn())
    x = LcgNoise().read(3000)
    x[100:140] = np.nan
    x[500] = np.inf
    L.process(x)
    base, members, _ = L.layout.gn_groups[0]
    n = len(members)
    assert L.skipped == 41
    assert np.all(np.isfinite(L.st[base:base + n * n]))
    assert all(abs(L.params()[k] - v) < 1e-9 for k, v in BUTTERWORTH.items())


@pytest.mark.parametrize("loss", ["mae", "msle", "huber"])
def test_every_loss_learns_the_biquad(loss):
    L = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn(loss=loss, huber_delta=0.01))
    L.process(LcgNoise().read(20000))
    assert all(abs(L.params()[k] - v) < 1e-6 for k, v in BUTTERWORTH.items()), L.params()


@pytest.mark.parametrize("mode", ["separated", "exact"])
def test_banks_learn_the_asymmetric_shaper(mode):
    """One P per bank (separated, only the active bank's updates) or one joint P (exact)."""
    b = Banks([-1.0, 0.0, 1.0], condition="input", mode=mode)
    L = Learner("y = a*tanh(d*x)", [ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.01, 10.0)],
                target="y = tanh(2*x) if x > 0 else 0.5*tanh(0.7*x)", settings=gn(), banks=b)
    groups = L.layout.gn_groups
    assert [len(m) for _, m, _ in groups] == ([2, 2] if mode == "separated" else [4])
    x = LcgNoise().read(96000)
    out, tr = L.process(x, trace_every=1)
    p = L.params()
    # bank 0 (0.5*tanh(0.7x) on [-1, 0), nearly linear: a and d barely separable) is the slow one
    assert p["a@0"] == pytest.approx(0.5, abs=1e-3) and p["d@0"] == pytest.approx(0.7, abs=1e-3)
    assert p["a@1"] == pytest.approx(1.0, abs=1e-9) and p["d@1"] == pytest.approx(2.0, abs=1e-9)
    if mode == "separated":                    # only the active bank moves
        names = L.param_names
        values, bank = tr[:, 2:6], tr[:, -1].astype(int)
        for n in range(len(x) - 1):
            moved = {names[j].split("@")[1] for j in range(4) if values[n + 1, j] != values[n, j]}
            assert moved <= {str(bank[n])}


def test_batches_stack_the_streams_as_measurements():
    """Two streams of different noise: each sample is two measurements; the biquad converges in
    fewer samples than on one stream, and B copies of one stream converge as well. At p0 0.5, where
    information limits the biquad; at the default 500 its own IIR memory does (one stream 138
    samples, two 168, the second alone 192: benchmarks/README.md)."""
    x = np.stack([LcgNoise().read(4000), np.random.default_rng(2).uniform(-1.0, 1.0, 4000)], axis=1)
    one = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn(p0=0.5))
    _, tr1 = one.process(x[:, 0], trace_every=1)
    two = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn(p0=0.5), streams=2)
    _, tr2 = two.process_batch(x, trace_every=1)
    truth = list(BUTTERWORTH.values())
    assert samples_to_converge(tr2, truth) < samples_to_converge(tr1, truth)
    assert all(abs(two.params()[k] - v) < 1e-12 for k, v in BUTTERWORTH.items())
    at_default = Learner(BIQUAD, BIQUAD_PARAMS, hidden=BUTTERWORTH, settings=gn(), streams=2)
    _, tr_default = at_default.process_batch(x, trace_every=1)
    assert samples_to_converge(tr_default, truth) == 168
    assert all(abs(at_default.params()[k] - v) < 1e-12 for k, v in BUTTERWORTH.items())


def test_banks_with_several_streams_are_refused_in_one_line():
    b = Banks([-1.0, 0.0, 1.0], condition="input")
    with pytest.raises(ValueError, match="^gauss-newton does not yet learn banks over several streams"):
        Learner("y = a*x", [ParamSpec("a", 1.0, 0.0, 4.0)], target="y = 2*x", settings=gn(), banks=b, streams=2)


def test_forgetting_factors_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"^the forgetting factor must be in \[0.5, 1\], got 1.5$"):
        gn(c1=1.5).validate()
    with pytest.raises(ValueError, match=r"^p0 must be a finite number > 0, got 0.0$"):
        gn(p0=0.0).validate()


def test_the_command_line_learns_the_biquad_within_1e_4():
    """The issue's 'done when' command."""
    cmd = [sys.executable, "main.py", "learn", "--circuit", BIQUAD, "--param", "b0=0", "--param", "b1=0",
           "--param", "b2=0", "--param", "a1=0:-1.99:1.99", "--param", "a2=0:-0.99:0.99",
           *[a for k, v in BUTTERWORTH.items() for a in ("--hidden", f"{k}={v}")],
           "--optimizer", "gauss-newton", "--input", "lcg-noise", "--samples", "2000"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    params = json.loads(r.stdout.strip().splitlines()[-1])["params"]
    assert all(abs(params[k] - v) < 1e-4 for k, v in BUTTERWORTH.items()), params
