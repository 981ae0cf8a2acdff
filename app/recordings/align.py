"""How late a device's output is: the lag between a dry signal and what a device made of it, by
generalised cross-correlation with phase transform (GCC-PHAT). Whitening the cross-spectrum keeps
only its phase, so the peak stays sharp at the delay through filters and mild distortion, where a
plain cross-correlation smears it over the filter's impulse response. Also the test signal and
the analysis of a round-trip latency measurement through hardware."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.words import plural

# the longest stretch analysed (about 5.5 s at 48 kHz): the loudest one of a long recording
EXCERPT = 1 << 18
# a peak's immediate neighbours (a filter spreads it) are not rivals
GUARD = 16
MIN_SAMPLES = 1024
POLARITY_SPAN = 64         # samples of a device's response that decide its polarity


class AlignmentError(ValueError):
    """One line: why no lag can be trusted, and what to do."""


@dataclass(frozen=True)
class Alignment:
    lag: int              # the wet signal is this many samples late: wet[n] ~ f(dry[n - lag])
    confidence: float     # the peak over the largest other one away from it (>= 1)
    polarity: int         # +1, or -1 when the device inverts

    def describe(self, sample_rate: float) -> str:
        text = (f"latency {plural(self.lag, 'sample')} ({1000.0 * self.lag / sample_rate:.2f} ms), "
                f"confidence {self.confidence:.1f}")
        return text + (", polarity inverted" if self.polarity < 0 else "")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _loudest_stretch(dry: np.ndarray, length: int) -> int:
    """Where the stretch of `length` samples with the most dry energy starts."""
    if dry.size <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.square(dry))])
    hop = max(length // 8, 1)
    starts = np.arange(0, dry.size - length + 1, hop)
    return int(starts[np.argmax(energy[starts + length] - energy[starts])])


def _gcc_phat(dry: np.ndarray, wet: np.ndarray, min_lag: int, max_lag: int) -> tuple:
    """The whitened cross-correlation at lags min_lag..max_lag (index 0 is min_lag), and the
    plain one (for the polarity: a whitened peak's sign follows the device's phase, not its gain)."""
    n = dry.size + wet.size
    size = 1 << int(math.ceil(math.log2(n)))        # zero-padded: no circular wrap
    D = np.fft.rfft(dry, size)
    W = np.fft.rfft(wet, size)
    cross = W * np.conj(D)
    power = np.abs(D) ** 2
    excited = power > 1e-8 * power.max()             # bands the dry signal never reached say nothing
    mag = np.abs(cross)
    weighted = np.where(excited, cross / (mag + 1e-3 * mag[excited].mean()), 0.0)
    r = np.fft.irfft(weighted, size)
    plain = np.fft.irfft(cross, size)
    lags = np.arange(min_lag, max_lag + 1)
    return r[lags % size], plain[np.arange(min_lag, max_lag + 1 + POLARITY_SPAN) % size]


def estimate_lag(dry, wet, max_lag: int, min_lag: int | None = None,
                 min_confidence: float = 3.0) -> Alignment:
    """The lag of wet behind dry within [min_lag, max_lag] (min_lag: -max_lag by default)."""
    dry = np.asarray(dry, dtype=np.float64)
    wet = np.asarray(wet, dtype=np.float64)
    if not (np.all(np.isfinite(dry)) and np.all(np.isfinite(wet))):
        raise AlignmentError("the recordings contain NaN or infinite samples")
    min_lag = -max_lag if min_lag is None else min_lag
    n = min(dry.size, wet.size)
    if n < MIN_SAMPLES:
        raise AlignmentError(f"the recordings are too short to align ({n} samples; at least {MIN_SAMPLES})")
    length = min(n, max(EXCERPT, 8 * max(abs(min_lag), abs(max_lag))))
    start = _loudest_stretch(dry[:n], length)
    d, w = dry[start:start + length], wet[start:start + length]
    if _rms(d) < 1e-6:
        raise AlignmentError("the dry signal is silent: nothing to align")
    if _rms(w) < 1e-6:
        raise AlignmentError("the wet signal is silent: nothing to align (is it the device's output?)")
    r, plain = _gcc_phat(d, w, min_lag, max_lag)
    mag = np.abs(r)
    k = int(np.argmax(mag))
    rivals = mag.copy()
    rivals[max(k - GUARD, 0):k + GUARD + 1] = 0.0
    second = int(np.argmax(rivals))
    confidence = float(mag[k] / max(rivals[second], 1e-12 * mag[k], 1e-300))
    if confidence < min_confidence:
        raise AlignmentError(
            f"the alignment is ambiguous: lags {min_lag + k} and {min_lag + second} samples fit almost "
            f"equally well (confidence {confidence:.2f}; periodic or narrow-band input?); give --align N")
    # the device's low-frequency gain: the plain correlation summed over its first response
    polarity = 1 if plain[k:k + POLARITY_SPAN].sum() >= 0 else -1
    return Alignment(min_lag + k, confidence, polarity)


def measure_round_trip(sent, returned, sample_rate: float, max_latency: int) -> Alignment:
    """The round trip of a test signal through a device: `returned` was recorded from the sample
    `sent` started on, for as long as `sent` lasts (the signal then silence: at least twice
    max_latency of it, so that an echo beyond the range is seen whole and refused rather than
    mistaken for a nearer one). Refuses (one line) a silent or clipping return, and a return
    with no clear echo within max_latency samples. A device that inverts is not an error:
    Alignment.polarity says so."""
    sent = np.asarray(sent, dtype=np.float64)
    returned = np.asarray(returned, dtype=np.float64)
    ms = 1000.0 * max_latency / sample_rate
    if not np.all(np.isfinite(returned)):
        raise AlignmentError("the input channel returned NaN or infinite samples")
    if _rms(returned) < 1e-5:
        raise AlignmentError("the input channel returned silence: is the device connected to the send "
                             "output and switched on, and is this its return channel?")
    clipped = np.count_nonzero(np.abs(returned) >= 0.999)
    if clipped > 0.001 * returned.size:
        raise AlignmentError(f"the return clips ({plural(clipped, 'sample')} at full scale): turn the device's "
                             "output (or the interface's input gain) down")
    active = int(np.flatnonzero(sent)[-1]) + 1 if np.any(sent) else 0
    reach = max(returned.size - active, 0)
    try:
        found = estimate_lag(sent, returned, max_lag=reach, min_lag=0)
    except AlignmentError:
        raise AlignmentError(f"no echo of the test signal within {ms:.0f} ms ({max_latency} samples): "
                             "is this the device's return channel?") from None
    if found.lag > max_latency:
        raise AlignmentError(f"no echo of the test signal within {ms:.0f} ms ({max_latency} samples): "
                             f"the round trip looks longer ({1000.0 * found.lag / sample_rate:.0f} ms)")
    return found


def probe_signal(sample_rate: float, seconds: float = 0.5, level: float = 0.5) -> np.ndarray:
    """An exponential sine sweep from 40 Hz to 0.45 x the sample rate, 5 ms raised-cosine fades,
    peak `level`: every band excited once, so the phase transform sees a clean echo."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0, f1 = 40.0, 0.45 * sample_rate
    k = math.log(f1 / f0)
    phase = 2 * math.pi * f0 * seconds / k * (np.exp(t * k / seconds) - 1.0)
    x = level * np.sin(phase)
    fade = min(int(0.005 * sample_rate), n // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    x[:fade] *= ramp
    x[n - fade:] *= ramp[::-1]
    return x
