"""Command line: `python main.py learn|run|render|train-sptmod|devices ...` (headless work)."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit code 2."""


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{what}: '{text}' is not a number") from None
    if math.isnan(v):
        raise UsageError(f"{what}: NaN is not allowed")
    return v


def parse_param(text: str):
    """NAME=INIT[:MIN:MAX]; an empty MIN or MAX means unbounded (also -inf / inf)."""
    from engine.learn.learner import ParamSpec
    if "=" not in text:
        raise UsageError(f"--param {text}: expected NAME=INIT[:MIN:MAX]")
    name, rest = text.split("=", 1)
    name = name.strip()
    if not name.isidentifier():
        raise UsageError(f"--param {text}: '{name}' is not a valid parameter name")
    parts = rest.split(":")
    if len(parts) not in (1, 3):
        raise UsageError(f"--param {text}: expected NAME=INIT or NAME=INIT:MIN:MAX")
    init = _float(parts[0], f"--param {name} initial value")
    lo = -math.inf if len(parts) == 1 or parts[1].strip() == "" else _float(parts[1], f"--param {name} minimum")
    hi = math.inf if len(parts) == 1 or parts[2].strip() == "" else _float(parts[2], f"--param {name} maximum")
    if not math.isfinite(init):
        raise UsageError(f"--param {name}: the initial value must be finite")
    if lo > hi:
        raise UsageError(f"--param {name}: minimum {lo:g} is above maximum {hi:g}")
    return ParamSpec(name, init, lo, hi)


def parse_hidden(text: str):
    if "=" not in text:
        raise UsageError(f"--hidden {text}: expected NAME=VALUE")
    name, v = text.split("=", 1)
    value = _float(v, f"--hidden {name}")
    if not math.isfinite(value):
        raise UsageError(f"--hidden {name}: the value must be finite")
    return name.strip(), value


def make_source(spec: str, sample_rate: float, seed: int, sr_given: bool):
    """An input source from lcg-noise | noise | sine:HZ | FILE; returns (source, sample_rate)."""
    from engine.sources import LcgNoise, Looped, Sine, WhiteNoise
    if spec == "lcg-noise":
        return LcgNoise(), sample_rate
    if spec == "noise":
        return WhiteNoise(seed), sample_rate
    if spec.startswith("sine:"):
        hz = _float(spec[5:], "--input sine frequency")
        if not (0.0 < hz < sample_rate / 2):
            raise UsageError(f"--input {spec}: the frequency must be between 0 and {sample_rate / 2:g} Hz")
        return Sine(hz, sample_rate), sample_rate
    from app.audiofile import AudioFileError, read_mono
    if not os.path.exists(spec):
        raise UsageError(f"--input {spec}: no such file (or use lcg-noise, noise, sine:HZ)")
    try:
        data, rate = read_mono(spec)
    except AudioFileError as e:
        raise UsageError(str(e)) from None
    if sr_given and rate != sample_rate:
        raise UsageError(f"--input {spec}: the file is {rate} Hz but --sr is {sample_rate:g}; "
                         "omit --sr to use the file's rate")
    return Looped(data), float(rate)


def _is_file_input(spec: str) -> bool:
    return spec not in ("lcg-noise", "noise") and not spec.startswith("sine:")


def make_sources(specs: list, sample_rate: float, seed: int, sr_given: bool):
    """Batches: one source per --input (stream s counts from 0); returns (sources, sample_rate).

    Several streams of one generator differ: stream s's lcg-noise starts the LCG at state s
    (stream 0 is diff.lib's sequence), its noise uses seed + s. Files must share one sample rate,
    and sine inputs run at it."""
    from engine.learn.learner import MAX_STREAMS
    if len(specs) > MAX_STREAMS:
        raise UsageError(f"--input is given {len(specs)} times: at most {MAX_STREAMS} streams")
    built = []
    for s, spec in enumerate(specs):
        src, rate = make_source(spec, sample_rate, seed + s, sr_given)
        if spec == "lcg-noise":
            src.state = s
        built.append((src, rate))
    rates = sorted({rate for spec, (_, rate) in zip(specs, built) if _is_file_input(spec)})
    if len(rates) > 1:
        raise UsageError("--input: the files have different sample rates ("
                         + ", ".join(f"{r:g} Hz" for r in rates) + "); batches need one rate")
    if rates and rates[0] != sample_rate:       # synthetic inputs follow the files' rate
        sample_rate = rates[0]
        built = [make_source(spec, sample_rate, seed + s, sr_given) if spec.startswith("sine:") else b
                 for s, (spec, b) in enumerate(zip(specs, built))]
    return [src for src, _ in built], sample_rate


def add_learning_args(p: argparse.ArgumentParser, circuit_required: bool = True):
    """The circuit and learning flags shared by `learn` and `run`."""
    p.add_argument("--circuit", required=circuit_required,
                   help="the learnable circuit, e.g. 'y = gain*x + dc'")
    p.add_argument("--target", help="the ground-truth circuit (default: --circuit with the --hidden values)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=INIT[:MIN:MAX]",
                   help="declare a learnable parameter (repeat per parameter)")
    p.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE",
                   help="a hidden (ground-truth) parameter value")
    p.add_argument("--loss", choices=["mse", "mae", "msle", "huber"], default="mse")
    p.add_argument("--huber-delta", type=float, default=1.0, metavar="D")
    p.add_argument("--window", type=int, default=1, metavar="W", help="sliding-window length in samples")
    p.add_argument("--optimizer", choices=["sgd", "momentum", "rmsprop", "adam"], default="sgd")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--momentum", type=float, help="momentum mu (default 0.9)")
    p.add_argument("--rho", type=float, help="RMSProp decay rho (default 0.9)")
    p.add_argument("--beta1", type=float, help="Adam beta1 (default 0.9)")
    p.add_argument("--beta2", type=float, help="Adam beta2 (default 0.999)")
    p.add_argument("--eps", type=float, help="RMSProp/Adam epsilon (default 1e-8)")
    p.add_argument("--clip", type=float, default=0.0, help="clip the gradient's L2 norm to this (0 = off)")
    p.add_argument("--lr-decay", type=float, default=1.0, metavar="F",
                   help="multiply the learning rate by F every --lr-decay-every steps")
    p.add_argument("--lr-decay-every", type=int, default=0, metavar="E")
    p.add_argument("--lr-min", type=float, default=0.0)
    p.add_argument("--range-mode", choices=["project", "straight-through"], default="project",
                   help="project: keep each parameter's accumulator inside its range (no wind-up); "
                        "straight-through: diff.lib's behaviour (the accumulator may leave the range)")
    p.add_argument("--banks", metavar="B0,B1,...,BK",
                   help="LACTOSE banks: K+1 increasing boundaries on the condition make K parameter sets")
    p.add_argument("--condition", default="level", metavar="level|input|note|velocity|SIGNAL",
                   help="what selects the bank: the input level in dBFS (default), the raw input "
                        "sample, the MIDI note or velocity (run only), or a signal of the circuit "
                        "(its value one sample earlier)")
    p.add_argument("--bank-mode", choices=["separated", "exact"], default="separated",
                   help="separated: gradient for the active bank only (LACTOSE); exact: tangents for "
                        "every bank through the circuit's state")
    p.add_argument("--hysteresis", type=float, default=0.0, metavar="H",
                   help="a bank changes only when the condition passes a boundary by H")
    p.add_argument("--crossfade-ms", type=float, default=0.0, metavar="T",
                   help="glide the parameters from the outgoing to the incoming bank over T ms")
    p.add_argument("--bank-circuit", action="append", default=None, metavar="TEXT",
                   help="a topology per bank: give it once per bank, in bank order (each bank's "
                        "circuit runs with its own state; the active bank's output is heard)")
    p.add_argument("--sr", type=float, default=None, help="sample rate in Hz (default 48000)")
    p.add_argument("--seed", type=int, default=0, help="seed of --input noise")


def settings_from_args(a):
    from engine.learn.learner import Settings
    c1 = {"momentum": a.momentum, "rmsprop": a.rho, "adam": a.beta1}.get(a.optimizer)
    return Settings(loss=a.loss, huber_delta=a.huber_delta, window=a.window, optimizer=a.optimizer,
                    lr=a.lr, c1=c1, c2=a.beta2 if a.optimizer == "adam" else None, eps=a.eps,
                    clip=a.clip, lr_decay=a.lr_decay, lr_decay_every=a.lr_decay_every,
                    lr_min=a.lr_min, range_mode=a.range_mode)


def banks_from_args(a, live: bool = False):
    """--banks/--condition/... as engine.banks.Banks (None without --banks)."""
    if a.banks is None:
        for flag, given in (("--hysteresis", a.hysteresis), ("--crossfade-ms", a.crossfade_ms),
                            ("--bank-circuit", a.bank_circuit)):
            if given:
                raise UsageError(f"{flag} needs --banks")
        return None
    from engine.learn.banks import Banks
    if a.condition in ("note", "velocity") and not live:
        raise UsageError(f"--condition {a.condition} follows live MIDI: use it with run --headless "
                         "(and --source midi or --midi-connect)")
    bounds = [_float(t, "--banks boundary") for t in a.banks.split(",")]
    banks = Banks(bounds, condition=a.condition, mode=a.bank_mode, hysteresis=a.hysteresis,
                  crossfade_ms=a.crossfade_ms, circuits=a.bank_circuit)
    try:
        banks.validate()
    except ValueError as e:
        raise UsageError(f"--banks: {e}") from None
    return banks


def build_learner(a, sample_rate, streams: int = 1):
    from engine.learn.learner import Learner
    specs = [parse_param(t) for t in a.param]
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UsageError(f"--param {sorted(dup)[0]} is given twice")
    hidden = dict(parse_hidden(t) for t in a.hidden)
    try:
        return Learner(a.circuit, specs, target=a.target, hidden=hidden,
                       settings=settings_from_args(a), sample_rate=sample_rate, banks=banks_from_args(a),
                       streams=streams)
    except ValueError as e:          # CircuitError is a ValueError
        msg = str(e)
        if "has no declaration" in msg:
            msg += " (add --param NAME=INIT[:MIN:MAX])"
        raise UsageError(msg) from None


class Progress:
    """A one-line progress bar on stderr, shown only when the run takes over a second."""

    def __init__(self, total: int, enabled: bool, clock=time.perf_counter, stream=None):
        self.total, self.enabled = total, enabled and total > 0
        self.clock, self.stream = clock, stream or sys.stderr
        self.t0 = clock()
        self.shown = False
        self.last = 0.0

    def update(self, done: int, loss: float):
        now = self.clock()
        if not self.enabled or now - self.t0 < 1.0 or now - self.last < 0.2:
            return
        self.last, self.shown = now, True
        frac = done / self.total
        bar = "#" * int(30 * frac)
        rate = done / (now - self.t0)
        eta = (self.total - done) / rate if rate > 0 else 0
        self.stream.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  {done}/{self.total} samples  "
                          f"loss {loss:.3e}  eta {eta:4.0f}s ")
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")


def cmd_learn(a) -> int:
    if a.samples is None or a.samples < 1:
        raise UsageError("--samples must be a whole number >= 1")
    if a.trace_every < 1:
        raise UsageError("--trace-every must be >= 1")
    sr_given = a.sr is not None
    sample_rate = a.sr if sr_given else 48000.0
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise UsageError("--sr must be a positive number")
    sources, sample_rate = make_sources(a.input or ["lcg-noise"], sample_rate, a.seed, sr_given)
    streams = len(sources)
    learner = build_learner(a, sample_rate, streams)
    names = learner.param_names
    if not names:
        raise UsageError("the circuit has no parameters to learn (every free name is a parameter)")
    P = len(names)
    trace_file = None
    if a.trace:
        try:
            trace_file = open(a.trace, "w", newline="")
        except OSError as e:
            raise UsageError(f"--trace {a.trace}: cannot write: {e.strerror}") from None
        cols = ["n", "loss"] + names + ([f"grad_{n}" for n in names] if a.trace_grads else [])
        keep = [0, 1] + list(range(2, 2 + P)) + (list(range(2 + P, 2 + 2 * P)) if a.trace_grads else [])
        fmt = ["%d"] + ["%.17g"] * (len(keep) - 1)
        if learner.banks is not None:
            cols.append("active_bank")
            keep.append(4 + 2 * P)
            fmt.append("%d")
        trace_file.write(",".join(cols) + "\n")
    block = 1 << 16
    progress = Progress(a.samples, not a.quiet)
    kernel_seconds = 0.0
    done = 0
    try:
        while done < a.samples:
            nb = min(block, a.samples - done)
            every = a.trace_every if trace_file else 0
            if streams == 1:
                x = sources[0].read(nb)
                t0 = time.perf_counter()
                _, rows = learner.process(x, trace_every=every)
            else:
                x = np.stack([src.read(nb) for src in sources], axis=1)
                t0 = time.perf_counter()
                _, rows = learner.process_batch(x, trace_every=every)
            kernel_seconds += time.perf_counter() - t0
            if trace_file is not None and rows.shape[0]:
                np.savetxt(trace_file, rows[:, keep], fmt=fmt, delimiter=",")
            done += nb
            progress.update(done, learner.loss)
    finally:
        progress.close()
        if trace_file is not None:
            trace_file.close()
    result = {"samples": a.samples, "seconds": kernel_seconds,
              "samples_per_second": a.samples / kernel_seconds if kernel_seconds > 0 else None,
              "loss": _json_float(learner.loss), "params": learner.params(),
              "skipped": learner.skipped}
    if streams > 1:              # batches; a single --input prints what it always did
        result["streams"] = streams
    if learner.banks is not None:
        result["banks"] = _bank_summary(learner)
    print(json.dumps(result))
    return 0


def _bank_summary(learner) -> list[dict]:
    b = learner.banks.boundaries
    return [{"bank": k, "range": [b[k], b[k + 1]], "params": values}
            for k, values in enumerate(learner.bank_params())]


def _json_float(v):
    return v if math.isfinite(v) else None


def _positive_seconds(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"'{text}': must be a positive number of seconds")
    return v


def _live_source(session, spec: str):
    """--source for `run`: lcg-noise | noise | sine:HZ | saw:HZ | midi | input | FILE."""
    from app.audiofile import AudioFileError
    from app.session import SessionError
    try:
        if spec in ("lcg-noise", "noise", "midi", "input"):
            session.set_source(spec)
        elif spec.startswith(("sine:", "saw:")):
            kind, hz = spec.split(":", 1)
            session.set_source(kind, hz=_float(hz, f"--source {kind} frequency"))
        elif os.path.exists(spec):
            session.load_file(spec)
        else:
            raise UsageError(f"--source {spec}: no such file (or use lcg-noise, noise, sine:HZ, "
                             "saw:HZ, midi, input)")
    except (SessionError, AudioFileError) as e:
        raise UsageError(f"--source {spec}: {e}") from None


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
            f"skipped={snap.skipped} callbacks={counters['callbacks']}")


def cmd_run(a) -> int:
    if not a.headless:
        raise UsageError("`run` is the headless runner: add --headless, or open the window with "
                         "python main.py [--preset NAME]")
    from app.session import CircuitSpec
    sample_rate = 48000.0 if a.sr is None else a.sr
    if not (math.isfinite(sample_rate) and 8000 <= sample_rate <= 384000):
        raise UsageError("--sr must be between 8000 and 384000 Hz")
    if a.run_preset is not None:
        return _run_preset(a, sample_rate)
    if a.circuit is None:
        raise UsageError("run needs --circuit TEXT (or --preset NAME)")
    specs = [parse_param(t) for t in a.param]
    hidden = dict(parse_hidden(t) for t in a.hidden)
    target = a.target
    if a.sptmod is not None:
        if not os.path.exists(a.sptmod):
            raise UsageError(f"--sptmod {a.sptmod}: no such file")
        target = target or "y = sptmod"
    spec = CircuitSpec(a.circuit, specs, target=target, hidden=hidden, settings=settings_from_args(a),
                       banks=banks_from_args(a, live=True),
                       model=None if a.sptmod is None else os.path.abspath(a.sptmod))
    return _run_spec(a, spec, sample_rate, a.source or "lcg-noise", _insert_args(a))


def _insert_args(a):
    if a.insert is None:
        if a.insert_control:
            raise UsageError("--insert-control needs --insert MODEL")
        return None
    if not os.path.exists(a.insert):
        raise UsageError(f"--insert {a.insert}: no such file")
    return a.insert, dict(parse_hidden(t) for t in a.insert_control), None


def _run_preset(a, sample_rate) -> int:
    """run --preset: the preset's circuits, settings, knobs and source (--source and --hidden
    override); the circuit flags are refused rather than silently ignored."""
    from app.preset import document as presets
    from app.preset import store
    given = [f for f, v in (("--circuit", a.circuit), ("--target", a.target), ("--param", a.param),
                            ("--sptmod", a.sptmod), ("--banks", a.banks)) if v]
    if given:
        raise UsageError(f"{given[0]} cannot be combined with --preset (edit the preset instead)")
    try:
        preset = presets.load(store.resolve(a.run_preset))
    except presets.PresetError as e:
        raise UsageError(f"--preset {_one_line(e)}") from None
    spec = preset.spec
    for name, v in (parse_hidden(t) for t in a.hidden):
        spec.hidden[name] = v
    source = a.source
    if source is None:
        source = {"sine": f"sine:{preset.source_hz:g}", "saw": f"saw:{preset.source_hz:g}",
                  "file": preset.source_file}.get(preset.source, preset.source)
    insert = _insert_args(a)
    if insert is None and preset.insert is not None:
        insert = preset.insert["model"], preset.insert["controls"], preset.insert["sha256"]
    return _run_spec(a, spec, sample_rate, source, insert)


def _run_spec(a, spec, sample_rate, source, insert=None) -> int:
    """insert: (model path, controls, sha256) of an output insert, or None."""
    from app.session import Session, SessionError
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
        if insert is not None:
            try:
                session.set_insert(*insert)
            except SessionError as e:
                raise UsageError(f"--insert {_one_line(e)}") from None
        try:
            info = session.open()
        except AudioUnavailable as e:
            raise UsageError(f"--device {a.device}: {e}") from None
        if info.virtual:
            print(f"note: {session.status_message}", file=sys.stderr)
        _live_source(session, source)
        session.set_output(a.output)
        if a.source == "midi" or a.midi_connect:
            midi = _open_midi(session, a.midi_connect)
        stats = RunStats()
        try:
            session.start()
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
                if not a.quiet and stats.last is not None and time.monotonic() >= next_line:
                    next_line += a.every
                    snap = session.telemetry.decode(stats.last)
                    print(_telemetry_line(snap, time.monotonic() - t0, session.counters()), file=sys.stderr)
            session.stop()
            elapsed = time.monotonic() - t0
        finally:
            if midi is not None:
                midi.close()
        stats.add(session.telemetry.drain())
        counters = session.counters()
        med, p99 = stats.cpu_percentiles()
        learner = session.learner
        result = {"callbacks": counters["callbacks"],
                  "expected_callbacks": int(round(elapsed * info.sample_rate / info.blocksize)),
                  "xruns": counters["xruns"],
                  "callback_us_median": _json_float(med), "callback_us_p99": _json_float(p99),
                  "loss": _json_float(learner.loss), "params": learner.params(),
                  "skipped": learner.skipped, "device": info.device,
                  "blocksize": info.blocksize, "sample_rate": info.sample_rate,
                  "output_latency_s": info.output_latency, "input_latency_s": info.input_latency,
                  "nonfinite_out": counters["nonfinite_out"], "limited": counters["limited"],
                  "bad_input": counters["bad_input"]}
        if learner.banks is not None:
            result["banks"] = _bank_summary(learner)
            result["active_bank"] = learner.active_bank
        if session.insert() is not None:
            result["insert"] = session.insert()
        if spec.model is not None:
            result["sptmod"] = {"model": spec.model, "sha256": spec.model_sha256,
                                "controls": dict(session.memory.active.model_controls),
                                "restarts": counters["model_restarts"]}
    print(json.dumps(result))
    return 0


def cmd_propose_banks(a) -> int:
    """Propose LACTOSE bank boundaries for a target from its input, and say what they gain."""
    from engine.learn.bank_proposal import propose
    sr_given = a.sr is not None
    sample_rate = a.sr if sr_given else 48000.0
    if a.samples < 1:
        raise UsageError("--samples must be a whole number >= 1")
    source, sample_rate = make_source(a.input, sample_rate, a.seed, sr_given)
    x = source.read(a.samples)
    hidden = dict(parse_hidden(t) for t in a.hidden)
    try:
        prop = propose(x, a.target, K=a.banks, condition=a.condition, sample_rate=sample_rate,
                       hidden=hidden, memory=not a.memoryless)
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    if not a.quiet:
        print(prop.report(), file=sys.stderr)
    flag = ",".join(f"{b:.6g}" for b in prop.boundaries)
    print(json.dumps({"boundaries": [float(b) for b in prop.boundaries], "condition": prop.condition,
                      "banks_flag": f"--banks={flag} --condition {prop.condition}",
                      "loss": prop.loss, "quantile_loss": prop.quantile_loss, "single_loss": prop.single_loss,
                      "improvement_vs_quantiles": prop.improvement.vs_quantile,
                      "improvement_vs_one_bank": prop.improvement.vs_single, "samples_per_bank": prop.counts}))
    return 0


def cmd_devices(a) -> int:
    from app.host.stream import list_devices
    devices = list_devices()
    midi_in, midi_out, midi_note = [], [], ""
    try:
        from app.midi.ports import list_output_ports, list_ports
        midi_in, midi_out = list_ports(), list_output_ports()
    except Exception as e:            # no MIDI backend: still list the audio devices
        midi_note = str(e).splitlines()[0] if str(e) else type(e).__name__
    if a.json:
        print(json.dumps({"audio": devices, "midi_inputs": midi_in, "midi_outputs": midi_out}))
        return 0
    print("Audio devices:")
    if not devices:
        print("  none (Dualtone will learn on a virtual clock, without sound)")
    for d in devices:
        print(f"  [{d['index']}] {d['name']} ({d['host_api']}): {d['inputs']} in, {d['outputs']} out, "
              f"{d['default_samplerate']:g} Hz")
    print("MIDI inputs:")
    for name in midi_in:
        print(f"  {name}")
    if not midi_in:
        print(f"  none{' (' + midi_note + ')' if midi_note else ''}")
    print("MIDI outputs:")
    for name in midi_out:
        print(f"  {name}")
    if not midi_out:
        print("  none")
    return 0


RENDER_MAX_BLOCK = 65536


class _RenderProgress(Progress):
    """The progress bar without a loss column."""

    def update(self, done: int, loss: float = math.nan):
        now = self.clock()
        if not self.enabled or now - self.t0 < 1.0 or now - self.last < 0.2:
            return
        self.last, self.shown = now, True
        frac = min(done / self.total, 1.0)
        rate = done / (now - self.t0)
        eta = (self.total - done) / rate if rate > 0 else 0
        self.stream.write(f"\r[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}%  {done}/{self.total} "
                          f"samples  eta {eta:4.0f}s ")
        self.stream.flush()


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _read_render_input(path: str):
    """(x as float64, sample rate or None): a 1-D float .npy, or any file soundfile reads (mono mix)."""
    if not os.path.exists(path):
        raise UsageError(f"--input {path}: no such file")
    if path.lower().endswith(".npy"):
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UsageError(f"--input {path}: not a readable .npy array ({_one_line(e)})") from None
        if not isinstance(x, np.ndarray):
            raise UsageError(f"--input {path}: an .npz archive, expected one .npy array")
        if x.ndim != 1:
            raise UsageError(f"--input {path}: the array has shape {x.shape}; give a 1-D mono array "
                             "(2-D arrays are refused, not mixed)")
        if x.dtype.kind != "f":
            raise UsageError(f"--input {path}: dtype {x.dtype}; expected a float array")
        x, rate = np.ascontiguousarray(x, dtype=np.float64), None
    else:
        from app.audiofile import AudioFileError, read_mono
        try:
            x, rate = read_mono(path)
        except AudioFileError as e:
            raise UsageError(f"--input {_one_line(e)}") from None
    if x.size == 0:
        raise UsageError(f"--input {path}: holds no samples")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise UsageError(f"--input {path}: sample {bad[0]} is not finite ({bad.size} NaN/Inf samples)")
    return x, rate


def _render_controls(text, model) -> np.ndarray:
    controls = model.controls
    if text is None:
        return model.control_defaults
    parts = [t for t in text.split(",")] if text.strip() else []
    if len(parts) != len(controls):
        names = ",".join(model.control_names) or "none"
        raise UsageError(f"--controls: the model has {len(controls)} controls ({names}), "
                         f"{len(parts)} values given")
    values = []
    for c, t in zip(controls, parts):
        v = _float(t.strip(), f"--controls {c['name']}")
        if not c["min"] <= v <= c["max"]:
            raise UsageError(f"--controls {c['name']}: {v:g} is outside [{c['min']:g}, {c['max']:g}]")
        values.append(v)
    return np.array(values, dtype=np.float64)


def _write_render_output(path: str, out: np.ndarray, rate: float):
    try:
        if path.lower().endswith(".npy"):
            np.save(path, out)
        else:
            import soundfile as sf
            sf.write(path, out.astype(np.float32), int(round(rate)), subtype="FLOAT")
    except (OSError, RuntimeError, ValueError) as e:
        raise UsageError(f"--output {path}: cannot write ({_one_line(e)})") from None


def _render_circuit(a) -> int:
    """A circuit text over a file (the engine's own rendering, e.g. of a device to capture with
    SPTMod): every parameter needs a value (--hidden NAME=VALUE)."""
    from engine.circuit.language import CircuitError, parse
    from engine.learn.learner import Learner, ParamSpec, Settings
    x, in_rate = _read_render_input(a.input)
    rate = float(in_rate) if in_rate is not None else (48000.0 if a.sr is None else a.sr)
    values = dict(parse_hidden(t) for t in a.hidden)
    try:
        graph = parse(a.circuit, rate, "circuit")
        missing = [n for n in graph.params if n not in values]
        if missing:
            raise UsageError(f"--circuit: give '{missing[0]}' a value with --hidden {missing[0]}=VALUE")
        unused = [n for n in values if n not in graph.params]
        if unused:
            raise UsageError(f"--hidden {unused[0]}: the circuit has no parameter named '{unused[0]}'")
        # the circuit is the target of a learner that does not learn: out[:, 0] is its output
        learner = Learner("y = render_gain*x", [ParamSpec("render_gain", 0.0)], target=a.circuit,
                          hidden=values, settings=Settings(learning=False), sample_rate=rate)
    except (CircuitError, ValueError) as e:
        raise UsageError(f"--circuit {_one_line(e)}") from None
    t0 = time.perf_counter()
    out = np.empty(x.size)
    progress = _RenderProgress(x.size, not a.quiet)
    try:
        for k in range(0, x.size, 65536):
            out[k:k + 65536] = learner.process(x[k:k + 65536])[0][:, 0]
            progress.update(min(k + 65536, x.size))
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    # the kernel silences (and counts as skipped) samples where the circuit went non-finite
    bad = int(learner.skipped) + int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise UsageError(f"--circuit: the output was NaN/Inf at {bad} samples; nothing was written")
    _write_render_output(a.output, out, rate)
    print(json.dumps({"samples": int(x.size), "seconds": seconds, "circuit": a.circuit,
                      "hidden": values, "sample_rate": rate}))
    return 0


def cmd_render(a) -> int:
    """Run an SPTMod model (or a circuit) over a file, block by block through the streaming engine."""
    for flag, v in (("--input", a.input), ("--output", a.output)):
        if not v:
            raise UsageError(f"render needs {flag}")
    if (a.sptmod is None) == (a.circuit is None):
        raise UsageError("render needs one of --sptmod MODEL or --circuit TEXT")
    out_kind = os.path.splitext(a.output)[1].lower()
    if out_kind not in (".npy", ".wav"):
        raise UsageError(f"--output {a.output}: the name must end in .npy or .wav")
    folder = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(folder):
        raise UsageError(f"--output {a.output}: the folder {folder} does not exist")
    if a.circuit is not None:
        return _render_circuit(a)
    try:
        block = int(a.block)
    except ValueError:
        raise UsageError(f"--block {a.block}: not a whole number") from None
    if not 1 <= block <= RENDER_MAX_BLOCK:
        raise UsageError(f"--block {block}: must be between 1 and {RENDER_MAX_BLOCK}")
    if a.dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype {a.dtype}: use float32 or float64")
    if not os.path.exists(a.sptmod):
        raise UsageError(f"--sptmod {a.sptmod}: no such file")
    from engine.sptmod.file import ModelError, load_model, model_hash
    try:
        model = load_model(a.sptmod)
    except ModelError as e:
        raise UsageError(f"--sptmod {_one_line(e)}") from None
    controls = _render_controls(a.controls, model)
    x, in_rate = _read_render_input(a.input)
    rate = float(in_rate) if in_rate is not None else model.sample_rate
    if in_rate is not None and in_rate != model.sample_rate and not a.quiet:
        print(f"note: {a.input} is {in_rate} Hz and the model was made at {model.sample_rate:g} Hz; "
              "rendered without resampling", file=sys.stderr)

    from engine.sptmod.stream import SptModStream
    dtype = np.float32 if a.dtype == "float32" else np.float64
    stream = SptModStream(model.config, model.weights, dtype=dtype,
                          max_block=min(8192, -(-block // 64) * 64))
    latency = int(stream.latency_for(block))
    n = x.size
    calls = -(-(n + latency) // block)
    xp = np.zeros(calls * block)
    xp[:n] = x
    y = np.empty(calls * block)
    stream.set_controls(controls)
    stream.process(np.zeros(block))       # compile (or load) the kernels outside the timing
    stream.reset()                        # zero state and FIFO; the controls stay
    progress = _RenderProgress(n, not a.quiet)
    seconds = 0.0
    try:
        for k in range(calls):
            t0 = time.perf_counter()
            y[k * block:(k + 1) * block] = stream.process(xp[k * block:(k + 1) * block])
            seconds += time.perf_counter() - t0
            progress.update(min((k + 1) * block, n))
    finally:
        progress.close()
    out = y[latency:latency + n]
    try:
        if out_kind == ".npy":
            np.save(a.output, out)
        else:
            import soundfile as sf
            sf.write(a.output, out.astype(np.float32), int(round(rate)), subtype="FLOAT")
    except (OSError, RuntimeError, ValueError) as e:
        raise UsageError(f"--output {a.output}: cannot write ({_one_line(e)})") from None
    duration = n / rate
    print(json.dumps({"samples": n, "seconds": seconds,
                      "realtime_factor": seconds / duration if duration > 0 else None,
                      "block": block, "dtype": a.dtype, "latency_samples": latency,
                      "model": a.sptmod, "model_sha256": model_hash(a.sptmod),
                      "sample_rate": rate,
                      "controls": dict(zip(model.control_names, map(float, controls)))}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py", description="Dualtone: learn audio circuits live. Without a command it opens "
                                    "the window; the commands below work without one.")
    p.add_argument("--preset", metavar="NAME|FILE", help="open this preset (a factory name or a file) "
                   "instead of restoring the last session")
    p.add_argument("--seconds", type=_positive_seconds, metavar="S",
                   help="learn for S seconds of audio, then exit (with --screenshot: save it first)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="save the window as a PNG after --seconds (default 5) and exit; renders "
                        "offscreen when there is no display")
    p.add_argument("--device", dest="gui_device", metavar="NAME", help="audio device for the window")
    p.add_argument("--blocksize", dest="gui_blocksize", type=int, default=128, metavar="B",
                   help="frames per audio callback for the window (default 128)")
    sub = p.add_subparsers(dest="command")
    lp = sub.add_parser("learn", help="learn a circuit's parameters offline (headless)",
                        description="Learn the parameters of --circuit so that it matches the target, "
                                    "sample by sample, and print one JSON line with the result.")
    add_learning_args(lp)
    lp.add_argument("--input", action="append", metavar="lcg-noise|noise|sine:HZ|FILE",
                    help="the input signal fed to both circuits (default lcg-noise, diff.lib's). "
                         "Give it up to 16 times to learn in batches: one stream per --input, all in "
                         "lockstep, each with its own circuit state, window, loss and bank; the "
                         "parameters step once per sample with the mean of the streams' gradients, "
                         "and the loss is their mean. Stream s (from 0) of lcg-noise starts the LCG "
                         "at state s, of noise uses --seed + s; files must share one sample rate"),
    lp.add_argument("--samples", type=int, required=True, metavar="N")
    lp.add_argument("--trace", metavar="FILE.csv", help="write n, loss, parameters per sample")
    lp.add_argument("--trace-every", type=int, default=1, metavar="K", help="one trace row every K samples")
    lp.add_argument("--trace-grads", action="store_true", help="add grad_<param> columns to the trace")
    lp.add_argument("--quiet", action="store_true", help="no progress bar")
    lp.set_defaults(func=cmd_learn)

    rp = sub.add_parser("run", help="learn live on the audio device (or a virtual clock)",
                        description="Run the learner in the audio callback in real time; print telemetry "
                                    "lines on stderr and one JSON summary line on stdout.")
    add_learning_args(rp, circuit_required=False)
    rp.add_argument("--headless", action="store_true", help="no window (required until the GUI exists)")
    rp.add_argument("--preset", dest="run_preset", metavar="NAME|FILE",
                    help="run a preset (a factory name or a file): its circuits, settings, hidden "
                         "values and source; --hidden and --source override")
    rp.add_argument("--insert", metavar="MODEL", help="an SPTMod model as an insert effect on the "
                    "output (one model per channel, before the limiter)")
    rp.add_argument("--insert-control", action="append", default=[], metavar="NAME=VALUE",
                    help="a control value of the --insert model")
    rp.add_argument("--sptmod", metavar="MODEL",
                    help="an SPTMod model file as the ground truth: its output is the target's "
                         "'sptmod' signal (the target defaults to  y = sptmod); set its controls "
                         "with --hidden NAME=VALUE")
    rp.add_argument("--seconds", type=_positive_seconds, required=True, metavar="S")
    rp.add_argument("--source", default=None,
                    metavar="lcg-noise|noise|sine:HZ|saw:HZ|midi|input|FILE",
                    help="what feeds both circuits (default lcg-noise)")
    rp.add_argument("--output", default="stereo", choices=["target", "learned", "stereo", "error", "loss"],
                    help="what you hear (default stereo: target left, learned right)")
    rp.add_argument("--device", help="audio device name (substring) or index; default: the system's")
    rp.add_argument("--blocksize", type=int, default=128, metavar="B", help="frames per callback")
    rp.add_argument("--midi-connect", metavar="NAME", help="also connect the MIDI input to this port")
    rp.add_argument("--every", type=float, default=0.5, metavar="S", help="seconds between telemetry lines")
    rp.add_argument("--quiet", action="store_true", help="no telemetry lines")
    rp.set_defaults(func=cmd_run)

    pp = sub.add_parser("propose-banks", help="propose LACTOSE bank boundaries for a target",
                        description="Fit a cheap model per candidate bank (least squares on a small basis "
                                    "of x, with one sample of memory) and choose the K-bank split of the "
                                    "condition with the least error; print a table on stderr and one "
                                    "JSON line with the boundaries and the improvement over level "
                                    "quantiles and over one bank.")
    pp.add_argument("--target", required=True, help="the ground-truth circuit")
    pp.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE")
    pp.add_argument("--banks", type=int, default=4, metavar="K", help="how many banks (default 4)")
    pp.add_argument("--condition", choices=["level", "input"], default="level")
    pp.add_argument("--input", default="lcg-noise", metavar="lcg-noise|noise|sine:HZ|FILE")
    pp.add_argument("--samples", type=int, default=48000, metavar="N")
    pp.add_argument("--sr", type=float, default=None)
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--memoryless", action="store_true", help="fit without the one-sample memory terms")
    pp.add_argument("--quiet", action="store_true", help="no table on stderr")
    pp.set_defaults(func=cmd_propose_banks)

    np_ = sub.add_parser("render", help="run an SPTMod neural effect over an audio file",
                         description="Process a file with an SPTMod model through the streaming "
                                     "engine, --block samples per call, and write the output aligned "
                                     "with the input (output sample n belongs to input sample n: the "
                                     "FIFO latency of blocks that are not multiples of 64 is "
                                     "compensated). Prints one JSON line.")
    np_.add_argument("--sptmod", metavar="MODEL", help="a Dualtone model file or an upstream-layout "
                     "npz (config + w/<state_dict name>), which is imported")
    np_.add_argument("--input", metavar="FILE.wav|FILE.npy", help="the input: a 1-D float .npy "
                     "(kept in float64) or an audio file soundfile reads (mixed to mono)")
    np_.add_argument("--output", metavar="FILE.wav|FILE.npy", help="the output: .npy (float64) or "
                     ".wav (32-bit float, at the input file's rate; the model's rate for .npy input)")
    np_.add_argument("--block", default="256", metavar="B",
                     help="samples per streaming call, 1 to 65536 (default 256)")
    np_.add_argument("--controls", metavar="V1,V2,...", help="one value per model control "
                     "(default: the model's defaults; an upstream file's stored p)")
    np_.add_argument("--dtype", default="float64", metavar="float32|float64",
                     help="arithmetic of the engine (default float64; float32 is the real-time build)")
    np_.add_argument("--circuit", metavar="TEXT", help="render this circuit instead of a model "
                     "(every parameter set with --hidden NAME=VALUE), e.g. a compressor to capture")
    np_.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter value of --circuit")
    np_.add_argument("--sr", type=float, metavar="HZ", help="sample rate of a .npy input for --circuit "
                     "(default 48000)")
    np_.add_argument("--quiet", action="store_true", help="no progress bar or notes on stderr")
    np_.set_defaults(func=cmd_render)

    from app.train.sptmod_train import add_train_parser      # imports PyTorch only when it runs
    add_train_parser(sub)

    dp = sub.add_parser("devices", help="list audio devices and MIDI ports")
    dp.add_argument("--json", action="store_true")
    dp.set_defaults(func=cmd_devices)
    return p



def main(argv=None, gui=None) -> int:
    """gui(preset, seconds, screenshot, device, blocksize) -> exit code opens the window; main.py
    passes it in (app/ never imports ui/)."""
    parser = build_parser()
    # argparse exits with 2 on bad flags, which is the contract's code for bad input
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        if gui is None:
            parser.print_help()
            return 0
        return gui(preset=args.preset, seconds=args.seconds, screenshot=args.screenshot,
                   device=args.gui_device, blocksize=args.gui_blocksize)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
