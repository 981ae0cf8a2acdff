"""LADSPA: discovery and instances, from the public header ladspa.h (version 1.1). A library
exports `ladspa_descriptor(index)`, which returns descriptors until NULL; each holds the ports,
their range hints and the C entry points."""
from __future__ import annotations

import ctypes
import dataclasses
import math
import os

from app.plugins.catalogue import (Control, PluginInfo, Port, audio_path_problem, ladspa_symbol,
                                   unique_symbols)
from app.plugins.instance import API_LADSPA, PluginError, PluginInstance

DEFAULT_FOLDERS = ("/usr/lib/ladspa", "/usr/local/lib/ladspa", "/usr/lib/x86_64-linux-gnu/ladspa",
                   "~/.ladspa")

# port descriptor bits
PORT_INPUT, PORT_OUTPUT, PORT_CONTROL, PORT_AUDIO = 0x1, 0x2, 0x4, 0x8
# range hint bits
HINT_BELOW, HINT_ABOVE, HINT_TOGGLED, HINT_SAMPLE_RATE, HINT_LOG, HINT_INTEGER = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
HINT_DEFAULT_MASK = 0x3C0
DEFAULT_MINIMUM, DEFAULT_LOW, DEFAULT_MIDDLE, DEFAULT_HIGH, DEFAULT_MAXIMUM = 0x40, 0x80, 0xC0, 0x100, 0x140
FIXED_DEFAULTS = {0x200: 0.0, 0x240: 1.0, 0x280: 100.0, 0x2C0: 440.0}
LATENCY_NAMES = ("latency", "_latency")          # an output control so named reports latency

Handle = ctypes.c_void_p


class RangeHint(ctypes.Structure):
    _fields_ = [("hints", ctypes.c_int), ("lower", ctypes.c_float), ("upper", ctypes.c_float)]


class Descriptor(ctypes.Structure):
    pass


Descriptor._fields_ = [
    ("unique_id", ctypes.c_ulong), ("label", ctypes.c_char_p), ("properties", ctypes.c_int),
    ("name", ctypes.c_char_p), ("maker", ctypes.c_char_p), ("copyright", ctypes.c_char_p),
    ("port_count", ctypes.c_ulong), ("port_descriptors", ctypes.POINTER(ctypes.c_int)),
    ("port_names", ctypes.POINTER(ctypes.c_char_p)), ("port_range_hints", ctypes.POINTER(RangeHint)),
    ("implementation_data", ctypes.c_void_p),
    ("instantiate", ctypes.CFUNCTYPE(Handle, ctypes.POINTER(Descriptor), ctypes.c_ulong)),
    ("connect_port", ctypes.CFUNCTYPE(None, Handle, ctypes.c_ulong, ctypes.c_void_p)),
    ("activate", ctypes.c_void_p), ("run", ctypes.c_void_p), ("run_adding", ctypes.c_void_p),
    ("set_run_adding_gain", ctypes.c_void_p), ("deactivate", ctypes.c_void_p), ("cleanup", ctypes.c_void_p)]

_VOID_FN = ctypes.CFUNCTYPE(None, Handle)
_libraries: dict[str, ctypes.CDLL] = {}          # loaded once and never unloaded


def folders() -> list[str]:
    env = os.environ.get("LADSPA_PATH")
    chosen = env.split(":") if env else DEFAULT_FOLDERS
    return [os.path.expanduser(f) for f in chosen if f]


def _library(path: str) -> ctypes.CDLL:
    lib = _libraries.get(path)
    if lib is None:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        lib.ladspa_descriptor.restype = ctypes.POINTER(Descriptor)
        lib.ladspa_descriptor.argtypes = [ctypes.c_ulong]
        _libraries[path] = lib
    return lib


def _descriptor(path: str, index: int):
    d = _library(path).ladspa_descriptor(index)
    if not d:
        raise PluginError(f"{path}: no descriptor {index}")
    return d


def _text(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def _default(hints: int, lo: float, hi: float, log: bool) -> float | None:
    kind = hints & HINT_DEFAULT_MASK
    if kind in FIXED_DEFAULTS:
        return FIXED_DEFAULTS[kind]
    if kind == DEFAULT_MINIMUM:
        return lo
    if kind == DEFAULT_MAXIMUM:
        return hi
    weight = {DEFAULT_LOW: 0.25, DEFAULT_MIDDLE: 0.5, DEFAULT_HIGH: 0.75}.get(kind)
    if weight is None:
        return None
    if log and lo > 0 and hi > 0:
        return math.exp(math.log(lo) * (1 - weight) + math.log(hi) * weight)
    return lo * (1 - weight) + hi * weight


def _control(index: int, symbol: str, name: str, hint: RangeHint, sample_rate: float) -> Control:
    h = hint.hints
    scale = sample_rate if h & HINT_SAMPLE_RATE else 1.0
    toggled, integer, log = bool(h & HINT_TOGGLED), bool(h & HINT_INTEGER), bool(h & HINT_LOG)
    lo = hint.lower * scale if h & HINT_BELOW else None
    hi = hint.upper * scale if h & HINT_ABOVE else None
    if toggled:
        lo, hi = 0.0, 1.0
    lo = float(lo) if lo is not None else (min(0.0, hi - 1.0) if hi is not None else 0.0)
    hi = float(hi) if hi is not None else lo + 1.0
    if hi < lo:
        lo, hi = hi, lo
    default = _default(h, lo, hi, log)
    default = lo if default is None else default
    if toggled:
        default = 1.0 if default >= 0.5 else 0.0
    lo, hi = min(lo, default), max(hi, default)        # a fixed default (0, 1, 100, 440) may lie outside
    if log and lo <= 0:
        log = False                                     # a log slider needs a positive range
    if integer:
        default = float(round(default))
    return Control(index=index, symbol=symbol, name=name, minimum=lo, maximum=hi, default=default,
                   log=log, integer=integer, toggled=toggled)


def describe(path: str, index: int, sample_rate: float = 48000.0) -> PluginInfo:
    d = _descriptor(path, index).contents
    names = [_text(d.port_names[i]) for i in range(d.port_count)]
    symbols = unique_symbols([ladspa_symbol(n) for n in names])
    ports, controls, latency = [], [], None
    for i in range(d.port_count):
        pd = d.port_descriptors[i]
        output = bool(pd & PORT_OUTPUT)
        kind = "audio" if pd & PORT_AUDIO else "control" if pd & PORT_CONTROL else "other"
        ports.append(Port(i, symbols[i], names[i], kind, output))
        if kind == "control" and not output:
            controls.append(_control(i, symbols[i], names[i], d.port_range_hints[i], sample_rate))
        elif kind == "control" and names[i].strip().lower() in LATENCY_NAMES:
            latency = i
    problem = audio_path_problem(ports)
    bad = next((p for p in ports if p.type == "other"), None)
    if bad is not None:
        problem = f"port '{bad.symbol}' is neither audio nor control"
    # LADSPA has no categories (they live in optional RDF files): none rather than a guess
    return PluginInfo(id=f"ladspa:{d.unique_id}", api="ladspa", name=_text(d.name), maker=_text(d.maker),
                      category="", ports=tuple(ports), controls=tuple(controls), latency_port=latency,
                      unusable=problem, library=path, index=index, label=_text(d.label))


def discover(sample_rate: float = 48000.0) -> list[PluginInfo]:
    """Every LADSPA plugin in the folders of LADSPA_PATH (else Debian's), each id also reachable
    as ladspa:<label> when no other plugin has that label."""
    found: dict[str, PluginInfo] = {}
    for folder in folders():
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if not entry.endswith(".so"):
                continue
            try:
                lib = _library(path)
            except (OSError, AttributeError):
                continue                  # not a LADSPA library
            index = 0
            while index < 4096 and lib.ladspa_descriptor(index):
                info = describe(path, index, sample_rate)
                found.setdefault(info.id, info)       # the first folder wins, as LADSPA_PATH's order says
                index += 1
    labels: dict[str, list[str]] = {}
    for info in found.values():
        labels.setdefault(info.label, []).append(info.id)
    out = []
    for info in found.values():
        alias = (f"ladspa:{info.label}",) if len(labels[info.label]) == 1 else ()
        out.append(dataclasses.replace(info, aliases=alias))
    return sorted(out, key=lambda i: (i.name.lower(), i.id))


class LadspaInstance(PluginInstance):
    api_code = API_LADSPA

    def __init__(self, info: PluginInfo, sample_rate: float, max_frames: int):
        super().__init__(info, sample_rate, max_frames)
        self._d = _descriptor(info.library, info.index)
        d = self._d.contents
        handle = d.instantiate(self._d, int(round(sample_rate)))
        if not handle:
            raise PluginError(f"{info.id}: the plugin refused to instantiate at {sample_rate:g} Hz")
        self.handle = int(handle)
        self.run_address = int(d.run or 0)
        if not self.run_address:
            raise PluginError(f"{info.id}: the plugin has no run function")
        self._connect_fn = d.connect_port
        self._activate_fn = _VOID_FN(d.activate) if d.activate else None
        self._deactivate_fn = _VOID_FN(d.deactivate) if d.deactivate else None
        self._cleanup_fn = _VOID_FN(d.cleanup) if d.cleanup else None
        self.connect_all()

    def _cleanup(self):
        if self._cleanup_fn is not None:
            self._cleanup_fn(self.handle)
