"""`render`: run an SPTMod model, a plugin or a circuit over an audio file."""
from __future__ import annotations

import json
import time
import os
import sys

import numpy as np

from app.cli.args import parse_hidden
from app.cli.errors import UsageError, one_line as _one_line, parse_float as _float
from app.progress import Progress
from app.words import plural


RENDER_MAX_BLOCK = 65536


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
        raise UsageError(f"--input {path}: sample {bad[0]} is not finite ({plural(bad.size, 'NaN/Inf sample')})")
    return x, rate


def _render_controls(text, model) -> np.ndarray:
    controls = model.controls
    if text is None:
        return model.control_defaults
    parts = [t for t in text.split(",")] if text.strip() else []
    if len(parts) != len(controls):
        names = ",".join(model.control_names) or "none"
        raise UsageError(f"--controls: the model has {plural(len(controls), 'control')} ({names}), "
                         f"{plural(len(parts), 'value')} given")
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
    progress = Progress(x.size, not a.quiet)
    try:
        for k in range(0, x.size, 65536):
            out[k:k + 65536] = learner.process(x[k:k + 65536])[0][:, 0]
            progress.update(min(k + 65536, x.size))
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    # the kernel silences (and counts as skipped) samples where the circuit went non-finite; an
    # output so large that the (idle) learner's loss overflowed counts as a diverged step
    bad = int(learner.skipped) + int(learner.diverged_steps) + int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise UsageError(f"--circuit: the output was NaN/Inf at {plural(bad, 'sample')}; nothing was written")
    _write_render_output(a.output, out, rate)
    print(json.dumps({"samples": int(x.size), "seconds": seconds, "circuit": a.circuit,
                      "hidden": values, "sample_rate": rate}))
    return 0


def _render_plugin(a) -> int:
    """A plugin over a file through the callback's own code path (OfflineTruth), its controls
    set with --hidden SYMBOL=VALUE; the output is aligned with the input (its latency removed)."""
    from app.plugins.instance import PluginError
    from app.truths import OfflineTruth, open_plugin
    x, in_rate = _read_render_input(a.input)
    rate = float(in_rate) if in_rate is not None else (48000.0 if a.sr is None else a.sr)
    values = dict(parse_hidden(t) for t in a.hidden)
    try:
        truth = OfflineTruth(open_plugin(a.plugin, values, rate, OfflineTruth.FRAMES,
                                         channel=1 if a.plugin_channel == "right" else 0))
    except PluginError as e:
        raise UsageError(f"--plugin {e}") from None
    progress = Progress(x.size, not a.quiet)
    t0 = time.perf_counter()
    parts = []
    try:
        for k in range(0, x.size, 65536):
            parts.append(truth.render(x[k:k + 65536])[1])
            progress.update(min(k + 65536, x.size))
        latency = truth.truth.processor.latency
        parts.append(truth.render(np.zeros(latency))[1])        # what the latency still holds
    finally:
        progress.close()
        summary = truth.summary()
        truth.close()
    seconds = time.perf_counter() - t0
    out = np.concatenate(parts)[latency:latency + x.size]
    if summary["restarts"]:
        raise UsageError(f"--plugin {summary['id']}: the output went NaN/Inf {summary['restarts']} "
                         "times (silenced and restarted); nothing was written")
    _write_render_output(a.output, out, rate)
    print(json.dumps({"samples": int(x.size), "seconds": seconds, "sample_rate": rate,
                      "latency_samples": latency, "plugin": summary}))
    return 0


def cmd_render(a) -> int:
    """Run an SPTMod model (or a circuit) over a file, block by block through the streaming engine."""
    for flag, v in (("--input", a.input), ("--output", a.output)):
        if not v:
            raise UsageError(f"render needs {flag}")
    if sum(v is not None for v in (a.sptmod, a.circuit, a.plugin)) != 1:
        raise UsageError("render needs one of --sptmod MODEL, --plugin ID or --circuit TEXT")
    out_kind = os.path.splitext(a.output)[1].lower()
    if out_kind not in (".npy", ".wav"):
        raise UsageError(f"--output {a.output}: the name must end in .npy or .wav")
    folder = os.path.dirname(os.path.abspath(a.output))
    if not os.path.isdir(folder):
        raise UsageError(f"--output {a.output}: the folder {folder} does not exist")
    if a.circuit is not None:
        return _render_circuit(a)
    if a.plugin is not None:
        return _render_plugin(a)
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
    progress = Progress(n, not a.quiet)
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
                      # the content hash, as presets store it; the file's bytes hash named so
                      "model": a.sptmod, "model_sha256": model.sha256, "model_file_sha256": model_hash(a.sptmod),
                      "sample_rate": rate,
                      "controls": dict(zip(model.control_names, map(float, controls)))}))
    return 0


def add_parser(sub):
    np_ = sub.add_parser("render", help="run an SPTMod neural effect, a plugin or a circuit over an audio file",
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
    np_.add_argument("--plugin", metavar="ID", help="render this LADSPA/LV2 plugin instead (its "
                     "controls set with --hidden SYMBOL=VALUE; its latency removed from the output)")
    np_.add_argument("--plugin-channel", choices=["left", "right"], default="left",
                     help="the output channel of a stereo --plugin that is written (default left)")
    np_.add_argument("--hidden", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter value of --circuit, or a control of --plugin")
    np_.add_argument("--sr", type=float, metavar="HZ", help="sample rate of a .npy input for --circuit "
                     "(default 48000)")
    np_.add_argument("--quiet", action="store_true", help="no progress bar or notes on stderr")
    np_.set_defaults(func=cmd_render)

