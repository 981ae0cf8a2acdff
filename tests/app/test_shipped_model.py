"""The shipped SPTMod compressor model and its factory preset: the model follows the compressor
circuit it was trained on (which the engine renders here), its provenance records how it was
made, and the preset plays it live as the ground truth."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from app.preset import document as presets

from app.preset import store
from engine.sptmod.file import load_model
from tests.paths import REPO

ROOT = REPO
sys.path.insert(0, str(ROOT / "benchmarks"))
import sptmod_compressor as made  # noqa: E402  (the script that made the model)

MODEL = ROOT / "presets" / "models" / "compressor-sptmod25.npz"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


def test_the_shipped_model_is_an_sptmod25_with_its_training_recorded(model):
    c = model.config
    assert (c.channels, c.kernels, c.hidden, c.pool, c.n_params) == ([15] * 4, [3] * 4, 31, 64, 0)
    prov = model.provenance
    assert prov["trainer"] == "dualtone train-sptmod" and prov["config"] == "sptmod25"
    assert prov["validation"]["esr_st"] < 0.05 and len(prov["inputs"]) == len(prov["targets"]) == 1


def test_the_model_follows_the_circuit_on_material_it_never_saw(model):
    x = made.program_material(seed=11, seconds=4.0)
    circuit, neural = made.render_circuit(x), made.render_model(x, MODEL)
    esr = np.sum((circuit - neural) ** 2) / np.sum(circuit ** 2)
    assert esr < 0.01, esr
    levels = np.arange(-40.0, 1.0, 4.0)
    gains_circuit = made.static_curve(made.render_circuit, levels)
    gains_model = made.static_curve(lambda v: made.render_model(v, MODEL), levels)
    assert np.max(np.abs(gains_circuit - gains_model)) < 1.0     # dB, the static curve
    assert gains_circuit[-1] < -12 and gains_model[-1] < -12      # it does compress


def test_the_factory_preset_plays_the_model_as_the_ground_truth_live(capsys, model):
    preset = presets.load(store.resolve("sptmod-compressor"))
    assert Path(preset.spec.model).resolve() == MODEL.resolve()
    assert preset.spec.model_sha256 == model.sha256 and preset.spec.target == "y = sptmod"
    from app.cli.main import main
    rc = main(["run", "--headless", "--seconds", "4", "--device", "virtual", "--quiet", "--preset",
               "sptmod-compressor"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["sptmod"]["sha256"] == model.sha256 and res["sptmod"]["restarts"] == 0
    assert res["nonfinite_out"] == 0 and res["skipped"] == 0
    # the learnable compressor moves from its initial threshold (-6 dB) towards the capture's -20
    assert res["params"]["threshold"] < -12
