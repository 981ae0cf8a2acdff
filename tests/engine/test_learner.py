"""The learner's behaviour: determinism over block schedules, no allocation in the kernel,
containment of non-finite values, the window's exactness over long runs, the optimisers, the
schedule, clipping, parameter ranges and the on-disk compile cache."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from numba.core.runtime import _nrt_python as nrt, rtsys

from engine import layout as LY
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.learn.optimizers import adam, momentum, rmsprop, sgd
from engine.learn.losses import huber, mae, mse, msle
from engine.sources import LcgNoise, WhiteNoise
from tests.paths import REPO

ROOT = REPO
BIQUAD = "y = b0*x + b1*x@1 + b2*x@2 - a1*y@1 - a2*y@2"
BIQUAD_PARAMS = [ParamSpec("b0", 0.1), ParamSpec("b1", 0.0), ParamSpec("b2", 0.0),
                 ParamSpec("a1", 0.0, -1.5, 1.5), ParamSpec("a2", 0.0, -0.7, 0.7)]
BIQUAD_HIDDEN = {"b0": 0.2, "b1": 0.4, "b2": 0.2, "a1": -0.5, "a2": 0.25}


def biquad(**kw):
    return Learner(BIQUAD, BIQUAD_PARAMS, hidden=BIQUAD_HIDDEN,
                   settings=Settings(loss="mse", window=4, optimizer="adam", lr=1e-3, **kw))


def run_in_blocks(learner, x, sizes):
    outs, traces, i, k = [], [], 0, 0
    while i < len(x):
        b = sizes[k % len(sizes)]
        out, tr = learner.process(x[i:i + b], trace_every=7)
        outs.append(out.copy())
        traces.append(tr.copy())
        i += b
        k += 1
    return np.concatenate(outs), np.concatenate(traces)


def test_any_block_schedule_gives_the_same_result():
    x = WhiteNoise(3).read(20000)
    ref_out, ref_trace = run_in_blocks(biquad(), x, [20000])
    for sizes in ([1], [17], [64], [512], [1, 17, 64, 512, 3]):
        out, trace = run_in_blocks(biquad(), x, sizes)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(trace, ref_trace)


def test_kernel_allocates_nothing():
    """Numba's NRT statistics: a jitted driver calls the kernel 1 or 200 times per Python call.
    Passing the arrays in from Python costs a fixed number of allocations; the kernel adds none."""
    from numba import njit

    learner = biquad(clip=1.0, lr_decay=0.5, lr_decay_every=100)
    kernel = learner.kernel(trace=True).process      # the variant that writes trace rows

    @njit
    def drive(times, x, out, trace, st, cfg):
        rows = 0
        for _ in range(times):
            rows += kernel(x, out, trace, st, cfg)
        return rows

    x = np.ascontiguousarray(WhiteNoise(1).read(4096))
    x[100] = np.nan                                 # the skip path runs too
    out = np.empty((4096, 3))
    trace = np.empty((4096 // 8 + 2, learner.layout.trace_width))
    learner.cfg[LY.CF_TRACE_EVERY] = 8             # the trace path runs too
    drive(1, x, out, trace, learner.st, learner.cfg)   # compile
    counts = {}
    nrt.memsys_enable_stats()
    try:
        for times in (1, 200):
            before = rtsys.get_allocation_stats()
            rows = drive(times, x, out, trace, learner.st, learner.cfg)
            after = rtsys.get_allocation_stats()
            counts[times] = (after.alloc - before.alloc, after.mi_alloc - before.mi_alloc)
    finally:
        nrt.memsys_disable_stats()
    assert rows > 0 and learner.skipped > 0
    assert counts[200] == counts[1]


def test_nan_and_inf_input_take_no_step_and_are_counted():
    x = LcgNoise().read(48000)
    bad = [10, 11, 500, 40000]
    x[bad[:3]] = np.nan
    x[bad[3]] = np.inf
    learner = Learner("y = gain*x + dc", [ParamSpec("gain", 0), ParamSpec("dc", 0)],
                      hidden={"gain": 0.5, "dc": 0.5}, settings=Settings(optimizer="sgd", loss="mse", window=32, lr=1e-2))
    out, trace = learner.process(x, trace_every=1)
    assert learner.skipped == 4
    p = trace[:, 2:4]
    for n in bad:                       # the parameters do not move across a skipped sample
        np.testing.assert_array_equal(p[n + 1], p[n])
        assert math.isnan(trace[n, 1])
        assert out[n, 0] == 0.0 and out[n, 1] == 0.0
    assert np.all(np.isfinite(p))
    assert abs(learner.params()["gain"] - 0.5) < 1e-2


def test_a_circuit_that_blows_up_is_restarted_not_propagated():
    # the learnable feedback starts unstable (a = 1.5): its output overflows, is caught, the
    # circuit's state is cleared, and the parameters stay finite
    learner = Learner("y = x + a*y@1", [ParamSpec("a", 1.5, -2, 2)], hidden={"a": 0.5},
                      settings=Settings(optimizer="sgd", loss="mse", window=1, lr=1e-9))
    out, _ = learner.process(WhiteNoise(0).read(10000) * 1e300)
    assert learner.diverged_steps > 0             # counted as divergence, not as bad input
    assert learner.skipped == 0
    assert learner.first_diverged_sample is not None and 0 <= learner.first_diverged_sample < 10000
    assert int(learner.st[LY.ST_RESETS]) > 0
    assert np.all(np.isfinite(out[:, :2]))        # the signals; the loss itself may overflow
    assert math.isfinite(learner.params()["a"])


def test_a_fir_whose_output_overflows_is_caught_though_its_tangents_are_input_samples():
    """A FIR's tangents are input samples, finite by construction, so the kernel checks only its
    output for a blow-up (emitter.is_finite): a huge tap that overflows it is still caught."""
    learner = Learner("y = b0*x + b1*x@1 + b2*x@2 + b3*x@3", [ParamSpec(f"b{k}", 1e300) for k in range(4)],
                      hidden={f"b{k}": 0.5 for k in range(4)}, settings=Settings(optimizer="sgd", lr=1e-9))
    assert "chk = wv1\n" in learner.compiled.source
    x = np.zeros(100)
    x[50] = 1e10                                  # 1e300 * 1e10 overflows while a tap holds it
    out, _ = learner.process(x)
    assert learner.diverged_steps == 4 and learner.skipped == 0
    assert learner.first_diverged_sample == 50
    assert np.all(np.isfinite(out[:, :2]))
    assert all(math.isfinite(v) for v in learner.params().values())


def test_window_sum_does_not_drift_over_a_long_run():
    """A DC of 1000 for 10 M samples: diff.lib's cumulative sum would carry ~ulp(1e10) = 2e-6 of
    error into e; ours recomputes exactly and keeps e = -1e-3 to 1e-10."""
    learner = Learner("y = 1000 + g*x", [ParamSpec("g", 0.5)], target="y = 1000.001 + g*x",
                      hidden={"g": 0.5}, settings=Settings(loss="mae", window=3, learning=False))
    src = WhiteNoise(5)
    for _ in range(10_000_000 // 65536 + 1):
        out, _ = learner.process(src.read(65536))
    assert abs(out[-1, 2] - 1e-3) < 1e-10


def test_window_means_are_applied_separately_and_divide_by_w_while_filling():
    # gain+dc at n = 0 with W = 32: e = M(yhat) - M(y) = -(0.5 x0 + 0.5)/32 and g_dc = 2 e / 32
    learner = Learner("y = gain*x + dc", [ParamSpec("gain", 0), ParamSpec("dc", 0)],
                      hidden={"gain": 0.5, "dc": 0.5}, settings=Settings(optimizer="sgd", loss="mse", window=32, lr=1e-2))
    x = LcgNoise().read(3)
    _, tr = learner.process(x, trace_every=1)
    e = -(0.5 * x[0] + 0.5) / 32
    assert tr[0, 1] == pytest.approx(e * e, rel=1e-14)
    assert tr[0, 5] == pytest.approx(2 * e * (1 / 32), rel=1e-14)        # grad of dc
    assert tr[0, 4] == pytest.approx(2 * e * (x[0] / 32), rel=1e-14)     # grad of gain


def test_adam_is_standard_bias_corrected():
    """For a constant gradient standard Adam steps by lr every time (diff.lib's drifts to 0.316 lr)."""
    m = v = 0.0
    for t in range(1, 200):
        step, m, v = adam(3.0, 0.1, m, v, float(t), 0.9, 0.999, 1e-8)
        assert step == pytest.approx(0.1, rel=1e-6)


def test_momentum_rmsprop_sgd_steps():
    assert sgd(2.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)[0] == pytest.approx(0.2)
    s1, m, _ = momentum(1.0, 0.1, 0.0, 0.0, 1.0, 0.9, 0.0, 0.0)
    s2, m, _ = momentum(1.0, 0.1, m, 0.0, 2.0, 0.9, 0.0, 0.0)
    assert (s1, s2) == (pytest.approx(0.1), pytest.approx(0.1 + 0.9 * 0.1))
    s, _, v = rmsprop(2.0, 0.1, 0.0, 0.0, 1.0, 0.9, 0.0, 0.0)      # rho is its first constant (c1)
    assert v == pytest.approx(0.1 * 4.0) and s == pytest.approx(0.1 * 2.0 / math.sqrt(0.4))


def test_losses_and_their_slopes():
    assert mse(0.3, 0.1, 0.0) == pytest.approx((0.04, 0.4))
    assert mae(0.3, 0.1, 0.0) == pytest.approx((0.2, 1.0))
    assert mae(1e-12, 0.0, 0.0)[1] == pytest.approx(1e-2)       # diff.lib's 1e-10 ramp
    assert huber(0.3, 0.1, 0.2) == pytest.approx((0.02, 0.2))   # |e| = delta: quadratic branch
    assert huber(1.1, 0.1, 0.5) == pytest.approx((0.5 * (1.0 - 0.25), 0.5))
    L, s = msle(0.5, 0.2, 0.0)
    d = math.log(1.5) - math.log(1.2)
    assert (L, s) == (pytest.approx(d * d), pytest.approx(2 * d / 1.5))
    assert all(math.isfinite(v) for v in msle(-3.0, 0.2, 0.0))   # guarded below -1


@pytest.mark.parametrize("opt", ["sgd", "momentum", "rmsprop", "adam"])
@pytest.mark.parametrize("loss", ["mse", "mae", "huber", "msle"])
def test_every_optimizer_and_loss_learns_gain_and_dc(opt, loss):
    lr = {"sgd": 1e-2, "momentum": 2e-3, "rmsprop": 1e-3, "adam": 1e-3}[opt]
    if loss == "mae" and opt in ("sgd", "momentum"):
        lr /= 10          # MAE steps by lr |M(t)| however small the error: a smaller rate settles
    learner = Learner("y = gain*x + dc", [ParamSpec("gain", 0.1), ParamSpec("dc", 0.0)],
                      hidden={"gain": 0.5, "dc": 0.2},
                      settings=Settings(loss=loss, window=8, optimizer=opt, lr=lr, huber_delta=0.1))
    learner.process(WhiteNoise(2).read(200_000))
    p = learner.params()
    assert abs(p["gain"] - 0.5) < 0.02 and abs(p["dc"] - 0.2) < 0.02, p


def test_learning_rate_schedule_decays_at_epoch_boundaries():
    learner = Learner("y = dc", [ParamSpec("dc", 0.0)], hidden={"dc": 1.0},
                      settings=Settings(optimizer="sgd", loss="mae", lr=1e-3, lr_decay=0.5, lr_decay_every=10))
    _, tr = learner.process(np.zeros(40), trace_every=1)
    steps = np.diff(tr[:, 2])      # MAE with e < 0: every step is +lr(n)
    # diff.lib's timing: the first decay falls at n = E - 1
    np.testing.assert_allclose(steps[:9], 1e-3)
    np.testing.assert_allclose(steps[9:19], 5e-4)
    np.testing.assert_allclose(steps[19:29], 2.5e-4)


def test_gradient_clipping_limits_the_global_norm():
    learner = Learner("y = a*x + b", [ParamSpec("a", 0.0), ParamSpec("b", 0.0)],
                      hidden={"a": 100.0, "b": 100.0}, settings=Settings(optimizer="sgd", loss="mse", lr=1.0, clip=0.5))
    _, tr = learner.process(np.ones(5), trace_every=1)
    steps = np.diff(tr[:, 2:4], axis=0)
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), 0.5)


def test_range_clamps_value_and_projection_prevents_windup():
    """p = clamp(theta): with 'project' theta stays at the bound and leaves it at once when the
    gradient turns; with 'straight-through' (diff.lib) theta winds up beyond the bound."""
    for mode, expect_theta_beyond in (("project", False), ("straight-through", True)):
        learner = Learner("y = a", [ParamSpec("a", 0.0, -1.0, 1.0)], hidden={"a": 5.0},
                          settings=Settings(optimizer="sgd", loss="mae", lr=0.1, range_mode=mode))
        learner.process(np.zeros(100))
        assert learner.params()["a"] == 1.0
        assert (learner.theta()[0] > 1.0 + 1e-9) == expect_theta_beyond


def test_parameter_at_its_bound_still_receives_a_gradient():
    # dcsq's start: p = max(theta, 1e-10) = 1e-10, tangent seed 1 (straight-through)
    learner = Learner("y = x + dc^2", [ParamSpec("dc", 0.0, 1e-10)], hidden={"dc": 0.75},
                      settings=Settings(optimizer="sgd", loss="mse", lr=1e-3, range_mode="straight-through"))
    _, tr = learner.process(LcgNoise().read(2), trace_every=1)
    assert tr[0, 2] == 1e-10 and tr[0, 3] == pytest.approx(-2.25e-10)


def test_hidden_values_change_without_recompiling():
    learner = Learner("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5},
                      settings=Settings(optimizer="sgd", loss="mse", lr=0.05))
    kernel = learner.compiled.process
    learner.process(WhiteNoise(0).read(20000))
    learner.set_hidden("g", -0.25)
    learner.process(WhiteNoise(1).read(20000))
    assert learner.compiled.process is kernel
    assert abs(learner.params()["g"] + 0.25) < 1e-6


def test_second_compile_of_a_circuit_loads_from_the_disk_cache(tmp_path):
    """Run the same new circuit in two fresh processes: the second finds the kernel on disk."""
    text = "y = q7*tanh(x*1.2345) + 0.001*x@2"
    code = ("import json, sys; sys.path.insert(0, %r)\n"
            "from engine.learn.learner import Learner, ParamSpec\n"
            "l = Learner(%r, [ParamSpec('q7', 0.1)], hidden={'q7': 0.3})\n"
            "print(json.dumps({'hits': sum(l.compiled.process.stats.cache_hits.values()),"
            " 'misses': sum(l.compiled.process.stats.cache_misses.values())}))") % (str(ROOT), text)
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    second = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                       text=True, check=True).stdout)
    assert first == {"hits": 0, "misses": 1}
    assert second == {"hits": 1, "misses": 0}


def test_loop_form_for_large_circuits_matches_the_unrolled_form(monkeypatch):
    """Circuits above compiler.SMALL_CIRCUIT parameters keep per-parameter state in arrays; the
    two code forms must compute the same numbers, skip path and clipping included."""
    import engine.circuit.compiler as compiler
    x = WhiteNoise(4).read(6000)
    x[1000] = np.nan
    results = []
    for threshold in (compiler.SMALL_CIRCUIT, 0):
        monkeypatch.setattr(compiler, "SMALL_CIRCUIT", threshold)
        learner = biquad(clip=0.05)
        assert ("for k in range" in learner.compiled.source) == (threshold == 0)
        out, trace = learner.process(x, trace_every=3)
        results.append((out.copy(), trace.copy(), learner.theta()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_knobs_glide_alike_in_locals_and_in_cfg(monkeypatch):
    """A large target's hidden knobs glide where they live, in cfg (compiler: hidden_in_cfg); a
    small one's in locals. The ramp is the same sample for sample, a non-finite goal is ignored,
    and the last inaudible step lands exactly on the goal, in both forms."""
    import engine.circuit.compiler as compiler
    heard = []
    for threshold in (compiler.SMALL_CIRCUIT, 0):
        monkeypatch.setattr(compiler, "SMALL_CIRCUIT", threshold)
        learner = Learner("y = a*x + b", [ParamSpec("a", 0.0), ParamSpec("b", 0.0)], hidden={"a": 0.5, "b": 0.1})
        lay = learner.layout
        assert (f"cfg[{lay.cfg_hidden} + k] += ga*" in learner.compiled.source) == (threshold == 0)
        learner.cfg[LY.CF_GLIDE] = 0.01
        learner.cfg[lay.cfg_goal + lay.hidden.index("a")] = 2.0
        learner.cfg[lay.cfg_goal + lay.hidden.index("b")] = np.nan
        out, _ = learner.process(np.ones(1000))
        assert out[0, 0] == (0.5 + 0.01 * 1.5) + 0.1
        assert learner.cfg[lay.cfg_hidden + lay.hidden.index("a")] != 2.0      # still gliding
        out2, _ = learner.process(np.ones(3000))
        assert learner.cfg[lay.cfg_hidden + lay.hidden.index("a")] == 2.0      # landed
        assert learner.cfg[lay.cfg_hidden + lay.hidden.index("b")] == 0.1      # NaN goal ignored
        assert learner.process(np.ones(1))[0][0, 0] == 2.0 + 0.1                # on the goal
        heard.append(np.concatenate([out[:, 0], out2[:, 0]]))
    np.testing.assert_array_equal(*heard)


def test_a_64_parameter_fir_learns_every_tap():
    taps = " + ".join(["b0*x"] + [f"b{k}*x@{k}" for k in range(1, 64)])
    hidden = {f"b{k}": math.sin(0.3 * k) * 0.5 for k in range(64)}
    learner = Learner("y = " + taps, [ParamSpec(f"b{k}", 0.0) for k in range(64)], hidden=hidden,
                      settings=Settings(optimizer="sgd", loss="mse", window=8, lr=0.02))
    learner.process(WhiteNoise(9).read(200_000))
    got = learner.params()
    assert max(abs(got[k] - v) for k, v in hidden.items()) < 1e-3


@pytest.mark.parametrize("rho", [None, 0.5])
def test_rmsprop_uses_its_rho(rho):
    """The optimiser's constant c1 is RMSProp's rho (Settings, --rho); the kernel passed it in
    the wrong slot, so every RMSProp run had rho = 0 whatever was set."""
    r = 0.9 if rho is None else rho
    L = Learner("y = g*x", [ParamSpec("g", 0.0)], hidden={"g": 0.5},
                settings=Settings(optimizer="rmsprop", lr=0.1, c1=rho))
    x = np.array([1.0, 0.5, -1.0, 0.25, 1.0])
    L.process(x)
    theta, v = 0.0, 0.0
    for xn in x:
        g = 2.0 * (theta * xn - 0.5 * xn) * xn
        v = (1.0 - r) * g * g + r * v
        theta -= 0.1 * g / (math.sqrt(v) + 1e-8)
    assert L.params()["g"] == pytest.approx(theta, rel=1e-12)


def test_each_variant_is_its_own_kernel_over_the_same_state():
    """Loss, optimiser, range mode, window class and trace each select a kernel written for them
    (compiler.Variant), compiled on first use and kept; all of them work on one st and cfg, so
    learning carries on across a switch. The texts hold no per-sample choice among them."""
    learner = Learner("y = g*x", [ParamSpec("g", 0.0, -2.0, 2.0)], hidden={"g": 0.5},
                      settings=Settings(optimizer="sgd", lr=0.05))
    x = LcgNoise().read(4000)
    learner.process(x[:2000])
    sgd_kernel = learner.compiled
    assert "optimizer_step(gk, lr" in sgd_kernel.source and "loss_code" not in sgd_kernel.source
    assert "gn_update" not in sgd_kernel.source and "trace[" not in sgd_kernel.source
    learner.configure(Settings(optimizer="gauss-newton", loss="huber"))
    gn_kernel = learner.compiled
    assert gn_kernel is not sgd_kernel and "gn_update" in gn_kernel.source and "optimizer_step" not in gn_kernel.source
    assert "huber_residual as loss_residual" in gn_kernel.source
    learner.process(x[2000:])
    assert abs(learner.params()["g"] - 0.5) < 1e-9                  # learning went on from where sgd left it
    assert learner.samples == 4000
    learner.configure(Settings(optimizer="sgd", lr=0.05))
    assert learner.compiled is sgd_kernel                            # kept, not compiled again
    assert "trace[" in learner.kernel(trace=True).source


def test_a_window_after_one_sample_windows_starts_from_rest():
    """W = 1's kernel keeps no rings; a window chosen after it starts empty, as a new learner's
    does, not from what an earlier window left in the rings: after one sample each mean is that
    sample over W."""
    learner = Learner("y = g*x", [ParamSpec("g", 0.25, -2.0, 2.0)], hidden={"g": 0.5},
                      settings=Settings(optimizer="sgd", lr=1e-300, window=8))
    x = LcgNoise().read(400)
    learner.process(x[:300])                                   # the rings fill with W = 8
    learner.configure(Settings(optimizer="sgd", lr=1e-300, window=1))
    learner.process(x[300:303])                                # fewer samples than the window
    learner.configure(Settings(optimizer="sgd", lr=1e-300, window=8))
    learner.process(x[303:304])
    xn = x[303]
    e = (0.25 * xn - 0.5 * xn) / 8                             # the means hold this sample only
    assert learner.gradients()["g"] == pytest.approx(2.0 * e * (xn / 8), rel=1e-12)


def test_two_threads_asking_for_one_new_kernel_both_get_it():
    """The session's compile thread and the window's may ask for the same kernel at once (a
    dropdown's kernel, then a preset with those settings): the second must wait for the first's
    import, not find the module half run (no `process`, no `block`)."""
    import threading
    import uuid
    text = f"y = g*x + {1e-3 * (1 + uuid.uuid4().int % 1000)!r}*x@3"    # a kernel no run has made yet
    learners = [Learner(text, [ParamSpec("g", 0.0)], hidden={"g": 0.5}) for _ in range(2)]
    start, got = threading.Barrier(2), [None, None]

    def ask(k):
        start.wait()
        try:
            got[k] = learners[k].kernel()
        except Exception as e:              # noqa: BLE001 - the failure is the finding
            got[k] = e
    threads = [threading.Thread(target=ask, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(g, Exception) and g.block_address != 0 for g in got), got
    assert got[0].process is got[1].process
