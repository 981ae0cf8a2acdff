"""`sptmod` in a target: the host supplies the target per sample (the SPTMod neural model's
output), and learning against it is bit for bit learning against the same signal as a circuit."""
import numpy as np
import pytest

from engine.circuit.language import CircuitError
from engine.learn.learner import Learner, ParamSpec, Settings

PARAMS = [ParamSpec("g", 0.0, -2, 2), ParamSpec("d", 0.0, -1, 1)]


def _learner(target, streams=1):
    return Learner("y = g*x + d", list(PARAMS), target=target, streams=streams,
                   settings=Settings(optimizer="sgd", lr=0.05, loss="mse", window=16))


def _noise(n=24000, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, n)


def test_an_external_target_learns_exactly_like_the_same_signal_written_as_a_circuit():
    x = _noise()
    a, b = _learner("y = sptmod"), _learner("y = 0.7*x + 0.1")
    out_a, tr_a = a.process(x, external=0.7 * x + 0.1, trace_every=500)
    out_b, tr_b = b.process(x, trace_every=500)
    assert np.array_equal(out_a, out_b) and np.array_equal(tr_a, tr_b)
    assert abs(a.params()["g"] - 0.7) < 1e-6 and abs(a.params()["d"] - 0.1) < 1e-6


def test_the_external_signal_can_be_delayed_and_mixed_through_named_lines():
    x = _noise(4000)
    ext = x * x - 0.3 * x
    a = _learner("m = sptmod\ny = 0.5*m + 0.25*m@3")
    b = _learner("m = x*x - 0.3*x\ny = 0.5*m + 0.25*m@3")
    assert np.array_equal(a.process(x, external=ext)[0], b.process(x)[0])


def test_batches_take_one_external_column_per_stream():
    X = np.stack([_noise(6000, 1), _noise(6000, 2)], axis=1)
    a, b = _learner("y = sptmod", 2), _learner("y = 0.7*x + 0.1", 2)
    out_a, _ = a.process_batch(X, external=0.7 * X + 0.1)
    out_b, _ = b.process_batch(X)
    assert np.array_equal(out_a, out_b)


def test_only_a_target_may_read_the_model_and_it_must_be_supplied():
    with pytest.raises(CircuitError, match="can only be read by the target"):
        Learner("y = g*x + sptmod", [ParamSpec("g", 0.0)], target="y = x")
    with pytest.raises(CircuitError, match="built-in name"):
        Learner("y = g*x", [ParamSpec("g", 0.0)], target="sptmod = x\ny = sptmod")
    a = _learner("y = sptmod")
    with pytest.raises(ValueError, match="pass the model's output"):
        a.process(_noise(64))
    with pytest.raises(ValueError, match="shape"):
        a.process(_noise(64), external=np.zeros(32))
    with pytest.raises(ValueError, match="only for a target that reads"):
        _learner("y = x").process(_noise(64), external=np.zeros(64))
