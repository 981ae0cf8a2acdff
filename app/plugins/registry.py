"""Every installed plugin, found by id: the one place that knows which API module handles which
id. ids are ladspa:<UniqueID> (also ladspa:<label> when unambiguous) and lv2:<URI>."""
from __future__ import annotations

import importlib

from app.plugins.catalogue import PluginInfo
from app.plugins.instance import PluginError, PluginInstance

# api name -> (module, instance class name)
APIS = {"ladspa": ("app.plugins.ladspa", "LadspaInstance"), "lv2": ("app.plugins.lv2", "Lv2Instance")}

_catalogues: dict[tuple[str, float], list[PluginInfo]] = {}


def _module(api: str):
    return importlib.import_module(APIS[api][0])


def catalogue(sample_rate: float = 48000.0, apis=None) -> list[PluginInfo]:
    """Every plugin of the given APIs (default: all; discovered once per process and sample rate)."""
    out = []
    for api in APIS if apis is None else apis:
        key = (api, float(sample_rate))
        if key not in _catalogues:
            try:
                _catalogues[key] = _module(api).discover(sample_rate)
            except (OSError, ImportError):   # e.g. no liblilv: that API simply has no plugins here
                _catalogues[key] = []
        out += _catalogues[key]
    return sorted(out, key=lambda i: (i.name.lower(), i.id))


def forget():
    """Discover again next time (after packages were installed)."""
    _catalogues.clear()


def find(plugin_id: str, sample_rate: float = 48000.0) -> PluginInfo:
    """The plugin with this id or alias; PluginError (one line) when there is none."""
    api = plugin_id.split(":", 1)[0]
    if api not in APIS or ":" not in plugin_id:
        raise PluginError(f"'{plugin_id}' is not a plugin id (ladspa:<UniqueID or label> or lv2:<URI>)")
    for info in catalogue(sample_rate, (api,)):
        if info.id == plugin_id or plugin_id in info.aliases:
            return info
    raise PluginError(f"no plugin '{plugin_id}' is installed (python main.py plugins --search TEXT "
                      "lists what is)")


def search(text: str, sample_rate: float = 48000.0) -> list[PluginInfo]:
    """Plugins whose id, name, maker or category contains every word of text (any case)."""
    words = text.lower().split()
    return [i for i in catalogue(sample_rate)
            if all(w in f"{i.id} {i.name} {i.maker} {i.category} {' '.join(i.aliases)}".lower() for w in words)]


def instantiate(info: PluginInfo, sample_rate: float, max_frames: int) -> PluginInstance:
    """A connected (not yet active) instance; PluginError when the plugin refuses."""
    module_name, class_name = APIS[info.api]
    return getattr(importlib.import_module(module_name), class_name)(info, sample_rate, max_frames)


def factory_presets(info: PluginInfo) -> dict[str, dict[str, float]]:
    """The plugin's own presets (LV2 lilv state): label -> {symbol: value}; LADSPA has none."""
    if info.api != "lv2":
        return {}
    return _module("lv2").factory_presets(info)
