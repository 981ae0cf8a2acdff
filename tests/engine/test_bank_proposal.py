"""Bank boundaries proposed from data (engine/learn/bank_proposal.py)."""
import numpy as np
import pytest

from engine.learn.bank_proposal import Proposal, condition_signal, propose, propose_boundaries
from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise

N = 48000


@pytest.fixture(scope="module")
def x():
    return LcgNoise().read(N)


@pytest.fixture(scope="module")
def x_swept():
    """Noise through a slow amplitude sweep from -40 to 0 dB, so every level occurs."""
    n = np.arange(N)
    db = -20.0 - 20.0 * np.cos(2 * np.pi * n / N * 2)
    return LcgNoise().read(N) * 10 ** (db / 20)


def broken(x):
    """A gain change at x = 0.3 (continuous: 0.5x below, 2x above)."""
    return np.where(x < 0.3, 0.5 * x, 2.0 * x - 0.45)


def test_inner_boundary_lands_on_the_break(x):
    prop = propose(x, broken(x), K=2, condition="input")
    assert isinstance(prop, Proposal)
    assert len(prop.boundaries) == 3
    assert abs(prop.boundaries[1] - 0.3) < 0.005
    assert prop.boundaries[0] == x.min() and prop.boundaries[2] == x.max()
    # the quantile split (median, near 0) cannot represent the break; the proposal does
    assert prop.loss <= prop.quantile_loss
    assert prop.improvement.vs_quantile > 100 and prop.improvement.vs_single > 100
    text = prop.report()
    assert "quantile" in text and "one bank" in text and "K=2" in text


def test_more_banks_keep_a_boundary_at_the_break_and_beat_quantiles(x):
    y = broken(x)
    for K in (3, 4):
        prop = propose(x, y, K=K, condition="input")
        assert min(abs(b - 0.3) for b in prop.boundaries[1:-1]) < 0.005
        assert prop.loss <= prop.quantile_loss
        assert prop.improvement.vs_quantile >= 1.0


def test_a_callable_fit_finds_the_break(x):
    def linear(xs, ys):
        A = np.column_stack([np.ones_like(xs), xs])
        w = np.linalg.lstsq(A, ys, rcond=None)[0]
        return float(np.mean((ys - A @ w) ** 2))
    prop = propose(x, broken, K=2, condition="input", fit=linear)
    assert abs(prop.boundaries[1] - 0.3) < 0.005
    assert prop.fit == "linear"


def test_a_circuit_fit_cuts_at_the_kink_of_the_asymmetric_shaper(x):
    """fit=(circuit, params): a Learner learns each candidate bank, then scores it frozen. Each side of
    0 is exactly a*tanh(d*x), so one cut goes to 0."""
    target = "y = tanh(2*x) if x > 0 else 0.5*tanh(0.7*x)"
    params = [ParamSpec("a", 1.0, 0.0, 4.0), ParamSpec("d", 1.0, 0.01, 10.0)]
    prop = propose(x[:24000], target, K=2, condition="input", fit=("y = a*tanh(d*x)", params))
    assert abs(prop.boundaries[1]) < 0.01
    assert prop.improvement.vs_single > 100
    assert "learned circuit" in prop.fit


def test_one_bank_spans_the_observed_range(x, x_swept):
    prop = propose(x, np.tanh(x), K=1, condition="input")
    assert prop.boundaries == [x.min(), x.max()]
    assert prop.improvement.vs_single == 1.0
    c = condition_signal(x_swept, "level")
    prop = propose(x_swept, np.tanh(x_swept), K=1, condition="level")
    assert prop.boundaries == [c.min(), c.max()]


def test_boundaries_strictly_increase_and_count_the_samples(x_swept):
    y = x_swept * np.where(np.abs(x_swept) > 0.25, 0.4, 1.0)
    c = condition_signal(x_swept, "level")
    for K in (1, 2, 5, 8):
        prop = propose(x_swept, y, K=K, condition="level")
        b = np.array(prop.boundaries)
        assert b.size == K + 1 and np.all(np.diff(b) > 0)
        assert b[0] == c.min() and b[-1] == c.max()
        Banks(list(b)).validate()
        # Banks.select puts each sample in the bank the proposal scored it in
        bank = np.searchsorted(b[1:-1], c, side="right")
        assert list(np.bincount(bank, minlength=K)) == prop.counts
        assert prop.loss <= prop.quantile_loss * (1 + 1e-9)


def test_level_condition_matches_the_bank_kernel(x_swept):
    """The proposal's level signal is the one the compiled banks switch on."""
    prop = propose(x_swept, 0.5 * x_swept, K=4, condition="level")
    learner = Learner("y = g*x", [ParamSpec("g", 0.5)], target="y = 0.5*x",
                      settings=Settings(learning=False), banks=prop.banks())
    _, trace = learner.process(x_swept, trace_every=1)
    c = condition_signal(x_swept, "level")
    expected = np.searchsorted(np.array(prop.boundaries[1:-1]), c, side="right")
    assert np.array_equal(trace[:, -1].astype(int), expected[:trace.shape[0]])


def test_a_recursive_target_is_split_where_its_coefficient_switches(x):
    """A one-pole whose coefficient follows a control signal: the memory basis (x@1, y@1) fits each
    regime exactly, so the cut goes to the switch."""
    ctrl = 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(N) / N * 3)
    coef = np.where(ctrl < 0.6, 0.2, 0.8)
    y = np.empty(N)
    prev = 0.0
    for n in range(N):
        prev = (1 - coef[n]) * x[n] + coef[n] * prev
        y[n] = prev
    prop = propose_boundaries(ctrl, x, y, K=2)
    assert abs(prop.boundaries[1] - 0.6) < 0.01
    assert prop.condition == "signal"
    with pytest.raises(ValueError, match="condition array"):
        prop.banks()


def test_bad_inputs_raise_clear_errors(x):
    y = np.tanh(x)
    for K in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="K"):
            propose(x, y, K=K, condition="input")
    bad = x.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        propose(bad, y, K=2, condition="input")
    with pytest.raises(ValueError, match="NaN"):
        propose(x, np.where(np.arange(N) == 5, np.inf, y), K=2, condition="input")
    with pytest.raises(ValueError, match="empty"):
        propose(np.array([]), np.array([]), K=2, condition="input")
    with pytest.raises(ValueError, match="same length|samples"):
        propose(x, y[:-1], K=2, condition="input")
    with pytest.raises(ValueError, match="unknown condition"):
        propose(x, y, K=2, condition="loudness")
    with pytest.raises(ValueError, match="constant"):
        propose_boundaries(np.ones(N), x, y, K=2)
    with pytest.raises(ValueError, match="distinct"):
        propose_boundaries(np.repeat([0.0, 1.0], N // 2), x, y, K=3)
    with pytest.raises(ValueError, match="too few"):
        propose(x[:20], y[:20], K=8, condition="input")
    with pytest.raises(ValueError, match="target as circuit text"):
        propose(x, y, K=2, condition="input", fit=("y = a*x", [ParamSpec("a", 1)]))
