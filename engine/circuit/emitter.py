"""The per-sample code of one circuit inside a generated kernel: its values and forward-mode
tangents as locals, its state (delay rings, phasor phases) in st. The kernel writer
(engine/circuit/compiler.py) runs one emitter per circuit and stream."""
from __future__ import annotations

import math
from typing import NamedTuple

from engine.circuit.analysis import delay_depths, ring_length, tangent_sets
from engine.circuit.language import Graph
from engine.circuit.primitives import TABLE

REGISTER_DEPTH = 4      # a signal read only at whole delays up to this is kept in locals, not a ring
ZERO_UNROLLED = 16      # state restarts up to this many words are written as stores


class InputRing(NamedTuple):
    """The delay line of x, shared by both circuits of a stream (the kernel writes it)."""
    offset: int
    length: int
    registers: int        # > 0: x's past is kept in locals xi_1..xi_registers (register_depth)


def register_depth(delays) -> int:
    """How many past samples of a signal to keep in locals r_1..r_d through a block, given the
    delay nodes that read it: its longest delay if every one is whole and at most REGISTER_DEPTH
    (then no ring is read in the loop), else 0 (a ring)."""
    delays = list(delays)
    whole = all(d.const_delay >= 1 and d.const_delay == int(d.const_delay) for d in delays)
    depth = max((int(d.const_delay) for d in delays), default=0) if whole else 0
    return depth if depth <= REGISTER_DEPTH else 0


def register_words(stem: str, base: int, length: int, depth: int):
    """(local, st word) of registers stem_1..stem_depth: k samples ago at the current n, in the
    ring of `length` at `base` that holds them between blocks."""
    for k in range(1, depth + 1):
        yield f"{stem}_{k}", f"{base} + ((n - {k}) & {length - 1})"


def shift_lines(stem: str, depth: int, now: str) -> list[str]:
    """Once per sample, after its last read: stem_k = stem_(k-1), stem_1 = now."""
    return [f"{stem}_{k} = {stem}_{k - 1}" for k in range(depth, 1, -1)] + [f"{stem}_1 = {now}"]


def zero_words(lo: int, hi: int) -> list[str]:
    """st[lo:hi] = 0 on a rare path inside the sample loop. A slice assignment becomes a call to
    memset, around which every live register is saved: LLVM then keeps the learning recurrence's
    values in stack slots for the whole loop (benchmarks/README.md, issue 17). Short ranges are
    plain stores; longer ones an explicit loop."""
    if hi - lo <= ZERO_UNROLLED:
        return [f"st[{j}] = 0.0" for j in range(lo, hi)]
    return [f"for j in range({lo}, {hi}):", "    st[j] = 0.0"]


class CircuitEmitter:
    """Emits the per-sample code of one circuit. Values are named <pfx>v<id>, tangents
    <pfx>v<id>_t<slot>; state (delay rings, phasor phases) is allocated in st."""

    def __init__(self, graph: Graph, pfx: str, alloc, value_of_param, slot_of: dict | None,
                 sample_rate: float, input_ring: InputRing | None = None, x_name: str = "xi",
                 external: str = "out[i, 0]"):
        self.g, self.pfx, self.alloc = graph, pfx, alloc
        self.x_name = x_name              # the local holding this stream's input sample
        # where the host left this sample's external target (`sptmod`): the target column of
        # `out`, which the kernel overwrites only after the forward pass
        self.external = external
        self.value_of_param = value_of_param
        self.with_tangents = slot_of is not None
        self.sets = tangent_sets(graph, slot_of) if slot_of else {n.id: frozenset() for n in graph.nodes}
        self.inv_sr = 1.0 / sample_rate
        self.learned_delay = 0            # the longest delay whose length a parameter sets (samples),
        self.learned_amount = None        #   and (its length's local, {slot: its tangent's expression})
        self.lines: list[str] = []
        self.val: dict[int, str] = {}
        self.tan: dict[int, dict[int, str]] = {}
        self.rings: dict[int, tuple] = {}      # source id -> (offset, length, {slot: offset})
        # sources read only at short whole delays: their past values (and tangents) live in locals
        # r<src>_<k> (k samples ago) for the block, shifted once per sample; their ring words in st
        # hold them between blocks (load_lines, store_lines), so the layout does not change
        self.registers: dict[int, int] = {}    # source id -> depth
        self.phasors: dict[int, int] = {}
        self.used_prims: set[str] = set()
        self.input_ring = input_ring      # the delay line of x, shared by both circuits
        # expressions finite by construction: constants, and the input sample and its whole-sample
        # delays (a circuit runs only on a finite sample, and only those enter x's delay line)
        self.finite: set[str] = set()
        self._plan_state()

    def _plan_state(self):
        need = delay_depths(self.g)
        begin = self.alloc(0)
        for n in self.g.nodes:
            if n.kind == "input" and n.id in need and self.input_ring is not None:
                self.rings[n.id] = (self.input_ring.offset, self.input_ring.length, {})
                del need[n.id]
        for src, depth in need.items():
            length = ring_length(depth)
            off = self.alloc(length)
            slots = {s: self.alloc(length) for s in sorted(self.sets[src])}
            self.rings[src] = (off, length, slots)
            regs = register_depth(n for n in self.g.nodes if n.kind == "delay" and n.args[0] == src)
            if regs:
                self.registers[src] = regs
        for n in self.g.nodes:
            if n.kind == "phasor":
                self.phasors[n.id] = self.alloc(1 + len(self.sets[n.id]))
        self.state_range = (begin, self.alloc(0))

    def phase_tangent_words(self) -> list[tuple[int, int]]:
        """(st offset, count) of each oscillator's phase tangents."""
        return [(off + 1, len(self.sets[i])) for i, off in self.phasors.items() if self.sets[i]]

    def is_finite(self, expr: str) -> bool:
        """True when expr (a value or tangent this emitter wrote) cannot be NaN or Inf: a literal
        (a tangent's seed, a constant's partial), the input sample or a whole-sample delay of it."""
        if expr in self.finite:
            return True
        try:
            return math.isfinite(float(expr))
        except ValueError:
            return False

    def emit(self, line):
        self.lines.append(line)

    def term(self, partial: str, tangent: str) -> str:
        return partial if tangent == "1.0" else f"{partial}*{tangent}"

    def run(self):
        for n in self.g.nodes:
            getattr(self, "_" + n.kind)(n)
            if n.id in self.rings and n.kind != "input" and n.id not in self.registers:   # x's: the kernel's
                off, length, slots = self.rings[n.id]
                idx = f"(n & {length - 1})"
                self.emit(f"st[{off} + {idx}] = {self.val[n.id]}")
                for s, so in slots.items():
                    self.emit(f"st[{so} + {idx}] = {self.tan[n.id].get(s, '0.0')}")
        for src, depth in self.registers.items():     # after every read of this sample: shift
            for name, now in self._register_chains(src):
                for line in shift_lines(name, depth, now):
                    self.emit(line)
        return self.val[self.g.output], self.tan[self.g.output]

    def _register_chains(self, src):
        """(local name stem, this sample's expression) of the value and each tangent of a source
        kept in registers."""
        _, _, slots = self.rings[src]
        return [(f"{self.pfx}r{src}", self.val[src])] + [(f"{self.pfx}r{src}t{s}", self.tan[src].get(s, "0.0"))
                                                         for s in slots]

    def _register_words(self):
        """(local, st word index expression) of every register, k samples ago at the current n
        (after run(): the chains name this sample's values)."""
        for src, depth in self.registers.items():
            off, length, slots = self.rings[src]
            bases = [off] + [slots[s] for s in slots]
            for (name, _), base in zip(self._register_chains(src), bases):
                yield from register_words(name, base, length, depth)

    def load_lines(self) -> list[str]:
        """Before the sample loop: the registers from their ring words."""
        return [f"{local} = st[{word}]" for local, word in self._register_words()]

    def store_lines(self) -> list[str]:
        """After the sample loop: the registers back into their ring words."""
        return [f"st[{word}] = {local}" for local, word in self._register_words()]

    def restart_lines(self) -> list[str]:
        """The circuit's state back to rest (it went non-finite): its st words and its registers."""
        return zero_words(*self.state_range) + [f"{local} = 0.0" for local, _ in self._register_words()]

    # node kinds
    def _const(self, n):
        self.val[n.id], self.tan[n.id] = repr(float(n.value)), {}
        self.finite.add(self.val[n.id])

    def _input(self, n):
        self.val[n.id], self.tan[n.id] = self.x_name, {}
        self.finite.add(self.x_name)

    def _external(self, n):
        self.val[n.id], self.tan[n.id] = self.external, {}

    def _control(self, n):
        self.val[n.id], self.tan[n.id] = f"cfg[{int(n.value)}]", {}

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
        if p.constant_partials is not None:
            for s in sorted(slots):
                terms = [(c, self.tan[a][s]) for c, a in zip(p.constant_partials, n.args) if s in self.tan[a]]
                if len(terms) == 1 and terms[0][0] == 1.0:
                    self.tan[n.id][s] = terms[0][1]          # alias: no new variable
                    continue
                expr = " ".join(("+ " if c > 0 else "- ") + (t if abs(c) == 1.0 else f"{abs(c)!r}*{t}")
                                for c, t in terms)
                self.emit(f"{v}_t{s} = {expr.lstrip('+ ')}")
                self.tan[n.id][s] = f"{v}_t{s}"
            return
        if p.argument_partials is not None:
            parts = [self.val[n.args[j]] for j in p.argument_partials]
        else:
            parts = [f"{v}_d{k}" for k in range(p.arity)]
            self.emit(f"{', '.join(parts)} = P_{n.prim}_d({args})")
        for s in sorted(slots):
            terms = [self.term(parts[k], self.tan[a][s]) for k, a in enumerate(n.args) if s in self.tan[a]]
            if p.argument_partials is not None and len(terms) == 1 and terms[0] in parts:
                self.tan[n.id][s] = terms[0]              # the tangent is an argument: no new variable
                continue
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
        of_input = self.g.node(src).kind == "input"
        if of_input and self.input_ring.registers:
            self.emit(f"{v} = {self.x_name}_{int(n.const_delay)}")     # x's registers (the kernel's)
            self.finite.add(v)
            return
        if src in self.registers:
            k = int(n.const_delay)
            self.emit(f"{v} = {self.pfx}r{src}_{k}")
            for s in slots:
                self.emit(f"{v}_t{s} = {self.pfx}r{src}t{s}_{k}")
                self.tan[n.id][s] = f"{v}_t{s}"
            return
        if n.const_delay >= 0 and n.const_delay == int(n.const_delay):
            k = int(n.const_delay)
            self.emit(f"{v}_i = (n - {k}) & {mask}")
            self.emit(f"{v} = st[{off} + {v}_i]")
            if of_input:
                self.finite.add(v)
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
            if amt_slots and int(math.ceil(hi)) > self.learned_delay:
                self.learned_delay = int(math.ceil(hi))
                self.learned_amount = (f"{v}_a", dict(amt_slots))
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
        self.emit(f"{v} -= np.floor({v})")
        self.emit(f"st[{off}] = {v}")
        self.val[n.id], self.tan[n.id] = v, {}
        # d(phase)/d(theta) accumulates df/SR (the unwrapped phase's derivative; the wrap is a
        # jump of the value only; the spectral loss restarts it: phase_tangent_words)
        for k, s in enumerate(sorted(self.sets[n.id])):
            self.emit(f"{v}_t{s} = st[{off + 1 + k}] + {self.tan[f][s]}*{self.inv_sr!r}")
            self.emit(f"st[{off + 1 + k}] = {v}_t{s}")
            self.tan[n.id][s] = f"{v}_t{s}"
