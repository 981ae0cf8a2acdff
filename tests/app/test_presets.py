"""Presets on disk (app/preset/document.py): round trips, atomic saves, hostile files, migration, the
config directory, and that every factory preset loads and actually learns."""
import copy
import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.learn.banks import Banks
from hypothesis import HealthCheck, given, settings, strategies as st

from app.preset import document as presets

from app.preset import store
from app.preset.document import Preset, PresetError
from app.session import CircuitSpec
from engine.learn.learner import Learner, ParamSpec, Settings
from engine.sources import LcgNoise
from tests.difflib_cases import CASES
from tests.paths import DATA, REFERENCE

DATA = DATA
SR = 48000


def rich_preset() -> Preset:
    """Every field away from its default: infinities, a log scale, a separate target with a
    target-only parameter, MIDI, banks and an SPTMod reference."""
    spec = CircuitSpec(
        "c = exp(-2*pi*cutoff/SR)\ny = level*((1 - c)*x + c*y@1)",
        [ParamSpec("cutoff", 1000.0, 20.0, 20000.0, log=True), ParamSpec("level", 0.5)],
        target="y = level*tanh(drive*x)",
        hidden={"level": 0.7, "drive": 3.0},
        settings=Settings(loss="huber", huber_delta=0.5, window=4, optimizer="adam", lr=0.02,
                          c1=0.8, c2=0.99, eps=1e-9, clip=10.0, lr_decay=0.9, lr_decay_every=480,
                          lr_min=1e-4, range_mode="straight-through", learning=False),
        hidden_params=[ParamSpec("drive", 1.0, 0.1, 50.0, log=True)],
        banks=Banks([-60.0, -30.0, 0.0], condition="level", mode="exact", hysteresis=1.5,
                    crossfade_ms=5.0, attack_ms=2.0, release_ms=80.0))
    return Preset(name="rich", description="Line one.\nLine two: ünïcode ♪.", spec=spec,
                  learned={"cutoff": 1234.5, "level": -3.25}, source="file", source_hz=110.0,
                  source_file="/tmp/some file.wav", output="error",
                  midi={74: "hidden:drive", 1: "lr", 7: "master", 20: "source_hz"},
                  banks=presets.banks_to_json(spec.banks, [{"cutoff": 100.0, "level": 0.25},
                                                           {"cutoff": 2000.0, "level": -1.5}]))


def good_doc() -> dict:
    return presets.to_json(presets.load(store.resolve("gain+dc")))


def problems_of(doc_or_text) -> list[str]:
    with pytest.raises(PresetError) as e:
        if isinstance(doc_or_text, (str, bytes)):
            presets.loads(doc_or_text)
        else:
            presets.parse_document(doc_or_text)
    err = e.value
    assert str(err) == f"{err.origin}: " + "; ".join(err.problems)
    return err.problems


def one_problem(doc_or_text, pattern: str) -> str:
    probs = problems_of(doc_or_text)
    hits = [p for p in probs if re.search(pattern, p)]
    assert hits, f"no problem matching {pattern!r} in {probs}"
    return hits[0]


# ------------------------------------------------------------------ round trips

def test_round_trip_every_field(tmp_path):
    p = rich_preset()
    doc = presets.to_json(p)
    json.dumps(doc, allow_nan=False)                      # pure JSON
    assert doc["params"][1]["min"] is None and doc["params"][1]["max"] is None
    assert doc["params"][0]["scale"] == "log"
    assert doc["midi"]["mappings"]["74"] == "hidden:drive"
    out = presets.save(p, tmp_path / "rich.json")
    assert out == tmp_path / "rich.json"
    back = presets.load(out)
    assert back == p
    assert back.spec.params[1].lo == -math.inf and back.spec.params[1].hi == math.inf
    assert back.spec.hidden_params[0].log
    assert presets.parse_document(presets.to_json(back)) == p


def test_minimal_document_gets_defaults():
    p = presets.parse_document({"format": "dualtone-preset", "version": 2, "name": "n",
                                "circuit": "y = g*x", "params": [{"name": "g"}]})
    assert p.spec.params == [ParamSpec("g", 0.0)]
    assert p.spec.settings == Settings() and p.learned == {} and p.midi == {}
    assert (p.source, p.source_hz, p.source_file, p.output) == ("lcg-noise", 220.0, None, "stereo")
    assert p.banks is None and p.sptmod is None and p.description == "" and p.spec.target is None


def test_target_only_parameter_takes_its_declared_value():
    doc = presets.to_json(rich_preset())
    del doc["hidden"]["drive"]
    assert presets.parse_document(doc).spec.hidden["drive"] == 1.0


# ------------------------------------------------------------------ atomic save

def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "p.json"
    presets.save(rich_preset(), path)
    before = path.read_bytes()
    other = dataclasses.replace(rich_preset(), description="changed")
    with pytest.raises(FileExistsError):
        presets.save(other, path)
    assert path.read_bytes() == before
    presets.save(other, path, overwrite=True)
    assert presets.load(path).description == "changed"
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


@pytest.mark.parametrize("broken", ["replace", "fsync", "write"])
def test_failed_save_leaves_the_old_file(tmp_path, monkeypatch, broken):
    path = tmp_path / "p.json"
    presets.save(rich_preset(), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    if broken == "write":
        real_fdopen = os.fdopen

        class Failing:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[:10])             # a partial write, then the disk is full
                boom()
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Failing(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(os, broken, boom)
    with pytest.raises(OSError):
        presets.save(dataclasses.replace(rich_preset(), description="new"), path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["p.json"]


def test_failed_save_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        presets.save(rich_preset(), tmp_path / "new.json")
    assert os.listdir(tmp_path) == []


def test_invalid_preset_is_not_written(tmp_path):
    bad = dataclasses.replace(rich_preset(), output="loud")
    with pytest.raises(PresetError, match="output must be one of"):
        presets.save(bad, tmp_path / "bad.json")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ bad input

def test_corrupt_json():
    assert re.match(r"not valid JSON \(line 1, column \d+\): ", one_problem('{"format": ', "JSON"))
    one_problem(b"\xff\xfe{}", "not UTF-8")
    one_problem("[1, 2]", "must be a JSON object, got a list")
    one_problem('{"a": 1}', "not a Dualtone preset")


def test_every_prefix_of_a_file_fails_cleanly():
    text = store.resolve("gain+dc").read_text(encoding="utf-8")
    for n in range(len(text.rstrip())):
        with pytest.raises(PresetError):
            presets.loads(text[:n])
    assert presets.loads(text).name == "gain+dc"


def test_newer_version():
    doc = good_doc()
    doc["version"] = 3
    assert problems_of(doc) == ["this preset was saved by a newer Dualtone (schema version 3; "
                                "this one reads up to 2)"]
    doc["version"] = "2"
    one_problem(doc, r"version must be a whole number, got '2'")
    doc["version"] = 0
    one_problem(doc, "unknown schema version 0")
    doc["version"], doc["format"] = 2, "something-else"
    one_problem(doc, "format must be 'dualtone-preset'")


@pytest.mark.parametrize("path, value, pattern", [
    (("name",), 5, r"^name must be text, got 5"),
    (("name",), "", r"^name must be a non-empty line"),
    (("description",), "x" * 5001, r"^description is longer than 5000"),
    (("circuit",), None, r"^circuit must be text, got null"),
    (("circuit",), "y = x*" * 4000, r"^circuit is longer than 20000"),
    (("params",), "gain=0", r"^params must be a list"),
    (("params", 1), [], r"^params\[1\] must be an object"),
    (("params", 1, "name"), "1dc", r"^params\[1\]: the name must be an identifier"),
    (("params", 1, "min"), "abc", r"^params\[1\] 'dc': the minimum must be a number, got 'abc'$"),
    (("params", 1, "init"), True, r"^params\[1\] 'dc': the initial value must be a number, got true"),
    (("params", 1, "init"), 5.0, r"^params\[1\] 'dc': the initial value 5 is outside the range \[-1, 1\]"),
    (("params", 1, "scale"), "log", r"^params\[1\] 'dc': a log scale needs a minimum above 0"),
    (("params", 1, "scale"), "cubic", r"^params\[1\] 'dc': the scale must be 'linear' or 'log'"),
    (("params", 1, "max"), -2.0, r"^params\[1\] 'dc': the minimum -1 is above the maximum -2"),
    (("params", 1, "colour"), "red", r"^params\[1\] 'dc': unknown field 'colour'"),
    (("hidden",), [], r"^hidden must be an object"),
    (("hidden", "gain"), "0.5", r"^hidden 'gain' must be a number, got '0.5'"),
    (("hidden", "nope"), 1.0, r"^hidden 'nope': the target has no parameter named 'nope'"),
    (("learned", "gain"), 3.0, r"^learned 'gain': 3 is outside the range \[-1, 2\]"),
    (("learned", "drive"), 0.0, r"^learned 'drive': not a learnable parameter"),
    (("settings",), 3, r"^settings must be an object, got 3"),
    (("settings", "window"), "32", r"^settings: window must be a whole number, got '32'"),
    (("settings", "window"), 32.0, r"^settings: window must be a whole number, got 32.0"),
    (("settings", "window"), 0, r"^settings: the window must be a whole number of samples from 1"),
    (("settings", "lr"), -1, r"^settings: the learning rate must be a finite number > 0, got -1"),
    (("settings", "loss"), "l3", r"^settings: unknown loss 'l3'; choose one of mse"),
    (("settings", "learning"), 1, r"^settings: learning must be true or false, got 1"),
    (("settings", "c1"), 1.5, r"^settings: momentum/rho/beta1 must be in \[0, 1\)"),
    (("settings", "speed"), 1, r"^settings: unknown field 'speed'"),
    (("audio", "source"), "radio", r"^audio: the source must be one of input, lcg-noise"),
    (("audio", "source"), "file", r"^audio: the source 'file' needs a source_file"),
    (("audio", "source"), ["saw"], r"^audio: the source must be one of"),
    (("audio", "source_hz"), 0, r"^audio: source_hz must be above 0 and below 24000 Hz"),
    (("audio", "source_hz"), 30000, r"^audio: source_hz must be above 0 and below 24000 Hz"),
    (("audio", "output"), "loud", r"^audio: the output must be one of target, learned"),
    (("midi",), [], r"^midi must be an object"),
    (("midi", "mappings", "300"), "lr", r"^midi: the CC number must be 0 to 119, got '300'"),
    (("midi", "mappings", "x"), "lr", r"^midi: the CC number must be 0 to 119, got 'x'"),
    (("midi", "mappings", "1"), "hidden:drive", r"^midi: CC 1: 'hidden:drive' is not a knob"),
    (("midi", "mappings", "1"), "loudness", r"^midi: CC 1: 'loudness' is not a knob"),   # volume is one
    (("midi", "mappings", "1"), "hidden:gain", r"^midi: the knob 'hidden:gain' is mapped to more than one CC"),
    (("banks",), [1, 2], r"^banks must be an object or null, got a list"),
    (("banks",), {"x": "y" * 100_001}, r"^banks: larger than 100000 bytes"),
    (("sptmod",), {"model": "m.npz", "sha256": "abc"}, r"^sptmod: sha256 must be 64 hexadecimal digits"),
    (("sptmod",), {"model": 3, "sha256": "0" * 64}, r"^sptmod: model must be a file path, got 3"),
    (("sptmod",), {"model": "m", "sha256": "0" * 64, "x": 1}, r"^sptmod: unknown field 'x'"),
    (("extra",), 1, r"^unknown field 'extra'$"),
])
def test_wrong_fields(path, value, pattern):
    doc = good_doc()
    doc["midi"]["mappings"] = {"74": "hidden:gain"}
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    one_problem(doc, pattern)


def test_nan_infinity_and_overflow_literals():
    text = store.resolve("gain+dc").read_text(encoding="utf-8")
    for literal, shown in [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf"), ("1e400", "inf")]:
        bad = text.replace('"init": 0.0', f'"init": {literal}', 1)
        assert one_problem(bad, "initial value") == \
            f"params[0] 'gain': the initial value must be a finite number, got {shown}"
    bad = text.replace('"gain": 0.5', '"gain": 1' + "0" * 400, 1)
    one_problem(bad, r"hidden 'gain' must be a finite number, got a huge integer")
    bad = text.replace('"gain": 0.5', '"gain": 1' + "0" * 5000, 1)
    one_problem(bad, r"not valid JSON")


def test_huge_inputs():
    doc = good_doc()
    doc["params"] = [{"name": "p", "init": 0}] * 100_000
    assert one_problem(doc, "params") == "params has 100000 entries; at most 64 parameters are allowed"
    one_problem(" " * (presets.MAX_BYTES + 1), "larger than 1000000 bytes")
    many = good_doc()
    many.update({f"junk{k}": k for k in range(1000)})
    probs = problems_of(many)
    assert len(probs) == presets.MAX_PROBLEMS + 1 and probs[-1] == "... and 950 more problems"


def test_deep_nesting():
    text = store.resolve("gain+dc").read_text(encoding="utf-8")
    deep = text.replace('"banks": null', '"banks": {"a": ' + "[" * 200_000 + "]" * 200_000 + "}")
    problems_of(deep)
    one_problem('{"format": "dualtone-preset", "version": 2, "banks": ' + "{\"a\": " * 100_000 + "1"
                + "}" * 100_000 + "}", "nested too deeply|larger than")
    doc, node = good_doc(), {}
    doc["banks"] = node
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    one_problem(doc, "nested too deeply")


@pytest.mark.parametrize("circuit, pattern", [
    ("y = __import__('os').system('x')", r"^circuit line 1, col 5: only the listed functions can be called"),
    ("y = x.real", r"^circuit line 1, col 5: attributes \(a.b\) are not part of the circuit language"),
    ("y = gain*x + dc\nz = (lambda: 1)()", r"^circuit line 2, col \d+: "),
    ("import os", r"^circuit line 1, col 1: imports are not allowed"),
    ("y = x\x00", r"^circuit line 1, col 1: syntax error"),
    ("y = x + \ud800", r"^circuit contains characters that cannot be stored"),
    ("y = gain*x + dc + gian", r"^circuit line 1, col 19: 'gian' is a parameter but has no declaration"),
    ("y = gain*x\nz = dc*x", r"^params 'gain': does not affect the output"),
    ("y = gain*x", r"^params 'dc': the circuit has no parameter named 'dc'"),
])
def test_bad_circuits(circuit, pattern):
    doc = good_doc()
    doc["circuit"] = circuit
    one_problem(doc, pattern)


def test_target_problems():
    doc = good_doc()
    doc["target"] = "y = gain*x + dc + wobble"
    one_problem(doc, r"^target: its parameter 'wobble' needs a hidden value or a declaration")
    doc["target"] = "y = x.imag"
    one_problem(doc, r"^target line 1, col 5: attributes")
    doc["target"] = "y = gain*x + dc"
    doc["target_params"] = [{"name": "gain"}, {"name": "zz", "init": 1}]
    probs = problems_of(doc)
    assert "target_params 'gain': is a learnable parameter; declare it in params only" in probs
    assert "target_params 'zz': the target has no parameter named 'zz'" in probs


def test_several_problems_are_all_listed():
    doc = good_doc()
    doc["name"] = 7
    doc["params"][0]["min"] = "abc"
    doc["hidden"]["dc"] = math.nan
    doc["settings"]["optimizer"] = "newton"
    doc["audio"]["output"] = "loud"
    doc["midi"]["mappings"] = {"500": "lr"}
    doc["sptmod"] = {"model": "m", "sha256": "z"}
    doc["color"] = "red"
    probs = problems_of(doc)
    for pattern in ["^unknown field 'color'", "^name must be text", "params\\[0\\] 'gain': the minimum",
                    "^hidden 'dc' must be a finite number, got nan", "unknown optimizer 'newton'",
                    "^audio: the output", "^midi: the CC number", "^sptmod: sha256"]:
        assert any(re.search(pattern, p) for p in probs), (pattern, probs)
    assert len(probs) == 8


def test_straight_through_may_start_outside_the_range():
    doc = presets.to_json(presets.load(store.resolve("dcsq")))
    assert doc["params"][0]["init"] < doc["params"][0]["min"]
    doc["settings"]["range_mode"] = "project"
    one_problem(doc, r"^params\[0\] 'dc': the initial value 0 is outside the range")


# ------------------------------------------------------------------ fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.just(10 ** 400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(blacklist_categories=()), max_size=30),       # surrogates too
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


FUZZ_BASES = [presets.to_json(presets.load(store.resolve(n))) for n in ("gain+dc", "ring-mod", "biquad")]
FUZZ_BASES.append(presets.to_json(rich_preset()))
FUZZ_PATHS = [(b, p) for b in range(len(FUZZ_BASES)) for p in _paths(FUZZ_BASES[b]) if p]


def _loads_or_preset_error(doc):
    try:
        assert isinstance(presets.parse_document(doc), Preset)
    except PresetError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_arbitrary_json(value):
    _loads_or_preset_error(value)
    _loads_or_preset_error({"format": "dualtone-preset", "version": 2, "x": value})


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FUZZ_PATHS), json_values, st.booleans())
def test_fuzz_mutations(where, value, delete):
    base, path = where
    doc = copy.deepcopy(FUZZ_BASES[base])
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    _loads_or_preset_error(doc)
    # and as text, the way a file arrives (json.dumps writes NaN/Infinity literals)
    try:
        text = json.dumps(doc)
    except (ValueError, TypeError):
        return
    try:
        presets.loads(text)
    except PresetError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_text(text):
    try:
        presets.loads(text)
    except PresetError:
        pass


# ------------------------------------------------------------------ migration

def test_migration_v1_to_v2():
    path = DATA / "preset_v1_gain_dc.json"
    v1 = json.loads(path.read_text(encoding="utf-8"))
    doc = presets.migrate(v1)
    assert doc["format"] == "dualtone-preset" and doc["version"] == 2 and "schema" not in doc
    assert doc["settings"] == {"loss": "mse", "window": 32, "optimizer": "sgd", "lr": 0.01}
    assert doc["params"] == [{"name": "gain", "init": 0.0, "min": -1.0, "max": 2.0},
                             {"name": "dc", "init": 0.0}]
    v2 = {"format": "dualtone-preset", "version": 2, "name": "gain+dc",
          "description": "A gain and an offset, saved by a Dualtone that wrote schema version 1.",
          "circuit": "y = gain*x + dc", "target": None,
          "params": [{"name": "gain", "init": 0.0, "min": -1.0, "max": 2.0, "scale": "linear"},
                     {"name": "dc", "init": 0.0, "min": None, "max": None, "scale": "linear"}],
          "hidden": {"gain": 0.5, "dc": 0.5}, "learned": {"gain": 0.25, "dc": 0.125},
          "settings": {"loss": "mse", "window": 32, "optimizer": "sgd", "lr": 0.01},
          "audio": {"source": "lcg-noise", "source_hz": 220.0, "source_file": None, "output": "stereo"},
          "midi": {"mappings": {}}, "banks": None, "sptmod": None}
    assert presets.load(path) == presets.parse_document(v2)
    assert presets.migrate(v2) == v2                     # the current version passes unchanged


def test_migration_reports_bad_v1_fields():
    v1 = json.loads((DATA / "preset_v1_gain_dc.json").read_text(encoding="utf-8"))
    v1["params"] = ["gain=0:abc:2", "dc"]
    v1["learning_rate"] = "fast"
    probs = problems_of(v1)
    assert "params[0] 'gain': the minimum must be a number, got 'abc'" in probs
    assert any(p.startswith("params[1] must be an object") and "'dc'" in p for p in probs)
    assert any(p.startswith("settings: lr must be a number, got 'fast'") for p in probs)
    v1["schema"] = 2                                     # never existed without "format"
    one_problem(v1, "not a Dualtone preset")


# ------------------------------------------------------------------ finding presets, config

def test_resolve(tmp_path):
    factory = store.factory_presets()
    assert list(factory) == sorted(factory)
    assert store.resolve("gain+dc") == store.FACTORY_DIR / "gain+dc.json"
    mine = presets.save(rich_preset(), tmp_path / "gain+dc")
    assert store.resolve(str(mine)) == mine
    with pytest.raises(PresetError) as e:
        store.resolve("no-such-preset")
    assert e.value.origin == "no-such-preset"
    assert "factory presets: " + ", ".join(factory) in e.value.problems[0]


def test_load_missing_or_unreadable(tmp_path):
    with pytest.raises(PresetError, match="no such file"):
        presets.load(tmp_path / "absent.json")
    with pytest.raises(PresetError, match="not a file"):
        presets.load(tmp_path)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (presets.MAX_BYTES + 10))
    with pytest.raises(PresetError, match="larger than"):
        presets.load(big)


def test_config_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("DUALTONE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert store.config_dir() == tmp_path / "home" / ".config" / "dualtone"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert store.config_dir() == tmp_path / "xdg" / "dualtone"
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path / "own"))
    assert store.config_dir() == tmp_path / "own" and (tmp_path / "own").is_dir()


def test_recent(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert store.recent() == []
    files = [presets.save(rich_preset(), tmp_path / f"p{k}.json") for k in range(12)]
    for f in files:
        store.add_recent(f)
    store.add_recent(files[3])                         # again: moves to the front
    expect = [str(files[3])] + [str(f) for f in reversed(files[4:])] + [str(files[2])]
    assert store.recent() == expect[:10]
    files[11].unlink()
    assert str(files[11]) not in store.recent()
    (tmp_path / "cfg" / "recent.json").write_text("{corrupt", encoding="utf-8")
    assert store.recent() == []
    (tmp_path / "cfg" / "recent.json").write_text('{"a": 1}', encoding="utf-8")
    assert store.recent() == []
    store.add_recent(files[0])
    assert store.recent() == [str(files[0])]


def test_autosave(tmp_path, monkeypatch):
    cfg = tmp_path / "cfg"
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", str(cfg))
    assert store.read_autosave() is None
    store.write_autosave(rich_preset())
    assert store.autosave_path() == cfg / "autosave.json"
    assert store.read_autosave() == rich_preset()
    store.write_autosave(dataclasses.replace(rich_preset(), name="second"))   # overwrites
    assert store.read_autosave().name == "second"
    broken = b'{"format": "dualtone-preset", "version": 2, "name": "half'
    (cfg / "autosave.json").write_bytes(broken)
    assert store.read_autosave() is None
    kept = [p for p in cfg.iterdir() if p.name.startswith("autosave.corrupt-")]
    assert len(kept) == 1 and re.fullmatch(r"autosave\.corrupt-\d+\.json", kept[0].name)
    assert kept[0].read_bytes() == broken and not (cfg / "autosave.json").exists()


# ------------------------------------------------------------------ factory presets

MUSICAL = ["tanh-drive", "one-pole-lowpass", "biquad", "delay", "ring-mod", "waveshaper", "compressor"]


def test_factory_presets_are_canonical():
    factory = store.factory_presets()
    assert len(factory) >= 10 and set(CASES) | set(MUSICAL) <= set(factory)
    for name, path in factory.items():
        p = presets.load(path)
        assert p.name == name
        sentences = len(re.findall(r"[.!?](\s|$)", p.description))
        assert sentences in (1, 2, 3), (name, sentences)
        differ = [p.spec.hidden[sp.name] != sp.init for sp in p.spec.params if sp.name in p.spec.hidden]
        assert any(differ) or p.spec.target is not None, name   # something to learn ...
        assert all(differ) or name in CASES, name                # (fir's reference has b0 = 0)
        # the file is exactly what save() writes, so saving a factory preset changes nothing
        assert path.read_text(encoding="utf-8") == presets.dumps(p, str(path))


def _reference(name):
    """The declarations and settings of a diff.lib reference run, from its command line."""
    args, params, hidden, s = CASES[name]["args"], [], {}, {}
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "--param":
            pname, _, rest = value.partition("=")
            parts = rest.split(":") + ["", ""]
            bound = lambda t, d: float(t) if t else d     # noqa: E731
            params.append(ParamSpec(pname, float(parts[0]), bound(parts[1], -math.inf),
                                    bound(parts[2], math.inf)))
        elif flag == "--hidden":
            hname, _, v = value.partition("=")
            hidden[hname] = float(v)
        else:
            s[flag[2:].replace("-", "_")] = value
    return args[1], params, hidden, s


@pytest.mark.parametrize("name", list(CASES))
def test_reference_presets_learn_exactly_like_difflib(name):
    circuit, params, hidden, s = _reference(name)
    p = presets.load(store.resolve(name))
    assert p.spec.circuit == circuit and p.spec.target is None and p.spec.hidden == hidden
    assert [(q.name, q.init) for q in p.spec.params] == [(q.name, q.init) for q in params]
    st_ = p.spec.settings
    assert (st_.loss, st_.window, st_.optimizer, st_.lr, st_.range_mode) == \
        (s["loss"], int(s["window"]), s["optimizer"], float(s["lr"]), s.get("range_mode", "project"))
    assert all(math.isfinite(q.lo) and math.isfinite(q.hi) for q in p.spec.params)
    # the slider ranges never clip the learning path: the same run, sample for sample
    x = LcgNoise().read(SR)
    runs = []
    for decl in (params, p.spec.params):
        learner = Learner(circuit, decl, hidden=hidden, settings=st_)
        out, trace = learner.process(x, trace_every=1)
        runs.append((out.copy(), trace.copy()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def _source(p: Preset, n: int) -> np.ndarray:
    if p.source == "lcg-noise":
        return LcgNoise().read(n)
    if p.source == "noise":                     # uniform white noise in [-1, 1), as the host's
        return np.random.default_rng(0).uniform(-1.0, 1.0, n)
    phase = (np.arange(n) * p.source_hz / SR) % 1.0
    if p.source == "sine":
        return np.sin(2 * np.pi * phase)
    if p.source == "saw":
        return 2.0 * phase - 1.0
    raise AssertionError(f"no offline stand-in for the source {p.source!r}")


@pytest.mark.parametrize("name", sorted(store.factory_presets()))
def test_factory_preset_learns(name):
    p = presets.load(store.resolve(name))
    s = p.spec
    hidden = dict(s.hidden)
    x = _source(p, 5 * SR)
    chunk = SR // 10
    model = None                                # an outside ground truth: its output, precomputed
    if s.plugin is not None:                    # through the callback's own code (OfflineTruth)
        from app.plugins import registry
        from app.truths import OfflineTruth, open_plugin
        info = registry.find(s.plugin)
        controls = {k: hidden.pop(k) for k in list(hidden) if info.control(k) is not None}
        truth = OfflineTruth(open_plugin(s.plugin, controls, SR, OfflineTruth.FRAMES, s.plugin_channel))
        x, model = truth.render(x)
        truth.close()
    if s.recording is not None:                 # the pair, in lock: its dry file is the input
        from app.recordings.pair import load_pair
        from app.truths import OfflineTruth, RecordingTruth
        r = s.recording
        truth = OfflineTruth(RecordingTruth(load_pair(r.dry, r.wet, r.channel, rate=SR), hidden.pop("align"),
                                            OfflineTruth.FRAMES))
        x, model = truth.render(x)
    learner = Learner(s.circuit, s.params, target=s.target, hidden=hidden,
                      settings=dataclasses.replace(s.settings, learning=False), banks=s.banks)
    if s.model is not None:
        from engine.sptmod.stream import SptModStream
        from engine.sptmod.file import load_model
        m = load_model(s.model)
        stream = SptModStream(m.config, m.weights)
        stream.set_controls([s.hidden.get(n, d) for n, d in zip(m.control_names, m.control_defaults)])
        model = stream.process(x)
    start = learner.process(x[:chunk], external=None if model is None else model[:chunk])[0][:, 2].mean()
    learner.reset()
    learner.configure(s.settings)
    end = learner.process(x, external=model)[0][-chunk:, 2].mean()
    learned = learner.params()
    if model is not None:                       # no hidden values to compare: the loss must fall
        assert start > 0 and end * 100 <= start, (name, start, end, learned)
        return
    close = all(abs(learned[k] - s.hidden[k]) <= 0.05 * abs(s.hidden[k]) for k in learned if k in s.hidden)
    assert start > 0 and (end * 100 <= start or close), (name, start, end, learned, s.hidden)


# ------------------------------------------------------------------ SPTMod ground truth

GOLDEN_MODEL = REFERENCE / "sptmod" / "golden_SPTMod25_p7.npz"


def _model_preset(model_path) -> Preset:
    from engine.sptmod.file import load_model
    spec = CircuitSpec("y = g*x + d", [ParamSpec("g", 0.0, -2.0, 2.0), ParamSpec("d", 0.0, -1.0, 1.0)],
                       target="y = sptmod", hidden={"p3": 0.25}, model=str(model_path),
                       model_sha256=load_model(model_path).sha256)
    return Preset(name="neural", description="", spec=spec, midi={21: "hidden:p3"})


def test_a_model_preset_stores_the_model_relative_to_itself_and_survives_a_move(tmp_path):
    folder = tmp_path / "kit"
    (folder / "models").mkdir(parents=True)
    model = folder / "models" / "m.npz"
    shutil.copy(GOLDEN_MODEL, model)
    p = _model_preset(model)
    presets.save(p, folder / "neural.json")
    doc = json.loads((folder / "neural.json").read_text())
    assert doc["sptmod"] == {"model": "models/m.npz", "sha256": p.spec.model_sha256}
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    back = presets.load(moved / "neural.json")
    assert Path(back.spec.model) == moved / "models" / "m.npz"
    assert back.spec.hidden == {"p3": 0.25} and back.midi == {21: "hidden:p3"}
    assert back.spec.model_sha256 == p.spec.model_sha256 and back == dataclasses.replace(
        p, spec=dataclasses.replace(p.spec, model=back.spec.model))


def test_a_model_preset_refuses_a_changed_or_missing_model_and_unknown_controls(tmp_path):
    from engine.sptmod.file import load_model, save_model
    model = tmp_path / "m.npz"
    shutil.copy(GOLDEN_MODEL, model)
    presets.save(_model_preset(model), tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    other = load_model(GOLDEN_MODEL)
    other.weights["s_acts.0.weight"] = other.weights["s_acts.0.weight"] + 0.125
    save_model(other, tmp_path / "m.npz", overwrite=True)         # same name, different weights
    assert any("is not the model this preset was saved with" in q
               for q in problems_of_file(tmp_path / "p.json"))
    (tmp_path / "m.npz").unlink()
    assert any(q.startswith("sptmod: ") and "no such file" in q for q in problems_of_file(tmp_path / "p.json"))
    shutil.copy(GOLDEN_MODEL, model)
    doc["hidden"]["volume"] = 1.0
    (tmp_path / "q.json").write_text(json.dumps(doc))
    assert any("hidden 'volume': the target has no parameter (and its model no control)" in q
               for q in problems_of_file(tmp_path / "q.json"))
    doc["hidden"].pop("volume")
    doc["sptmod"] = None
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert any("reads 'sptmod' but the preset names no SPTMod model" in q
               for q in problems_of_file(tmp_path / "r.json"))
    doc["sptmod"] = {"model": "m.npz", "sha256": load_model(model).sha256}
    doc["target"] = "y = 0.5*x"
    doc["hidden"] = {}
    doc["midi"] = {"mappings": {}}
    (tmp_path / "s.json").write_text(json.dumps(doc))
    assert any("does not read 'sptmod'" in q for q in problems_of_file(tmp_path / "s.json"))


def problems_of_file(path) -> list[str]:
    with pytest.raises(PresetError) as e:
        presets.load(path)
    return e.value.problems


def test_an_output_insert_round_trips_relative_to_the_preset_and_is_checked(tmp_path):
    from engine.sptmod.file import load_model
    folder = tmp_path / "kit"
    folder.mkdir()
    shutil.copy(GOLDEN_MODEL, folder / "fx.npz")
    sha = load_model(GOLDEN_MODEL).sha256
    p = presets.load(store.resolve("gain+dc"))
    p = dataclasses.replace(p, insert={"model": str(folder / "fx.npz"), "sha256": sha,
                                       "controls": {"p1": 0.5}}, midi={30: "insert:p1"})
    presets.save(p, folder / "fx.json")
    doc = json.loads((folder / "fx.json").read_text())
    assert doc["insert"]["model"] == "fx.npz" and doc["insert"]["controls"]["p1"] == 0.5
    back = presets.load(folder / "fx.json")
    assert back.insert["sha256"] == sha and back.insert["controls"]["p1"] == 0.5
    assert back.insert["controls"]["p0"] == load_model(GOLDEN_MODEL).control_defaults[0]
    assert back.midi == {30: "insert:p1"}
    assert "bypass" not in doc["insert"] and back.insert["bypass"] is False     # absent: it runs
    presets.save(dataclasses.replace(p, insert={**p.insert, "bypass": True}), folder / "off.json")
    assert json.loads((folder / "off.json").read_text())["insert"]["bypass"] is True
    assert presets.load(folder / "off.json").insert["bypass"] is True
    doc["insert"]["bypass"] = "yes"
    (folder / "yes.json").write_text(json.dumps(doc))
    assert problems_of_file(folder / "yes.json") == ["insert: bypass must be true or false, got 'yes'"]
    del doc["insert"]["bypass"]
    doc["insert"]["controls"] = {"volume": 1.0, "p1": 7.0}
    (folder / "bad.json").write_text(json.dumps(doc))
    probs = problems_of_file(folder / "bad.json")
    assert any("no control named 'volume'" in q for q in probs)
    assert any("control 'p1' 7 is outside [0, 1]" in q for q in probs)
    doc["insert"] = {"model": "fx.npz", "sha256": "0" * 64, "controls": {}}
    (folder / "other.json").write_text(json.dumps(doc))
    assert any("not the model this preset was saved with" in q for q in problems_of_file(folder / "other.json"))


def test_a_malformed_sha256_is_the_only_problem_of_a_model_reference():
    """A model reference with a bad digest is one problem, not also 'names no SPTMod model'."""
    doc = good_doc()
    doc["target"] = "y = sptmod"
    doc["hidden"], doc["midi"] = {}, {"mappings": {}}
    doc["sptmod"] = {"model": "models/x.npz", "sha256": "zz"}
    assert problems_of(doc) == ["sptmod: sha256 must be 64 hexadecimal digits, got 'zz'"]


def test_an_unusable_config_folder_means_no_autosave_and_no_recent_list_not_a_crash(monkeypatch):
    monkeypatch.setenv("DUALTONE_CONFIG_DIR", "/proc/nope")
    problem = store.config_problem()
    assert problem.startswith("the config folder /proc/nope cannot be used (")
    assert "\n" not in problem
    assert store.read_autosave() is None and store.recent() == []
    store.add_recent(store.resolve("gain"))                  # a convenience: silently skipped
    with pytest.raises(store.ConfigUnavailable):
        store.write_autosave(presets.load(store.resolve("gain")))


def test_a_403_character_preset_that_would_need_gigabytes_is_one_problem():
    from tests.engine.test_language import _sixteen_long_delays
    doc = good_doc()
    doc["circuit"] = _sixteen_long_delays()
    doc["params"] = [{"name": "g", "init": 0.0, "min": -1.0, "max": 1.0, "scale": "linear"}]
    doc["hidden"], doc["learned"], doc["midi"] = {"g": 0.5}, {}, {"mappings": {}}
    probs = problems_of(doc)
    assert len(probs) == 1 and re.match(r"^circuit line \d+, col \d+: the delay lines need [\d,]+ MB", probs[0])


def test_factory_presets_play_at_a_level_the_limiter_rarely_touches(capsys):
    """Five seconds of each factory preset on the virtual clock: the limiter starts turning the
    output down at most a handful of times (the delay and tanh-drive presets drove it hundreds of
    times, at every comb peak or square edge) and holds it down on less than 0.1 % of the samples
    (biquad was limited on 221,936 samples of 240,000), and nothing non-finite reaches the output."""
    import json
    from app.cli.main import main
    for name, path in store.factory_presets().items():
        rc = main(["run", "--headless", "--seconds", "5", "--device", "virtual", "--quiet", "--preset", str(path)])
        res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert rc == 0 and res["nonfinite_out"] == 0, name
        assert res["limited"] <= 6, f"{name}: {res['limited']} limiter onsets in 5 s"
        samples = res["callbacks"] * res["blocksize"]
        assert samples >= 5 * 48000 * 0.9, name
        assert res["limited_samples"] < 0.001 * samples, \
            f"{name}: limited on {res['limited_samples']} of {samples} samples"
