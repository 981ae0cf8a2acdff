"""The ring of (t, columns) rows every time plot draws from, and its thinning."""
from __future__ import annotations

import math

import numpy as np


class History:
    """Fixed-capacity ring of (t, columns) rows for plotting, oldest first.

    Rows live contiguously in a buffer of twice the capacity; when the end is reached the newest
    rows are moved to the front once (amortised O(1) per row), so `since` returns plain views
    without concatenating. Times must not decrease (they are searched with `searchsorted`).
    The views stay valid until the next `append`; copy them to keep them longer."""

    def __init__(self, capacity: int, columns: int):
        if capacity < 1 or columns < 0:
            raise ValueError("History needs capacity >= 1 and columns >= 0")
        self.capacity = int(capacity)
        self.columns = int(columns)
        self._t = np.empty(2 * self.capacity)
        self._v = np.empty((2 * self.capacity, self.columns))
        self._start = 0
        self._end = 0

    def append(self, t: np.ndarray, values: np.ndarray):
        t = np.asarray(t, dtype=float).reshape(-1)
        n = t.size
        if n == 0:
            return
        v = np.asarray(values, dtype=float).reshape(n, self.columns)
        cap = self.capacity
        if n >= cap:
            self._t[:cap] = t[-cap:]
            self._v[:cap] = v[-cap:]
            self._start, self._end = 0, cap
            return
        if self._end + n > 2 * cap:
            keep = min(self._end - self._start, cap - n)
            lo = self._end - keep           # lo >= cap >= keep: source and destination never overlap
            self._t[:keep] = self._t[lo:self._end]
            self._v[:keep] = self._v[lo:self._end]
            self._start, self._end = 0, keep
        e = self._end
        self._t[e:e + n] = t
        self._v[e:e + n] = v
        self._end = e + n
        self._start = max(self._start, self._end - cap)

    def since(self, t0: float) -> tuple[np.ndarray, np.ndarray]:
        """Views of the rows with t >= t0, oldest first."""
        t = self._t[self._start:self._end]
        i = int(np.searchsorted(t, t0, side="left"))
        return t[i:], self._v[self._start + i:self._end]

    def between(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Views of the rows with t0 <= t <= t1, oldest first."""
        t = self._t[self._start:self._end]
        i = int(np.searchsorted(t, t0, side="left"))
        j = int(np.searchsorted(t, t1, side="right"))
        j = max(i, j)
        return t[i:j], self._v[self._start + i:self._start + j]

    def clear(self):
        self._start = self._end = 0

    def __len__(self):
        return self._end - self._start

    @property
    def last_time(self) -> float | None:
        return float(self._t[self._end - 1]) if self._end > self._start else None


def _thin(t: np.ndarray, last: float | None, rate: float) -> slice:
    """A stride that keeps at most about `rate` rows per second of `t` (always the newest row)."""
    n = t.size
    if n < 2 or rate <= 0:
        return slice(None)
    t0 = last if last is not None else float(t[0])
    count = n if last is not None else n - 1
    dur = float(t[-1]) - t0
    if not dur > 0:
        return slice(n - 1, None)
    stride = math.ceil(count / (dur * rate) - 0.01)
    if stride <= 1:
        return slice(None)
    return slice((n - 1) % stride, None, stride)
