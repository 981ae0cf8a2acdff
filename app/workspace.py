"""The workspace: what the desktop window edits — the session, the MIDI control and port, and the
preset it came from — with the glue between presets and a running session (check a circuit text,
apply a preset, snapshot what was learned, autosave). No Qt here: the window calls these methods
and draws what they return."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.learn.banks import display_name
from engine.learn.learner import ParamSpec
# Problem is defined with the check, in the engine; the panel imports it from here
from engine.learn.spec_check import (INIT_OUTSIDE, NO_PARAMS, NOT_USED, SYNTAX, UNDECLARED, UNREADABLE,
                                     Problem, check_spec)
from app.preset import document as presets
from app.preset import store
from app.midi.control import MidiControl
from app.session import CircuitSpec, Session, SessionError

# a name newly typed into the circuit is declared like this until the user edits the line
NEW_DECLARATION = "{name} = 0 : -1 : 1"

_DECL = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([^:\s]+)\s*(?::\s*([^:\s]*)\s*:\s*([^:\s]*))?\s*(log)?\s*$")


def _number(text: str, default: float) -> float:
    if text is None or text.strip() == "":
        return default
    v = float(text)               # ValueError is reported by the caller with its line
    if math.isnan(v):
        raise ValueError("NaN")
    return v


def parse_declarations(text: str) -> tuple[list[ParamSpec], list[Problem]]:
    """One parameter per line: `name = init [: min : max] [log]` (empty min/max: unbounded)."""
    specs, problems, seen = [], [], set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        m = _DECL.match(line)
        if not m:
            problems.append(Problem("params", n, 1, "expected  name = init : min : max  (and 'log' for a "
                                                    "logarithmic knob)"))
            continue
        name, init, lo, hi, log = m.groups()
        if name in seen:
            problems.append(Problem("params", n, 1, f"'{name}' is declared twice"))
            continue
        seen.add(name)
        try:
            lo_v, hi_v = _number(lo, -math.inf), _number(hi, math.inf)
            if lo_v > hi_v:              # one message (the parameter is declared, only wrongly)
                raise ValueError(f"min {lo_v:g} is above max {hi_v:g}")
            spec = ParamSpec(name, _number(init, 0.0), lo_v, hi_v, log=bool(log))
        except ValueError as e:
            why = str(e).removeprefix(f"parameter '{name}': ")
            problems.append(Problem("params", n, line.index(name) + 1,
                                    f"'{name}': {why}" if why != "NaN" else f"'{name}': NaN is not a number",
                                    name=name))
            continue
        specs.append(spec)
    return specs, problems


def format_declarations(specs) -> str:
    def num(v):
        return "" if math.isinf(v) else f"{v:g}"
    lines = []
    for s in specs:
        rng = "" if math.isinf(s.lo) and math.isinf(s.hi) else f" : {num(s.lo)} : {num(s.hi)}"
        lines.append(f"{s.name} = {s.init:g}{rng}{' log' if s.log else ''}")
    return "\n".join(lines)


def parse_banks(text: str, condition: str, mode: str, previous=None):
    """The bank row of the circuit panel: comma-separated boundaries (blank: no banks). Settings
    the row does not show (hysteresis, crossfade, follower times, per-bank circuits) are kept from
    `previous`. Returns (Banks or None, Problem or None)."""
    if not text.strip():
        return None, None
    from engine.learn.banks import Banks
    try:
        bounds = [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
        keep = {} if previous is None else {k: getattr(previous, k) for k in
                                            ("hysteresis", "crossfade_ms", "attack_ms", "release_ms", "level_db")}
        banks = Banks(bounds, condition=condition, mode=mode, **keep)
        if previous is not None and previous.circuits is not None and len(previous.circuits) == banks.K:
            banks.circuits = list(previous.circuits)
        banks.validate()
    except ValueError as e:
        return None, Problem("banks", 1, 1, str(e) if "could not convert" not in str(e)
                             else "boundaries are numbers separated by commas, e.g. -60, -30, -12, 0")
    return banks, None


# the order the panel lists check_spec's problems in (it shows the first of each editor)
_ORDER = {INIT_OUTSIDE: 0, SYNTAX: 1, NOT_USED: 2, UNDECLARED: 3, NO_PARAMS: 4}


@dataclass
class Checked:
    """A circuit edit, checked: the spec to apply (None if there are problems)."""
    spec: CircuitSpec | None
    problems: list[Problem]
    undeclared: list[str]          # free names with no declaration (the window may add them)


def check_edit(circuit: str, target: str, declarations: str, hidden: dict, settings,
               sample_rate: float, banks=None, bank_problem: Problem | None = None) -> Checked:
    """Parse the texts of the circuit panel without compiling (fast: runs on each keystroke)."""
    specs, problems = parse_declarations(declarations)
    if bank_problem is not None:
        problems.append(bank_problem)
    graphs = {}
    # diff.lib's range mode may start outside the range (dcsq)
    found = check_spec(circuit, target if target.strip() else None, specs, {}, sample_rate, shared=True,
                       check_init=settings.range_mode != "straight-through", require_param=True,
                       spec_lines={s.name: _line_of(declarations, s.name) for s in specs}, graphs=graphs)
    for p in found:
        if p.kind == UNREADABLE:
            raise p.error                # not a circuit error: as from the parser itself
    found.sort(key=lambda p: _ORDER.get(p.kind, len(_ORDER)))
    # a name whose declaration is wrong is not new: its one problem is on the declaration's line
    miswritten = {p.name for p in problems if p.where == "params" and p.name}
    found = [p for p in found if not (p.kind == UNDECLARED and p.name in miswritten)]
    undeclared = [p.name for p in found if p.kind == UNDECLARED]
    # a new name is not an error: Apply declares it; say so where it was typed
    problems += [Problem(p.where, p.line, p.col, f"new parameter '{p.name}' — it will be declared as "
                         f"{NEW_DECLARATION.format(name=p.name)} on Apply", p.kind, p.name)
                 if p.kind == UNDECLARED else p for p in found]
    if problems:
        return Checked(None, problems, undeclared)
    learn = [s for s in specs if s.name in graphs["circuit"].params]
    target_graph = graphs["target"]
    only_target = [s for s in specs if s.name not in graphs["circuit"].params]
    new_hidden = {}
    for n in target_graph.params:
        decl = next(s for s in specs if s.name == n)
        v = hidden.get(n, decl.init if n in graphs["circuit"].params else decl.init)
        new_hidden[n] = min(max(float(v), decl.lo), decl.hi)
    spec = CircuitSpec(circuit, learn, target=target if target.strip() else None, hidden=new_hidden,
                       settings=dataclasses.replace(settings), hidden_params=only_target, banks=banks)
    return Checked(spec, [], [])


def _line_of(text: str, name: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(name)}\s*=", line):
            return n
    return 1


class Workspace:
    """The session plus what a saved preset needs beyond it (name, file, MIDI, source)."""

    def __init__(self, session: Session):
        self.session = session
        self.midi = MidiControl(session)
        self.midi_port = None
        self.name, self.description, self.path = "untitled", "", None
        self.source, self.source_hz, self.source_file = "lcg-noise", 220.0, None
        self.banks, self.sptmod = None, None
        self.warnings: list[str] = []

    # ---- presets
    def apply(self, preset: presets.Preset, progress=lambda stage, f: None, path: Path | None = None):
        """Make preset the running state (compiles: call it off the GUI thread)."""
        s = self.session
        s.load(preset.spec, progress)
        learned = dict(preset.learned)
        if preset.spec.banks is not None:       # per-bank values are stored with the banks
            learned = {display_name(name, k): v for k, values in enumerate((preset.banks or {}).get("learned", []))
                       for name, v in values.items()}
        s.reset_learning({k: v for k, v in learned.items() if k in s.param_names})
        self.warnings = []
        self.set_source(preset.source, preset.source_hz, preset.source_file)
        s.set_output(preset.output)
        s.set_volume_db(preset.volume_db)
        s.set_source_level_db(preset.source_db)
        s.set_mute(preset.mute)
        ins = preset.insert
        if ins is not None and "plugin" in ins:
            s.set_insert_plugin(ins["plugin"], ins["controls"])
        else:
            s.set_insert(None if ins is None else ins["model"], None if ins is None else ins["controls"],
                         None if ins is None else ins["sha256"])
        s.set_insert_bypass(ins is not None and ins.get("bypass", False))
        self.midi.load_mappings(preset.midi)
        self.name, self.description, self.path = preset.name, preset.description, path
        self.banks, self.sptmod = preset.banks, preset.sptmod

    def set_source(self, kind: str, hz: float | None = None, file: str | None = None):
        """Like Session.set_source, but a file that cannot be read falls back to lcg-noise with a
        warning instead of failing the whole preset."""
        s = self.session
        hz = self.source_hz if hz is None else hz
        try:
            if kind == "file":
                s.load_file(file)
            else:
                s.set_source(kind, hz=hz)
        except Exception as e:        # unreadable file, no input channel: keep playing something
            self.warnings.append(f"source {kind}: {e}; playing lcg-noise instead")
            kind, file = "lcg-noise", None
            s.set_source(kind)
        self.source, self.source_hz, self.source_file = kind, hz, file

    def snapshot(self) -> presets.Preset:
        s = self.session
        if s.spec is None:
            raise SessionError("no circuit is loaded")
        hidden, version = dict(s.hidden()), ""
        truth = s.memory.active.truth
        if truth is not None and truth.kind == "plugin":
            hidden.update(truth.plugin_values())      # an enumerated control by its value, not its index
            version = truth.info.version
        spec = dataclasses.replace(s.spec, params=list(s.spec.params), hidden=hidden,
                                   settings=dataclasses.replace(s.settings),
                                   hidden_params=list(s.spec.hidden_params))
        learned, banks = s.params(), self.banks
        if spec.banks is not None:
            banks = presets.banks_to_json(spec.banks, s.learner.bank_params())
            learned = {}
        return presets.Preset(name=self.name, description=self.description, spec=spec,
                              learned=learned, source=self.source, source_hz=self.source_hz,
                              source_file=self.source_file, output=s.output,
                              source_db=s.source_level_db, volume_db=s.volume_db, mute=s.muted,
                              midi=self._live_mappings(), banks=banks, sptmod=self.sptmod,
                              insert=self._model_insert(), plugin_version=version)

    def _model_insert(self) -> dict | None:
        """The output insert as a preset stores it: an SPTMod model, or a plugin with its version."""
        ins = self.session.insert()
        if ins is None or "model" in ins:
            return ins
        return {"plugin": ins["plugin"], "version": self.session.memory.insert.info.version,
                "controls": ins["controls"], "bypass": ins["bypass"]}

    def _live_mappings(self) -> dict:
        """MIDI mappings to knobs that still exist (a renamed parameter or a new ground truth
        leaves stale ones, which a preset must not carry: it would be refused on opening)."""
        knobs = self.session.knobs()
        return {cc: k for cc, k in self.midi.mappings.items() if k in knobs}

    def save(self, path, overwrite: bool = False) -> Path:
        preset = self.snapshot()
        preset.name = Path(path).stem
        out = presets.save(preset, path, overwrite=overwrite)
        self.name, self.path = preset.name, out
        store.add_recent(out)
        return out

    def autosave(self):
        if self.session.spec is not None:
            store.write_autosave(self.snapshot())

    # ---- MIDI
    def open_midi(self, connect: str | None = None):
        """The virtual port "Dualtone MIDI in", also connected to `connect` if given."""
        from app.midi.ports import MidiInput
        self.close_midi()
        self.midi_port = MidiInput(self.midi.feed_bytes, connect=connect)
        return self.midi_port

    def close_midi(self):
        if self.midi_port is not None:
            self.midi_port.close()
            self.midi_port = None

    def close(self, autosave: bool = True):
        try:
            if autosave:
                self.autosave()
        finally:
            self.close_midi()
            self.session.close()
