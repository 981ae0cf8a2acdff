"""The LOSSES and OPTIMIZERS tables are the one place a loss or an optimiser is defined: the
kernel's dispatch, the command line, the window's menus and preset validation all follow them."""

import numpy as np
import pytest

from engine.learn.learner import Learner, ParamSpec, Settings
from engine.learn.losses import LOSSES, NAMES as LOSS_NAMES
from engine.learn.optimizers import FIRST_ORDER, NAMES as OPTIMIZER_NAMES, OPTIMIZERS

X = np.array([1.0, 0.5, -1.0, 0.25, 1.0, -0.75, 0.125])


@pytest.mark.parametrize("loss", [loss for loss in LOSSES if not loss.streaming], ids=lambda loss: loss.name)
def test_the_kernel_computes_each_tables_loss(loss):
    # (the spectral loss, with its own state and block: tests/engine/test_spectral.py)
    L = Learner("y = g*x", [ParamSpec("g", 0.2)], hidden={"g": 0.5},
                settings=Settings(loss=loss.name, huber_delta=0.3, learning=False))
    _, trace = L.process(X, trace_every=1)
    expected = [loss.fn(0.2 * x, 0.5 * x, 0.3)[0] for x in X]
    np.testing.assert_allclose(trace[:, 1], expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("opt", FIRST_ORDER, ids=lambda o: o.name)
def test_the_kernel_steps_each_tables_optimizer_with_its_named_constants(opt):
    # (Gauss-Newton, which has no per-parameter step: tests/engine/test_gauss_newton.py)
    constants = [0.8 - 0.1 * k for k in range(len(opt.constants))]    # not the defaults
    c = constants + [0.0, 0.0]
    L = Learner("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5},
                settings=Settings(optimizer=opt.name, lr=0.05, c1=c[0] if constants else None,
                                  c2=c[1] if len(constants) > 1 else None))
    L.process(X)
    theta, m, v = 0.0, 0.0, 0.0
    for t, x in enumerate(X, start=1):
        g = 2.0 * (theta * x - 0.5 * x) * x
        step, m, v = opt.step(g, 0.05, m, v, float(t), c[0], c[1], opt.eps)
        theta -= step
    assert L.params()["g"] == pytest.approx(theta, rel=1e-12, abs=1e-15)


def test_the_command_line_offers_what_the_tables_hold():
    from app.cli.main import build_parser
    learn = build_parser()._subparsers._group_actions[0].choices["learn"]
    opts = {a.dest: a for a in learn._actions}
    assert tuple(opts["loss"].choices) == LOSS_NAMES
    assert tuple(opts["optimizer"].choices) == OPTIMIZER_NAMES
    for o in OPTIMIZERS:
        for flag, default in o.constants:
            dest = flag.replace("-", "_")
            assert dest in opts and f"{default:g}" in opts[dest].help


def test_the_window_and_presets_offer_what_the_tables_hold():
    from app import session
    assert session.LOSSES == LOSS_NAMES and session.OPTIMIZERS == OPTIMIZER_NAMES
    for name in LOSS_NAMES:
        Settings(loss=name).validate()
    with pytest.raises(ValueError, match="^unknown loss 'l3'; choose one of " + ", ".join(LOSS_NAMES) + "$"):
        Settings(loss="l3").validate()
