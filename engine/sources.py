"""Input signals: one table of the sources a user can pick, and the block generators behind them.

The generators are @njit functions over a caller's buffer and a few numbers of state, so the same
code fills a block offline (`learn`, `propose-banks`, through the small classes below) and inside
the audio callback (app/host/callback.py), which keeps their state in its control words.
"""
import math
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class Source:
    name: str
    code: int            # the value of the callback's source word
    description: str
    needs_hz: bool = False
    offline: bool = True  # also an input of `learn` / `propose-banks` (else live only)


SOURCES = (                     # in the order menus list them
    Source("lcg-noise", 1, "diff.lib's deterministic noise (a 32-bit LCG)"),
    Source("noise", 2, "uniform white noise in [-1, 1)"),
    Source("sine", 3, "a sine at the given frequency", needs_hz=True),
    Source("saw", 4, "a band-limited sawtooth at the given frequency", needs_hz=True, offline=False),
    Source("midi", 5, "a saw voice played by MIDI notes", offline=False),
    Source("input", 0, "the audio interface's input channel", offline=False),
    Source("file", 6, "an audio file, looped"),
)
SOURCE_CODES = {s.name: s.code for s in sorted(SOURCES, key=lambda s: s.code)}
BY_NAME = {s.name: s for s in SOURCES}


def spellings(offline: bool) -> list[str]:
    """How the command line names the sources: 'lcg-noise', 'sine:HZ', ... (FILE is any path)."""
    return [s.name + (":HZ" if s.needs_hz else "") for s in SOURCES
            if s.name != "file" and (s.offline or not offline)]


# ------------------------------------------------------------------------------------------------
# block generators (also compiled into the callback: no allocation, state in and out)


@njit(cache=True, nogil=True)
def lcg_block(out, n, state, gain):
    """diff.lib's noise: s[n] = wrap32(1103515245 s[n-1] + 12345), x = s / (2^31 - 1)."""
    s = state
    for i in range(n):
        s = (1103515245 * s + 12345) & 0xFFFFFFFF        # wrap to 32 bits ...
        if s >= 0x80000000:                                # ... two's complement
            s -= 0x100000000
        out[i] = gain * (s / 2147483647.0)
    return s


@njit(cache=True, nogil=True)
def white_block(out, n, state, gain):
    """Uniform noise in [-gain, gain) from xorshift64* (fast, allocation-free); state: uint64[1]."""
    s = state[0]
    for i in range(n):
        s ^= s >> np.uint64(12)
        s ^= s << np.uint64(25)
        s ^= s >> np.uint64(27)
        r = s * np.uint64(2685821657736338717)
        out[i] = gain * ((r >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0)
    state[0] = s


@njit(cache=True, nogil=True)
def blep(t, dt):
    """Polynomial band-limited step correction for a saw's discontinuity."""
    if t < dt:
        t /= dt
        return t + t - t * t - 1.0
    if t > 1.0 - dt:
        t = (t - 1.0) / dt
        return t * t + t + t + 1.0
    return 0.0


@njit(cache=True, nogil=True)
def oscillator_block(out, n, phase, hz, sr, gain, saw):
    """A sine, or a polyBLEP sawtooth, from phase (in cycles, [0, 1)); returns the next phase."""
    ph = phase
    dt = min(max(hz / sr, 0.0), 0.5)
    for i in range(n):
        if saw:
            out[i] = gain * (2.0 * ph - 1.0 - blep(ph, dt))
        else:
            out[i] = gain * math.sin(2.0 * math.pi * ph)
        ph += dt
        if ph >= 1.0:
            ph -= 1.0
    return ph


@njit(cache=True, nogil=True)
def loop_block(out, n, data, pos, gain):
    """data played in a loop from position pos; returns the next position."""
    p = pos
    for i in range(n):
        if p >= data.shape[0]:
            p = 0
        out[i] = gain * data[p]
        p += 1
    return p


# ------------------------------------------------------------------------------------------------
# offline sources: each keeps its own position and reads blocks


class LcgNoise:
    """diff.lib's deterministic noise; stream s of a batch starts the LCG at state s."""

    def __init__(self):
        self.state = 0

    def read(self, n: int) -> np.ndarray:
        out = np.empty(n)
        self.state = int(lcg_block(out, n, np.int64(self.state), 1.0))
        return out


class WhiteNoise:
    """Uniform white noise in [-1, 1), reproducible from its seed (numpy's PCG64: offline runs
    are reproduced from --seed; the callback uses white_block, which needs no allocation)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def read(self, n: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, n)


class Sine:
    """A sine at a fixed frequency, by the oscillator the callback plays."""

    def __init__(self, hz: float, sample_rate: float, amplitude: float = 1.0):
        self.hz, self.sr, self.amp, self.phase = hz, sample_rate, amplitude, 0.0

    def read(self, n: int) -> np.ndarray:
        out = np.empty(n)
        self.phase = oscillator_block(out, n, self.phase, self.hz, self.sr, self.amp, False)
        return out


class Looped:
    """A fixed array played in a loop (an audio file already read by the host)."""

    def __init__(self, data: np.ndarray):
        if data.ndim != 1 or data.size == 0:
            raise ValueError("the input signal is empty")
        self.data, self.pos = np.ascontiguousarray(data, dtype=np.float64), 0

    def read(self, n: int) -> np.ndarray:
        out = np.empty(n)
        self.pos = loop_block(out, n, self.data, self.pos, 1.0)
        return out
