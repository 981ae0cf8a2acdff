"""`python main.py render --sptmod MODEL ...`: the output is aligned with the input for any --block
(the FIFO latency is compensated) and reproduces the upstream golden outputs; bad input is one
`error:` line on stderr and exit code 2."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from app.cli.main import main
from engine.sptmod.file import model_hash, save_model, load_model
from tests.engine.test_sptmod_file import GOLDEN_NAMES, golden_dir
from tests.paths import REPO

ROOT = REPO
KEYS = {"samples", "seconds", "realtime_factor", "block", "dtype", "latency_samples", "model",
        "model_sha256", "model_file_sha256"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Per golden file: its path, x saved as .npy, y64, y32 and p."""
    d = tmp_path_factory.mktemp("render")
    out = {}
    for name in GOLDEN_NAMES:
        path = golden_dir() / name
        with np.load(path, allow_pickle=False) as z:
            x_path = d / f"{name}.x.npy"
            np.save(x_path, z["x"])
            out[name] = dict(model=path, x=x_path, y64=z["y64"], y32=z["y32"], p=z["p"], dir=d)
    return out


def render(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["render", "--quiet", *map(str, args)])
    cap = capsys.readouterr()
    if code == 0:
        lines = cap.out.splitlines()
        assert len(lines) == 1, cap.out
        return code, json.loads(lines[0]), cap.err
    assert cap.out == ""
    return code, None, cap.err


def render_ok(capsys, *args) -> dict:
    code, result, err = render(capsys, *args)
    assert code == 0, err
    return result


def assert_one_line_error(capsys, *args, words=()):
    code, _, err = render(capsys, *args)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("name", GOLDEN_NAMES)
@pytest.mark.parametrize("block", [64, 256, 1024, 100])
def test_float64_matches_golden_for_any_block(capsys, data, name, block, tmp_path):
    g = data[name]
    out = tmp_path / "y.npy"
    r = render_ok(capsys, "--sptmod", g["model"], "--input", g["x"], "--output", out,
                  "--block", block, "--dtype", "float64")
    assert KEYS <= set(r)
    assert r["samples"] == g["y64"].size
    assert r["block"] == block and r["dtype"] == "float64"
    assert r["latency_samples"] == (0 if block % 64 == 0 else 64 - np.gcd(block, 64))
    assert r["model"] == str(g["model"]) and r["model_file_sha256"] == model_hash(g["model"])
    assert r["model_sha256"] == load_model(g["model"]).sha256          # what a preset stores
    assert r["seconds"] > 0 and r["realtime_factor"] > 0
    y = np.load(out, allow_pickle=False)
    assert y.dtype == np.float64 and y.shape == g["y64"].shape
    assert np.max(np.abs(y - g["y64"])) <= 1e-9


@pytest.mark.parametrize("name", GOLDEN_NAMES)
@pytest.mark.parametrize("block", [256, 100])
def test_float32_matches_golden(capsys, data, name, block, tmp_path):
    g = data[name]
    out = tmp_path / "y.npy"
    r = render_ok(capsys, "--sptmod", g["model"], "--input", g["x"], "--output", out,
                  "--block", block, "--dtype", "float32")
    assert r["dtype"] == "float32"
    y = np.load(out, allow_pickle=False)
    assert np.max(np.abs(y - g["y32"])) <= 1e-5


def test_explicit_controls_equal_the_stored_defaults(capsys, data, tmp_path):
    g = data["golden_SPTMod25_p7.npz"]
    out = tmp_path / "y.npy"
    values = ",".join(repr(float(v)) for v in g["p"])
    r = render_ok(capsys, "--sptmod", g["model"], "--input", g["x"], "--output", out, "--controls", values)
    assert r["dtype"] == "float64" and r["block"] == 256               # the defaults
    assert list(r["controls"].values()) == [float(v) for v in g["p"]]
    assert np.max(np.abs(np.load(out) - g["y64"])) <= 1e-9
    other = tmp_path / "z.npy"
    render_ok(capsys, "--sptmod", g["model"], "--input", g["x"], "--output", other,
              "--controls", ",".join(["0.5"] * 7))
    assert np.max(np.abs(np.load(other) - g["y64"])) > 1e-6               # the controls matter


def test_a_saved_dualtone_model_renders_the_same(capsys, data, tmp_path):
    g = data["golden_SPTMod25_p7.npz"]
    model = save_model(load_model(g["model"]), tmp_path / "m.npz")
    out = tmp_path / "y.npy"
    r = render_ok(capsys, "--sptmod", model, "--input", g["x"], "--output", out, "--block", 512)
    assert r["model_file_sha256"] == model_hash(model)
    assert r["model_sha256"] == load_model(model).sha256 != r["model_file_sha256"]
    assert np.max(np.abs(np.load(out) - g["y64"])) <= 1e-9


def test_odd_length_is_aligned(capsys, data, tmp_path):
    """1000 samples (not whole frames) with odd blocks: the output is the input's length, and all
    samples of whole frames equal the golden run's."""
    g = data["golden_SPTMod24_p0.npz"]
    x = np.load(g["x"])[:1000]
    np.save(tmp_path / "x.npy", x)
    ys = []
    for block in (7, 100, 64):
        out = tmp_path / f"y{block}.npy"
        r = render_ok(capsys, "--sptmod", g["model"], "--input", tmp_path / "x.npy", "--output", out,
                      "--block", block)
        assert r["samples"] == 1000
        ys.append(np.load(out))
    for y in ys:
        assert y.shape == (1000,)
        assert np.max(np.abs(y[:960] - g["y64"][:960])) <= 1e-9
        assert np.max(np.abs(y - ys[-1])) <= 1e-12


def test_wav_round_trip(data, tmp_path):
    """Through the real entry point: a float WAV in, a float WAV out at the input's rate."""
    g = data["golden_SPTMod24_p0.npz"]
    x = np.load(g["x"])
    wav_in, wav_out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(wav_in, x.astype(np.float32), 48000, subtype="FLOAT")
    r = subprocess.run([sys.executable, "main.py", "render", "--sptmod", str(g["model"]),
                        "--input", str(wav_in), "--output", str(wav_out), "--block", "128"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["sample_rate"] == 48000 and result["samples"] == x.size
    assert "44100" in r.stderr                       # the note: the model was made at another rate
    y, rate = sf.read(wav_out, dtype="float64")
    info = sf.info(wav_out)
    assert rate == 48000 and info.subtype == "FLOAT" and y.shape == x.shape
    assert np.max(np.abs(y - g["y64"])) <= 1e-6        # float32 input and output quantisation


def test_bad_input_through_the_entry_point(data, tmp_path):
    g = data["golden_SPTMod24_p0.npz"]
    r = subprocess.run([sys.executable, "main.py", "render", "--sptmod", str(tmp_path / "none.npz"),
                        "--input", str(g["x"]), "--output", str(tmp_path / "y.npy")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"error: --sptmod {tmp_path / 'none.npz'}: no such file"]


def test_bad_inputs(capsys, data, tmp_path):
    g = data["golden_SPTMod25_p7.npz"]
    m, x, y = g["model"], g["x"], tmp_path / "y.npy"
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a model at all" * 10)
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF....WAVEnonsense")
    two_d = tmp_path / "2d.npy"
    np.save(two_d, np.zeros((100, 2)))
    ints = tmp_path / "int.npy"
    np.save(ints, np.zeros(100, dtype=np.int16))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([0.0, np.nan, 0.0]))
    cases = [
        (["--input", x, "--output", y], ["--sptmod"]),
        (["--sptmod", junk, "--input", x, "--output", y], ["not an .npz/zip archive"]),
        (["--sptmod", m, "--input", tmp_path / "none.npy", "--output", y], ["no such file"]),
        (["--sptmod", m, "--input", bad_wav, "--output", y], ["cannot read audio file"]),
        (["--sptmod", m, "--input", two_d, "--output", y], ["shape (100, 2)", "1-D"]),
        (["--sptmod", m, "--input", ints, "--output", y], ["float"]),
        (["--sptmod", m, "--input", nan, "--output", y], ["sample 1 is not finite"]),
        (["--sptmod", m, "--input", x, "--output", y, "--controls", "0.1,0.2"],
         ["7 controls", "2 values"]),
        (["--sptmod", m, "--input", x, "--output", y, "--controls", "0,0,0,0,0,0,x"], ["not a number"]),
        (["--sptmod", m, "--input", x, "--output", y, "--controls", "0,0,0,0,0,0,1.5"], ["outside [0, 1]"]),
        (["--sptmod", m, "--input", x, "--output", y, "--block", "0"], ["--block"]),
        (["--sptmod", m, "--input", x, "--output", y, "--block", "abc"], ["--block"]),
        (["--sptmod", m, "--input", x, "--output", y, "--block", "1000000"], ["--block"]),
        (["--sptmod", m, "--input", x, "--output", y, "--dtype", "float16"], ["--dtype"]),
        (["--sptmod", m, "--input", x, "--output", tmp_path / "y.mp3"], [".npy or .wav"]),
        (["--sptmod", m, "--input", x, "--output", tmp_path / "no" / "y.npy"], ["does not exist"]),
    ]
    for args, words in cases:
        assert_one_line_error(capsys, *args, words=words)
    assert not y.exists()
    g0 = data["golden_SPTMod24_p0.npz"]
    assert_one_line_error(capsys, "--sptmod", g0["model"], "--input", x, "--output", y,
                          "--controls", "0.5", words=["0 controls"])


# ------------------------------------------------------------------ circuits

def test_a_circuit_renders_with_its_parameter_values_sample_for_sample(capsys, tmp_path):
    x = np.sin(np.arange(5000) * 0.01) * np.linspace(0, 1.5, 5000)
    np.save(tmp_path / "x.npy", x)
    res = render_ok(capsys, "--circuit", "y = g*x + a*y@1", "--hidden", "g=0.5", "--hidden", "a=0.25",
                    "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    y = np.load(tmp_path / "y.npy")
    want = np.zeros_like(x)
    for n in range(x.size):                     # the recursion, written out
        want[n] = 0.5 * x[n] + 0.25 * (want[n - 1] if n else 0.0)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-15)
    assert res["samples"] == 5000 and res["hidden"] == {"g": 0.5, "a": 0.25}


def test_a_circuit_render_keeps_a_wav_files_rate(capsys, tmp_path):
    sf.write(tmp_path / "x.wav", np.full(4410, 0.5, dtype=np.float32), 44100, subtype="FLOAT")
    res = render_ok(capsys, "--circuit", "y = SR/44100*g*x", "--hidden", "g=0.5", "--input",
                    str(tmp_path / "x.wav"), "--output", str(tmp_path / "y.wav"))
    y, rate = sf.read(tmp_path / "y.wav")
    assert rate == 44100 and res["sample_rate"] == 44100.0 and np.allclose(y, 0.25)


@pytest.mark.parametrize("args, words", [
    (["--circuit", "y = g*x"], ["give 'g' a value"]),
    (["--circuit", "y = g*x", "--hidden", "g=1", "--hidden", "k=2"], ["no parameter named 'k'"]),
    (["--circuit", "y = g*", "--hidden", "g=1"], ["--circuit", "syntax error"]),
    (["--circuit", "y = exp(g*x)", "--hidden", "g=1000"], ["NaN/Inf"]),
])
def test_circuit_render_errors_are_one_line(capsys, tmp_path, args, words):
    np.save(tmp_path / "x.npy", np.ones(64))
    assert_one_line_error(capsys, *args, "--input", str(tmp_path / "x.npy"), "--output",
                          str(tmp_path / "y.npy"), words=words)
    assert not (tmp_path / "y.npy").exists()
