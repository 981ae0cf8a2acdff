"""LACTOSE parameter banks: K+1 sorted boundaries on a condition signal make K banks, and each bank
owns a full copy of the learnable parameters (and of their optimiser state).

Banks are built by rewriting the circuit, so the compiler needs no new node kinds:

    lactose_env  = ...                     # the condition: an envelope of x, x itself, or a signal
    lactose_c    = 20*log10(lactose_env + 1e-12)
    lactose_bank = (lactose_c >= b1) + (lactose_c >= b2) + ...   # clamped to 0..K-1 by construction
    gain = gain__bank0 if lactose_bank < 0.5 else (gain__bank1 if lactose_bank < 1.5 else ...)
    ...the user's circuit, unchanged...

Comparisons have a zero derivative and the IF passes the derivative of the branch taken, so the
tangent of gain__bankk is exactly ∂y/∂(bank k's gain), carried through the circuit's feedback: that
is the `exact` gradient. The `separated` gradient of LACTOSE (partials for the active bank only) is
the sum of those tangents over the banks, applied to the active bank alone: a single tangent set
carried through the state while banks swap obeys the same recursion as that sum. The compiler does
that step (engine/circuit/compiler.py, BankPlan); this module only writes text and names.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

CONDITIONS = ("level", "input", "note", "velocity")   # or the name of a signal of the circuit
MODES = ("separated", "exact")
PREFIX = "lactose_"
BANK_SIGNAL = PREFIX + "bank"
CONDITION_SIGNAL = PREFIX + "c"
MAX_BANKS = 64


@dataclass
class Banks:
    boundaries: list                      # K+1 sorted values on the condition's axis
    condition: str = "level"              # level | input | note | velocity (live MIDI) | a signal of
                                          # the circuit (read one sample late)
    mode: str = "separated"               # separated | exact
    hysteresis: float = 0.0               # a bank changes only when the condition passes a boundary by this
    crossfade_ms: float = 0.0             # parameter crossfade from the outgoing to the incoming bank
    attack_ms: float = 1.0                # the level follower (condition "level")
    release_ms: float = 50.0
    level_db: bool = True                 # level in dBFS (else linear)
    circuits: list | None = None          # a topology per bank: K circuit texts (None: the one circuit)

    @property
    def K(self) -> int:
        return len(self.boundaries) - 1

    def validate(self):
        b = [float(v) for v in self.boundaries]
        if len(b) < 2:
            raise ValueError("banks need at least two boundaries (K+1 boundaries make K banks)")
        if len(b) - 1 > MAX_BANKS:
            raise ValueError(f"at most {MAX_BANKS} banks")
        if not all(math.isfinite(v) for v in b):
            raise ValueError("bank boundaries must be finite numbers")
        if any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
            raise ValueError("bank boundaries must be strictly increasing")
        if self.mode not in MODES:
            raise ValueError(f"unknown bank mode '{self.mode}'; choose one of {', '.join(MODES)}")
        if self.condition not in CONDITIONS and not self.condition.isidentifier():
            raise ValueError(f"the bank condition must be level, input or a signal name, got '{self.condition}'")
        if self.circuits is not None and (not isinstance(self.circuits, (list, tuple))
                                          or len(self.circuits) != len(b) - 1
                                          or not all(isinstance(t, str) and t.strip() for t in self.circuits)):
            raise ValueError(f"a topology per bank needs one circuit text per bank ({len(b) - 1})")
        for what, v in (("hysteresis", self.hysteresis), ("crossfade", self.crossfade_ms),
                        ("attack", self.attack_ms), ("release", self.release_ms)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"the bank {what} must be a number >= 0")

    def select(self, c: float, previous: int | None = None) -> int:
        """The bank for condition value c (reference for tests; the kernel computes it itself)."""
        b, h, k = self.boundaries, self.hysteresis, 0
        for j in range(1, self.K):
            if previous is not None and h > 0:
                k += c >= (b[j] - h if previous >= j else b[j] + h)
            else:
                k += c >= b[j]
        return k


def bank_name(param: str, k: int) -> str:
    return f"{param}__bank{k}"


def display_name(param: str, k: int) -> str:
    """What users see for bank k's copy of param: 'gain@2' (split_display_name reads it back)."""
    return f"{param}@{k}"


def split_display_name(name: str) -> tuple[str, int | None]:
    """'gain@2' -> ('gain', 2); a name without a bank -> (name, None)."""
    base, at, k = name.rpartition("@")
    if at and base and k.isdigit():
        return base, int(k)
    return name, None


@dataclass
class Expanded:
    text: str                             # the rewritten learnable circuit
    names: list = field(default_factory=list)     # (base param, bank) per expanded parameter, in order
    prologue_lines: int = 0               # lines added before the user's circuit


def _num(v: float) -> str:
    return repr(float(v))


def _check_names(text: str):
    for name in re.findall(r"[A-Za-z_]\w*", text):
        if name.startswith(PREFIX) or "__bank" in name or "__t" in name:
            raise ValueError(f"'{name}': names starting with '{PREFIX}' or containing '__bank' or "
                             "'__t' are reserved for banks")


def _prologue(banks: Banks, sample_rate: float, signals) -> tuple[list, bool]:
    """The condition, bank index and crossfade lines; returns (lines, crossfading)."""
    K, b = banks.K, [float(v) for v in banks.boundaries]
    lines = []
    if banks.condition == "level":
        ka = 1.0 - math.exp(-1.0 / max(banks.attack_ms * 1e-3 * sample_rate, 1e-9))
        kr = 1.0 - math.exp(-1.0 / max(banks.release_ms * 1e-3 * sample_rate, 1e-9))
        e = f"{PREFIX}env"
        lines.append(f"{e} = {e}@1 + ({_num(ka)} if abs(x) > {e}@1 else {_num(kr)})*(abs(x) - {e}@1)")
        lines.append(f"{PREFIX}c = 20*log10({e} + 1e-12)" if banks.level_db else f"{PREFIX}c = {e}")
    elif banks.condition == "input":
        lines.append(f"{PREFIX}c = x")
    elif banks.condition in ("note", "velocity"):     # written by the host at each MIDI event
        lines.append(f"{PREFIX}c = {PREFIX}{banks.condition} + 0")
    else:
        if banks.condition not in signals:
            raise ValueError(f"the bank condition '{banks.condition}' is not a signal of the circuit "
                             f"(its signals: {', '.join(signals) or 'none'})")
        lines.append(f"{PREFIX}c = {banks.condition}@1")
    c, bank = f"{PREFIX}c", BANK_SIGNAL
    if K == 1:
        lines.append(f"{bank} = 0*{c}")
    else:
        terms = []
        for j in range(1, K):
            if banks.hysteresis > 0:
                h = banks.hysteresis
                terms.append(f"(({c} >= {_num(b[j] - h)}) if {bank}@1 >= {j} else ({c} >= {_num(b[j] + h)}))")
            else:
                terms.append(f"({c} >= {_num(b[j])})")
        lines.append(f"{bank} = " + " + ".join(terms))
    fade_samples = banks.crossfade_ms * 1e-3 * sample_rate
    if fade_samples >= 1.0:
        lines.append(f"{PREFIX}from = {bank}@1 if {bank} != {bank}@1 else {PREFIX}from@1")
        lines.append(f"{PREFIX}fade = 0 if {bank} != {bank}@1 else min({PREFIX}fade@1 + {_num(1 / fade_samples)}, 1)")
    return lines, fade_samples >= 1.0


def _pick(names: list, index_signal: str) -> str:
    """names[k] where k = round(index_signal), as nested IFs (the derivative of the branch taken)."""
    expr = names[-1]
    for k in range(len(names) - 2, -1, -1):
        expr = f"({names[k]} if {index_signal} < {k + 0.5} else {expr})"
    return expr


def _blend(names: list, fading: bool) -> str:
    if not fading:
        return _pick(names, BANK_SIGNAL)
    return f"{_pick(names, BANK_SIGNAL)}*{PREFIX}fade + {_pick(names, PREFIX + 'from')}*(1 - {PREFIX}fade)"


def expand(circuit: str, params: list, banks: Banks, sample_rate: float, signals=()) -> Expanded:
    """The circuit with its parameters `params` (names) split into banks (see the module doc).
    The circuit's state is shared by the banks; with crossfading, the parameters glide."""
    banks.validate()
    _check_names(circuit)
    lines, fading = _prologue(banks, sample_rate, signals)
    names = []
    for p in params:
        lines.append(f"{p} = {_blend([bank_name(p, k) for k in range(banks.K)], fading)}")
        names += [(p, k) for k in range(banks.K)]
    return Expanded("\n".join(lines) + "\n" + circuit, names, len(lines))


def _rename(text: str, mapping: dict) -> str:
    """Rename whole names (never parts of other names or of numbers such as 1e5)."""
    if not mapping:
        return text
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(mapping, key=len, reverse=True)))
                         + r")(?!\w)")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def expand_topologies(graphs: list, banks: Banks, sample_rate: float) -> Expanded:
    """A circuit per bank (banks.circuits, parsed into `graphs`): every bank's circuit runs with its
    own state and its own copies of its parameters, and the output is the active bank's output
    (crossfaded between the outgoing and incoming banks' outputs when crossfade_ms > 0)."""
    banks.validate()
    for text in banks.circuits:
        _check_names(text)
    if banks.condition not in CONDITIONS:
        raise ValueError("with a topology per bank the condition must be level, input, note or velocity")
    lines, fading = _prologue(banks, sample_rate, ())
    names, outputs = [], []
    for k, (text, g) in enumerate(zip(banks.circuits, graphs)):
        mapping = {s: f"{s}__t{k}" for s in g.signals}
        mapping.update({p: bank_name(p, k) for p in g.params})
        lines += _rename(text, mapping).strip().splitlines()
        out_name = next(s for s, i in g.signals.items() if i == g.output) if g.output in g.signals.values() \
            else None
        if out_name is None:
            raise ValueError(f"bank {k}'s circuit must end with an assignment (y = ...)")
        outputs.append(mapping[out_name])
        names += [(p, k) for p in g.params]
    lines.append(f"{PREFIX}out = {_blend(outputs, fading)}")
    return Expanded("\n".join(lines), names, 0)
