"""LV2: discovery, instances and factory presets through the system's liblilv-0 (lilv.py binds it
with ctypes; the URIs are those of the public LV2 headers). Discovery reads every bundle of
LV2_PATH (else lilv's default folders) without loading any plugin library; an instance gets the
host features below; presets are lilv states.

Host features: urid:map and urid:unmap (urid.py: Numba cfuncs, never Python), options:options
(param:sampleRate, bufsz:minBlockLength 1, bufsz:maxBlockLength, bufsz:sequenceSize),
bufsz:boundedBlockLength, lv2:isLive and lv2:inPlaceBroken (Dualtone never shares an input and an
output buffer). Anything else a plugin requires (worker:schedule, bufsz:fixedBlockLength,
state:*, ...) makes it unusable here."""
from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

from app.plugins import urid as U
from app.plugins.catalogue import Control, PluginInfo, Port, audio_path_problem
from app.plugins.instance import API_LV2, ATOM_CAPACITY, PluginError, PluginInstance
from app.plugins.lilv import (L, SET_PORT_VALUE, nodes, number, owned_text, owned_texts, path,
                              plugins, scale_points, text)

LV2 = "http://lv2plug.in/ns/lv2core#"
ATOM = "http://lv2plug.in/ns/ext/atom#"
BUF_SIZE = "http://lv2plug.in/ns/ext/buf-size#"
OPTIONS = "http://lv2plug.in/ns/ext/options#"
URID = "http://lv2plug.in/ns/ext/urid#"
PARAMETERS = "http://lv2plug.in/ns/ext/parameters#"
PORT_PROPS = "http://lv2plug.in/ns/ext/port-props#"
PRESETS = "http://lv2plug.in/ns/ext/presets#"

# features whose data the host passes (the rest of SUPPORTED_FEATURES need none)
URID_MAP, URID_UNMAP, OPTIONS_OPTIONS = URID + "map", URID + "unmap", OPTIONS + "options"
NULL_DATA_FEATURES = (BUF_SIZE + "boundedBlockLength", LV2 + "isLive", LV2 + "inPlaceBroken")
SUPPORTED_FEATURES = frozenset((URID_MAP, URID_UNMAP, OPTIONS_OPTIONS, *NULL_DATA_FEATURES,
                                LV2 + "hardRTCapable"))    # a plugin property some list as a feature

# short names of well-known namespaces, for messages ("worker:schedule")
_PREFIXES = {LV2: "lv2"}

_lock = threading.RLock()       # lilv is not thread-safe: every lilv call below holds this


# ------------------------------------------------------------------ the world

class _World:
    """A lilv world with every bundle of one LV2_PATH loaded, and the URI nodes used on it. It is
    freed once discovery replaced it and no instance of it is left (lilv_instance_free may still
    need the world that opened the plugin's library)."""

    def __init__(self):
        self.ptr = L.world_new()
        if not self.ptr:
            raise PluginError("lilv could not create a world")
        L.world_load_all(self.ptr)
        self._uris: dict[str, int] = {}
        self.instances = 0
        self.retired = False

    def uri(self, uri: str) -> int:
        node = self._uris.get(uri)
        if node is None:
            node = self._uris[uri] = L.new_uri(self.ptr, uri.encode())
        return node

    def plugins(self) -> list:
        return plugins(L.world_get_all_plugins(self.ptr))

    def plugin(self, uri: str):
        return L.plugins_get_by_uri(L.world_get_all_plugins(self.ptr), self.uri(uri))

    def release(self):
        """Forget one instance; free the world when it was retired and none are left."""
        self.instances -= 1
        self._free_if_unused()

    def retire(self):
        self.retired = True
        self._free_if_unused()

    def _free_if_unused(self):
        if self.retired and self.instances <= 0 and self.ptr:
            for node in self._uris.values():
                L.node_free(node)
            self._uris.clear()
            L.world_free(self.ptr)
            self.ptr = None


_worlds: dict[str, _World] = {}       # LV2_PATH (as set when loaded) -> its world


def _world(fresh: bool = False) -> _World:
    """The world of the current LV2_PATH (loaded again when fresh: new bundles are seen)."""
    key = os.environ.get("LV2_PATH", "")
    world = _worlds.get(key)
    if world is None or fresh:
        new = _World()
        _worlds[key] = new
        if world is not None:
            world.retire()
        world = new
    return world


# ------------------------------------------------------------------ discovery

def short_feature(uri: str) -> str:
    """'http://lv2plug.in/ns/ext/worker#schedule' -> 'worker:schedule'."""
    for prefix, short in _PREFIXES.items():
        if uri.startswith(prefix):
            return f"{short}:{uri[len(prefix):]}"
    if "#" in uri:
        base, fragment = uri.rsplit("#", 1)
        return f"{base.rstrip('/').rsplit('/', 1)[-1]}:{fragment}"
    return uri


def _first_number(w: _World, plugin, predicate: str) -> float | None:
    values = L.plugin_get_value(plugin, w.uri(predicate))
    try:
        return next((v for v in map(number, nodes(values)) if v is not None), None)
    finally:
        if values:
            L.nodes_free(values)


def _range(plugin, port) -> tuple:
    """(default, minimum, maximum) of a port, each None when the description has none."""
    d, lo, hi = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    L.port_get_range(plugin, port, ctypes.byref(d), ctypes.byref(lo), ctypes.byref(hi))
    out = tuple(number(n.value) for n in (d, lo, hi))
    for n in (d, lo, hi):
        if n.value:
            L.node_free(n.value)
    return out


def _control(w: _World, plugin, port, index: int, symbol: str, name: str, sample_rate: float) -> Control:
    def has(prop):
        return bool(L.port_has_property(plugin, port, w.uri(prop)))

    default, lo, hi = _range(plugin, port)
    log, integer, toggled = has(PORT_PROPS + "logarithmic"), has(LV2 + "integer"), has(LV2 + "toggled")
    if has(LV2 + "sampleRate"):
        # the spec scales the bounds; a default within the unscaled bounds is taken as scaled too
        # (swh-lv2 writes 0.112575 for a cutoff in 0.0001..0.45), one outside them as absolute
        # (fomp writes 440 Hz for a frequency in 0.00003..0.5)
        if default is not None and lo is not None and hi is not None and lo <= default <= hi:
            default *= sample_rate
        lo = lo * sample_rate if lo is not None else None
        hi = hi * sample_rate if hi is not None else None
    lo = 0.0 if lo is None else lo
    if hi is None:
        hi = max(1.0, lo + 1.0)
    if hi < lo:
        lo, hi = hi, lo
    default = lo if default is None else min(max(default, lo), hi)
    if log and lo <= 0:
        log = False                                     # a log slider needs a positive range
    points, labels = (), ()
    if has(LV2 + "enumeration"):
        found: dict[float, str] = {}
        for value, label in sorted(scale_points(L.port_get_scale_points(plugin, port)), key=lambda p: p[0]):
            found.setdefault(value, label)
        if found:
            points, labels = tuple(found), tuple(found.values())
            default = min(points, key=lambda p: abs(p - default))
    if toggled and not points:
        default = hi if default >= 0.5 * (lo + hi) else lo
    if integer and not points:
        default = float(round(default))
    return Control(index=index, symbol=symbol, name=name, minimum=float(lo), maximum=float(hi),
                   default=float(default), log=log, integer=integer, toggled=toggled,
                   points=points, labels=labels)


def _category(label: str) -> str:
    """A class label without lv2core's 'Plugin' suffix ('Lowpass Filter Plugin' -> 'Lowpass
    Filter'; lv2core spells one 'Comb FilterPlugin')."""
    label = label.strip()
    if label.endswith("Plugin") and label != "Plugin":
        label = label[:-len("Plugin")].rstrip()
    return label


def _port_type(w: _World, plugin, port) -> str:
    for kind, cls in (("audio", LV2 + "AudioPort"), ("control", LV2 + "ControlPort"),
                      ("cv", LV2 + "CVPort"), ("atom", ATOM + "AtomPort")):
        if L.port_is_a(plugin, port, w.uri(cls)):
            return kind
    return "other"


def _reports_latency(w: _World, plugin, port) -> bool:
    if L.port_has_property(plugin, port, w.uri(LV2 + "reportsLatency")):
        return True
    designation = L.port_get(plugin, port, w.uri(LV2 + "designation"))
    if not designation:
        return False
    try:
        return bool(L.node_equals(designation, w.uri(LV2 + "latency")))
    finally:
        L.node_free(designation)


def _problem(required: list[str], ports: list[Port], valid: bool) -> str:
    if not valid:
        return "its description is incomplete (lilv could not verify it)"
    missing = [f for f in required if f not in SUPPORTED_FEATURES]
    if missing:
        return f"needs {short_feature(missing[0])}, which Dualtone does not provide"
    bad = next((p for p in ports if p.type == "other"), None)
    if bad is not None:
        return f"port '{bad.symbol}' has an unsupported type"
    return audio_path_problem(ports)


def _describe(w: _World, plugin, sample_rate: float) -> PluginInfo:
    uri = text(L.plugin_get_uri(plugin))
    ports, controls, latency = [], [], None
    for i in range(L.plugin_get_num_ports(plugin)):
        port = L.plugin_get_port_by_index(plugin, i)
        symbol = text(L.port_get_symbol(plugin, port))
        name = owned_text(L.port_get_name(plugin, port)) or symbol
        kind = _port_type(w, plugin, port)
        output = bool(L.port_is_a(plugin, port, w.uri(LV2 + "OutputPort")))
        ports.append(Port(i, symbol, name, kind, output))
        if kind == "control" and not output:
            controls.append(_control(w, plugin, port, i, symbol, name, sample_rate))
        elif kind == "control" and latency is None and _reports_latency(w, plugin, port):
            latency = i
    cls = L.plugin_get_class(plugin)
    category = ""
    if cls and text(L.plugin_class_get_uri(cls)) != LV2 + "Plugin":
        category = _category(text(L.plugin_class_get_label(cls)))
    minor, micro = _first_number(w, plugin, LV2 + "minorVersion"), _first_number(w, plugin, LV2 + "microVersion")
    version = f"{int(minor)}.{int(micro or 0)}" if minor is not None else ""
    bundle = L.plugin_get_bundle_uri(plugin)
    library = path(bundle)
    library = library.rstrip("/") or library
    required = owned_texts(L.plugin_get_required_features(plugin))
    return PluginInfo(id=f"lv2:{uri}", api="lv2", name=owned_text(L.plugin_get_name(plugin)) or uri,
                      maker=owned_text(L.plugin_get_author_name(plugin)), category=category,
                      ports=tuple(ports), controls=tuple(controls), latency_port=latency,
                      required_features=tuple(required),
                      unusable=_problem(required, ports, bool(L.plugin_verify(plugin))),
                      version=version, library=library)


def discover(sample_rate: float = 48000.0) -> list[PluginInfo]:
    """Every LV2 plugin of LV2_PATH's bundles (lilv's default folders without it), by name.
    OSError when liblilv-0 is not installed. No plugin library is loaded."""
    with _lock:
        w = _world(fresh=True)
        out = [_describe(w, p, float(sample_rate)) for p in w.plugins()]
    return sorted(out, key=lambda i: (i.name.lower(), i.id))


def _uri(info: PluginInfo) -> str:
    if not info.id.startswith("lv2:"):
        raise PluginError(f"{info.id} is not an LV2 plugin")
    return info.id[len("lv2:"):]


# ------------------------------------------------------------------ instances

class Feature(ctypes.Structure):          # LV2_Feature
    _fields_ = [("URI", ctypes.c_char_p), ("data", ctypes.c_void_p)]


class Option(ctypes.Structure):           # LV2_Options_Option
    _fields_ = [("context", ctypes.c_uint32), ("subject", ctypes.c_uint32), ("key", ctypes.c_uint32),
                ("size", ctypes.c_uint32), ("type", ctypes.c_uint32), ("value", ctypes.c_void_p)]


class Descriptor(ctypes.Structure):       # LV2_Descriptor
    _fields_ = [("URI", ctypes.c_char_p), ("instantiate", ctypes.c_void_p),
                ("connect_port", ctypes.c_void_p), ("activate", ctypes.c_void_p),
                ("run", ctypes.c_void_p), ("deactivate", ctypes.c_void_p),
                ("cleanup", ctypes.c_void_p), ("extension_data", ctypes.c_void_p)]


class InstanceImpl(ctypes.Structure):     # struct LilvInstanceImpl (public in lilv.h)
    _fields_ = [("lv2_descriptor", ctypes.POINTER(Descriptor)), ("lv2_handle", ctypes.c_void_p),
                ("pimpl", ctypes.c_void_p)]


_CONNECT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_VOID_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _Features:
    """The feature array an instance is created with, and everything it points to (kept alive as
    long as the instance, since plugins may keep these pointers)."""

    def __init__(self, sample_rate: float, max_frames: int):
        self.sample_rate = ctypes.c_float(sample_rate)
        self.min_block = ctypes.c_int32(1)
        self.max_block = ctypes.c_int32(max_frames)
        self.sequence_size = ctypes.c_int32(ATOM_CAPACITY)
        f, i = U.urid(ATOM + "Float"), U.urid(ATOM + "Int")
        entries = [(PARAMETERS + "sampleRate", f, self.sample_rate),
                   (BUF_SIZE + "minBlockLength", i, self.min_block),
                   (BUF_SIZE + "maxBlockLength", i, self.max_block),
                   (BUF_SIZE + "sequenceSize", i, self.sequence_size)]
        self.options = (Option * (len(entries) + 1))(
            *[Option(0, 0, U.urid(key), ctypes.sizeof(value), kind, ctypes.addressof(value))
              for key, kind, value in entries])                      # the last one stays zero
        data = [(URID_MAP, ctypes.addressof(U.MAP)), (URID_UNMAP, ctypes.addressof(U.UNMAP)),
                (OPTIONS_OPTIONS, ctypes.addressof(self.options))] + [(uri, None) for uri in NULL_DATA_FEATURES]
        self.features = [Feature(uri.encode(), address) for uri, address in data]
        self.array = (ctypes.POINTER(Feature) * (len(self.features) + 1))(
            *[ctypes.pointer(x) for x in self.features])              # NULL-terminated

    @property
    def address(self) -> int:
        return ctypes.addressof(self.array)


class Lv2Instance(PluginInstance):
    api_code = API_LV2

    def __init__(self, info: PluginInfo, sample_rate: float, max_frames: int):
        self._instance = None
        self._world = None
        super().__init__(info, sample_rate, max_frames)
        self._features = _Features(self.sample_rate, self.max_frames)
        self.atom_urids = np.array([U.urid(ATOM + "Sequence"), U.urid(ATOM + "Chunk")], dtype=np.int64)
        with _lock:
            world = _world()
            plugin = world.plugin(_uri(info))
            if not plugin:
                raise PluginError(f"{info.id}: no such LV2 plugin is installed (LV2_PATH)")
            instance = L.plugin_instantiate(plugin, self.sample_rate, self._features.address)
            if not instance:
                raise PluginError(f"{info.id}: the plugin refused to instantiate")
            world.instances += 1
            self._world, self._instance = world, instance
        impl = ctypes.cast(instance, ctypes.POINTER(InstanceImpl)).contents
        d = impl.lv2_descriptor.contents
        self.handle = int(impl.lv2_handle or 0)
        self.run_address = int(d.run or 0)
        if not d.connect_port or not self.run_address:
            self.close()
            raise PluginError(f"{info.id}: the plugin has no run or connect_port function")
        self._connect_fn = _CONNECT(d.connect_port)
        self._activate_fn = _VOID_FN(d.activate) if d.activate else None
        self._deactivate_fn = _VOID_FN(d.deactivate) if d.deactivate else None
        self.connect_all()

    def _cleanup(self):
        instance, self._instance = self._instance, None
        if instance:
            with _lock:
                L.instance_free(instance)
                self._world.release()
        self.run_address = self.handle = 0


# ------------------------------------------------------------------ presets

_VALUE_READERS = {ATOM + "Float": ctypes.c_float, ATOM + "Double": ctypes.c_double,
                  ATOM + "Int": ctypes.c_int32, ATOM + "Long": ctypes.c_int64, ATOM + "Bool": ctypes.c_int32}


def factory_presets(info: PluginInfo) -> dict[str, dict[str, float]]:
    """The plugin's LV2 presets: label -> {control symbol: value}, by label; values of ports that
    are not input controls of this plugin are left out. {} when it has none."""
    symbols = {c.symbol for c in info.controls}
    readers = {U.urid(uri): kind for uri, kind in _VALUE_READERS.items()}
    out: dict[str, dict[str, float]] = {}
    with _lock:
        w = _world()
        plugin = w.plugin(_uri(info))
        if not plugin:
            return {}
        related = L.plugin_get_related(plugin, w.uri(PRESETS + "Preset"))
        try:
            for preset in nodes(related):
                L.world_load_resource(w.ptr, preset)
                state = L.state_new_from_world(w.ptr, ctypes.addressof(U.MAP), preset)
                if not state:
                    continue
                values: dict[str, float] = {}

                def collect(symbol, _user, value, size, kind):
                    name = symbol.decode("utf-8", "replace") if symbol else ""
                    reader = readers.get(kind)
                    if name in symbols and value and reader is not None and size == ctypes.sizeof(reader):
                        values[name] = float(reader.from_address(value).value)

                callback = SET_PORT_VALUE(collect)
                try:
                    label = L.state_get_label(state)
                    label = label.decode("utf-8", "replace") if label else text(preset)
                    L.state_emit_port_values(state, callback, None)
                finally:
                    L.state_free(state)
                key, n = label, 2
                while key in out:
                    key, n = f"{label} ({n})", n + 1
                out[key] = values
        finally:
            if related:
                L.nodes_free(related)
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))
