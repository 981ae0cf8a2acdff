"""Offline input signals for `learn` and `propose-banks`: lcg-noise | noise | sine:HZ | FILE."""
from __future__ import annotations

import os

from app.cli.errors import UsageError, parse_float as _float


def make_source(spec: str, sample_rate: float, seed: int, sr_given: bool):
    """An input source from lcg-noise | noise | sine:HZ | FILE; returns (source, sample_rate)."""
    from engine.sources import LcgNoise, Looped, Sine, WhiteNoise, spellings
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
        raise UsageError(f"--input {spec}: no such file (or use {', '.join(spellings(offline=True))})")
    try:
        data, rate = read_mono(spec)
    except AudioFileError as e:
        raise UsageError(str(e)) from None
    if sr_given and rate != sample_rate:
        raise UsageError(f"--input {spec}: the file is {rate} Hz but --sr is {sample_rate:g}; "
                         "omit --sr to use the file's rate")
    return Looped(data), float(rate)


def _is_file_input(spec: str) -> bool:
    from engine.sources import BY_NAME
    return spec.partition(":")[0] not in BY_NAME


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
