"""A parameter on a log axis (a frequency, a time) is stepped in log space by every optimiser: its
gradient is p*dL/dp and a step multiplies p by exp(-step), at most by the range's ratio. So its
units do not matter: the same circuit written in other units learns the same trajectory."""
import math

import numpy as np
import pytest

from engine.learn.banks import Banks
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise

FIRST_ORDER = ["sgd", "momentum", "rmsprop", "adam"]


def test_an_sgd_step_multiplies_the_parameter_by_exp_of_minus_lr_times_its_log_gradient():
    """Each traced row: the value used, and dL/dp at it; the next value is p*exp(-lr*p*dL/dp)."""
    lr = 0.05
    L = Learner("y = g*x", [ParamSpec("g", 0.2, 0.01, 100.0, log=True)], hidden={"g": 7.0},
                settings=Settings(optimizer="sgd", lr=lr))
    _, tr = L.process(LcgNoise().read(3000), trace_every=1)
    p, grad = tr[:, 2], tr[:, 3]
    np.testing.assert_allclose(p[1:], p[:-1] * np.exp(-lr * p[:-1] * grad[:-1]), rtol=1e-13)
    assert L.params()["g"] == pytest.approx(7.0, rel=1e-9)


@pytest.mark.parametrize("optimizer", FIRST_ORDER)
def test_a_log_parameter_learns_the_same_trajectory_in_any_units(optimizer):
    """g in [0.01, 100] against f = 1000*g in [10, 100000] (y = f/1000*x): equal trajectories up to
    the factor 1000. On a linear axis the second would move 1000x more slowly in ratio terms."""
    x = LcgNoise().read(4000)
    s = Settings(optimizer=optimizer, lr=0.01)
    g = Learner("y = g*x", [ParamSpec("g", 0.2, 0.01, 100.0, log=True)], hidden={"g": 7.0}, settings=s)
    f = Learner("y = f/1000*x", [ParamSpec("f", 200.0, 10.0, 100000.0, log=True)], hidden={"f": 7000.0}, settings=s)
    _, tg = g.process(x, trace_every=1)
    _, tf = f.process(x, trace_every=1)
    # up to its arrival within 1 %: there the gradient is rounding noise, which RMSProp and Adam
    # normalise to full-size steps, and the two runs' different roundings part ways
    arrived = np.nonzero(np.abs(tg[:, 2] / 7.0 - 1.0) < 1e-2)[0]
    assert len(arrived) and arrived[0] > 20            # it learned, over many steps
    upto = arrived[0]
    np.testing.assert_allclose(tf[:upto, 2], 1000.0 * tg[:upto, 2], rtol=1e-9)


def test_a_linear_axis_is_not_unit_free():
    """The same pair on linear axes: the trajectories differ (the assertion above means something)."""
    x = LcgNoise().read(4000)
    s = Settings(optimizer="adam", lr=0.01)
    g = Learner("y = g*x", [ParamSpec("g", 0.2, 0.01, 100.0)], hidden={"g": 7.0}, settings=s)
    f = Learner("y = f/1000*x", [ParamSpec("f", 200.0, 10.0, 100000.0)], hidden={"f": 7000.0}, settings=s)
    _, tg = g.process(x, trace_every=1)
    _, tf = f.process(x, trace_every=1)
    assert np.max(np.abs(tf[:, 2] / (1000.0 * tg[:, 2]) - 1.0)) > 0.1


def test_a_huge_step_is_bounded_by_the_range_ratio_and_projected():
    """SGD at lr 1e6: the first step would be exp(-huge); it is at most a factor max/min, and the
    projection keeps the value in range (no 0, no inf)."""
    L = Learner("y = g*x", [ParamSpec("g", 1.0, 0.01, 100.0, log=True)], hidden={"g": 7.0},
                settings=Settings(optimizer="sgd", lr=1e6))
    _, tr = L.process(LcgNoise().read(200), trace_every=1)
    assert np.all(np.isfinite(tr[:, 2])) and np.all((tr[:, 2] >= 0.01) & (tr[:, 2] <= 100.0))
    ratio = tr[1:, 2] / tr[:-1, 2]
    assert np.all((ratio >= 1e-4 * (1 - 1e-12)) & (ratio <= 1e4 * (1 + 1e-12)))


@pytest.mark.parametrize("mode", ["exact", "separated"])
def test_bank_parameters_on_a_log_axis_learn_in_any_units_too(mode):
    banks = Banks([-1.0, 0.0, 1.0], condition="input", mode=mode)
    x = LcgNoise().read(6000)
    s = Settings(optimizer="adam", lr=0.01)
    g = Learner("y = g*x", [ParamSpec("g", 0.2, 0.01, 100.0, log=True)], target="y = 3*x if x > 0 else 0.5*x",
                settings=s, banks=banks)
    f = Learner("y = f/1000*x", [ParamSpec("f", 200.0, 10.0, 100000.0, log=True)],
                target="y = 3*x if x > 0 else 0.5*x", settings=s, banks=banks)
    _, tg = g.process(x, trace_every=1)
    _, tf = f.process(x, trace_every=1)
    P = len(g.param_names)
    np.testing.assert_allclose(tf[:, 2:2 + P], 1000.0 * tg[:, 2:2 + P], rtol=1e-9)
    learned = g.params()
    assert learned["g@0"] == pytest.approx(0.5, rel=1e-2) and learned["g@1"] == pytest.approx(3.0, rel=1e-2)
