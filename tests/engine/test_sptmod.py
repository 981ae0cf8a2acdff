"""SPTMod streaming inference (engine/sptmod/stream.py) against the upstream golden files of
shared/reference/sptmod (README section 5): float64 and float32 outputs and final states for
several block schedules, the FIFO path for any block length and its latency rule, reset, controls,
weight and configuration validation, no allocation per call, and the start-up transient."""
import json
import math

import numpy as np
import pytest
from numba import njit
from numba.core.runtime import _nrt_python as nrt, rtsys

from engine.sptmod import stream as S
from engine.sptmod import kernels as K
from engine.sptmod.stream import SptConfig, SptModStream
from tests.paths import REFERENCE, REPO

REF = REFERENCE / "sptmod"   # an unedited copy (tests/engine/test_reference_data.py)
if not REF.is_dir():
    REF = REPO.parent / "shared" / "reference" / "sptmod"
NAMES = ["golden_SPTMod24_p0", "golden_SPTMod25_p7"]
TOL64 = 1e-12                     # the spec's tolerance (README 5.3); measured <= 2.5e-16
TOL32 = 1e-5


class Golden:
    def __init__(self, name):
        z = np.load(REF / f"{name}.npz", allow_pickle=False)
        self.name = name
        self.x = z["x"]
        self.p = z["p"]
        self.upstream = json.loads(str(z["config"]))
        self.block = int(z["block"])
        self.y64, self.y32 = z["y64"], z["y32"]
        self.state64, self.state32 = z["state_after64"], z["state_after32"]
        self.weights = {k[2:]: z[k] for k in z.files if k.startswith("w/")}
        self.config = SptConfig.from_upstream(self.upstream)

    def stream(self, dtype=np.float64, **kw):
        s = SptModStream(self.config, self.weights, dtype=dtype, **kw)
        s.set_controls(self.p)
        return s


_CACHE = {}


@pytest.fixture(scope="module", params=NAMES)
def golden(request):
    if request.param not in _CACHE:
        _CACHE[request.param] = Golden(request.param)
    return _CACHE[request.param]


def run(stream, x, sizes, frames=False):
    outs, i, k = [], 0, 0
    while i < len(x):
        b = min(sizes[k % len(sizes)], len(x) - i)
        fn = stream.process_frames if frames else stream.process
        outs.append(fn(x[i:i + b]).copy())
        i += b
        k += 1
    return np.concatenate(outs)


def maxerr(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b)))


# -- golden outputs -------------------------------------------------------------------------------

IRREGULAR = [64, 512, 128, 64, 256, 1024, 192, 64, 320]
ALIGNED = {"64": [64], "256": [256], "1024": [1024], "whole": [49152], "irregular": IRREGULAR}


@pytest.mark.parametrize("schedule", list(ALIGNED))
def test_float64_matches_y64_for_aligned_schedules(golden, schedule):
    for frames in (True, False):                 # the aligned core, and process() with latency 0
        s = golden.stream(np.float64)
        y = run(s, golden.x, ALIGNED[schedule], frames=frames)
        assert s.latency == 0
        assert maxerr(y, golden.y64) < TOL64, (golden.name, schedule, maxerr(y, golden.y64))
        assert maxerr(s.state(), golden.state64) < TOL64


def test_small_max_block_splits_long_calls(golden):
    s = golden.stream(np.float64, max_block=100)     # rounded up to 128
    assert s.max_block == 128
    y = s.process_frames(golden.x)
    assert maxerr(y, golden.y64) < TOL64


@pytest.mark.parametrize("schedule", ["256", "whole", "irregular"])
def test_float32_matches_y32(golden, schedule):
    s = golden.stream(np.float32)
    y = run(s, golden.x.astype(np.float32), ALIGNED[schedule])
    assert y.dtype == np.float32
    assert maxerr(y, golden.y32) < TOL32
    assert maxerr(y, golden.y64) < TOL32
    assert maxerr(s.state(), golden.state32) < TOL32
    # float64 input into a float32 stream is converted inside the kernel
    s.reset()
    assert maxerr(run(s, golden.x, [256]), golden.y32) < TOL32


# -- any block length: FIFO and latency -----------------------------------------------------------

def expected_with_latency(y, sizes, P=64):
    """The aligned output stream as `process` must deliver it for these call lengths: latency
    P - gcd(P, lengths so far); when it grows by d at a call that starts at output position N,
    d zeros are inserted there, i.e. before y[N - previous latency]."""
    pieces, g, lat, pos, yp, k = [], P, 0, 0, 0, 0
    while pos < len(y):
        b = min(sizes[k % len(sizes)], len(y) - pos)
        if b % g:
            g = math.gcd(g, b)
            cut = pos - lat
            pieces += [y[yp:cut], np.zeros((P - g) - lat)]
            yp, lat = cut, P - g
        pos += b
        k += 1
    pieces.append(y[yp:])
    return np.concatenate(pieces)[:len(y)]


@pytest.mark.parametrize("sizes", [[1], [17], [100], [128], [333], [96], [17, 100, 1, 333, 64, 5, 4096]])
def test_any_block_length_is_the_aligned_output_delayed(golden, sizes):
    s = golden.stream(np.float64)
    predicted = s.latency_for(sizes[0])
    y = run(s, golden.x, sizes)
    assert s.latency == predicted == 64 - math.gcd(64, sizes[0])
    D = predicted
    assert np.all(y[:D] == 0)
    assert maxerr(y[D:], golden.y64[:len(y) - D]) < TOL64, (sizes, maxerr(y[D:], golden.y64[:len(y) - D]))


def test_latency_rule(golden):
    s = golden.stream()
    assert [s.latency_for(b) for b in (1, 17, 32, 64, 96, 100, 128, 333, 512)] == \
        [63, 63, 32, 0, 32, 60, 0, 63, 0]
    assert s.latency == 0


def test_latency_grows_when_the_block_size_changes(golden):
    sizes = [128, 256, 96, 32, 64, 17, 1000]
    s = golden.stream(np.float64)
    lats, outs, i = [], [], 0
    for k in range(60):
        b = sizes[k % len(sizes)]
        outs.append(s.process(golden.x[i:i + b]).copy())
        lats.append(s.latency)
        i += b
    y = np.concatenate(outs)
    assert lats[:7] == [0, 0, 32, 32, 32, 63, 63] and set(lats[7:]) == {63}
    want = expected_with_latency(golden.y64[:i], sizes)
    assert maxerr(y, want) < TOL64


def test_process_frames_rejects_unaligned_and_mixed_use(golden):
    s = golden.stream()
    with pytest.raises(ValueError, match="multiple of P"):
        s.process_frames(golden.x[:100])
    s.process(golden.x[:100])
    with pytest.raises(ValueError, match="FIFO"):
        s.process_frames(golden.x[:128])
    s.reset()
    assert s.latency == 0
    assert maxerr(s.process_frames(golden.x[:128]), golden.y64[:128]) < TOL64


# -- reset, controls, warm-up ---------------------------------------------------------------------

def test_reset_reproduces_the_first_run(golden):
    s = golden.stream()
    a = run(s, golden.x[:8192], [17])
    s.reset()
    b = run(s, golden.x[:8192], [17])
    np.testing.assert_array_equal(a, b)


def test_set_controls_changes_and_restores_the_output():
    g = _CACHE.get(NAMES[1]) or Golden(NAMES[1])
    x = g.x[:8192]
    s = g.stream()
    ref = s.process_frames(x).copy()
    s.reset()
    s.set_controls(np.clip(g.p + 0.3, 0, 1))
    other = s.process_frames(x).copy()
    assert maxerr(other, ref) > 1e-4
    s.reset()
    s.set_controls(g.p)
    np.testing.assert_array_equal(s.process_frames(x), ref)
    with pytest.raises(ValueError, match="7 control"):
        s.set_controls([0.5] * 6)
    with pytest.raises(ValueError, match="finite"):
        s.set_controls([0.5] * 6 + [np.nan])


def test_warm_up_settles_the_start_up_transient(golden):
    s = golden.stream()
    cold = s.process_frames(golden.x).copy()
    s.reset()
    assert s.warm_up(golden.x) == len(golden.x)
    warm = s.process_frames(golden.x).copy()
    dev = np.abs(cold - warm)
    assert dev[0] > 1e-2                          # the transient exists (7.1e-2 / 1.4e-2)
    settled = np.nonzero(dev > 1e-6)[0][-1] / 48000.0
    assert settled < 0.05                         # measured 0.032 / 0.030 s
    s.reset()
    assert s.warm_up(golden.x, seconds=0.1) == 4800 - 4800 % 64


# -- validation -----------------------------------------------------------------------------------

def _tiny(n_params=2):
    cfg = SptConfig(channels=[3, 2], kernels=[3, 2], dilations=[1, 2], pool=8, hidden=4,
                    n_params=n_params, film_hidden=[5])
    rng = np.random.default_rng(0)
    w = {name: rng.normal(0, 0.3, shape) for name, shape in cfg.weight_shapes().items()}
    return cfg, w


def test_weight_shapes_match_the_golden_inventory(golden):
    names = set(golden.config.weight_shapes())
    J = len(golden.config.channels)
    want = {n for n in golden.weights if not n.startswith("spnet.") and ".upsample." not in n
            and not n.startswith(f"s_conv11s.{J - 1}.")}
    assert names == want
    for n, shape in golden.config.weight_shapes().items():
        assert golden.weights[n].shape == shape


def test_bad_weights_raise_naming_the_entry():
    cfg, w = _tiny()
    SptModStream(cfg, w)
    name = "s_tfilms.1.rnn.rnn.weight_hh_l0"
    with pytest.raises(ValueError, match="missing entry 's_tfilms.1.rnn.rnn.weight_hh_l0'"):
        SptModStream(cfg, {k: v for k, v in w.items() if k != name})
    with pytest.raises(ValueError, match=r"'s_convs.0.conv.weight' has shape \(3, 1, 2\)"):
        SptModStream(cfg, {**w, "s_convs.0.conv.weight": np.zeros((3, 1, 2))})
    bad = w["s_tfilms.0.film_nn.1.weight"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="'s_tfilms.0.film_nn.1.weight' contains NaN"):
        SptModStream(cfg, {**w, "s_tfilms.0.film_nn.1.weight": bad})
    with pytest.raises(ValueError, match="'s_acts.1.weight' contains NaN or Inf"):
        SptModStream(cfg, {**w, "s_acts.1.weight": np.array([1.0, np.inf])})
    # extra entries are ignored; an interpolation kernel, if given, must be the formula
    ker = S.upsample_kernel(4, 8)
    SptModStream(cfg, {**w, "spnet.convs.0.weight": np.zeros(3), "s_tfilms.0.upsample.convt.weight": ker,
                       "s_conv11s.1.weight": np.zeros(1)})
    with pytest.raises(ValueError, match="'s_tfilms.1.upsample.convt.weight' is not the linear"):
        SptModStream(cfg, {**w, "s_tfilms.1.upsample.convt.weight": ker[:, :, ::-1]})


def test_golden_interpolation_kernels_equal_the_formula(golden):
    H, P = golden.config.hidden, golden.config.pool
    for j in range(len(golden.config.channels)):
        np.testing.assert_array_equal(golden.weights[f"s_tfilms.{j}.upsample.convt.weight"],
                                      S.upsample_kernel(H, P))


def test_config_validation_and_round_trip(golden):
    c = golden.config
    assert SptConfig.from_dict(c.to_dict()) == c
    assert json.loads(json.dumps(c.to_dict())) == c.to_dict()
    cases = [
        (dict(channels=[], kernels=[], dilations=[]), "at least one ModBlock"),
        (dict(channels=[4, 4], kernels=[3], dilations=[1, 1]), "same length"),
        (dict(channels=[4], kernels=[0], dilations=[1]), "kernels: every entry must be >= 1"),
        (dict(channels=[4], kernels=[3], dilations=[1], pool=0), "pool"),
        (dict(channels=[4], kernels=[3], dilations=[1], hidden=0), "hidden"),
        (dict(channels=[4], kernels=[3], dilations=[1], n_params=-1), "n_params"),
        (dict(channels=[4], kernels=[3], dilations=[1], input_channels=2), "mono"),
        (dict(channels=[4.5], kernels=[3], dilations=[1]), "list of integers"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            SptConfig(**kw).validate()
    with pytest.raises(ValueError, match="unknown key"):
        SptConfig.from_dict({**c.to_dict(), "bogus": 1})
    up = golden.upstream
    for key, val, msg in [("tfilm_pooling_type", "max", "average pooling"), ("rnn_cell", "GRU", "LSTM"),
                          ("sidechain_channels", 1, "sidechain"), ("cond_size", 8, "condnet")]:
        with pytest.raises(ValueError, match=msg):
            SptConfig.from_upstream({**up, key: val})
    with pytest.raises(ValueError, match="missing key"):
        SptConfig.from_upstream({k: v for k, v in up.items() if k != "s_kernel_size_list"})
    with pytest.raises(ValueError, match="dtype"):
        SptModStream(*_tiny(), dtype=np.int32)


def test_tiny_model_block_schedules_and_dtypes():
    """A model with dilation 2, P = 8, an odd channel count and a 1-layer control MLP: any
    schedule equals one call (this exercises code paths the golden configurations do not)."""
    cfg, w = _tiny()
    x = np.random.default_rng(1).normal(0, 0.5, 2000)
    ref = SptModStream(cfg, w)
    ref.set_controls([0.2, 0.7])
    whole = ref.process_frames(x[:1992])
    for sizes in ([8], [24, 8, 40], [3], [5, 11]):
        s = SptModStream(cfg, w, max_block=16)
        s.set_controls([0.2, 0.7])
        y = run(s, x[:1992], sizes)
        D = s.latency
        assert D == 8 - math.gcd(8, sizes[0])
        assert maxerr(y[D:], whole[:len(y) - D]) < 1e-12
    s = SptModStream(cfg, w, dtype=np.float32)
    s.set_controls([0.2, 0.7])
    assert maxerr(s.process_frames(x[:1992].astype(np.float32)), whole) < 1e-4
    # kernel size 1 (no history), no control MLP hidden layer, 5 blocks, P = 4
    cfg = SptConfig(channels=[5, 1, 6, 4, 2], kernels=[1, 4, 1, 2, 5], dilations=[1, 1, 3, 2, 1],
                    pool=4, hidden=3, n_params=1, film_hidden=[])
    rng = np.random.default_rng(2)
    w = {name: rng.normal(0, 0.4, shape) for name, shape in cfg.weight_shapes().items()}
    assert "s_tfilms.0.film_nn.0.weight" in w and w["s_tfilms.0.film_nn.0.weight"].shape == (10, 1)
    whole = SptModStream(cfg, w).process_frames(x)
    for sizes in ([4], [3], [12, 4, 1000, 8]):
        s = SptModStream(cfg, w, max_block=8)
        y = run(s, x, sizes)
        D = s.latency
        assert maxerr(y[D:], whole[:len(y) - D]) < 1e-12


# -- real time ------------------------------------------------------------------------------------

@njit
def _drive_stream(times, x, out, wf, ro, bm, gm, wk, ist):
    miss = 0
    for _ in range(times):
        miss += K.stream_block(x, out, x.shape[0], 0, wf, ro, bm, gm, wk, ist)
    return miss


@njit
def _drive_frames(times, x, out, wf, ro, bm, gm, wk):
    for _ in range(times):
        K.frames_block(x, out, x.shape[0], wf, ro, bm, gm, wk)
    return 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_allocates_nothing(dtype):
    """Numba's NRT statistics: a jitted driver calls the kernels 1 or 200 times per Python call.
    Passing the arrays in costs a fixed number of allocations; the kernels add none."""
    g = _CACHE.get(NAMES[1]) or Golden(NAMES[1])
    s = g.stream(dtype)
    x = np.ascontiguousarray(g.x[:100], dtype=dtype)        # 100: exercises the FIFO and queue
    xf = np.ascontiguousarray(g.x[:256], dtype=dtype)
    out = np.empty(256, dtype=dtype)
    s.process(x, out)                                          # latency 60 established
    args = (s._wf, s._ro, s._bm, s._gm, s._wk)
    assert _drive_stream(1, x, out, *args, s._ist) == 0
    s2 = g.stream(dtype)
    args2 = (s2._wf, s2._ro, s2._bm, s2._gm, s2._wk)
    _drive_frames(1, xf, out, *args2)
    counts = {}
    nrt.memsys_enable_stats()
    try:
        for times in (1, 200):
            before = rtsys.get_allocation_stats()
            miss = _drive_stream(times, x, out, *args, s._ist)
            _drive_frames(times, xf, out, *args2)
            after = rtsys.get_allocation_stats()
            counts[times] = (after.alloc - before.alloc, after.mi_alloc - before.mi_alloc)
    finally:
        nrt.memsys_disable_stats()
    assert miss == 0
    assert counts[200] == counts[1]
