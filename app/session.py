"""The session: the one owner of what runs. It compiles circuits (off the audio thread), owns the
stream and the host memory, and changes what plays only by writing the mailbox (shared arrays the
callback reads at block boundaries). The GUI and the command line both go through it.

    s = Session(sample_rate=48000, blocksize=128)
    s.load(CircuitSpec("y = gain*x + dc", [ParamSpec("gain", 0), ParamSpec("dc", 0)],
                       hidden={"gain": 0.5, "dc": 0.5}))
    s.start(); s.set_hidden("gain", 0.7); s.set_output("error"); ...; s.close()
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np

from engine import blockabi as B
from engine import layout as LY
from engine.learn.banks import Banks
from engine.learn.health import LearningWatch
from engine.learn.learner import Learner, ParamSpec, Settings, SpectralKernelNeeded
from engine.learn.losses import NAMES as LOSS_NAMES
from engine.learn.optimizers import BY_NAME as OPTIMIZER_BY_NAME, NAMES as OPTIMIZER_NAMES
from app.host import layout as H
from app.host.stream import AudioUnavailable, open_stream
from app.host.memory import HostMemory, Slot
from app.host.telemetry import TelemetryReader
from app.knobs import SETTING_KNOBS, SOURCE_LEVEL, VOLUME, KnobBank, KnobSpec, around
from app.recordings.hardware import DeviceSpec, check_channels
from app.recordings.pair import RecordingSpec


LOSSES = LOSS_NAMES                 # the choices a window offers (engine/learn's tables)
OPTIMIZERS = OPTIMIZER_NAMES
SETS_ITS_OWN_STEP = frozenset(o for o in OPTIMIZER_NAMES if OPTIMIZER_BY_NAME[o].sets_its_own_step)   # no lr to turn


@dataclass
class CircuitSpec:
    """Everything needed to build a learner: what a preset stores."""
    circuit: str
    params: list[ParamSpec]
    target: str | None = None
    hidden: dict = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    # declarations (range, scale) of target parameters the learnable circuit lacks: knob ranges only
    hidden_params: list[ParamSpec] = field(default_factory=list)
    banks: Banks | None = None       # LACTOSE banks (engine/learn/banks.py)
    # an SPTMod model file whose output is the target's `sptmod` signal; its controls are hidden
    # knobs (values in `hidden` under the model's control names); model_sha256: the model's
    # content hash a preset was saved with (a different file is refused)
    model: str | None = None
    model_sha256: str | None = None
    # a LADSPA/LV2 plugin (its id) whose output is the target's `plugin` signal; its controls are
    # hidden knobs under their symbols (values in `hidden`, in the plugin's units);
    # plugin_channel: the output channel of a stereo plugin that is learned and heard (0 left)
    plugin: str | None = None
    plugin_channel: int = 0
    # a dry/wet recording pair whose wet file is the target's `recording` signal (its alignment
    # is the knob 'align' in `hidden`), or a device on the audio interface (`device`)
    recording: RecordingSpec | None = None
    device: DeviceSpec | None = None

    def declaration(self, name: str) -> ParamSpec | None:
        return next((p for p in list(self.params) + list(self.hidden_params) if p.name == name), None)


class SessionError(Exception):
    pass


class RebuildNeeded(SessionError):
    """A settings change the running kernel cannot take (the spectral loss on a kernel compiled
    without it): the caller applies the spec again with `settings`, compiling in the background."""

    def __init__(self, message: str, settings):
        super().__init__(message)
        self.settings = settings


def _new_spectral_bank(learner: Learner, new: Settings) -> bool:
    """new asks for the spectral loss on a kernel that has its bank, but with constants other than
    the ones written in it (a new range, or the first)."""
    return (new.loss == "spectral" and learner.spectral_ready
            and learner.spectral_range != (new.spectral_fmin, new.spectral_fmax))


def _db_of_gain(gain: float, knob: KnobSpec) -> float:
    """A linear gain in dB on its knob's scale (at or below the knob's minimum: the minimum)."""
    g = float(gain)
    return knob.lo if g <= 10.0 ** (knob.lo / 20.0) else round(20.0 * math.log10(g), 2)


def _progress_none(stage: str, fraction: float):
    pass


def _checked_model(path, sha256: str | None):
    """An SPTMod model file, loaded; SessionError (one line) if it is unusable or, given the
    content hash it was saved with, another model."""
    from engine.sptmod.file import ModelError, load_model
    try:
        model = load_model(path)
    except ModelError as e:
        raise SessionError(" ".join(str(e).split())) from None
    if sha256 is not None and model.sha256 != sha256:
        raise SessionError(f"{path}: not the model this was saved with (content hash "
                           f"{model.sha256[:12]}…, expected {sha256[:12]}…)")
    return model


class Session:
    def __init__(self, sample_rate: float = 48000.0, blocksize: int = 128, device=None,
                 want_input: bool = True, allow_virtual: bool = True, max_frames: int = 4096):
        if not (math.isfinite(sample_rate) and 8000 <= sample_rate <= 384000):
            raise SessionError(f"the sample rate must be between 8000 and 384000 Hz, got {sample_rate:g}")
        if not (isinstance(blocksize, int) and 16 <= blocksize <= max_frames):
            raise SessionError(f"the block size must be a whole number from 16 to {max_frames}")
        self.sample_rate, self.blocksize, self.device = float(sample_rate), blocksize, device
        self.want_input, self.allow_virtual = want_input, allow_virtual
        self.memory = HostMemory(self.sample_rate, 0, 2, max_frames)
        self.telemetry = TelemetryReader(self.memory, lambda: self.param_names)
        self.spec: CircuitSpec | None = None
        self.stream = None
        self._swap_lock = threading.Lock()
        self._midi_lock = threading.Lock()
        # the one owner of knob values: hidden parameters and model controls ('hidden:NAME'),
        # insert controls ('insert:NAME'). Turns are numbered, so a circuit compiled meanwhile
        # takes the ones made after its build began (a turn during a compile is never lost)
        self.knob_bank = KnobBank()
        self._knob_lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dualtone-compile")
        self._settings_lock = threading.Lock()
        self._settings_queued = 0     # configure() calls waiting for a kernel on the compile thread
        self._settings_wanted = (None, None)   # (learner, settings): the last asked for
        self.on_program_change: list = []
        self.midi_dropped = 0
        self.channels = (2, 2)        # (inputs, outputs) to open beyond stereo: a device in the loop
        self.health = LearningWatch(self.sample_rate)     # divergence and stalls, from the telemetry
        self._watched = None          # the slot the health watch follows
        self._limiter_from = (0.0, 0.0, 0.0)  # (onsets, samples, frames) when the count last started

    # ---- stream
    def open(self):
        """Open the audio device (or the virtual clock) without starting it."""
        if self.stream is None:
            self.stream = open_stream(self.memory, self.sample_rate, self.blocksize, self.device,
                                      self.want_input, self.allow_virtual, self.channels)
        return self.stream.info

    def start(self):
        self.open()
        self.stream.start()
        return self.stream.info

    def stop(self):
        if self.stream is not None and self.stream.active:
            self.stream.stop()

    def reopen(self, device=None, blocksize: int | None = None):
        """Move to another device or block size: the stream restarts, the learning state stays."""
        blocksize = self.blocksize if blocksize is None else blocksize
        if not (isinstance(blocksize, int) and 16 <= blocksize <= self.memory.max_frames):
            raise SessionError(f"the block size must be a whole number from 16 to {self.memory.max_frames}")
        was_running = self.running
        self._close_stream()
        self.device, self.blocksize = device, blocksize
        if was_running:
            return self.start()
        return self.open()

    def _close_stream(self):
        self.stop()
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def close(self):
        self.stop()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self._executor.shutdown(wait=True)
        for slot in dict.fromkeys(s for s in self.memory.slots if s is not None):
            slot.close()                          # the stream is closed: nothing runs them
        self.memory.free_retired(stopped=True)
        if self.memory.insert is not None:
            self.memory.insert.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def running(self) -> bool:
        return self.stream is not None and self.stream.active

    @property
    def info(self):
        return None if self.stream is None else self.stream.info

    @property
    def status_message(self) -> str:
        info = self.info
        if info is None:
            return "audio not started"
        if info.virtual:
            return f"learning on a virtual clock, without sound: {info.reason}"
        return f"playing on {info.device}, {info.sample_rate:g} Hz, {info.blocksize} frames"

    # ---- circuits
    def build(self, spec: CircuitSpec, progress=_progress_none) -> Slot:
        """Compile spec into a slot (any thread; seconds on first use, cached afterwards)."""
        progress("compiling (the first use of a circuit takes a few seconds)", 0.1)
        settings = dataclasses.replace(spec.settings)
        given = [what for what, v in (("an SPTMod model", spec.model), ("a plugin", spec.plugin),
                                      ("a recording", spec.recording), ("a device", spec.device)) if v is not None]
        if len(given) > 1:
            raise SessionError(f"one ground truth at a time: {given[0]} or {given[1]}, not both")
        truth = None
        if spec.model is not None:
            progress("loading the SPTMod model", 0.05)
            truth = self._open_model(spec)
        elif spec.plugin is not None:
            progress("loading the plugin (probed in a subprocess on first use)", 0.05)
            truth = self._open_plugin(spec)
        elif spec.recording is not None:
            progress("reading the recordings", 0.05)
            truth = self._open_recording(spec)
        elif spec.device is not None:
            truth = self._open_device(spec)
        controls = {} if truth is None else truth.controls
        hidden = {k: v for k, v in spec.hidden.items() if k not in controls}
        try:
            learner = Learner(spec.circuit, list(spec.params), target=spec.target, hidden=hidden,
                              settings=settings, sample_rate=self.sample_rate, banks=spec.banks)
            learner.kernel()                      # the kernel for its settings (compiled on first use)
            progress("compiled", 0.9)
            try:
                return Slot(learner, self.memory.x, self.memory.max_frames, truth=truth)
            except ValueError as e:             # the target and the ground truth do not match
                raise SessionError(str(e)) from None
        except BaseException:
            if truth is not None:
                truth.close()
            raise

    def _open_plugin(self, spec: CircuitSpec):
        """The plugin of spec, probed and instantiated, with its controls from spec.hidden."""
        from app.plugins import registry
        from app.plugins.instance import PluginError
        from app.truths import open_plugin
        try:
            info = registry.find(spec.plugin, self.sample_rate)
            values = {k: v for k, v in spec.hidden.items() if info.control(k) is not None}
            return open_plugin(spec.plugin, values, self.sample_rate, self.memory.max_frames,
                               channel=spec.plugin_channel)
        except PluginError as e:
            raise SessionError(str(e)) from None

    def _open_recording(self, spec: CircuitSpec):
        """The pair of spec at the session's rate (checked against the content hashes it was saved
        with), aligned by spec.hidden['align']."""
        from app.recordings.pair import RecordingError, load_pair
        from app.truths import RecordingTruth
        r = spec.recording
        try:
            rec = load_pair(r.dry, r.wet, r.channel, rate=self.sample_rate)
        except RecordingError as e:
            raise SessionError(str(e)) from None
        for path, want, got in ((r.dry, r.dry_sha256, rec.dry_sha256), (r.wet, r.wet_sha256, rec.wet_sha256)):
            if want is not None and want != got:
                raise SessionError(f"{path}: not the recording this was saved with (content hash "
                                   f"{got[:12]}…, expected {want[:12]}…)")
        r.dry_sha256, r.wet_sha256 = rec.dry_sha256, rec.wet_sha256
        align = self.memory.finite(spec.hidden.get("align", 0.0), "the alignment")
        return RecordingTruth(rec, int(round(align)), self.memory.max_frames)

    def _open_device(self, spec: CircuitSpec):
        from app.truths import DeviceTruth
        self._check_device(spec.device)
        return DeviceTruth(self.memory, spec.device.return_channel, spec.device.send_channel,
                           spec.device.latency or 0)

    def _check_device(self, device: DeviceSpec):
        info = self.info
        if info is None:
            return                                  # checked again when measured
        if info.virtual:
            raise SessionError("a device in the loop needs an audio interface, but the audio runs on "
                               f"a virtual clock ({info.reason})")
        problem = check_channels(device, info.n_in, info.n_out)
        if problem:
            raise SessionError(problem)

    def _route_device(self, slot: Slot):
        """The callback reads the return channel and plays the send channel of the device the
        playing slot learns from (-1: none)."""
        truth = slot.truth if slot.truth is not None and slot.truth.kind == "device" else None
        ctl = self.memory.ctl
        ctl[H.C_RETURN_CHANNEL] = -1.0 if truth is None else float(truth.return_channel)
        ctl[H.C_SEND_CHANNEL] = -1.0 if truth is None else float(truth.send_channel)

    def measure_latency(self):
        """Send the test signal to the device in the loop, record its return and delay the
        learner's input by the round trip found. Learning pauses meanwhile and starts over after
        (parameters back to their initial values). Returns the align.Alignment; SessionError (one
        line) when the return is silent, clips, has no echo in range or is ambiguous; the
        latency is then left as it was."""
        from app.recordings.align import AlignmentError, measure_round_trip
        slot = self.memory.active
        truth = None if slot is None else slot.truth
        if truth is None or truth.kind != "device":
            raise SessionError("no device is in the loop (the ground truth is not an input channel)")
        if not self.running:
            raise SessionError("start the audio first: the latency is measured through the device")
        self._check_device(DeviceSpec(truth.return_channel, truth.send_channel))
        p = truth.processor
        learning = slot.learner.settings.learning
        self.set_learning(False)
        try:
            p.start_probe(truth.probe_signal)
            self._wait(p.probe_done, timeout=p.probe.size / self.sample_rate + 2.0)
            if not p.probe_done():
                raise SessionError("the audio stopped during the latency measurement")
            try:
                found = measure_round_trip(p.probe.copy(), p.capture.copy(), self.sample_rate, truth.max_latency)
            except AlignmentError as e:
                raise SessionError(str(e)) from None
            p.set_latency(found.lag)
            truth.alignment = found
            if self.spec is not None and self.spec.device is not None:
                self.spec.device.latency, self.spec.device.polarity = found.lag, found.polarity
        finally:
            self.reset_learning()
            self.set_learning(learning)
        return found

    def ground_truth(self) -> dict | None:
        """What the running ground truth from outside is, for a summary: its kind and its
        particulars (None for a circuit target)."""
        slot = self.memory.active
        truth = None if slot is None else slot.truth
        if truth is None:
            return None
        out = {"kind": truth.kind, "restarts": truth.processor.restarts}
        if truth.kind == "recording":
            r = truth.recording
            out.update(dry=r.dry_path, wet=r.wet_path, align=truth.align, seconds=round(r.seconds, 6))
        elif truth.kind == "device":
            al = truth.alignment
            out.update(return_channel=truth.return_channel + 1, send_channel=truth.send_channel + 1,
                       latency=truth.processor.latency,
                       latency_ms=round(1000.0 * truth.processor.latency / self.sample_rate, 3))
            if al is not None:
                out.update(confidence=round(al.confidence, 3), polarity="inverted" if al.polarity < 0 else "normal")
        return out

    def _open_model(self, spec: CircuitSpec):
        """The model of spec (checked against its hash) as a ground truth: a float64 stream of it
        with the controls set (from spec.hidden, else the model's defaults)."""
        from engine.sptmod.stream import SptModStream
        model = _checked_model(spec.model, spec.model_sha256)
        spec.model_sha256 = model.sha256          # a preset saved from here names this model
        controls = {}
        for c in model.controls:
            v = self.memory.finite(spec.hidden.get(c["name"], c["default"]), f"the control '{c['name']}'")
            controls[c["name"]] = min(max(v, c["min"]), c["max"])
        stream = SptModStream(model.config, model.weights, dtype=np.float64,
                              max_block=min(8192, max(64, -(-self.memory.max_frames // 64) * 64)))
        stream.set_controls(list(controls.values()))
        from app.truths import SptModTruth
        return SptModTruth(stream, model, controls, self.memory.max_frames)

    def load(self, spec: CircuitSpec, progress=_progress_none):
        """Build spec and make it the running circuit (crossfaded when audio is running). The old
        circuit keeps playing until the new one is compiled."""
        knob_seq = self.knob_bank.seq        # turns after this point carry over to the new circuit
        slot = self.build(spec, progress)
        progress("switching", 0.95)
        self._install(slot, spec, knob_seq)
        self.restart_limiter_count()          # a new circuit's level is counted on its own
        progress("ready", 1.0)

    def load_async(self, spec: CircuitSpec, progress=_progress_none) -> concurrent.futures.Future:
        """load() on the compile thread; the future's exception is the compile error, if any."""
        return self._executor.submit(self.load, spec, progress)

    def _install(self, slot: Slot, spec: CircuitSpec, knob_seq: int):
        mem, ctl = self.memory, self.memory.ctl
        with self._swap_lock:
            with self._knob_lock:               # no turn slips between catching up and installing
                self._catch_up(slot, spec, knob_seq)
                self._define_circuit_knobs(slot, spec)
                self._route_device(slot)
                if not self.running or mem.active is None:
                    old = mem.active
                    mem.install(mem.active_index, slot)
                    self.spec = spec
                    if old is not None and old is not slot:
                        old.close()                 # no callback runs it
                    return
                incoming = 1 - mem.active_index
                mem.install(incoming, slot)
                ctl[H.C_SWAP_REQ] += 1.0
                self.spec = spec
            deadline = time.monotonic() + 2.0 + ctl[H.C_FADE_LEN] / self.sample_rate
            while ctl[H.C_SWAP_ACK] != ctl[H.C_SWAP_REQ]:
                if time.monotonic() > deadline or not self.running:
                    # the callback stopped: finish the switch ourselves
                    ctl[H.C_ACTIVE_SLOT], ctl[H.C_FADE_POS] = incoming, -1.0
                    ctl[H.C_SWAP_ACK] = ctl[H.C_SWAP_REQ]
                    break
                time.sleep(0.002)
            old = mem.slots[1 - incoming]
            mem.install(1 - incoming, None)        # the old circuit is no longer touched
            if old is not None and old is not slot:
                old.close()

    @property
    def learner(self) -> Learner | None:
        slot = self.memory.active
        return None if slot is None else slot.learner

    @property
    def param_names(self) -> list[str]:
        slot = self.memory.active
        return [] if slot is None else slot.names

    def _need_learner(self) -> Learner:
        if self.learner is None:
            raise SessionError("no circuit is loaded")
        return self.learner

    def _catch_up(self, slot: Slot, spec: CircuitSpec, knob_seq: int):
        """Give a slot about to be installed the knob turns made after its load began."""
        for knob, value in self.knob_bank.turned_since(knob_seq).items():
            kind, _, name = knob.partition(":")
            if kind == "hidden" and self._has_knob(slot, name):
                self._apply_hidden(slot, name, value, playing=False)
                spec.hidden[name] = value

    def _define_circuit_knobs(self, slot: Slot, spec: CircuitSpec):
        """The bank's 'hidden:' knobs become the incoming circuit's: its hidden parameters (a
        declared range, else a slider around the value) and its model's controls."""
        bank, learner = self.knob_bank, slot.learner
        bank.forget("hidden:")
        for name in learner.layout.hidden:
            decl = spec.declaration(name)
            lo, hi, log = (-math.inf, math.inf, False) if decl is None else (decl.lo, decl.hi, decl.log)
            bank.define(lambda v, knob=f"hidden:{name}", lo=lo, hi=hi, log=log: around(knob, v, lo, hi, log),
                        learner.hidden[name], self._hidden_writer(name), clamp=False, name=f"hidden:{name}")
        for name, spec_ in ({} if slot.truth is None else slot.truth.specs).items():
            bank.define(spec_, slot.model_controls[name], self._hidden_writer(name))

    def _hidden_writer(self, name: str):
        def write(value: float):
            """To every installed slot that has the knob (the playing one and one fading in)."""
            controls = False
            for slot in dict.fromkeys(s for s in self.memory.slots if s is not None):
                if self._has_knob(slot, name):
                    self._apply_hidden(slot, name, value, playing=self.running)
                    controls = controls or name in slot.model_controls
            if controls:                          # a model's coefficients wait for a block start
                self._latch_controls()
            self._restart_schedule()
            if self.spec is not None:
                truth = None if self.memory.active is None else self.memory.active.truth
                # a spec holds a ground truth's controls in its own units (a plugin's enumerated
                # control by its value, where the knob holds the index)
                self.spec.hidden[name] = value if truth is None else truth.stored_value(name, value)
        return write

    def _restart_schedule(self):
        """A hidden knob turned: the target moved, so a decaying learning rate (the default
        against a plugin) starts over from its initial value to follow it."""
        slots = [s for s in dict.fromkeys(self.memory.slots) if s is not None]
        if not any(s.learner.settings.lr_decay_every > 0 for s in slots):
            return
        if self.running:
            self.memory.ctl[H.C_SCHEDULE_REQ] += 1.0      # taken at the next block start
        else:
            for s in slots:
                s.learner.restart_schedule()

    @staticmethod
    def _has_knob(slot: Slot, name: str) -> bool:
        return name in slot.model_controls or name in slot.learner.layout.hidden

    def _apply_hidden(self, slot: Slot, name: str, value: float, playing: bool):
        """Write a knob's value (already clamped by the bank) into a slot. playing: the callback
        runs this slot, so the value glides there from the goal."""
        if name in slot.model_controls:
            self._controls_taken()
            slot.set_model_control(name, value)
            if not playing:                       # the callback does not run this slot's model
                slot.processor.latch_now()
            return
        learner = slot.learner
        k = learner.layout.hidden.index(name)
        slot.hidden_goal[k] = value
        learner.hidden[name] = value
        if not playing:
            learner.cfg[learner.layout.cfg_hidden + k] = value

    # ---- live controls (mailbox writes; never block the callback)
    def set_hidden(self, name: str, value: float):
        self._need_learner()
        value = self.memory.finite(value, f"the hidden value of '{name}'")
        with self._knob_lock:
            if f"hidden:{name}" not in self.knob_bank:
                have = self.memory.active.learner.layout.hidden
                raise SessionError(f"the target has no parameter named '{name}' (its parameters: "
                                   f"{', '.join(have) or 'none'})")
            self.knob_bank.set(f"hidden:{name}", value)

    # ---- the output insert
    def set_insert(self, path, controls: dict | None = None, sha256: str | None = None):
        """An SPTMod model as an insert effect on the output (None removes it). Its controls
        (values from `controls`, else the model's defaults, clamped to their ranges) are knobs
        'insert:NAME'. sha256: the content hash a preset was saved with (another file is refused)."""
        if path is None:
            self.memory.set_insert(None)
            self.knob_bank.forget("insert:")
            self.set_insert_bypass(False)
            return
        from app.host.memory import Insert
        model = _checked_model(path, sha256)
        values = {}
        for name, v in (controls or {}).items():
            c = next((q for q in model.controls if q["name"] == name), None)
            if c is None:
                raise SessionError(f"the insert's model has no control named '{name}' (its controls: "
                                   f"{', '.join(model.control_names) or 'none'})")
            values[name] = min(max(self.memory.finite(v, f"the insert control '{name}'"), c["min"]), c["max"])
        insert = Insert(model, self.memory.max_frames, values)
        insert.path = str(Path(path).resolve())
        with self._knob_lock:
            self.memory.set_insert(insert)
            self.knob_bank.forget("insert:")
            for c in model.controls:
                self.knob_bank.define(KnobSpec(f"insert:{c['name']}", c["min"], c["max"]),
                                      insert.controls[c["name"]], self._insert_writer(insert, c["name"]))
        self.set_insert_bypass(False)          # a new insert is heard

    def set_insert_plugin(self, plugin_id: str | None, controls: dict | None = None):
        """A LADSPA/LV2 plugin as the insert effect on the output (None removes the insert);
        its controls (values in the plugin's units, else its defaults) are knobs 'insert:SYMBOL'."""
        if plugin_id is None:
            self.set_insert(None)
            return
        from app.plugins.instance import PluginError
        from app.truths import PluginInsert
        try:
            insert = PluginInsert(plugin_id, dict(controls or {}), self.sample_rate, self.memory.max_frames)
        except PluginError as e:
            raise SessionError(str(e)) from None
        with self._knob_lock:
            self.memory.set_insert(insert)
            self.knob_bank.forget("insert:")
            for name, spec_ in insert.specs.items():
                self.knob_bank.define(spec_, insert.controls[name], self._insert_writer(insert, name))
        self.set_insert_bypass(False)

    def _insert_writer(self, insert, name: str):
        def write(value: float):
            self._controls_taken()
            insert.set_control(name, value)
            self._latch_controls()
        return write

    def set_insert_bypass(self, on: bool):
        """Skip the output insert (the dry output is heard) or run it again; its controls stay."""
        self.memory.ctl[H.C_INSERT_BYPASS] = 1.0 if on else 0.0

    @property
    def insert_bypassed(self) -> bool:
        return bool(self.memory.ctl[H.C_INSERT_BYPASS] != 0.0)

    def insert(self) -> dict | None:
        """{"model", "sha256", "controls", "bypass", "restarts", "latency"} of the output insert (a
        plugin: {"plugin", "controls", "bypass", "restarts", "latency"}), or None."""
        ins = self.memory.insert
        if ins is None:
            return None
        if hasattr(ins, "info"):                  # a plugin
            return {"plugin": ins.info.id, "controls": ins.plugin_values(), "bypass": self.insert_bypassed,
                    "restarts": ins.restarts, "latency": ins.latency}
        return {"model": ins.path, "sha256": ins.model.sha256, "controls": self.knob_bank.values("insert:"),
                "bypass": self.insert_bypassed, "restarts": ins.restarts, "latency": ins.latency}

    def set_insert_control(self, name: str, value: float):
        if f"insert:{name}" not in self.knob_bank:
            raise SessionError(f"the output insert has no control named '{name}'")
        value = self.memory.finite(value, f"the insert control '{name}'")
        with self._knob_lock:
            self.knob_bank.set(f"insert:{name}", value)

    def _controls_taken(self):
        """Wait until the callback took the last prepared controls (their buffers are free again)."""
        ctl = self.memory.ctl
        self._wait(lambda: ctl[H.C_CONTROL_ACK] == ctl[H.C_CONTROL_REQ])

    def _latch_controls(self):
        """Prepared processor controls take effect at the next block start, all together (never
        mid-block, never one insert channel before the other); with no audio running, at once."""
        ctl = self.memory.ctl
        ctl[H.C_CONTROL_REQ] += 1.0
        self._wait(lambda: ctl[H.C_CONTROL_ACK] == ctl[H.C_CONTROL_REQ])
        if not self.running:
            self.memory.latch_controls_here()

    def hidden(self) -> dict:
        """The ground truth's knobs: the target's hidden parameters and the model's controls."""
        self._need_learner()
        return self.knob_bank.values("hidden:")

    def configure(self, **changes) -> concurrent.futures.Future:
        """Change learning settings live (loss, window, optimizer, lr, ...). A kernel is specialised
        for its loss, optimiser, range mode and window class (engine/circuit/compiler.py: Variant):
        a change of one compiles (or loads from the disk cache) the kernel for it on the compile
        thread while the old one plays, then swaps it in with its settings at a block boundary -
        no gap. Returns a future done once the settings apply (at once when no kernel is needed);
        settings no learner can take raise here."""
        learner = self._need_learner()
        try:
            base = self.settings
            s = dataclasses.replace(base, **changes)
            learner.check(s)
            if self.running and _new_spectral_bank(learner, s):
                # a new bank's constants are many words: the callback must not run a block on half of
                # them, so the learner is built again with them and swapped in at a block boundary
                raise RebuildNeeded("a new spectral range starts the bank over: the learner is compiled "
                                    "again with it and swapped in at a block boundary", s)
        except SpectralKernelNeeded as e:
            raise RebuildNeeded(str(e), s) from None
        except TypeError as e:
            raise SessionError(str(e)) from None
        except ValueError as e:
            raise SessionError(str(e)) from None
        self.spec.settings = dataclasses.replace(s)
        with self._settings_lock:
            self._settings_wanted = (learner, s)
            if learner.kernel_ready(s):
                self._apply_settings(learner, s)
                done = concurrent.futures.Future()
                done.set_result(None)
                return done
            # what the playing kernel can take of the change (a pause, a rate) applies at once, not
            # after the compile: a divergence's pause must not wait for one
            now = dataclasses.replace(learner.settings, **changes)
            if now != learner.settings and learner.kernel_ready(now):
                self._apply_settings(learner, now)
            self._settings_queued += 1
        return self._executor.submit(self._compile_and_apply, learner)

    @property
    def settings(self) -> Settings | None:
        """The learning settings asked for last: those in force, or those waiting for their kernel
        (what the window shows and a preset saves: a choice made during a compile is not lost)."""
        learner = self.learner
        if learner is None:
            return None
        with self._settings_lock:
            owner, wanted = self._settings_wanted
            return wanted if self._settings_queued and owner is learner else learner.settings

    @property
    def settings_pending(self) -> bool:
        """Some settings wait for their kernel on the compile thread (the old one plays)."""
        return self._settings_queued > 0

    def _compile_and_apply(self, learner: Learner):
        """The kernel for the settings asked for last (again, if newer ones came during a compile),
        then those settings; the old kernel plays meanwhile."""
        try:
            while True:
                with self._settings_lock:
                    owner, s = self._settings_wanted
                if owner is not learner:
                    return                        # another circuit was loaded meanwhile: it has its own
                learner.kernel(s)                 # the slow part
                with self._settings_lock:
                    if self._settings_wanted[1] is s:
                        if learner.settings is not s:
                            self._apply_settings(learner, s)
                        return
        except Exception:
            with self._settings_lock:         # what was asked for failed: the spec says what runs
                if self.spec is not None and self.learner is learner:
                    self.spec.settings = dataclasses.replace(learner.settings)
            raise
        finally:
            with self._settings_lock:
                self._settings_queued -= 1

    def _apply_settings(self, learner: Learner, s: Settings):
        """s into the learner, and its kernel into the playing slot: with the callback running, the
        kernel and its settings words are staged and taken together at the next block start."""
        with self._swap_lock:
            slot = self.memory.active
            if slot is None or slot.learner is not learner:
                return                            # another circuit was loaded meanwhile: it has its own
            address = learner.kernel(s).block_address
            table, ctl = slot.table, self.memory.ctl
            if not self.running or table[B.S_BLOCK_FN] == address:
                learner.configure(s)              # the same kernel: its words change as before
                table[B.S_BLOCK_FN] = address
                return
            self._wait(lambda: table[B.S_NEXT_FN] == 0)   # an earlier swap not taken yet: never restage under it
            learner.configure(s, header=slot.staged)
            table[B.S_NEXT_FN] = address         # last: the staged swap is complete
            ctl[H.C_KERNEL_REQ] += 1.0
            self._wait(lambda: ctl[H.C_KERNEL_ACK] == ctl[H.C_KERNEL_REQ])
            if table[B.S_NEXT_FN] != 0 and not self.running:   # the callback stopped meanwhile: take it here
                for word in LY.SETTINGS:
                    learner.cfg[word] = slot.staged[word]
                table[B.S_BLOCK_FN], table[B.S_NEXT_FN] = address, 0
                ctl[H.C_KERNEL_ACK] = ctl[H.C_KERNEL_REQ]

    @property
    def sets_its_own_step(self) -> bool:
        """The optimiser has no learning rate (Gauss-Newton): what a divergence's advice is about."""
        return self.learner is not None and self.settings.optimizer in SETS_ITS_OWN_STEP

    def set_learning(self, on: bool):
        self.configure(learning=bool(on))
        if on:
            self._watch_from_now()

    def _watch_from_now(self):
        """The health watch starts over from the learner's counts now (resume, reset, new circuit)."""
        learner = self.learner
        self._watched = self.memory.active
        self.health = LearningWatch(self.sample_rate, learner.param_ranges())
        self.health.reset(learner.diverged_steps, learner.samples)

    def check_learning(self, rows: np.ndarray):
        """Feed the health watch the telemetry rows just drained (the window's frames, run's loop).
        A divergence pauses learning and is returned, once; the stall hint is in health.stall."""
        learner = self.learner
        if learner is None or not rows.shape[0]:
            return None
        if self._watched is not self.memory.active:
            self._watch_from_now()
        names = self.param_names
        keep = rows[(rows[:, H.T_SLOT] == self.memory.active_index) & (rows[:, H.T_N_PARAMS] == len(names))
                    & (rows[:, H.T_LEARNING] != 0.0)]
        if not keep.shape[0]:
            return None
        last = keep[-1]
        params = dict(zip(names, last[H.TEL_HEADER:H.TEL_HEADER + len(names)].tolist()))
        found = self.health.observe(int(last[H.T_SAMPLES]), float(last[H.T_LOSS]), params,
                                    int(last[H.T_DIVERGED]), learner.first_diverged_sample)
        if found is not None:
            self.configure(learning=False)
        return found

    def reset_learning(self, values: dict | None = None):
        """Parameters back to their initial values (or `values`), optimiser state cleared."""
        learner = self._need_learner()
        slot = self.memory.active
        values = dict(values or {})
        unknown = set(values) - set(slot.names)
        if unknown:
            raise SessionError(f"no learnable parameter named '{sorted(unknown)[0]}'")
        ctl = self.memory.ctl
        self._wait(lambda: ctl[H.C_RESET_ACK] == ctl[H.C_RESET_REQ])
        names = learner.param_names          # slot order; `name@bank` with banks
        for k, (name, sp) in enumerate(zip(names, learner.specs)):
            slot.init[k] = self.memory.finite(values.get(name, sp.init), f"the value of '{name}'")
        if self.running:
            ctl[H.C_RESET_REQ] += 1.0
            self._wait(lambda: ctl[H.C_RESET_ACK] == ctl[H.C_RESET_REQ])
        else:
            learner.reset({name: slot.init[k] for k, name in enumerate(names)})
        self._watch_from_now()

    def _wait(self, done, timeout=1.0):
        end = time.monotonic() + timeout
        while not done() and self.running and time.monotonic() < end:
            time.sleep(0.001)

    def params(self) -> dict:
        learner = self.learner
        return {} if learner is None else learner.params()

    def spectral_view(self):
        """(bin frequencies, target's and output's normalised powers) while the spectral loss
        learns; None otherwise (engine/learn/learner.py)."""
        learner = self.learner
        return None if learner is None else learner.spectral_view()

    def frequency_lock(self):
        """The spectral loss's frequency-locked loop, for a learnable pitch: (engaged, the bin's
        centre in Hz, the error in cents) as of its last block; None otherwise (engine/learn/learner.py)."""
        learner = self.learner
        return None if learner is None else learner.frequency_lock()

    def set_output(self, mode: str):
        if mode not in H.OUTPUT_MODES:
            raise SessionError(f"unknown output '{mode}'; choose one of {', '.join(H.OUTPUT_MODES)}")
        self.memory.ctl[H.C_OUTPUT_MODE] = H.OUTPUT_MODES[mode]

    @property
    def output(self) -> str:
        code = int(self.memory.ctl[H.C_OUTPUT_MODE])
        return next(k for k, v in H.OUTPUT_MODES.items() if v == code)

    def set_source(self, kind: str, hz: float | None = None, data: np.ndarray | None = None):
        """kind: input | lcg-noise | noise | sine | saw | midi | file (with data, mono float)."""
        if kind not in H.SOURCES:
            raise SessionError(f"unknown source '{kind}'; choose one of {', '.join(H.SOURCES)}")
        ctl = self.memory.ctl
        if hz is not None:
            hz = self.memory.finite(hz, "the frequency")
            if not 0.0 < hz < self.sample_rate / 2:
                raise SessionError(f"the frequency must be between 0 and {self.sample_rate / 2:g} Hz")
            ctl[H.C_SOURCE_HZ] = hz
        if kind == "input" and self.info is not None and self.info.n_in == 0:
            raise SessionError("this audio device has no input channels")
        if kind == "file":
            if data is None:
                raise SessionError("the file source needs the file's samples")
            self._queue_file(data)
        ctl[H.C_SOURCE] = H.SOURCES[kind]

    def _queue_file(self, data: np.ndarray):
        data = np.ascontiguousarray(data, dtype=np.float64)
        if data.ndim != 1 or data.size == 0:
            raise SessionError("the file has no samples")
        if not np.all(np.isfinite(data)):
            raise SessionError("the file contains NaN or infinite samples")
        mem, ctl, h = self.memory, self.memory.ctl, self.memory.table
        self._wait(lambda: ctl[H.C_FILE_ACK] == ctl[H.C_FILE_REQ])
        mem.files[1] = data
        h[H.H_FILE_NEXT], h[H.H_FILE_NEXT_LEN] = data.ctypes.data, data.size
        if self.running:
            ctl[H.C_FILE_REQ] += 1.0
            self._wait(lambda: ctl[H.C_FILE_ACK] == ctl[H.C_FILE_REQ])
        else:
            h[H.H_FILE], h[H.H_FILE_LEN] = h[H.H_FILE_NEXT], h[H.H_FILE_NEXT_LEN]
            ctl[H.C_FILE_POS] = 0.0
        mem.files[0] = data          # the old file is released only now that nothing reads it

    def load_file(self, path: str):
        """Read an audio file (any rate; resampled to the session's) and play it in a loop."""
        from app.audiofile import read_mono
        from scipy.signal import resample_poly
        data, rate = read_mono(path)
        if rate != self.sample_rate:
            g = math.gcd(int(rate), int(self.sample_rate))
            data = resample_poly(data, int(self.sample_rate) // g, int(rate) // g)
        self.set_source("file", data=data)

    def set_source_gain(self, gain: float):
        self.memory.ctl[H.C_SOURCE_GAIN] = self.memory.finite(gain, "the source level")

    def set_source_level_db(self, db: float):
        """The source's level in dB (0: each generator's full scale — noise at -4.8 dBFS RMS, a
        sine at -3): what the circuits and the learner hear, so it is part of the modelling task."""
        self.set_source_gain(self._gain_of_db(db, SOURCE_LEVEL, "the source level"))

    @property
    def source_level_db(self) -> float:
        return _db_of_gain(self.memory.ctl[H.C_SOURCE_GAIN], SOURCE_LEVEL)

    def set_master_gain(self, gain: float):
        gain = self.memory.finite(gain, "the output level")
        if not 0.0 <= gain <= 4.0:
            raise SessionError("the output level must be between 0 and 4")
        self.memory.ctl[H.C_MASTER_GAIN] = gain

    def set_mute(self, on: bool):
        self.memory.ctl[H.C_MUTE] = 1.0 if on else 0.0

    @property
    def muted(self) -> bool:
        return bool(self.memory.ctl[H.C_MUTE] != 0.0)

    def set_volume_db(self, db: float):
        """The output volume in dB (speakers only: the learner and the limiter's ceiling are
        unchanged); from -60 to +12 dB."""
        self.set_master_gain(self._gain_of_db(db, VOLUME, "the output volume"))

    @property
    def volume_db(self) -> float:
        return _db_of_gain(self.memory.ctl[H.C_MASTER_GAIN], VOLUME)

    def _gain_of_db(self, db: float, knob: KnobSpec, what: str) -> float:
        """A level in dB, checked against its knob's range, as a linear gain."""
        db = self.memory.finite(db, what)
        if not knob.lo <= db <= knob.hi:
            raise SessionError(f"{what} must be from {knob.lo:g} to +{knob.hi:g} dB, got {db:g}")
        return 10.0 ** (db / 20.0)

    def restart_limiter_count(self):
        """The limiter's onsets and time in gain reduction count from now (the callback's words
        keep counting; this session remembers where they stood)."""
        c = self.memory.ctl
        self._limiter_from = (float(c[H.C_LIMITED]), float(c[H.C_LIMITED_SAMPLES]), float(c[H.C_FRAMES]))

    def limiter(self) -> dict:
        """The safety limiter since the circuit was loaded: onsets, samples held below unity gain,
        their fraction of the samples played, and the gain reduction right now (dB, >= 0)."""
        c = self.memory.ctl
        onsets0, samples0, frames0 = self._limiter_from
        samples = int(c[H.C_LIMITED_SAMPLES] - samples0)
        frames = int(c[H.C_FRAMES] - frames0)
        gain = float(c[H.C_LIMIT_GAIN])
        return {"onsets": int(c[H.C_LIMITED] - onsets0), "samples": samples,
                "fraction": samples / frames if frames > 0 else 0.0,
                "reduction_db": 0.0 if not 0.0 < gain < 1.0 else -20.0 * math.log10(gain)}

    # ---- MIDI (called from the MIDI thread or the GUI; reaches the callback with its time)
    def voice(self, freq_hz: float, gate: bool, amplitude: float, timestamp: float | None = None):
        mem = self.memory
        t = time.monotonic() if timestamp is None else float(timestamp)
        with self._midi_lock:
            idx = mem.ring_index
            head = int(idx[H.R_MIDI_HEAD])
            if head - int(idx[H.R_MIDI_TAIL]) >= mem.midi.shape[0]:
                self.midi_dropped += 1
                return
            row = mem.midi[head % mem.midi.shape[0]]
            row[H.M_TIME], row[H.M_KIND] = t, H.EV_VOICE
            row[H.M_A], row[H.M_B], row[H.M_C] = freq_hz, 1.0 if gate else 0.0, amplitude
            idx[H.R_MIDI_HEAD] = head + 1

    _SETTING_KNOBS = SETTING_KNOBS

    def knobs(self) -> dict:
        """Everything a MIDI CC (or a GUI slider) can turn, with its range: the settings and
        the bank's knobs (the ground truth's hidden parameters and controls, the insert's)."""
        return {**self._SETTING_KNOBS, **self.knob_bank.specs()}

    def set_knob(self, name: str, fraction: float):
        if name in self.knob_bank:
            with self._knob_lock:
                self.knob_bank.set_fraction(name, fraction)
            return
        knob = self._SETTING_KNOBS.get(name)
        if knob is None:
            raise SessionError(f"no knob named '{name}'")
        v = knob.value_at(fraction)
        if name == "lr":
            self.configure(lr=v)
        elif name == "master":
            self.set_master_gain(v)
        elif name == "volume":
            self.set_volume_db(v)
        elif name == "source_level":
            self.set_source_level_db(v)
        elif name == "mute":
            self.set_mute(v >= 0.5)
        else:
            self.memory.ctl[H.C_SOURCE_HZ] = v

    def program_change(self, number: int):
        for fn in list(self.on_program_change):
            fn(number)

    # ---- readings
    def frame(self):
        """Drain the telemetry: what the running circuit published since the last call, as a
        telemetry.Frame (None when nothing new belongs to it). The window's one reading per frame;
        the health watch reads it too (a divergence pauses learning: see health.diverged)."""
        rows = self.telemetry.drain()
        self.check_learning(rows)
        return self.telemetry.frame(rows, self.memory.active_index, self.param_names,
                                    1e6 * self.blocksize / self.sample_rate)

    def model_controls(self) -> dict:
        """The running SPTMod ground truth's controls and their values ({} without one)."""
        slot = self.memory.active
        if slot is None:
            return {}
        return {n: v for n, v in self.knob_bank.values("hidden:").items() if n in slot.model_controls}

    def counters(self) -> dict:
        c, limiter = self.memory.ctl, self.limiter()
        return {"callbacks": int(c[H.C_CALLBACKS]), "frames": int(c[H.C_FRAMES]),
                "xruns": int(c[H.C_XRUNS]), "nonfinite_out": int(c[H.C_NONFINITE_OUT]),
                "limited": limiter["onsets"], "limited_samples": limiter["samples"],
                "bad_input": int(c[H.C_BAD_INPUT]),
                "telemetry_dropped": int(c[H.C_TEL_DROPPED]), "midi_applied": int(c[H.C_MIDI_APPLIED]),
                "skipped": 0 if self.learner is None else self.learner.skipped,
                "diverged_steps": 0 if self.learner is None else self.learner.diverged_steps,
                "model_restarts": 0 if self.memory.active is None else self.memory.active.model_restarts}


__all__ = ["Session", "CircuitSpec", "SessionError", "RecordingSpec", "DeviceSpec", "AudioUnavailable", "KnobSpec", "ParamSpec", "Settings"]
