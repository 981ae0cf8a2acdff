"""`learn/run --save-preset FILE`: what was learned becomes a preset that opens again; the file is
checked before anything compiles and is never overwritten or written with NaN values."""
import json

import numpy as np

from app.cli.main import main
from app.preset import document as presets
from app.preset import store

LEARN = ["learn", "--circuit", "y = gain*x + dc", "--param", "gain=0:-2:2", "--param", "dc=0",
         "--hidden", "gain=0.5", "--hidden", "dc=0.25", "--lr", "0.01", "--samples", "48000", "--quiet"]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_learn_saves_what_it_learned_and_run_opens_it_and_saves_again(capsys, tmp_path):
    path = tmp_path / "mine.json"
    assert main(LEARN + ["--save-preset", str(path)]) == 0
    res = _json(capsys)
    assert res["saved_preset"] == str(path)
    p = presets.load(path)
    assert p.learned == res["params"] and abs(p.learned["gain"] - 0.5) < 1e-6
    assert p.spec.circuit == "y = gain*x + dc" and p.spec.hidden == {"gain": 0.5, "dc": 0.25}
    assert p.name == "mine"
    assert "learned by `learn` from the circuit 'y = gain*x + dc' over 48000 samples" in p.description
    again = tmp_path / "again.json"
    assert main(["run", "--headless", "--preset", str(path), "--device", "virtual", "--seconds", "0.5",
                 "--quiet", "--source", "sine:330", "--save-preset", str(again)]) == 0
    res = _json(capsys)
    q = presets.load(again)
    assert res["saved_preset"] == str(again) and q.learned == res["params"]
    assert (q.source, q.source_hz) == ("sine", 330.0) and q.spec.hidden == p.spec.hidden


def test_a_save_path_is_refused_before_learning(capsys, tmp_path):
    taken = tmp_path / "taken.json"
    taken.write_text("keep me")
    for path, words in ((taken, "the file exists"), (tmp_path / "nope" / "x.json", "does not exist"),
                        (tmp_path / "x.txt", "ends in .json")):
        assert main(LEARN + ["--save-preset", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --save-preset") and words in err and err.count("\n") == 1
    assert taken.read_text() == "keep me"


def test_a_diverged_learn_writes_no_nan_preset(capsys, tmp_path):
    path = tmp_path / "blown.json"
    code = main(["learn", "--circuit", "y = x + a*y@1", "--param", "a=0", "--hidden", "a=0.95",
                 "--optimizer", "sgd", "--lr", "1.0", "--samples", "96000", "--quiet", "--save-preset", str(path)])
    res = _json(capsys)
    assert code == 3 and "diverged" in res
    if "saved_preset" in res:                 # its last values were finite: they open again
        assert all(abs(v) < 1e300 for v in presets.load(path).learned.values())
    else:
        assert not path.exists()


# ---- learn --preset (the preset as the circuit, declarations, hidden values, banks, settings)

def test_learn_takes_a_factory_preset_saves_it_and_resumes_from_what_it_saved(capsys, tmp_path):
    path = tmp_path / "gd.json"
    assert main(["learn", "--preset", "gain+dc", "--samples", "48000", "--quiet", "--save-preset", str(path)]) == 0
    res = _json(capsys)
    factory = presets.load(store.resolve("gain+dc"))
    p = presets.load(path)
    assert res["saved_preset"] == str(path) and p.learned == res["params"]
    assert abs(p.learned["gain"] - factory.spec.hidden["gain"]) < 1e-3
    assert p.spec.circuit == factory.spec.circuit and p.spec.hidden == factory.spec.hidden
    assert p.spec.settings == factory.spec.settings and p.name == "gd"
    assert "from the preset gain+dc over 48000 samples" in p.description
    # the saved file is a preset learn opens: it starts from the learned values (a tiny rate keeps them)
    assert main(["learn", "--preset", str(path), "--samples", "1", "--quiet", "--lr", "1e-12"]) == 0
    again = _json(capsys)["params"]
    assert all(abs(again[k] - v) < 1e-9 for k, v in p.learned.items())


def test_flags_given_with_a_preset_override_its_hidden_values_and_settings(capsys, tmp_path):
    path = tmp_path / "over.json"
    assert main(["learn", "--preset", "gain+dc", "--hidden", "gain=0.75", "--lr", "0.02", "--samples", "48000",
                 "--quiet", "--save-preset", str(path)]) == 0
    res = _json(capsys)
    p, factory = presets.load(path), presets.load(store.resolve("gain+dc"))
    assert p.spec.hidden["gain"] == 0.75 and abs(res["params"]["gain"] - 0.75) < 1e-3
    assert p.spec.settings.lr == 0.02 != factory.spec.settings.lr
    assert p.spec.settings.loss == factory.spec.settings.loss      # what was not given stays the preset's


def test_learn_with_a_preset_refuses_circuit_flags_bad_files_and_live_ground_truths(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for args, words in ((["--preset", "gain+dc", "--circuit", "y = g*x"], "--circuit cannot be combined with --preset"),
                        (["--preset", "gain+dc", "--banks=-1,0,1"], "--banks cannot be combined with --preset"),
                        (["--preset", str(bad)], f"--preset {bad}: not valid JSON"),
                        (["--preset", "sptmod-compressor"], "its ground truth is an SPTMod model"),
                        (["--preset", "gain+dc", "--hidden", "gain=9"], "outside gain's range"),
                        ([], "learn needs --circuit TEXT (or --preset NAME|FILE)")):
        assert main(["learn", *args, "--samples", "10", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, err


def test_a_preset_saved_by_learn_opens_in_run_and_learn(capsys, tmp_path):
    path = tmp_path / "lactose.json"
    assert main(["learn", "--preset", "lactose-asymmetric", "--samples", "24000", "--quiet",
                 "--save-preset", str(path)]) == 0
    res = _json(capsys)
    p = presets.load(path)
    assert [b["params"] for b in res["banks"]] == p.banks["learned"]         # per bank, with banks
    assert main(["run", "--headless", "--preset", str(path), "--device", "virtual", "--seconds", "0.3",
                 "--quiet", "--optimizer", "sgd", "--lr", "1e-12"]) == 0
    ran = _json(capsys)["params"]
    assert all(abs(ran[k] - v) < 1e-6 for k, v in res["params"].items())    # run resumed from them too


def test_force_replaces_a_saved_preset_and_an_interrupted_learn_still_saves(capsys, tmp_path, monkeypatch):
    from app.progress import Progress
    path = tmp_path / "mine.json"
    path.write_text("old")

    def ctrl_c(self, *args):
        raise KeyboardInterrupt
    monkeypatch.setattr(Progress, "update", ctrl_c)          # Ctrl-C after the first block
    assert main(LEARN[:-3] + ["--samples", "200000", "--quiet", "--save-preset", str(path), "--force"]) == 130
    res = _json(capsys)
    assert res["interrupted"] is True and res["samples"] < 200000
    assert res["saved_preset"] == str(path) and presets.load(path).learned == res["params"]


def test_render_reports_the_model_hash_a_preset_stores(capsys, tmp_path):
    factory = json.loads(store.resolve("sptmod-compressor").read_text())
    model = store.FACTORY_DIR / factory["sptmod"]["model"]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(256))
    assert main(["render", "--quiet", "--sptmod", str(model), "--input", str(x),
                 "--output", str(tmp_path / "y.npy")]) == 0
    r = _json(capsys)
    assert r["model_sha256"] == factory["sptmod"]["sha256"] != r["model_file_sha256"]


def test_learn_saves_a_recording_pair_ground_truth_and_learns_it_again_from_the_preset(capsys, tmp_path):
    rec = store.FACTORY_DIR / "recordings"
    path = tmp_path / "pair.json"
    assert main(["learn", "--circuit", "y = tanh(drive*x)", "--param", "drive=1:0.1:10", "--input",
                 str(rec / "drive-dry.wav"), "--target-file", str(rec / "drive-wet.wav"), "--align", "96",
                 "--samples", "2000", "--quiet", "--save-preset", str(path)]) == 0
    res = _json(capsys)
    p = presets.load(path)                         # the pair's content hashes are checked on loading
    assert p.spec.target == "y = recording" and p.spec.hidden == {"align": 96.0}
    assert p.spec.recording.wet == str(rec / "drive-wet.wav") and p.learned == res["params"]
    assert main(["learn", "--preset", str(path), "--samples", "2000", "--quiet"]) == 0
    assert _json(capsys)["align"] == 96                     # the preset's pair, at its alignment


def test_run_refuses_a_taken_save_file_before_compiling_and_takes_the_preset_overrides(capsys, tmp_path,
                                                                                       monkeypatch):
    from app.session import Session
    taken = tmp_path / "taken.json"
    taken.write_text("keep me")

    def no_compile(*a, **k):
        raise AssertionError("compiled before refusing the command line")
    with monkeypatch.context() as m:
        m.setattr(Session, "load", no_compile)
        assert main(["run", "--headless", "--preset", "gain+dc", "--device", "virtual", "--seconds", "0.2",
                     "--save-preset", str(taken)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --save-preset {taken}: the file exists (add --force") and err.count("\n") == 1
        assert main(["run", "--headless", "--preset", "gain+dc", "--device", "virtual", "--seconds", "0.2",
                     "--plugin", "ladspa:1041"]) == 2
        assert "--plugin cannot be combined with --preset" in capsys.readouterr().err
    assert main(["run", "--headless", "--preset", "gain+dc", "--device", "virtual", "--seconds", "0.3", "--quiet",
                 "--lr", "0.123", "--save-preset", str(taken), "--force"]) == 0
    assert _json(capsys)["saved_preset"] == str(taken)
    saved = presets.load(taken)
    assert saved.spec.settings.lr == 0.123 and "from the preset gain+dc" in saved.description
