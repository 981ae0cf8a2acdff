"""The spectral loss's lag lock (engine/learn/lag_lock.py): where a parameter sets a delay's length,
the positions of the two signals' strongest autocorrelation peaks."""
import math

import numpy as np
import pytest

from engine import layout as LY
from engine.learn import lag_lock as LL
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise

SR = 48000.0
COMB = "y = x + 0.7*y@d"


def comb(start, truth, **kw):
    return Learner(COMB, [ParamSpec("d", start, 4.8, 960.0, log=True)], target="y = x + 0.7*y@dt",
                   hidden={"dt": truth}, settings=Settings(loss="spectral", **kw), sample_rate=SR)


def words(L):
    """The lock's words after its autocorrelations (LL.LAST_ERROR, LL.ENGAGED, ...) start here."""
    lay = L.layout
    return lay.spec_lag + LL.amount_at(lay.spec_lags, len(L.param_names), LL.ring_length(lay.spec_lags)) - LL.AMOUNT


@pytest.mark.parametrize("d, truth, tol", [(200.0, 100.0, 2e-4), (50.0, 400.0, 2e-4), (7.3, 6.1, 0.02)])
def test_the_reading_is_the_log_ratio_of_the_delays_and_the_step_follows_the_delays_own_derivative(d, truth, tol):
    """Learning off: the vertices of the two strongest autocorrelation peaks give log(d / d*) from
    any distance (a few samples long, within 10 %: a parabola through whole lags is biased there,
    but it still reads 0 only where the delays agree); the step's derivative is d log(d) / d d =
    1/d, the learned delay's own."""
    L = comb(d, truth, learning=False)
    L.process(LcgNoise().read(48000))
    at = words(L)
    assert L.st[at + LL.ENGAGED] == 1.0
    assert L.st[at + LL.LAST_ERROR] == pytest.approx(math.log(d / truth), abs=tol)
    assert L.st[L.layout.spec_fine_grad] == pytest.approx(1.0 / d, rel=1e-12)


@pytest.mark.parametrize("start, truth, within", [(20.0, 300.0, 36000), (700.0, 12.5, 25000), (150.0, 40.0, 22000)])
def test_a_combs_delay_is_found_from_far_away(start, truth, within):
    """T6 (benchmarks/README.md): a feedback comb's delay on noise, from a start up to 56x away:
    the lock brings it near, the squared error lands it (deterministic counts)."""
    L = comb(start, truth)
    _, tr = L.process(LcgNoise().read(144000), trace_every=1)
    err = np.abs(tr[:, 2] / truth - 1.0)
    off = np.nonzero(err >= 1e-2)[0]
    assert off[-1] + 1 <= within and err[-1] < 1e-12, off[-1] + 1     # 32,640; 21,888; 18,944
    assert L.st[L.layout.spec_align + 2] == 1.0                         # handed over, and stayed


def test_bad_input_leaves_the_lock_finite_and_other_kernels_have_none():
    L = comb(150.0, 40.0)
    x = LcgNoise().read(96000)
    x[20000:20010] = np.nan
    x[30000:30002] = np.inf
    _, tr = L.process(x, trace_every=1)
    assert L.st[LY.ST_SKIPPED] == 12.0
    lay = L.layout
    assert np.all(np.isfinite(L.st[lay.spec_lag:lay.spec_lag + LL.size(lay.spec_lags, 1)]))
    assert np.all(np.isfinite(tr[:, 2])) and abs(L.params()["d"] / 40.0 - 1.0) < 1e-6
    assert lay.spec_lags == 963                     # the range's top, one for the interpolation, and two
    lowpass = Learner("y = (1 - c)*x + c*y@1", [ParamSpec("c", 0.5, 0.0, 0.99)], target="y = 0.1*x + 0.9*y@1",
                      settings=Settings(loss="spectral"))
    pitch = Learner("y = osc(f)", [ParamSpec("f", 300.0, 50.0, 5000.0, log=True)], target="y = osc(440)",
                    settings=Settings(loss="spectral"))
    assert lowpass.layout.spec_lag == 0 and pitch.layout.spec_lag == 0 and pitch.layout.locks_frequency
