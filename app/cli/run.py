"""`run --headless`: learn live in the audio callback and print telemetry and a JSON summary."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

from app.cli.args import (_json_float, _positive_seconds, add_learning_args, banks_from_args,
                          check_hidden_in_range, parse_hidden, parse_param, plugin_args, settings_from_args)
from app.cli.errors import UsageError, one_line as _one_line, parse_float as _float
from app.cli import presets as cli_presets
from app.cli.save_preset import check_save_path, save_learned, source_fields
from app.knobs import SOURCE_LEVEL, VOLUME
from app.cli.learn import EXIT_DIVERGED, _bank_summary
from app.cli.recordings import add_recording_args
from app.host.quiet import quiet_stderr


def _source_kind(spec: str):
    """--source for `run` read without playing it: (kind, Hz or None) for a named source, or
    ("file", None) for a file that exists; anything else is one line, before anything compiles."""
    from engine.sources import BY_NAME, spellings
    kind, colon, hz = spec.partition(":")
    source = BY_NAME.get(kind) if kind != "file" else None
    if source is not None and source.needs_hz == bool(colon):
        return kind, (_float(hz, f"--source {kind} frequency") if colon else None)
    if os.path.isfile(spec):
        return "file", None
    raise UsageError(f"--source {spec}: no such file (or use {', '.join(spellings(offline=False))})")


def _live_source(session, spec: str):
    """--source for `run`: lcg-noise | noise | sine:HZ | saw:HZ | midi | input | FILE."""
    from app.audiofile import AudioFileError
    from app.session import SessionError
    kind, hz = _source_kind(spec)
    try:
        if kind == "file":
            session.load_file(spec)
        else:
            session.set_source(kind, hz=hz)
    except (SessionError, AudioFileError) as e:
        raise UsageError(f"--source {spec}: {e}") from None


def _check_before_compiling(a, source: str):
    """What can be refused without compiling: the source, the audio device and the MIDI port to
    connect to (a compile takes seconds on a cold cache; a typo should not)."""
    _source_kind(source)
    if a.device is not None and a.device != "virtual":
        from app.host.stream import AudioUnavailable, find_output_device
        try:
            with _quiet(a):
                find_output_device(a.device)          # as the session will ask for it
        except AudioUnavailable as e:
            raise UsageError(f"--device {a.device}: {e}") from None
    if a.midi_connect:
        from app.midi import ports
        try:
            with _quiet(a):
                ports.find_port(ports.list_ports(), a.midi_connect)    # as MidiInput will look for it
        except (ports.MidiUnavailable, ValueError) as e:
            raise UsageError(f"--midi-connect {a.midi_connect}: {e}") from None


def _quiet(a):
    """libjack's connection probes (written to fd 2) kept out of the terminal unless --verbose."""
    return quiet_stderr(not getattr(a, "verbose", False))


def _open_midi(session, connect):
    from app.midi.control import MidiControl
    from app.midi.ports import MidiInput, MidiUnavailable
    control = MidiControl(session)
    try:
        port = MidiInput(control.feed_bytes, connect=connect)
    except (MidiUnavailable, ValueError) as e:
        raise UsageError(f"MIDI: {e}") from None
    return port


def _telemetry_line(snap, elapsed, counters) -> str:
    params = " ".join(f"{k}={v:.6g}" for k, v in list(snap.params.items())[:8])
    return (f"t={elapsed:6.2f}s loss={snap.loss:.3e} {params} cpu={snap.cpu_us:.1f}us "
            f"in={snap.in_peak:.2f} out={snap.out_peak:.2f} xruns={counters['xruns']} "
            f"skipped={snap.skipped} callbacks={counters['callbacks']}"
            + (f" diverged={snap.diverged_steps}" if snap.diverged_steps else ""))


def cmd_run(a) -> int:
    if not a.headless:
        raise UsageError("`run` is the headless runner: add --headless, or open the window with "
                         "python main.py [--preset NAME]")
    from app.session import CircuitSpec
    for flag, value, knob, what in (("--volume", a.volume, VOLUME, "the output volume"),   # before compiling
                                    ("--source-level", a.source_level, SOURCE_LEVEL, "the source level")):
        if value is not None and not knob.lo <= value <= knob.hi:
            raise UsageError(f"{flag}: {what} must be from {knob.lo:g} to +{knob.hi:g} dB, got {value:g}")
    sample_rate = 48000.0 if a.sr is None else a.sr
    if not (math.isfinite(sample_rate) and 8000 <= sample_rate <= 384000):
        raise UsageError("--sr must be between 8000 and 384000 Hz")
    if a.run_preset is not None:
        return _run_preset(a, sample_rate)
    if a.circuit is None:
        raise UsageError("run needs --circuit TEXT (or --preset NAME)")
    specs = [parse_param(t) for t in a.param]
    plugin, channel, controls, hidden = plugin_args(a)
    check_hidden_in_range(specs, hidden)
    target = a.target
    if a.sptmod is not None:
        if plugin is not None:
            raise UsageError("--sptmod and --plugin: one ground truth at a time")
        if not os.path.exists(a.sptmod):
            raise UsageError(f"--sptmod {a.sptmod}: no such file")
        target = target or "y = sptmod"
    if plugin is not None:
        target = target or "y = plugin"
    recording, device = _recording_args(a, hidden, sample_rate), _device_args(a)
    given = [f for f, v in (("--sptmod", a.sptmod), ("--plugin", plugin), ("--target-file", recording),
                            ("--target-input", device)) if v is not None]
    if len(given) > 1:
        raise UsageError(f"{given[0]} and {given[1]}: one ground truth at a time")
    if recording is not None:
        target = target or "y = recording"
    if device is not None:
        target = target or "y = device"
    spec = CircuitSpec(a.circuit, specs, target=target, hidden={**hidden, **controls},
                       settings=settings_from_args(a), banks=banks_from_args(a, live=True),
                       model=None if a.sptmod is None else os.path.abspath(a.sptmod),
                       plugin=plugin, plugin_channel=channel, recording=recording, device=device)
    return _run_spec(a, spec, sample_rate, a.source or "lcg-noise", _insert_args(a))


def _recording_args(a, hidden: dict, sample_rate: float):
    """--target-file WET with --source DRY: the pair (its alignment goes into hidden['align'])."""
    from app.cli.recordings import open_pair
    from app.recordings.pair import RecordingSpec, parse_channel
    if not a.target_file:
        if a.align is not None or a.channel is not None:
            raise UsageError(f"{'--align' if a.align is not None else '--channel'} is for a recording "
                             "pair: give --target-file WET with --source DRY")
        return None
    if len(a.target_file) > 1:
        raise UsageError("run plays one recording pair: give --target-file once")
    if a.source is None or not os.path.isfile(a.source):
        raise UsageError("--target-file needs --source DRY: the file that went into the device")
    _, align, found = open_pair(a.source, a.target_file[0], a.channel, a.align, sample_rate)
    hidden["align"] = float(align)
    if found is not None and not a.quiet:
        print(f"alignment: {found.describe(sample_rate)}", file=sys.stderr)
    return RecordingSpec(os.path.abspath(a.source), os.path.abspath(a.target_file[0]), parse_channel(a.channel))


def _device_args(a):
    """--target-input CH [--send-output K]: a device in the loop (channels from 1)."""
    from app.recordings.hardware import DeviceSpec
    if a.target_input is None:
        if a.send_output is not None:
            raise UsageError("--send-output needs --target-input CH (the channel the device returns on)")
        return None
    send = 2 if a.send_output is None else a.send_output
    for flag, v in (("--target-input", a.target_input), ("--send-output", send)):
        if v < 1:
            raise UsageError(f"{flag} {v}: channels are numbered from 1")
    return DeviceSpec(a.target_input - 1, send - 1)


def _insert_args(a):
    if a.insert is not None and a.insert_plugin is not None:
        raise UsageError("--insert and --insert-plugin: one output insert at a time")
    if a.insert_plugin is not None:
        return "plugin", a.insert_plugin, dict(parse_hidden(t) for t in a.insert_control)
    if a.insert is None:
        if a.insert_control:
            raise UsageError("--insert-control needs --insert MODEL or --insert-plugin ID")
        return None
    if not os.path.exists(a.insert):
        raise UsageError(f"--insert {a.insert}: no such file")
    return a.insert, dict(parse_hidden(t) for t in a.insert_control), None


def _run_preset(a, sample_rate) -> int:
    """run --preset: the preset's circuits, settings, knobs and source (--source, --hidden and the
    learning settings override: app/cli/presets.py); the circuit flags are refused rather than
    silently ignored."""
    preset, spec = cli_presets.open_preset(a, a.run_preset)
    source = a.source
    if source is None:
        source = {"sine": f"sine:{preset.source_hz:g}", "saw": f"saw:{preset.source_hz:g}",
                  "file": preset.source_file}.get(preset.source, preset.source)
    insert = _insert_args(a)
    bypass = insert is None and preset.insert is not None and preset.insert.get("bypass", False)
    if insert is None and preset.insert is not None and "plugin" in preset.insert:
        insert = "plugin", preset.insert["plugin"], preset.insert["controls"]
    elif insert is None and preset.insert is not None:
        insert = preset.insert["model"], preset.insert["controls"], preset.insert["sha256"]
    if a.volume is None:
        a.volume = preset.volume_db      # the preset's levels, as the window plays them
    if a.source_level is None:
        a.source_level = preset.source_db
    return _run_spec(a, spec, sample_rate, source, insert, preset, bypass)


def _run_spec(a, spec, sample_rate, source, insert=None, preset=None, bypass=False) -> int:
    """insert: (model path, controls, sha256) of an output insert, or None, bypassed when told
    (the preset's insert was saved so); preset: the one learning starts from (its learned values;
    --save-preset keeps its MIDI mappings)."""
    from app.session import Session, SessionError
    _check_before_compiling(a, source)
    save_path = check_save_path(a.save_preset, a.force)
    from app.host.stream import AudioUnavailable
    from app.host.telemetry import RunStats
    try:
        session = Session(sample_rate, a.blocksize, device=a.device)
    except SessionError as e:
        raise UsageError(str(e)) from None
    midi = None
    with session:
        try:
            session.load(spec, progress=lambda stage, f: a.quiet or print(f"{stage}...", file=sys.stderr))
        except (ValueError, SessionError) as e:
            raise UsageError(_one_line(e)) from None
        start = cli_presets.start_values(preset)
        if start:                  # a preset resumes from its learned values, as the window does
            session.reset_learning({k: v for k, v in start.items() if k in session.param_names})
        if insert is not None and insert[0] == "plugin":
            try:
                session.set_insert_plugin(insert[1], insert[2])
            except SessionError as e:
                raise UsageError(f"--insert-plugin {_one_line(e)}") from None
        elif insert is not None:
            try:
                session.set_insert(*insert)
            except SessionError as e:
                raise UsageError(f"--insert {_one_line(e)}") from None
        session.set_insert_bypass(bypass)
        if spec.device is not None:      # open as many channels as the device's routing needs
            session.channels = (spec.device.return_channel + 1, spec.device.send_channel + 1)
        try:
            with _quiet(a):
                info = session.open()
        except AudioUnavailable as e:
            raise UsageError(f"--device {a.device}: {e}") from None
        if info.virtual:
            print(f"note: {session.status_message}", file=sys.stderr)
        _live_source(session, source)
        session.set_output(a.output)
        for flag, value, set_level in (("--volume", a.volume, session.set_volume_db),
                                       ("--source-level", a.source_level, session.set_source_level_db)):
            if value is not None:
                try:
                    set_level(value)
                except SessionError as e:
                    raise UsageError(f"{flag}: {e}") from None
        if a.source == "midi" or a.midi_connect:
            with _quiet(a):
                midi = _open_midi(session, a.midi_connect)
        stats = RunStats()
        try:
            session.start()
            started = time.monotonic()          # the callbacks count from here (a measurement too)
            if spec.device is not None:
                _measure(a, session, spec.device)
            t0 = time.monotonic()
            if not a.quiet:
                print(session.status_message, file=sys.stderr)
            next_line = t0 + a.every
            while True:
                now = time.monotonic()
                if now - t0 >= a.seconds:
                    break
                time.sleep(min(0.05, a.seconds - (now - t0)))
                rows = session.telemetry.drain()
                stats.add(rows)
                found = session.check_learning(rows)       # a divergence pauses learning
                if found is not None:
                    print(f"warning: learning {found.describe(session.sample_rate, session.sets_its_own_step)}; learning paused",
                          file=sys.stderr)
                if not a.quiet and stats.last is not None and time.monotonic() >= next_line:
                    next_line += a.every
                    snap = session.telemetry.decode(stats.last)
                    print(_telemetry_line(snap, time.monotonic() - t0, session.counters()), file=sys.stderr)
            session.stop()
            elapsed = time.monotonic() - started
        finally:
            if midi is not None:
                midi.close()
        rows = session.telemetry.drain()
        stats.add(rows)
        session.check_learning(rows)
        counters = session.counters()
        med, p99, worst = stats.cpu_percentiles()
        learner = session.learner
        result = {"callbacks": counters["callbacks"],
                  "expected_callbacks": int(round(elapsed * info.sample_rate / info.blocksize)),
                  "xruns": counters["xruns"],
                  "late_callbacks": stats.late_callbacks(1e6 * info.blocksize / info.sample_rate),
                  "callback_us_median": _json_float(med), "callback_us_p99": _json_float(p99),
                  "callback_us_max": _json_float(worst),
                  "loss": _json_float(learner.loss), "params": learner.params(),
                  "skipped": learner.skipped, "device": info.device,
                  "blocksize": info.blocksize, "sample_rate": info.sample_rate,
                  "output_latency_s": info.output_latency, "input_latency_s": info.input_latency,
                  "nonfinite_out": counters["nonfinite_out"], "limited": counters["limited"],
                  "limited_samples": counters["limited_samples"],
                  "bad_input": counters["bad_input"]}
        lost = 0 if stats.last is None else session.telemetry.decode(stats.last).diverged_steps
        if lost or session.health.diverged is not None:
            result["diverged_steps"] = lost
        if session.health.diverged is not None:
            result["diverged"] = session.health.diverged.as_json()
        if learner.banks is not None:
            result["banks"] = _bank_summary(learner)
            result["active_bank"] = learner.active_bank
        if session.insert() is not None:
            result["insert"] = session.insert()
        if spec.model is not None:
            result["sptmod"] = {"model": spec.model, "sha256": spec.model_sha256,
                                "controls": session.model_controls(),
                                "restarts": counters["model_restarts"]}
        if spec.recording is not None or spec.device is not None:   # "device" names the audio device
            result["recording" if spec.recording is not None else "hardware"] = session.ground_truth()
        if spec.plugin is not None:
            truth = session.memory.active.truth
            result["plugin"] = {"id": truth.info.id, "name": truth.info.name,
                                "controls": truth.plugin_values(), "latency": truth.processor.latency,
                                "restarts": counters["model_restarts"]}
        if save_path is not None:
            snap = dataclasses.replace(session.spec, hidden=dict(session.hidden()),
                                       settings=dataclasses.replace(learner.settings))
            origin = "its flags" if preset is None else f"the preset {a.run_preset}"
            kept = {} if preset is None else {"midi": preset.midi, "plugin_version": preset.plugin_version}
            why = save_learned(save_path, snap, learner, f"learned by `run` from {origin} over {elapsed:.1f} s",
                               force=a.force, volume_db=session.volume_db, source_db=session.source_level_db,
                               output=a.output, **kept, **source_fields(source))
            if why is None:
                result["saved_preset"] = str(save_path)
            else:
                print(f"warning: --save-preset {save_path}: not written: {why}", file=sys.stderr)
    print(json.dumps(result))
    return EXIT_DIVERGED if "diverged" in result else 0


def _measure(a, session, device):
    """The round trip through the device, before learning starts (refused: exit 2, no learning)."""
    from app.session import SessionError
    if not a.quiet:
        print(f"measuring the round trip: a test signal on output {device.send_channel + 1}, "
              f"its return on input {device.return_channel + 1}...", file=sys.stderr)
    settle = time.monotonic() + 5.0       # the stream's first quarter second is not measured
    while session.counters()["frames"] < 0.25 * session.sample_rate and time.monotonic() < settle:
        time.sleep(0.01)
    try:
        found = session.measure_latency()
    except SessionError as e:
        raise UsageError(f"--target-input {device.return_channel + 1}: {_one_line(e)}") from None
    if not a.quiet:
        print(f"device: {found.describe(session.sample_rate)}", file=sys.stderr)


def add_parser(sub):
    rp = sub.add_parser("run", help="learn live on the audio device (or a virtual clock)",
                        description="Run the learner in the audio callback in real time; print telemetry "
                                    "lines on stderr and one JSON summary line on stdout.")
    add_learning_args(rp, circuit_required=False)
    rp.add_argument("--headless", action="store_true", help="no window (required until the GUI exists)")
    rp.add_argument("--preset", dest="run_preset", metavar="NAME|FILE",
                    help="run a preset (a factory name or a file): its circuits, settings, hidden "
                         "values and source, starting from its learned values; --source overrides "
                         "its source. " + cli_presets.OVERRIDE_HELP)
    rp.add_argument("--insert", metavar="MODEL", help="an SPTMod model as an insert effect on the "
                    "output (one model per channel, before the limiter)")
    rp.add_argument("--insert-plugin", metavar="ID", help="a LADSPA or LV2 plugin as an insert effect "
                    "on the output (one instance per channel, before the limiter)")
    rp.add_argument("--insert-control", action="append", default=[], metavar="NAME=VALUE",
                    help="a control value of the --insert model or --insert-plugin")
    rp.add_argument("--sptmod", metavar="MODEL",
                    help="an SPTMod model file as the ground truth: its output is the target's "
                         "'sptmod' signal (the target defaults to  y = sptmod); set its controls "
                         "with --hidden NAME=VALUE")
    add_recording_args(rp, live=True)
    rp.add_argument("--target-input", type=int, metavar="CH",
                    help="a device on the audio interface as the ground truth (hardware in the "
                         "loop): the source is sent to it on --send-output, and what comes back on "
                         "input channel CH (from 1) is the target's 'device' signal (the target "
                         "defaults to  y = device). The round trip is measured first with a test "
                         "signal, and the learner's input is delayed to match")
    rp.add_argument("--send-output", type=int, metavar="K",
                    help="the output channel (from 1) that feeds the device (default 2; it then "
                         "carries the device's feed instead of the monitor)")
    rp.add_argument("--seconds", type=_positive_seconds, required=True, metavar="S")
    rp.add_argument("--source", default=None,
                    metavar="lcg-noise|noise|sine:HZ|saw:HZ|midi|input|FILE",
                    help="what feeds both circuits (default lcg-noise)")
    rp.add_argument("--output", default="stereo", choices=["target", "learned", "stereo", "error", "loss"],
                    help="what you hear (default stereo: target left, learned right)")
    rp.add_argument("--volume", type=float, metavar="DB",
                    help="output volume in dB, -60 to +12 (default 0; what you hear only, the "
                         "learner is unaffected)")
    rp.add_argument("--save-preset", metavar="FILE.json",
                    help="write what was learned as a preset when the run ends (never NaN values)")
    rp.add_argument("--force", action="store_true", help="replace an existing --save-preset file")
    rp.add_argument("--source-level", type=float, metavar="DB",
                    help="the source's level in dB from its full scale, -40 to +6 (default 0: noise "
                         "at -4.8 dBFS RMS; -13 puts it near -18 dBFS RMS). The circuits hear it")
    rp.add_argument("--device", help="audio device name (substring) or index; default: the system's")
    rp.add_argument("--blocksize", type=int, default=128, metavar="B", help="frames per callback")
    rp.add_argument("--midi-connect", metavar="NAME", help="also connect the MIDI input to this port")
    rp.add_argument("--every", type=float, default=0.5, metavar="S", help="seconds between telemetry lines")
    rp.add_argument("--quiet", action="store_true", help="no telemetry lines")
    rp.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,   # main.py --verbose too
                    help="let the audio libraries print their own messages (JACK's connection probes)")
    rp.set_defaults(func=cmd_run)

