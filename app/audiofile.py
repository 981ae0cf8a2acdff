"""Reading audio files for use as an input signal (soundfile: WAV, FLAC, OGG, ...)."""
from __future__ import annotations

import numpy as np
import soundfile as sf


class AudioFileError(ValueError):
    pass


def read_frames(path: str) -> tuple[np.ndarray, int]:
    """The file's samples as float64 frames (samples x channels), and its sample rate."""
    try:
        data, rate = sf.read(path, dtype="float64", always_2d=True)
    except FileNotFoundError:
        raise AudioFileError(f"input file not found: {path}") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioFileError(f"cannot read audio file {path}: {' '.join(str(e).split())}") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {path} holds no samples")
    return data, int(rate)


def read_mono(path: str) -> tuple[np.ndarray, int]:
    """The file's samples mixed to mono as float64, and its sample rate."""
    data, rate = read_frames(path)
    return np.ascontiguousarray(data.mean(axis=1)), rate
