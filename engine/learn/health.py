"""Is learning healthy? One watch for the command line and the window: it tells divergence (the
loss or a parameter gone non-finite, the learnable circuit blowing up, or the loss grown by orders
of magnitude) and a stall (no progress for a while with a parameter pinned at its range edge).
It reads what the learner publishes anyway (sample count, loss, parameters, diverged steps), so it
costs nothing in the kernel."""
from __future__ import annotations

import math
from dataclasses import dataclass

GROWTH_LIMIT = 1e4          # the loss 40 dB above its early scale: diverged, not a turned knob
LOSS_SCALE_FLOOR = 1e-2     # a loss that starts near 0 still needs a real explosion to count
EARLY_SECONDS = 0.25        # the loss's scale is its peak over this first stretch
BLOWUP_SECONDS = 0.5        # blow-ups on more than BLOWUP_SHARE of the samples over this long:
BLOWUP_SHARE = 0.1          #   diverged (a resonant filter may overflow a few times, then settle)
PERSIST_SECONDS = 0.1       # a non-finite or exploded loss must last this long to count
STALL_SECONDS = 10.0        # no 10 % improvement for this long ...
EDGE_FRACTION = 1e-6        # ... and a parameter this close to an end of its range: stalled
TOO_FAST = "the learning rate is probably too high"
TOO_BOLD = "Gauss-Newton's first steps are probably too bold: divide p0 by 10"   # an optimiser without a rate


@dataclass(frozen=True)
class Retry:
    """What the divergence banner's one click changes before starting over."""
    field: str                  # the Settings field
    name: str                   # how the window says it
    divisor: float
    label: str                  # the button's text


# a learning rate is halved; Gauss-Newton's p0 spans decades (its default is 500), so a tenth
RETRY_RATE = Retry("lr", "learning rate", 2.0, "Halve the learning rate and start over")
RETRY_P0 = Retry("p0", "p0", 10.0, "Divide p0 by 10 and start over")


def retry_for(own_step: bool) -> Retry:
    return RETRY_P0 if own_step else RETRY_RATE


@dataclass(frozen=True)
class Divergence:
    at_sample: int
    reason: str

    def as_json(self) -> dict:
        return {"at_sample": self.at_sample, "reason": self.reason}

    def describe(self, sample_rate: float, own_step: bool = False) -> str:
        """own_step: the optimiser sets its own step (Gauss-Newton): the advice is about p0."""
        return (f"diverged at {self.at_sample / sample_rate:.2f} s (sample {self.at_sample}): {self.reason} "
                f"— {TOO_BOLD if own_step else TOO_FAST}")


@dataclass(frozen=True)
class Stall:
    at_sample: int
    pinned: dict                # name -> the range end it sits at
    quiet_seconds: float

    def describe(self) -> str:
        which = ", ".join(f"'{n}' at {v:.4g}" for n, v in self.pinned.items())
        return (f"stalled: the loss has not improved for {self.quiet_seconds:.0f} s and {which} "
                f"sits at its range edge — widen the range, or Reset")


class LearningWatch:
    """Feed it one observation per block (or per window frame); it returns a Divergence the first
    time learning diverges (then keeps it in `diverged` until reset) and exposes a Stall hint."""

    def __init__(self, sample_rate: float, ranges: dict | None = None):
        self.sample_rate = float(sample_rate)
        self.ranges = dict(ranges or {})        # name -> (lo, hi), for the stall hint
        self.reset()

    def reset(self, diverged_steps: int = 0, samples: int = 0):
        """Start over (a new circuit, a reset, a halved learning rate): counts so far are the baseline."""
        self.diverged: Divergence | None = None
        self.stall: Stall | None = None
        self._steps0 = int(diverged_steps)
        self._start = int(samples)
        self._scale = 0.0
        self._best = math.inf
        self._best_at = int(samples)
        self._history = [(int(samples), int(diverged_steps))]   # (samples, diverged steps) seen
        self._bad_since: int | None = None      # where the loss went bad (non-finite or exploded)

    def observe(self, samples: int, loss: float, params: dict, diverged_steps: int = 0,
                first_diverged: int | None = None) -> Divergence | None:
        """A new Divergence when this observation shows one (None otherwise, also once one was
        reported). first_diverged: the learner's first diverged sample, when it knows it."""
        if self.diverged is not None:
            return None
        samples = int(samples)
        reason = self._reason(samples, loss, params, int(diverged_steps))
        if reason is None:
            self._track(samples, loss, params)
            return None
        start = self._bad_since if self._bad_since is not None else self._history[0][0]
        if reason.startswith("the parameter"):
            start = samples
        known = first_diverged is not None and start <= first_diverged <= samples
        at = first_diverged if known else start
        self.diverged = Divergence(int(at), reason)
        return self.diverged

    def _reason(self, samples, loss, params, steps) -> str | None:
        bad = next((n for n, v in params.items() if not math.isfinite(v)), None)
        if bad is not None:
            return f"the parameter '{bad}' became non-finite"
        if samples <= self._start:
            return None                          # nothing learned yet
        if self._blowup_share(samples, steps) > BLOWUP_SHARE:
            return "the learnable circuit's output or its gradient keeps going non-finite"
        if samples - self._start <= EARLY_SECONDS * self.sample_rate and math.isfinite(loss):
            self._scale = max(self._scale, loss)
            return None
        limit = GROWTH_LIMIT * max(self._scale, LOSS_SCALE_FLOOR)
        if math.isfinite(loss) and loss <= limit:
            self._bad_since = None
            return None
        if self._bad_since is None:
            self._bad_since = samples
        if samples - self._bad_since < PERSIST_SECONDS * self.sample_rate:
            return None
        if not math.isfinite(loss):
            return "the loss became non-finite"
        return f"the loss grew to {loss:.3g}, over {GROWTH_LIMIT:.0e} times its early scale"

    def _blowup_share(self, samples, steps) -> float:
        """The share of samples lost to blow-ups over the last BLOWUP_SECONDS (0 until that
        much has been seen)."""
        span = BLOWUP_SECONDS * self.sample_rate
        history = self._history
        history.append((samples, steps))
        while len(history) > 2 and samples - history[1][0] >= span:
            history.pop(0)                      # keep one observation at or before the span's start
        s0, d0 = history[0]
        if samples - s0 < span:
            return 0.0
        return (steps - d0) / (samples - s0)

    def _track(self, samples, loss, params):
        """Progress for the stall hint: the best loss and when it last improved by 10 %."""
        if samples <= self._start or not math.isfinite(loss):
            return
        if loss < 0.9 * self._best:
            self._best, self._best_at = loss, samples
            self.stall = None
            return
        quiet = (samples - self._best_at) / self.sample_rate
        if quiet < STALL_SECONDS:
            return
        pinned = {}
        for name, value in params.items():
            lo, hi = self.ranges.get(name, (None, None))
            if lo is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
                continue
            edge = EDGE_FRACTION * (hi - lo)
            if value <= lo + edge or value >= hi - edge:
                pinned[name] = lo if value <= lo + edge else hi
        self.stall = Stall(samples, pinned, quiet) if pinned else None
