"""Presets on disk: a circuit, its declarations, the hidden values, what was learned, the learning
settings and the audio/MIDI setup, as one JSON document.

    preset = load(resolve("gain+dc"))            # a factory name or a file path
    save(preset, "mine.json")                     # atomic; refuses to overwrite unless told to

Schema version 2 (written now):

    {"format": "dualtone-preset", "version": 2, "name": ..., "description": ...,
     "circuit": "y = gain*x + dc", "target": null,
     "params": [{"name": "gain", "init": 0.0, "min": -1.0, "max": 2.0, "scale": "linear"}, ...],
     "target_params": [],           # declarations of target-only parameters (knob ranges)
     "hidden": {...}, "learned": {...},
     "settings": {"loss": "mse", "window": 32, "optimizer": "sgd", "lr": 0.01, ...},
     "audio": {"source": "lcg-noise", "source_hz": 220.0, "source_file": null,
               "source_db": 0.0,             # the source's level, dB from its full scale
               "output": "stereo", "volume_db": 0.0, "mute": false},
     "midi": {"mappings": {"74": "hidden:gain"}}, "banks": null,
     "sptmod": null,                # or {"model": "models/x.npz", "sha256": ...}: the ground truth
     "plugin": null,                # or {"id": "ladspa:lpf", "version": "", "channel": "left"}: the
                                    # ground truth (its control values are in "hidden", by symbol)
     "recording": null,             # or a dry/wet pair as the ground truth (app/preset/outside.py;
                                    # its alignment is hidden["align"])
     "device": null,                # or a device on the audio interface (channels, last latency)
     "insert": null}                # or {"model", "sha256", "controls": {...}}: an output insert
                                    # (or a plugin: {"plugin": id, "version", "controls": {...}});
                                    # "bypass": true when it was bypassed (absent: it runs)

    min/max null = unbounded (JSON has no infinity). Missing optional fields get their defaults.

Schema version 1 (what Dualtone wrote before presets held audio/MIDI settings):

    {"schema": 1, "name": ..., "description": ..., "circuit": ..., "target": ...,
     "params": ["gain=0:-1:2", "dc=0"],           # the command line's NAME=INIT[:MIN:MAX]
     "hidden": {...}, "learned": {...},
     "loss": "mse", "window": 32, "optimizer": "sgd", "learning_rate": 0.01}

Older documents are brought up to date by migrate(), one small step per version. A file is
untrusted input: every problem found is reported in plain words (PresetError.problems), and nothing
but PresetError escapes the loader. Circuits are only parsed here (fast, pure Python), never compiled.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic_file import atomic_write
from engine.learn.learner import ParamSpec
from engine.learn.spec_check import (DEAD, HIDDEN_KINDS, HIDDEN_NEEDED, HIDDEN_NOT_FINITE, HIDDEN_UNKNOWN,
                                     MISSING, NOT_IN_TARGET, SYNTAX, TARGET_LEARNABLE, UNDECLARED,
                                     UNREADABLE, Problem, check_spec)
from app.preset.fields import (VALIDATION_RATE, _Check, _audio, _bank_spec, _banks, _declarations, _midi,
                            _settings, _show, _sptmod, _values, path_to_store, stored_path)
from app.preset.fields import banks_to_json  # noqa: F401  (part of this module's API)
from app.preset.outside import device_from, device_json, recording_from, recording_json
from app.session import CircuitSpec
from app.words import plural

SCHEMA_VERSION = 2
FORMAT = "dualtone-preset"
MAX_BYTES = 1_000_000
MAX_PROBLEMS = 50              # beyond this a hostile file would only produce a wall of text

TOP_FIELDS = ("format", "version", "name", "description", "circuit", "target", "params",
              "target_params", "hidden", "learned", "settings", "audio", "midi", "banks", "sptmod",
              "plugin", "recording", "device", "insert")


class PresetError(Exception):
    def __init__(self, problems: list[str], origin: str = "<text>"):
        self.problems, self.origin = list(problems), str(origin)
        super().__init__(f"{self.origin}: " + "; ".join(self.problems))


@dataclass
class Preset:
    name: str
    description: str
    spec: CircuitSpec
    learned: dict[str, float] = field(default_factory=dict)
    source: str = "lcg-noise"
    source_hz: float = 220.0
    source_file: str | None = None
    output: str = "stereo"
    source_db: float = 0.0           # the source's level (what the circuits hear; 0 = full scale)
    volume_db: float = 0.0           # the output volume (speaker path only; the learner never hears it)
    mute: bool = False
    midi: dict[int, str] = field(default_factory=dict)
    banks: dict | None = None
    sptmod: dict | None = field(default=None, compare=False)   # as read; spec.model is what counts
    # an SPTMod insert on the output: {"model": absolute path, "sha256": content hash,
    # "controls": {name: value}, "bypass": bool} (written relative to the preset's folder)
    insert: dict | None = None
    plugin_version: str = ""         # the plugin's version when saved (LV2 minor.micro; "" for LADSPA)


# ------------------------------------------------------------------ writing

def _bound(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _declaration(p: ParamSpec) -> dict:
    return {"name": p.name, "init": float(p.init), "min": _bound(p.lo), "max": _bound(p.hi),
            "scale": "log" if p.log else "linear"}


def to_json(preset: Preset) -> dict:
    s = preset.spec
    return {"format": FORMAT, "version": SCHEMA_VERSION, "name": preset.name,
            "description": preset.description, "circuit": s.circuit, "target": s.target,
            "params": [_declaration(p) for p in s.params],
            "target_params": [_declaration(p) for p in s.hidden_params],
            "hidden": {k: float(v) for k, v in s.hidden.items()},
            "learned": {k: float(v) for k, v in preset.learned.items()},
            "settings": asdict(s.settings),
            "audio": {"source": preset.source, "source_hz": float(preset.source_hz),
                      "source_file": preset.source_file, "source_db": float(preset.source_db),
                      "output": preset.output,
                      "volume_db": float(preset.volume_db), "mute": bool(preset.mute)},
            "midi": {"mappings": {str(cc): knob for cc, knob in sorted(preset.midi.items())}},
            "banks": preset.banks, "sptmod": _sptmod_json(preset, None), "plugin": _plugin_json(preset),
            "recording": recording_json(s.recording, None), "device": device_json(s.device),
            "insert": _insert_json(preset, None)}


def _insert_json(preset: Preset, folder: Path | None) -> dict | None:
    ins = preset.insert
    if ins is None:
        return None
    controls = {k: float(v) for k, v in ins.get("controls", {}).items()}
    if "plugin" in ins:
        doc = {"plugin": ins["plugin"], "version": ins.get("version", ""), "controls": controls}
    else:
        doc = {"model": path_to_store(ins["model"], folder), "sha256": ins["sha256"], "controls": controls}
    if ins.get("bypass"):                # written only when on: older files and readers never see it
        doc["bypass"] = True
    return doc


def _sptmod_json(preset: Preset, folder: Path | None) -> dict | None:
    """{"model", "sha256"} of the spec's model: the path relative to the preset's folder when the
    model sits inside it (so a folder of presets and models can move), else absolute."""
    s = preset.spec
    if s.model is None:
        return None
    return {"model": path_to_store(s.model, folder), "sha256": s.model_sha256}


def _plugin_json(preset: Preset) -> dict | None:
    s = preset.spec
    if s.plugin is None:
        return None
    return {"id": s.plugin, "version": preset.plugin_version, "channel": "right" if s.plugin_channel else "left"}


def _installed_plugin(c: _Check, key: str, pid: str, version: str):
    """The installed plugin a preset names (its PluginInfo), with problems recorded: not
    installed (and the Debian package that usually ships it), unusable, another version."""
    from app.plugins import registry
    from app.plugins.instance import PluginError
    from app.plugins.packages import debian_package
    try:
        info = registry.find(pid)
    except PluginError:
        package = debian_package(pid)
        c.add(f"{key}: the plugin '{pid}' is not installed" + (f" (Debian ships it in the package {package})"
                                                                if package else ""))
        return None
    if info.unusable:
        c.add(f"{key}: {info.id} ({info.name}) cannot be used: {info.unusable}")
    if version and info.version and version != info.version:
        c.add(f"{key}: {info.id} is version {info.version} here; the preset was made with {version}")
    return info


def _plugin(c: _Check, doc, tgraph, hidden: dict) -> tuple:
    """(plugin id, channel, version, its control symbols) of a preset's plugin field: the plugin
    must be installed, the same version, and have every control the hidden values set, in range.
    Every problem is recorded, with the Debian package that usually ships a missing plugin."""
    reads = None if tgraph is None else tgraph.external_name
    if doc is None:
        if reads == "plugin":
            c.add("target: it reads 'plugin' but the preset names no plugin (plugin: null)")
        return None, 0, "", []
    if not isinstance(doc, dict):
        c.add(f"plugin must be an object or null, got {_show(doc)}")
        return None, 0, "", []
    n = len(c.problems)
    c.fields(doc, ("id", "version", "channel"), "plugin: ")
    pid, version, channel = doc.get("id"), doc.get("version", ""), doc.get("channel", "left")
    if not (isinstance(pid, str) and ":" in pid and len(pid) <= 1000):
        c.add(f"plugin: id must be ladspa:<id> or lv2:<URI>, got {_show(pid)}")
    if not isinstance(version, str):
        c.add(f"plugin: version must be text, got {_show(version)}")
    if channel not in ("left", "right"):
        c.add(f"plugin: channel must be 'left' or 'right', got {_show(channel)}")
    if len(c.problems) != n:
        return None, 0, "", []
    if tgraph is not None and reads != "plugin":
        c.add("plugin: a plugin is given but the target does not read 'plugin' (e.g. y = plugin)")
    info = _installed_plugin(c, "plugin", pid, version)
    if info is None:
        return pid, 0, version, []
    symbols = [ctl.symbol for ctl in info.controls]
    for name, v in hidden.items():
        ctl = info.control(name)
        if ctl is None:
            continue                 # a target parameter, or reported as unknown with the others
        if not ctl.minimum <= v <= ctl.maximum:
            c.add(f"hidden '{name}': {v:g} is outside the plugin control's range [{ctl.minimum:g}, {ctl.maximum:g}]")
    if channel == "right" and len(info.audio_outputs) < 2:
        c.add(f"plugin: {info.id} has one output channel; channel 'right' does not exist")
    return info.id, 1 if channel == "right" else 0, version or info.version, symbols


def _model_controls(c: _Check, sptmod: dict | None, origin: str, spec_target, given: bool,
                    plugin_given: bool = False) -> tuple:
    """(absolute model path, its control names) for a preset's sptmod field; problems recorded.
    given: the field was there (a malformed one is already a problem of its own)."""
    reads = spec_target is not None and spec_target.external_name == "sptmod"
    if plugin_given and sptmod is None:
        return None, []
    if sptmod is None:
        if reads and not given:
            c.add("target: it reads 'sptmod' but the preset names no SPTMod model (sptmod: null)")
        return None, []
    if spec_target is not None and not reads:
        c.add("sptmod: a model is given but the target does not read 'sptmod' (e.g. y = sptmod)")
    path = stored_path(sptmod["model"], origin)
    model = _checked_model(c, "sptmod", path, sptmod["sha256"])
    return path, [] if model is None else model.control_names


def _checked_model(c: _Check, key: str, path: Path, sha256: str):
    """The model file a preset names, or None with the problem recorded (unreadable, or not the
    content hash the preset was saved with)."""
    from engine.sptmod.file import ModelError, load_model
    try:
        model = load_model(path)
    except (ModelError, OSError) as e:
        c.add(f"{key}: {e}")
        return None
    if model.sha256 != sha256.lower():
        c.add(f"{key}: {path} is not the model this preset was saved with (content hash "
              f"{model.sha256[:12]}…, expected {sha256[:12]}…)")
        return None
    return model


def _plugin_insert(c: _Check, doc: dict) -> dict | None:
    """A plugin as the output insert: {"plugin": id, "version", "controls"}, checked as the
    ground truth's plugin is (installed, same version, known controls in range)."""
    n = len(c.problems)
    c.fields(doc, ("plugin", "version", "controls", "bypass"), "insert: ")
    bypass = _bypass(c, doc)
    pid, version, controls = doc.get("plugin"), doc.get("version", ""), doc.get("controls", {})
    if not (isinstance(pid, str) and ":" in pid and len(pid) <= 1000):
        c.add(f"insert: plugin must be ladspa:<id> or lv2:<URI>, got {_show(pid)}")
    if not isinstance(version, str):
        c.add(f"insert: version must be text, got {_show(version)}")
    if not isinstance(controls, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in controls.items()):
        c.add("insert: controls must be an object of control symbol to a finite number")
    if len(c.problems) != n:
        return None
    info = _installed_plugin(c, "insert", pid, version)
    if info is None:
        return None
    for name, v in controls.items():
        ctl = info.control(name)
        if ctl is None:
            c.add(f"insert: the plugin {info.id} has no control '{name}'")
        elif not ctl.minimum <= v <= ctl.maximum:
            c.add(f"insert: control '{name}' {v:g} is outside [{ctl.minimum:g}, {ctl.maximum:g}]")
    return {"plugin": info.id, "version": version or info.version,
            "controls": {k: float(v) for k, v in controls.items()}, "bypass": bypass}


def _bypass(c: _Check, doc: dict) -> bool:
    """The insert's "bypass" (absent: false)."""
    bypass = doc.get("bypass", False)
    if not isinstance(bypass, bool):
        c.add(f"insert: bypass must be true or false, got {_show(bypass)}")
    return bypass is True


def _insert(c: _Check, doc, origin: str) -> dict | None:
    """The output insert of a preset: the model file checked (hash, control names and ranges);
    returns {"model": absolute path, "sha256", "controls": every control's value}; or a plugin
    ({"plugin": id, ...}: _plugin_insert)."""
    if isinstance(doc, dict) and "plugin" in doc:
        return _plugin_insert(c, doc)
    ref = _sptmod(c, doc, "insert", ("controls", "bypass"))
    if ref is None:
        return None
    bypass = _bypass(c, ref)
    path = stored_path(ref["model"], origin)
    model = _checked_model(c, "insert", path, ref["sha256"])
    if model is None:
        return None
    controls = {ctl["name"]: ctl["default"] for ctl in model.controls}
    for name, v in ref.get("controls", {}).items():
        ctl = next((q for q in model.controls if q["name"] == name), None)
        if ctl is None:
            c.add(f"insert: the model has no control named '{name}'")
        elif not ctl["min"] <= v <= ctl["max"]:
            c.add(f"insert: control '{name}' {v:g} is outside [{ctl['min']:g}, {ctl['max']:g}]")
        else:
            controls[name] = float(v)
    return {"model": str(path), "sha256": model.sha256, "controls": controls, "bypass": bypass}


def dumps(preset: Preset, origin: str = "<text>") -> str:
    """The preset as JSON text, checked first: we never write a file we would refuse to read."""
    doc = to_json(preset)
    if preset.spec.model is not None and not origin.startswith("<"):
        doc["sptmod"] = _sptmod_json(preset, Path(origin).parent)
    if preset.insert is not None and not origin.startswith("<"):
        doc["insert"] = _insert_json(preset, Path(origin).parent)
    if preset.spec.recording is not None and not origin.startswith("<"):
        doc["recording"] = recording_json(preset.spec.recording, Path(origin).parent)
    parse_document(doc, origin)
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save(preset: Preset, path, overwrite: bool = False) -> Path:
    """Write preset atomically. FileExistsError if path exists and not overwrite; PresetError if
    the preset is invalid; on any failure an existing file is left as it was."""
    data = dumps(preset, str(path)).encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), overwrite)


# ------------------------------------------------------------------ migration

def _v1_param(text: str) -> Any:
    """'gain=0:-1:2' -> a v2 declaration. A part that is not a number is kept as text so that
    validation names the field ("the minimum must be a number, got 'abc'")."""
    name, eq, rest = text.partition("=")
    parts = rest.split(":")
    if not eq or len(parts) not in (1, 3):
        return text                  # reported as "must be an object" with the text shown

    def number(part):
        if part.strip() == "":
            return None
        try:
            return float(part)
        except ValueError:
            return part
    decl = {"name": name.strip(), "init": number(parts[0])}
    if len(parts) == 3:
        decl["min"], decl["max"] = number(parts[1]), number(parts[2])
    return decl


def _v1_to_v2(doc: dict) -> dict:
    # name, description, circuit, target, hidden, learned keep their place; anything unknown is
    # carried along so that validation reports it
    out = {k: v for k, v in doc.items() if k != "schema"}
    settings = {new: out.pop(old) for old, new in (("loss", "loss"), ("window", "window"),
                                                   ("optimizer", "optimizer"), ("learning_rate", "lr"))
                if old in out}
    params = out.pop("params", [])
    if isinstance(params, list):
        params = [_v1_param(p) if isinstance(p, str) else p for p in params]
    return {"format": FORMAT, "version": 2, **out, "params": params, "settings": settings}


MIGRATIONS = {1: _v1_to_v2}        # version N -> the function that turns it into version N + 1
LEGACY_SCHEMAS = (1,)              # versions written before the "format" field existed


def _version_of(doc: dict) -> Any:
    # v1 had a "schema" number and no "format"; from v2 on "format" + "version"
    return doc.get("version") if "format" in doc else doc.get("schema")


def _check_version(v: Any) -> list[str]:
    if isinstance(v, bool) or not isinstance(v, int):
        return [f"version must be a whole number, got {_show(v)}"]
    if v > SCHEMA_VERSION:
        return [f"this preset was saved by a newer Dualtone (schema version {v}; this one reads "
                f"up to {SCHEMA_VERSION})"]
    if v < min(MIGRATIONS):
        return [f"unknown schema version {v}"]
    return []


def migrate(doc: dict) -> dict:
    """Bring a document of any older schema version up to SCHEMA_VERSION (a new dict)."""
    v = _version_of(doc)
    problems = _check_version(v)
    if problems:
        raise PresetError(problems)
    doc = dict(doc)
    while v < SCHEMA_VERSION:
        doc, v = MIGRATIONS[v](doc), v + 1
    return doc


# the order a preset lists check_spec's problems in: the texts, the declarations, then (after the
# SPTMod model, whose controls the hidden values may also set) the hidden values
_ORDER = {SYNTAX: 0, UNREADABLE: 0, UNDECLARED: 1, DEAD: 2, MISSING: 2, TARGET_LEARNABLE: 3, NOT_IN_TARGET: 3,
          HIDDEN_NEEDED: 4, HIDDEN_NOT_FINITE: 4, HIDDEN_UNKNOWN: 5}


def _wanted(found: list[Problem], have_params: bool, have_target_params: bool) -> list[Problem]:
    """The problems a preset reports: none about a list of declarations that could not be read
    (already a problem of its own), and a target-only declaration of a learnable parameter is
    reported as that alone."""
    learnable = {p.name for p in found if p.kind == TARGET_LEARNABLE}
    out = []
    for p in found:
        if p.kind in (UNDECLARED, DEAD, MISSING, TARGET_LEARNABLE) and not have_params:
            continue
        if p.kind in (TARGET_LEARNABLE, NOT_IN_TARGET) and not have_target_params:
            continue
        if p.kind in HIDDEN_KINDS and not (have_params and have_target_params):
            continue
        if p.kind == NOT_IN_TARGET and have_params and p.name in learnable:
            continue
        out.append(p)
    return out


def _node_index(graph, name: str) -> int:
    return next(k for k, n in enumerate(graph.nodes) if n.kind == "param" and n.name == name)


def _worded(p: Problem, sptmod: bool = False) -> str:
    """A check_spec problem in the preset's words (they name the document's fields)."""
    n = p.name
    return {
        SYNTAX: lambda: str(p.error),                        # "circuit line L, col C: message"
        UNREADABLE: lambda: f"{p.where}: {p.message}",       # "circuit: cannot be read (...)"
        UNDECLARED: lambda: f"circuit line {p.line}, col {p.col}: '{n}' is a parameter but has no "
                            "declaration in params",
        DEAD: lambda: f"params '{n}': does not affect the output (its line does not feed the last line)",
        MISSING: lambda: f"params '{n}': the circuit has no parameter named '{n}'",
        TARGET_LEARNABLE: lambda: f"target_params '{n}': is a learnable parameter; declare it in params only",
        NOT_IN_TARGET: lambda: f"target_params '{n}': the target has no parameter named '{n}'",
        HIDDEN_NEEDED: lambda: f"target: its parameter '{n}' needs a hidden value or a declaration in "
                               "target_params",
        HIDDEN_NOT_FINITE: lambda: f"hidden '{n}': {p.message}",
        HIDDEN_UNKNOWN: lambda: f"hidden '{n}': the target has no parameter "
                                + ("(and its model no control) " if sptmod else "") + f"named '{n}'",
    }[p.kind]()


# ------------------------------------------------------------------ reading

def parse_document(doc: Any, origin: str = "<text>") -> Preset:
    """A decoded JSON document -> Preset, after migration; every problem is collected and raised
    together as one PresetError."""
    try:
        return _parse_document(doc, origin)
    except RecursionError:
        raise PresetError(["the document is nested too deeply"], origin) from None


def _parse_document(doc: Any, origin: str) -> Preset:
    if not isinstance(doc, dict):
        raise PresetError([f"a preset must be a JSON object, got {_show(doc)}"], origin)
    legacy = "format" not in doc and type(doc.get("schema")) is int and doc["schema"] in LEGACY_SCHEMAS
    if "format" not in doc and not legacy:
        raise PresetError([f"this is not a Dualtone preset (no \"format\": \"{FORMAT}\")"], origin)
    if "format" in doc and doc["format"] != FORMAT:
        raise PresetError([f"format must be '{FORMAT}', got {_show(doc['format'])}"], origin)
    problems = _check_version(_version_of(doc))
    if problems:                     # the version decides how to read everything else
        raise PresetError(problems, origin)
    doc = migrate(doc)

    c = _Check()
    c.fields(doc, TOP_FIELDS, "")
    name = c.text(doc, "name", required=True)
    if name is not None and (not name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)):
        c.add("name must be a non-empty line of text")
    description = c.text(doc, "description")
    circuit = c.text(doc, "circuit", required=True)
    target = c.text(doc, "target", nullable=True)
    settings = _settings(c, doc.get("settings", {}))
    # diff.lib's dcsq starts its accumulator at 0 below its 1e-10 floor: in straight-through mode
    # the accumulator may legitimately sit outside the range, so may the initial value
    outside_ok = settings is not None and settings.range_mode == "straight-through"
    params = _declarations(c, doc.get("params", []), "params", outside_ok)
    target_params = _declarations(c, doc.get("target_params", []), "target_params", False)
    hidden = _values(c, doc.get("hidden", {}), "hidden")
    learned = _values(c, doc.get("learned", {}), "learned")

    decls = {}
    for key, specs in (("params", params), ("target_params", target_params)):
        for p in specs or []:
            if p.name in decls:
                c.add(f"{key} '{p.name}': declared twice")
            decls.setdefault(p.name, p)
    ranges = {p.name: (p.lo, p.hi) for p in decls.values()}
    graphs = {}
    found = check_spec(circuit, target, params or [], hidden, VALIDATION_RATE,
                       target_specs=target_params or [], ranges=ranges, graphs=graphs)
    graph, tgraph = graphs.get("circuit"), graphs.get("target")
    learnable = {p.name: p for p in params or []}
    if params is not None:          # each undeclared parameter once, in the circuit's node order
        learnable.update({p.name: None for p in found if p.kind == UNDECLARED})
    found = _wanted(found, params is not None, target_params is not None)
    found.sort(key=lambda p: (_ORDER[p.kind], _node_index(graph, p.name) if p.kind == UNDECLARED else 0))
    for p in found:
        if _ORDER[p.kind] < _ORDER[HIDDEN_NEEDED]:
            c.add(_worded(p))
    sptmod = _sptmod(c, doc.get("sptmod"))
    plugin, plugin_channel, plugin_version, plugin_controls = _plugin(c, doc.get("plugin"), tgraph, hidden)
    model_path, model_controls = _model_controls(c, sptmod, origin, tgraph, doc.get("sptmod") is not None,
                                                 doc.get("plugin") is not None)
    reads = None if tgraph is None else tgraph.external_name
    recording = recording_from(c, doc.get("recording"), origin, reads)
    device = device_from(c, doc.get("device"), reads)
    given = [k for k in ("sptmod", "plugin", "recording", "device") if doc.get(k) is not None]
    if len(given) > 1:
        c.add(f"{given[0]} and {given[1]}: one ground truth at a time")
    model_controls = list(model_controls) + plugin_controls + (["align"] if recording is not None else [])
    for p in found:
        if _ORDER[p.kind] >= _ORDER[HIDDEN_NEEDED] and not (p.kind == HIDDEN_UNKNOWN and p.name in model_controls):
            c.add(_worded(p, sptmod is not None or plugin is not None))
    if tgraph is not None and params is not None and target_params is not None:
        tdecl = {p.name: p for p in target_params}
        for name_ in tgraph.params:
            if name_ not in hidden and name_ not in learnable and name_ in tdecl:
                hidden[name_] = tdecl[name_].init   # the knob starts at its declaration
    if params is not None:
        for name_, v in learned.items():
            p = learnable.get(name_)
            if p is None:
                c.add(f"learned '{name_}': not a learnable parameter")
            elif not p.lo <= v <= p.hi:
                c.add(f"learned '{name_}': {v:g} is outside the range [{p.lo:g}, {p.hi:g}]")
    audio = _audio(c, doc.get("audio", {}))
    insert = _insert(c, doc.get("insert"), origin)
    midi = _midi(c, doc.get("midi", {}), None if tgraph is None else set(tgraph.params) | set(model_controls),
                 set((insert or {}).get("controls", {})))
    banks = _banks(c, doc.get("banks"))
    bank_spec = None if banks is None else _bank_spec(c, banks, {p.name: p for p in params or []})

    if c.problems:
        extra = len(c.problems) - MAX_PROBLEMS
        shown = c.problems[:MAX_PROBLEMS] + ([f"... and {plural(extra, 'more problem')}"] if extra > 0 else [])
        raise PresetError(shown, origin)
    spec = CircuitSpec(circuit, params, target=target, hidden=hidden, settings=settings,
                       hidden_params=target_params, banks=bank_spec,
                       model=None if sptmod is None else str(model_path),
                       model_sha256=None if sptmod is None else sptmod["sha256"].lower(),
                       plugin=plugin, plugin_channel=plugin_channel, recording=recording, device=device)
    return Preset(name=name, description=description, spec=spec, learned=learned, midi=midi,
                  banks=banks, sptmod=sptmod, insert=insert, plugin_version=plugin_version, **audio)


def loads(text: str | bytes, origin: str = "<text>") -> Preset:
    if len(text) > MAX_BYTES:
        raise PresetError([f"the file is larger than {MAX_BYTES} bytes"], origin)
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise PresetError([f"not UTF-8 text (byte {e.start})"], origin) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PresetError([f"not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}"], origin) from None
    except RecursionError:
        raise PresetError(["not readable: the JSON is nested too deeply"], origin) from None
    except ValueError as e:         # e.g. an integer with more than 4300 digits
        raise PresetError([f"not valid JSON: {e}"], origin) from None
    return parse_document(doc, origin)


def load(path) -> Preset:
    path = Path(path)
    try:
        if not path.is_file():
            raise PresetError(["no such file" if not path.exists() else "not a file"], str(path))
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)   # bounded even if the file grows while we read
    except OSError as e:
        raise PresetError([f"cannot read the file: {e.strerror or e}"], str(path)) from None
    return loads(data, str(path))
