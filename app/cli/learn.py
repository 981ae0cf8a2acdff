"""`learn`: learn a circuit's parameters offline and print one JSON line."""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from app.cli import presets as cli_presets
from app.cli.args import add_learning_args, flags_spec, learner_from_spec, plugin_args, _json_float
from app.cli.errors import EXIT_USAGE, UsageError, one_line
from app.cli.inputs import make_sources
from app.cli.recordings import add_recording_args, open_pairs, report
from app.cli.save_preset import check_save_path, save_learned, source_fields
from app.progress import Progress
from app.words import plural
from engine.learn.health import LearningWatch
from engine.learn.optimizers import BY_NAME

EXIT_DIVERGED = 3          # the run completed but learning diverged (the JSON says where and why)
EXIT_INTERRUPTED = 130     # Ctrl-C, as shells report it; the JSON still says what was learned


def cmd_learn(a) -> int:
    if a.samples is None or a.samples < 1:
        raise UsageError("--samples must be a whole number >= 1")
    if a.trace_every < 1:
        raise UsageError("--trace-every must be >= 1")
    save_path = check_save_path(a.save_preset, a.force)
    preset = None
    if a.learn_preset is not None:
        preset, spec = cli_presets.open_preset(a, a.learn_preset)
        _preset_truth(a, spec)
    elif a.circuit is None:
        raise UsageError("learn needs --circuit TEXT (or --preset NAME|FILE)")
    if save_path is not None and a.target_file and len(a.target_file) > 1:
        raise UsageError("--save-preset holds one recording pair: give --target-file once")
    sr_given = a.sr is not None
    sample_rate = a.sr if sr_given else 48000.0
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise UsageError("--sr must be a positive number")
    pairs = None
    if a.target_file:
        pairs = open_pairs(a)
        sample_rate, streams = pairs[0][0].rate, len(pairs)
        sources = []
    else:
        if a.align is not None or a.channel is not None:
            raise UsageError(f"{'--align' if a.align is not None else '--channel'} is for recording "
                             "pairs: give --target-file WET with --input DRY")
        sources, sample_rate = make_sources(a.input or ["lcg-noise"], sample_rate, a.seed, sr_given)
        streams = len(sources)
    if preset is None:
        spec, truth = flags_spec(a), plugin_args(a)[:3]
    else:
        truth = spec.plugin, spec.plugin_channel, cli_presets.plugin_controls(spec)
    knobs = set(truth[2]) | ({"align"} if spec.recording is not None else set())
    learner = learner_from_spec(spec, sample_rate, streams, knobs)
    start = cli_presets.start_values(preset)
    if start:                      # a preset resumes from its learned values, as the window does
        learner.reset({k: v for k, v in start.items() if k in learner.param_names})
    truths = _open_truths(a, learner, sample_rate, streams, pairs, truth)
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
    watch = LearningWatch(sample_rate, learner.param_ranges())
    diverged = None
    progress = Progress(a.samples, not a.quiet)
    kernel_seconds = 0.0
    done = 0
    interrupted = False
    try:
        while done < a.samples:
            nb = min(block, a.samples - done)
            every = a.trace_every if trace_file else 0
            if len(truths) == 1:
                x, target = truths[0].render(sources[0].read(nb) if sources else np.zeros(nb))
                t0 = time.perf_counter()
                rows = learn_across_seams(learner, x, target, truths[0].seams, every)
            elif truths:                         # pairs in batches
                rendered = [t.render(np.zeros(nb)) for t in truths]
                x = np.stack([d for d, _ in rendered], axis=1)
                target = np.stack([y for _, y in rendered], axis=1)
                t0 = time.perf_counter()
                _, rows = learner.process_batch(x, trace_every=every, external=target)
            elif streams == 1:
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
            diverged = watch.observe(learner.samples, learner.loss, learner.params(),
                                     learner.diverged_steps, learner.first_diverged_sample)
            if diverged is not None:         # learning stops here: what follows would be noise
                break
    except KeyboardInterrupt:                # Ctrl-C: report what was learned so far
        interrupted = True
    finally:
        progress.close()
        if trace_file is not None:
            trace_file.close()
        if not pairs:
            for t in truths:
                t.close()
    result = {"samples": done, "seconds": kernel_seconds,
              "samples_per_second": done / kernel_seconds if kernel_seconds > 0 else None,
              "loss": _json_float(learner.loss), "params": learner.params(),
              "skipped": learner.skipped}
    if learner.diverged_steps or diverged is not None:
        result["diverged_steps"] = learner.diverged_steps
    if streams > 1:              # batches; a single --input prints what it always did
        result["streams"] = streams
    if pairs:
        result["align"] = [t.truth.align for t in truths] if streams > 1 else truths[0].truth.align
        found = [al for _, _, al in pairs if al is not None]
        if found:
            result["align_confidence"] = [round(al.confidence, 3) for al in found] if streams > 1 \
                else round(found[0].confidence, 3)
            inverted = [k for k, al in enumerate(found) if al.polarity < 0]
            if inverted:
                result["polarity_inverted"] = inverted if streams > 1 else True
        result.update(report(learner, truths, a.report, sample_rate))
        for t in truths:
            t.close()
    elif truths:
        result["plugin"] = truths[0].summary()
    if learner.banks is not None:
        result["banks"] = _bank_summary(learner)
    if interrupted:
        result["interrupted"] = True
    if diverged is not None:
        result["diverged"] = diverged.as_json()
        print(f"warning: learning {diverged.describe(sample_rate, BY_NAME[learner.settings.optimizer].sets_its_own_step)}; stopped after {plural(done, 'sample')}",
              file=sys.stderr)
    code = EXIT_INTERRUPTED if interrupted else EXIT_DIVERGED if diverged is not None else 0
    why = None if save_path is None else _save(save_path, a, spec, preset, learner, truth, truths, done,
                                               result)
    print(json.dumps(result))
    if why is not None:             # after the JSON: what was learned is reported all the same
        print(f"{'warning' if code else 'error'}: --save-preset {save_path}: not written: {why}",
              file=sys.stderr)
        return code or EXIT_USAGE
    return code


def _preset_truth(a, spec):
    """A preset's ground truth on learn's command line: its recording pair as --input DRY
    --target-file WET --align N --channel K (unless --target-file is given); an SPTMod model or
    a device is learned live, not here."""
    if spec.model is not None or spec.device is not None:
        what = "an SPTMod model" if spec.model is not None else "a device on the audio interface"
        raise UsageError(f"--preset {a.learn_preset}: its ground truth is {what}, learned live: "
                         f"run --headless --preset {a.learn_preset} --seconds S")
    rec = spec.recording
    if rec is not None and not a.target_file:
        a.target_file, a.input = [rec.wet], [rec.dry]
        if a.channel is None and rec.channel is not None:
            a.channel = str(rec.channel)
        if a.align is None:
            a.align = str(int(spec.hidden.get("align", 0)))


def _save(path, a, spec, preset, learner, truth, truths, done: int, result: dict) -> str | None:
    """--save-preset: None once written (result["saved_preset"] says where), else why not. A
    preset keeps its own audio, MIDI and insert; the recording pair is the one learned (at its
    alignment); flags give the plugin and its controls, or the first --input as the source."""
    origin = f"the preset {a.learn_preset}" if preset is not None else f"the circuit '{_short(a.circuit)}'"
    description = f"learned by `learn` from {origin} over {plural(done, 'sample')} (loss {result['loss']})"
    kept = {} if preset is None else cli_presets.kept_fields(preset)
    if a.target_file:
        import os
        from app.recordings.pair import RecordingSpec, parse_channel
        rec = truths[0].truth.recording
        spec.recording = RecordingSpec(os.path.abspath(a.input[0]), os.path.abspath(a.target_file[0]),
                                       parse_channel(a.channel), rec.dry_sha256, rec.wet_sha256)
        spec.hidden["align"] = float(truths[0].truth.align)
    elif preset is None and truth[0] is not None:
        spec.plugin, spec.plugin_channel = truth[0], truth[1]
        spec.hidden.update(truths[0].truth.plugin_values())
        kept["plugin_version"] = truths[0].truth.info.version
    elif preset is None:
        kept.update(source_fields((a.input or ["lcg-noise"])[0]))
    why = save_learned(path, spec, learner, description, force=a.force, **kept)
    if why is None:
        result["saved_preset"] = str(path)
    return why


def _short(text: str, limit: int = 120) -> str:
    line = one_line(text)
    return line if len(line) <= limit else line[:limit - 1] + "…"


# what gives the target the outside signal it reads, on learn's command line
_EXTERNAL_FLAGS = {"plugin": "give --plugin ID", "recording": "give --target-file WET (with --input DRY)",
                   "sptmod": "an SPTMod model is learned live (run --headless --sptmod MODEL) or "
                             "trained with train-sptmod",
                   "device": "a device is learned live: run --headless --target-input CH"}


def _open_truths(a, learner, sample_rate, streams, pairs, truth) -> list:
    """The ground truths from outside, run offline through the callback's own processor code
    (so learn, run and render hear the same thing): one per recording pair, or the plugin of
    truth = (id, channel, controls), probed and instantiated; [] for a circuit target."""
    reads = learner.target_graph.external_name
    plugin, channel, controls = truth
    if pairs:
        if plugin is not None:
            raise UsageError("--plugin and --target-file: one ground truth at a time")
        if reads != "recording":
            raise UsageError("--target-file is given but the target does not read 'recording' "
                             "(e.g. --target \"y = recording\")")
        from app.truths import OfflineTruth, RecordingTruth
        return [OfflineTruth(RecordingTruth(rec, align, OfflineTruth.FRAMES)) for rec, align, _ in pairs]
    if plugin is None:
        if reads is not None:
            raise UsageError(f"the target reads '{reads}': {_EXTERNAL_FLAGS[reads]}")
        return []
    if streams > 1:
        raise UsageError("--plugin learns from one --input (one plugin instance)")
    if not learner.external:
        raise UsageError("--plugin is given but the target does not read 'plugin' (e.g. --target \"y = plugin\")")
    from app.plugins.instance import PluginError
    from app.truths import OfflineTruth, open_plugin
    try:
        return [OfflineTruth(open_plugin(plugin, controls, sample_rate, OfflineTruth.FRAMES, channel=channel))]
    except PluginError as e:
        raise UsageError(f"--plugin {e}") from None


def learn_across_seams(learner, x, target, seams: list, every: int) -> np.ndarray:
    """learner.process in pieces, its circuits restarting from rest where a looping recording
    started over (as the callback does); the trace rows of all pieces."""
    rows, start = [], 0
    for seam in [*seams, x.size]:
        if seam > start:
            _, r = learner.process(x[start:seam], trace_every=every, external=target[start:seam])
            rows.append(r.copy())
        if seam < x.size:
            learner.restart_circuits()
        start = seam
    return np.concatenate(rows) if rows else np.empty((0, learner.layout.trace_width))


def _bank_summary(learner) -> list[dict]:
    b = learner.banks.boundaries
    return [{"bank": k, "range": [b[k], b[k + 1]], "params": values}
            for k, values in enumerate(learner.bank_params())]


def add_parser(sub):
    lp = sub.add_parser("learn", help="learn a circuit's parameters offline (headless)",
                        description="Learn the parameters of --circuit (or of a --preset) so that it "
                                    "matches the target, sample by sample, and print one JSON line "
                                    "with the result.")
    lp.add_argument("--preset", dest="learn_preset", metavar="NAME|FILE",
                    help="learn a preset (a factory name or a file) instead of --circuit: its circuit, "
                         "target, parameter declarations, hidden values, banks, ground truth (a "
                         "plugin or a recording pair) and learning settings, starting from its "
                         "learned values. " + cli_presets.OVERRIDE_HELP)
    add_learning_args(lp, circuit_required=False)
    lp.add_argument("--input", action="append", metavar="lcg-noise|noise|sine:HZ|FILE",
                    help="the input signal fed to both circuits (default lcg-noise, diff.lib's). "
                         "Give it up to 16 times to learn in batches: one stream per --input, all in "
                         "lockstep, each with its own circuit state, window, loss and bank; the "
                         "parameters step once per sample with the mean of the streams' gradients, "
                         "and the loss is their mean. Stream s (from 0) of lcg-noise starts the LCG "
                         "at state s, of noise uses --seed + s; files must share one sample rate"),
    add_recording_args(lp, live=False)
    lp.add_argument("--report", metavar="FILE.png",
                    help="with --target-file: plot the target's and the learned output's spectra "
                         "and a stretch of both waveforms (needs matplotlib)")
    lp.add_argument("--samples", type=int, required=True, metavar="N")
    lp.add_argument("--trace", metavar="FILE.csv", help="write n, loss, parameters per sample")
    lp.add_argument("--trace-every", type=int, default=1, metavar="K", help="one trace row every K samples")
    lp.add_argument("--trace-grads", action="store_true", help="add grad_<param> columns to the trace")
    lp.add_argument("--quiet", action="store_true", help="no progress bar")
    lp.add_argument("--save-preset", metavar="FILE.json",
                    help="write what was learned as a preset (also after Ctrl-C; never NaN values)")
    lp.add_argument("--force", action="store_true", help="replace an existing --save-preset file")
    lp.set_defaults(func=cmd_learn)

