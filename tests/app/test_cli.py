"""`python main.py learn ...`: bad input is one `error:` line on stderr and exit code 2; a run prints
one JSON line; --trace writes a CSV at full precision; audio files are read as mono input."""
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise
from tests.paths import REPO

ROOT = REPO
GAIN = ["--circuit", "y = g*x", "--param", "g=0:-1:1"]


def learn(*args):
    return subprocess.run([sys.executable, "main.py", "learn", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def learn_ok(*args):
    r = learn(*args)
    assert r.returncode == 0, r.stderr
    return r


def result_of(r):
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def assert_one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:")
    for w in words:
        assert w in lines[0]


def read_trace(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("formula, words", [
    ("y = g*", ["line 1", "col"]),
    ("y = g*x\nz = foo(y)", ["line 2", "foo"]),
    ("y = g*x.real", ["attribute"]),
    ("# no formula here", []),
], ids=["syntax", "unknown-function", "attribute", "comment-only"])
def test_bad_formula(formula, words):
    assert_one_line_error(learn("--circuit", formula, "--param", "g=0", "--samples", "10"), *words)


def test_undeclared_parameter():
    r = learn("--circuit", "y = g*x + h", "--param", "g=0", "--samples", "10")
    assert_one_line_error(r, "'h'", "--param")


def test_param_for_a_name_the_circuit_lacks():
    assert_one_line_error(learn(*GAIN, "--param", "q=1", "--samples", "10"), "'q'")


@pytest.mark.parametrize("spec", ["g=abc", "g", "g=1:2", "g=1:0:x", "g=nan", "g=inf"])
def test_malformed_param(spec):
    assert_one_line_error(learn("--circuit", "y = g*x", "--param", spec, "--samples", "10"))


def test_param_minimum_above_maximum():
    r = learn("--circuit", "y = g*x", "--param", "g=0:2:1", "--samples", "10")
    assert_one_line_error(r, "minimum")


@pytest.mark.parametrize("spec, words", [
    ("g=1:0:10:log", ["log axis", "above 0"]), ("g=1::10:log", ["log axis"]), ("g=1:1:10:lin", ["NAME=INIT:MIN:MAX:log"]),
    ("g=1:1:10:log:x", ["NAME=INIT:MIN:MAX:log"])])
def test_a_log_axis_needs_a_positive_finite_range_and_says_its_form(spec, words):
    assert_one_line_error(learn("--circuit", "y = g*x", "--param", spec, "--samples", "10"), *words)


@pytest.mark.parametrize("optimizer", ["sgd", "gauss-newton"])
def test_a_log_param_from_the_command_line_learns_in_log_space(optimizer):
    """g from 0.2 to 7 on [0.01, 100]: in log space SGD at lr 0.05 gets there; the trace shows each
    step multiplying g (the ratio of consecutive values is exp(-lr*g*dL/dg))."""
    r = learn_ok("--circuit", "y = g*x", "--param", "g=0.2:0.01:100:log", "--hidden", "g=7",
                 "--optimizer", optimizer, "--lr", "0.05", "--input", "lcg-noise", "--samples", "3000")
    assert result_of(r)["params"]["g"] == pytest.approx(7.0, rel=1e-6)


def test_param_given_twice():
    assert_one_line_error(learn(*GAIN, "--param", "g=1", "--samples", "10"), "twice")


def test_missing_input_file(tmp_path):
    missing = tmp_path / "nope.wav"
    assert_one_line_error(learn(*GAIN, "--input", str(missing), "--samples", "10"), str(missing))


def test_unreadable_input_file(tmp_path):
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    assert_one_line_error(learn(*GAIN, "--input", str(bad), "--samples", "10"), str(bad))


def test_hidden_for_an_unknown_name():
    assert_one_line_error(learn(*GAIN, "--hidden", "q=1", "--samples", "10"), "'q'")


def test_unwritable_trace_file(tmp_path):
    target = tmp_path / "no-such-folder" / "t.csv"
    assert_one_line_error(learn(*GAIN, "--samples", "10", "--trace", str(target)), "--trace")


@pytest.mark.parametrize("flags", [
    ["--samples", "0"], ["--samples", "-5"], ["--window", "0"], ["--lr", "-1"], ["--lr", "0"],
    ["--input", "sine:0"], ["--input", "sine:30000"], ["--trace-every", "0"], ["--sr", "0"],
], ids=lambda f: " ".join(f))
def test_out_of_range_setting(flags):
    samples = [] if "--samples" in flags else ["--samples", "10"]
    assert_one_line_error(learn(*GAIN, *samples, *flags))


@pytest.mark.parametrize("flags", [["--loss", "bogus"], ["--samples", "many"], ["--bogus"]],
                         ids=lambda f: " ".join(f))
def test_argparse_usage_error(flags):
    samples = [] if "--samples" in flags else ["--samples", "10"]
    r = learn(*GAIN, *samples, *flags)
    assert r.returncode == 2
    assert "error" in r.stderr
    assert r.stdout == ""


# ---------------------------------------------------------------- a run

def test_prints_exactly_one_json_line_with_the_result():
    res = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--samples", "100", "--quiet"))
    assert set(res) == {"samples", "seconds", "samples_per_second", "loss", "params", "skipped"}
    assert res["samples"] == 100 and res["skipped"] == 0
    assert list(res["params"]) == ["g"]


def test_learns_the_hidden_value():
    res = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--lr", "0.1", "--samples", "5000", "--quiet"))
    assert res["params"]["g"] == pytest.approx(0.5, abs=1e-9)
    assert res["loss"] < 1e-12


TWO = ["--circuit", "y = g*x + h", "--param", "g=0", "--param", "h=0",
       "--hidden", "g=0.5", "--hidden", "h=0.1", "--optimizer", "sgd", "--lr", "0.05"]


def test_trace_header_lists_the_parameters(tmp_path):
    learn_ok(*TWO, "--samples", "20", "--trace", str(tmp_path / "t.csv"), "--quiet")
    header, rows = read_trace(tmp_path / "t.csv")
    assert header == ["n", "loss", "g", "h"]
    assert len(rows) == 20 and all(len(r) == 4 for r in rows)


def test_trace_grads_adds_gradient_columns(tmp_path):
    learn_ok(*TWO, "--samples", "20", "--trace", str(tmp_path / "t.csv"), "--trace-grads", "--quiet")
    header, rows = read_trace(tmp_path / "t.csv")
    assert header == ["n", "loss", "g", "h", "grad_g", "grad_h"]
    assert all(len(r) == 6 for r in rows)


def test_trace_and_result_match_an_in_process_learner_exactly(tmp_path):
    n = 300
    r = learn_ok(*TWO, "--samples", str(n), "--trace", str(tmp_path / "t.csv"), "--trace-grads",
                 "--quiet")
    _, rows = read_trace(tmp_path / "t.csv")
    learner = Learner("y = g*x + h", [ParamSpec("g", 0.0), ParamSpec("h", 0.0)],
                      hidden={"g": 0.5, "h": 0.1}, settings=Settings(optimizer="sgd", lr=0.05))
    _, trace = learner.process(LcgNoise().read(n), trace_every=1)
    ours = np.array([[float(v) for v in row] for row in rows])
    np.testing.assert_array_equal(ours, trace[:, :6])
    res = result_of(r)
    assert res["params"] == learner.params()
    assert res["loss"] == learner.loss


def test_trace_values_have_17_significant_digits(tmp_path):
    learn_ok(*TWO, "--samples", "50", "--trace", str(tmp_path / "t.csv"), "--trace-grads", "--quiet")
    _, rows = read_trace(tmp_path / "t.csv")
    cells = [c for row in rows[1:] for c in row[1:]]
    assert cells
    for c in cells:
        assert "%.17g" % float(c) == c


def test_trace_every_k_rows_across_block_boundaries(tmp_path):
    learn_ok(*GAIN, "--samples", "70000", "--trace", str(tmp_path / "t.csv"),
             "--trace-every", "1000", "--quiet")
    _, rows = read_trace(tmp_path / "t.csv")
    assert [int(r[0]) for r in rows] == list(range(0, 70000, 1000))


def test_trace_every_10(tmp_path):
    learn_ok(*GAIN, "--samples", "95", "--trace", str(tmp_path / "t.csv"), "--trace-every", "10",
             "--quiet")
    _, rows = read_trace(tmp_path / "t.csv")
    assert [int(r[0]) for r in rows] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]


# ---------------------------------------------------------------- input signals

def test_wav_with_non_finite_samples_skips_exactly_those(tmp_path):
    data = np.random.default_rng(3).uniform(-0.5, 0.5, 2000)
    bad = [10, 11, 500, 1234, 1999]
    data[bad] = [np.nan, np.inf, -np.inf, np.nan, np.inf]
    path = tmp_path / "holes.wav"
    sf.write(path, data, 48000, subtype="DOUBLE")
    r = learn_ok("--circuit", "y = g*x + h*x@1", "--param", "g=0", "--param", "h=0",
                 "--hidden", "g=0.5", "--hidden", "h=-0.25", "--lr", "0.1",
                 "--input", str(path), "--samples", "2000", "--quiet")
    res = result_of(r)
    assert res["skipped"] == len(bad)
    assert all(math.isfinite(v) for v in res["params"].values())
    assert res["loss"] is not None and math.isfinite(res["loss"])
    assert res["params"]["g"] == pytest.approx(0.5, abs=1e-6)


def loss_trace_equals_input_squared(tmp_path, *input_args, samples):
    """With g = 0, target gain 1 and a negligible learning rate the loss at n is x[n]^2."""
    learn_ok("--circuit", "y = g*x", "--param", "g=0", "--hidden", "g=1", "--optimizer", "sgd", "--lr", "1e-300",
             *input_args, "--samples", str(samples), "--trace", str(tmp_path / "t.csv"), "--quiet")
    _, rows = read_trace(tmp_path / "t.csv")
    return np.array([float(r[1]) for r in rows])


def test_stereo_16_bit_wav_is_mixed_to_mono(tmp_path):
    left = np.array([1000, -2000, 3000, 16384, -32768, 0, 12], dtype=np.int16)
    right = np.array([-1000, 6000, 3000, 0, -32768, 32767, 0], dtype=np.int16)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 48000, subtype="PCM_16")
    loss = loss_trace_equals_input_squared(tmp_path, "--input", str(path), samples=len(left))
    mono = (left.astype(float) + right.astype(float)) / 2.0 / 32768.0
    np.testing.assert_allclose(loss, mono ** 2, rtol=1e-12, atol=1e-18)


def test_sine_input(tmp_path):
    loss = loss_trace_equals_input_squared(tmp_path, "--input", "sine:440", samples=500)
    expected = np.sin(2 * np.pi * 440.0 * np.arange(500) / 48000.0) ** 2
    np.testing.assert_allclose(loss, expected, atol=1e-12)


def test_noise_input_is_reproducible_from_its_seed():
    def run(seed):
        res = result_of(learn_ok(*GAIN, "--hidden", "g=0.5", "--lr", "0.01", "--input", "noise",
                                 "--seed", str(seed), "--samples", "200", "--quiet"))
        return res["params"], res["loss"]

    assert run(7) == run(7)
    assert run(7) != run(8)


# ---------------------------------------------------------------- progress bar

SLOW = ["--circuit", "y = " + "sin(" * 40 + "g*x" + ")" * 40, "--param", "g=0.5",
        "--hidden", "g=0.25", "--samples", "3000000"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_bar_appears_only_after_the_first_second():
    import io
    from app.progress import Progress
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(1000, enabled=True, clock=clock, stream=out)
    clock.now = 0.9
    bar.update(100, 0.5)
    assert out.getvalue() == ""                      # a short run shows nothing
    clock.now = 1.5
    bar.update(500, 0.25)
    bar.close()
    assert "50.0%" in out.getvalue() and "500/1000 samples" in out.getvalue()
    assert out.getvalue().endswith("\n")


def test_progress_bar_disabled_writes_nothing():
    import io
    from app.progress import Progress
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(1000, enabled=False, clock=clock, stream=out)
    clock.now = 5.0
    bar.update(500, 0.25)
    bar.close()
    assert out.getvalue() == ""


def test_quiet_long_run_has_no_progress_bar():
    r = learn_ok(*SLOW, "--quiet")
    assert r.stderr == ""


def test_run_a_factory_preset_headless_with_a_hidden_override(capsys):
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "2", "--device", "virtual", "--quiet", "--preset",
               "compressor", "--hidden", "threshold=-30"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert rc == 0
    res = json.loads(out)
    assert abs(res["params"]["threshold"] + 30) < 1.0 and res["params"]["ratio"] > 4   # not -20: the override


def test_run_refuses_circuit_flags_with_a_preset(capsys):
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "1", "--device", "virtual", "--preset", "gain+dc",
               "--param", "g=0"])
    assert rc == 2 and "--param cannot be combined with --preset" in capsys.readouterr().err


def test_a_30000_deep_unary_minus_is_one_error_line_and_exit_2():
    r = learn("--circuit", "y = g*" + "-" * 30_000 + "x", "--param", "g=0", "--samples", "10")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: circuit line 1, col 1: the circuit is nested too deeply")
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_a_rate_typed_for_gauss_newton_is_named_as_unused_in_one_note():
    r = learn(*GAIN, "--hidden", "g=0.5", "--lr", "0.05", "--clip", "1", "--samples", "2000", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ("note: gauss-newton sets its own step, so --lr, --clip are not used; "
                                "add --optimizer sgd|momentum|rmsprop|adam to use them")
    assert result_of(r)["params"]["g"] == pytest.approx(0.5, abs=1e-9)     # learned without them
    quiet = learn(*GAIN, "--hidden", "g=0.5", "--optimizer", "sgd", "--lr", "0.05", "--samples", "10", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
