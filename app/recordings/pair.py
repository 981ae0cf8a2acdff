"""A paired recording: the dry signal that went into a device and the wet signal that came out,
read with soundfile, one channel each, checked to belong together, and brought to the rate the
learner runs at (both resampled the same way, so they stay in sample lock)."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from app.words import plural


# an automatic alignment searches this far either way, and a pair's lengths may differ this much
# when no alignment says otherwise (the device's tail recorded a little longer)
SEARCH_SECONDS = 0.5


class RecordingError(ValueError):
    """One line: what is wrong with the pair, and what to do."""


@dataclass
class RecordingSpec:
    """What a preset and CircuitSpec store: the two files (absolute paths), the channel read
    from multichannel files (1-based, 'mix', or None for mono files) and the content hashes they
    were saved with (another file under that name is refused). The alignment is the recording's
    knob ('align' in CircuitSpec.hidden)."""
    dry: str
    wet: str
    channel: int | str | None = None
    dry_sha256: str | None = None
    wet_sha256: str | None = None


@dataclass
class Recording:
    dry: np.ndarray              # float64, mono, at `rate`
    wet: np.ndarray              # same length
    rate: float                  # the rate the samples are at now
    file_rate: int               # the files' own rate
    dry_sha256: str
    wet_sha256: str
    dry_path: str = ""
    wet_path: str = ""

    @property
    def seconds(self) -> float:
        return self.dry.size / self.rate


def parse_channel(text: str | None):
    """--channel: None, 'mix' or a channel number from 1."""
    if text is None or text == "mix":
        return text
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise RecordingError(f"--channel {text}: give a channel number from 1, or 'mix'")
    return k


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_channel(path: str, channel=None) -> tuple[np.ndarray, int]:
    """One channel of an audio file as float64 and the file's rate. channel: None (the file must
    be mono), a number from 1, or 'mix' (the channels averaged)."""
    from app.audiofile import AudioFileError, read_frames
    try:
        data, rate = read_frames(path)
    except AudioFileError as e:
        raise RecordingError(str(e)) from None
    channels = data.shape[1]
    if channel is None:
        if channels > 1:
            raise RecordingError(f"{path} has {channels} channels: pick one with --channel K "
                                 f"(1 to {channels}) or average them with --channel mix")
        mono = data[:, 0]
    elif channel == "mix":
        mono = data.mean(axis=1)
    else:
        if channel > channels:
            raise RecordingError(f"{path} has {channels} channel(s): there is no channel {channel}")
        mono = data[:, channel - 1]
    if not np.all(np.isfinite(mono)):
        raise RecordingError(f"{path} contains NaN or infinite samples")
    return np.ascontiguousarray(mono), int(rate)


def resample(x: np.ndarray, rate_from: float, rate_to: float) -> np.ndarray:
    """Polyphase resampling (scipy), the same for both files of a pair."""
    if rate_from == rate_to:
        return x
    from scipy.signal import resample_poly
    g = math.gcd(int(rate_from), int(rate_to))
    return np.ascontiguousarray(resample_poly(x, int(rate_to) // g, int(rate_from) // g))


def estimate_alignment(recording: Recording):
    """--align auto / the window's Estimate: the lag of the wet file within SEARCH_SECONDS
    (and half the pair) either way; align.AlignmentError when it cannot be trusted."""
    from app.recordings.align import estimate_lag
    reach = min(int(SEARCH_SECONDS * recording.rate), recording.dry.size // 2)
    return estimate_lag(recording.dry, recording.wet, max_lag=reach)


def load_pair(dry_path: str, wet_path: str, channel=None, tolerance: int | None = None,
              rate: float | None = None) -> Recording:
    """Read a pair. tolerance: how many samples their lengths may differ by (the alignment: a
    recording that runs on while the device's tail dies away; None: SEARCH_SECONDS); the longer
    one is cut. rate: the rate to resample both to (None: the files' own)."""
    dry, dry_rate = read_channel(dry_path, channel)
    wet, wet_rate = read_channel(wet_path, channel)
    if dry_rate != wet_rate:
        raise RecordingError(f"the dry file is {dry_rate} Hz but the wet file is {wet_rate} Hz: "
                             "record both at one rate (or resample one of them)")
    if tolerance is None:
        tolerance = int(SEARCH_SECONDS * dry_rate)
    diff = abs(dry.size - wet.size)
    if diff > tolerance:
        raise RecordingError(f"the dry file has {plural(dry.size, 'sample')} and the wet file {wet.size}: they "
                             f"differ by {diff}, more than the alignment allows ({tolerance}); are they "
                             "a pair?")
    n = min(dry.size, wet.size)
    dry, wet = dry[:n], wet[:n]
    target = float(dry_rate if rate is None else rate)
    return Recording(resample(dry, dry_rate, target), resample(wet, dry_rate, target), target,
                     dry_rate, sha256_of(dry_path), sha256_of(wet_path), dry_path, wet_path)
