"""Knobs: everything a user turns — a hidden circuit parameter, a model's or plugin's control, an
insert's control, the learning rate, the master level — as one KnobSpec (range and kind, both
directions of the value <-> position mapping) and one value in a KnobBank.

The GUI's sliders and bars, MIDI learn and presets all go through this module: nothing else maps a
slider position to a value. No Qt, no audio: the session owns the bank and tells the callback.

Kinds (what plugins declare; circuits use the first two):
    linear    value = lo + (hi - lo) * f
    log       value = lo * (hi / lo) ** f               (0 < lo < hi)
    integer   linear, rounded to a whole number          (stepped)
    toggle    0 below f = 0.5, else 1
    enum      one of len(labels) values lo, lo + 1, ...  (labels name them)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

KINDS = ("linear", "log", "integer", "toggle", "enum")


class KnobError(ValueError):
    pass


@dataclass(frozen=True)
class KnobSpec:
    name: str
    lo: float
    hi: float
    kind: str = "linear"
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise KnobError(f"knob '{self.name}': unknown kind '{self.kind}' (one of {', '.join(KINDS)})")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo <= self.hi):
            raise KnobError(f"knob '{self.name}': the range [{self.lo:g}, {self.hi:g}] is not finite "
                            "and increasing")
        if self.kind == "log" and not self.lo > 0:
            raise KnobError(f"knob '{self.name}': a log knob needs a positive minimum, not {self.lo:g}")
        if self.kind == "enum" and len(self.labels) != int(round(self.hi - self.lo)) + 1:
            raise KnobError(f"knob '{self.name}': {len(self.labels)} labels for "
                            f"{int(round(self.hi - self.lo)) + 1} values")

    @property
    def log(self) -> bool:
        return self.kind == "log"

    @property
    def steps(self) -> int:
        """Distinct positions: 0 for a continuous knob."""
        if self.kind in ("integer", "enum"):
            return int(math.floor(self.hi) - math.ceil(self.lo)) + 1
        return 2 if self.kind == "toggle" else 0

    def clamp(self, value: float) -> float:
        v = min(max(float(value), self.lo), self.hi)
        if self.kind in ("integer", "enum"):
            v = min(max(float(round(v)), math.ceil(self.lo)), math.floor(self.hi))
        elif self.kind == "toggle":
            v = self.hi if v >= 0.5 * (self.lo + self.hi) else self.lo
        return v

    def value_at(self, fraction: float) -> float:
        """The value at a slider position in [0, 1] (outside: clamped)."""
        f = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
        if self.kind == "log":
            return min(max(self.lo * (self.hi / self.lo) ** f, self.lo), self.hi)
        return self.clamp(self.lo + (self.hi - self.lo) * f)

    def fraction_of(self, value: float) -> float:
        """The slider position in [0, 1] of a value (outside the range: the nearest end)."""
        if self.hi == self.lo or not math.isfinite(value):
            return 0.0
        v = min(max(float(value), self.lo), self.hi)
        if self.kind == "log":
            return math.log(v / self.lo) / math.log(self.hi / self.lo)
        return (v - self.lo) / (self.hi - self.lo)

    def text(self, value: float) -> str:
        if self.kind == "enum":
            return self.labels[int(self.clamp(value) - math.ceil(self.lo))]
        if self.kind == "toggle":
            return "on" if self.clamp(value) == self.hi else "off"
        if self.kind == "integer":
            return f"{int(self.clamp(value))}"
        return f"{value:.4g}"


def around(name: str, value: float, lo: float, hi: float, log: bool = False) -> KnobSpec:
    """A knob for a declaration that may be unbounded: an unbounded side gets a range around the
    current value, so the slider still moves it."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        span = max(1.0, 2.0 * abs(value)) if math.isfinite(value) else 1.0
        return KnobSpec(name, -span, span)
    return KnobSpec(name, lo, hi, "log" if log and lo > 0 else "linear")


@dataclass
class _Entry:
    spec: KnobSpec | Callable[[float], KnobSpec]
    value: float
    write: Callable[[float], None]
    clamp: bool


@dataclass
class KnobBank:
    """One value per knob. `define` registers a knob with its current value and the function
    that applies a value (to what the audio thread reads); `set` clamps, stores, logs the turn
    and applies. A knob's value lives here and only here: the window, MIDI learn and presets read
    it from the bank, and a circuit built while knobs turn takes the turns logged since its build
    began (turned_since).

    A knob whose declaration is unbounded has no range of its own: define it with a function
    value -> KnobSpec (its slider spans around the value) and clamp=False."""
    _knobs: dict[str, _Entry] = field(default_factory=dict)
    _turns: dict[str, tuple[float, int]] = field(default_factory=dict)
    seq: int = 0                     # the number of the last turn

    def define(self, spec, value: float, write: Callable[[float], None] = lambda v: None,
               clamp: bool = True, name: str | None = None):
        """spec: a KnobSpec, or a function value -> KnobSpec (then give `name`)."""
        name = spec.name if isinstance(spec, KnobSpec) else name
        entry = _Entry(spec, float(value), write, clamp)
        if clamp:
            entry.value = self._spec(entry).clamp(value)
        self._knobs[name] = entry

    def forget(self, prefix: str):
        """Drop every knob whose name starts with prefix (a circuit or a model went away)."""
        for name in [n for n in self._knobs if n.startswith(prefix)]:
            del self._knobs[name]

    def __contains__(self, name: str) -> bool:
        return name in self._knobs

    def names(self, prefix: str = "") -> list[str]:
        return [n for n in self._knobs if n.startswith(prefix)]

    def spec(self, name: str) -> KnobSpec:
        return self._spec(self._entry(name))

    def specs(self, prefix: str = "") -> dict[str, KnobSpec]:
        return {n: self._spec(e) for n, e in self._knobs.items() if n.startswith(prefix)}

    def value(self, name: str) -> float:
        return self._entry(name).value

    def values(self, prefix: str = "") -> dict[str, float]:
        """{name without the prefix: value} of the knobs under prefix."""
        return {n[len(prefix):]: e.value for n, e in self._knobs.items() if n.startswith(prefix)}

    def set(self, name: str, value: float) -> float:
        entry = self._entry(name)
        if not math.isfinite(value):
            raise KnobError(f"knob '{name}': {value} is not a finite number")
        entry.value = self._spec(entry).clamp(value) if entry.clamp else float(value)
        self.seq += 1
        self._turns[name] = (entry.value, self.seq)
        entry.write(entry.value)
        return entry.value

    def set_fraction(self, name: str, fraction: float) -> float:
        return self.set(name, self.spec(name).value_at(fraction))

    def fraction(self, name: str) -> float:
        entry = self._entry(name)
        return self._spec(entry).fraction_of(entry.value)

    def turned_since(self, seq: int) -> dict[str, float]:
        """{name: value} of the knobs turned after turn number `seq` (also of knobs since
        forgotten: a circuit being built may have them)."""
        return {n: v for n, (v, s) in self._turns.items() if s > seq}

    @staticmethod
    def _spec(entry: _Entry) -> KnobSpec:
        return entry.spec if isinstance(entry.spec, KnobSpec) else entry.spec(entry.value)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._knobs[name]
        except KeyError:
            known = ", ".join(self._knobs) or "none"
            raise KnobError(f"no knob named '{name}' (knobs: {known})") from None


# the session's own knobs, beside the bank's (a preset's MIDI mappings may name them)
# the learning rate's one range, wide enough for every optimiser's scale (factory presets use 5e-4 … 50)
SETTING_KNOBS = {"lr": KnobSpec("lr", 1e-6, 100.0, "log"), "master": KnobSpec("master", 0.0, 1.0),
                 "source_hz": KnobSpec("source_hz", 20.0, 20000.0, "log"),
                 "volume": KnobSpec("volume", -60.0, 12.0), "mute": KnobSpec("mute", 0.0, 1.0, "toggle"),
                 "source_level": KnobSpec("source_level", -40.0, 6.0)}
SOURCE_LEVEL = SETTING_KNOBS["source_level"]    # dB on the source: 0 = each generator's full scale
VOLUME = SETTING_KNOBS["volume"]                # dB at the speakers; below the range is mute's job
