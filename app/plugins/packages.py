"""Which Debian package usually ships a plugin, for the message when a preset's plugin is missing."""
from __future__ import annotations

# LV2 URI prefixes and LADSPA UniqueID ranges of the packages Dualtone's presets and tests use
LV2_PREFIXES = {"http://plugin.org.uk/swh-plugins/": "swh-lv2", "http://drobilla.net/plugins/fomp/": "fomp",
                "http://gareus.org/oss/lv2/": "x42-plugins", "http://calf.sourceforge.net/plugins/": "calf-plugins",
                "http://lsp-plug.in/plugins/lv2/": "lsp-plugins-lv2", "urn:zamaudio:": "zam-plugins"}
LADSPA_RANGES = [(1041, 1050, "ladspa-sdk"), (1181, 1440, "swh-plugins"), (1600, 1608, "swh-plugins"),
                 (1881, 1920, "swh-plugins"), (2141, 2160, "tap-plugins")]
LADSPA_LABELS = {"lpf": "ladspa-sdk", "hpf": "ladspa-sdk", "amp_mono": "ladspa-sdk", "amp_stereo": "ladspa-sdk",
                 "delay_5s": "ladspa-sdk", "fastLookaheadLimiter": "swh-plugins"}


def debian_package(plugin_id: str) -> str | None:
    api, _, rest = plugin_id.partition(":")
    if api == "lv2":
        return next((pkg for prefix, pkg in LV2_PREFIXES.items() if rest.startswith(prefix)), None)
    if api == "ladspa":
        if rest.isdigit():
            n = int(rest)
            return next((pkg for lo, hi, pkg in LADSPA_RANGES if lo <= n <= hi), None)
        return LADSPA_LABELS.get(rest)
    return None
