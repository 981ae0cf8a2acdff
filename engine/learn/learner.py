"""A learner: a ground-truth circuit and a learnable circuit compiled together, with their state.

    learner = Learner("y = gain*x + dc", [ParamSpec("gain", 0), ParamSpec("dc", 0)],
                      hidden={"gain": 0.5, "dc": 0.5}, settings=Settings(optimizer="sgd", loss="mse", lr=1e-2))
    out, trace = learner.process(block)          # any block length; state carries over

Parameters have an initial value and a range [lo, hi]. What the range does:
  * to the value: the circuit always sees p = clamp(theta, lo, hi);
  * to the derivative: nothing - the tangent seed of p stays 1 (straight-through), as in diff.lib,
    so a parameter that starts at its bound can still leave it;
  * to the accumulator theta: in range mode "project" (the default) theta is projected back into
    [lo, hi] after every step, so it never winds up beyond a bound; in mode "straight-through"
    (diff.lib's behaviour, needed to reproduce its dcsq run) theta keeps integrating underneath the
    clamp and p follows only once theta re-enters the range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine import layout as LY
from engine.learn.banks import BANK_SIGNAL, CONDITION_SIGNAL, Banks, bank_name, display_name, expand, expand_topologies
from engine.circuit.cache import CompiledLearner, compile_pair
from engine.circuit.compiler import BankPlan, Variant, _pow2, layout
from engine.circuit.language import parse
from engine.learn import spectral as SP
from engine.learn.losses import CODES as LOSS_CODES, SPECTRAL
from engine.learn.optimizers import BY_NAME as OPTIMIZER_BY_NAME, CODES as OPT_CODES, DEFAULT as OPTIMIZER_DEFAULT, DEFAULT_P0, defaults as optimizer_defaults
from engine.learn.spec_check import HIDDEN_KINDS, SYNTAX, UNREADABLE, check_spec

RANGE_MODES = {"project": LY.RANGE_PROJECT, "straight-through": LY.RANGE_STRAIGHT_THROUGH}
MAX_WINDOW = 1 << 20
MAX_STREAMS = 16                     # batches: input streams one learner runs in lockstep


@dataclass
class ParamSpec:
    name: str
    init: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf
    log: bool = False                # shown on a logarithmic knob (a display hint; needs 0 < lo)

    def __post_init__(self):
        if not math.isfinite(self.init):
            raise ValueError(f"parameter '{self.name}': the initial value must be a finite number")
        if math.isnan(self.lo) or math.isnan(self.hi) or self.lo > self.hi:
            raise ValueError(f"parameter '{self.name}': the range [{self.lo}, {self.hi}] is empty")
        if self.log and not (0.0 < self.lo and math.isfinite(self.hi)):
            raise ValueError(f"parameter '{self.name}': a logarithmic scale needs a range above 0, "
                             f"got [{self.lo}, {self.hi}]")


@dataclass
class Settings:
    loss: str = "mse"
    huber_delta: float = 1.0
    window: int = 1
    optimizer: str = OPTIMIZER_DEFAULT           # gauss-newton (engine/learn/optimizers.py)
    lr: float = 1e-3
    c1: float | None = None          # the optimiser's first constant: momentum mu / rho / beta1
    c2: float | None = None          # its second: Adam's beta2 (None: the optimiser's default)
    eps: float | None = None
    clip: float = 0.0                # max gradient L2 norm, 0 = off
    lr_decay: float = 1.0            # multiply the learning rate by this ...
    lr_decay_every: int = 0          # ... every this many learning steps (0 = constant)
    lr_min: float = 0.0
    range_mode: str = "project"
    learning: bool = True
    p0: float = DEFAULT_P0           # Gauss-Newton's initial P, in units of each range's width squared
    spectral_hop: int = SP.DEFAULT_HOP        # the spectral loss: samples per block (one step each)
    spectral_fmin: float = SP.DEFAULT_FMIN    # its bins' range, Hz (the top is kept below 0.45 x the
    spectral_fmax: float = SP.DEFAULT_FMAX    #   sample rate)

    def validate(self):
        if self.loss not in LOSS_CODES:
            raise ValueError(f"unknown loss '{self.loss}'; choose one of {', '.join(LOSS_CODES)}")
        if self.optimizer not in OPT_CODES:
            raise ValueError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPT_CODES)}")
        if self.range_mode not in RANGE_MODES:
            raise ValueError(f"unknown range mode '{self.range_mode}'; choose one of {', '.join(RANGE_MODES)}")
        if not (isinstance(self.window, (int, np.integer)) and 1 <= self.window <= MAX_WINDOW):
            raise ValueError(f"the window must be a whole number of samples from 1 to {MAX_WINDOW}")
        checks = [("learning rate", self.lr, 0.0, math.inf, False), ("Huber delta", self.huber_delta, 0.0, math.inf, False),
                  ("clip", self.clip, 0.0, math.inf, True), ("lr decay", self.lr_decay, 0.0, math.inf, False),
                  ("lr minimum", self.lr_min, 0.0, math.inf, True)]
        for name, v, lo, hi, inclusive in checks:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and (v >= lo if inclusive else v > lo)):
                raise ValueError(f"the {name} must be a finite number {'>=' if inclusive else '>'} {lo:g}, got {v}")
        if OPTIMIZER_BY_NAME[self.optimizer].sets_its_own_step:
            for name, v in (("the forgetting factor", self.c1), ("the starting forgetting factor", self.c2)):
                if v is not None and not (isinstance(v, (int, float)) and 0.5 <= v <= 1.0):
                    raise ValueError(f"{name} must be in [0.5, 1], got {v}")
        else:
            for name, v in (("momentum/rho/beta1", self.c1), ("beta2", self.c2)):
                if v is not None and not (0.0 <= v < 1.0):
                    raise ValueError(f"{name} must be in [0, 1), got {v}")
        if not (isinstance(self.p0, (int, float)) and math.isfinite(self.p0) and self.p0 > 0.0):
            raise ValueError(f"p0 must be a finite number > 0, got {self.p0}")
        if self.eps is not None and not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"epsilon must be a finite number >= 0, got {self.eps}")
        if not (isinstance(self.lr_decay_every, (int, np.integer)) and self.lr_decay_every >= 0):
            raise ValueError("lr decay interval must be a whole number of samples >= 0")
        if not (isinstance(self.spectral_hop, (int, np.integer)) and 1 <= self.spectral_hop <= MAX_WINDOW):
            raise ValueError(f"the spectral hop must be a whole number of samples from 1 to {MAX_WINDOW}")
        if not (isinstance(self.spectral_fmin, (int, float)) and isinstance(self.spectral_fmax, (int, float))
                and SP.MIN_FMIN <= self.spectral_fmin < self.spectral_fmax and math.isfinite(self.spectral_fmax)):
            raise ValueError(f"the spectral range needs {SP.MIN_FMIN:g} Hz <= fmin < fmax, "
                             f"got {self.spectral_fmin} to {self.spectral_fmax}")


class SpectralKernelNeeded(ValueError):
    """configure() asked for the spectral loss of a learner whose kernel was compiled without it."""


class Learner:
    def __init__(self, circuit: str, params: list[ParamSpec], target: str | None = None,
                 hidden: dict | None = None, settings: Settings | None = None,
                 sample_rate: float = 48000.0, window_capacity: int | None = None,
                 banks: Banks | None = None, streams: int = 1):
        if not (isinstance(streams, (int, np.integer)) and 1 <= streams <= MAX_STREAMS):
            raise ValueError(f"the number of streams must be a whole number from 1 to {MAX_STREAMS}, got {streams}")
        self.streams = int(streams)
        if not (math.isfinite(sample_rate) and 1000.0 <= sample_rate <= 1_000_000.0):
            raise ValueError(f"the sample rate must be between 1000 and 1000000 Hz, got {sample_rate}")
        self.sample_rate = float(sample_rate)
        self._spectral_range = None          # the spectral bank's (fmin, fmax) in cfg, once written
        self.settings = settings or Settings()
        self.settings.validate()
        self.banks = banks
        specs = {p.name: p for p in params}
        hidden = dict(hidden or {})
        # a topology per bank: the declarations belong to the banks' circuits (checked there);
        # `circuit` is only the default ground truth
        bank_circuits = None if banks is None else banks.circuits
        graphs = {}
        problems = check_spec(circuit, target, params, hidden, sample_rate, bank_circuits=bank_circuits,
                              graphs=graphs)
        texts = [p for p in problems if p.kind not in HIDDEN_KINDS]
        if texts and texts[0].where == "circuit" and texts[0].kind in (SYNTAX, UNREADABLE):
            raise texts[0].exception()
        if bank_circuits is not None:
            banks.validate()
        if texts:
            raise texts[0].exception()
        self.graph = graphs["circuit"]
        if bank_circuits is not None:
            self.specs = [specs[n] for n in specs]
        else:
            self.specs = [specs[n] for n in self.graph.params]
        self.base_specs = list(self.specs)
        self.target_graph = graphs["target"]
        plan = None
        self._display = {sp.name: sp.name for sp in self.specs}
        if banks is not None:
            # the user's circuits are checked with their own line numbers first; then split
            if banks.circuits is None:
                ex = expand(circuit, [sp.name for sp in self.specs], banks, sample_rate,
                            signals=list(self.graph.signals))
            else:
                ex = expand_topologies([graphs[f"bank {k} circuit"] for k in range(len(banks.circuits))],
                                       banks, sample_rate)
            bank_specs = {bank_name(p, k): ParamSpec(bank_name(p, k), specs[p].init, specs[p].lo, specs[p].hi,
                                                     specs[p].log) for p, k in ex.names}
            self.graph = parse(ex.text, sample_rate, "circuit", {n: (q.lo, q.hi) for n, q in bank_specs.items()})
            self.specs = [bank_specs[n] for n in self.graph.params]
            self._display = {bank_name(p, k): display_name(p, k) for p, k in ex.names}
            slot = {n: i for i, n in enumerate(self.graph.params)}
            bases = list(dict.fromkeys(p for p, _ in ex.names))
            self.base_specs = [specs[p] for p in bases]
            plan = BankPlan(banks.mode, BANK_SIGNAL, CONDITION_SIGNAL,
                            {p: [slot.get(bank_name(p, k)) for k in range(banks.K)] for p in bases})
        if problems:                       # only the hidden values' are left
            raise problems[0].exception()
        # the target reads `sptmod`: the caller supplies it per sample (process(..., external=))
        self.external = self.target_graph.uses_external
        self.hidden = {name: float(hidden[name]) if name in hidden else specs[name].init
                       for name in self.target_graph.params}
        cap = window_capacity or max(4096, self.settings.window)
        # what every variant's kernel is built from; the layout is the same for all of them
        self._pair = (self.graph, self.target_graph, self.sample_rate, _pow2(cap), plan, self.streams,
                      LOSS_CODES[self.settings.loss] == SPECTRAL)
        self._kernels = {}                   # Variant -> CompiledLearner, compiled on first use
        self.layout = layout(*self._pair)
        self.st = np.zeros(self.layout.st_size)
        self.cfg = np.zeros(self.layout.cfg_size)
        self._trace = np.zeros((1, self.layout.trace_width))
        self.configure(self.settings)
        for k, name in enumerate(self.layout.hidden):
            self.cfg[self.layout.cfg_hidden + k] = self.hidden[name]
            self.cfg[self.layout.cfg_goal + k] = self.hidden[name]
        for k, sp in enumerate(self.specs):
            self.cfg[self.layout.cfg_lo + k] = sp.lo
            self.cfg[self.layout.cfg_hi + k] = sp.hi
            self.cfg[self.layout.cfg_log + k] = 1.0 if sp.log else 0.0
        self.reset()

    def variant(self, s: Settings | None = None, trace: bool = False) -> Variant:
        """What the kernel for settings s (default: the current ones) is specialised for."""
        s = s or self.settings
        return Variant(LOSS_CODES[s.loss], OPT_CODES[s.optimizer], s.range_mode == "project", s.window > 1,
                       bool(trace), tuple(sp.log for sp in self.specs),
                       tuple((math.isfinite(sp.lo), math.isfinite(sp.hi)) for sp in self.specs))

    def kernel(self, s: Settings | None = None, trace: bool = False) -> CompiledLearner:
        """The kernel specialised for settings s (default: the current ones), compiled (or loaded
        from the disk cache) on first use and kept; every one works on this learner's st and cfg."""
        v = self.variant(s, trace)
        compiled = self._kernels.get(v)
        if compiled is None:
            compiled = self._kernels[v] = compile_pair(*self._pair, variant=v)
        return compiled

    def kernel_ready(self, s: Settings, trace: bool = False) -> bool:
        """The kernel for s is compiled already: a switch to it costs nothing."""
        return self.variant(s, trace) in self._kernels

    @property
    def compiled(self) -> CompiledLearner:
        """The kernel the host calls for the current settings (no trace rows)."""
        return self.kernel()

    @property
    def param_names(self) -> list[str]:
        """Learnable parameter names in slot order; with banks, `name@bank`."""
        return [self._display[n] for n in self.layout.params]

    @property
    def condition_value(self) -> float:
        """The bank condition's latest value (dBFS for the level, the sample, note, ...)."""
        return float(self.st[self.layout.bank_index + 1]) if self.layout.bank_index >= 0 else 0.0

    @property
    def active_bank(self) -> int:
        return int(self.st[self.layout.bank_index]) if self.layout.bank_index >= 0 else 0

    def bank_params(self) -> list[dict]:
        """Per bank, its parameter values (base names); one entry without banks."""
        values = self.params()
        if self.banks is None:
            return [values]
        return [{sp.name: values[display_name(sp.name, k)] for sp in self.base_specs
                 if display_name(sp.name, k) in values} for k in range(self.banks.K)]

    def configure(self, s: Settings, header: np.ndarray | None = None):
        """Apply settings s: their words into cfg (or into `header`, a staging copy of cfg's header
        a host hands the callback with the kernel for s, engine/layout.py SETTINGS). The kernel
        specialised for s is compiled at its first use (kernel())."""
        self.check(s)
        spectral = LOSS_CODES[s.loss] == SPECTRAL
        if spectral and self._spectral_range != (s.spectral_fmin, s.spectral_fmax):   # a new bank, from rest
            self.cfg[LY.CF_SPECTRAL_BINS] = SP.write_constants(self.cfg, self.layout.cfg_spectral, self.sample_rate,
                                                               s.spectral_fmin, s.spectral_fmax,
                                                               density=self.layout.locks_frequency)
            self._clear_spectral()
            self._spectral_range = (s.spectral_fmin, s.spectral_fmax)
        if s.window > 1 and self.settings.window == 1:
            self._clear_window_rings()
        self.settings = s
        opt = OPT_CODES[s.optimizer]
        d1, d2, deps = optimizer_defaults(s.optimizer)
        c = self.cfg if header is None else header
        c[LY.CF_LR] = s.lr
        c[LY.CF_LOSS] = LOSS_CODES[s.loss]
        c[LY.CF_HUBER] = s.huber_delta
        c[LY.CF_WINDOW] = s.window
        c[LY.CF_OPT] = opt
        c[LY.CF_C1] = d1 if s.c1 is None else s.c1
        c[LY.CF_C2] = d2 if s.c2 is None else s.c2
        c[LY.CF_EPS] = deps if s.eps is None else s.eps
        c[LY.CF_CLIP] = s.clip
        c[LY.CF_DECAY] = s.lr_decay
        c[LY.CF_DECAY_EVERY] = s.lr_decay_every
        c[LY.CF_LR_MIN] = s.lr_min
        c[LY.CF_RANGE_MODE] = RANGE_MODES[s.range_mode]
        c[LY.CF_LEARN] = 1.0 if s.learning else 0.0
        c[LY.CF_P0] = s.p0
        c[LY.CF_SPECTRAL_HOP] = s.spectral_hop

    def check(self, s: Settings):
        """Raise ValueError (SpectralKernelNeeded) if this learner cannot take settings s."""
        s.validate()
        if s.window > self.layout.window_capacity:
            raise ValueError(f"the window {s.window} exceeds this learner's capacity "
                             f"{self.layout.window_capacity}")
        if OPTIMIZER_BY_NAME[s.optimizer].sets_its_own_step and self.streams > 1 and self.banks is not None:
            raise ValueError(f"{s.optimizer} does not yet learn banks over several streams at once: "
                             "choose another optimizer, or one stream")
        spectral = LOSS_CODES[s.loss] == SPECTRAL
        if spectral and (self.streams > 1 or self.banks is not None):
            raise ValueError("the spectral loss does not yet learn with banks or over several streams: "
                             "choose another loss, or one stream without banks")
        if spectral and not self.spectral_ready:
            raise SpectralKernelNeeded("the spectral loss needs a learner compiled with it: build the learner "
                                       "with loss 'spectral' (the window does this when you choose it)")

    @property
    def spectral_range(self) -> tuple[float, float] | None:
        """The spectral bank's (fmin, fmax) written in cfg; None before the spectral loss is first used."""
        return self._spectral_range

    @property
    def spectral_ready(self) -> bool:
        """This learner's kernel carries the spectral loss (it was built with it)."""
        return self.layout.spectral_bins > 0

    def spectral_view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(bin frequencies in Hz, the target's and the output's normalised bin powers): what the
        spectral loss compares now; None unless it is the loss in use. A snapshot for display (the
        audio thread may be writing: a torn read shows for one frame)."""
        if not self._spectral_in_use():
            return None
        nb = int(self.cfg[LY.CF_SPECTRAL_BINS])
        lay = self.layout
        pt, po = SP.distributions(self.st, lay.spec_target, lay.spec_output, self.cfg, lay.cfg_spectral, nb)
        return SP.bin_frequencies(self.sample_rate, *self._spectral_range), pt, po

    def frequency_lock(self) -> SP.FineLock | None:
        """The spectral loss's fine stage (a pitch kernel's frequency-locked loop) as of its last
        block: the bin it reads and the frequency error measured there; None unless this kernel
        has one and the spectral loss is in use. A snapshot for display, like spectral_view()."""
        if not (self._spectral_in_use() and self.layout.locks_frequency):
            return None
        return SP.fine_lock(self.st, self.layout.spec_fine, self.sample_rate, *self._spectral_range)

    def _spectral_in_use(self) -> bool:
        return (self.spectral_ready and self._spectral_range is not None
                and LOSS_CODES[self.settings.loss] == SPECTRAL)

    def _clear_window_rings(self):
        """A window over W = 1's kernel, which keeps no rings, starts from rest (as a new learner's
        does) rather than from what an earlier window left. That kernel never touches the rings,
        so this is safe while it runs."""
        lay = self.layout
        for ring in lay.window_rings:
            self.st[ring:ring + lay.n_window_signals * lay.window_capacity] = 0.0

    def _clear_spectral(self):
        lay = self.layout
        self.st[lay.spec_target:lay.spec_end] = 0.0
        self.st[LY.ST_SPEC_COUNT] = 0.0
        self.st[LY.ST_SPEC_LOSS] = 0.0

    def restart_schedule(self):
        """The learning-rate schedule starts over: the rate decays again from its initial value
        (the host asks the callback for the same at a block start when audio runs)."""
        self.st[LY.ST_SCHED] = 1.0
        self.st[LY.ST_SCHED_COUNT] = 0.0

    def circuit_states(self) -> list[tuple[int, int]] | None:
        """The st ranges holding the target's and the learnable circuit's state (what the kernel
        clears when a circuit blows up); None where they are not those two (batches, a topology
        per bank)."""
        if self.streams > 1 or (self.banks is not None and self.banks.circuits):
            return None
        return [tuple(self.layout.target_state), tuple(self.layout.learner_state)]

    def restart_circuits(self):
        """Both circuits back to rest, the parameters and the optimiser's state kept: where a
        looping recording starts over (the device's output starts from rest there too)."""
        for lo, hi in self.circuit_states() or []:
            self.st[lo:hi] = 0.0

    def reset(self, values: dict | None = None):
        """Parameters back to their initial values (or to `values`, by name); all circuit, window
        and optimiser state cleared. Needs no recompilation."""
        internal = {v: k for k, v in self._display.items()}
        values = {internal.get(k, k): v for k, v in (values or {}).items()}
        unknown = set(values) - {sp.name for sp in self.specs}
        if unknown:
            raise KeyError(f"no learnable parameter named {sorted(unknown)[0]!r}")
        self.st[:] = 0.0
        for k, sp in enumerate(self.specs):
            v = float(values.get(sp.name, sp.init))
            if not math.isfinite(v):
                raise ValueError(f"the value of '{sp.name}' must be a finite number")
            self.st[self.layout.theta + k] = v
        self.st[LY.ST_SCHED] = 1.0

    def set_hidden(self, name: str, value: float):
        if name not in self.hidden:
            raise KeyError(name)
        if not math.isfinite(value):
            raise ValueError(f"the hidden value of '{name}' must be a finite number")
        self.hidden[name] = float(value)
        k = self.layout.hidden.index(name)
        self.cfg[self.layout.cfg_hidden + k] = value
        self.cfg[self.layout.cfg_goal + k] = value

    def _external_check(self, external, shape):
        if self.external and external is None:
            name = self.target_graph.external_name
            raise ValueError(f"the target reads '{name}': pass the {'model' if name == 'sptmod' else name}'s "
                             "output as external=")
        if not self.external and external is not None:
            raise ValueError("external= is only for a target that reads an outside ground truth (sptmod, plugin, recording, device)")
        if external is not None and np.shape(external) != shape:
            raise ValueError(f"external must have shape {shape}, got {np.shape(external)}")

    def process(self, x: np.ndarray, trace_every: int = 0, out: np.ndarray | None = None,
                external: np.ndarray | None = None):
        """Run one block. Returns (out, trace): out[:, 0..2] = target, learned, loss per sample;
        trace rows [n, loss, p..., grad..., target, learned] every trace_every samples.
        external: the per-sample value of `sptmod` (required exactly when the target reads it)."""
        if self.streams > 1:
            raise ValueError(f"this learner runs {self.streams} streams: use process_batch")
        x = np.ascontiguousarray(x, dtype=np.float64)
        self._external_check(external, x.shape)
        if out is None or out.shape[0] != x.shape[0]:
            out = np.empty((x.shape[0], 3))
        if external is not None:
            out[:, 0] = external           # the kernel reads the target column before writing it
        self.cfg[LY.CF_TRACE_EVERY] = trace_every
        if trace_every > 0:
            need = x.shape[0] // trace_every + 2
            if self._trace.shape[0] < need:
                self._trace = np.empty((need, self.layout.trace_width))
        rows = self.kernel(trace=trace_every > 0).process(x, out, self._trace, self.st, self.cfg)
        return out, self._trace[:rows]

    def process_batch(self, X: np.ndarray, trace_every: int = 0, out: np.ndarray | None = None,
                      external: np.ndarray | None = None):
        """Batches: learn over B input streams in lockstep (B = `streams` given at construction).

        X has shape (n, B): column s is stream s's input block. Each stream runs its own copy of
        the target and the learnable circuit (its own delay lines, phasors and sliding windows)
        and has its own loss; the parameters are shared. At each sample the gradient of every
        parameter is the mean over the streams of their gradients, and one optimiser step is
        taken. With banks each stream selects its own bank from its own input, so the streams may
        sit in different banks at the same sample: in exact mode every bank parameter with a
        non-zero mean gradient steps; in separated mode each stream's gradient (summed over the
        banks) goes to its own active bank, a bank steps with the sum it received divided by B,
        and only the banks some stream had active step.

        A sample on which any stream's input is NaN or Inf runs no circuit and takes no step (the
        streams stay in lockstep); a stream whose target or learnable circuit goes non-finite has
        that circuit's state restarted, and the sample takes no step. A bad input or target
        sample counts once in `skipped`; a learnable circuit that blew up counts in
        `diverged_steps`.

        Returns (out, trace). out has shape (n, B, 3): per sample and stream, the target, the
        learned output and that stream's loss (a skipped sample: 0, 0 and the stream's last loss).
        trace rows have the single-stream width: [n, mean loss, parameters..., mean gradients...,
        mean target, mean output, active bank of stream 0 (-1 without banks)]. `loss` is the mean
        loss over the streams; `stream_losses()` gives each one. With B copies of one input the
        learner moves exactly (bit for bit) as one stream does.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        B = self.streams
        if X.ndim != 2 or X.shape[1] != B:
            raise ValueError(f"process_batch needs an array of shape (n, {B}), got {X.shape}")
        n = X.shape[0]
        self._external_check(external, X.shape)
        if out is None or out.shape != (n, B, 3) or not out.flags.c_contiguous:
            out = np.empty((n, B, 3))
        if B == 1:
            _, trace = self.process(X[:, 0], trace_every, out.reshape(n, 3),
                                    None if external is None else external[:, 0])
            return out, trace
        if external is not None:
            out[:, :, 0] = external
        self.cfg[LY.CF_TRACE_EVERY] = trace_every
        if trace_every > 0:
            need = n // trace_every + 2
            if self._trace.shape[0] < need:
                self._trace = np.empty((need, self.layout.trace_width))
        rows = self.kernel(trace=trace_every > 0).process(X, out, self._trace, self.st, self.cfg)
        return out, self._trace[:rows]

    def stream_losses(self) -> np.ndarray:
        """Each stream's loss at its last learning sample (batches); one value for one stream."""
        if self.layout.stream_loss < 0:
            return np.array([self.loss])
        return self.st[self.layout.stream_loss:self.layout.stream_loss + self.streams].copy()

    # ---- readings
    @property
    def samples(self) -> int:
        return int(self.st[LY.ST_N])

    @property
    def skipped(self) -> int:
        return int(self.st[LY.ST_SKIPPED])

    @property
    def diverged_steps(self) -> int:
        """Steps not taken because the learner diverged (its circuit's output or the gradient
        went non-finite); apart from `skipped`, which counts bad input."""
        return int(self.st[LY.ST_DIVERGED])

    @property
    def first_diverged_sample(self) -> int | None:
        """The sample at which the first step was lost to divergence (None: none yet)."""
        at = int(self.st[LY.ST_DIVERGED_AT])
        return at - 1 if at > 0 else None

    @property
    def loss(self) -> float:
        return float(self.st[LY.ST_LOSS])

    def theta(self) -> np.ndarray:
        P = len(self.specs)
        return self.st[self.layout.theta:self.layout.theta + P].copy()

    def params(self) -> dict:
        """The parameter values the circuit uses now (accumulators clamped to their ranges)."""
        return {self._display[sp.name]: float(min(max(t, sp.lo), sp.hi)) for sp, t in zip(self.specs, self.theta())}

    def param_ranges(self) -> dict:
        """Each parameter's declared range, by the names params() uses: {name: (lo, hi)}."""
        return {self._display[sp.name]: (sp.lo, sp.hi) for sp in self.specs}

    def gradients(self) -> dict:
        P = len(self.specs)
        g = self.st[self.layout.grad:self.layout.grad + P]
        return {self._display[sp.name]: float(v) for sp, v in zip(self.specs, g)}
