"""Compile a (target, learnable) pair of circuit graphs into one Numba block kernel.

The kernel runs, per sample: the target circuit (values only), the learnable circuit with its
tangents, the sliding windows, the loss, the optimiser; see engine/layout.py for the two arrays it
works on. Tangents are sparse: each node carries only the slots of the parameters it can depend on
(found by a fixed point over feedback), so a gain needs one tangent, not N - the way Faust drops
structurally zero terms at compile time.

The generated source is written once to a file named by its hash (plus the engine's own source
hash) in the kernel cache folder and compiled with cache=True, so the same circuit starts in well
under a second the second time.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import layout as LY
from .language import Graph
from .primitives import TABLE

SIGNATURE = "int64(float64[::1], float64[:, ::1], float64[:, ::1], float64[::1], float64[::1])"
_ENGINE_FILES = ("compiler.py", "primitives.py", "losses.py", "optimizers.py", "layout.py")


def kernel_cache_dir() -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "dualtone-cache")
    d = Path(base) / "dualtone_kernels"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _engine_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for f in _ENGINE_FILES:
        h.update((here / f).read_bytes())
    return h.hexdigest()[:12]


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
    n_window_signals: int = 0
    output_slots: list = field(default_factory=list)   # param slots with a non-zero output tangent
    target_state: tuple = (0, 0)
    learner_state: tuple = (0, 0)
    cfg_hidden: int = LY.CF_HEADER
    cfg_lo: int = 0
    cfg_hi: int = 0

    @property
    def trace_width(self) -> int:
        return 4 + 2 * len(self.params)


def tangent_sets(graph: Graph, slot_of: dict) -> dict:
    """Per node, the parameter slots whose tangent is not structurally zero (fixed point)."""
    sets = {n.id: frozenset() for n in graph.nodes}
    changed = True
    while changed:
        changed = False
        for n in graph.nodes:
            if n.kind == "param":
                s = frozenset([slot_of[n.name]]) if n.name in slot_of else frozenset()
            elif n.kind == "prim":
                s = frozenset() if TABLE[n.prim].zero_derivative else \
                    frozenset().union(*(sets[a] for a in n.args))
            elif n.kind == "select":
                s = sets[n.args[1]] | sets[n.args[2]]
            elif n.kind == "delay":
                s = sets[n.args[0]] | (sets[n.args[1]] if n.const_delay < 0 else frozenset())
            elif n.kind == "phasor":
                s = sets[n.args[0]]
            else:
                s = frozenset()
            if s != sets[n.id]:
                sets[n.id] = s
                changed = True
    return sets


class _CircuitEmitter:
    """Emits the per-sample code of one circuit. Values are named <pfx>v<id>, tangents
    <pfx>v<id>_t<slot>; state (delay rings, phasor phases) is allocated in st."""

    def __init__(self, graph: Graph, pfx: str, alloc, value_of_param, slot_of: dict | None,
                 sample_rate: float):
        self.g, self.pfx, self.alloc = graph, pfx, alloc
        self.value_of_param = value_of_param
        self.with_tangents = slot_of is not None
        self.sets = tangent_sets(graph, slot_of) if slot_of else {n.id: frozenset() for n in graph.nodes}
        self.inv_sr = 1.0 / sample_rate
        self.lines: list[str] = []
        self.val: dict[int, str] = {}
        self.tan: dict[int, dict[int, str]] = {}
        self.rings: dict[int, tuple] = {}      # source id -> (offset, length, {slot: offset})
        self.phasors: dict[int, int] = {}
        self.used_prims: set[str] = set()
        self.state_begin = None
        self._plan_state()

    def _plan_state(self):
        need: dict[int, int] = {}
        for n in self.g.nodes:
            if n.kind == "delay":
                frac = n.const_delay < 0 or n.const_delay != int(n.const_delay)
                need[n.args[0]] = max(need.get(n.args[0], 0), n.max_delay + (2 if frac else 1))
        begin = self.alloc(0)
        for src, depth in need.items():
            length = _pow2(depth + 1)
            off = self.alloc(length)
            slots = {s: self.alloc(length) for s in sorted(self.sets[src])}
            self.rings[src] = (off, length, slots)
        for n in self.g.nodes:
            if n.kind == "phasor":
                self.phasors[n.id] = self.alloc(1 + len(self.sets[n.id]))
        self.state_range = (begin, self.alloc(0))

    def emit(self, line):
        self.lines.append(line)

    def term(self, partial: str, tangent: str) -> str:
        return partial if tangent == "1.0" else f"{partial}*{tangent}"

    def run(self):
        for n in self.g.nodes:
            getattr(self, "_" + n.kind)(n)
            if n.id in self.rings:
                off, length, slots = self.rings[n.id]
                idx = f"(n & {length - 1})"
                self.emit(f"st[{off} + {idx}] = {self.val[n.id]}")
                for s, so in slots.items():
                    self.emit(f"st[{so} + {idx}] = {self.tan[n.id].get(s, '0.0')}")
        return self.val[self.g.output], self.tan[self.g.output]

    # node kinds
    def _const(self, n):
        self.val[n.id], self.tan[n.id] = repr(float(n.value)), {}

    def _input(self, n):
        self.val[n.id], self.tan[n.id] = "xi", {}

    def _param(self, n):
        self.val[n.id], slot = self.value_of_param(n.name)
        self.tan[n.id] = {slot: "1.0"} if (self.with_tangents and slot is not None) else {}

    def _prim(self, n):
        p = TABLE[n.prim]
        self.used_prims.add(n.prim)
        v = f"{self.pfx}v{n.id}"
        args = ", ".join(self.val[a] for a in n.args)
        self.emit(f"{v} = P_{n.prim}_v({args})")
        self.val[n.id], self.tan[n.id] = v, {}
        slots = self.sets[n.id]
        if not slots:
            return
        parts = [f"{v}_d{k}" for k in range(p.arity)]
        self.emit(f"{', '.join(parts)} = P_{n.prim}_d({args})")
        for s in sorted(slots):
            terms = [self.term(parts[k], self.tan[a][s]) for k, a in enumerate(n.args) if s in self.tan[a]]
            self.emit(f"{v}_t{s} = {' + '.join(terms)}")
            self.tan[n.id][s] = f"{v}_t{s}"

    def _select(self, n):
        c, a, b = n.args
        v = f"{self.pfx}v{n.id}"
        self.emit(f"{v}_c = {self.val[c]} != 0.0")
        self.emit(f"{v} = {self.val[a]} if {v}_c else {self.val[b]}")
        self.val[n.id], self.tan[n.id] = v, {}
        for s in sorted(self.sets[n.id]):
            ta, tb = self.tan[a].get(s, "0.0"), self.tan[b].get(s, "0.0")
            self.emit(f"{v}_t{s} = {ta} if {v}_c else {tb}")
            self.tan[n.id][s] = f"{v}_t{s}"

    def _delay(self, n):
        src, amt = n.args
        off, length, slots = self.rings[src]
        mask = length - 1
        v = f"{self.pfx}v{n.id}"
        self.val[n.id], self.tan[n.id] = v, {}
        if n.const_delay >= 0 and n.const_delay == int(n.const_delay):
            k = int(n.const_delay)
            self.emit(f"{v}_i = (n - {k}) & {mask}")
            self.emit(f"{v} = st[{off} + {v}_i]")
            for s, so in slots.items():
                self.emit(f"{v}_t{s} = st[{so} + {v}_i]")
                self.tan[n.id][s] = f"{v}_t{s}"
            return
        if n.const_delay >= 0:       # constant fractional delay: linear interpolation
            k = int(n.const_delay)
            self.emit(f"{v}_f = {n.const_delay - k!r}")
            self.emit(f"{v}_i0 = (n - {k}) & {mask}")
            self.emit(f"{v}_i1 = (n - {k + 1}) & {mask}")
            amt_slots = {}
        else:                        # variable delay: clamped, linearly interpolated
            lo, hi = n.min_delay, n.max_delay
            a = self.val[amt]
            self.emit(f"{v}_a = min(max({a}, {float(lo)!r}), {float(hi)!r})")
            self.emit(f"{v}_in = 1.0 if ({a} > {float(lo)!r} and {a} < {float(hi)!r}) else 0.0")
            self.emit(f"{v}_k = int64({v}_a)")
            self.emit(f"{v}_f = {v}_a - {v}_k")
            self.emit(f"{v}_i0 = (n - {v}_k) & {mask}")
            self.emit(f"{v}_i1 = (n - {v}_k - 1) & {mask}")
            amt_slots = self.tan[amt]
        self.emit(f"{v}_r0 = st[{off} + {v}_i0]")
        self.emit(f"{v}_r1 = st[{off} + {v}_i1]")
        self.emit(f"{v} = {v}_r0 + {v}_f*({v}_r1 - {v}_r0)")
        for s in sorted(self.sets[n.id]):
            terms = []
            if s in slots:
                so = slots[s]
                self.emit(f"{v}_u{s} = st[{so} + {v}_i0]")
                terms.append(f"{v}_u{s} + {v}_f*(st[{so} + {v}_i1] - {v}_u{s})")
            if s in amt_slots:   # d/d(amount) of the interpolant: r1 - r0 inside the range, else 0
                terms.append(f"{v}_in*({v}_r1 - {v}_r0)*{amt_slots[s]}")
            self.emit(f"{v}_t{s} = {' + '.join(terms)}")
            self.tan[n.id][s] = f"{v}_t{s}"

    def _phasor(self, n):
        (f,) = n.args
        off = self.phasors[n.id]
        v = f"{self.pfx}v{n.id}"
        self.emit(f"{v} = st[{off}] + {self.val[f]}*{self.inv_sr!r}")
        self.emit(f"{v} -= math.floor({v})")
        self.emit(f"st[{off}] = {v}")
        self.val[n.id], self.tan[n.id] = v, {}
        # d(phase)/d(theta) accumulates df/SR (the unwrapped phase's derivative; the wrap is a
        # jump of the value only)
        for k, s in enumerate(sorted(self.sets[n.id])):
            self.emit(f"{v}_t{s} = st[{off + 1 + k}] + {self.tan[f][s]}*{self.inv_sr!r}")
            self.emit(f"st[{off + 1 + k}] = {v}_t{s}")
            self.tan[n.id][s] = f"{v}_t{s}"


@dataclass
class CompiledLearner:
    process: object          # the Numba kernel
    layout: Layout
    source: str
    path: Path


def generate(learn: Graph, target: Graph, sample_rate: float, window_capacity: int = 4096):
    """Return (python source, Layout) of the block kernel for this pair of circuits."""
    params = list(learn.params)
    hidden = list(target.params)
    P, H = len(params), len(hidden)
    cap = _pow2(max(int(window_capacity), 1))
    lay = Layout(params=params, hidden=hidden, window_capacity=cap)
    lay.cfg_hidden = LY.CF_HEADER
    lay.cfg_lo = lay.cfg_hidden + H
    lay.cfg_hi = lay.cfg_lo + P
    lay.cfg_size = lay.cfg_hi + P

    top = [LY.ST_HEADER]

    def alloc(size):
        o = top[0]
        top[0] += size
        return o

    lay.theta, lay.m, lay.v, lay.grad = alloc(P), alloc(P), alloc(P), alloc(P)
    slot_of = {p: k for k, p in enumerate(params)}
    h_index = {h: k for k, h in enumerate(hidden)}

    tgt = _CircuitEmitter(target, "a", alloc, lambda nm: (f"h{h_index[nm]}", None), None, sample_rate)
    lay.target_state = tgt.state_range
    lrn = _CircuitEmitter(learn, "b", alloc, lambda nm: (f"p{slot_of[nm]}", slot_of[nm]), slot_of,
                          sample_rate)
    lay.learner_state = lrn.state_range
    # input ring: both circuits may delay x; one shared ring would need the larger length, but
    # each emitter planned its own (they never write the same slots).
    y_expr, _ = tgt.run()
    yh_expr, yh_tan = lrn.run()
    out_slots = sorted(yh_tan)
    lay.output_slots = out_slots
    NW = 2 + len(out_slots)
    lay.n_window_signals = NW
    lay.wsum = alloc(NW)
    lay.wring = alloc(NW * cap)
    lay.st_size = top[0]
    win_vals = ["y", "yh"] + [f"gt{s}" for s in out_slots]

    L = []
    w = L.append
    w("# generated by engine/compiler.py - do not edit")
    w("import math")
    w("from numba import njit, int64")
    w("from engine.primitives import TABLE")
    w("from engine.losses import loss_and_slope")
    w("from engine.optimizers import optimizer_step")
    for name in sorted(tgt.used_prims | lrn.used_prims):
        w(f"P_{name}_v = TABLE[{name!r}].value")
        w(f"P_{name}_d = TABLE[{name!r}].partials")
    w("")
    w(f"@njit({SIGNATURE!r}, cache=True, nogil=True, error_model='numpy')")
    w("def process(x, out, trace, st, cfg):")
    B = "    "
    w(B + "nblk = x.shape[0]")
    w(B + "ntrace = trace.shape[0]")
    w(B + "rows = 0")
    w(B + f"n = int64(st[{LY.ST_N}])")
    w(B + f"lr0 = cfg[{LY.CF_LR}]")
    w(B + f"loss_code = int64(cfg[{LY.CF_LOSS}])")
    w(B + f"delta = cfg[{LY.CF_HUBER}]")
    w(B + f"W = min(max(int64(cfg[{LY.CF_WINDOW}]), 1), {cap})")
    w(B + "invW = 1.0 / W")
    w(B + f"opt = int64(cfg[{LY.CF_OPT}])")
    w(B + f"c1 = cfg[{LY.CF_C1}]")
    w(B + f"c2 = cfg[{LY.CF_C2}]")
    w(B + f"eps = cfg[{LY.CF_EPS}]")
    w(B + f"clip = cfg[{LY.CF_CLIP}]")
    w(B + f"decay = cfg[{LY.CF_DECAY}]")
    w(B + f"decay_every = int64(cfg[{LY.CF_DECAY_EVERY}])")
    w(B + f"lr_min = cfg[{LY.CF_LR_MIN}]")
    w(B + f"project = cfg[{LY.CF_RANGE_MODE}] == {LY.RANGE_PROJECT}")
    w(B + f"learn = cfg[{LY.CF_LEARN}] != 0.0")
    w(B + f"K = int64(cfg[{LY.CF_TRACE_EVERY}])")
    for k in range(H):
        w(B + f"h{k} = cfg[{lay.cfg_hidden + k}]")
    for k in range(P):
        w(B + f"lo{k} = cfg[{lay.cfg_lo + k}]")
        w(B + f"hi{k} = cfg[{lay.cfg_hi + k}]")
        w(B + f"th{k} = st[{lay.theta + k}]")
        w(B + f"m{k} = st[{lay.m + k}]")
        w(B + f"v{k} = st[{lay.v + k}]")
        w(B + f"g{k} = st[{lay.grad + k}]")
    for j in range(NW):
        w(B + f"S{j} = st[{lay.wsum + j}]")
    w(B + f"skipped = st[{LY.ST_SKIPPED}]")
    w(B + f"loss = st[{LY.ST_LOSS}]")
    w(B + f"wcount = int64(st[{LY.ST_WCOUNT}])")
    w(B + f"if int64(st[{LY.ST_WCUR}]) != W:")
    w(B + "    wcount = 0")
    w(B + f"sched = st[{LY.ST_SCHED}]")
    w(B + f"schedc = int64(st[{LY.ST_SCHED_COUNT}])")
    w(B + f"t = st[{LY.ST_T}]")
    w(B + f"resets = st[{LY.ST_RESETS}]")
    w(B + "for i in range(nblk):")
    I = B * 2
    w(I + "xi = x[i]")
    for k in range(P):
        w(I + f"p{k} = min(max(th{k}, lo{k}), hi{k})")
    w(I + "if not (xi - xi == 0.0):        # NaN or Inf input: no forward pass, no step")
    w(I + "    skipped += 1.0")
    w(I + "    out[i, 0] = 0.0")
    w(I + "    out[i, 1] = 0.0")
    w(I + "    out[i, 2] = loss")
    _emit_trace_row(w, I + "    ", P, "math.nan", zero_grads=True, y="0.0", yh="0.0")
    w(I + "    n += 1")
    w(I + "    continue")
    w(I + "# target circuit")
    for line in tgt.lines:
        w(I + line)
    w(I + f"y = {y_expr}")
    w(I + "# learnable circuit with tangents")
    for line in lrn.lines:
        w(I + line)
    w(I + f"yh = {yh_expr}")
    for s in out_slots:
        w(I + f"gt{s} = {yh_tan[s]}")
    w(I + "ok = True")
    w(I + "if not (y - y == 0.0):          # target blew up: restart its state")
    w(I + f"    st[{lay.target_state[0]}:{lay.target_state[1]}] = 0.0")
    w(I + "    resets += 1.0")
    w(I + "    ok = False")
    chk = " + ".join(["yh"] + [f"gt{s}" for s in out_slots])
    w(I + f"chk = {chk}")
    w(I + "if not (chk - chk == 0.0):      # learnable circuit blew up: restart its state")
    w(I + f"    st[{lay.learner_state[0]}:{lay.learner_state[1]}] = 0.0")
    w(I + "    resets += 1.0")
    w(I + "    ok = False")
    w(I + "if not ok:")
    w(I + "    skipped += 1.0")
    w(I + "    out[i, 0] = 0.0")
    w(I + "    out[i, 1] = 0.0")
    w(I + "    out[i, 2] = loss")
    _emit_trace_row(w, I + "    ", P, "math.nan", zero_grads=True, y="0.0", yh="0.0")
    w(I + "    n += 1")
    w(I + "    continue")
    w(I + "# sliding windows (running sums, recomputed exactly every W samples: no drift)")
    w(I + f"wp = n & {cap - 1}")
    w(I + f"wo = (n - W) & {cap - 1}")
    for j, val in enumerate(win_vals):
        base = lay.wring + j * cap
        w(I + f"S{j} += {val} - st[{base} + wo]")
        w(I + f"st[{base} + wp] = {val}")
    w(I + "wcount -= 1")
    w(I + "if wcount <= 0:")
    for j in range(NW):
        w(I + f"    S{j} = 0.0")
    w(I + "    for j in range(W):")
    w(I + f"        q = (n - j) & {cap - 1}")
    for j in range(NW):
        w(I + f"        S{j} += st[{lay.wring + j * cap} + q]")
    w(I + "    wcount = W")
    w(I + "Ly, slope = loss_and_slope(loss_code, S1*invW, S0*invW, delta)")
    for k in range(P):
        if k in out_slots:
            j = 2 + out_slots.index(k)
            w(I + f"g{k} = slope*(S{j}*invW)")
        else:
            w(I + f"g{k} = 0.0")
    gchk = " + ".join(["Ly"] + [f"g{k}" for k in range(P)])
    w(I + f"gchk = {gchk}")
    w(I + "if not (gchk - gchk == 0.0):")
    w(I + "    skipped += 1.0")
    w(I + "elif learn:")
    J = I + "    "
    if P:
        w(J + "if clip > 0.0:")
        w(J + f"    gn = math.sqrt({' + '.join(f'g{k}*g{k}' for k in range(P))})")
        w(J + "    if gn > clip:")
        w(J + "        sc = clip / gn")
        for k in range(P):
            w(J + f"        g{k} *= sc")
    w(J + "if decay_every > 0:")
    w(J + "    schedc += 1")
    w(J + "    if schedc >= decay_every:")
    w(J + "        schedc = 0")
    w(J + "        sched *= decay")
    w(J + "lr = lr0 * sched")
    w(J + "if lr < lr_min:")
    w(J + "    lr = lr_min")
    w(J + "t += 1.0")
    for k in range(P):
        w(J + f"s{k}, m{k}, v{k} = optimizer_step(opt, g{k}, lr, m{k}, v{k}, t, c1, c2, eps)")
        w(J + f"th{k} -= s{k}")
        w(J + "if project:")
        w(J + f"    th{k} = min(max(th{k}, lo{k}), hi{k})")
    w(I + "loss = Ly")
    w(I + "out[i, 0] = y")
    w(I + "out[i, 1] = yh")
    w(I + "out[i, 2] = Ly")
    _emit_trace_row(w, I, P, "Ly", zero_grads=False, y="y", yh="yh")
    w(I + "n += 1")
    # write back
    w(B + f"st[{LY.ST_N}] = n")
    for k in range(P):
        w(B + f"st[{lay.theta + k}] = th{k}")
        w(B + f"st[{lay.m + k}] = m{k}")
        w(B + f"st[{lay.v + k}] = v{k}")
        w(B + f"st[{lay.grad + k}] = g{k}")
    for j in range(NW):
        w(B + f"st[{lay.wsum + j}] = S{j}")
    w(B + f"st[{LY.ST_SKIPPED}] = skipped")
    w(B + f"st[{LY.ST_LOSS}] = loss")
    w(B + f"st[{LY.ST_WCUR}] = W")
    w(B + f"st[{LY.ST_WCOUNT}] = wcount")
    w(B + f"st[{LY.ST_SCHED}] = sched")
    w(B + f"st[{LY.ST_SCHED_COUNT}] = schedc")
    w(B + f"st[{LY.ST_T}] = t")
    w(B + f"st[{LY.ST_RESETS}] = resets")
    w(B + "return rows")
    return "\n".join(L) + "\n", lay


def _emit_trace_row(w, ind, P, loss, zero_grads, y, yh):
    w(ind + "if K > 0 and n % K == 0 and rows < ntrace:")
    w(ind + "    trace[rows, 0] = n")
    w(ind + f"    trace[rows, 1] = {loss}")
    for k in range(P):
        w(ind + f"    trace[rows, {2 + k}] = p{k}")
        w(ind + f"    trace[rows, {2 + P + k}] = {'0.0' if zero_grads else f'g{k}'}")
    w(ind + f"    trace[rows, {2 + 2 * P}] = {y}")
    w(ind + f"    trace[rows, {3 + 2 * P}] = {yh}")
    w(ind + "    rows += 1")


def compile_pair(learn: Graph, target: Graph, sample_rate: float,
                 window_capacity: int = 4096) -> CompiledLearner:
    """Generate, write (once) and import the kernel; Numba compiles it or loads it from cache."""
    source, lay = generate(learn, target, sample_rate, window_capacity)
    digest = hashlib.sha256((_engine_hash() + source).encode()).hexdigest()[:20]
    modname = f"dualtone_kernel_{digest}"
    path = kernel_cache_dir() / f"{modname}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)       # atomic: a concurrent process never imports a half file
    mod = sys.modules.get(modname)
    if mod is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        try:
            spec.loader.exec_module(mod)
        except Exception:
            sys.modules.pop(modname, None)
            raise
    return CompiledLearner(process=mod.process, layout=lay, source=source, path=path)
