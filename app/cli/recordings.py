"""The command line's recording pairs: --input DRY --target-file WET [--align N|auto]
[--channel K|mix], opened as ground truths for `learn`, and what `learn` reports on them at the
end (the error-to-signal ratio with the learned values frozen, --report FILE.png)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from app.cli.errors import UsageError

from app.recordings.pair import SEARCH_SECONDS
from app.words import plural


def add_recording_args(p, live: bool):
    p.add_argument("--target-file", action="append", default=None, metavar="WET",
                   help="a recording of the device's output as the ground truth: its samples are "
                        "the target's 'recording' signal (the target defaults to  y = recording) "
                        + ("and --source DRY is what went into the device; both loop in sample lock"
                           if live else
                           "and the --input given at the same position is the dry file that went "
                           "in (pairs loop together; give pairs for batches)"))
    p.add_argument("--align", default=None, metavar="N|auto",
                   help="the wet file is played N samples earlier (the device's latency); auto "
                        "estimates it by cross-correlation (GCC-PHAT) and refuses when it is "
                        f"ambiguous (search range ±{SEARCH_SECONDS:g} s; default 0)")
    p.add_argument("--channel", default=None, metavar="K|mix",
                   help="the channel read from multichannel dry/wet files (from 1), or mix to "
                        "average them (default: the files must be mono)")


def parse_align(text: str | None):
    """None/'auto'/a whole number of samples."""
    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--align {text}: give a whole number of samples, or auto") from None


def open_pair(dry_path: str, wet_path: str, channel_text, align_text, sample_rate=None):
    """(Recording, align, alignment or None) of one pair; UsageError (one line) when the files
    do not make a pair or an automatic alignment is ambiguous."""
    from app.recordings.pair import RecordingError, estimate_alignment, load_pair, parse_channel
    align = parse_align(align_text)
    try:
        channel = parse_channel(channel_text)
        if align == "auto":
            from app.recordings.align import AlignmentError
            rec = load_pair(dry_path, wet_path, channel, rate=sample_rate)   # lengths within the search
            try:
                found = estimate_alignment(rec)
            except AlignmentError as e:
                raise UsageError(f"--align auto ({wet_path}): {e}") from None
            return rec, found.lag, found
        align = align or 0
        rec = load_pair(dry_path, wet_path, channel, tolerance=abs(align), rate=sample_rate)
    except RecordingError as e:
        raise UsageError(str(e)) from None
    if abs(align) >= rec.dry.size:
        raise UsageError(f"--align {align}: the files are only {plural(rec.dry.size, 'sample')} long")
    return rec, align, None


def open_pairs(a) -> list:
    """learn's pairs: the i-th --target-file with the i-th --input."""
    dry = a.input or []
    if len(dry) != len(a.target_file):
        raise UsageError(f"--target-file is given {len(a.target_file)} time(s) and --input "
                         f"{len(dry)}: give the dry file of each pair with --input, in the same order")
    pairs = [open_pair(d, w, a.channel, a.align) for d, w in zip(dry, a.target_file)]
    rates = sorted({rec.rate for rec, _, _ in pairs})
    if len(rates) > 1:
        raise UsageError("the pairs have different sample rates (" + ", ".join(f"{r:g} Hz" for r in rates)
                         + "); batches need one rate")
    if a.sr is not None and rates[0] != a.sr:
        raise UsageError(f"the recordings are {rates[0]:g} Hz but --sr is {a.sr:g}; omit --sr")
    return pairs


def frozen_outputs(learner, truths) -> list[tuple[np.ndarray, np.ndarray]]:
    """(target, learned output) over each pair's whole aligned stretch, once, from a cleared
    state with the learned values frozen (learning off). Leaves the learner not learning."""
    from app.truths import OfflineTruth, RecordingTruth
    learned = learner.params()
    learner.configure(dataclasses.replace(learner.settings, learning=False))
    results = []
    for s, t in enumerate(truths):
        rec, align = t.truth.recording, t.truth.align
        fresh = OfflineTruth(RecordingTruth(rec, align, OfflineTruth.FRAMES))
        dry, wet = fresh.render(np.zeros(rec.dry.size - abs(align)))
        if learner.banks is None:            # banks keep their per-bank values and state
            learner.reset(learned)
        if learner.streams == 1:
            out, _ = learner.process(dry, external=wet)
            results.append((wet, out[:, 1].copy()))
        else:                                 # every stream hears this pair; stream 0 is read
            S = learner.streams
            out, _ = learner.process_batch(np.repeat(dry[:, None], S, axis=1),
                                           external=np.repeat(wet[:, None], S, axis=1))
            results.append((wet, out[:, 0, 1].copy()))
    return results


def report(learner, truths, path: str | None, sample_rate: float) -> dict:
    """The JSON fields for pairs: the alignment(s) and the ESR with the learned values frozen;
    --report writes the plot of the first pair."""
    from app.recordings.metrics import esr
    params = learner.params()
    outputs = frozen_outputs(learner, truths)
    esrs = [esr(target, learned) for target, learned in outputs]
    out = {"esr": _one_or_list([None if not np.isfinite(v) else float(v) for v in esrs])}
    if path is not None:
        from app.recordings.report import ReportError, write_report
        target, learned = outputs[0]
        try:
            write_report(path, target, learned, sample_rate,
                         title=f"learned vs {os.path.basename(truths[0].truth.recording.wet_path)}", params=params)
        except ReportError as e:
            raise UsageError(str(e)) from None
        out["report"] = path
    return out


def _one_or_list(values: list):
    return values[0] if len(values) == 1 else values
