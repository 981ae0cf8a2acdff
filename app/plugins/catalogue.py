"""What a plugin is, as the rest of Dualtone sees it, whichever API it comes from: PluginInfo (id,
name, maker, ports, controls, latency port, required features, why it is unusable) and Control
(one input control port: range, default, kind). No ctypes here; ladspa.py and lv2.py fill these."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from app.words import plural

PORT_TYPES = ("audio", "control", "atom", "cv", "other")


@dataclass(frozen=True)
class Port:
    index: int
    symbol: str
    name: str
    type: str                 # one of PORT_TYPES
    output: bool


@dataclass(frozen=True)
class Control:
    """An input control port. Values given by the user are the plugin's own units; an enumerated
    control's knob value is the index into `points` (which holds the plugin's values)."""
    index: int                # the port index
    symbol: str
    name: str
    minimum: float
    maximum: float
    default: float
    log: bool = False
    integer: bool = False
    toggled: bool = False
    points: tuple[float, ...] = ()        # enumeration: the values, in increasing order
    labels: tuple[str, ...] = ()          # and their labels

    @property
    def enumerated(self) -> bool:
        return bool(self.points)

    def clamp(self, value: float) -> float:
        """A value the plugin accepts: within its range, whole if integer, 0/1 if toggled, the
        nearest point if enumerated."""
        v = float(value)
        if not math.isfinite(v):
            return self.default
        if self.enumerated:
            return min(self.points, key=lambda p: abs(p - v))
        v = min(max(v, self.minimum), self.maximum)
        if self.toggled:
            return self.maximum if v >= 0.5 * (self.minimum + self.maximum) else self.minimum
        if self.integer:
            v = min(max(float(round(v)), math.ceil(self.minimum)), math.floor(self.maximum))
        return v

    def to_json(self) -> dict:
        return {"symbol": self.symbol, "name": self.name, "min": self.minimum, "max": self.maximum,
                "default": self.default, "log": self.log, "integer": self.integer,
                "toggled": self.toggled, "labels": dict(zip((_num(p) for p in self.points), self.labels))}


@dataclass(frozen=True)
class PluginInfo:
    id: str                    # ladspa:<UniqueID> or lv2:<URI>
    api: str                   # "ladspa" or "lv2"
    name: str
    maker: str
    category: str
    ports: tuple[Port, ...]
    controls: tuple[Control, ...]
    latency_port: int | None   # index of the output control port that reports latency
    required_features: tuple[str, ...] = ()
    unusable: str = ""         # why it cannot be used here ("" when it can)
    version: str = ""          # LV2 "minor.micro"; LADSPA has none
    library: str = ""          # the shared object (LADSPA) or bundle folder (LV2)
    index: int = 0             # LADSPA: the descriptor's index in its library
    label: str = ""            # LADSPA: the descriptor's label
    aliases: tuple[str, ...] = field(default=())   # other ids that name it (ladspa:<label>)

    @property
    def audio_inputs(self) -> list[Port]:
        return [p for p in self.ports if p.type == "audio" and not p.output]

    @property
    def audio_outputs(self) -> list[Port]:
        return [p for p in self.ports if p.type == "audio" and p.output]

    def control(self, symbol: str) -> Control | None:
        return next((c for c in self.controls if c.symbol == symbol), None)

    @property
    def usable(self) -> bool:
        return not self.unusable

    def to_json(self) -> dict:
        latency = next((p.symbol for p in self.ports if p.index == self.latency_port), None)
        return {"id": self.id, "name": self.name, "maker": self.maker, "category": self.category,
                "audio_inputs": len(self.audio_inputs), "audio_outputs": len(self.audio_outputs),
                "controls": [c.to_json() for c in self.controls], "latency_port": latency,
                "required_features": list(self.required_features),
                "usable": self.usable, "unusable_reason": self.unusable or None}


def _num(v: float):
    return int(v) if float(v).is_integer() else v


def ladspa_symbol(port_name: str) -> str:
    """A LADSPA port's symbol: its name lowercased, every run of other characters replaced by
    '_', no leading or trailing '_' ('Amps gain (dB)' -> 'amps_gain_db')."""
    s = re.sub(r"[^a-z0-9]+", "_", port_name.lower()).strip("_")
    return s if s and not s[0].isdigit() else f"p_{s}"


def unique_symbols(symbols: list[str]) -> list[str]:
    """Make symbols unique in port order by suffixing _2, _3, ... to repeats."""
    seen: dict[str, int] = {}
    out = []
    for s in symbols:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}_{seen[s]}")
    return out


def audio_path_problem(ports) -> str:
    """Why the audio ports give no mono or stereo path ("" when they do)."""
    n_in = sum(1 for p in ports if p.type == "audio" and not p.output)
    n_out = sum(1 for p in ports if p.type == "audio" and p.output)
    if n_in not in (1, 2) or n_out not in (1, 2):
        return (f"{plural(n_in, 'audio input')} and {plural(n_out, 'audio output')}: "
                "Dualtone needs a mono or stereo effect")
    return ""
