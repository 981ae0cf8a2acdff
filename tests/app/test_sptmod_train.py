"""The offline SPTMod trainer (app/train/sptmod_torch.py, app/train/sptmod_train.py): the PyTorch model against
the upstream golden files (shared/reference/sptmod README section 5), the unpadded first
sub-sequence and its index arithmetic (4.3, 4.4), agreement with the Numba inference path on
exported weights, the loss, a tiny training run with checkpoint and resume, and the command's
errors. Skipped when PyTorch is not installed."""
import argparse
import io
import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from app.cli.train_sptmod import add_parser as add_train_parser  # noqa: E402
from app.train.sptmod_torch import SptModTorch, index_plan  # noqa: E402
from app.train.sptmod_train import (NEEDS_TORCH, Pair, TrainOptions, _Batches,  # noqa: E402
                               align_output_sign, esr, sptmod_loss, train)
from engine.sptmod.stream import SptConfig, SptModStream  # noqa: E402
from engine.sptmod.file import load_model, model_hash, save_model, SptModel  # noqa: E402
from tests.paths import REFERENCE  # noqa: E402

torch.set_num_threads(2)
REF = REFERENCE / "sptmod"
NAMES = ["golden_SPTMod24_p0", "golden_SPTMod25_p7"]
TOL64 = 1e-12


class Golden:
    def __init__(self, name):
        with np.load(REF / f"{name}.npz", allow_pickle=False) as z:
            self.x, self.p = z["x"], z["p"]
            self.y64, self.state64 = z["y64"], z["state_after64"]
            self.block = int(z["block"])
            self.config = SptConfig.from_upstream(json.loads(str(z["config"])))
            self.weights = {k[2:]: z[k] for k in z.files if k.startswith("w/")}

    def model(self):
        m = SptModTorch(self.config, dtype=torch.float64)
        return m.load_weights(self.weights)


_CACHE = {}


@pytest.fixture(scope="module", params=NAMES)
def golden(request):
    if request.param not in _CACHE:
        _CACHE[request.param] = Golden(request.param)
    return _CACHE[request.param]


# --------------------------------------------------------------------------- the model


def test_golden_streamed(golden):
    m = golden.model()
    x = torch.from_numpy(golden.x)[None]
    p = torch.from_numpy(golden.p)
    b = golden.block
    with torch.no_grad():
        y = torch.cat([m.forward_stream(x[:, i:i + b], p) for i in range(0, x.shape[1], b)], dim=1)
    assert np.max(np.abs(y[0].numpy() - golden.y64)) < TOL64
    assert np.max(np.abs(m.lstm_state()[0].numpy() - golden.state64)) < TOL64
    # a batch of two streams (the second scaled) is two independent streams
    m.reset_state()
    with torch.no_grad():
        x2 = torch.cat([x, 0.5 * x])[:, :4096]
        y2 = torch.cat([m.forward_stream(x2[:, i:i + 1024], p) for i in range(0, 4096, 1024)], 1)
    assert np.max(np.abs(y2[0].numpy() - golden.y64[:4096])) < TOL64
    assert np.max(np.abs(y2[1].numpy() - y2[0].numpy())) > 1e-9


def test_parameters_are_the_inference_weights(golden):
    m = SptModTorch(golden.config, dtype=torch.float64)
    shapes = golden.config.weight_shapes()
    got = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert got == {n: tuple(s) for n, s in shapes.items()}
    assert all(torch.all(a.weight == 0.25) for a in m.s_acts)        # PyTorch's PReLU default
    assert set(m.state_dict()) == set(shapes)                         # no persistent buffers
    w = golden.model().export_weights()
    assert set(w) == set(shapes)
    assert all(w[n].dtype == np.float64 and np.array_equal(w[n], golden.weights[n]) for n in w)
    with pytest.raises(ValueError, match="missing"):
        m.load_weights({k: v for k, v in golden.weights.items() if k != "s_acts.0.weight"})


def test_index_plan_worked_numbers():
    c24 = SptConfig(channels=[21, 19, 32], kernels=[9, 29, 25], dilations=[1, 1, 1])
    c25 = SptConfig(channels=[15] * 4, kernels=[3] * 4, dilations=[1] * 4, n_params=7,
                    film_hidden=[32, 32])
    for L in (64, 128, 4096, 8192, 16384, 32768, 69952):
        a, b = index_plan(c24, L), index_plan(c25, L)
        assert (a.c_mm, a.c_ma, a.L_in, a.i0m, a.i0a) == ((36, 40, 0), (256, 128, 0), L + 328, 0, 328)
        assert a.k_m == (L // 64 + 5, L // 64 + 3, L // 64 + 1) and a.t_m0 == -328
        assert (b.c_mm, b.c_ma, b.L_in, b.i0m, b.i0a) == ((62, 62, 62, 0), (384, 256, 128, 0),
                                                          L + 450, 0, 450)
        assert b.k_m == tuple(L // 64 + k for k in (7, 5, 3, 1))
    a = index_plan(c24, 1000)
    assert (a.c_mm, a.c_ma, a.L_in) == ((36, 40, 24), (280, 152, 24), 1352)
    s = index_plan(c24, 4096, lookback=218441)                      # with the SPN (spec table)
    assert (s.L_in, s.i0m, s.i0a, s.i0spn) == (4096 + 218441, 218113, 218441, 0)
    s = index_plan(c25, 4096, lookback=218441)
    assert (s.L_in, s.i0m, s.i0a, s.i0spn) == (4096 + 218441, 217991, 218441, 0)
    for L in (100, 1000, 4095, 4097, 16383):                        # every crop is admissible
        for c in (c24, c25):
            q = index_plan(c, L)
            assert min(q.c_mm) >= 0 and min(q.c_ma) >= 0 and q.i0m >= 0


@pytest.mark.parametrize("L1", [1000, 4096])
def test_unpadded_then_streamed(golden, L1):
    """One unpadded call of L1 + L2 = an unpadded call of L1, then a streaming call of L2."""
    m = golden.model()
    L2 = 1024
    q1 = index_plan(golden.config, L1)
    assert index_plan(golden.config, L1 + L2).L_in == q1.L_in + L2
    X = torch.from_numpy(golden.x[:q1.L_in + L2]).repeat(2, 1)
    X[1] *= -0.7
    p = torch.from_numpy(golden.p)
    with torch.no_grad():
        m.reset_state()
        y_all = m.forward_unpadded(X, p, L1 + L2)
        s_all = m.lstm_state()
        m.reset_state()
        y1 = m.forward_unpadded(X[:, :q1.L_in], p, L1)
        y2 = m.forward_stream(X[:, q1.L_in:], p)
        s_12 = m.lstm_state()
        m.reset_state()
        y2_cold = m.forward_stream(X[:, q1.L_in:], p)              # without the primed state
    assert y_all.shape == (2, L1 + L2) and y1.shape == (2, L1)
    assert float((y_all - torch.cat([y1, y2], 1)).abs().max()) <= TOL64
    assert float((s_all - s_12).abs().max()) <= TOL64
    assert float((y2_cold - y2).abs().max()) > 1e-9


def test_export_agrees_with_numba(tmp_path):
    """Seeded random weights, exported: the Numba stream (float64) equals the torch stream."""
    cfg = SptConfig(channels=[15] * 4, kernels=[3] * 4, dilations=[1] * 4, n_params=7,
                    film_hidden=[32, 32])
    torch.manual_seed(5)
    m = SptModTorch(cfg, dtype=torch.float64)
    with torch.no_grad():                                           # distinct PReLU slopes
        for a in m.s_acts:
            a.weight.add_(0.2 * torch.randn(a.weight.shape, dtype=torch.float64))
    rng = np.random.default_rng(1)
    p = rng.uniform(size=7)
    x = 0.5 * rng.standard_normal(8192) * np.repeat(rng.uniform(0.05, 1, 16), 512)
    with torch.no_grad():
        yt = torch.cat([m.forward_stream(torch.from_numpy(x[i:i + 2048])[None], p)
                        for i in range(0, 8192, 2048)], 1)[0].numpy()
    w = m.export_weights()
    s = SptModStream(cfg, w, dtype=np.float64)
    s.set_controls(p)
    yn = np.concatenate([s.process(x[i:i + 256]) for i in range(0, 8192, 256)])
    assert np.std(yt) > 1e-4
    assert np.max(np.abs(yn - yt)) < TOL64
    ctrls = [{"name": f"c{i}", "min": 0.0, "max": 1.0, "default": 0.5} for i in range(7)]
    path = save_model(SptModel(cfg, w, 44100.0, ctrls, {"test": 1}), tmp_path / "m.sptmod")
    back = load_model(path)
    assert all(np.array_equal(back.weights[k], w[k]) for k in w)
    m2 = SptModTorch(back.config, dtype=torch.float64).load_weights(back.weights)
    with torch.no_grad():
        assert np.array_equal(m2.forward_stream(torch.from_numpy(x[:2048])[None], p)[0].numpy(),
                              yt[:2048])


def test_loss():
    g = torch.Generator().manual_seed(0)
    y = 0.3 * torch.randn(2, 4096, generator=g, dtype=torch.float64)
    loss, parts = sptmod_loss(y.clone(), y, parts=True)
    assert float(loss) == 0.0 and all(v == 0.0 for v in parts.values())
    yh = (0.9 * y).requires_grad_(True)
    loss, parts = sptmod_loss(yh, y, parts=True)
    assert abs(parts["mae"] - 0.1 * float(y.abs().mean())) < 1e-12
    assert abs(parts["esr"] - 0.01) < 1e-9 and abs(float(esr(0.9 * y, y)) - 0.01) < 1e-9
    assert abs(parts["mreesr"] - 0.19) < 1e-6                   # |0.81 E - E| / E per window
    assert abs(float(loss.detach()) - (100 * parts["mae"] + parts["esr"] + parts["mrstft"] + parts["mreesr"])) < 1e-9
    loss.backward()
    assert bool(torch.isfinite(yh.grad).all())
    z = torch.zeros(1, 300, dtype=torch.float64, requires_grad=True)   # silence, short signal
    loss = sptmod_loss(z, torch.zeros(1, 300, dtype=torch.float64))
    loss.backward()
    assert float(loss.detach()) == 0.0 and bool(torch.isfinite(z.grad).all())


# --------------------------------------------------------------------------- the command


class TtyLog(io.StringIO):
    def isatty(self):
        return True


class Cli:
    """parse + run like app.cli.main (UsageError -> one line on stderr, exit code 2)."""

    def __init__(self):
        self.parser = argparse.ArgumentParser(prog="main.py")
        add_train_parser(self.parser.add_subparsers(dest="command"))

    def __call__(self, argv, capsys):
        from app.cli.errors import UsageError
        a = self.parser.parse_args(["train-sptmod"] + [str(v) for v in argv])
        capsys.readouterr()
        try:
            code = a.func(a)
            msg = None
        except UsageError as e:
            code, msg = 2, str(e)
        out = capsys.readouterr()
        return code, msg, out.out


def write_wav(path, x, rate=16000):
    import soundfile as sf
    sf.write(str(path), np.asarray(x, dtype=np.float32), rate, subtype="FLOAT")
    return path


def compressor(x, rate, strength):
    """A slow gain rider: per 64-sample frame RMS, one-pole envelope (fast attack, slow release),
    gain 1 / (1 + strength * env) interpolated per sample."""
    frames = x[: x.size // 64 * 64].reshape(-1, 64)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    env, e = np.empty_like(rms), 0.0
    for i, r in enumerate(rms):
        e += (0.5 if r > e else 0.02) * (r - e)
        env[i] = e
    g = np.interp(np.arange(x.size), np.arange(rms.size) * 64 + 32, 1 / (1 + strength * env))
    return g * x


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    files = {"in": [], "out": []}
    for k, strength in enumerate((2.0, 6.0)):
        n = 16000 * 3
        x = rng.standard_normal(n) * np.repeat(rng.uniform(0.02, 0.8, n // 2000), 2000) * 0.5
        files["in"].append(write_wav(d / f"in{k}.wav", x))
        files["out"].append(write_wav(d / f"out{k}.wav", compressor(x, 16000, strength)))
    (d / "controls.json").write_text(json.dumps(
        {"controls": [{"name": "strength", "min": 0, "max": 10, "default": 4}],
         "items": [[2.0], [6.0]]}))
    (d / "tiny.json").write_text(json.dumps(
        {"channels": [4, 4], "kernels": [3, 3], "dilations": [1, 1], "hidden": 8,
         "film_hidden": [4]}))
    return d, files


def base_args(d, files, out, epochs):
    return (["--input", *files["in"], "--target", *files["out"], "--controls-file",
             d / "controls.json", "--config", d / "tiny.json", "--out", out, "--epochs", epochs,
             "-N", 2, "-B", 4, "-L", 1024, "--lr", 3e-3, "--threads", 2, "--quiet"])


def test_tiny_training_and_resume(data, capsys):
    d, files = data
    cli = Cli()
    a_out, b_out = d / "a.sptmod", d / "b.sptmod"
    code, msg, out = cli(base_args(d, files, a_out, 4), capsys)
    assert (code, msg) == (0, None)
    summary = json.loads(out.strip())
    hist = summary["loss_st_history"]
    assert len(hist) == 4 and hist[-1] < 0.5 * hist[0]
    assert summary["model_file_sha256"] == model_hash(a_out) and summary["epochs"] == 4
    assert summary["model_sha256"] == load_model(a_out).sha256          # what a preset stores
    assert summary["iterations"] == 4 * 2 * 9                       # 36 sequences / B 4, N 2
    assert summary["validation"]["esr_st"] < 0.5
    model = load_model(a_out)
    assert model.sample_rate == 16000 and model.control_names == ["strength"]
    prov = model.provenance
    assert prov["trainer"] == "dualtone train-sptmod" and prov["config"] == "tiny.json"
    assert prov["inputs"][0]["file"] == "in0.wav" and len(prov["targets"][1]["sha256"]) == 64
    assert (prov["N"], prov["B"], prov["L"], prov["seed"]) == (2, 4, 1024, 0)
    assert prov["validation"]["esr_st"] == summary["validation"]["esr_st"] is not None
    # the exported model runs in the Numba path like the torch model
    m = SptModTorch(model.config, dtype=torch.float64).load_weights(model.weights)
    s = SptModStream(model.config, model.weights, dtype=np.float64)
    s.set_controls([6.0])
    x = np.random.default_rng(3).standard_normal(2048) * 0.3
    with torch.no_grad():
        yt = m.forward_stream(torch.from_numpy(x)[None], torch.tensor([6.0]))[0].numpy()
    assert np.max(np.abs(s.process(x) - yt)) < TOL64

    # stopped after epoch 1, resumed to epoch 4: bit-identical to the uninterrupted run
    # (the first part through train() with a terminal-like progress stream)
    tty = TtyLog()
    o = TrainOptions(inputs=files["in"], targets=files["out"], out=str(b_out),
                     controls_file=str(d / "controls.json"), config=str(d / "tiny.json"),
                     epochs=1, N=2, B=4, L=1024, lr=3e-3, threads=2, log=tty)
    assert train(o)["epochs"] == 1
    text = tty.getvalue()
    assert "\repoch 1/1  it " in text and " eta " in text and "epoch 1/1: train loss" in text
    code, msg, _ = cli(base_args(d, files, b_out, 4), capsys)       # no --resume: refused
    assert code == 2 and "--resume" in msg and "\n" not in msg
    code, msg, out = cli(base_args(d, files, b_out, 4) + ["--resume"], capsys)
    assert (code, msg) == (0, None)
    assert json.loads(out)["iterations"] == summary["iterations"]
    ca = torch.load(str(a_out) + ".ckpt", weights_only=True)
    cb = torch.load(str(b_out) + ".ckpt", weights_only=True)
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    assert ca["history"][-1]["loss_st"] == cb["history"][-1]["loss_st"]
    wb = load_model(b_out).weights
    assert all(np.array_equal(model.weights[k], wb[k]) for k in wb)
    # a changed setting is refused on resume
    args = base_args(d, files, b_out, 5) + ["--resume"]
    args[args.index("--lr") + 1] = 1e-3
    code, msg, _ = cli(args, capsys)
    assert code == 2 and "lr" in msg


def test_align_output_sign(data):
    d, files = data
    cfg = SptConfig(channels=[4, 4], kernels=[3, 3], dilations=[1, 1], hidden=8)
    x = np.random.default_rng(0).standard_normal(20000) * 0.3
    pair = Pair(x=x.astype(np.float32), y=(0.5 * x).astype(np.float32), p=np.zeros(0),
                n_train=20000, input_file={}, target_file={})
    o = TrainOptions(inputs=[], targets=[], out="", N=1, B=2, L=1024)
    plan = index_plan(cfg, 1024)
    batches = _Batches([pair], "train", plan.L_in, 1024)
    flips = []
    for seed in range(6):
        torch.manual_seed(seed)
        m = SptModTorch(cfg)
        flips.append(align_output_sign(m, plan, batches, o, torch.float32))
        X, Y, _ = batches.tensors([0, 1], torch.float32)
        with torch.no_grad():
            m.reset_state()
            yhat = m.forward_unpadded(X[:, :plan.L_in], None, plan=plan)
        y = Y[:, plan.i0a:plan.i0a + 1024]
        assert float(((yhat - yhat.mean(1, keepdim=True)) * y).sum()) >= 0
    assert any(flips) and not all(flips)


def test_cli_errors(data, capsys, tmp_path, monkeypatch):
    d, files = data
    cli = Cli()
    out = tmp_path / "m.sptmod"

    def err(args, *words):
        code, msg, stdout = cli(args, capsys)
        assert code == 2 and stdout == "" and "\n" not in msg, (code, msg)
        for w in words:
            assert w in msg, msg
        return msg

    args = base_args(d, files, out, 1)
    bad = list(args)
    bad[bad.index("--input") + 1] = tmp_path / "nope.wav"
    err(bad, "--input", "nope.wav", "no such file")
    short = write_wav(tmp_path / "short.wav", np.zeros(1000))
    bad = list(args)
    bad[bad.index("--target") + 1] = short
    err(bad, "samples", "equal lengths")
    bad = list(args)
    bad[bad.index("-L") + 1] = 1000
    err(bad, "--length 1000", "multiple of 64")
    other_rate = write_wav(tmp_path / "r.wav", np.zeros(48000), rate=22050)
    bad = list(args)
    bad[bad.index("--target") + 1] = other_rate
    err(bad, "Hz")
    nan = np.zeros(48000)
    nan[7] = np.nan
    bad = list(args)
    bad[bad.index("--input") + 1] = write_wav(tmp_path / "nan.wav", nan)
    err(bad, "non-finite")
    tiny = write_wav(tmp_path / "tiny.wav", np.zeros(2000))
    err(["--input", tiny, "--target", tiny, "--config", d / "tiny.json", "--out", out, "-L", 1024,
         "--quiet"], "too short")
    (tmp_path / "c.json").write_text(json.dumps(
        {"controls": [{"name": "s", "min": 0, "max": 1, "default": 0}], "items": [[2.0], [0.5]]}))
    bad = list(args)
    bad[bad.index("--controls-file") + 1] = tmp_path / "c.json"
    err(bad, "outside [0, 1]")
    err(args[:5] + args[6:], "one target per input")
    bad = list(args)
    bad[bad.index("--config") + 1] = "sptmod26"
    err(bad, "--config sptmod26")
    err(args + ["--resume"], "--resume", "no checkpoint")
    out.write_bytes(b"x")
    err(args, "exists", "--force")
    monkeypatch.setitem(sys.modules, "torch", None)                 # PyTorch not installed
    assert err(args) == NEEDS_TORCH
