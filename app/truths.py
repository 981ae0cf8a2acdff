"""Ground truths from outside, ready for a slot: an SPTMod model, a plugin, a recording pair or a
device on the audio interface, each with its processor (what the callback runs), its controls as
knobs (KnobSpec, value) and a way to turn them. The target reads the output under the kind's
name (`sptmod`, `plugin`, `recording`, `device`). Built off the
audio thread; a control turned here takes effect at the next latch (HostMemory.latch_controls)."""
from __future__ import annotations

import numpy as np

from app.host import layout as H
from app.host.memory import ChannelProcessors
from app.host.processors.words import PR_SEAM
from app.knobs import KnobSpec


# Learning against a plugin, a recording or a device: float32 rounding noise (a recording's loop
# seam, where the device's state starts from silence again; a device's own noise) would keep a
# constant-rate optimiser moving after it converged, so the rate decays by default (x0.7 every
# 4800 steps, down to 0.1 % of it), and starts over whenever a knob is turned.
OUTSIDE_DECAY = (0.7, 4800, 0.001)


def outside_settings(settings):
    """Settings with the default decay against an outside ground truth, unless they already have
    a schedule."""
    import dataclasses
    if settings.lr_decay_every > 0:
        return settings
    decay, every, floor = OUTSIDE_DECAY
    return dataclasses.replace(settings, lr_decay=decay, lr_decay_every=every, lr_min=floor * settings.lr)


class GroundTruth:
    kind = ""                 # the name the target reads it by
    title = ""                # what it is, in a sentence

    def __init__(self, processor, specs: dict[str, KnobSpec], values: dict[str, float]):
        self.processor = processor
        self.specs = specs                  # control name -> KnobSpec (named hidden:NAME)
        self.controls = dict(values)        # control name -> value (the knob's)

    def set_control(self, name: str, value: float):
        self.controls[name] = float(value)
        self._prepare()

    def stored_value(self, name: str, knob: float) -> float:
        """What a spec or preset stores for this knob value (the same, except where the knob is
        an index)."""
        return knob

    def _prepare(self):
        raise NotImplementedError

    def close(self):
        """Free what the processor holds (only once no callback runs it)."""


class SptModTruth(GroundTruth):
    kind = "sptmod"
    title = "an SPTMod model"

    def __init__(self, stream, model, values: dict[str, float], max_frames: int):
        from app.host.processors import SptModProcessor
        specs = {c["name"]: KnobSpec(f"hidden:{c['name']}", c["min"], c["max"]) for c in model.controls}
        super().__init__(SptModProcessor(stream, max_frames), specs, values)
        self.model = model

    def _prepare(self):
        self.processor.prepare_controls(list(self.controls.values()))


def plugin_knob(control, prefix: str = "hidden:") -> KnobSpec:
    """The knob of a plugin control: stepped, toggled, enumerated (value = index) or a slider."""
    name = prefix + control.symbol
    if control.enumerated:
        return KnobSpec(name, 0, len(control.points) - 1, "enum", control.labels)
    if control.toggled:
        return KnobSpec(name, 0.0, 1.0, "toggle")
    if control.integer:
        return KnobSpec(name, control.minimum, control.maximum, "integer")
    if control.log and control.minimum > 0:
        return KnobSpec(name, control.minimum, control.maximum, "log")
    return KnobSpec(name, control.minimum, control.maximum)


def knob_value(control, value: float) -> float:
    """A plugin value as its knob's value (an enumerated control's knob is the point's index)."""
    v = control.clamp(value)
    return float(control.points.index(v)) if control.enumerated else v


def plugin_value(control, knob: float) -> float:
    """A knob's value as the plugin's (the inverse of knob_value)."""
    if control.enumerated:
        k = min(max(int(round(knob)), 0), len(control.points) - 1)
        return control.points[k]
    return control.clamp(knob)


class PluginTruth(GroundTruth):
    """A plugin instance; values are in the plugin's units (an enumerated control's, its value)."""
    kind = "plugin"
    title = "a plugin"

    def __init__(self, instance, values: dict[str, float], max_frames: int, channel: int = 0,
                 prefix: str = "hidden:"):
        from app.host.processors import PluginProcessor
        info = instance.info
        self.info = info
        self.channel = channel
        specs = {c.symbol: plugin_knob(c, prefix) for c in info.controls}
        knobs = {c.symbol: knob_value(c, values.get(c.symbol, c.default)) for c in info.controls}
        super().__init__(PluginProcessor(instance, max_frames, channel), specs, knobs)
        self._prepare()
        self.processor.latch_now()
        self.processor.glide_now()          # the first block starts at the set values

    def _prepare(self):
        self.processor.prepare_controls([plugin_value(c, self.controls[c.symbol]) for c in self.info.controls])

    def stored_value(self, name: str, knob: float) -> float:
        c = self.info.control(name)
        return knob if c is None else plugin_value(c, knob)

    def plugin_values(self) -> dict[str, float]:
        """The controls in the plugin's own units (what a preset stores)."""
        return {c.symbol: plugin_value(c, self.controls[c.symbol]) for c in self.info.controls}

    def close(self):
        self.processor.close()


def open_plugin(plugin_id: str, values: dict[str, float], sample_rate: float, max_frames: int,
                channel: int = 0, prefix: str = "hidden:", probe: bool = True) -> PluginTruth:
    """Find, probe (in a subprocess, cached) and instantiate a plugin; PluginError (one line) when
    it is missing, unusable, crashed in the probe, or a control is unknown or out of range."""
    from app.plugins import registry
    from app.plugins.instance import PluginError
    info = registry.find(plugin_id, sample_rate)
    if info.unusable:
        raise PluginError(f"{info.id} ({info.name}) cannot be used: {info.unusable}")
    for name, v in values.items():
        c = info.control(name)
        if c is None:
            have = ", ".join(c.symbol for c in info.controls) or "none"
            raise PluginError(f"{info.id} has no control '{name}' (its controls: {have})")
        if not np.isfinite(v):
            raise PluginError(f"{info.id}: the control '{name}' must be a finite number")
        if c.enumerated and v not in c.points:
            labels = ", ".join(f"{p:g}={lab}" for p, lab in zip(c.points, c.labels))
            raise PluginError(f"{info.id}: '{name}' = {v:g} is not one of its values ({labels})")
        if not c.minimum <= v <= c.maximum:
            raise PluginError(f"{info.id}: '{name}' = {v:g} is outside its range "
                              f"[{c.minimum:g}, {c.maximum:g}]")
    outs = len(info.audio_outputs)
    if not 0 <= channel < outs:
        raise PluginError(f"{info.id} has {outs} output channel(s): channel {channel} does not exist")
    if probe:
        from app.plugins.probe import probe as probe_plugin
        result = probe_plugin(info, sample_rate)
        if not result.ok:
            raise PluginError(f"{info.id} ({info.name}) is not loaded: it {result.reason}")
    instance = registry.instantiate(info, sample_rate, max_frames)
    return PluginTruth(instance, values, max_frames, channel, prefix)


class RecordingTruth(GroundTruth):
    """A dry/wet pair played in sample lock: the learner hears the dry file, the target reads
    the wet one as `recording`. Its one knob is the alignment, in samples (the wet file played
    that much earlier: the device's latency)."""
    kind = "recording"
    title = "a recording"

    def __init__(self, recording, align: int, max_frames: int):
        from app.host.processors import RecordingProcessor
        self.recording = recording
        n = recording.dry.size
        reach = min(n // 2, max(int(0.5 * recording.rate), 2 * abs(int(align))))
        align = max(-reach, min(reach, int(align)))
        specs = {"align": KnobSpec("hidden:align", -reach, reach, "integer")}
        super().__init__(RecordingProcessor(recording.dry, recording.wet, align, max_frames),
                         specs, {"align": float(align)})
        self.processor.latch_now()

    @property
    def align(self) -> int:
        return int(round(self.controls["align"]))

    def _prepare(self):
        self.processor.prepare_controls([self.controls["align"]])

    def stored_value(self, name: str, knob: float) -> float:
        return float(round(knob))

    def summary(self) -> dict:
        r = self.recording
        return {"align": self.align, "seconds": round(r.seconds, 6), "rate": r.file_rate}


class DeviceTruth(GroundTruth):
    """A device on the audio interface: the learner's input is sent to it on an output channel
    and its return, on an input channel, is the target (`device`). No knobs: the device's own
    are on the device. Its latency (the round trip) is measured before learning."""
    kind = "device"
    title = "a device on the audio interface"

    def __init__(self, memory, return_channel: int, send_channel: int, latency: int = 0,
                 max_latency: int | None = None):
        from app.host.processors import DeviceProcessor
        from app.recordings.align import probe_signal
        sr = float(memory.ctl[H.C_SAMPLE_RATE])
        self.max_latency = int(max_latency if max_latency is not None else 0.5 * sr)
        self.probe_signal = probe_signal(sr)
        # the signal, then twice the search range of silence (align.measure_round_trip)
        super().__init__(DeviceProcessor(memory.device_return, memory.device_send,
                                         self.probe_signal.size + 2 * self.max_latency, self.max_latency,
                                         memory.max_frames), {}, {})
        self.return_channel, self.send_channel = int(return_channel), int(send_channel)
        self.alignment = None                   # the last measurement (align.Alignment)
        self.processor.set_latency(min(max(int(latency), 0), self.max_latency))

    def _prepare(self):
        pass


class OfflineTruth:
    """A ground truth run outside the callback (learn, render) through the callback's own code
    (processors.run_as_target), a block of FRAMES at a time: the learner's input delayed by the
    latency, and the target; `seams`: where a looping recording started over (the learner's
    circuits restart there: learn_from)."""
    FRAMES = 4096

    def __init__(self, truth: GroundTruth):
        self.truth = truth
        self._out = np.zeros((self.FRAMES, 3))
        self.latencies: set[int] = set()
        self.seams: list[int] = []          # where the last render's ground truth started over

    def render(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from app.host.processors import run_as_target
        p = self.truth.processor
        x = np.ascontiguousarray(x, dtype=np.float64)
        dry, target = np.empty_like(x), np.empty_like(x)
        self.seams = []
        for k in range(0, x.size, self.FRAMES):
            n = min(self.FRAMES, x.size - k)
            run_as_target(p.table, x[k:k + n], self._out, n)
            if p.table[PR_SEAM] >= 0:
                self.seams.append(k + int(p.table[PR_SEAM]))
            target[k:k + n] = self._out[:n, 0]
            dry[k:k + n] = p.dry[:n]
            self.latencies.add(p.latency)
            p.service()                        # e.g. a restart the step asked for, here and now
        return dry, target

    def summary(self) -> dict:
        t = self.truth
        if not isinstance(t, PluginTruth):
            return t.summary()
        out = {"id": t.info.id, "name": t.info.name, "controls": t.plugin_values(),
               "latency": t.processor.latency, "restarts": t.processor.restarts}
        if len(t.info.audio_outputs) > 1:
            out["channel"] = "right" if t.channel else "left"
        return out

    def close(self):
        self.truth.close()


class PluginInsert(ChannelProcessors):
    """A plugin as an insert effect on the output: one instance per speaker channel (each hears
    its channel on every input; the right one plays the plugin's right output when it has one),
    controls shared. The same interface as host.memory.Insert (processors, addresses, ...)."""

    def __init__(self, plugin_id: str, values: dict[str, float], sample_rate: float, max_frames: int):
        from app.host.memory import resident
        from app.plugins.instance import PluginError
        left = open_plugin(plugin_id, values, sample_rate, max_frames, 0, prefix="insert:")
        try:
            right = open_plugin(plugin_id, values, sample_rate, max_frames,
                                min(1, len(left.info.audio_outputs) - 1), prefix="insert:", probe=False)
        except PluginError:
            left.close()
            raise
        self.truths = [left, right]
        self.info = left.info
        self.processors = [t.processor for t in self.truths]
        self.addresses = np.array([p.table.ctypes.data for p in self.processors], dtype=np.int64)
        for p in self.processors:
            for a in p.arrays():
                resident(a)

    @property
    def specs(self) -> dict:
        return self.truths[0].specs

    @property
    def controls(self) -> dict:
        return self.truths[0].controls

    def set_control(self, name: str, value: float):
        for t in self.truths:
            t.set_control(name, value)

    def plugin_values(self) -> dict:
        return self.truths[0].plugin_values()

    def close(self):
        for t in self.truths:
            t.close()
