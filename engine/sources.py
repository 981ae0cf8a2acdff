"""Built-in input signals, produced in blocks (each source keeps its own position)."""
import math

import numpy as np
from numba import njit

LCG_SCALE = 1.0 / 2147483647.0


@njit(cache=True, nogil=True)
def _lcg_fill(out, state):
    s = state
    for i in range(out.shape[0]):
        s = (1103515245 * s + 12345) & 0xFFFFFFFF        # wrap to 32 bits ...
        if s >= 0x80000000:                                # ... two's complement
            s -= 0x100000000
        out[i] = s / 2147483647.0
    return s


class LcgNoise:
    """diff.lib's deterministic noise: s[n] = wrap32(1103515245 s[n-1] + 12345), x = s/(2^31-1)."""

    def __init__(self):
        self.state = 0

    def read(self, n: int) -> np.ndarray:
        out = np.empty(n)
        self.state = int(_lcg_fill(out, np.int64(self.state)))
        return out


class WhiteNoise:
    """Uniform white noise in [-1, 1), reproducible from its seed."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def read(self, n: int) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, n)


class Sine:
    """A full-scale sine at a fixed frequency; the phase is computed from the sample index, so
    it does not drift over long runs."""

    def __init__(self, hz: float, sample_rate: float, amplitude: float = 1.0):
        self.hz, self.sr, self.amp, self.n = hz, sample_rate, amplitude, 0

    def read(self, n: int) -> np.ndarray:
        k = np.arange(self.n, self.n + n, dtype=np.float64)
        self.n += n
        # reduce the phase in cycles first so large indices keep full precision
        cycles = np.mod(k * self.hz, self.sr) / self.sr
        return self.amp * np.sin(2.0 * math.pi * cycles)


class Looped:
    """A fixed array played in a loop (an audio file already read by the host)."""

    def __init__(self, data: np.ndarray):
        if data.ndim != 1 or data.size == 0:
            raise ValueError("the input signal is empty")
        self.data, self.pos = np.ascontiguousarray(data, dtype=np.float64), 0

    def read(self, n: int) -> np.ndarray:
        idx = (self.pos + np.arange(n)) % self.data.size
        self.pos = (self.pos + n) % self.data.size
        return self.data[idx]
