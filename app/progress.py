"""One progress line on stderr for every long command (learn, render, train-sptmod)."""
from __future__ import annotations

import math
import sys
import time


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:4.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds / 3600:.0f}h{seconds % 3600 / 60:02.0f}m"


class Progress:
    """A \\r-updated bar: '[####   ]  50.0%  500/1000 samples  loss 1e-3  eta 2s'.

    Shown only once the work has taken `delay` seconds (a short run prints nothing) and at most
    every 0.2 s; `tty_only` keeps it off when the stream is a file or a pipe (then `line()` still
    prints whole lines, e.g. one per epoch). `start` is work already done before this run (a
    resumed training), which does not count towards the rate."""

    def __init__(self, total: int, enabled: bool, clock=time.perf_counter, stream=None, *,
                 unit: str = "samples", delay: float = 1.0, tty_only: bool = False, start: int = 0):
        self.stream = stream or sys.stderr
        self.lines = enabled
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.enabled = total, enabled and total > 0 and (tty or not tty_only)
        self.clock, self.unit, self.delay, self.start = clock, unit, delay, start
        self.t0 = clock()
        self.shown = False
        self.last = -math.inf

    def update(self, done: int, loss: float | None = None, prefix: str = ""):
        now = self.clock()
        if not self.enabled or now - self.t0 < self.delay or now - self.last < 0.2:
            return
        self.last, self.shown = now, True
        frac = min(done / self.total, 1.0)
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.nan
        loss_text = "" if loss is None else f"  loss {loss:.3e}"
        self.stream.write(f"\r{prefix}[{'#' * int(30 * frac):<30}] {100 * frac:5.1f}%  "
                          f"{done}/{self.total} {self.unit}{loss_text}  eta {_eta(eta)} ")
        self.stream.flush()

    def line(self, text: str):
        """A whole line (a stage finished), over the bar if one is showing."""
        if not self.lines:
            return
        if self.shown:
            self.stream.write("\r" + " " * 100 + "\r")
            self.shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.shown = False
