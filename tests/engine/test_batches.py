"""Batches: B input streams learned in lockstep, each with its own circuit state, window and loss,
the shared parameters stepped with the mean gradient. B copies of one input learn bit for bit like
one stream; the first SGD step is -lr times the mean of the single-stream gradients; the mean
gradient is the derivative of the mean loss through feedback, also with the streams in different
banks; separated banks step every bank some stream had active; the command line."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise, WhiteNoise
from tests.paths import REPO

ROOT = REPO
# one circuit throughout, so the tests share their kernels
CIRCUIT = "y = (1 - c)*x + c*y@1 + g*tanh(y@2)"
TARGET = "y = (1 - 0.7)*x + 0.7*y@1 + 0.3*tanh(y@2)"
PARAMS = [ParamSpec("c", 0.5, 0.0, 0.95), ParamSpec("g", 0.1, -1.0, 1.0)]


def learner(streams=1, mode=None, optimizer="adam", lr=1e-3, learning=True, window=8):
    banks = None if mode is None else Banks([-1.0, 0.0, 1.0], condition="input", mode=mode)
    return Learner(CIRCUIT, PARAMS, target=TARGET, banks=banks, streams=streams,
                   settings=Settings(loss="mse", window=window, optimizer=optimizer, lr=lr, learning=learning))


@pytest.mark.parametrize("mode, B", [(None, 3), ("exact", 2), ("separated", 2)])
def test_b_copies_of_one_input_learn_exactly_like_one_stream(mode, B):
    x = LcgNoise().read(5000)
    one = learner(mode=mode)
    out1, tr1 = one.process(x, trace_every=1)
    batch = learner(B, mode)
    out, tr = batch.process_batch(np.repeat(x[:, None], B, axis=1), trace_every=1)
    assert out.shape == (5000, B, 3) and tr.shape == tr1.shape
    np.testing.assert_array_equal(tr, tr1)           # n, loss, params, gradients, target, output, bank
    for s in range(B):
        np.testing.assert_array_equal(out[:, s], out1)
    assert batch.params() == one.params() and batch.loss == one.loss
    if mode is not None:
        assert len(set(tr[:, -1])) == 2


def test_the_first_sgd_step_is_minus_lr_times_the_mean_of_the_single_stream_gradients():
    """All three learners run 20 samples paused (the feedback fills up, the parameters stay), then
    the batch takes its first step at sample 20."""
    m, lr = 20, 0.05
    X = np.stack([WhiteNoise(1).read(m + 2), WhiteNoise(2).read(m + 2)], axis=1)
    grads = []
    for s in range(2):
        _, tr = learner(optimizer="sgd", learning=False).process(X[:, s], trace_every=1)
        grads.append(tr[m, 4:6])
    batch = learner(2, optimizer="sgd", lr=lr, learning=False)
    batch.process_batch(X[:m])
    batch.configure(Settings(loss="mse", window=8, optimizer="sgd", lr=lr, learning=True))
    _, tr = batch.process_batch(X[m:], trace_every=1)
    mean = (grads[0] + grads[1]) / 2
    assert np.all(np.abs(grads[0] - grads[1]) > 1e-3 * np.abs(mean))       # the streams really differ
    np.testing.assert_allclose(tr[0, 4:6], mean, rtol=1e-14)
    np.testing.assert_array_equal(tr[0, 2:4], [0.5, 0.1])
    np.testing.assert_allclose(tr[1, 2:4], np.array([0.5, 0.1]) - lr * mean, rtol=1e-14)


def _fd_check(make, values, X, names):
    """Learning paused: the parameters are constants, so the mean loss at each sample is a function
    of them, and the trace's (mean) gradient must be its derivative."""
    def run(v):
        L = make()
        L.reset(v)
        _, tr = L.process_batch(X, trace_every=1)
        return L, tr

    L, tr = run(values)
    P = len(L.param_names)
    eps = 1e-6
    for name in names:
        up, down = dict(values), dict(values)
        up[name] += eps
        down[name] -= eps
        fd = (run(up)[1][:, 1] - run(down)[1][:, 1]) / (2 * eps)
        grad = tr[:, 2 + P + L.param_names.index(name)]
        scale = max(1e-3, float(np.max(np.abs(fd))))
        assert np.max(np.abs(grad[20:] - fd[20:])) < 1e-5 * scale, name
    return tr


def test_the_mean_gradient_is_the_derivative_of_the_mean_loss_through_feedback():
    X = np.stack([LcgNoise().read(600), WhiteNoise(5).read(600)], axis=1)
    _fd_check(lambda: learner(2, learning=False), {"c": 0.6, "g": 0.2}, X, ["c", "g"])


def test_exact_bank_gradients_with_the_streams_in_different_banks_match_finite_differences():
    x = WhiteNoise(7).read(600)
    X = np.stack([x, -x], axis=1)                    # one stream in bank 1 exactly when the other is in 0
    values = {"c@0": 0.3, "c@1": 0.8, "g@0": -0.2, "g@1": 0.4}
    tr = _fd_check(lambda: learner(2, "exact", learning=False), values, X, list(values))
    assert tr[:, -1].tolist() == [float(v >= 0) for v in x]       # stream 0's bank; stream 1's is the other


def _first_step(last0, last1, lr=0.1, m=20):
    """Separated banks, SGD: 20 samples of noise paused, then the batch's first step on the inputs
    (last0, last1); and each stream's gradient there (summed over the banks) from paused
    single-stream learners."""
    X = np.stack([WhiteNoise(1).read(m + 1), WhiteNoise(2).read(m + 1)], axis=1)
    X[m] = last0, last1
    settings = Settings(loss="mse", window=1, optimizer="sgd", lr=lr)
    batch = learner(2, "separated", learning=False)
    batch.process_batch(X[:m])
    batch.configure(settings)
    before = batch.params()
    batch.process_batch(X[m:])
    step = np.array([before[n] - batch.params()[n] for n in ("c@0", "c@1", "g@0", "g@1")])
    summed = []
    for s in range(2):
        _, tr = learner(mode="separated", learning=False, window=1).process(X[:, s], trace_every=1)
        g = tr[m, 6:10]                                              # c@0, c@1, g@0, g@1
        summed.append(np.array([g[0] + g[1], g[2] + g[3]]))        # c, g
    return step, summed


def test_separated_banks_step_every_bank_a_stream_has_active_with_the_sum_over_b():
    lr = 0.1
    step, (gs0, gs1) = _first_step(-0.5, 0.5, lr)                    # stream 0 in bank 0, stream 1 in bank 1
    assert np.all(gs0 != 0) and np.all(gs1 != 0)
    np.testing.assert_allclose(step, lr * np.array([gs0[0], gs1[0], gs0[1], gs1[1]]) / 2, rtol=1e-12)
    step, (gs0, gs1) = _first_step(-0.5, -0.3, lr)                   # both in bank 0
    np.testing.assert_allclose(step[[0, 2]], lr * (gs0 + gs1) / 2, rtol=1e-12)
    assert step[1] == 0.0 and step[3] == 0.0
    # over a run: exactly the banks some stream had active move
    x0, x1 = LcgNoise().read(3000), -np.abs(WhiteNoise(3).read(3000))
    x1[:1500] *= -1                                                  # stream 1: bank 1, then bank 0
    L = learner(2, "separated", optimizer="sgd", lr=1e-4)
    _, tr = L.process_batch(np.stack([x0, x1], axis=1), trace_every=1)
    values = tr[:, 2:6]                                              # c@0, c@1, g@0, g@1
    for n in range(len(tr) - 1):
        active = {int(tr[n, -1]), int(x1[n] >= 0)}
        moved = {k % 2 for k in range(4) if values[n + 1, k] != values[n, k]}
        assert moved == active, n


def test_a_non_finite_sample_in_one_stream_holds_every_stream():
    X = np.stack([LcgNoise().read(100), WhiteNoise(1).read(100)], axis=1)
    X[40, 1] = np.nan
    L = learner(2, lr=1e-2)
    out, tr = L.process_batch(X, trace_every=1)
    assert L.skipped == 1 and np.isnan(tr[40, 1])
    np.testing.assert_array_equal(tr[41, 2:4], tr[40, 2:4])         # no step on sample 40
    assert out[40, 0, 2] == out[39, 0, 2] and out[40, 1, 2] == out[39, 1, 2]
    assert np.isfinite(out[41:]).all() and L.stream_losses().shape == (2,)
    with pytest.raises(ValueError, match="process_batch"):
        L.process(X[:, 0])
    with pytest.raises(ValueError, match="shape"):
        L.process_batch(X[:, :1])


def _learn(*args):
    return subprocess.run([sys.executable, "main.py", "learn", "--circuit", "y = g*x", "--param", "g=0:-1:1",
                           "--hidden", "g=0.5", "--lr", "0.01", "--samples", "4000", "--quiet", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_learn_with_several_inputs_reports_its_streams():
    r = _learn("--input", "lcg-noise", "--input", "noise")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["streams"] == 2 and abs(res["params"]["g"] - 0.5) < 0.05
    assert "streams" not in json.loads(_learn().stdout)        # one --input: the output of old


@pytest.mark.parametrize("which", ["rates", "too many"])
def test_a_bad_batch_of_inputs_is_one_line_and_exit_2(tmp_path, which):
    if which == "rates":
        for name, rate in (("a.wav", 44100), ("b.wav", 48000)):
            sf.write(tmp_path / name, np.zeros(1000), rate)
        args, words = ["--input", str(tmp_path / "a.wav"), "--input", str(tmp_path / "b.wav")], "sample rates"
    else:
        args, words = ["--input", "noise"] * 17, "at most 16"
    r = _learn(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and words in r.stderr
