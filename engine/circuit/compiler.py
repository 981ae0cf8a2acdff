"""Compile a (target, learnable) pair of circuit graphs into one Numba block kernel.

The kernel runs, per sample: the target circuit (values only), the learnable circuit with its
tangents, the sliding windows, the loss, the optimiser; see engine/layout.py for the two arrays it
works on. Tangents are sparse: each node carries only the slots of the parameters it can depend on
(found by a fixed point over feedback), so a gain needs one tangent, not N - the way Faust drops
structurally zero terms at compile time.

The per-circuit code comes from engine/circuit/emitter.py; engine/circuit/cache.py writes the
generated source once to a file named by its hash (in a folder per engine source tree) and
compiles it with cache=True, so the same circuit starts in well under a second the second time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine import layout as LY
from engine.jit import FASTMATH
from engine.circuit.emitter import CircuitEmitter, InputRing, register_depth, register_words, shift_lines, zero_words
from engine.circuit.language import Graph
from engine.learn import gauss_newton as GN
from engine.learn import lag_lock as LL
from engine.learn import spectral as SP
from engine.learn.losses import CODES as LOSS_CODES, LOSSES, SPECTRAL
from engine.learn.optimizers import GAUSS_NEWTON, OPTIMIZERS

LOSS_BY_CODE = {loss.code: loss for loss in LOSSES}
OPT_BY_CODE = {o.code: o for o in OPTIMIZERS}

SIGNATURE = "int64(float64[::1], float64[:, ::1], float64[:, ::1], float64[::1], float64[::1])"
# batches: x[n, B] holds B input streams, out[n, B, 3] each stream's target, output and loss
BATCH_SIGNATURE = "int64(float64[:, ::1], float64[:, :, ::1], float64[:, ::1], float64[::1], float64[::1])"
@dataclass(frozen=True)
class Variant:
    """What a kernel is specialised for: the choices fixed for its life, resolved when its text is
    written, so the sample loop carries no branch on them (issue 17; benchmarks/README.md). A
    change of one swaps in another kernel over the same st and cfg - the layout never depends on
    the variant (engine/learn/learner.py: Learner.configure; the host at a block boundary). What
    stays runtime: the learning rate and its schedule, clipping, the optimiser's constants, the
    window length within its class, the hidden knobs, pause."""
    loss: int = LOSS_CODES["mse"]
    optimizer: int = GAUSS_NEWTON
    project: bool = True        # range mode project (else straight-through: no projection)
    windowed: bool = False      # W > 1: the sliding windows are compiled in (W = 1: the means are the samples)
    trace: bool = False         # trace rows are written (an offline diagnostic; the host never asks)
    logs: tuple = ()            # per parameter slot: on a log axis (fixed by the declarations)
    bounds: tuple = ()          # per parameter slot: (a finite low, a finite high): the clamps an
                                #   infinite bound makes no-ops are left out


def _pow2(n: int) -> int:
    k = 1
    while k < n:
        k <<= 1
    return k


@dataclass
class Layout:
    params: list            # learnable parameter names, slot order
    hidden: list            # target parameter names, cfg order
    window_capacity: int
    st_size: int = 0
    cfg_size: int = 0
    theta: int = 0
    m: int = 0
    v: int = 0
    grad: int = 0
    wsum: int = 0
    wring: int = 0
    window_rings: list = field(default_factory=list)   # each stream's ring (wring is stream 0's)
    n_window_signals: int = 0
    output_slots: list = field(default_factory=list)   # param slots with a non-zero output tangent
    target_state: tuple = (0, 0)
    learner_state: tuple = (0, 0)
    cfg_hidden: int = LY.CF_HEADER
    cfg_lo: int = 0
    cfg_goal: int = 0         # where each hidden value glides to (per sample, when CF_GLIDE > 0)
    cfg_hi: int = 0
    cfg_log: int = 0          # 1 per parameter declared on a log axis (Gauss-Newton steps it in log space)
    bank_index: int = -1     # st index of the active bank (LACTOSE banks; the condition value
                             # follows it), -1 without banks; with batches stream s's pair is at
                             # bank_index + 2*s
    streams: int = 1         # input streams run in lockstep (batches); the regions above are stream 0's
    stream_loss: int = -1    # batches: st index of each stream's latest loss, -1 for one stream
    gn_groups: list = field(default_factory=list)   # Gauss-Newton: (st base, [(slots summed into one
                             # sensitivity, ...)], bank or -1) per block of P (engine/learn/gauss_newton.py)
    spectral_bins: int = 0   # the spectral loss's bin capacity (engine/learn/spectral.py)
    cfg_spectral: int = 0    # its bank's constants
    spec_target: int = 0     # st: the target's channel, the output's (value and tangent lanes),
    spec_output: int = 0     #   this sample's output tangents, and the last block's gradient
    spec_tangents: int = 0
    spec_grad: int = 0
    spec_align: int = 0      #   and the hand-over's error power, target power and flag (SP.ALIGN_WORDS)
    spec_fine: int = 0       #   the fine stage's state (SP.fine_size) and its last block's derivative,
    spec_fine_grad: int = 0  #   where a learnable frequency drives an oscillator
    spec_lag: int = 0        #   the lag lock's state (engine/learn/lag_lock.py), where a parameter sets a
    spec_lags: int = 0       #   delay's length, and the longest lag it reads
    spec_end: int = 0        # one past the spectral loss's state

    @property
    def locks_frequency(self) -> bool:
        """The spectral loss's fine stage is compiled in (a learnable frequency drives an oscillator)."""
        return self.spec_fine > 0

    @property
    def trace_width(self) -> int:
        return 5 + 2 * len(self.params)


@dataclass
class BankPlan:
    """How the learnable parameters are grouped into LACTOSE banks (engine/learn/banks.py)."""
    mode: str                 # "separated" | "exact"
    signal: str               # the circuit signal holding the active bank index
    condition: str            # the circuit signal holding the condition value
    slots: dict               # base parameter -> [slot in bank 0 (None if absent), bank 1, ...]


def _emit_glide_setup(w, ind, lay, H, in_cfg):
    """Hidden knobs glide to their goals per sample inside the kernel (a one-pole with the host's
    time constant), so a turn sounds the same at any block size: no zipper steps. Knobs that
    stay in cfg (in_cfg: a large target's) need only the rate here."""
    if not H:
        return
    w(ind, f"ga = cfg[{LY.CF_GLIDE}]")
    w(ind, "glide = ga > 0.0")
    if in_cfg:
        return
    for k in range(H):
        w(ind, f"hg{k} = cfg[{lay.cfg_goal + k}]")
        w(ind, f"if not (hg{k} - hg{k} == 0.0):   # a non-finite goal is ignored")
        w(ind + 1, f"hg{k} = h{k}")


def _emit_glide_store(w, ind, lay, H, in_cfg):
    if not H:
        return
    w(ind, "if glide:")
    if in_cfg:
        w(ind + 1, f"for k in range({H}):")
        w(ind + 2, f"hg = cfg[{lay.cfg_goal} + k]")
        w(ind + 2, f"if abs(hg - cfg[{lay.cfg_hidden} + k]) <= 1e-6*(1.0 + abs(hg)):   # an inaudible last step lands exactly")
        w(ind + 3, f"cfg[{lay.cfg_hidden} + k] = hg")
        return
    for k in range(H):
        w(ind + 1, f"if abs(hg{k} - h{k}) <= 1e-6*(1.0 + abs(hg{k})):   # an inaudible last step lands exactly")
        w(ind + 2, f"h{k} = hg{k}")
        w(ind + 1, f"cfg[{lay.cfg_hidden + k}] = h{k}")


def layout(learn: Graph, target: Graph, sample_rate: float, window_capacity: int = 4096,
           banks: BankPlan | None = None, streams: int = 1, spectral: bool = False) -> Layout:
    """The Layout every variant of this pair's kernel shares (generate() without writing a text)."""
    return _KernelWriter(learn, target, sample_rate, window_capacity, banks, streams, spectral).lay


def generate(learn: Graph, target: Graph, sample_rate: float, window_capacity: int = 4096,
             banks: BankPlan | None = None, streams: int = 1, spectral: bool = False,
             variant: Variant = Variant()):
    """Return (python source, Layout) of the block kernel for this pair of circuits.

    streams = B > 1 (batches): the kernel runs B copies of both circuits, each with its own state,
    windows and loss, over the B columns of x, and steps the shared parameters once per sample with
    the mean of the B gradients. B = 1 generates the single-stream kernel, text for text.

    spectral: the kernel also carries the spectral loss's bank and step (one stream, no banks);
    without it (most kernels: it costs ~50 % more compile time) that loss is refused.

    variant: the loss, optimiser, range mode, window class, trace and log axes the text is
    specialised for; the Layout does not depend on it."""
    k = _KernelWriter(learn, target, sample_rate, window_capacity, banks, streams, spectral, variant)
    k.module_header()
    k.prologue()
    k.sample_input()
    k.skipped_sample()
    k.sliding_windows()
    k.loss_and_gradient()
    k.optimizer_step()
    k.sample_outputs()
    k.epilogue()
    if not k.batch:          # hosts call one stream through the C entry; batches are offline only
        _emit_block_entry(k.w)
    return k.out.text(), k.lay


class _KernelWriter:
    """The kernel of generate(): the constructor lays out st and cfg and sets up the circuits'
    emitters; then one method per section of the generated text, in order."""

    def __init__(self, learn, target, sample_rate, window_capacity, banks, streams, spectral=False,
                 variant: Variant = Variant()):
        B = int(streams)
        if B < 1:
            raise ValueError(f"streams must be >= 1, got {streams}")
        self.B, self.batch, self.banks, self.learn = B, B > 1, banks, learn
        self.sample_rate = sample_rate
        params = list(learn.params)
        hidden = list(target.params)
        P, H = self.P, self.H = len(params), len(hidden)
        # a large target's hidden knobs are read from cfg, where they glide: as locals that glide
        # they would all be carried around the sample loop, spilled (fir64: 64 of them, issue 17)
        self.hidden_in_cfg = H > SMALL_CIRCUIT
        cap = self.cap = _pow2(max(int(window_capacity), 1))
        lay = self.lay = Layout(params=params, hidden=hidden, window_capacity=cap, streams=B)
        lay.cfg_hidden = LY.CF_HEADER
        self.HV = _Vec("h", lay.cfg_hidden, not self.hidden_in_cfg, "cfg")   # the target's knobs
        lay.cfg_lo = lay.cfg_hidden + H
        lay.cfg_hi = lay.cfg_lo + P
        lay.cfg_goal = lay.cfg_hi + P
        lay.cfg_log = lay.cfg_goal + H
        self.spectral = bool(spectral) and B == 1 and banks is None   # the spectral loss: one stream, no banks (yet)
        if variant.loss == SPECTRAL and not self.spectral:
            raise ValueError("a spectral variant needs a kernel laid out for the spectral loss")
        if len(variant.logs) not in (0, P) or len(variant.bounds) not in (0, P):
            raise ValueError(f"the variant's log axes or bounds do not name the circuit's {P} parameters")
        self.variant = variant
        self.spec_loss = variant.loss == SPECTRAL      # this text runs the spectral loss (the layout may carry it unused)
        self.gauss_newton = variant.optimizer == GAUSS_NEWTON
        self.windowed, self.traced = variant.windowed, variant.trace
        lay.cfg_spectral = lay.cfg_log + P
        nb = lay.spectral_bins = SP.bin_capacity(sample_rate) if self.spectral else 0
        lay.cfg_size = lay.cfg_spectral + (SP.cfg_size(nb) if self.spectral else 0)
        self._top = LY.ST_HEADER
        alloc = self._alloc
        lay.theta, lay.m, lay.v, lay.grad = alloc(P), alloc(P), alloc(P), alloc(P)
        if banks is not None:
            lay.bank_index = alloc(2 * B)  # per stream: the active bank, then the condition value (for displays)
            self.steps = alloc(P)        # per-parameter optimiser step count: banks learn at different times
        self._emitters(learn, target, sample_rate, params, hidden)
        # Window signals: target, output, and one tangent per parameter (zero where structurally zero).
        NW = self.NW = 2 + P
        lay.n_window_signals = NW
        wv_offs, wsums, self.wrings = [], [], []
        for _ in range(B):
            wv_offs.append(alloc(NW))       # this sample's window inputs (loop form)
            wsums.append(alloc(NW))
            self.wrings.append(alloc(NW * cap))
        lay.wsum, lay.wring, lay.window_rings = wsums[0], self.wrings[0], list(self.wrings)
        if self.batch:
            lay.stream_loss = alloc(B)      # each stream's latest loss (its out column on a skipped sample)
        lay.gn_groups = [(alloc(GN.region_size(len(members))), members, bank)
                         for members, bank in self._gauss_newton_blocks()]
        if self.spectral:
            lay.spec_target, lay.spec_output = alloc(SP.channel_size(nb, 0)), alloc(SP.channel_size(nb, P))
            lay.spec_tangents, lay.spec_grad = alloc(P), alloc(P)
            lay.spec_align = alloc(SP.ALIGN_WORDS)
            if self.locks_frequency:
                lay.spec_fine, lay.spec_fine_grad = alloc(SP.fine_size(P)), alloc(P)
            if self.locks_delay:
                lay.spec_lags = min(self.lrns[0].learned_delay + 2, LL.MAX_LAGS)
                lay.spec_lag, lay.spec_fine_grad = alloc(LL.size(lay.spec_lags, P)), alloc(P)
            lay.spec_end = self._top
        lay.st_size = self._top
        self.mask = cap - 1
        # Per-parameter state lives in registers (unrolled locals) for small circuits, and is looped
        # over in st for large ones, so compile time stays flat in the parameter count.
        small = self.small = P <= SMALL_CIRCUIT
        self.TH, self.M, self.V = (_Vec(nm, off, small) for nm, off in
                                   (("th", lay.theta), ("m", lay.m), ("v", lay.v)))
        # the gradients go to st as they are computed, in every circuit: st keeps the last sample's
        # for the trace and the UI, and as locals they would be carried around the sample loop,
        # taking registers the learning recurrence needs (fir16: 16 of them, issue 17)
        self.G = _Vec("g", lay.grad, False)
        self.Ss = [_Vec(f"S{s}_" if self.batch else "S", wsums[s], small) for s in range(B)]
        self.WVs = [_Vec(f"wv{s}_" if self.batch else "wv", wv_offs[s], small) for s in range(B)]
        self.PV = _Vec("p", self.pv, small)
        self.LO = _Vec("lo", lay.cfg_lo, small, "cfg")
        self.HI = _Vec("hi", lay.cfg_hi, small, "cfg")
        self.step_vec = _StepVectors(self.TH, self.M, self.V, self.LO, self.HI, self.PV, lay.cfg_log,
                                     tuple(bool(v) for v in variant.logs) or None, variant.project,
                                     tuple(variant.bounds) or None)
        self.out = _Out()
        self.w = self.out.line

    def _gauss_newton_blocks(self):
        """Gauss-Newton's blocks of P, from what the tangents show: only parameters the output
        depends on (the others' P would grow without bound); one joint block, or with separated
        banks one per bank over its base parameters (a base's sensitivity is the sum of its
        banks' tangents, as its gradient is). Each member is the tuple of slots summed into it."""
        outs = set(self.lay.output_slots)
        banks = self.banks
        if banks is None or banks.mode == "exact":
            members = [(k,) for k in self.lay.output_slots]
            return [(members, -1)] if members else []
        blocks = []
        n_banks = max(len(slots) for slots in banks.slots.values())
        for b in range(n_banks):
            members = []
            for slots in banks.slots.values():
                have = tuple(k for k in slots if k is not None)
                if b < len(slots) and slots[b] is not None and any(k in outs for k in have):
                    members.append((slots[b],) + tuple(k for k in have if k != slots[b]))
            if members:
                blocks.append((members, b))
        return blocks

    def _alloc(self, size):
        o = self._top
        self._top += size
        return o

    def _emitters(self, learn, target, sample_rate, params, hidden):
        """One pair of circuits per stream; a single stream keeps the unsuffixed names (xi, a.., b..)."""
        B, batch, alloc, lay = self.B, self.batch, self._alloc, self.lay
        slot_of = {p: k for k, p in enumerate(params)}
        h_index = {h: k for k, h in enumerate(hidden)}
        input_depth = max([n.max_delay + (1 if n.const_delay == int(n.const_delay) else 2)
                           for g in (learn, target) for n in g.nodes
                           if n.kind == "delay" and g.node(n.args[0]).kind == "input"] or [0])
        self.input_rings = [None] * B
        if input_depth:
            length = _pow2(input_depth + 1)
            # x read only at short whole delays: its past in locals xi_<k> through the block, as a
            # circuit's own short delays are (the ring holds it between blocks)
            regs = register_depth(n for g in (learn, target) for n in g.nodes
                                  if n.kind == "delay" and g.node(n.args[0]).kind == "input")
            self.input_rings = [InputRing(alloc(length), length, regs) for _ in range(B)]
        self.pv = alloc(self.P)              # the parameter values used at this sample
        self.sfx = sfx = [str(s) if batch else "" for s in range(B)]
        self.tgts, self.lrns = [], []
        for s in range(B):
            self.tgts.append(CircuitEmitter(target, "a" + sfx[s], alloc, lambda nm: (self.HV[h_index[nm]], None),
                                             None, sample_rate, self.input_rings[s], "xi" + sfx[s],
                                             f"out[i, {s}, 0]" if batch else "out[i, 0]"))
            self.lrns.append(CircuitEmitter(learn, "b" + sfx[s], alloc,
                                             lambda nm: (f"p{slot_of[nm]}", slot_of[nm]),
                                             slot_of, sample_rate, self.input_rings[s], "xi" + sfx[s]))
        lay.target_state = self.tgts[0].state_range
        lay.learner_state = self.lrns[0].state_range
        self.runs = [(tgt.run()[0], *lrn.run()) for tgt, lrn in zip(self.tgts, self.lrns)]   # (y, yh, yh's tangents)
        # Under the spectral loss Gauss-Newton hands over to the squared error once the signals
        # agree - unless a learnable frequency drives an oscillator, whose phase no parameter sets:
        # there the squared error would pull the frequency to chase the phase (benchmarks/README.md)
        self.hands_over = self.spectral and not self.lrns[0].phase_tangent_words()
        # ... and there instead the fine stage follows the frequency error in the strongest bin
        self.locks_frequency = self.spectral and not self.hands_over
        # ... and where a parameter sets a delay's length, the lag lock follows the autocorrelation's peak
        self.locks_delay = self.hands_over and self.lrns[0].learned_delay > 0
        self.locks = self.locks_frequency or self.locks_delay
        lay.output_slots = sorted(self.runs[0][2])

    def module_header(self):
        w = self.w
        w(0, "# generated by engine/circuit/compiler.py - do not edit")
        w(0, "import math")
        w(0, "import numpy as np")
        w(0, "from numba import njit, int64")
        w(0, "from engine.circuit.primitives import TABLE")
        v = self.variant
        # the variant's own loss and optimiser, imported under the names the text calls: no dispatch
        loss = LOSS_BY_CODE[LOSS_CODES["mse"] if self.spec_loss else v.loss]   # spectral: Gauss-Newton's hand-over
        if not self.spec_loss:
            _emit_import(w, loss.kernel_fn or loss.fn, "loss_and_slope")
        if self.gauss_newton:
            _emit_import(w, loss.residual, "loss_residual")
            w(0, "from engine.learn.gauss_newton import initial_variance as gn_initial_variance, "
                 "reset_p as gn_reset_p, update as gn_update")
        else:
            _emit_import(w, OPT_BY_CODE[v.optimizer].step, "optimizer_step")
        if self.spec_loss:
            w(0, "from engine.learn.spectral import feed as spectral_feed, loss_and_gradient as spectral_loss, "
                 "restart_tangents as spectral_restart, fine_track, fine_error, fine_rebase")
            w(0, "from engine.learn.lag_lock import feed as lag_feed, lock_error as lag_error")
        for name in sorted(set().union(*(e.used_prims for e in self.tgts + self.lrns))):
            w(0, f"P_{name}_v = TABLE[{name!r}].value")
            w(0, f"P_{name}_d = TABLE[{name!r}].partials")
        w(0, "")
        w(0, f"@njit({(BATCH_SIGNATURE if self.batch else SIGNATURE)!r}, cache=True, nogil=True, error_model='numpy', fastmath={FASTMATH!r})")
        w(0, "def process(x, out, trace, st, cfg):")

    def prologue(self):
        """Settings and state into locals; the small circuits' per-parameter state into registers."""
        w, lay, P, H, cap = self.w, self.lay, self.P, self.H, self.cap
        TH, PV, small = self.TH, self.PV, self.small
        lines = ["nblk = x.shape[0]", "rows = 0", f"n = int64(st[{LY.ST_N}])", f"delta = cfg[{LY.CF_HUBER}]",
                 f"c1 = cfg[{LY.CF_C1}]", f"c2 = cfg[{LY.CF_C2}]", f"learn = cfg[{LY.CF_LEARN}] != 0.0",
                 f"skipped = st[{LY.ST_SKIPPED}]", f"loss = st[{LY.ST_LOSS}]", f"resets = st[{LY.ST_RESETS}]",
                 f"diverged = st[{LY.ST_DIVERGED}]"]
        if not self.gauss_newton:     # the first-order step's settings, its schedule and count
            lines += [f"lr0 = cfg[{LY.CF_LR}]", f"eps = cfg[{LY.CF_EPS}]", f"clip = cfg[{LY.CF_CLIP}]",
                      f"decay = cfg[{LY.CF_DECAY}]", f"decay_every = int64(cfg[{LY.CF_DECAY_EVERY}])",
                      f"lr_min = cfg[{LY.CF_LR_MIN}]", f"sched = st[{LY.ST_SCHED}]",
                      f"schedc = int64(st[{LY.ST_SCHED_COUNT}])", f"t = st[{LY.ST_T}]"]
        if self.windowed:
            lines += [f"W = min(max(int64(cfg[{LY.CF_WINDOW}]), 1), {cap})", "invW = 1.0 / W",
                      f"wcount = int64(st[{LY.ST_WCOUNT}])", f"if int64(st[{LY.ST_WCUR}]) != W:", "    wcount = 0"]
        if self.traced:
            lines += ["ntrace = trace.shape[0]", f"K = int64(cfg[{LY.CF_TRACE_EVERY}])"]
        for line in lines:
            w(1, line)
        self.HV.load(w, 1, H)
        if self.spec_loss:
            for line in [f"hop = max(int64(cfg[{LY.CF_SPECTRAL_HOP}]), 1)",
                         f"blocks = int64(st[{LY.ST_SPEC_BLOCKS}])",
                         f"restart = max(int64({SP.RESTART_SECONDS * self.sample_rate!r}/hop), 1)",
                         f"warm = int64(math.ceil({SP.WARM_SECONDS * self.sample_rate!r}/hop))",
                         f"nbins = min(max(int64(cfg[{LY.CF_SPECTRAL_BINS}]), 1), {lay.spectral_bins})",
                         f"hopn = int64(st[{LY.ST_SPEC_COUNT}])", "due = False", "lag = 1.0",
                         "fine = False", "fine_e = 0.0", "fine_lag = 1.0"]:
                w(1, line)
        _emit_glide_setup(w, 1, lay, H, self.hidden_in_cfg)
        if self.batch:
            w(1, f"invB = {1.0 / self.B!r}")
        for vec, size in [(self.TH, P), (self.M, P), (self.V, P), (self.G, P)] + self._window_sums() + \
                [(self.LO, P), (self.HI, P)]:
            vec.load(w, 1, size)
        if self.variant.project:   # the values in use: the accumulators, projected into range at each step
            _loop(w, 1, P, small, lambda k: [f"{PV[k]} = {_clamp(TH[k], k, self.step_vec)}"])
        for e in self.tgts + self.lrns:        # short delay lines in registers for the block
            for line in e.load_lines():
                w(1, line)
        for local, word in self._input_register_words():
            w(1, f"{local} = st[{word}]")

    def _window_sums(self):
        """(vector, size) of the running window sums, which only a windowed variant keeps."""
        return [(S, self.NW) for S in self.Ss] if self.windowed else []

    def sample_input(self):
        """The sample loop's head: knob glide, the input, the parameter values, the forward pass."""
        w, P, H, B, small = self.w, self.P, self.H, self.B, self.small
        TH, PV, LO, HI = self.TH, self.PV, self.LO, self.HI
        w(1, "for i in range(nblk):")
        if self.hidden_in_cfg:
            w(2, "if glide:")
            w(3, f"for k in range({H}):")
            w(4, f"hg = cfg[{self.lay.cfg_goal} + k]")
            w(4, "if hg - hg == 0.0:   # a non-finite goal is ignored")
            w(5, f"cfg[{self.lay.cfg_hidden} + k] += ga*(hg - cfg[{self.lay.cfg_hidden} + k])")
        elif H:
            w(2, "if glide:")
            for k in range(H):
                w(3, f"h{k} += ga*(hg{k} - h{k})")
        if self.batch:
            for s in range(B):
                w(2, f"xi{s} = x[i, {s}]")
        else:
            w(2, "xi = x[i]")
        if not self.variant.project:       # straight-through: the accumulator may be out of range
            _loop(w, 2, P, small, lambda k: [f"{PV[k]} = {_clamp(TH[k], k, self.step_vec)}"])
        if self.batch:    # the streams stay in lockstep: a NaN or Inf in any of them holds them all
            w(2, "ok = " + " and ".join(f"xi{s} - xi{s} == 0.0" for s in range(B)) + "   # no forward pass, no step")
        else:
            w(2, "ok = xi - xi == 0.0              # NaN or Inf input: no forward pass, no step")
        w(2, "blew = False                     # the learnable circuit went non-finite: diverged")
        w(2, "if ok:")
        for s, ring in enumerate(self.input_rings):
            if ring is not None and not ring.registers:
                w(3, f"st[{ring.offset} + (n & {ring.length - 1})] = xi{self.sfx[s]}")
        if not small:
            for k in range(P):
                w(3, f"p{k} = {PV[k]}")
        for s in range(B):
            _emit_stream_forward(w, 3, self.tgts[s], self.lrns[s], self.runs[s], self.WVs[s], P, self.NW, small,
                                 self.learn, self.banks, self.lay.bank_index + 2 * s,
                                 f", stream {s}" if self.batch else "")
        for s, ring in enumerate(self.input_rings):   # after every read of this sample: shift x's registers
            if ring is not None and ring.registers:
                for line in shift_lines(f"xi{self.sfx[s]}", ring.registers, f"xi{self.sfx[s]}"):
                    w(3, line)

    def _input_register_words(self):
        """(local, st word) of x's registers, k samples ago at the current n."""
        for s, ring in enumerate(self.input_rings):
            if ring is not None and ring.registers:
                yield from register_words(f"xi{self.sfx[s]}", ring.offset, ring.length, ring.registers)

    def skipped_sample(self):
        """A non-finite input (or a restarted circuit): zeros out, a trace row, no step."""
        w, lay = self.w, self.lay
        w(2, "if not ok:")
        w(3, "if blew:")
        self.count_divergence(4)
        w(3, "else:")
        w(4, "skipped += 1.0")
        if self.batch:
            for s in range(self.B):
                w(3, f"out[i, {s}, 0] = 0.0")
                w(3, f"out[i, {s}, 1] = 0.0")
                w(3, f"out[i, {s}, 2] = st[{lay.stream_loss + s}]")
        else:
            w(3, "out[i, 0] = 0.0")
            w(3, "out[i, 1] = 0.0")
            w(3, "out[i, 2] = loss")
        if self.traced:
            _emit_trace_row(w, 3, self.P, self.small, self.PV, self.G, "math.nan", zero=True, bank_index=lay.bank_index)
        w(3, "n += 1")
        w(3, "continue")
        if self.batch:    # the trace shows the streams' mean target and output
            w(2, f"y = {_mean([WV[0] for WV in self.WVs])}")
            w(2, f"yh = {_mean([WV[1] for WV in self.WVs])}")
        else:
            w(2, f"y = {self.WVs[0][0]}")
            w(2, f"yh = {self.WVs[0][1]}")

    def count_divergence(self, depth):
        """A step lost to divergence; the first one's sample is kept (the rare path only)."""
        self.w(depth, "if diverged == 0.0:")
        self.w(depth + 1, f"st[{LY.ST_DIVERGED_AT}] = n + 1.0")
        self.w(depth, "diverged += 1.0")

    def sliding_windows(self):
        if not self.windowed:      # W = 1: the means are this sample's values (self._mean)
            return
        w, NW, small, mask = self.w, self.NW, self.small, self.mask
        w(2, f"# sliding windows: running sums, recomputed exactly every max(W, {RECOMPUTE_EVERY}) samples (no drift)")
        for S, WV, wring in zip(self.Ss, self.WVs, self.wrings):
            w(2, f"wp = {wring} + (n & {mask})*{NW}")
            w(2, f"wo = {wring} + ((n - W) & {mask})*{NW}")
            # the rings are interleaved (one row of all NW signals per position) so each sample touches
            # one contiguous stretch of memory. (S - leaving) + entering: the leaving sample is known
            # early, so this sample's value is one add from the sum, not two (the learning recurrence)
            _loop(w, 2, NW, small, lambda j: [f"{S[j]} = ({S[j]} - st[wo + {j}]) + {WV[j]}",
                                              f"st[wp + {j}] = {WV[j]}"])
        w(2, "wcount -= 1")
        w(2, "if wcount <= 0:")
        for S in self.Ss:
            _loop(w, 3, NW, small, lambda j: [f"{S[j]} = 0.0"])
        w(3, "for q in range(W):")
        for S, wring in zip(self.Ss, self.wrings):
            w(4, f"wq = {wring} + ((n - q) & {mask})*{NW}")
            _loop(w, 4, NW, small, lambda j: [f"{S[j]} += st[wq + {j}]"])
        w(3, f"wcount = max(W, {RECOMPUTE_EVERY})")

    def _mean(self, s, j):
        """The window mean of stream s's window signal j (0 the target, 1 the output, 2 + k
        parameter k's tangent; j an int, or an expression in a loop's k)."""
        if not self.windowed:
            return self.WVs[s][j]
        return f"{self.Ss[s][j]}*invW"

    def _tan_mean(self, s, k):      # the window mean of parameter k's tangent
        return self._mean(s, f"2 + {k}" if not self.small else 2 + int(k))

    def _slope_tan(self, s, k):
        """What loss_and_slope's slope multiplies: the tangent mean, times the loss's slope factor."""
        factor = LOSS_BY_CODE[self.variant.loss].slope_factor
        return self._tan_mean(s, k) if factor == 1.0 else f"{factor!r}*({self._tan_mean(s, k)})"

    def loss_and_gradient(self):
        w, P, B, small, G, mean, slope_tan = self.w, self.P, self.B, self.small, self.G, self._mean, self._slope_tan
        if self.batch:
            for s in range(B):
                w(2, f"Ly{s}, slope{s} = loss_and_slope({mean(s, 1)}, {mean(s, 0)}, delta)")
            w(2, f"Ly = {_mean([f'Ly{s}' for s in range(B)])}")
            # the mean over the streams of each parameter's gradient
            _finite_sum(w, 2, P, small, "gchk", "Ly", lambda k: [
                f"gm = slope0*({slope_tan(0, k)})",
                f"{G[k]} = {_mean(['gm'] + [f'slope{s}*({slope_tan(s, k)})' for s in range(1, B)])}"], G.__getitem__)
        else:
            if self.spec_loss:
                self.spectral_loss()
            else:
                w(2, f"Ly, slope = loss_and_slope({mean(0, 1)}, {mean(0, 0)}, delta)")
                _finite_sum(w, 2, P, small, "gchk", "Ly", lambda k: [f"{G[k]} = slope*({slope_tan(0, k)})"],
                            G.__getitem__)
        if self.traced:
            _emit_trace_row(w, 2, P, small, self.PV, G, "Ly", zero=False, bank_index=self.lay.bank_index)

    def spectral_loss(self):
        """engine/learn/spectral.py: this sample (target, output and its tangents) into the two
        channels; at a block's end the loss and its gradient, which the step uses (between block
        ends the gradient is 0, no step is taken, and the loss reported is the last block's)."""
        w, lay, P, small, G, WV = self.w, self.lay, self.P, self.small, self.G, self.WVs[0]
        _loop(w, 2, P, small, lambda k: [f"st[{lay.spec_tangents} + {k}] = {WV[2 + k if small else f'2 + {k}']}"])
        w(2, f"spectral_feed(st, {lay.spec_target}, cfg, {lay.cfg_spectral}, nbins, 1, y, 0)")
        w(2, f"spectral_feed(st, {lay.spec_output}, cfg, {lay.cfg_spectral}, nbins, {1 + P}, yh, {lay.spec_tangents})")
        A = lay.spec_align
        if self.hands_over:
            a = 1.0 - math.exp(-1.0 / (SP.ALIGN_SECONDS * self.sample_rate))
            w(2, f"st[{A}] += {a!r}*((y - yh)*(y - yh) - st[{A}])    # the hand-over's error and target powers")
            w(2, f"st[{A + 1}] += {a!r}*(y*y - st[{A + 1}])")
        fine_args = f"st, {lay.spec_target}, {lay.spec_output}, {lay.spec_fine}"
        if self.locks_frequency:
            w(2, f"fine_track({fine_args}, cfg, {lay.cfg_spectral}, nbins, {P})")
        if self.locks_delay:
            ring = LL.ring_length(lay.spec_lags)
            beta = 1.0 - math.exp(-LL.SUBSAMPLE / (LL.SMOOTH_SECONDS * self.sample_rate))
            lag_args = f"st, {lay.spec_lag}, {ring}, {lay.spec_lags}, {P}"
            w(2, f"lag_feed({lag_args}, n, y, yh, {lay.spec_tangents}, {beta!r})")
            amount, slopes = self.lrns[0].learned_amount          # the learned delay's length and tangents
            at = lay.spec_lag + LL.amount_at(lay.spec_lags, P, ring)
            w(2, f"st[{at}] = {amount}")
            for slot, expr in sorted(slopes.items()):
                w(2, f"st[{at + 1 + slot}] = {expr}")
        w(2, "hopn += 1")
        w(2, "due = hopn >= hop")
        if self.locks:
            w(2, "fine = False")
        w(2, "if due:")
        w(3, "hopn = 0")
        w(3, f"Ly, lag = spectral_loss(st, {lay.spec_target}, {lay.spec_output}, cfg, {lay.cfg_spectral}, nbins, "
             f"{P}, {lay.spec_grad}, {1.0 / SP.BINS_PER_OCTAVE!r})")
        w(3, f"st[{LY.ST_SPEC_LOSS}] = Ly")
        if self.locks_frequency:
            w(3, f"fine, fine_e, fine_lag = fine_error({fine_args}, cfg, {lay.cfg_spectral}, nbins, {P}, "
                 f"{lay.spec_fine_grad}, hop, blocks >= warm)")
        if self.locks_delay:
            w(3, f"fine, fine_e, fine_lag = lag_error({lag_args}, {lay.spec_fine_grad}, "
                 f"{LL.SMOOTH_SECONDS * self.sample_rate!r})")
        if self.hands_over:
            w(3, f"if st[{A + 2}] == 0.0 and st[{A}] < {SP.HANDOVER!r}*st[{A + 1}]:   # the signals agree: hand over")
            w(4, f"st[{A + 2}] = 1.0")
            w(4, f"st[{LY.ST_GN_T}] = 0.0                 # Gauss-Newton starts afresh (narrower P, no fast start)")
            w(3, f"elif st[{A + 2}] != 0.0 and not st[{A}] <= {SP.HANDBACK!r}*st[{A + 1}]:   # they part: back")
            w(4, f"st[{A + 2}] = 0.0")
        w(3, "blocks += 1")
        w(3, "due = blocks > warm               # no step while the restarted tangents build up")
        w(3, "if blocks >= restart:             # restart the oscillators' phase tangents and the bank's")
        w(4, "blocks = 0")
        for start, count in self.lrns[0].phase_tangent_words():
            for line in zero_words(start, start + count):
                w(4, line)
        w(4, f"spectral_restart(st, {lay.spec_output}, nbins, {1 + P})")
        if self.locks_frequency:
            w(3, f"fine_rebase(st, {lay.spec_target}, {lay.spec_fine}, nbins, {P}, blocks == 0)   # after a restart")
        w(2, "else:")
        w(3, f"Ly = st[{LY.ST_SPEC_LOSS}]")
        _finite_sum(w, 2, P, small, "gchk", "Ly", lambda k: [f"{G[k]} = st[{lay.spec_grad} + {k}] if due else 0.0"],
                    G.__getitem__)

    def polyak_step(self, depth):
        """An optimiser without a rate under the spectral loss: at a block's end one Polyak step,
        -gain * loss * g / |g|^2, g the gradient averaged over about a lag time (in log space for a
        log parameter, whose step is at most the range's ratio, as every optimiser's is). A loss
        that measures distance in octaves would land a lone log parameter exactly with gain 1, but
        the smoothed powers lag the parameter, so the gain is a share of the way per lag time - the
        smoothing's and the memory of the bins the power sits in - in proportion to the hop
        (engine/learn/spectral.py: POLYAK_RATE, POLYAK_AVERAGING).
        With the fine stage engaged (pitch kernels), the frequency error's Gauss-Newton step sets
        the parameters along its derivative J, and the Polyak step keeps only its part across J
        (a level, a timbre), so neither undoes the other. The fine stage's J is an average that a
        restart of the tangents leaves valid, so it steps on through the warm-up after one."""
        w, P, small, vec, M = self.w, self.P, self.small, self.step_vec, self.M
        fine = self.locks
        rate, step_max, min_jj = ((SP.FINE_RATE, SP.FINE_STEP_MAX, 0.0) if self.locks_frequency
                                  else (LL.RATE, LL.STEP_MAX, 0.0))
        w(depth, "if due or fine:" if fine else "if due:")
        d = depth + 1
        w(d, "gg = 0.0")
        if fine:
            w(d, "if due:")
        dd = d + 1 if fine else d
        w(dd, f"avg = min({SP.POLYAK_AVERAGING!r}*hop/lag, 1.0)   # M: the gradient, averaged")
        _loop(w, dd, P, small, lambda k: _log_gradient(k, self.G[k], vec)
              + [f"{M[k]} += avg*(gk - {M[k]})", f"gg += {M[k]}*{M[k]}"])
        if fine:
            J = lambda k: f"st[{self.lay.spec_fine_grad} + {k}]"   # noqa: E731 (per Hz: gk is per neper)
            w(d, "proj = 0.0                       # the averaged gradient's part along J, per |J|^2")
            w(d, "scf = 0.0                        # the frequency error's step along J")
            w(d, "if fine:")
            w(d + 1, "jj = 0.0")
            w(d + 1, "mj = 0.0")
            _loop(w, d + 1, P, small, lambda k: _log_gradient(k, J(k), vec) + ["jj += gk*gk", f"mj += {M[k]}*gk"])
            w(d + 1, f"if jj > {min_jj!r}:")
            w(d + 2, "proj = mj/jj")
            w(d + 2, "gg = max(gg - mj*proj, 0.0)    # |M - proj J|^2")
            w(d + 2, f"scf = min({rate!r}*hop/fine_lag, 1.0)*fine_e/jj")
            w(d + 2, f"scf *= min(1.0, {step_max!r}/(abs(scf)*math.sqrt(jj)))   # at most so far per block")
        w(d, "sc = 0.0")
        w(d, "if gg > 0.0:")
        w(d + 1, f"sc = min({SP.POLYAK_RATE!r}*hop/lag, 0.5)*Ly/max(gg, {SP.POLYAK_FLOOR!r})")
        if fine:
            w(d, "if sc != 0.0 or scf != 0.0:")
            _loop(w, d + 1, P, small, lambda k: _log_gradient(k, J(k), vec)
                  + _apply_step(k, f"sc*({M[k]} - proj*gk) + scf*gk", vec))
        else:
            w(d, "if sc != 0.0:")
            _loop(w, d + 1, P, small, lambda k: _log_flag(k, vec) + _apply_step(k, f"sc*{M[k]}", vec))

    def optimizer_step(self):
        """Clipping, the learning-rate schedule and one optimiser step per parameter (per bank)."""
        w, P, small, banks, lay = self.w, self.P, self.small, self.banks, self.lay
        TH, M, V, G, LO, HI = self.TH, self.M, self.V, self.G, self.LO, self.HI
        w(2, "if not (gchk - gchk == 0.0):")
        self.count_divergence(3)
        if self.gauss_newton:
            if self.spec_loss:     # Polyak's step until the signals agree, then (hands over) Gauss-Newton's
                w(2, f"elif learn and st[{lay.spec_align + 2}] == 0.0:" if self.hands_over else "elif learn:")
                self.polyak_step(3)
            if self.hands_over or not self.spec_loss:
                w(2, "elif learn:")
                self.gauss_newton_step(3)
            return
        w(2, "elif learn and due:" if self.spec_loss else "elif learn:")
        w(3, "sc = 1.0")
        w(3, "if clip > 0.0:")
        w(4, "gn = 0.0")
        _loop(w, 4, P, small, lambda k: [f"gn += {G[k]}*{G[k]}"])
        w(4, "gn = math.sqrt(gn)")
        w(4, "if gn > clip:")
        w(5, "sc = clip / gn")
        for line in ["if decay_every > 0:", "    schedc += 1", "    if schedc >= decay_every:",
                     "        schedc = 0", "        sched *= decay", "lr = lr0 * sched",
                     "if lr < lr_min:", "    lr = lr_min", "t += 1.0"]:
            w(3, line)
        vec = self.step_vec
        if banks is None and OPT_BY_CODE[self.variant.optimizer].linear_in_gradient:
            # the clip's factor scales the rate, off the learning recurrence (g*sc*lr costs one
            # more dependent multiply per sample; the two differ only in the last bit, and only
            # while clipping)
            w(3, "lr *= sc")
            _loop(w, 3, P, small, lambda k: _first_order_update(k, G[k], "t", vec))
        elif banks is None:
            _loop(w, 3, P, small, lambda k: _first_order_update(k, f"{G[k]}*sc", "t", vec))
        elif self.batch and banks.mode == "separated":
            _emit_batch_separated_steps(w, 3, banks, lay.bank_index, self.steps, vec,
                                        [lambda k, s=s: f"slope{s}*({self._slope_tan(s, k)})"
                                         for s in range(self.B)])
        else:
            _emit_bank_steps(w, 3, banks, lay.bank_index, self.steps, vec, G)

    def gauss_newton_step(self, depth):
        """engine/learn/gauss_newton.py's step for every block of P: its sensitivities (the window
        means of the tangents, scaled by the loss's dr/dM), the update, the step clipped to each
        range's width and (range mode project) the parameter projected into its range. With
        batches the streams are stacked measurements: one rank-one update each, the forgetting
        applied once, each stream's residual corrected for the steps the earlier ones took (so the
        result is that of one update with all of them). With separated banks only the active
        bank's block updates."""
        w, lay, B = self.w, self.lay, self.B
        TH, LO, HI = self.TH, self.LO, self.HI
        if not lay.gn_groups:
            w(depth, "pass                             # the output depends on no parameter")
            return
        w(depth, f"if st[{LY.ST_GN_T}] == 0.0:        # P from the ranges, the forgetting from its start")
        handing = self.hands_over and self.spec_loss   # the spectral loss runs and may hand over here
        if handing:      # handed over near the answer: a narrower P, no fast-forgetting start
            w(depth + 1, f"handed = st[{lay.spec_align + 2}] != 0.0")
            w(depth + 1, f"gn_p0 = {SP.HANDOVER_P0!r} if handed else cfg[{LY.CF_P0}]")
        else:
            w(depth + 1, f"gn_p0 = cfg[{LY.CF_P0}]")
        for base, members, _ in lay.gn_groups:
            n = len(members)
            for j, slots in enumerate(members):
                k = slots[0]
                w(depth + 1, f"st[{base + n * n + 2 * n + j}] = gn_initial_variance(gn_p0, {LO[k]}, {HI[k]}, "
                             f"{_log_test(k, self.step_vec)})")
            w(depth + 1, f"gn_reset_p(st, {base}, {n})")
        w(depth + 1, f"st[{LY.ST_GN_LAMBDA}] = {'c1 if handed else c2' if handing else 'c2'}")
        w(depth, f"st[{LY.ST_GN_T}] += 1.0")
        w(depth, f"lam = c1 + (st[{LY.ST_GN_LAMBDA}] - c1)*{GN.RAMP!r}")
        w(depth, f"st[{LY.ST_GN_LAMBDA}] = lam")
        w(depth, f"gnc = int64(st[{LY.ST_GN_T}])")
        for s in range(B):
            w(depth, f"rr{s}, dr{s}, wr{s} = loss_residual({self._mean(s, 1)}, {self._mean(s, 0)}, delta)")
        if self.banks is not None and self.banks.mode == "separated":
            w(depth, f"ab = int64(st[{lay.bank_index}])")
        for base, members, bank in lay.gn_groups:
            n = len(members)
            d = depth
            if bank >= 0:
                w(d, f"if ab == {bank}:")
                d += 1
            psi, u = base + n * n, base + n * n + n
            for s in range(B):
                for j, slots in enumerate(members):
                    tan = " + ".join(f"({self._tan_mean(s, k)})" for k in slots)
                    for line in _log_gradient(slots[0], f"dr{s}*({tan})", self.step_vec) + [f"st[{psi + j}] = gk"]:
                        w(d, line)
                e = f"-rr{s}"
                if s > 0:            # this stream's residual after the earlier streams' steps
                    w(d, f"es = -rr{s}")
                    for j, slots in enumerate(members):
                        w(d, f"es -= st[{psi + j}]*dth{j}")
                    e = "es"
                w(d, f"if gn_update(st, {base}, {n}, {e}, wr{s}, {'lam' if s == 0 else '1.0'}, gnc % {n}):")
                for j, slots in enumerate(members):
                    k = slots[0]
                    if B > 1:
                        w(d + 1, f"was = {TH[k]}")
                    # u holds +K e (a step up the residual); a linear step too is at most the range's width
                    for line in _log_flag(k, self.step_vec) + _apply_step(k, f"-st[{u + j}]", self.step_vec,
                                                                           clip_linear=True):
                        w(d + 1, line)
                    if B > 1:
                        w(d + 1, f"dth{j} {'=' if s == 0 else '+='} {TH[k]} - was")
                if B > 1 and s == 0:
                    w(d, "else:")
                    for j in range(n):
                        w(d + 1, f"dth{j} = 0.0")

    def sample_outputs(self):
        w = self.w
        w(2, "loss = Ly")
        if self.batch:
            for s, WV in enumerate(self.WVs):
                w(2, f"st[{self.lay.stream_loss + s}] = Ly{s}")
                w(2, f"out[i, {s}, 0] = {WV[0]}")
                w(2, f"out[i, {s}, 1] = {WV[1]}")
                w(2, f"out[i, {s}, 2] = Ly{s}")
        else:
            w(2, "out[i, 0] = y")
            w(2, "out[i, 1] = yh")
            w(2, "out[i, 2] = Ly")
        w(2, "n += 1")

    def epilogue(self):
        """Registers and locals back into st (and the glided hidden values into cfg)."""
        w, P = self.w, self.P
        for vec, size in [(self.TH, P), (self.M, P), (self.V, P), (self.G, P)] + self._window_sums():
            vec.store(w, 1, size)
        for e in self.tgts + self.lrns:
            for line in e.store_lines():
                w(1, line)
        for local, word in self._input_register_words():
            w(1, f"st[{word}] = {local}")
        lines = [f"st[{LY.ST_N}] = n", f"st[{LY.ST_SKIPPED}] = skipped", f"st[{LY.ST_LOSS}] = loss",
                 f"st[{LY.ST_RESETS}] = resets", f"st[{LY.ST_DIVERGED}] = diverged"]
        if not self.gauss_newton:
            lines += [f"st[{LY.ST_SCHED}] = sched", f"st[{LY.ST_SCHED_COUNT}] = schedc", f"st[{LY.ST_T}] = t"]
        # W = 1 keeps no sums: a windowed kernel after it starts its sums over (0 is never a window)
        lines += [f"st[{LY.ST_WCUR}] = W", f"st[{LY.ST_WCOUNT}] = wcount"] if self.windowed else [f"st[{LY.ST_WCUR}] = 0"]
        for line in lines:
            w(1, line)
        if self.spec_loss:
            w(1, f"st[{LY.ST_SPEC_COUNT}] = hopn")
            w(1, f"st[{LY.ST_SPEC_BLOCKS}] = blocks")
        _emit_glide_store(w, 1, self.lay, self.H, self.hidden_in_cfg)
        w(1, "return rows")


def _emit_stream_forward(w, depth, tgt, lrn, run, WV, P, NW, small, learn, banks, bank_at, label):
    """One stream's forward pass: both circuits, its window inputs, its active bank, and the
    restart of a circuit whose state went non-finite (which holds the sample: ok = False)."""
    y_expr, yh_expr, yh_tan = run
    w(depth, f"# target circuit{label}")
    for line in tgt.lines:
        w(depth, line)
    w(depth, f"# learnable circuit with tangents{label}")
    for line in lrn.lines:
        w(depth, line)
    exprs = [y_expr, yh_expr] + [yh_tan.get(k, "0.0") for k in range(P)]
    for j, expr in enumerate(exprs):
        w(depth, f"{WV[j]} = {expr}")
    if banks is not None:
        w(depth, f"st[{bank_at}] = {lrn.val[learn.signals[banks.signal]]}")
        w(depth, f"st[{bank_at + 1}] = {lrn.val[learn.signals[banks.condition]]}")
    w(depth, f"if not ({WV[0]} - {WV[0]} == 0.0):     # target blew up: restart its state")
    for line in tgt.restart_lines():
        w(depth + 1, line)
    w(depth + 1, "resets += 1.0")
    w(depth + 1, "ok = False")
    # the output and the tangents that are not finite by construction (a FIR's are input samples);
    # a large circuit with any such tangent sums them all in its loops
    unsure = [j for j in range(2, NW) if not lrn.is_finite(exprs[j])]
    if small or not unsure:
        w(depth, f"chk = {_tree([WV[1]] + [WV[j] for j in unsure])}")
    else:
        _finite_sum(w, depth, NW, small, "chk", WV[1], lambda j: [], WV.__getitem__, start=2)
    w(depth, "if not (chk - chk == 0.0):      # learnable circuit blew up: restart its state")
    for line in lrn.restart_lines():
        w(depth + 1, line)
    w(depth + 1, "resets += 1.0")
    w(depth + 1, "ok = False")
    w(depth + 1, "blew = True")


def _emit_import(w, fn, name: str):
    """The variant's entry of the LOSSES or OPTIMIZERS table under the name the kernel calls, so a
    new entry needs no change here."""
    w(0, f"from {fn.py_func.__module__} import {fn.__name__} as {name}")


def _mean(terms: list) -> str:
    """The mean of B >= 2 expressions, written t0 + ((t1 - t0) + ...)*invB: exactly t0 when the
    terms are equal, so B copies of one stream learn bit for bit like that stream alone."""
    t0 = terms[0]
    return f"{t0} + (" + " + ".join(f"({t} - {t0})" for t in terms[1:]) + ")*invB"


def _emit_block_entry(w):
    """`block(slot, n)`: the C entry a host's audio callback calls through a slot table
    (engine/blockabi.py), viewing the slot's arrays without allocating."""
    w(0, "")
    w(0, "")
    w(0, "from numba import cfunc, carray")
    w(0, "from engine import blockabi as B")
    w(0, "")
    w(0, "")
    w(0, "@cfunc(B.BLOCK_SIGNATURE, cache=True, nogil=True, error_model='numpy')")
    w(0, "def block(slot, n):")
    for line in [
        "t = carray(slot, (B.SLOT_WORDS,), dtype=np.int64)",
        "x = carray(B.address_as_voidptr(t[B.S_X]), (n,), dtype=np.float64)",
        "out = carray(B.address_as_voidptr(t[B.S_OUT]), (n, 3), dtype=np.float64)",
        "trace = carray(B.address_as_voidptr(t[B.S_TRACE]), (t[B.S_TRACE_ROWS], t[B.S_TRACE_COLS]), dtype=np.float64)",
        "st = carray(B.address_as_voidptr(t[B.S_ST]), (t[B.S_ST_LEN],), dtype=np.float64)",
        "cfg = carray(B.address_as_voidptr(t[B.S_CFG]), (t[B.S_CFG_LEN],), dtype=np.float64)",
        "return process(x, out, trace, st, cfg)"]:
        w(1, line)


SMALL_CIRCUIT = 16      # up to this many parameters, per-parameter state is kept in registers
# the window sums are re-added from their rings this often: each one costs W reads per signal, so
# every W samples (as it was) was a read and an add per signal per sample more than the C++'s;
# between recomputes a sum drifts by at most ~1e-13 of its size (issue 17, benchmarks/README.md)
RECOMPUTE_EVERY = 1024


class _Out:
    def __init__(self):
        self.lines = []

    def line(self, depth, text):
        self.lines.append("    " * depth + text)

    def text(self):
        return "\n".join(self.lines) + "\n"


class _Vec:
    """A per-parameter (or per-window-signal) quantity in generated code: `vec[k]` is a local
    `name<k>` in a small circuit (k an int), or `arr[base + k]` in a loop of a large one."""

    def __init__(self, name, base, small, arr="st"):
        self.name, self.base, self.small, self.arr = name, base, small, arr

    def __getitem__(self, k):
        if self.small:
            return f"{self.name}{k}"
        return f"{self.arr}[{self.base} + {k}]"

    def load(self, w, depth, size):
        if self.small:
            for k in range(size):
                w(depth, f"{self.name}{k} = {self.arr}[{self.base + k}]")

    def store(self, w, depth, size):
        if self.small:
            for k in range(size):
                w(depth, f"{self.arr}[{self.base + k}] = {self.name}{k}")


def _finite_sum(w, depth, size, small, name, first, body, term, start=0):
    """name = first + term(k) for k in [start, size), after body(k)'s lines: a sum only tested for
    being finite, so its order is free. One running sum is a chain of dependent adds (64 of them
    for fir64: the sample loop's longest chain); a balanced tree (unrolled) or four sums (a loop)
    shorten it."""
    if small:
        terms = [first]
        for k in range(start, size):
            for line in body(k):
                w(depth, line)
            terms.append(term(k))
        w(depth, f"{name} = {_tree(terms)}")
        return
    quad = start + (size - start) // 4 * 4
    w(depth, f"{name}0 = {first}")
    for a in range(1, 4):
        w(depth, f"{name}{a} = 0.0")
    if quad > start:
        w(depth, f"for k in range({start}, {quad}, 4):")
        for a in range(4):
            k = "k" if a == 0 else f"k + {a}"
            for line in body(k) + [f"{name}{a} += {term(k)}"]:
                w(depth + 1, line)
    for k in range(quad, size):
        for line in body(k) + [f"{name}0 += {term(k)}"]:
            w(depth, line)
    w(depth, f"{name} = ({name}0 + {name}1) + ({name}2 + {name}3)")


def _tree(terms: list) -> str:
    """The sum of terms as a balanced tree of additions."""
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _loop(w, depth, size, small, body, start=0):
    """Emit body(k) for k in [start, size): unrolled in a small circuit, as a loop otherwise."""
    if small:
        for k in range(start, size):
            for line in body(k):
                w(depth, line)
    elif size > start:
        w(depth, f"for k in range({start}, {size}):")
        for line in body("k"):
            w(depth + 1, line)


@dataclass(frozen=True)
class _StepVectors:
    """What a first-order step reads and writes per parameter: the accumulator, the optimiser's two
    moments, the range, the value the circuit used, where the log-axis flags live in cfg, and what
    the variant fixes: which parameters are on a log axis (None: read the flags) and whether the
    range mode projects."""
    TH: "_Vec"
    M: "_Vec"
    V: "_Vec"
    LO: "_Vec"
    HI: "_Vec"
    PV: "_Vec"
    cfg_log: int
    logs: tuple | None = None
    project: bool = True
    bounds: tuple | None = None

    def is_log(self, k):
        """Parameter k (a slot, or a loop's variable) on a log axis: True or False where the text can
        say, None where the generated code must read the flag (a loop over mixed axes)."""
        if self.logs is None:
            return None
        if isinstance(k, int):
            return self.logs[k]
        return self.logs[0] if len(set(self.logs)) == 1 else None


def _clamp(value, k, vec) -> str:
    """value clamped into parameter k's range: only the bounds the variant says are finite (both
    where it cannot say)."""
    if vec.bounds is None:
        lo, hi = True, True
    elif isinstance(k, int):
        lo, hi = vec.bounds[k]
    else:                 # a loop over the parameters: what they all share, else both
        lo, hi = (any(b[0] for b in vec.bounds), any(b[1] for b in vec.bounds))
    if lo:
        value = f"max({value}, {vec.LO[k]})"
    return f"min({value}, {vec.HI[k]})" if hi else value


def _log_test(k, vec) -> str:
    """An expression: parameter k is on a log axis."""
    known = vec.is_log(k)
    if known is not None:
        return str(known)
    flag = vec.cfg_log + k if isinstance(k, int) else f"{vec.cfg_log} + {k}"
    return f"cfg[{flag}] != 0.0"


def _log_flag(k, vec) -> list:
    """lg = parameter k is on a log axis, where the text cannot say (no line where it can)."""
    return [] if vec.is_log(k) is not None else [f"lg = {_log_test(k, vec)}"]


def _branch(k, vec, log_lines, linear_lines) -> list:
    """The lines for a log or a linear parameter k: only the one the variant fixes, else both under lg."""
    known = vec.is_log(k)
    if known is not None:
        return log_lines if known else linear_lines
    return ["if lg:"] + ["    " + ln for ln in log_lines] + ["else:"] + ["    " + ln for ln in linear_lines]


def _log_gradient(k, g, vec) -> list:
    """gk = the gradient expression g, times p for a parameter on a log axis (d/d(log p) = p d/dp)."""
    known = vec.is_log(k)
    if known is None:
        return _log_flag(k, vec) + [f"gk = {g}", "if lg:", f"    gk *= {vec.PV[k]}"]
    return [f"gk = {g}"] + ([f"gk *= {vec.PV[k]}"] if known else [])


def _apply_step(k, step, vec, clip_linear=False) -> list:
    """theta -= step (a log parameter: p multiplied by exp(-step), at most by the range's ratio;
    clip_linear: a linear step too at most the range's width); then (range mode project) the
    accumulator projected into the range. Needs lg where the variant does not fix the axis."""
    TH, LO, HI, PV = vec.TH, vec.LO, vec.HI, vec.PV
    linear = ([f"wd = {HI[k]} - {LO[k]}", f"{TH[k]} -= min(max(sk, -wd), wd)"] if clip_linear
              else [f"{TH[k]} -= sk"])
    log = [f"wd = math.log({HI[k]}/{LO[k]})", f"{TH[k]} = {PV[k]}*math.exp(-min(max(sk, -wd), wd))"]
    # project: the accumulator into the range, and it is the value the circuit uses from the next sample
    clamped = _clamp(TH[k], k, vec)
    project = ([f"{TH[k]} = {clamped}"] if clamped != TH[k] else []) + [f"{PV[k]} = {TH[k]}"] if vec.project else []
    return ([] if step == "sk" else [f"sk = {step}"]) + _branch(k, vec, log, linear) + project


def _first_order_update(k, g, t, vec) -> list:
    """One optimiser step of parameter k with gradient expression g at step count t. A parameter on
    a log axis steps in log space: its gradient is p*dL/dp and p is multiplied by exp(-step), at most
    by the range's ratio (equal steps for equal ratios: a cutoff moves as readily at 100 Hz as at
    10 kHz). Then (range mode project) the accumulator is projected into the range."""
    M, V = vec.M, vec.V
    return (_log_gradient(k, g, vec)
            + [f"sk, {M[k]}, {V[k]} = optimizer_step(gk, lr, {M[k]}, {V[k]}, {t}, c1, c2, eps)"]
            + _apply_step(k, "sk", vec))


def _emit_bank_steps(w, depth, banks, bank_index, steps, vec, G):
    """The optimiser step with banks. exact: every parameter with a non-zero gradient steps (the
    others keep their optimiser state still). separated: each base parameter's gradient is the sum
    of its banks' tangent gradients, and only the active bank steps."""
    def step(k, g):
        return _bank_step(k, g, steps, vec)
    w(depth, f"ab = int64(st[{bank_index}])")
    for base, slots in banks.slots.items():
        have = [(b, k) for b, k in enumerate(slots) if k is not None]   # a bank's own topology may lack it
        if banks.mode == "exact":
            for _, k in have:
                w(depth, f"if {G[k]} != 0.0:")
                for line in step(k, G[k]):
                    w(depth + 1, line)
        else:
            w(depth, "gs = " + " + ".join(G[k] for _, k in have))
            for j, (b, k) in enumerate(have):
                w(depth, f"{'if' if j == 0 else 'elif'} ab == {b}:")
                for line in step(k, "gs"):
                    w(depth + 1, line)


def _bank_step(k, g, steps, vec) -> list:
    """One bank parameter's optimiser step, counted on its own (banks learn at different times)."""
    return [f"st[{steps} + {k}] += 1.0"] + _first_order_update(k, f"{g}*sc", f"st[{steps} + {k}]", vec)


def _emit_batch_separated_steps(w, depth, banks, bank_index, steps, vec, stream_grads):
    """Separated banks over B streams, which may sit in different banks: each stream's gradient of
    a base parameter (summed over the banks) goes to that stream's active bank; a bank steps with
    the sum of what it received divided by B, and only if some stream had it active.
    stream_grads[s](k) is stream s's gradient of slot k."""
    B = len(stream_grads)
    for s in range(B):
        w(depth, f"ab{s} = int64(st[{bank_index + 2 * s}])")
    for base, slots in banks.slots.items():
        have = [(b, k) for b, k in enumerate(slots) if k is not None]   # a bank's own topology may lack it
        for s in range(B):
            w(depth, f"gs{s} = " + " + ".join(stream_grads[s](k) for _, k in have))
        for b, k in have:
            w(depth, "gb = 0.0")
            w(depth, "hit = False")
            for s in range(B):
                w(depth, f"if ab{s} == {b}:")
                w(depth + 1, f"gb += gs{s}")
                w(depth + 1, "hit = True")
            w(depth, "if hit:")
            for line in _bank_step(k, "gb*invB", steps, vec):
                w(depth + 1, line)


def _emit_trace_row(w, depth, P, small, PV, G, loss, zero, bank_index=-1):
    """Row n: n, loss, the parameter values used at n, the raw gradients at n, target, output,
    the active bank (-1 without banks)."""
    w(depth, "if K > 0 and n % K == 0 and rows < ntrace:")
    w(depth + 1, "trace[rows, 0] = n")
    w(depth + 1, f"trace[rows, 1] = {loss}")
    _loop(w, depth + 1, P, small, lambda k: [f"trace[rows, 2 + {k}] = {PV[k]}",
                                             f"trace[rows, {2 + P} + {k}] = {'0.0' if zero else G[k]}"])
    w(depth + 1, f"trace[rows, {2 + 2 * P}] = {'0.0' if zero else 'y'}")
    w(depth + 1, f"trace[rows, {3 + 2 * P}] = {'0.0' if zero else 'yh'}")
    w(depth + 1, f"trace[rows, {4 + 2 * P}] = {f'st[{bank_index}]' if bank_index >= 0 else '-1.0'}")
    w(depth + 1, "rows += 1")
