"""The Dualtone SPTMod model file (engine/sptmod/file.py): importing the upstream golden files,
round trips, hashes, atomic saving, and hostile files refused with ModelError."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine.sptmod.file import (FORMAT, HEADER_KEY, IMPORTED, MAX_PARAMETERS, VERSION, ModelError,
                                SptModel, load_model, model_hash, save_model, weights_sha256)
from tests.paths import REPO

ROOT = REPO
GOLDEN_NAMES = ("golden_SPTMod24_p0.npz", "golden_SPTMod25_p7.npz")


def golden_dir() -> Path:
    """The reference golden files: an unedited copy in tests/reference/sptmod (their hashes are
    checked by tests/engine/test_reference_data.py)."""
    return ROOT / "tests" / "reference" / "sptmod"


@pytest.fixture(scope="module", params=GOLDEN_NAMES)
def golden(request):
    path = golden_dir() / request.param
    return path, load_model(path)


@pytest.fixture(scope="module")
def small():
    """An imported SPTMod25 model with controls (the smaller of the two)."""
    return load_model(golden_dir() / "golden_SPTMod25_p7.npz")


def write_raw(path, header=None, weights=None, extra=None):
    """A model file written without save_model's checks (for hostile cases)."""
    arrays = {}
    if header is not None:
        arrays[HEADER_KEY] = np.array(json.dumps(header))
    for k, v in (weights or {}).items():
        arrays["w/" + k] = v
    arrays.update(extra or {})
    np.savez(path, **arrays)
    return path


def header_of(model, weights=None, **changes):
    h = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
         "sample_rate": model.sample_rate, "controls": model.controls, "provenance": {"test": True},
         "weights_sha256": weights_sha256(model.weights if weights is None else weights)}
    h.update(changes)
    return h


def problems_of(path) -> str:
    with pytest.raises(ModelError) as e:
        load_model(path)
    assert str(e.value).startswith(f"{path}: ")
    assert e.value.problems
    return str(e.value)


# --------------------------------------------------------------------------- import and round trip

def test_golden_import(golden):
    path, m = golden
    with np.load(path, allow_pickle=False) as z:
        upstream = json.loads(str(z["config"]))
        p = z["p"]
        for name, w in m.weights.items():
            assert w.dtype == np.float64 and np.array_equal(w, z["w/" + name])
    assert set(m.weights) == set(m.config.weight_shapes())
    assert m.config.n_params == upstream["n_params"] == p.size
    assert [c["name"] for c in m.controls] == [f"p{i}" for i in range(p.size)]
    assert [c["default"] for c in m.controls] == [float(v) for v in p]
    assert all(c["min"] == 0.0 and c["max"] == 1.0 for c in m.controls)
    assert m.provenance["source"] == IMPORTED
    assert m.provenance["file_sha256"] == model_hash(path)
    n = sum(w.size for w in m.weights.values())
    assert n == {0: 51060, 7: 38598}[p.size]           # the reference's real-time parameter counts


def test_round_trip_is_exact_and_hashes_are_stable(golden, tmp_path):
    _, m = golden
    a = save_model(m, tmp_path / "a.npz")
    back = load_model(a)
    assert back.config.to_dict() == m.config.to_dict()
    assert back.sample_rate == m.sample_rate
    assert back.controls == m.controls
    assert back.provenance == json.loads(json.dumps(m.provenance))
    assert set(back.weights) == set(m.weights)
    for k in m.weights:
        assert back.weights[k].tobytes() == m.weights[k].tobytes()      # bit-exact
    assert back.sha256 == m.sha256
    b = save_model(back, tmp_path / "b.npz")
    assert model_hash(a) == model_hash(b)              # deterministic bytes
    with zipfile.ZipFile(a) as zf:                    # a plain npz: only .npy members, no pickle
        assert all(n.endswith(".npy") for n in zf.namelist())
    with np.load(a, allow_pickle=False) as z:
        header = json.loads(str(z[HEADER_KEY]))
        assert header["format"] == FORMAT and header["version"] == VERSION
        assert header["weights_sha256"] == weights_sha256(m.weights)


def test_identity_ignores_provenance_but_not_weights(small):
    other = SptModel(small.config, dict(small.weights), small.sample_rate, small.controls,
                     {"trainer": "someone else"})
    assert other.sha256 == small.sha256
    w = dict(small.weights)
    k = sorted(w)[0]
    w[k] = w[k].copy()
    w[k].flat[0] = np.nextafter(w[k].flat[0], np.inf)
    assert SptModel(small.config, w, small.sample_rate, small.controls).sha256 != small.sha256


# --------------------------------------------------------------------------- saving

def test_save_refuses_to_overwrite(small, tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        save_model(small, path)
    assert path.read_bytes() == b"precious"
    save_model(small, path, overwrite=True)
    assert load_model(path).sha256 == small.sha256


def test_save_is_atomic(small, tmp_path, monkeypatch):
    path = save_model(small, tmp_path / "m.npz")
    before = path.read_bytes()
    import engine.sptmod.file as mf

    def broken(f, members):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(mf, "_write_zip", broken)
    with pytest.raises(OSError):
        save_model(small, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]      # no temporary file left behind


def test_save_refuses_an_invalid_model(small, tmp_path):
    w = dict(small.weights)
    k = sorted(w)[0]
    w[k] = np.full_like(w[k], np.nan)
    with pytest.raises(ModelError, match="non-finite"):
        save_model(SptModel(small.config, w, small.sample_rate, small.controls), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# --------------------------------------------------------------------------- hostile files

def test_tampered_weight_fails_the_hash(small, tmp_path):
    w = dict(small.weights)
    k = sorted(w)[-1]
    w[k] = w[k].copy()
    w[k].flat[-1] += 1e-3
    path = write_raw(tmp_path / "t.npz", header_of(small), w)       # the hash of the original
    assert "do not match weights_sha256" in problems_of(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    assert "not an .npz/zip archive" in problems_of(path)


def test_missing_file_and_folder(tmp_path):
    assert "no such file" in problems_of(tmp_path / "nothing.npz")
    assert "not a file" in problems_of(tmp_path)


def test_pickled_object_array(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, dualtone_model=np.array([{"format": FORMAT}], dtype=object))
    assert "pickled object array" in problems_of(path)


def test_not_a_model(tmp_path):
    path = tmp_path / "n.npz"
    np.savez(path, x=np.zeros(3))
    assert "neither a Dualtone model" in problems_of(path)


def test_missing_and_extra_header_keys(small, tmp_path):
    h = header_of(small)
    del h["controls"], h["sample_rate"]
    h["colour"] = "blue"
    msg = problems_of(write_raw(tmp_path / "h.npz", h, small.weights))
    assert "missing sample_rate, controls" in msg and "unexpected colour" in msg


def test_wrong_format_and_version(small, tmp_path):
    msg = problems_of(write_raw(tmp_path / "v.npz", header_of(small, format="other", version=2),
                                small.weights))
    assert "format 'other'" in msg and "version 2 is not supported" in msg


def test_extra_member(small, tmp_path):
    path = write_raw(tmp_path / "e.npz", header_of(small), small.weights, {"x": np.zeros(2)})
    assert "unexpected members: x" in problems_of(path)


def test_missing_weight(small, tmp_path):
    w = dict(small.weights)
    gone = sorted(w)[3]
    del w[gone]
    msg = problems_of(write_raw(tmp_path / "m.npz", header_of(small, w), w))
    assert f"missing weights: {gone}" in msg


def test_unexpected_weight(small, tmp_path):
    w = dict(small.weights, **{"spnet.convs.0.bias": np.zeros(16)})
    msg = problems_of(write_raw(tmp_path / "u.npz", header_of(small, w), w))
    assert "unexpected weights: spnet.convs.0.bias" in msg


def test_nan_weight(small, tmp_path):
    w = dict(small.weights)
    k = sorted(w)[5]
    w[k] = w[k].copy()
    w[k].flat[0] = np.nan
    msg = problems_of(write_raw(tmp_path / "nan.npz", header_of(small, w), w))
    assert f"weight {k}: 1 non-finite value" in msg


def test_wrong_shape(small, tmp_path):
    w = dict(small.weights)
    k = "s_convs.0.conv.weight"
    w[k] = w[k][:, :, :2].copy()
    msg = problems_of(write_raw(tmp_path / "s.npz", header_of(small, w), w))
    assert f"weight {k}: shape (15, 1, 2), expected (15, 1, 3)" in msg


def test_float32_weight_in_a_dualtone_file(small, tmp_path):
    w = {k: (v.astype(np.float32) if k == "s_acts.0.weight" else v) for k, v in small.weights.items()}
    msg = problems_of(write_raw(tmp_path / "f.npz", header_of(small), w))
    assert "weight s_acts.0.weight: dtype float32, expected float64" in msg


def test_huge_declared_config(small, tmp_path):
    d = small.config.to_dict()
    d["channels"] = [4000] * len(d["channels"])
    msg = problems_of(write_raw(tmp_path / "huge.npz", header_of(small, config=d), small.weights))
    assert f"config: it declares 147,874,128 parameters, above the cap of {MAX_PARAMETERS:,}" in msg


@pytest.mark.parametrize("change, words", [({"pool": 10 ** 9}, "pool 1,000,000,000 is above the cap"),
                                            ({"dilations": [10 ** 8] * 4}, "samples of history")])
def test_absurd_frame_or_history(small, tmp_path, change, words):
    d = dict(small.config.to_dict(), **change)
    assert words in problems_of(write_raw(tmp_path / "a.npz", header_of(small, config=d), small.weights))


def test_config_that_fails_validation(small, tmp_path):
    d = small.config.to_dict()
    d["channels"] = d["channels"][:-1]                 # lists of different lengths
    assert "config" in problems_of(write_raw(tmp_path / "c.npz", header_of(small, config=d), small.weights))
    assert "config" in problems_of(write_raw(tmp_path / "c2.npz", header_of(small, config=[1, 2]),
                                             small.weights))


def test_wrong_control_list(small, tmp_path):
    c = [dict(x) for x in small.controls]
    msg = problems_of(write_raw(tmp_path / "c.npz", header_of(small, controls=c[:-1]), small.weights))
    assert "the config has 7 controls but the list has 6" in msg
    c[0]["default"] = 2.0
    c[1]["name"] = c[2]["name"]
    c[3]["min"] = float("nan")
    del c[4]["max"]
    h = header_of(small, controls=c)
    path = tmp_path / "c2.npz"
    np.savez(path, **{HEADER_KEY: np.array(json.dumps(h))},
             **{"w/" + k: v for k, v in small.weights.items()})
    msg = problems_of(path)
    for words in ("controls[0]: default 2 is outside [0, 1]", "controls[2]: the name 'p2' is used twice",
                  "controls[3]: min, max and default must be finite", "controls[4]: missing max"):
        assert words in msg


def test_non_finite_sample_rate(small, tmp_path):
    path = tmp_path / "sr.npz"
    h = json.dumps(header_of(small, sample_rate=float("inf")))           # JSON "Infinity"
    np.savez(path, **{HEADER_KEY: np.array(h)}, **{"w/" + k: v for k, v in small.weights.items()})
    assert "sample_rate: inf is not a finite number" in problems_of(path)
    path2 = write_raw(tmp_path / "sr2.npz", header_of(small, sample_rate=-48000), small.weights)
    assert "sample_rate: -48000 Hz is outside" in problems_of(path2)


def test_header_is_not_json(small, tmp_path):
    path = tmp_path / "j.npz"
    np.savez(path, **{HEADER_KEY: np.array("{not json")})
    assert "not valid JSON" in problems_of(path)
    np.savez(path, **{HEADER_KEY: np.zeros(3)})
    assert "expected a JSON string" in problems_of(path)


def test_damaged_archive(small, tmp_path):
    path = save_model(small, tmp_path / "d.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    problems_of(path)                                  # a ModelError, whatever the damage


def test_huge_file_is_refused_before_reading(tmp_path, monkeypatch):
    import engine.sptmod.file as mf
    monkeypatch.setattr(mf, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros(1000))
    assert "above the cap of 1,000" in problems_of(path)


def test_upstream_file_with_wrong_p(small, tmp_path):
    src = golden_dir() / "golden_SPTMod25_p7.npz"
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["p"] = np.zeros(3)
    path = tmp_path / "up.npz"
    np.savez(path, **arrays)
    assert "p: expected 7 control values" in problems_of(path)
    arrays["p"] = np.zeros(7)
    arrays["w/something.else"] = np.zeros(2)
    np.savez(path, **arrays)
    assert "weights the inference path does not know: something.else" in problems_of(path)
    del arrays["w/something.else"]
    arrays["w/s_tfilms.1.upsample.convt.weight"] = arrays["w/s_tfilms.1.upsample.convt.weight"] * 0.5
    np.savez(path, **arrays)
    assert "s_tfilms.1.upsample.convt.weight is not the linear interpolation kernel" in problems_of(path)
