"""Checking a preset document's fields: each helper converts one field and notes every problem in
plain words on a _Check (app/preset/document.py puts them together and raises one PresetError)."""
from __future__ import annotations

import json
import keyword
import math
import re
from pathlib import Path
from typing import Any

from engine.learn.banks import Banks
from engine.circuit.language import CircuitError, parse
from engine.learn.learner import ParamSpec, Settings
from app.host.layout import OUTPUT_MODES, SOURCES, TEL_MAX_PARAMS
from app.knobs import SETTING_KNOBS, SOURCE_LEVEL, VOLUME
from app.midi.control import MAX_MAPPABLE_CC

MAX_BANKS_BYTES = 100_000
TEXT_LIMITS = {"name": 200, "description": 5000, "circuit": 20000, "target": 20000}
MAX_PATH = 4096
MAX_SOURCE_HZ = 24000.0        # Nyquist at 48 kHz; the session checks its own rate again
VALIDATION_RATE = 48000.0      # circuits are parsed at this rate only to check them
KNOBS = tuple(SETTING_KNOBS)         # the session's own knobs a MIDI mapping may name
PARAM_FIELDS = ("name", "init", "min", "max", "scale")
AUDIO_FIELDS = ("source", "source_hz", "source_file", "source_db", "output", "volume_db", "mute")
VOLUME_DB_RANGE = (VOLUME.lo, VOLUME.hi)      # the output volume (app/knobs.py)
SETTING_TYPES = {"loss": str, "huber_delta": float, "window": int, "optimizer": str, "lr": float,
                 "c1": (float, None), "c2": (float, None), "eps": (float, None), "clip": float,
                 "lr_decay": float, "lr_decay_every": int, "lr_min": float, "range_mode": str,
                 "learning": bool, "p0": float, "spectral_hop": int, "spectral_fmin": float,
                 "spectral_fmax": float}


def _show(v: Any) -> str:
    """A value as a short quote for a message (a hostile file may hold megabytes in one field)."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, str):
        return repr(v if len(v) <= 40 else v[:40] + "...")
    if isinstance(v, (int, float)):     # (repr of a 5000-digit int would raise)
        return repr(v) if isinstance(v, float) or abs(v) < 10 ** 30 else "a huge integer"
    return {list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


class _Check:
    """Collects problems; each helper returns the converted value or None (and notes why)."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, text: str):
        self.problems.append(text)

    def number(self, v: Any, where: str) -> float | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.add(f"{where} must be a number, got {_show(v)}")
            return None
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            self.add(f"{where} must be a finite number, got {_show(v)}")
            return None
        return f

    def text(self, doc: dict, key: str, required: bool = False, nullable: bool = False):
        if key not in doc and not required:
            return None if nullable else ""
        v = doc.get(key)
        if v is None and nullable:
            return None
        if not isinstance(v, str):
            self.add(f"{key} must be text, got {'nothing' if key not in doc else _show(v)}")
            return None
        if len(v) > TEXT_LIMITS[key]:
            self.add(f"{key} is longer than {TEXT_LIMITS[key]} characters")
            return None
        if not _encodable(v):
            self.add(f"{key} contains characters that cannot be stored (unpaired surrogates)")
            return None
        return v

    def fields(self, doc: dict, known: tuple, where: str):
        for k in doc:
            if k not in known:
                self.add(f"{where}unknown field {_show(k)}")


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 100 and v.isidentifier() and not keyword.iskeyword(v)


def _declarations(c: _Check, items: Any, key: str, outside_ok: bool) -> list[ParamSpec] | None:
    if not isinstance(items, list):
        c.add(f"{key} must be a list of parameter declarations, got {_show(items)}")
        return None
    if len(items) > TEL_MAX_PARAMS:
        c.add(f"{key} has {len(items)} entries; at most {TEL_MAX_PARAMS} parameters are allowed")
        return None
    out, ok = [], True
    for i, d in enumerate(items):
        spec = _declaration_of(c, d, f"{key}[{i}]", outside_ok)
        ok = ok and spec is not None
        out.append(spec)
    return out if ok else None


def _declaration_of(c: _Check, d: Any, where: str, outside_ok: bool) -> ParamSpec | None:
    if not isinstance(d, dict):
        c.add(f"{where} must be an object like {{\"name\": \"gain\", \"init\": 0}}, got {_show(d)}")
        return None
    name = d.get("name")
    if not _is_name(name):
        c.add(f"{where}: the name must be an identifier such as gain or cutoff_hz, got {_show(name)}")
        return None
    where = f"{where} '{name}'"
    n = len(c.problems)
    c.fields(d, PARAM_FIELDS, f"{where}: ")
    init = c.number(d.get("init", 0.0), f"{where}: the initial value")
    lo = -math.inf if d.get("min") is None else c.number(d["min"], f"{where}: the minimum")
    hi = math.inf if d.get("max") is None else c.number(d["max"], f"{where}: the maximum")
    scale = d.get("scale", "linear")
    if scale not in ("linear", "log"):
        c.add(f"{where}: the scale must be 'linear' or 'log', got {_show(scale)}")
    if len(c.problems) > n:
        return None
    if lo > hi:
        c.add(f"{where}: the minimum {lo:g} is above the maximum {hi:g}")
    elif not outside_ok and not lo <= init <= hi:
        c.add(f"{where}: the initial value {init:g} is outside the range [{lo:g}, {hi:g}]")
    if scale == "log" and not (lo > 0 and math.isfinite(hi)):
        c.add(f"{where}: a log scale needs a minimum above 0 and a finite maximum")
    if len(c.problems) > n:
        return None
    return ParamSpec(name, init, lo, hi, scale == "log")


def _settings(c: _Check, doc: Any) -> Settings | None:
    if not isinstance(doc, dict):
        c.add(f"settings must be an object, got {_show(doc)}")
        return None
    n = len(c.problems)
    c.fields(doc, tuple(SETTING_TYPES), "settings: ")
    values = {}
    for key, kind in SETTING_TYPES.items():
        if key not in doc:
            continue
        v = doc[key]
        where = f"settings: {key}"
        if kind is str or kind is bool:
            if not isinstance(v, kind):
                c.add(f"{where} must be {'text' if kind is str else 'true or false'}, got {_show(v)}")
        elif kind is int:
            if isinstance(v, bool) or not isinstance(v, int):
                c.add(f"{where} must be a whole number, got {_show(v)}")
        elif not (v is None and kind != float):
            v = c.number(v, where)
        values[key] = v
    if len(c.problems) > n:
        return None
    s = Settings(**values)
    try:
        s.validate()
    except ValueError as e:
        c.add(f"settings: {e}")
        return None
    return s


def _circuit(c: _Check, text: str, source: str, ranges: dict):
    try:
        return parse(text, VALIDATION_RATE, source, ranges)
    except CircuitError as e:
        c.add(str(e))                # "circuit line L, col C: message"
    except (ValueError, RecursionError, MemoryError) as e:
        c.add(f"{source}: cannot be read ({type(e).__name__})")
    return None


def _values(c: _Check, doc: Any, key: str) -> dict[str, float]:
    if not isinstance(doc, dict):
        c.add(f"{key} must be an object of parameter values, got {_show(doc)}")
        return {}
    out = {}
    for name, v in doc.items():
        if not _is_name(name):
            c.add(f"{key}: {_show(name)} is not a parameter name")
            continue
        f = c.number(v, f"{key} '{name}'")
        if f is not None:
            out[name] = f
    return out


def _audio(c: _Check, doc: Any) -> dict:
    out = {"source": "lcg-noise", "source_hz": 220.0, "source_file": None, "output": "stereo",
           "source_db": 0.0, "volume_db": 0.0, "mute": False}
    if not isinstance(doc, dict):
        c.add(f"audio must be an object, got {_show(doc)}")
        return out
    volume = c.number(doc.get("volume_db", 0.0), "audio: volume_db")
    lo, hi = VOLUME_DB_RANGE
    if volume is not None and not lo <= volume <= hi:
        c.add(f"audio: volume_db must be from {lo:g} to {hi:g} dB, got {volume:g}")
    elif volume is not None:
        out["volume_db"] = volume
    level = c.number(doc.get("source_db", 0.0), "audio: source_db")
    if level is not None and not SOURCE_LEVEL.lo <= level <= SOURCE_LEVEL.hi:
        c.add(f"audio: source_db must be from {SOURCE_LEVEL.lo:g} to {SOURCE_LEVEL.hi:g} dB, got {level:g}")
    elif level is not None:
        out["source_db"] = level
    mute = doc.get("mute", False)
    if isinstance(mute, bool):
        out["mute"] = mute
    else:
        c.add(f"audio: mute must be true or false, got {_show(mute)}")
    c.fields(doc, AUDIO_FIELDS, "audio: ")
    source = doc.get("source", out["source"])
    if isinstance(source, str) and source in SOURCES:
        out["source"] = source
    else:
        c.add(f"audio: the source must be one of {', '.join(SOURCES)}, got {_show(source)}")
    output = doc.get("output", out["output"])
    if isinstance(output, str) and output in OUTPUT_MODES:
        out["output"] = output
    else:
        c.add(f"audio: the output must be one of {', '.join(OUTPUT_MODES)}, got {_show(output)}")
    hz = c.number(doc.get("source_hz", out["source_hz"]), "audio: source_hz")
    if hz is not None and not 0 < hz < MAX_SOURCE_HZ:
        c.add(f"audio: source_hz must be above 0 and below {MAX_SOURCE_HZ:g} Hz, got {hz:g}")
    elif hz is not None:
        out["source_hz"] = hz
    f = doc.get("source_file")
    if f is not None and not (isinstance(f, str) and 0 < len(f) <= MAX_PATH and _encodable(f)
                              and "\0" not in f):
        c.add(f"audio: source_file must be a file path or null, got {_show(f)}")
    elif f is not None:
        out["source_file"] = f
    if source == "file" and out["source_file"] is None:
        c.add("audio: the source 'file' needs a source_file")
    return out


def _midi(c: _Check, doc: Any, hidden_names, insert_names=()) -> dict[int, str]:
    if not isinstance(doc, dict):
        c.add(f"midi must be an object like {{\"mappings\": {{\"74\": \"lr\"}}}}, got {_show(doc)}")
        return {}
    c.fields(doc, ("mappings",), "midi: ")
    mappings = doc.get("mappings", {})
    if not isinstance(mappings, dict):
        c.add(f"midi: mappings must be an object of CC number to knob, got {_show(mappings)}")
        return {}
    out: dict[int, str] = {}
    for key, knob in mappings.items():
        ok = isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 3
        cc = int(key) if ok else key if isinstance(key, int) and not isinstance(key, bool) else -1
        if not 0 <= cc <= MAX_MAPPABLE_CC:
            c.add(f"midi: the CC number must be 0 to {MAX_MAPPABLE_CC}, got {_show(key)}")
            continue
        kind, _, name = knob.partition(":") if isinstance(knob, str) else ("", "", "")
        known = (knob in KNOBS or (kind == "hidden" and (hidden_names is None or name in hidden_names))
                 or (kind == "insert" and name in insert_names))
        if not known:
            c.add(f"midi: CC {cc}: {_show(knob)} is not a knob (lr, master, source_hz, "
                  "hidden:<a target parameter> or insert:<a control of the output insert>)")
        elif knob in out.values():
            c.add(f"midi: the knob '{knob}' is mapped to more than one CC")
        else:
            out[cc] = knob
    return out


def _banks(c: _Check, banks: Any) -> dict | None:
    if banks is None:
        return None
    if not isinstance(banks, dict):
        c.add(f"banks must be an object or null, got {_show(banks)}")
        return None
    try:
        text = json.dumps(banks, allow_nan=False)
    except ValueError:
        c.add("banks: contains NaN or Infinity, which JSON cannot store")
        return None
    except TypeError:
        c.add("banks: contains values that are not JSON")
        return None
    if len(text) > MAX_BANKS_BYTES:
        c.add(f"banks: larger than {MAX_BANKS_BYTES} bytes")
        return None
    return json.loads(text)          # a detached copy: verbatim content, no shared objects


BANK_FIELDS = ("boundaries", "condition", "mode", "hysteresis", "crossfade_ms", "attack_ms",
               "release_ms", "level_db", "circuits", "learned")


def banks_to_json(banks: Banks, learned: list | None = None) -> dict:
    """The `banks` field of a preset: the bank configuration and each bank's learned values."""
    doc = {k: getattr(banks, k) for k in BANK_FIELDS if k != "learned"}
    doc["boundaries"] = [float(v) for v in banks.boundaries]
    doc["learned"] = [dict(values) for values in learned] if learned else []
    return doc


def _bank_spec(c: _Check, d: dict, learnable: dict) -> Banks | None:
    """Validate a preset's banks object into engine Banks (its learned values are checked too)."""
    n = len(c.problems)
    c.fields(d, BANK_FIELDS, "banks: ")
    raw = d.get("boundaries")
    bounds = []
    if not (isinstance(raw, list) and 2 <= len(raw) <= 65):
        c.add(f"banks: boundaries must be a list of 2 to 65 numbers, got {_show(raw)}")
    else:
        bounds = [c.number(v, f"banks: boundaries[{i}]") for i, v in enumerate(raw)]
    kw = {}
    for key, kind in (("condition", str), ("mode", str), ("level_db", bool)):
        if key in d:
            if not isinstance(d[key], kind) or (kind is str and len(d[key]) > 200):
                c.add(f"banks: {key} must be {'text' if kind is str else 'true or false'}, got {_show(d[key])}")
            else:
                kw[key] = d[key]
    for key in ("hysteresis", "crossfade_ms", "attack_ms", "release_ms"):
        if key in d:
            kw[key] = c.number(d[key], f"banks: {key}")
    circuits = d.get("circuits")
    if circuits is not None:
        if not (isinstance(circuits, list) and len(circuits) == max(len(bounds) - 1, 1)
                and all(isinstance(t, str) and 0 < len(t) <= TEXT_LIMITS["circuit"] for t in circuits)):
            c.add("banks: circuits must be null or one circuit text per bank")
        else:
            for k, text in enumerate(circuits):
                _circuit(c, text, f"bank {k} circuit", {})
            kw["circuits"] = list(circuits)
    banks = None
    if len(c.problems) == n:
        banks = Banks(bounds, **kw)
        try:
            banks.validate()
        except ValueError as e:
            c.add(f"banks: {e}")
            return None
    learned = d.get("learned", [])
    if not isinstance(learned, list) or (banks is not None and learned and len(learned) != banks.K):
        c.add("banks: learned must be a list with one object of values per bank")
    else:
        for k, values in enumerate(learned):
            if not isinstance(values, dict):
                c.add(f"banks: learned[{k}] must be an object, got {_show(values)}")
                continue
            for name_, v in values.items():
                p = learnable.get(name_)
                v = c.number(v, f"banks: learned[{k}] '{name_}'")
                if p is None:
                    c.add(f"banks: learned[{k}] '{_show(name_)}': not a learnable parameter")
                elif v is not None and not p.lo <= v <= p.hi:
                    c.add(f"banks: learned[{k}] '{name_}': {v:g} is outside the range [{p.lo:g}, {p.hi:g}]")
    return banks if len(c.problems) == n else None


def _sptmod(c: _Check, doc: Any, key: str = "sptmod", extra: tuple = ()) -> dict | None:
    """The shape of a model reference {model, sha256 (, controls)}; the file is checked later."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        c.add(f"{key} must be an object or null, got {_show(doc)}")
        return None
    n = len(c.problems)
    c.fields(doc, ("model", "sha256") + extra, f"{key}: ")
    model, digest = doc.get("model"), doc.get("sha256")
    if not (isinstance(model, str) and 0 < len(model) <= MAX_PATH and _encodable(model)):
        c.add(f"{key}: model must be a file path, got {_show(model)}")
    if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
        c.add(f"{key}: sha256 must be 64 hexadecimal digits, got {_show(digest)}")
    if "controls" in extra:
        controls = doc.get("controls", {})
        if not isinstance(controls, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v) for k, v in controls.items()):
            c.add(f"{key}: controls must be an object of control name to a finite number")
    return dict(doc) if len(c.problems) == n else None


def stored_path(text: str, origin: str) -> Path:
    """A file a preset names: relative paths are relative to the preset file's folder."""
    p = Path(text).expanduser()
    if p.is_absolute() or origin.startswith("<"):
        return p
    return Path(origin).parent / p


def path_to_store(path: str, folder: Path | None) -> str:
    """How a preset in `folder` names a file: relative when the file sits inside the folder (so
    a folder of presets and their files can move), else absolute."""
    p = Path(path)
    if folder is not None:
        try:
            return p.resolve().relative_to(Path(folder).resolve()).as_posix()
        except ValueError:
            return p.resolve().as_posix()
    return p.as_posix()

